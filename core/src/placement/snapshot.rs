//! What the engine is given: one consistent picture of sites, nodes and jobs at `now_s`,
//! plus the operator's tunables. Nothing here refers to Kubernetes objects; the controller
//! (or the trace simulator) resolves taints, selectors and pod accounting before calling.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::energy::BatteryState;

/// Everything one placement cycle looks at. Time is seconds since the Unix epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The instant the cycle decides for.
    pub now_s: i64,
    /// Energy sites. Names are unique.
    pub sites: Vec<Site>,
    /// GPU nodes. `Job::allowed_nodes` and `JobState::Running::nodes` index into this list.
    pub nodes: Vec<Node>,
    /// Every TrainingJob the engine should decide for: pending, running and suspended.
    pub jobs: Vec<Job>,
}

/// Operator-wide tunables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Per-GPU draw when neither a measurement nor a model entry is known, in watts.
    pub default_gpu_watts: f64,
    /// Per-GPU draw by node GPU model (the `nvidia.com/gpu.product` label), in watts.
    pub gpu_watts_by_model: BTreeMap<String, f64>,
    /// How long a site's headroom must stay negative before interruptible jobs there are
    /// suspended (GreenOnly ones, and GreenPreferred ones with slack left).
    pub green_only_grace_s: i64,
    /// Run time assumed for jobs without an estimate.
    pub default_duration_s: i64,
    /// A running job that has outlived its estimate is assumed to need this much longer.
    pub overrun_extension_s: i64,
    /// An interruptible GreenPreferred job may be suspended only while its latest start is
    /// at least this far ahead: with less, it would be resumed (at its latest start) about
    /// as soon as it stopped, paying a restart for little renewable energy.
    #[serde(default = "default_suspend_min_slack_s")]
    pub suspend_min_slack_s: i64,
    /// Hysteresis for lifting power caps: a cap is lifted (fully or partly) only while the
    /// site keeps at least this share of the job's uncapped power as spare headroom.
    pub uncap_margin_fraction: f64,
    /// An elastic job grows only while the site's headroom covers the added replicas
    /// (plus the `uncap_margin_fraction` margin) for this long from now, so that a
    /// passing cloud does not resize it twice.
    #[serde(default = "default_elastic_grow_hold_s")]
    pub elastic_grow_hold_s: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            default_gpu_watts: 700.0,
            gpu_watts_by_model: BTreeMap::new(),
            green_only_grace_s: 600,
            default_duration_s: 3600,
            overrun_extension_s: 1800,
            suspend_min_slack_s: default_suspend_min_slack_s(),
            uncap_margin_fraction: 0.1,
            elastic_grow_hold_s: default_elastic_grow_hold_s(),
        }
    }
}

fn default_suspend_min_slack_s() -> i64 {
    3600
}

fn default_elastic_grow_hold_s() -> i64 {
    1800
}

/// An energy site: a renewable plant with the GPU nodes it powers; the grid is the fallback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub name: String,
    /// Power usage effectiveness: facility power / IT power (≥ 1).
    pub pue: f64,
    /// Carbon intensity of the grid fallback, in gCO2e per kWh (reported, not optimised).
    pub grid_carbon_g_per_kwh: f64,
    /// Renewable output forecast, a step function: each point holds from its `start_s` until
    /// the next point's; the first point also covers `now_s`; the last point holds for one
    /// step (the spacing before it, or an hour for a single point) and 0 kW is assumed after.
    pub supply: Vec<SupplyPoint>,
    /// Load at the site not caused by the jobs in this snapshot, in kW.
    pub base_load_kw: f64,
    /// Since when the site's current headroom has been negative (persisted by the
    /// controller); drives the GreenOnly grace period.
    pub headroom_negative_since_s: Option<i64>,
    /// The site's batteries with their state of charge at `now_s`; what they can deliver
    /// counts as headroom (`headroom.rs`).
    #[serde(default)]
    pub storage: Vec<BatteryState>,
}

/// One step of a renewable forecast.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupplyPoint {
    pub start_s: i64,
    pub kw: f64,
}

/// A GPU node as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// The energy site the node draws from; nodes without one are never used.
    pub site: Option<String>,
    pub gpu_model: String,
    pub gpus_allocatable: u32,
    /// All GPUs requested by pods bound to the node, running Verdant jobs included.
    pub gpus_used: u32,
    /// False when cordoned, not ready or otherwise closed to new pods.
    pub schedulable: bool,
}

