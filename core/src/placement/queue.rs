//! Queue order: who is considered first, and who is shed first in a brown-out.

use std::cmp::{Ordering, Reverse};

use super::snapshot::Job;

/// The sort key of a job: priority (high first), then least slack (latest start − now;
/// no latest start = infinite slack), then age (older first), then id, so the order is
/// total and never depends on input order.
pub fn queue_key(job: &Job, now_s: i64) -> (Reverse<i32>, i64, i64, &str) {
    let slack_s = job
        .latest_start_s
        .map_or(i64::MAX, |t| t.saturating_sub(now_s));
    (
        Reverse(job.priority),
        slack_s,
        job.created_s,
        job.id.as_str(),
    )
}

/// Compares two jobs in queue order (`Less` = considered first).
pub fn queue_cmp(a: &Job, b: &Job, now_s: i64) -> Ordering {
    queue_key(a, now_s).cmp(&queue_key(b, now_s))
}

/// Indices of `jobs` selected by `keep`, in queue order.
pub fn ordered_indices(jobs: &[Job], now_s: i64, keep: impl Fn(&Job) -> bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..jobs.len()).filter(|&i| keep(&jobs[i])).collect();
    order.sort_by(|&a, &b| queue_cmp(&jobs[a], &jobs[b], now_s));
    order
}
