//! What a run submits: the same jobs as batch/v1 Jobs, plain pods or TrainingJobs.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};
use verdant_crds::TrainingJob;

use super::watch::JOB_LABEL;

/// A shape of job and how many of them a run submits.
#[derive(Clone, Debug)]
pub struct Workload {
    /// `1x1` or `8x8`.
    pub name: String,
    /// Jobs submitted.
    pub jobs: u32,
    /// Pods per job.
    pub replicas: u32,
    /// GPUs per pod.
    pub gpus: u32,
}

impl Workload {
    /// `jobs` jobs of `replicas` pods with `gpus` GPUs each.
    pub fn new(jobs: u32, replicas: u32, gpus: u32) -> Self {
        Self {
            name: format!("{replicas}x{gpus}"),
            jobs,
            replicas,
            gpus,
        }
    }

    /// Pods of the whole run.
    pub fn pods(&self) -> usize {
        (self.jobs * self.replicas) as usize
    }
}

/// How the jobs reach the cluster, and who places their pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submission {
    /// batch/v1 Jobs (parallelism = completions = replicas): the Job controller creates
    /// the pods, kube-scheduler binds them.
    BatchJob,
    /// The pods themselves, `replicas` per job, bound by kube-scheduler.
    Pods,
    /// TrainingJobs with `spec.energy.policy` Immediate, placed by Verdant.
    VerdantImmediate,
    /// TrainingJobs with `spec.energy.policy` GreenPreferred on sites with headroom.
    VerdantGreenPreferred,
}

impl Submission {
    /// Every submission, in the order a bench runs them: kube-scheduler's first, while
    /// the operator is not running.
    pub const ALL: [Submission; 4] = [
        Submission::BatchJob,
        Submission::Pods,
        Submission::VerdantImmediate,
        Submission::VerdantGreenPreferred,
    ];

    /// `kube-scheduler` or `verdant`.
    pub fn scheduler(self) -> &'static str {
        match self {
            Submission::BatchJob | Submission::Pods => "kube-scheduler",
            _ => "verdant",
        }
    }

    /// What was created, for the report.
    pub fn label(self) -> &'static str {
        match self {
            Submission::BatchJob => "batch/v1 Job",
            Submission::Pods => "Pod",
            Submission::VerdantImmediate => "TrainingJob Immediate",
            Submission::VerdantGreenPreferred => "TrainingJob GreenPreferred",
        }
    }

    /// Short name for namespaces.
    pub fn slug(self) -> &'static str {
        match self {
            Submission::BatchJob => "job",
            Submission::Pods => "pod",
            Submission::VerdantImmediate => "immediate",
            Submission::VerdantGreenPreferred => "green",
        }
    }

    /// The objects of job `name`: one for a Job or TrainingJob, `replicas` pods otherwise.
    pub fn objects(
        self,
        name: &str,
        w: &Workload,
    ) -> anyhow::Result<Vec<(ApiResource, DynamicObject)>> {
        let labels = json!({ JOB_LABEL: name });
        let container = |gpus: u32| {
            json!({"name": "trainer", "image": "pytorch/pytorch",
                   "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}})
        };
        let objects: Vec<(ApiResource, Value)> = match self {
            Submission::BatchJob => vec![(
                ApiResource::erase::<Job>(&()),
                json!({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "labels": labels},
                       "spec": {"parallelism": w.replicas, "completions": w.replicas, "backoffLimit": 0,
                                "template": {"metadata": {"labels": labels},
                                             "spec": {"restartPolicy": "Never",
                                                      "containers": [container(w.gpus)]}}}}),
            )],
            Submission::Pods => (0..w.replicas)
                .map(|k| {
                    (
                        ApiResource::erase::<Pod>(&()),
                        json!({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": format!("{name}-{k}"), "labels": labels},
                               "spec": {"restartPolicy": "Never", "containers": [container(w.gpus)]}}),
                    )
                })
                .collect(),
            Submission::VerdantImmediate | Submission::VerdantGreenPreferred => {
                let policy = if self == Submission::VerdantImmediate {
                    "Immediate"
                } else {
                    "GreenPreferred"
                };
                let mut job = crate::jobs::training_job(
                    name,
                    w.replicas,
                    w.gpus,
                    json!({"energy": {"policy": policy}}),
                    json!({}),
                );
                job["spec"]["template"]["metadata"]["labels"] = labels;
                vec![(ApiResource::erase::<TrainingJob>(&()), job)]
            }
        };
        objects
            .into_iter()
            .map(|(resource, value)| Ok((resource, serde_json::from_value(value)?)))
            .collect()
    }
}
