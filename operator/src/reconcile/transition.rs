//! The TrainingJob state machine, pure: from what is observed (the job, its pods, the
//! nodes) and what the scheduling cycle decided, the status the job should have and the
//! effects that make it so. No client, no clock, no I/O: the executor
//! ([`super::execute`]) performs the effects and writes the status.
//!
//! # Expected flow
//! Pending/Deferred → (the cycle decides Place, an assumed placement) → Starting with site
//! and nodes, and [`Effect::EnsureGang`] → Running when every replica runs → Succeeded
//! when every replica succeeded. A failed replica or lost node tears the whole gang down
//! ([`Effect::DeletePods`]) and places it again (`restarts`++) up to `backoffLimit`, then
//! Failed. `runPolicy.suspend`, the engine's `Suspend`, and `activeDeadlineSeconds` delete
//! the pods too; a finished job is deleted once `ttlSecondsAfterFinished` has passed.
//! An elastic job's resize (an assumed placement of the running job on other nodes at
//! its site) grows it (Running → Starting with the new nodes, [`Effect::EnsureGang`]) or
//! shrinks it (its highest replicas deleted, [`Effect::DeleteReplicas`], still Running).
//!
//! # Guarantees
//! - One outcome per pass: a new status (written once, if it changed) and the effects in
//!   the order they must happen (see [`Effect`]).
//! - One Event per change of phase, reason, power cap or size, and one Warning the first time a
//!   deadline is seen in the past: derived from the observed and the new status alone
//!   ([`events`]) and published right after the status is written, so a retried pass
//!   publishes nothing twice.
//!
//! - A gang whose pods vanish because its namespace is being deleted is not restarted
//!   ([`Observed::namespace_terminating`]): the job is deleted after them.
//!
//! # Assumptions
//! The observed gang is of the current attempt (`status.restarts`); pods still missing
//! from the cache count as lost only once the gang had fully started.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use verdant_core::placement::{Action, Decision};
use verdant_crds::{JobPhase, TrainingJob, TrainingJobStatus};

use super::effect::{Effect, Outcome, Requeue, events};
use crate::lifecycle::Gang;
use crate::reason::{EngineReason, Reason};
use crate::snapshot::Assumed;
use crate::status::{self, all_replicas, clear_placement};
use crate::workload::pod_name;

/// What the reconcile observed of one job.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The job, with its status as cached.
    pub job: &'a TrainingJob,
    /// What its pods say.
    pub gang: &'a Gang,
    /// The names of the nodes that exist.
    pub nodes: &'a BTreeSet<String>,
    /// The job's namespace is being deleted: pods that vanish are its teardown, not a
    /// lost replica, and the job goes soon after them (its finalizer cleans up).
    pub namespace_terminating: bool,
}

/// What the last scheduling cycle said about the job.
#[derive(Clone, Debug, Default)]
pub struct JobPlan {
    /// The cycle's decision, if the job was in its view.
    pub decision: Option<Decision>,
    /// A placement decided and not yet in the job's cached status.
    pub assumed: Option<Assumed>,
}

/// Decides the next status of a job and the effects that make it true.
pub fn transition(observed: &Observed<'_>, plan: &JobPlan, now: jiff::Timestamp) -> Outcome {
    let previous = observed.job.status.clone().unwrap_or_default();
    let mut pass = Pass::new(observed, previous.clone(), now);
    pass.status.observed_generation = observed.job.metadata.generation;
    status::warn_deadline_in_past(&mut pass.status, observed.job, now);
    let requeue = pass.step(plan);
    pass.finish(&previous, requeue)
}

