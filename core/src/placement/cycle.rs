//! One placement cycle: build the per-site picture, settle running jobs (brown-outs and
//! caps), then walk the queue once, in order.

use super::decision::Decision;
use super::queue::ordered_indices;
use super::snapshot::{EngineConfig, JobState, Snapshot};
use super::state::Cycle;
use super::{brownout, elastic, pending};

/// Decides, for every job in `snapshot`, what the controller should do now.
///
/// Returns exactly one [`Decision`] per job, in the order of `snapshot.jobs`: pending and
/// suspended jobs get `Place`, `Defer` or `Wait`; running jobs get `Suspend`, `PowerCap`,
/// `Uncap`, `Resize` (elastic ones) or `Keep`. The result depends only on the arguments (no clock, no randomness,
/// no hash order), so the live controller and the trace simulator agree.
///
/// # Guarantees
/// - A `Place` puts every replica of the gang on nodes of one site, and never more GPUs on
///   a node than it has free (allocatable − used − earlier placements of this cycle).
/// - Only schedulable nodes at a known site, within `allowed_nodes` and `allowed_sites`.
/// - At most one job (the head of the queue) holds a reservation; nothing placed in the
///   same cycle delays its reserved start (see docs/scheduling.md, "Backfilling").
pub fn run_cycle(snapshot: &Snapshot, config: &EngineConfig) -> Vec<Decision> {
    let mut cycle = Cycle::new(snapshot, config);
    brownout::decide_running(&mut cycle);
    let queue = ordered_indices(&snapshot.jobs, snapshot.now_s, |j| {
        matches!(j.state, JobState::Pending | JobState::Suspended)
    });
    for job_index in queue {
        let decision = pending::decide(&mut cycle, job_index);
        cycle.decisions[job_index] = Some(decision);
    }
    // Elastic jobs grow last, on what the queue left of GPUs and headroom.
    elastic::grow(&mut cycle);
    cycle.decisions.into_iter().flatten().collect()
}
