//! What the last scheduling cycle decided, shared between the cycle and the reconciles.
//!
//! Nothing here is the source of truth: every cycle re-derives it from the cluster. The
//! `assumed` placements bridge the moment between a decision and the job's status write
//! (and the cache seeing it), so no two cycles hand out the same GPUs.

use std::collections::HashMap;
use std::sync::Mutex;

use verdant_core::placement::Decision;

use crate::snapshot::Assumed;

/// The shared plan.
#[derive(Default)]
pub struct Plan {
    inner: Mutex<PlanState>,
}

/// The plan's contents.
#[derive(Default, Clone)]
pub struct PlanState {
    /// The last decision for each job, by `namespace/name`.
    pub decisions: HashMap<String, Decision>,
    /// Placements decided and not yet visible in the job's cached status.
    pub assumed: HashMap<String, Assumed>,
    /// Unix time of the last completed cycle.
    pub last_cycle_s: Option<i64>,
}

impl Plan {
    /// Runs `f` with the plan locked. Keep it short: the lock is shared with reconciles.
    pub fn with<T>(&self, f: impl FnOnce(&mut PlanState) -> T) -> T {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// The decision and the assumed placement for a job.
    pub fn for_job(&self, id: &str) -> (Option<Decision>, Option<Assumed>) {
        self.with(|p| (p.decisions.get(id).cloned(), p.assumed.get(id).cloned()))
    }

    /// Forgets the assumed placement of a job (its status now carries it, or it failed).
    pub fn forget_assumed(&self, id: &str) {
        self.with(|p| p.assumed.remove(id));
    }
}
