//! `TrainingJob`: a distributed GPU training job that Verdant places where and when
//! renewable power is available.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The longest TrainingJob name: its pods are `<name>-<replica index>`, up to
/// `<name>-1023` (1024 replicas), and a pod's hostname is its name, at most 63 characters.
pub const MAX_NAME_LENGTH: usize = 63 - "-1023".len();

/// A distributed GPU training job: `replicas` worker pods of `gpusPerReplica` GPUs each,
/// placed together (all or nothing) at one energy site, when and where renewable power
/// allows it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "verdant.dev",
    version = "v1alpha1",
    kind = "TrainingJob",
    namespaced,
    status = "TrainingJobStatus",
    shortname = "tj",
    category = "verdant",
    doc = "A distributed GPU training job that Verdant places where and when renewable power is available.",
    // Names are checked on creation only (oldSelf absent): a name cannot change, and an
    // object created before these rules must stay updatable so that it can be deleted.
    validation = kube::core::Rule::new("oldSelf.hasValue() || size(self.metadata.name) <= 58").optional_old_self(true).message("metadata.name must be at most 58 characters: the pods are named <name>-<replica index> (up to <name>-1023), and a pod's hostname has at most 63"),
    validation = kube::core::Rule::new("oldSelf.hasValue() || self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").optional_old_self(true).message("metadata.name must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (no dots); it names the job's headless Service and its pods' hostnames"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.reason"),
    // A transition rule (oldSelf, on updates only) at the root so that setting or removing
    // the field is caught too, not only changing it.
    validation = kube::core::Rule::new("has(self.spec.managedBy) == has(oldSelf.spec.managedBy) && (!has(self.spec.managedBy) || self.spec.managedBy == oldSelf.spec.managedBy)").message("spec.managedBy is immutable").field_path(".spec.managedBy"),
    validation = kube::core::Rule::new("!has(self.spec.elastic) || self.spec.elastic.minReplicas <= self.spec.replicas").message("spec.elastic.minReplicas must be at most spec.replicas (the starting size)").field_path(".spec.elastic.minReplicas"),
    validation = kube::core::Rule::new("!has(self.spec.elastic) || self.spec.replicas <= self.spec.elastic.maxReplicas").message("spec.elastic.maxReplicas must be at least spec.replicas (the starting size)").field_path(".spec.elastic.maxReplicas"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
    printcolumn(
        name = "GPUs/replica",
        type_ = "integer",
        json_path = ".spec.gpusPerReplica"
    ),
    printcolumn(name = "Site", type_ = "string", json_path = ".status.site"),
    printcolumn(
        name = "Renewable %",
        type_ = "number",
        json_path = ".status.energy.renewablePercent"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobSpec {
    /// Number of worker pods. Each pod is one torchrun node; all of them are placed at once,
    /// on the nodes of a single energy site, or none is. 1 to 1024.
    #[schemars(range(min = 1, max = 1024))]
    pub replicas: i32,

    /// `nvidia.com/gpu` requested by each worker pod. 1 to 16.
    #[schemars(range(min = 1, max = 16))]
    pub gpus_per_replica: i32,

    /// The pod template of every worker. Verdant adds the GPU limits, the torch.distributed
    /// environment (MASTER_ADDR, WORLD_SIZE, RANK, PET_*) and its own labels. It must have at
    /// least one container; the first container is the training process.
    #[x_kube(validation = kube::core::Rule::new("has(self.spec) && size(self.spec.containers) > 0").message("spec.template must have at least one container").field_path(".spec.containers"))]
    pub template: PodTemplateSpec,

    /// When and how green the job must run. Defaults to GreenPreferred with a
    /// minimum renewable fraction of 0.8.
    #[serde(default)]
    pub energy: EnergyPolicySpec,

    /// Names of the EnergySites this job may run at. Empty means any site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub sites: Vec<String>,

    /// Scheduling priority. Higher priorities are placed first. Default 0.
    #[serde(default)]
    pub priority: i32,

    /// Restart, timeout, clean-up and suspension settings.
    #[serde(default)]
    pub run_policy: RunPolicy,

    /// Makes the job elastic: torchrun runs with `--nnodes=minReplicas:maxReplicas` and the
    /// c10d rendezvous, and Verdant grows the running job (up to maxReplicas) when its site
    /// has renewable headroom and free GPUs, and shrinks it (down to minReplicas) before
    /// it would suspend anything when renewables drop. `replicas` is the starting size;
    /// replica 0 is never removed and the whole job stays at one site. The script must
    /// resume from its checkpoint, since torchrun restarts the workers at every resize; so
    /// a GreenPreferred or GreenOnly elastic job counts as interruptible: once at
    /// minReplicas, it may be suspended like one and resumes at `replicas`.
    /// 1 ≤ minReplicas ≤ replicas ≤ maxReplicas ≤ 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic: Option<ElasticPolicy>,

    /// The controller that runs this job. Absent, or `verdant.dev/trainingjob-controller`:
    /// Verdant. Any other value (such as `kueue.x-k8s.io/multikueue`, set by MultiKueue on
    /// a manager cluster) and Verdant leaves the job alone: no pods, no status. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub managed_by: Option<String>,
}

/// Verdant's own value of `spec.managedBy` (the same as leaving it out).
pub const MANAGED_BY_VERDANT: &str = "verdant.dev/trainingjob-controller";

/// The bounds of an elastic job, as Kubeflow PyTorchJob's `elasticPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElasticPolicy {
    /// The fewest replicas the job runs with. 1 to 1024, at most `spec.replicas`.
    #[schemars(range(min = 1, max = 1024))]
    pub min_replicas: i32,
    /// The most replicas the job runs with. 1 to 1024, at least `spec.replicas`.
    #[schemars(range(min = 1, max = 1024))]
    pub max_replicas: i32,
    /// How many times torchrun may restart the workers (`PET_MAX_RESTARTS`): every resize
    /// that removes a replica costs one. 0 to 10000; default 100.
    #[serde(default = "default_elastic_max_restarts")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_restarts: i32,
}

fn default_elastic_max_restarts() -> i32 {
    100
}

impl TrainingJobSpec {
    /// Whether Verdant runs the job: `managedBy` is absent or Verdant's own value.
    pub fn managed_by_verdant(&self) -> bool {
        self.managed_by
            .as_deref()
            .is_none_or(|m| m == MANAGED_BY_VERDANT)
    }

    /// Whether Verdant may suspend the job and restart it later: it checkpoints on
    /// SIGTERM (`energy.interruptible`), or it is elastic, since torchrun restarts an
    /// elastic job's workers from their checkpoint at every resize anyway.
    pub fn resumable(&self) -> bool {
        self.energy.interruptible || self.elastic.is_some()
    }
}

/// How a job trades start time for renewable energy.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum GreenPolicy {
    /// Start as soon as GPUs are free, at the site with the most renewable headroom.
    Immediate,
    /// Start when a site can cover at least `minRenewableFraction` of the job's energy with
    /// renewables, deferring up to the latest start (creation + maxDelay, or deadline −
    /// estimatedDuration); at the latest start, run regardless.
    #[default]
    GreenPreferred,
    /// Run only on renewable headroom. If `interruptible`, the job is suspended when headroom
    /// stays negative past the operator's grace period, and resumed when it returns.
    GreenOnly,
}

/// The job's energy policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.deadline) || has(self.estimatedDuration)").message("spec.energy.deadline requires spec.energy.estimatedDuration").field_path(".deadline"),
    validation = kube::core::Rule::new("!(has(self.deadline) && has(self.maxDelay))").message("spec.energy.deadline and spec.energy.maxDelay are mutually exclusive: set one").field_path(".maxDelay")
)]
pub struct EnergyPolicySpec {
    /// Immediate, GreenPreferred (default) or GreenOnly.
    #[serde(default)]
    pub policy: GreenPolicy,

