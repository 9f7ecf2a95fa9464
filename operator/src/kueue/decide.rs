//! What to do next for a queued TrainingJob and its Workload: jobframework's
//! `ReconcileGenericJob`, pure. The controller performs the [`Step`].
//!
//! In order, as jobframework:
//! 1. A finished Workload: nothing more.
//! 2. A finished job (Succeeded or Failed): its Workload gets `Finished=True`.
//! 3. No Workload: created, once the job has no pods left; a prebuilt one (named by
//!    `kueue.x-k8s.io/prebuilt-workload-name`, as MultiKueue's copy of a job in a worker
//!    cluster has it) is awaited, and adopted (the job its controlling owner) once found.
//! 4. An evicted Workload (`Evicted=True`): the job is stopped; once it is suspended and
//!    its pods are gone, the Workload's quota reservation is cleared (`QuotaReserved=False`,
//!    reason `Pending`, admission removed, `Admitted` synced, `Requeued`), so that Kueue
//!    queues it again.
//! 5. A suspended job: started once its Workload is admitted; otherwise the Workload
//!    follows the job's queue label.
//! 6. A running job whose Workload is not admitted (any more): stopped.

use serde_json::Value;
use verdant_crds::{JobPhase, TrainingJob};

use super::workload::{
    evicted, has_quota_reservation, is_admitted, is_finished, original_template, queue_of,
};
use super::{is_suspended, queue_name};

/// The next step for a queued job.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Nothing to do until something changes.
    Nothing,
    /// Create the job's Workload.
    CreateWorkload,
    /// Wait for the job's pods to go (look again soon).
    AwaitPodsGone,
    /// Set the Workload's `Finished` condition.
    Finish {
        /// `Succeeded` or `Failed`.
        reason: &'static str,
        /// The job's status message.
        message: String,
    },
    /// Start the job with the admitted flavors (their names).
    Start {
        /// The ResourceFlavors of the admission.
        flavors: Vec<String>,
    },
    /// Suspend the job and restore its template's node selector and tolerations to the
    /// Workload's copy.
    Stop {
        /// Why, for the log and Event.
        why: String,
    },
    /// Clear the Workload's quota reservation after an eviction.
    ClearReservation {
        /// The `Evicted` condition's reason.
        reason: String,
        /// The `Evicted` condition's message.
        message: String,
    },
    /// Set the Workload's `spec.queueName` to the job's queue label.
    UpdateQueue(String),
    /// Make the job the controlling owner of its prebuilt Workload.
    AdoptWorkload,
}

/// Decides the next step for `job` (labelled with a queue) with its Workload, if any;
/// `pods_active`: whether any pod of the job exists.
pub fn decide(job: &TrainingJob, workload: Option<&Value>, pods_active: bool) -> Step {
    let Some(queue) = queue_name(job) else {
        return Step::Nothing;
    };
    let status = job.status.clone().unwrap_or_default();
    let prebuilt = super::workload::prebuilt(job).is_some();
    let Some(workload) = workload else {
        if prebuilt {
            return Step::Nothing;
        }
        return match (status.phase.is_finished(), pods_active) {
            (true, _) => Step::Nothing,
            (false, true) => Step::AwaitPodsGone,
            (false, false) => Step::CreateWorkload,
        };
    };
    if is_finished(workload) {
        return Step::Nothing;
    }
    if prebuilt && !super::workload::controlled_by(workload, job) {
        return Step::AdoptWorkload;
    }
    if status.phase.is_finished() {
        return Step::Finish {
            reason: match status.phase {
                JobPhase::Succeeded => "Succeeded",
                _ => "Failed",
            },
            message: status
                .message
                .unwrap_or_else(|| format!("the TrainingJob {}", status.phase)),
        };
    }
    let suspended = is_suspended(job);
    if let Some((reason, message)) = evicted(workload) {
        if !suspended {
            return Step::Stop {
                why: format!("the Workload was evicted ({reason}): {message}"),
            };
        }
        return match (has_quota_reservation(workload), pods_active) {
            (false, _) => Step::Nothing,
            (true, true) => Step::AwaitPodsGone,
            (true, false) => Step::ClearReservation {
                reason: reason.to_owned(),
                message: message.to_owned(),
            },
        };
    }
    if suspended {
        if is_admitted(workload) {
            return Step::Start {
                flavors: super::workload::admitted_flavors(workload),
            };
        }
        if queue_of(workload) != Some(queue) {
            return Step::UpdateQueue(queue.to_owned());
        }
        return Step::Nothing;
    }
    if !is_admitted(workload) {
        return Step::Stop {
            why: "not admitted by cluster queue".into(),
        };
    }
    Step::Nothing
}

/// The template's node selector and tolerations as the Workload holds them (before any
/// admission), for a stop.
pub fn restored(workload: &Value) -> super::podset::PodSetInfo {
    let spec = original_template(workload)
        .and_then(|t| t.spec)
        .unwrap_or_default();
    super::podset::PodSetInfo {
        node_selector: spec.node_selector.unwrap_or_default(),
        tolerations: spec.tolerations.unwrap_or_default(),
    }
}

#[cfg(test)]
#[path = "decide/tests.rs"]
mod tests;
