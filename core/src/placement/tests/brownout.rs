//! Running jobs under a brown-out: caps, suspensions after grace, cap lifts.

use super::*;

/// A running job at site "s" on node `node`, started an hour ago, 3 hours long.
fn running_job(id: &str, gpus: u32, policy: Policy, priority: i32, node: u32) -> Job {
    let mut j = job(id, 1, gpus, policy);
    j.priority = priority;
    j.estimated_duration_s = Some(3 * HOUR);
    running(j, "s", vec![node], NOW - HOUR)
}

fn cappable(mut j: Job, min_percent: u32) -> Job {
    j.power_cap_min_percent = Some(min_percent);
    j
}

fn brownout_site(kw: f64, negative_since_s: Option<i64>) -> Site {
    let mut s = site("s", &[kw, kw, kw, kw]);
    s.headroom_negative_since_s = negative_since_s;
    s
}

pub fn capping() -> Snapshot {
    // 16 kW drawn, 10 kW of supply: 6 kW short = 37.5 % of the job.
    snapshot(
        vec![brownout_site(10.0, Some(NOW - 60))],
        vec![node("s", 16, 16)],
        vec![cappable(
            running_job("ns/train", 16, Policy::Immediate, 0, 0),
            50,
        )],
    )
}

#[test]
fn power_cap_closes_the_gap_with_the_smallest_whole_percent() {
    let d = run(&capping());
    assert_eq!(d[0].action, Action::PowerCap { percent: 62 });
    assert_eq!(d[0].reason, Reason::PowerCapped);
    assert!(
        d[0].message.contains("headroom at s is -6.0 kW"),
        "{}",
        d[0].message
    );
    assert!(
        d[0].message.contains("which closes the gap"),
        "{}",
        d[0].message
    );
}

#[test]
fn power_cap_never_goes_below_the_jobs_minimum() {
    let mut snap = capping();
    snap.jobs[0].power_cap_min_percent = Some(80);
    let d = run(&snap);
    assert_eq!(d[0].action, Action::PowerCap { percent: 80 });
    assert!(
        d[0].message.contains("2.8 kW still short"),
        "{}",
        d[0].message
    );
}

fn two_green_only(negative_since_s: Option<i64>) -> Snapshot {
    let mut low = running_job("ns/low", 8, Policy::GreenOnly, 0, 0);
    low.interruptible = true;
    let mut high = running_job("ns/high", 8, Policy::GreenOnly, 5, 1);
    high.interruptible = true;
    snapshot(
        vec![brownout_site(10.0, negative_since_s)],
        vec![node("s", 8, 8), node("s", 8, 8)],
        vec![high, low],
    )
}

pub fn suspension() -> Snapshot {
    two_green_only(Some(NOW - 700))
}

#[test]
fn after_the_grace_period_only_the_lowest_ordered_green_only_jobs_needed_are_suspended() {
    let d = run(&suspension());
    let low = find(&d, "ns/low");
    assert_eq!(
        (&low.action, low.reason),
        (&Action::Suspend, Reason::SuspendedForRenewables)
    );
    assert!(
        low.message
            .contains("negative since 11:48 UTC (11m ≥ 10m grace)"),
        "{}",
        low.message
    );
    assert!(low.message.contains("6.0 kW short"), "{}", low.message);
    let high = find(&d, "ns/high");
    assert_eq!(
        (&high.action, high.reason),
        (&Action::Keep, Reason::Running)
    );
}

#[test]
fn within_the_grace_period_nothing_is_suspended() {
    let d = run(&two_green_only(Some(NOW - 100)));
    for d in &d {
        assert_eq!(d.action, Action::Keep);
        assert!(
            d.message
                .contains("negative since 11:58 UTC, suspension possible from 12:08 UTC"),
            "{}",
            d.message
        );
    }
}

#[test]
fn suspension_stops_where_capping_can_close_the_rest() {
    // 25 kW on 13 kW: 12 short; capping the Immediate job to 50 % saves 4, so one
    // GreenOnly suspension (8) plus the cap close it; the second GreenOnly job and the
    // non-interruptible one (lowest of all) keep running.
    let mut snap = two_green_only(Some(NOW - 3600));
    snap.sites[0] = brownout_site(13.0, Some(NOW - 3600)); // 25 kW drawn: 12 short
    snap.nodes.push(node("s", 8, 8));
    snap.nodes.push(node("s", 8, 1));
    snap.jobs.push(cappable(
        running_job("ns/flex", 8, Policy::Immediate, 9, 2),
        50,
    ));
    let mut stubborn = running_job("ns/stubborn", 1, Policy::GreenOnly, -5, 3);
    stubborn.interruptible = false;
    snap.jobs.push(stubborn);
    let d = run(&snap);
    assert_eq!(
        find(&d, "ns/stubborn").action,
        Action::Keep,
        "not interruptible"
    );
    assert_eq!(find(&d, "ns/low").action, Action::Suspend);
    assert_eq!(find(&d, "ns/high").action, Action::Keep);
    assert_eq!(find(&d, "ns/flex").action, Action::PowerCap { percent: 50 });
}