    /// RFC 3339 time by which the job should finish. Requires `estimatedDuration`; the
    /// latest start is then deadline − estimatedDuration. Exclusive with `maxDelay`. A
    /// deadline already past at creation is accepted with a Warning Event and the condition
    /// `DeadlineInPast`; the job is overdue and starts as soon as GPUs are free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,

    /// How long the job may wait for green power, as a Go duration (`90m`, `6h`, `1h30m`).
    /// The latest start is the creation time + maxDelay. Exclusive with `deadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("!self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) > duration('0s')").message("spec.energy.maxDelay must be a positive duration such as 90m or 6h"))]
    pub max_delay: Option<Duration>,

    /// Expected run time, as a Go duration (`90m`, `6h`). Used to find a green window and
    /// to compute the latest start from `deadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("!self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) > duration('0s')").message("spec.energy.estimatedDuration must be a positive duration such as 90m or 6h"))]
    pub estimated_duration: Option<Duration>,

    /// The share of the job's energy that must come from renewables for a GreenPreferred
    /// job to start before its latest start. 0 to 1; default 0.8.
    #[serde(default = "default_min_renewable_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_renewable_fraction: f64,

    /// If true, Verdant may suspend the job (delete its pods gracefully) when renewables
    /// drop, and restart it later. The workload must checkpoint on SIGTERM. Elastic jobs
    /// (`spec.elastic`) are treated as interruptible whatever this says.
    #[serde(default)]
    pub interruptible: bool,

