//! TrainingJob as a Kueue external framework: what Kueue's `jobframework` does for a
//! `GenericJob`, re-implemented for TrainingJobs (Kueue v0.17.0, `kueue.x-k8s.io/v1beta2`).
//!
//! A TrainingJob labelled `kueue.x-k8s.io/queue-name` gets a `Workload` ([`workload`])
//! that Kueue queues and admits. The job counts as *suspended* (jobframework's
//! `IsSuspended`) while `spec.runPolicy.suspend` is true or Verdant has not yet started it
//! for an admission ([`STARTED_ANNOTATION`] absent): such a job gets no pods and is not
//! given to the placement engine, and its status says that it waits for Kueue
//! ([`waiting_for_admission`]). Once the Workload is admitted, Verdant *starts* the job:
//! the admitted flavors' node labels and tolerations go into its pod template (so they
//! restrict where the engine places the gang, and are in its pods),
//! `runPolicy.suspend` becomes false, and Verdant places it green as usual. An evicted
//! job is *stopped*: suspended, its template restored, and, once its pods are gone, its
//! Workload's quota reservation cleared so that Kueue requeues it. A finished job marks
//! its Workload `Finished`.
//!
//! Layers: [`workload`] (the Workload's shape and reading it), [`decide`] (the pure
//! decision, jobframework's `ReconcileGenericJob`), [`podset`] (flavors into the pod
//! template and back), [`controller`] (the I/O, a task of its own), and [`dispatch`]
//! (MultiKueue: ranking worker clusters by renewable headroom, as an External dispatcher),
//! [`dispatcher`] (its I/O on a MultiKueue manager) and [`owned`] (the fields a field
//! manager owns, for writing as Kueue's admission manager).

pub mod controller;
pub mod decide;
pub mod dispatch;
pub mod dispatcher;
pub mod owned;
pub mod podset;
pub mod workload;

use verdant_crds::TrainingJob;

/// The label that submits a job to a Kueue LocalQueue.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The label naming a job's `WorkloadPriorityClass`.
pub const PRIORITY_CLASS_LABEL: &str = "kueue.x-k8s.io/priority-class";
/// Set by Verdant on a job it started for a Kueue admission (the Workload's name): from
/// then on `runPolicy.suspend` alone says whether the job is suspended.
pub const STARTED_ANNOTATION: &str = "kueue.verdant.dev/started";

/// The LocalQueue a job is submitted to, if any.
pub fn queue_name(job: &TrainingJob) -> Option<&str> {
    job.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(QUEUE_LABEL))
        .map(String::as_str)
        .filter(|q| !q.is_empty())
}

/// Whether a queued job is suspended in jobframework's sense: `runPolicy.suspend`, or
/// not yet started for an admission.
pub fn is_suspended(job: &TrainingJob) -> bool {
    let started = job
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(STARTED_ANNOTATION));
    job.spec.run_policy.suspend || !started
}

/// The queue a job waits in for Kueue's admission: it gets no pods and the engine does not
/// see it. None for a job without a queue, or one Kueue admitted and Verdant started.
pub fn waiting_for_admission(job: &TrainingJob) -> Option<&str> {
    queue_name(job).filter(|_| is_suspended(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        labels: serde_json::Value,
        annotations: serde_json::Value,
        suspend: bool,
    ) -> TrainingJob {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "a", "namespace": "ns", "labels": labels, "annotations": annotations},
            "spec": {"replicas": 1, "gpusPerReplica": 8, "template": {}, "runPolicy": {"suspend": suspend}},
        }))
        .unwrap()
    }

    #[test]
    fn a_queued_job_waits_until_started_and_while_suspended() {
        let none = serde_json::json!({});
        let queued = serde_json::json!({QUEUE_LABEL: "team"});
        let started = serde_json::json!({STARTED_ANNOTATION: "trainingjob-a-1"});
        assert_eq!(
            waiting_for_admission(&job(none.clone(), none.clone(), false)),
            None
        );
        assert_eq!(
            waiting_for_admission(&job(none.clone(), none.clone(), true)),
            None,
            "no queue: runPolicy.suspend only"
        );
        assert_eq!(
            waiting_for_admission(&job(queued.clone(), none.clone(), false)),
            Some("team")
        );
        assert_eq!(
            waiting_for_admission(&job(queued.clone(), started.clone(), false)),
            None
        );
        assert_eq!(
            waiting_for_admission(&job(queued, started, true)),
            Some("team"),
            "evicted"
        );
    }
}
