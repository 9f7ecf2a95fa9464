//! Gangs, best-fit packing, the head-of-queue reservation and backfilling.

use super::*;

fn immediate(
    id: &str,
    replicas: u32,
    gpus: u32,
    priority: i32,
    duration_s: i64,
    age_s: i64,
) -> Job {
    let mut j = job(id, replicas, gpus, Policy::Immediate);
    j.priority = priority;
    j.estimated_duration_s = Some(duration_s);
    j.created_s = NOW - age_s;
    j
}

pub fn deadlock() -> Snapshot {
    snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 0), node("s", 8, 0)],
        vec![
            immediate("ns/second", 2, 8, 0, HOUR, 60),
            immediate("ns/first", 2, 8, 0, HOUR, 120),
        ],
    )
}

#[test]
fn two_jobs_each_needing_the_whole_cluster_one_runs_the_other_waits_whole() {
    let d = run(&deadlock());
    let (_, nodes, _) = placed(find(&d, "ns/first"));
    assert_eq!(nodes, &[0, 1]);
    let second = find(&d, "ns/second");
    assert_eq!(
        (second.reason, &second.action),
        (Reason::WaitingForCapacity, &Action::Wait)
    );
    assert!(
        second
            .message
            .contains("head of queue: holds 16 GPUs on 2 node(s) at s from 13:00 UTC"),
        "{}",
        second.message
    );
}

#[test]
fn a_gang_is_never_split_across_sites() {
    let snap = snapshot(
        vec![site("a", &[100.0]), site("b", &[100.0])],
        vec![node("a", 8, 0), node("b", 8, 0)],
        vec![job("ns/wide", 2, 8, Policy::Immediate)],
    );
    assert_eq!(run(&snap)[0].reason, Reason::Unschedulable);
}

#[test]
fn an_unschedulable_job_is_told_which_of_its_sites_have_no_nodes() {
    let mut only_empty = job("ns/eval", 1, 4, Policy::Immediate);
    only_empty.allowed_sites = vec!["solar-a".into(), "wind-b".into()];
    let mut partly = job("ns/wide", 2, 8, Policy::Immediate);
    partly.allowed_sites = vec!["a".into(), "wind-b".into()];
    let snap = snapshot(
        vec![
            site("a", &[100.0]),
            site("solar-a", &[100.0]),
            site("wind-b", &[100.0]),
        ],
        vec![node("a", 8, 0)],
        vec![only_empty, partly],
    );
    let decisions = run(&snap);
    let eval = find(&decisions, "ns/eval");
    assert_eq!(eval.reason, Reason::Unschedulable);
    assert_eq!(
        eval.message,
        "no GPU node belongs to the job's sites (solar-a, wind-b): label nodes to match a site's spec.nodeSelector, or allow other sites in spec.sites"
    );
    let wide = find(&decisions, "ns/wide");
    assert!(
        wide.message.starts_with("needs 2×8 GPUs at one site")
            && wide.message.ends_with("; no GPU node belongs to wind-b"),
        "{}",
        wide.message
    );
}

/// Node 0 is busy until 14:00 with a running job; node 1 is free. The head needs both.
pub fn backfill_by_time() -> Snapshot {
    let r = immediate("ns/running", 1, 8, 0, 3 * HOUR, 0);
    snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 8), node("s", 8, 0)],
        vec![
            running(r, "s", vec![0], NOW - HOUR),
            immediate("ns/head", 2, 8, 10, HOUR, 0),
            immediate("ns/long", 1, 8, 0, 3 * HOUR, 600),
            immediate("ns/short", 1, 8, 0, HOUR, 60),
        ],
    )
}

#[test]
fn only_jobs_ending_before_the_reserved_start_backfill_the_heads_nodes() {
    let d = run(&backfill_by_time());
    let head = find(&d, "ns/head");
    assert_eq!(head.action, Action::Wait);
    assert!(
        head.message
            .contains("holds 16 GPUs on 2 node(s) at s from 14:00 UTC"),
        "{}",
        head.message
    );

    let long = find(&d, "ns/long");
    assert_eq!(
        (long.reason, &long.action),
        (Reason::ReservedForHeadOfQueue, &Action::Wait)
    );
    assert!(
        long.message
            .contains("ns/head holds 16 GPUs there from 14:00 UTC"),
        "{}",
        long.message
    );

    let short = find(&d, "ns/short");
    assert_eq!(placed(short).1, &[1]);
    assert!(
        short.message.contains("backfilled: ends 13:00 UTC"),
        "{}",
        short.message
    );
}

#[test]
fn long_jobs_may_use_what_the_head_leaves_over_on_reserved_nodes() {
    // The head (2×6) will take 6 GPUs on each node at 14:00; node 1 has 2 to spare.
    let r = immediate("ns/running", 1, 8, 0, 3 * HOUR, 0);
    let snap = snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 8), node("s", 8, 0)],
        vec![
            running(r, "s", vec![0], NOW - HOUR),
            immediate("ns/head", 2, 6, 10, HOUR, 0),
            immediate("ns/long-1", 1, 2, 0, 3 * HOUR, 300),
            immediate("ns/long-2", 1, 2, 0, 3 * HOUR, 200),
            immediate("ns/short", 1, 4, 0, HOUR, 100),
        ],
    );
    let d = run(&snap);
    assert_eq!(find(&d, "ns/head").reason, Reason::WaitingForCapacity);
    assert_eq!(placed(find(&d, "ns/long-1")).1, &[1]);
    assert_eq!(find(&d, "ns/long-2").reason, Reason::ReservedForHeadOfQueue);
    assert_eq!(placed(find(&d, "ns/short")).1, &[1]);
}