    /// Whether Verdant may lower the job's GPU power limits when renewables run short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_capping: Option<PowerCapping>,
}

impl Default for EnergyPolicySpec {
    fn default() -> Self {
        Self {
            policy: GreenPolicy::default(),
            deadline: None,
            max_delay: None,
            estimated_duration: None,
            min_renewable_fraction: default_min_renewable_fraction(),
            interruptible: false,
            power_capping: None,
        }
    }
}

fn default_min_renewable_fraction() -> f64 {
    0.8
}

/// GPU power capping for flexible jobs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PowerCapping {
    /// Allow Verdant to cap this job's GPU power limits.
    pub enabled: bool,
    /// The lowest power limit Verdant may set, in percent of each GPU's default limit.
    /// 30 to 100; default 60.
    #[serde(default = "default_min_percent")]
    #[schemars(range(min = 30, max = 100))]
    pub min_percent: i32,
}

fn default_min_percent() -> i32 {
    60
}

/// Restart, timeout, clean-up and suspension settings, as in Kubeflow's training operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// How many times the whole gang is restarted after a replica fails or loses its node,
    /// before the job is marked Failed. Default 3.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0))]
    pub backoff_limit: i32,
    /// Seconds the job may run before it is ended with the reason DeadlineExceeded. Only
    /// running time counts: the clock starts when every replica runs (`status.startTime`)
    /// and a suspension (by `suspend`, or by Verdant for renewables or to make room)
    /// stops it; it starts again from zero when the job runs again, as a Kubernetes Job's
    /// does on resume. Gang restarts after a failure do not reset it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after the job finished (Succeeded or Failed) before it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// While true, the job's pods are deleted gracefully and the job is Suspended; set it back
    /// to false to resume.
    #[serde(default)]
    pub suspend: bool,
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: None,
            ttl_seconds_after_finished: None,
            suspend: false,
        }
    }
}

fn default_backoff_limit() -> i32 {
    3
}

