//! One scenario per policy branch; each asserts the action, the reason and the numbers.

use super::*;

// ---- Immediate ----

pub fn immediate_two_sites() -> Snapshot {
    snapshot(
        vec![
            site("solar-a", &[10.0, 10.0]),
            site("wind-b", &[50.0, 50.0]),
        ],
        vec![node("solar-a", 8, 0), node("wind-b", 8, 0)],
        vec![job("ns/imm", 1, 4, Policy::Immediate)],
    )
}

#[test]
fn immediate_places_at_the_site_with_most_headroom() {
    let d = run(&immediate_two_sites());
    let (site, nodes, fraction) = placed(&d[0]);
    assert_eq!((site, nodes), ("wind-b", &[1][..]));
    assert_close(fraction, 1.0);
    assert_eq!(d[0].reason, Reason::PlacedImmediate);
    assert!(d[0].message.contains("50.0 kW"), "{}", d[0].message);
}

#[test]
fn immediate_runs_on_grid_power_when_there_is_no_renewable_headroom() {
    let snap = snapshot(
        vec![site("dark", &[0.0, 0.0])],
        vec![node("dark", 8, 0)],
        vec![job("ns/imm", 2, 4, Policy::Immediate)],
    );
    let d = run(&snap);
    let (site, nodes, fraction) = placed(&d[0]);
    assert_eq!(
        (site, nodes),
        ("dark", &[0, 0][..]),
        "two replicas share the node"
    );
    assert_close(fraction, 0.0);
}

#[test]
fn immediate_waits_without_free_gpus_and_never_places_part_of_the_gang() {
    let snap = snapshot(
        vec![site("a", &[100.0])],
        vec![node("a", 8, 8), node("a", 8, 4)],
        vec![job("ns/big", 2, 4, Policy::Immediate)],
    );
    let d = run(&snap);
    assert_eq!(d[0].action, Action::Wait);
    assert_eq!(d[0].reason, Reason::WaitingForCapacity);
    assert!(
        d[0].message.contains("at most 1 of 2 replica(s) fit now"),
        "{}",
        d[0].message
    );
}

// ---- GreenPreferred ----

pub fn green_now() -> Snapshot {
    // 8 kW job: a covers 6/8 = 0.75, b covers 1.0.
    snapshot(
        vec![site("a", &[6.0, 6.0]), site("b", &[8.0, 8.0])],
        vec![node("a", 8, 0), node("b", 8, 0)],
        vec![job("ns/gp", 1, 8, Policy::GreenPreferred)],
    )
}

#[test]
fn green_preferred_places_now_at_the_greenest_site() {
    let d = run(&green_now());
    let (site, _, fraction) = placed(&d[0]);
    assert_eq!(site, "b");
    assert_close(fraction, 1.0);
    assert_eq!(d[0].reason, Reason::PlacedGreen);
    assert!(d[0].message.contains("1.00 ≥ 0.80"), "{}", d[0].message);
}

#[test]
fn green_preferred_breaks_fraction_ties_by_headroom() {
    let snap = snapshot(
        vec![site("a", &[30.0]), site("b", &[20.0])],
        vec![node("a", 8, 0), node("b", 8, 0)],
        vec![job("ns/gp", 1, 8, Policy::GreenPreferred)],
    );
    let d = run(&snap);
    assert_eq!(placed(&d[0]).0, "a");
}

pub fn green_preferred_deferred() -> Snapshot {
    snapshot(
        vec![site("solar", &[0.0, 2.0, 10.0, 10.0])],
        vec![node("solar", 8, 0)],
        vec![job("ns/gp", 1, 8, Policy::GreenPreferred)],
    )
}

#[test]
fn green_preferred_defers_to_the_earliest_green_forecast_step() {
    let d = run(&green_preferred_deferred());
    let (until, fraction) = deferred(&d[0]);
    assert_eq!(until, Some(NOW + 2 * HOUR), "13:00 gives only 2/8");
    assert_close(fraction, 1.0);
    assert_eq!(d[0].reason, Reason::DeferredForRenewables);
    assert!(d[0].message.contains("14:00 UTC"), "{}", d[0].message);
    assert!(
        d[0].message.contains("best renewable fraction now is 0.00"),
        "{}",
        d[0].message
    );
}