/// The API server rejected the job's pods or Service while `attempted` was carried out:
/// the job can never run as specified. It fails, its pods go, and the engine stops
/// counting it. `attempted` is the status the attempt wrote: the Events are those from it
/// to the failed one.
pub fn rejected(
    observed: &Observed<'_>,
    attempted: &TrainingJobStatus,
    object: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Outcome {
    let previous = attempted.clone();
    let mut pass = Pass::new(observed, attempted.clone(), now);
    pass.delete_pods("the API server rejected the job's workload");
    pass.effects.push(Effect::ForgetAssumed);
    clear_placement(&mut pass.status);
    pass.set_phase(
        JobPhase::Failed,
        Reason::FailedCreate,
        format!(
            "the API server rejected {object}: {message}; the job cannot run as specified: fix spec.template and create it again"
        ),
    );
    let requeue = pass.finished();
    pass.finish(&previous, requeue)
}

/// One pass in the making: the status as it becomes, and the effects so far.
struct Pass<'a> {
    job: &'a TrainingJob,
    gang: &'a Gang,
    nodes: &'a BTreeSet<String>,
    now: jiff::Timestamp,
    status: TrainingJobStatus,
    effects: Vec<Effect>,
    namespace_terminating: bool,
    gang_lost: bool,
    /// Nothing to write: the status stays as it is (a job the first cycle has not yet
    /// decided).
    unwritten: bool,
}

impl<'a> Pass<'a> {
    fn new(observed: &Observed<'a>, status: TrainingJobStatus, now: jiff::Timestamp) -> Self {
        Pass {
            job: observed.job,
            gang: observed.gang,
            nodes: observed.nodes,
            now,
            status,
            effects: Vec::new(),
            namespace_terminating: observed.namespace_terminating,
            gang_lost: false,
            unwritten: false,
        }
    }

    fn finish(mut self, previous: &TrainingJobStatus, requeue: Requeue) -> Outcome {
        // A status left unwritten stays as it is, size included (an elastic job's would
        // otherwise gain its bounds, and be written for them alone).
        match self.unwritten {
            true => self.status = previous.clone(),
            false => status::set_size(&mut self.status, self.job),
        }
        self.effects.extend(events(previous, &self.status));
        // Stable: within a stage, in the order decided.
        self.effects.sort_by_key(Effect::stage);
        Outcome {
            status: self.status,
            effects: self.effects,
            requeue,
            gang_lost: self.gang_lost,
        }
    }

    fn set_phase(&mut self, phase: JobPhase, reason: Reason, message: String) {
        let generation = self.job.metadata.generation;
        status::set_phase(
            &mut self.status,
            phase,
            reason,
            message,
            generation,
            self.now,
        );
    }

    /// Starting: the pods of `placement` (a new gang, or the replicas a grow adds) are
    /// created and bound, all at once.
    fn start_gang(&mut self, placement: &Assumed) -> Requeue {
        self.set_phase(
            JobPhase::Starting,
            placement.reason.into(),
            placement.message.clone(),
        );
        self.effects.push(Effect::EnsureGang {
            site: placement.site.clone(),
            nodes: placement.nodes.clone(),
            restart: self.status.restarts,
        });
        Requeue::secs(1)
    }

    fn reason_is(&self, reason: Reason) -> bool {
        self.status.reason.as_deref() == Some(reason.as_str())
    }

    fn delete_pods(&mut self, why: &str) {
        self.effects.push(Effect::DeletePods {
            why: why.to_owned(),
        });
    }

    fn wake_scheduler(&mut self) {
        self.effects.push(Effect::WakeScheduler);
    }

    fn deadline(&self) -> Option<jiff::Timestamp> {
        let limit_s = self.job.spec.run_policy.active_deadline_seconds;
        status::active_deadline_at(limit_s, &self.status)
    }

    /// The job just finished: its capacity is free, and its TTL starts.
    fn finished(&mut self) -> Requeue {
        self.status.completion_time = Some(Time(self.now));
        self.wake_scheduler();
        self.ttl()
    }

    /// Deletes a finished job once its TTL has passed.
    fn ttl(&mut self) -> Requeue {
        let (Some(ttl_s), Some(done)) = (
            self.job.spec.run_policy.ttl_seconds_after_finished,
            &self.status.completion_time,
        ) else {
            return Requeue::AwaitChange;
        };
        let left_s = done.0.as_second() + i64::from(ttl_s) - self.now.as_second();
        if left_s > 0 {
            return Requeue::secs(left_s as u64);
        }
        self.effects.push(Effect::DeleteJob { ttl_s });
        Requeue::AwaitChange
    }