#[test]
fn interruptible_green_preferred_jobs_are_suspended_only_while_their_slack_lasts() {
    // 16 kW drawn on 10 kW past the grace period. `roomy` may start as late as 3 hours
    // from now, `tight` in 30 minutes, `plain` is not interruptible: only `roomy` stops.
    let mut roomy = running_job("ns/roomy", 8, Policy::GreenPreferred, 0, 0);
    roomy.interruptible = true;
    roomy.latest_start_s = Some(NOW + 3 * HOUR);
    let mut tight = running_job("ns/tight", 4, Policy::GreenPreferred, 0, 1);
    tight.interruptible = true;
    tight.latest_start_s = Some(NOW + HOUR / 2);
    let mut plain = running_job("ns/plain", 4, Policy::GreenPreferred, 0, 1);
    plain.latest_start_s = Some(NOW + 3 * HOUR);
    let snap = snapshot(
        vec![brownout_site(10.0, Some(NOW - 700))],
        vec![node("s", 8, 8), node("s", 8, 8)],
        vec![roomy, tight, plain],
    );
    let d = run(&snap);
    assert_eq!(
        (&find(&d, "ns/roomy").action, find(&d, "ns/roomy").reason),
        (&Action::Suspend, Reason::SuspendedForRenewables)
    );
    assert_eq!(
        find(&d, "ns/tight").action,
        Action::Keep,
        "too little slack"
    );
    assert_eq!(
        find(&d, "ns/plain").action,
        Action::Keep,
        "not interruptible"
    );
    // Without a latest start, nothing bounds the wait: never suspended.
    let mut no_deadline = snap.clone();
    no_deadline.jobs[0].latest_start_s = None;
    assert_eq!(find(&run(&no_deadline), "ns/roomy").action, Action::Keep);
}

#[test]
fn an_interruptible_job_with_slack_starts_only_on_headroom_that_covers_it() {
    // 8 kW job, 5 kW of sun now, 20 kW from 13:00; latest start at 16:00. A plain
    // GreenPreferred job would start now (5 kW for the first hour, then 20: 0.8 over 2 h
    // reaches its 0.6 threshold). An interruptible one would be suspended at once, so it
    // waits for headroom that covers it, like a GreenOnly job.
    let mut j = job("ns/ckpt", 1, 8, Policy::GreenPreferred);
    j.estimated_duration_s = Some(2 * HOUR);
    j.min_renewable_fraction = 0.6;
    j.latest_start_s = Some(NOW + 4 * HOUR);
    let snap = snapshot(
        vec![site("s", &[5.0, 20.0, 20.0, 20.0, 20.0])],
        vec![node("s", 8, 0)],
        vec![j.clone()],
    );
    assert_eq!(run(&snap)[0].reason, Reason::PlacedGreen);
    let mut interruptible = snap.clone();
    interruptible.jobs[0].interruptible = true;
    let d = run(&interruptible);
    assert_eq!(
        d[0].reason,
        Reason::DeferredForRenewables,
        "{}",
        d[0].message
    );
    assert_eq!(deferred(&d[0]).0, Some(NOW + HOUR));
    // Within the hour before its latest start, the usual rules apply again.
    interruptible.jobs[0].latest_start_s = Some(NOW + HOUR / 2);
    assert_eq!(run(&interruptible)[0].reason, Reason::PlacedGreen);
}

/// Two full nodes: `roomy` (interruptible, latest start 5 h away) on node 0, `stuck`
/// (not interruptible) on node 1. `due` needs 8 GPUs and its latest start has come.
pub fn make_room() -> Snapshot {
    let mut roomy = running_job("ns/roomy", 8, Policy::GreenPreferred, 0, 0);
    roomy.interruptible = true;
    roomy.latest_start_s = Some(NOW + 5 * HOUR);
    let stuck = running_job("ns/stuck", 8, Policy::GreenPreferred, 0, 1);
    let mut due = job("ns/due", 1, 8, Policy::GreenPreferred);
    due.latest_start_s = Some(NOW);
    snapshot(
        vec![site("s", &[100.0, 100.0, 100.0, 100.0])],
        vec![node("s", 8, 8), node("s", 8, 8)],
        vec![roomy, stuck, due],
    )
}

