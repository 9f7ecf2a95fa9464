//! Hand-built snapshots for each policy branch, plus property tests over random ones.
//!
//! Fixtures use 1 kW per GPU and PUE 1 so the expected kW can be checked by hand:
//! a 2×4 job draws 8 kW.

mod backfill;
mod brownout;
mod elastic;
mod ordering;
mod policies;
mod properties;
mod storage;

use super::*;

/// 2026-01-01 12:00 UTC.
pub const NOW: i64 = 1_767_268_800;
pub const HOUR: i64 = 3600;

pub fn config() -> EngineConfig {
    EngineConfig {
        default_gpu_watts: 1000.0,
        ..EngineConfig::default()
    }
}

/// A site with an hourly forecast starting at `NOW`, PUE 1, no base load.
pub fn site(name: &str, hourly_kw: &[f64]) -> Site {
    Site {
        name: name.to_string(),
        pue: 1.0,
        grid_carbon_g_per_kwh: 400.0,
        supply: hourly_kw
            .iter()
            .enumerate()
            .map(|(i, &kw)| SupplyPoint {
                start_s: NOW + i as i64 * HOUR,
                kw,
            })
            .collect(),
        base_load_kw: 0.0,
        headroom_negative_since_s: None,
        storage: Vec::new(),
    }
}

/// A schedulable node at `site` with `gpus` GPUs, `used` of them taken.
pub fn node(site: &str, gpus: u32, used: u32) -> Node {
    Node {
        name: format!("{site}-{gpus}-{used}"),
        site: Some(site.to_string()),
        gpu_model: "H100".to_string(),
        gpus_allocatable: gpus,
        gpus_used: used,
        schedulable: true,
    }
}

/// A pending 1-hour job created a minute ago.
pub fn job(id: &str, replicas: u32, gpus_per_replica: u32, policy: Policy) -> Job {
    Job {
        id: id.to_string(),
        replicas,
        gpus_per_replica,
        state: JobState::Pending,
        policy,
        min_renewable_fraction: 0.8,
        interruptible: false,
        power_cap_min_percent: None,
        power_cap_percent: None,
        priority: 0,
        created_s: NOW - 60,
        latest_start_s: None,
        estimated_duration_s: Some(HOUR),
        measured_gpu_watts: None,
        allowed_sites: Vec::new(),
        allowed_nodes: None,
        elastic: None,
    }
}

/// `job` running at `site` on `nodes` since `started_s`.
pub fn running(mut job: Job, site: &str, nodes: Vec<u32>, started_s: i64) -> Job {
    job.state = JobState::Running {
        site: site.to_string(),
        nodes,
        started_s,
    };
    job
}

pub fn snapshot(sites: Vec<Site>, nodes: Vec<Node>, jobs: Vec<Job>) -> Snapshot {
    Snapshot {
        now_s: NOW,
        sites,
        nodes,
        jobs,
    }
}

pub fn run(snap: &Snapshot) -> Vec<Decision> {
    let decisions = run_cycle(snap, &config());
    assert_eq!(decisions.len(), snap.jobs.len(), "one decision per job");
    for (d, j) in decisions.iter().zip(&snap.jobs) {
        assert_eq!(d.job, j.id, "decisions come in snapshot order");
        assert!(!d.message.is_empty());
    }
    decisions
}

pub fn find<'a>(decisions: &'a [Decision], id: &str) -> &'a Decision {
    decisions
        .iter()
        .find(|d| d.job == id)
        .unwrap_or_else(|| panic!("no decision for {id}"))
}

/// The site and nodes of a `Place`, panicking with the decision otherwise.
pub fn placed(d: &Decision) -> (&str, &[u32], f64) {
    match &d.action {
        Action::Place {
            site,
            nodes,
            expected_renewable_fraction,
        } => (site, nodes, *expected_renewable_fraction),
        other => panic!(
            "{} expected Place, got {other:?} ({}: {})",
            d.job, d.reason, d.message
        ),
    }
}

/// `until_s` and fraction of a `Defer`.
pub fn deferred(d: &Decision) -> (Option<i64>, f64) {
    match &d.action {
        Action::Defer {
            until_s,
            expected_renewable_fraction,
        } => (*until_s, *expected_renewable_fraction),
        other => panic!(
            "{} expected Defer, got {other:?} ({}: {})",
            d.job, d.reason, d.message
        ),
    }
}

pub fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

#[test]
fn every_reason_code_is_produced_by_some_scenario_and_spelled_as_its_name() {
    let mut unschedulable = policies::green_now();
    unschedulable.jobs[0].replicas = 3;
    let scenarios = [
        policies::immediate_two_sites(),
        policies::green_now(),
        policies::green_preferred_at_latest_start(),
        policies::green_preferred_best_available(),
        policies::suspended_job_resumes(),
        policies::green_preferred_deferred(),
        policies::green_preferred_better_window(),
        policies::green_preferred_no_window(),
        policies::green_capacity_full(),
        backfill::deadlock(),
        backfill::backfill_by_time(),
        backfill::green_head(),
        brownout::capping(),
        brownout::suspension(),
        brownout::make_room(),
        brownout::uncapping(),
        elastic::growth(),
        elastic::shrinking(),
        unschedulable,
    ];
    let seen: std::collections::BTreeSet<Reason> =
        scenarios.iter().flat_map(run).map(|d| d.reason).collect();
    let all: std::collections::BTreeSet<Reason> = Reason::ALL.into_iter().collect();
    assert_eq!(seen, all);
    for reason in Reason::ALL {
        assert_eq!(reason.as_str(), format!("{reason:?}"));
        assert_eq!(serde_json_like(reason), format!("\"{}\"", reason.as_str()));
    }
}

/// How serde spells the reason (a unit variant) — the same code as `as_str`.
fn serde_json_like(reason: Reason) -> String {
    serde_json::to_string(&reason).expect("serializable")
}