#[test]
fn only_the_first_blocked_job_reserves() {
    let mut snap = backfill_by_time();
    snap.jobs
        .push(immediate("ns/second-head", 2, 8, 9, HOUR, 0));
    let d = run(&snap);
    assert!(find(&d, "ns/head").message.contains("head of queue"));
    let second = find(&d, "ns/second-head");
    assert_eq!(second.reason, Reason::WaitingForCapacity);
    assert!(
        !second.message.contains("head of queue"),
        "{}",
        second.message
    );
}

/// A green-waiting head reserves renewable headroom as well as GPUs.
pub fn green_head() -> Snapshot {
    let mut head = job("ns/head", 1, 8, Policy::GreenPreferred);
    head.priority = 10;
    snapshot(
        vec![site("s", &[0.0, 0.0, 10.0, 10.0])],
        vec![node("s", 8, 0), node("s", 8, 0)],
        vec![
            head,
            immediate("ns/small-long", 1, 2, 0, 4 * HOUR, 300),
            immediate("ns/big-long", 1, 4, 0, 4 * HOUR, 200),
            immediate("ns/short", 1, 2, 0, HOUR, 100),
        ],
    )
}

#[test]
fn backfill_may_not_eat_the_green_headroom_the_head_waits_for() {
    let d = run(&green_head());
    let head = find(&d, "ns/head");
    assert_eq!(deferred(head).0, Some(NOW + 2 * HOUR));
    assert!(
        head.message.contains("and 8.0 kW of renewable headroom"),
        "{}",
        head.message
    );
    // 10 kW at 14:00: the head needs 8; a 2 kW job still leaves it fully green...
    assert_eq!(placed(find(&d, "ns/small-long")).1, &[1]);
    // ...a further 4 kW would cut it to 4/8 < 0.8.
    assert_eq!(
        find(&d, "ns/big-long").reason,
        Reason::ReservedForHeadOfQueue
    );
    // Ending at 13:00, this one cannot get in the way.
    assert_eq!(placed(find(&d, "ns/short")).0, "s");
}

// ---- Best fit ----

#[test]
fn best_fit_keeps_whole_nodes_free_for_big_gangs() {
    let snap = snapshot(
        vec![site("s", &[100.0])],
        vec![
            node("s", 8, 0),
            node("s", 8, 0),
            node("s", 8, 5),
            node("s", 8, 5),
        ],
        vec![
            immediate("ns/small", 2, 3, 0, HOUR, 120),
            immediate("ns/big", 2, 8, 0, HOUR, 60),
        ],
    );
    let d = run(&snap);
    assert_eq!(placed(find(&d, "ns/small")).1, &[2, 3]);
    assert_eq!(placed(find(&d, "ns/big")).1, &[0, 1]);
}

#[test]
fn best_fit_picks_the_fullest_node_that_still_fits_and_shares_nodes() {
    let snap = snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 0), node("s", 8, 4), node("s", 8, 6)],
        vec![
            immediate("ns/two", 1, 2, 0, HOUR, 300),
            immediate("ns/three", 1, 3, 0, HOUR, 200),
        ],
    );
    let d = run(&snap);
    assert_eq!(placed(find(&d, "ns/two")).1, &[2]);
    assert_eq!(placed(find(&d, "ns/three")).1, &[1]);

    let snap = snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 2), node("s", 8, 6)],
        vec![
            immediate("ns/pair", 2, 2, 0, HOUR, 0),
            immediate("ns/quad", 2, 2, 0, HOUR, 0),
        ],
    );
    let d = run(&snap);
    assert_eq!(
        placed(find(&d, "ns/pair")).1,
        &[1, 0],
        "free 2 first, then free 6"
    );
    assert_eq!(
        placed(find(&d, "ns/quad")).1,
        &[0, 0],
        "two replicas on the remaining 4"
    );
}

#[test]
fn no_node_is_over_committed_within_a_cycle() {
    let snap = snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 0), node("s", 8, 0)],
        (0..3)
            .map(|i| immediate(&format!("ns/j{i}"), 1, 8, 0, HOUR, 100 - i))
            .collect(),
    );
    let d = run(&snap);
    assert_eq!(placed(&d[0]).1, &[0]);
    assert_eq!(placed(&d[1]).1, &[1]);
    assert_eq!(d[2].action, Action::Wait);
}

// ---- Allowed nodes and sites ----

#[test]
fn allowed_nodes_and_sites_override_best_fit_and_headroom() {
    let mut pinned = immediate("ns/pinned", 1, 2, 0, HOUR, 0);
    pinned.allowed_nodes = Some(vec![2]);
    let mut site_b = immediate("ns/site-b", 1, 2, 0, HOUR, 0);
    site_b.allowed_sites = vec!["b".into()];
    let snap = snapshot(
        vec![site("a", &[100.0]), site("b", &[10.0])],
        vec![
            node("a", 8, 6),
            node("a", 8, 0),
            node("a", 8, 0),
            node("b", 8, 0),
        ],
        vec![pinned, site_b],
    );
    let d = run(&snap);
    assert_eq!(placed(find(&d, "ns/pinned")).1, &[2]);
    assert_eq!(placed(find(&d, "ns/site-b")).0, "b");
}

#[test]
fn a_job_pinned_to_busy_nodes_waits_even_if_others_are_free() {
    let mut pinned = immediate("ns/pinned", 1, 4, 0, HOUR, 0);
    pinned.allowed_nodes = Some(vec![0]);
    let snap = snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 6), node("s", 8, 0)],
        vec![pinned],
    );
    assert_eq!(run(&snap)[0].reason, Reason::WaitingForCapacity);
}