/// The phase of a TrainingJob.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema,
)]
pub enum JobPhase {
    /// Accepted, waiting for the next scheduling cycle or for free GPUs.
    #[default]
    Pending,
    /// Waiting on purpose for greener power; see `expectedStartTime` and `message`.
    Deferred,
    /// Placed: pods are created and bound, not all running yet.
    Starting,
    /// Every replica is running.
    Running,
    /// Pods were removed (by `runPolicy.suspend`, for renewables, or to make room for a job
    /// at its latest start); the job resumes later.
    Suspended,
    /// Every replica completed successfully.
    Succeeded,
    /// The job failed: backoff limit reached, deadline exceeded, or its pods or Service
    /// were rejected by the API server (`FailedCreate`).
    Failed,
}

impl JobPhase {
    /// Every phase, in the order of a job's life.
    pub const ALL: [JobPhase; 7] = [
        JobPhase::Pending,
        JobPhase::Deferred,
        JobPhase::Starting,
        JobPhase::Running,
        JobPhase::Suspended,
        JobPhase::Succeeded,
        JobPhase::Failed,
    ];

    /// Whether the job has finished for good.
    pub fn is_finished(self) -> bool {
        matches!(self, JobPhase::Succeeded | JobPhase::Failed)
    }

    /// The phase as `status.phase` writes it (and the metrics, Events and web view show it).
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Pending => "Pending",
            JobPhase::Deferred => "Deferred",
            JobPhase::Starting => "Starting",
            JobPhase::Running => "Running",
            JobPhase::Suspended => "Suspended",
            JobPhase::Succeeded => "Succeeded",
            JobPhase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for JobPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What Verdant has decided and observed for a TrainingJob.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobStatus {
    /// Pending, Deferred, Starting, Running, Suspended, Succeeded or Failed.
    #[serde(default)]
    pub phase: JobPhase,
    /// A CamelCase reason for the last scheduling or lifecycle decision, such as
    /// `PlacedGreen`, `DeferredForRenewables` or `FailedCreate` (every code is listed in
    /// docs/api.md). Also the `REASON` column of `kubectl get tj`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last scheduling decision in words, with the numbers behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The EnergySite the job runs (or ran) at. It stays while the job is suspended or
    /// restarting, until the job is placed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The node of each replica, by replica index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// The replicas the job is placed with now (one per entry of `nodes`); for an elastic
    /// job it changes as Verdant resizes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// An elastic job's `spec.elastic.minReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// An elastic job's `spec.elastic.maxReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    /// The size for `kubectl get`: `3/1-4` (3 replicas now, elastic from 1 to 4), or `2`
    /// for a job that is not elastic; absent while no replica is placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// When an elastic job was last resized (or placed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resize_time: Option<Time>,
    /// When a Deferred job is expected to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_start_time: Option<Time>,
    /// When every replica last started running: the start of the `activeDeadlineSeconds`
    /// clock. Cleared by a suspension and set again when the job runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// How many times the gang was restarted after a failure.
    #[serde(default)]
    pub restarts: i32,
    /// The GPU power limit Verdant currently asks for, in percent of each GPU's default
    /// limit, when the job allows power capping and renewables run short. Absent: uncapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_cap_percent: Option<i32>,
    /// The job's energy so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<JobEnergy>,
    /// Standard conditions: `Scheduled`, `Running`, `Suspended`, `Succeeded`, `Failed`;
    /// `DeadlineInPast` when `spec.energy.deadline` was already past at creation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Energy accounted to a job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobEnergy {
    /// Energy drawn by the job's GPUs, in kWh, from their energy counters.
    pub gpu_energy_kwh: f64,
    /// The part of it covered by the site's solar and wind, in kWh.
    pub renewable_energy_kwh: f64,
    /// The part of it drawn from the grid, in kWh.
    pub grid_energy_kwh: f64,
    /// renewableEnergyKwh / gpuEnergyKwh, 0 to 1.
    pub renewable_fraction: f64,
    /// The same share in percent, rounded to 0.1, for `kubectl get`.
    pub renewable_percent: f64,
    /// CO₂ emitted for the grid energy, in grams, at the site's grid carbon intensity.
    pub co2_grams: f64,
}

#[cfg(test)]
mod tests;