#[test]
fn fractions_integrate_partial_steps_exactly() {
    // 90-minute 8 kW job; 8 kW of supply only in the second hour: starting then covers
    // 60 of 90 minutes.
    let mut j = job("ns/gp", 1, 8, Policy::GreenPreferred);
    j.estimated_duration_s = Some(90 * 60);
    j.min_renewable_fraction = 0.6;
    let snap = snapshot(
        vec![site("s", &[0.0, 8.0, 0.0])],
        vec![node("s", 8, 0)],
        vec![j],
    );
    let d = run(&snap);
    let (until, fraction) = deferred(&d[0]);
    assert_eq!(until, Some(NOW + HOUR));
    assert_close(fraction, 2.0 / 3.0);
}

pub fn green_preferred_better_window() -> Snapshot {
    let mut j = job("ns/gp", 1, 8, Policy::GreenPreferred);
    j.latest_start_s = Some(NOW + 3 * HOUR);
    snapshot(
        vec![site("s", &[1.0, 4.0, 2.0, 0.0])],
        vec![node("s", 8, 0)],
        vec![j],
    )
}

#[test]
fn green_preferred_with_a_deadline_defers_to_the_best_window_when_none_is_green_enough() {
    let d = run(&green_preferred_better_window());
    let (until, fraction) = deferred(&d[0]);
    assert_eq!(until, Some(NOW + HOUR));
    assert_close(fraction, 0.5);
    assert_eq!(d[0].reason, Reason::DeferredForBetterWindow);
}

pub fn green_preferred_best_available() -> Snapshot {
    let mut j = job("ns/gp", 1, 8, Policy::GreenPreferred);
    j.latest_start_s = Some(NOW + 2 * HOUR);
    snapshot(
        vec![site("s", &[4.0, 2.0, 1.0])],
        vec![node("s", 8, 0)],
        vec![j],
    )
}

#[test]
fn green_preferred_starts_now_when_now_is_the_best_window_before_the_deadline() {
    let d = run(&green_preferred_best_available());
    assert_close(placed(&d[0]).2, 0.5);
    assert_eq!(d[0].reason, Reason::PlacedBestAvailable);
}

#[test]
fn green_preferred_never_defers_past_its_latest_start() {
    // Green only at 15:00, but the latest start is 13:30: all windows before are black,
    // so starting now is as good as any.
    let mut j = job("ns/gp", 1, 8, Policy::GreenPreferred);
    j.latest_start_s = Some(NOW + 90 * 60);
    let snap = snapshot(
        vec![site("s", &[0.0, 0.0, 0.0, 10.0])],
        vec![node("s", 8, 0)],
        vec![j],
    );
    let d = run(&snap);
    assert_eq!(d[0].reason, Reason::PlacedBestAvailable, "{}", d[0].message);
}

pub fn green_preferred_at_latest_start() -> Snapshot {
    let mut j = job("ns/gp", 1, 8, Policy::GreenPreferred);
    j.latest_start_s = Some(NOW - 60);
    snapshot(
        vec![site("s", &[0.0, 100.0])],
        vec![node("s", 8, 0)],
        vec![j],
    )
}

#[test]
fn green_preferred_runs_at_its_latest_start_even_when_green_power_comes_later() {
    let d = run(&green_preferred_at_latest_start());
    assert_close(placed(&d[0]).2, 0.0);
    assert_eq!(d[0].reason, Reason::PlacedAtLatestStart);
    assert!(d[0].message.contains("11:59 UTC"), "{}", d[0].message);
}

pub fn green_preferred_no_window() -> Snapshot {
    snapshot(
        vec![site("s", &[1.0, 1.0, 1.0])],
        vec![node("s", 8, 0)],
        vec![job("ns/gp", 1, 8, Policy::GreenPreferred)],
    )
}

#[test]
fn green_preferred_without_deadline_or_green_window_waits_for_the_forecast_to_change() {
    let d = run(&green_preferred_no_window());
    let (until, fraction) = deferred(&d[0]);
    assert_eq!(until, None);
    assert_close(fraction, 1.0 / 8.0);
    assert_eq!(d[0].reason, Reason::NoGreenWindowInForecast);
    assert!(d[0].message.contains("waits for the forecast to change"));
}