/// A TrainingJob reduced to what placement needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `namespace/name`, unique in the snapshot.
    pub id: String,
    pub replicas: u32,
    pub gpus_per_replica: u32,
    pub state: JobState,
    pub policy: Policy,
    /// GreenPreferred: the renewable share of the job's energy needed to start early.
    pub min_renewable_fraction: f64,
    /// The job checkpoints on SIGTERM (`spec.energy.interruptible`): it may be suspended
    /// by a brown-out, GreenOnly jobs always and GreenPreferred ones while their latest
    /// start is at least `EngineConfig::suspend_min_slack_s` ahead. Elastic jobs may be
    /// too (see [`Job::resumable`]).
    pub interruptible: bool,
    /// `Some(min)` if Verdant may cap the job's GPU power down to `min` percent.
    pub power_cap_min_percent: Option<u32>,
    /// The cap currently applied to a running job, in percent; `None` = uncapped.
    #[serde(default)]
    pub power_cap_percent: Option<u32>,
    /// Higher first.
    pub priority: i32,
    pub created_s: i64,
    /// Deadline-derived latest start (creation + maxDelay, or deadline − duration).
    pub latest_start_s: Option<i64>,
    pub estimated_duration_s: Option<i64>,
    /// Measured uncapped draw per GPU, in watts, when known from earlier runs.
    pub measured_gpu_watts: Option<f64>,
    /// Site names the job may use; empty = any.
    pub allowed_sites: Vec<String>,
    /// Indices into `Snapshot::nodes` the job's pods tolerate and select (taints,
    /// nodeSelector and affinity resolved by the controller); `None` = all.
    pub allowed_nodes: Option<Vec<u32>>,
    /// `Some` for an elastic job: a running one may grow and shrink between its bounds.
    /// `replicas` is then the size it starts with (pending) or runs at (running: one
    /// replica per node in `JobState::Running::nodes`).
    #[serde(default)]
    pub elastic: Option<Elastic>,
}

/// The bounds of an elastic job (torchrun `--nnodes=MIN:MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elastic {
    /// The fewest replicas it may shrink to (≥ 1: replica 0 always stays).
    pub min_replicas: u32,
    /// The most replicas it may grow to.
    pub max_replicas: u32,
    /// When it was last placed or resized, if known: among jobs to shrink, the one whose
    /// decision is oldest goes first.
    pub last_resize_s: Option<i64>,
}

/// Where a job is in its life, as far as placement cares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Not started yet (or restarted after a failure).
    Pending,
    /// Bound to `nodes` (one index per replica, in replica order) at `site`.
    Running {
        site: String,
        nodes: Vec<u32>,
        started_s: i64,
    },
    /// Stopped by a brown-out; the engine may resume it.
    Suspended,
}

/// How a job trades start time for renewable energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// Start as soon as GPUs are free, at the site with the most renewable headroom.
    Immediate,
    /// Start early only if renewables cover `min_renewable_fraction` of the energy;
    /// at the latest start, run regardless.
    GreenPreferred,
    /// Start only on current renewable headroom; suspended by brown-outs if interruptible.
    GreenOnly,
}

impl Job {
    /// The run time the engine plans with: the estimate, else the default, kept within
    /// a second and a year so that time arithmetic cannot overflow.
    pub fn planned_duration_s(&self, config: &EngineConfig) -> i64 {
        self.estimated_duration_s
            .filter(|d| *d > 0)
            .unwrap_or(config.default_duration_s)
            .clamp(1, 366 * 86_400)
    }

    /// When the job's work must be done: `latest_start_s + estimated duration`. For a
    /// running job the controller gives the duration and latest start of what is left.
    pub fn due_s(&self, config: &EngineConfig) -> Option<i64> {
        self.latest_start_s
            .map(|t| t.saturating_add(self.planned_duration_s(config)))
    }

    /// Whether the job resumes from its own checkpoint when stopped, so that the engine
    /// may suspend it: it says so (`interruptible`), or it is elastic, since torchrun
    /// restarts an elastic job's workers from their checkpoint at every resize and a
    /// suspension and resume is one more such restart. An elastic job is suspended only
    /// once shrinking it (not below its minimum) could not close the gap.
    pub fn resumable(&self) -> bool {
        self.interruptible || self.elastic.is_some()
    }

    /// GPUs the whole gang needs.
    pub fn total_gpus(&self) -> u64 {
        u64::from(self.replicas) * u64::from(self.gpus_per_replica)
    }
}
