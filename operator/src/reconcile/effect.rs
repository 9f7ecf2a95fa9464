//! What a pass of the reconcile decides to do, as data: the [`Effect`]s, when to look
//! again, and the Events that follow from a change of status. Made by
//! [`transition`](super::transition), carried out by [`execute`](super::execute).

use std::time::Duration;

use verdant_crds::{JobPhase, TrainingJobStatus};

use crate::reason::Reason;

/// Something to do so that the world matches the new status.
///
/// An outcome lists its effects in the order of their [`Stage`]; the executor writes the
/// status between the effects that make it true and those that follow from it.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Delete every pod the job owns, gracefully.
    DeletePods {
        /// Why, for the log.
        why: String,
    },
    /// Drop the cycle's assumed placement of the job: it is void.
    ForgetAssumed,
    /// Delete these replica pods (the highest indices of a shrunk elastic job),
    /// gracefully.
    DeleteReplicas {
        /// The pods' names.
        pods: Vec<String>,
        /// Why, for the log.
        why: String,
    },
    /// Apply the headless Service, create the gang's missing pods (attempt `restart`),
    /// then bind every unbound one to its node.
    EnsureGang {
        /// The site.
        site: String,
        /// The node of each replica.
        nodes: Vec<String>,
        /// The attempt, as in `status.restarts`.
        restart: i32,
    },
    /// Delete the finished job: `ttlSecondsAfterFinished` has passed.
    DeleteJob {
        /// The TTL, for the log.
        ttl_s: i32,
    },
    /// Run a scheduling cycle soon: capacity was freed or a job waits for a decision.
    WakeScheduler,
    /// Publish an Event on the job (of the reason's type) and count the decision.
    Event {
        /// The reason.
        reason: Reason,
        /// The note.
        message: String,
        /// What was done: the new phase, or `Accepted` for a warning on creation.
        action: &'static str,
    },
}

/// When an effect happens, relative to the status write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Before the status is written: a status that says the pods are gone must not be
    /// written while they may stay.
    BeforeStatus,
    /// Right after it: the Events of the change it wrote, whatever fails next.
    Announce,
    /// After the Events: the placement is in the status before any pod of it exists.
    AfterStatus,
}

impl Effect {
    /// When this effect happens.
    pub fn stage(&self) -> Stage {
        match self {
            Effect::DeletePods { .. } | Effect::DeleteReplicas { .. } | Effect::ForgetAssumed => {
                Stage::BeforeStatus
            }
            Effect::Event { .. } => Stage::Announce,
            Effect::EnsureGang { .. } | Effect::DeleteJob { .. } | Effect::WakeScheduler => {
                Stage::AfterStatus
            }
        }
    }
}

/// When to look at the job again, unless something changes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// After this long.
    After(Duration),
    /// Only when the job or its pods change.
    AwaitChange,
}

impl Requeue {
    /// After `s` seconds.
    pub fn secs(s: u64) -> Requeue {
        Requeue::After(Duration::from_secs(s))
    }
}

/// The outcome of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The status the job should have.
    pub status: TrainingJobStatus,
    /// What to do, in order (see [`Effect`]).
    pub effects: Vec<Effect>,
    /// When to look again.
    pub requeue: Requeue,
    /// The gang is torn down because a replica or its node was lost (a restart, or the
    /// backoff limit): the reconcile then checks whether the namespace is being deleted.
    pub gang_lost: bool,
}

/// The Events for a change from `previous` to `status`: one for a change of phase, reason,
/// power cap or size (`Started` when the gang starts running), and a Warning when the
/// `DeadlineInPast` condition is new.
pub fn events(previous: &TrainingJobStatus, status: &TrainingJobStatus) -> Vec<Effect> {
    let mut events = Vec::new();
    // A resize changes the replicas of a placed job (a second shrink in a row keeps
    // phase and reason).
    let resized = matches!(
        (previous.replicas, status.replicas),
        (Some(before), Some(after)) if before != after
    );
    let changed = previous.phase != status.phase
        || previous.reason != status.reason
        || previous.power_cap_percent != status.power_cap_percent
        || resized;
    let reason = match (previous.phase, status.phase) {
        (JobPhase::Starting, JobPhase::Running) => Some(Reason::Started),
        // A reason Verdant does not define (written by someone else) gets no Event.
        _ => status.reason.as_deref().and_then(Reason::from_code),
    };
    if let (true, Some(reason)) = (changed, reason) {
        events.push(Effect::Event {
            reason,
            message: status.message.clone().unwrap_or_default(),
            action: status.phase.as_str(),
        });
    }
    let deadline = Reason::DeadlineInPast.as_str();
    let had = |s: &TrainingJobStatus| s.conditions.iter().any(|c| c.type_ == deadline);
    if let (false, Some(condition)) = (
        had(previous),
        status.conditions.iter().find(|c| c.type_ == deadline),
    ) {
        events.push(Effect::Event {
            reason: Reason::DeadlineInPast,
            message: condition.message.clone(),
            action: "Accepted",
        });
    }
    events
}