pub fn green_capacity_full() -> Snapshot {
    snapshot(
        vec![site("green", &[100.0, 100.0]), site("grey", &[0.0, 0.0])],
        vec![node("green", 8, 8), node("grey", 8, 0)],
        vec![
            job("ns/gp", 1, 8, Policy::GreenPreferred),
            job("ns/go", 1, 8, Policy::GreenOnly),
        ],
    )
}

#[test]
fn green_jobs_wait_for_green_gpus_rather_than_start_on_grey_power() {
    let d = run(&green_capacity_full());
    for d in &d {
        assert_eq!(d.action, Action::Wait, "{}", d.message);
        assert_eq!(d.reason, Reason::WaitingForGreenCapacity);
        assert!(
            d.message.contains("at green but its GPUs are busy"),
            "{}",
            d.message
        );
    }
}

// ---- GreenOnly ----

#[test]
fn green_only_starts_when_current_headroom_covers_the_whole_job() {
    // 10 kW now, 0 after: GreenOnly looks only at now, so a 2-hour job starts with 0.5.
    let mut j = job("ns/go", 1, 8, Policy::GreenOnly);
    j.estimated_duration_s = Some(2 * HOUR);
    let snap = snapshot(
        vec![site("s", &[10.0, 0.0])],
        vec![node("s", 8, 0)],
        vec![j],
    );
    let d = run(&snap);
    assert_close(placed(&d[0]).2, 0.5);
    assert_eq!(d[0].reason, Reason::PlacedGreen);
    assert!(
        d[0].message
            .contains("headroom 10.0 kW covers the job's 8.0 kW"),
        "{}",
        d[0].message
    );
}

#[test]
fn green_only_defers_until_forecast_headroom_covers_it() {
    let snap = snapshot(
        vec![site("s", &[5.0, 7.9, 9.0])],
        vec![node("s", 8, 0)],
        vec![job("ns/go", 1, 8, Policy::GreenOnly)],
    );
    let d = run(&snap);
    assert_eq!(deferred(&d[0]).0, Some(NOW + 2 * HOUR));
    assert_eq!(d[0].reason, Reason::DeferredForRenewables);
    assert!(
        d[0].message
            .contains("headroom at s is 5.0 kW < 8.0 kW needed"),
        "{}",
        d[0].message
    );
}

#[test]
fn green_only_without_any_window_defers_without_a_time_even_past_its_deadline() {
    let mut j = job("ns/go", 1, 8, Policy::GreenOnly);
    j.latest_start_s = Some(NOW - HOUR);
    let snap = snapshot(vec![site("s", &[7.0, 7.0])], vec![node("s", 8, 0)], vec![j]);
    let d = run(&snap);
    assert_eq!(deferred(&d[0]).0, None);
    assert_eq!(d[0].reason, Reason::NoGreenWindowInForecast);
    assert!(
        d[0].message.contains("never starts on grid power"),
        "{}",
        d[0].message
    );
}

pub fn suspended_job_resumes() -> Snapshot {
    let mut j = job("ns/go", 1, 8, Policy::GreenOnly);
    j.state = JobState::Suspended;
    j.interruptible = true;
    snapshot(vec![site("s", &[9.0])], vec![node("s", 8, 0)], vec![j])
}

#[test]
fn suspended_green_only_job_resumes_when_headroom_returns() {
    let d = run(&suspended_job_resumes());
    assert_eq!(placed(&d[0]).0, "s");
    assert_eq!(d[0].reason, Reason::Resumed);
    assert!(d[0].message.starts_with("resumed"), "{}", d[0].message);
}

// ---- Power model ----

#[test]
fn power_uses_measured_watts_then_model_table_then_default_and_pue() {
    let mut s = site("s", &[100.0]);
    s.pue = 1.25;
    let mut h200 = node("s", 8, 0);
    h200.gpu_model = "H200".into();
    let mut measured = job("ns/measured", 1, 4, Policy::GreenOnly);
    measured.measured_gpu_watts = Some(500.0);
    let model = job("ns/model", 1, 4, Policy::GreenOnly);
    let snap = snapshot(vec![s], vec![h200], vec![measured, model]);
    let mut cfg = config();
    cfg.gpu_watts_by_model.insert("H200".into(), 800.0);
    let d = run_cycle(&snap, &cfg);
    // 4 × 500 W × 1.25 = 2.5 kW; 4 × 800 W × 1.25 = 4.0 kW.
    assert!(
        find(&d, "ns/measured").message.contains(", 2.5 kW:"),
        "{}",
        d[0].message
    );
    assert!(
        find(&d, "ns/model").message.contains(", 4.0 kW:"),
        "{}",
        d[1].message
    );
}