#[test]
fn a_job_at_its_latest_start_has_interruptible_jobs_suspended_to_make_room() {
    let snap = make_room();
    let d = run(&snap);
    let roomy = find(&d, "ns/roomy");
    assert_eq!(
        (&roomy.action, roomy.reason),
        (&Action::Suspend, Reason::Suspended)
    );
    assert!(
        roomy.message.contains("make room for ns/due"),
        "{}",
        roomy.message
    );
    assert_eq!(find(&d, "ns/stuck").action, Action::Keep);
    let due = find(&d, "ns/due");
    assert_eq!(
        (&due.action, due.reason),
        (&Action::Wait, Reason::WaitingForCapacity)
    );
    assert!(
        due.message.contains("suspending ns/roomy"),
        "{}",
        due.message
    );

    // Nothing to suspend (no slack left): the job just waits.
    let mut tight = snap.clone();
    tight.jobs[0].latest_start_s = Some(NOW + HOUR / 2);
    let d = run(&tight);
    assert_eq!(find(&d, "ns/roomy").action, Action::Keep);
    assert_eq!(find(&d, "ns/due").reason, Reason::WaitingForCapacity);
    assert!(!find(&d, "ns/due").message.contains("suspending"));
}

#[test]
fn immediate_jobs_are_never_suspended() {
    let mut snap = capping();
    snap.jobs[0].power_cap_min_percent = None;
    snap.sites[0].headroom_negative_since_s = Some(NOW - 10 * HOUR);
    let d = run(&snap);
    assert_eq!(
        (&d[0].action, d[0].reason),
        (&Action::Keep, Reason::Running)
    );
    assert!(
        d[0].message.contains("site headroom -6.0 kW"),
        "{}",
        d[0].message
    );
}

fn capped_at_half(supply_kw: f64) -> Snapshot {
    // Uncapped 8 kW, drawing 4 kW at 50 %. Margin: 10 % of 8 kW = 0.8 kW.
    let mut j = cappable(
        running_job("ns/capped", 8, Policy::GreenPreferred, 0, 0),
        50,
    );
    j.power_cap_percent = Some(50);
    snapshot(
        vec![brownout_site(supply_kw, None)],
        vec![node("s", 8, 8)],
        vec![j],
    )
}

pub fn uncapping() -> Snapshot {
    capped_at_half(20.0)
}

#[test]
fn caps_are_lifted_when_headroom_returns_with_margin() {
    let d = run(&uncapping());
    assert_eq!(
        (&d[0].action, d[0].reason),
        (&Action::Uncap, Reason::PowerUncapped)
    );
    assert!(
        d[0].message.contains("headroom at s is 16.0 kW"),
        "{}",
        d[0].message
    );
}

#[test]
fn caps_are_raised_partly_when_headroom_covers_only_part() {
    // 6 kW supply, 4 kW drawn: 2 kW headroom, 1.2 kW above the margin → +15 %.
    let d = run(&capped_at_half(6.0));
    assert_eq!(
        (&d[0].action, d[0].reason),
        (&Action::PowerCap { percent: 65 }, Reason::PowerCapped)
    );
    assert!(
        d[0].message.contains("raised from 50% to 65%"),
        "{}",
        d[0].message
    );
}

#[test]
fn caps_stay_while_headroom_is_within_the_margin() {
    let d = run(&capped_at_half(4.5));
    assert_eq!(
        (&d[0].action, d[0].reason),
        (&Action::Keep, Reason::Running)
    );
    assert!(d[0].message.contains("(capped at 50%)"), "{}", d[0].message);
}

#[test]
fn placements_see_headroom_freed_by_caps_and_suspensions() {
    // After suspending ns/low, headroom is +2 kW: a 2 kW GreenOnly job fits, a 4 kW one not.
    let mut snap = suspension();
    snap.nodes.push(node("s", 8, 0));
    snap.jobs.push(job("ns/new-small", 1, 2, Policy::GreenOnly));
    snap.jobs.push(job("ns/new-big", 1, 4, Policy::GreenOnly));
    let d = run(&snap);
    assert_eq!(find(&d, "ns/new-small").reason, Reason::PlacedGreen);
    assert_eq!(
        placed(find(&d, "ns/new-small")).1,
        &[2],
        "the suspended job's GPUs are not reused this cycle"
    );
    assert_ne!(find(&d, "ns/new-big").reason, Reason::PlacedGreen);
}

#[test]
fn a_cap_below_the_jobs_minimum_is_raised_to_it_even_in_a_brown_out() {
    let mut snap = capped_at_half(0.0);
    snap.jobs[0].power_cap_min_percent = Some(70);
    let d = run(&snap);
    assert_eq!(
        (&d[0].action, d[0].reason),
        (&Action::PowerCap { percent: 70 }, Reason::PowerCapped)
    );
    assert!(
        d[0].message
            .contains("from 50% to the job's minimum 70% (+1.6 kW)"),
        "{}",
        d[0].message
    );
}
