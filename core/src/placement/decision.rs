//! What the engine hands back: one decision per job per cycle.

use serde::{Deserialize, Serialize};

use super::reason::Reason;

/// The engine's verdict on one job for this cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `Job::id`.
    pub job: String,
    pub action: Action,
    pub reason: Reason,
    /// Human-readable explanation with the numbers behind it, for `status.message`.
    pub message: String,
}

/// What the controller should do with a job.
///
/// Pending and suspended jobs get `Place`, `Defer` or `Wait`; running jobs get `Suspend`,
/// `PowerCap`, `Uncap`, `Resize` (elastic ones) or `Keep`. Every job in the snapshot gets exactly one decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Bind replica `i` to `nodes[i]` (indices into `Snapshot::nodes`), all at `site`.
    Place {
        site: String,
        nodes: Vec<u32>,
        /// Share of the job's energy expected from renewables over its estimated run.
        expected_renewable_fraction: f64,
    },
    /// Do not start yet: greener power is expected at `until_s` (`None`: no window in the
    /// current forecast). The engine re-decides every cycle, so this is a forecast, not a
    /// promise.
    Defer {
        until_s: Option<i64>,
        /// The renewable fraction expected when starting at `until_s` (at `now_s` if `None`).
        expected_renewable_fraction: f64,
    },
    /// Not enough free GPUs (or they are reserved for the head of the queue).
    Wait,
    /// Delete the job's pods gracefully; it becomes `JobState::Suspended`.
    Suspend,
    /// Set every GPU of the job to `percent` of its default power limit.
    PowerCap { percent: u32 },
    /// Restore the default power limits.
    Uncap,
    /// Elastic job: run with one replica per entry of `nodes` (indices into
    /// `Snapshot::nodes`, in replica order). Growing appends replicas to the running
    /// ones' nodes; shrinking drops the highest indices (replica 0 always stays). The
    /// job stays at `site`.
    Resize { site: String, nodes: Vec<u32> },
    /// Leave the running job as it is.
    Keep,
}

impl Action {
    /// The nodes of a `Place`, else an empty slice.
    pub fn placed_nodes(&self) -> &[u32] {
        match self {
            Action::Place { nodes, .. } => nodes,
            _ => &[],
        }
    }
}