// ---- Unschedulable ----

#[test]
fn impossible_jobs_are_unschedulable_not_waiting() {
    let mut elsewhere = job("ns/elsewhere", 1, 1, Policy::Immediate);
    elsewhere.allowed_sites = vec!["mars".into()];
    let mut off_nodes = job("ns/off-nodes", 1, 1, Policy::Immediate);
    off_nodes.allowed_nodes = Some(vec![1, 2, 99]);
    let mut cordoned = node("s", 8, 0);
    cordoned.schedulable = false;
    let mut siteless = node("s", 8, 0);
    siteless.site = None;
    let snap = snapshot(
        vec![site("s", &[100.0])],
        vec![node("s", 8, 0), cordoned, siteless],
        vec![
            job("ns/too-big", 2, 8, Policy::Immediate),
            job("ns/no-gpus", 3, 0, Policy::Immediate),
            elsewhere,
            off_nodes,
        ],
    );
    let d = run(&snap);
    for d in &d {
        assert_eq!(
            (d.reason, &d.action),
            (Reason::Unschedulable, &Action::Wait),
            "{}",
            d.job
        );
    }
    assert!(find(&d, "ns/elsewhere").message.contains("mars"));
}

// ---- The worked example of docs/scheduling.md ----

fn worked_example(policy: Policy, min_renewable_fraction: f64) -> Decision {
    let mut solar = site("solar-a", &[120.0, 200.0, 300.0, 250.0]);
    solar.pue = 1.2;
    solar.base_load_kw = 50.0;
    let mut nodes: Vec<Node> = (0..12).map(|_| node("solar-a", 8, 0)).collect();
    for n in &mut nodes[..4] {
        n.gpus_used = 8;
    }
    let mut r = job("ns/r", 4, 8, Policy::Immediate);
    r.estimated_duration_s = Some(5 * HOUR / 2);
    let mut g = job("ns/g", 8, 8, policy);
    g.estimated_duration_s = Some(2 * HOUR);
    g.min_renewable_fraction = min_renewable_fraction;
    let snap = snapshot(
        vec![solar],
        nodes,
        vec![running(r, "solar-a", vec![0, 1, 2, 3], NOW - HOUR), g],
    );
    let decisions = run_cycle(&snap, &EngineConfig::default());
    decisions[1].clone()
}

#[test]
fn worked_example_in_the_docs_holds() {
    // 8×8 H100 at 700 W, PUE 1.2: 53.76 kW. Headroom 12:00-13:00 is 120 − 50 − 26.88 =
    // 43.12 kW, then 123.12 and 150 kW: (43.12 + 0.5 × 53.76 + 0.5 × 53.76) / 107.52.
    let d = worked_example(Policy::GreenPreferred, 0.8);
    assert_eq!(d.reason, Reason::PlacedGreen);
    assert_close(placed(&d).2, 96.88 / 107.52);
    assert_eq!(placed(&d).1, &[4, 5, 6, 7, 8, 9, 10, 11]);
    assert!(
        d.message
            .contains("renewables cover 0.90 ≥ 0.80 required (headroom 43.1 kW, job 53.8 kW)")
    );

    let d = worked_example(Policy::GreenPreferred, 0.95);
    assert_eq!(
        (deferred(&d), d.reason),
        ((Some(NOW + HOUR), 1.0), Reason::DeferredForRenewables)
    );
    assert!(
        d.message
            .contains("best renewable fraction now is 0.90 at solar-a"),
        "{}",
        d.message
    );

    let d = worked_example(Policy::GreenOnly, 0.0);
    assert_eq!(
        (deferred(&d).0, d.reason),
        (Some(NOW + HOUR), Reason::DeferredForRenewables)
    );
    assert!(
        d.message
            .contains("headroom at solar-a is 43.1 kW < 53.8 kW needed"),
        "{}",
        d.message
    );
    assert!(
        d.message
            .contains("reaches 123.1 kW ≥ 53.8 kW needed from 13:00 UTC"),
        "{}",
        d.message
    );
}