    fn step(&mut self, plan: &JobPlan) -> Requeue {
        if self.status.phase.is_finished() {
            if self.status.phase == JobPhase::Failed && self.gang.any_unfinished() {
                self.delete_pods("the job failed");
            }
            return self.ttl();
        }
        if let Some(queue) = crate::kueue::waiting_for_admission(self.job) {
            return self.waiting_for_kueue(queue);
        }
        if self.job.spec.run_policy.suspend {
            return self.suspended_by_user();
        }
        if self.status.phase == JobPhase::Suspended && self.reason_is(Reason::SuspendedByUser) {
            // Still Suspended: the engine queues it as a suspended job and resumes it
            // (`Resumed`) under its policy, like a job suspended for renewables.
            self.set_phase(
                JobPhase::Suspended,
                Reason::Resuming,
                "runPolicy.suspend is false again: waiting for the next scheduling cycle to resume the job".into(),
            );
            self.wake_scheduler();
            return Requeue::secs(2);
        }
        if let Some(deadline) = self.deadline()
            && self.now > deadline
        {
            return self.deadline_exceeded();
        }
        match self.status.phase {
            JobPhase::Starting | JobPhase::Running => self.placed(plan),
            JobPhase::Pending | JobPhase::Deferred | JobPhase::Suspended => self.waiting(plan),
            JobPhase::Succeeded | JobPhase::Failed => Requeue::AwaitChange,
        }
    }

    fn suspended_by_user(&mut self) -> Requeue {
        if self.gang.any_pod() {
            self.delete_pods("runPolicy.suspend is true");
        }
        if !(self.status.phase == JobPhase::Suspended && self.reason_is(Reason::SuspendedByUser)) {
            self.set_phase(
                JobPhase::Suspended,
                Reason::SuspendedByUser,
                "runPolicy.suspend is true: pods deleted gracefully (the template's grace period lets training checkpoint); set it to false to resume".into(),
            );
            status::suspend(&mut self.status);
            self.effects.push(Effect::ForgetAssumed);
        }
        Requeue::AwaitChange
    }

    fn deadline_exceeded(&mut self) -> Requeue {
        let started = self.status.start_time.as_ref().map(|t| t.0);
        let limit_s = self.job.spec.run_policy.active_deadline_seconds;
        self.delete_pods("activeDeadlineSeconds exceeded");
        self.set_phase(
            JobPhase::Failed,
            Reason::DeadlineExceeded,
            format!(
                "the job ran longer than runPolicy.activeDeadlineSeconds ({} s) since it last started running at {}; pods deleted",
                limit_s.unwrap_or_default(),
                started.map(|t| t.to_string()).unwrap_or_default()
            ),
        );
        self.finished()
    }

    /// A placed gang: restart it if broken, finish it, apply power decisions, complete
    /// its start.
    fn placed(&mut self, plan: &JobPlan) -> Requeue {
        let decision = plan.decision.as_ref();
        let nodes = self.nodes;
        let node_exists = |name: &str| nodes.contains(name);
        let planned_node_lost = self.status.nodes.iter().find(|n| !node_exists(n));
        let problem = self
            .gang
            .problem(self.status.phase == JobPhase::Running, node_exists)
            .map(|p| p.describe())
            .or_else(|| planned_node_lost.map(|n| format!("planned node {n} disappeared")));
        if let Some(problem) = problem {
            if self.namespace_terminating {
                // Its teardown: the job is deleted next, nothing to restart.
                return Requeue::AwaitChange;
            }
            return self.restart(&problem);
        }
        if self.gang.all_succeeded() {
            let site = self.status.site.clone().unwrap_or_default();
            let replicas = all_replicas(self.gang.replicas.len());
            self.set_phase(
                JobPhase::Succeeded,
                Reason::Completed,
                format!("{replicas} completed at {site}"),
            );
            return self.finished();
        }
        if let Some(decision) = decision {
            match &decision.action {
                // The engine suspends resumable (interruptible or elastic) jobs only:
                // GreenOnly ones in a brown-out, GreenPreferred ones with slack in a
                // brown-out or to make room for a job at its latest start.
                Action::Suspend if self.job.spec.resumable() => {
                    self.delete_pods(&decision.message);
                    status::suspend(&mut self.status);
                    self.set_phase(
                        JobPhase::Suspended,
                        decision.reason.into(),
                        decision.message.clone(),
                    );
                    self.wake_scheduler();
                    return Requeue::secs(30);
                }
                _ => status::apply_power_decision(&mut self.status, decision),
            }
        }
        if let Some(target) = self.resize_target(plan.assumed.as_ref()) {
            return self.resize(target);
        }
        if self.status.phase == JobPhase::Starting {
            return self.starting();
        }
        Requeue::After(status::next_check(self.deadline(), self.now))
    }

