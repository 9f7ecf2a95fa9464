//! Queue order: priority, then slack, then age, then id.

use super::*;

/// One free 8-GPU node and the given jobs, each wanting all of it.
fn contest(jobs: Vec<Job>) -> Vec<Decision> {
    run(&snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 0)],
        jobs,
    ))
}

fn winner(decisions: &[Decision]) -> &str {
    let winners: Vec<&str> = decisions
        .iter()
        .filter(|d| matches!(d.action, Action::Place { .. }))
        .map(|d| d.job.as_str())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one job fits: {decisions:?}");
    winners[0]
}

#[test]
fn higher_priority_goes_first_even_if_younger() {
    let mut old = job("ns/old", 1, 8, Policy::Immediate);
    old.created_s = NOW - 10 * HOUR;
    let mut urgent = job("ns/urgent", 1, 8, Policy::Immediate);
    urgent.priority = 5;
    assert_eq!(winner(&contest(vec![old, urgent])), "ns/urgent");
}

#[test]
fn among_equal_priority_least_slack_goes_first() {
    let mut relaxed = job("ns/relaxed", 1, 8, Policy::Immediate);
    relaxed.latest_start_s = Some(NOW + 5 * HOUR);
    relaxed.created_s = NOW - 10 * HOUR;
    let mut tight = job("ns/tight", 1, 8, Policy::Immediate);
    tight.latest_start_s = Some(NOW + HOUR);
    let unbounded = job("ns/unbounded", 1, 8, Policy::Immediate);
    assert_eq!(
        winner(&contest(vec![relaxed, unbounded, tight])),
        "ns/tight"
    );
}

#[test]
fn then_older_first_then_id() {
    let mut young = job("ns/a-young", 1, 8, Policy::Immediate);
    young.created_s = NOW - 60;
    let mut old = job("ns/z-old", 1, 8, Policy::Immediate);
    old.created_s = NOW - 600;
    assert_eq!(winner(&contest(vec![young, old])), "ns/z-old");
    assert_eq!(
        winner(&contest(vec![
            job("ns/b", 1, 8, Policy::Immediate),
            job("ns/a", 1, 8, Policy::Immediate)
        ])),
        "ns/a"
    );
}

#[test]
fn queue_cmp_is_a_total_order_matching_the_documented_keys() {
    let mut a = job("ns/a", 1, 1, Policy::Immediate);
    let mut b = job("ns/b", 1, 1, Policy::Immediate);
    assert!(queue_cmp(&a, &b, NOW).is_lt(), "id breaks the last tie");
    b.created_s -= 1;
    assert!(queue_cmp(&a, &b, NOW).is_gt(), "older first");
    a.latest_start_s = Some(NOW + 10 * HOUR);
    assert!(
        queue_cmp(&a, &b, NOW).is_lt(),
        "finite slack before infinite"
    );
    b.priority = 1;
    assert!(queue_cmp(&a, &b, NOW).is_gt(), "priority first");
}
