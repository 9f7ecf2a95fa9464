//! A job queued in Kueue whose Workload is not admitted, or was evicted
//! ([`crate::kueue::waiting_for_admission`]): no pods, and a status that says why.

use verdant_crds::JobPhase;

use super::{Effect, Pass, Reason, Requeue, status};

impl Pass<'_> {
    /// Pending (or Suspended, if it ran) with `WaitingForKueue`, its pods deleted
    /// gracefully.
    pub(super) fn waiting_for_kueue(&mut self, queue: &str) -> Requeue {
        if self.gang.any_pod() {
            self.delete_pods("Kueue has not admitted the job, or evicted it");
        }
        let ran = matches!(
            self.status.phase,
            JobPhase::Starting | JobPhase::Running | JobPhase::Suspended
        );
        let phase = if ran {
            JobPhase::Suspended
        } else {
            JobPhase::Pending
        };
        if !(self.status.phase == phase && self.reason_is(Reason::WaitingForKueue)) {
            if ran {
                status::suspend(&mut self.status);
            }
            self.set_phase(
                phase,
                Reason::WaitingForKueue,
                format!(
                    "waiting for Kueue admission in queue {queue} (Workload {}): no pods until Kueue admits it",
                    crate::kueue::workload::name(self.job)
                ),
            );
            self.effects.push(Effect::ForgetAssumed);
        }
        Requeue::AwaitChange
    }
}