    /// The resize the cycle decided for this running elastic job, if any: an assumed
    /// placement at the job's site, on other nodes, keeping replica 0's.
    fn resize_target<'p>(&self, assumed: Option<&'p Assumed>) -> Option<&'p Assumed> {
        let assumed = assumed?;
        let status = &self.status;
        let resizable = self.job.spec.elastic.is_some()
            && status.phase == JobPhase::Running
            && status.site.as_deref() == Some(assumed.site.as_str())
            && !assumed.nodes.is_empty()
            && assumed.nodes.first() == status.nodes.first()
            && assumed.nodes != status.nodes;
        resizable.then_some(assumed)
    }

    /// Grows (the new replicas are created and bound, all at once, as a gang starts) or
    /// shrinks (the highest indices are deleted) a running elastic job.
    fn resize(&mut self, target: &Assumed) -> Requeue {
        let (from, to) = (self.status.nodes.len(), target.nodes.len());
        self.status.nodes = target.nodes.clone();
        self.status.last_resize_time = Some(Time(self.now));
        if to < from {
            let name = self.job.metadata.name.clone().unwrap_or_default();
            self.effects.push(Effect::DeleteReplicas {
                pods: (to..from).map(|i| pod_name(&name, i as u32)).collect(),
                why: target.message.clone(),
            });
            self.set_phase(
                JobPhase::Running,
                target.reason.into(),
                target.message.clone(),
            );
            // Their GPUs are free once the pods are gone.
            self.wake_scheduler();
            return Requeue::secs(5);
        }
        self.start_gang(target)
    }

    /// NCCL does not survive a lost rank: the whole gang goes, and is placed again while
    /// `backoffLimit` allows.
    fn restart(&mut self, problem: &str) -> Requeue {
        self.gang_lost = true;
        self.delete_pods(problem);
        self.effects.push(Effect::ForgetAssumed);
        clear_placement(&mut self.status);
        let limit = self.job.spec.run_policy.backoff_limit;
        let restarts = self.status.restarts;
        if restarts >= limit {
            self.set_phase(
                JobPhase::Failed,
                Reason::BackoffLimitExceeded,
                format!(
                    "{problem}; the gang was already restarted {restarts} time(s), runPolicy.backoffLimit is {limit}"
                ),
            );
            return self.finished();
        }
        self.status.restarts += 1;
        self.set_phase(
            JobPhase::Pending,
            Reason::GangRestart,
            format!(
                "{problem}; NCCL cannot survive a lost rank, so the whole gang was torn down and will be placed again (restart {} of at most {limit})",
                restarts + 1
            ),
        );
        self.wake_scheduler();
        Requeue::secs(2)
    }

    /// A gang that is starting: make sure every pod exists and is bound; Running once
    /// every replica runs.
    fn starting(&mut self) -> Requeue {
        let site = self.status.site.clone().unwrap_or_default();
        self.effects.push(Effect::EnsureGang {
            site: site.clone(),
            nodes: self.status.nodes.clone(),
            restart: self.status.restarts,
        });
        if !self.gang.all_running() {
            return Requeue::secs(2);
        }
        status::mark_running(&mut self.status, self.now);
        let reason = self
            .status
            .reason
            .as_deref()
            .and_then(Reason::from_code)
            .unwrap_or(Reason::Engine(EngineReason::Running));
        let message = format!(
            "{} running at {site}; {}",
            all_replicas(self.gang.replicas.len()),
            self.status.message.clone().unwrap_or_default()
        );
        self.set_phase(JobPhase::Running, reason, message);
        Requeue::After(status::next_check(self.deadline(), self.now))
    }
}

mod queued;
#[cfg(test)]
mod tests;
mod waiting;
