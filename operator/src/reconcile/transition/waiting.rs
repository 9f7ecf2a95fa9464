//! A job waiting for a placement: the cycle's decision (a placement, a deferral, a
//! suspension, or why it waits), or none yet for a job just created.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use verdant_core::placement::Action;
use verdant_crds::JobPhase;

use super::{JobPlan, Pass, Reason, Requeue, status};

/// How long a new job may go without a status while the first scheduling cycle decides
/// it; after that it is written `Pending`/`Queued`.
pub const QUEUED_AFTER_S: i64 = 5;

impl Pass<'_> {
    /// A job waiting for a placement: apply the cycle's decision.
    pub(super) fn waiting(&mut self, plan: &JobPlan) -> Requeue {
        if let Some(placement) = &plan.assumed {
            // The placement goes into the status before any pod exists: if the operator
            // dies after writing it, it finishes this same gang after it restarts. The
            // assumed placement stays until the cache shows it, so later cycles see the
            // job as running.
            self.status.site = Some(placement.site.clone());
            self.status.nodes = placement.nodes.clone();
            self.status.expected_start_time = None;
            return self.start_gang(placement);
        }
        let Some(decision) = &plan.decision else {
            if self.status.reason.is_none() {
                if self.just_created() {
                    // The next cycle (a debounce away) decides it, and its decision is the
                    // first status: a `Queued` write now would only cost a status write and
                    // an Event on the way to the pods. Written if no decision came by then.
                    self.wake_scheduler();
                    self.unwritten = true;
                    return Requeue::secs(QUEUED_AFTER_S as u64);
                }
                self.set_phase(
                    JobPhase::Pending,
                    Reason::Queued,
                    "waiting for the next scheduling cycle".into(),
                );
            }
            self.wake_scheduler();
            return Requeue::secs(5);
        };
        // A suspended job stays Suspended until it is placed again.
        let suspended = self.status.phase == JobPhase::Suspended;
        let waiting_as = |otherwise| {
            if suspended {
                JobPhase::Suspended
            } else {
                otherwise
            }
        };
        let (reason, message) = (decision.reason.into(), decision.message.clone());
        match &decision.action {
            Action::Defer { until_s, .. } => {
                self.set_phase(waiting_as(JobPhase::Deferred), reason, message);
                self.status.expected_start_time = until_s
                    .and_then(|s| jiff::Timestamp::from_second(s).ok())
                    .map(Time);
            }
            Action::Suspend => {
                if self.gang.any_pod() {
                    self.delete_pods(&decision.message);
                }
                status::suspend(&mut self.status);
                self.set_phase(JobPhase::Suspended, reason, message);
            }
            _ => {
                self.set_phase(waiting_as(JobPhase::Pending), reason, message);
                self.status.expected_start_time = None;
            }
        }
        Requeue::secs(60)
    }

    /// Created less than [`QUEUED_AFTER_S`] ago (or of unknown age: no timestamp yet).
    fn just_created(&self) -> bool {
        let created = self.job.metadata.creation_timestamp.as_ref();
        created.is_none_or(|t| self.now.as_second() - t.0.as_second() < QUEUED_AFTER_S)
    }
}
