//! Hand-built cases whose optimum is known: the oracle finds it, and `verdant`, `fifo`
//! and `threshold-wait` behave as reasoned.
//!
//! One site with sun only from 06:00 to 12:00 UTC each day (1 MW, far more than the
//! cluster draws), no idle or base power and PUE 1, so a job's energy is renewable exactly
//! when it runs in those hours. Cycles every 5 minutes.

use verdant_core::placement::{EngineConfig, Policy};
use verdant_sim::civil::{HOUR_S, utc_midnight_s};
use verdant_sim::{ClusterShape, Experiment, PolicyKind, SimConfig, SimJob, SimSite};

const KWH_8_GPUS_2H: f64 = 8.0 * 0.7 * 2.0;

fn start() -> i64 {
    utc_midnight_s(2019, 6, 1)
}

fn sunny_morning() -> SimSite {
    let supply: Vec<f64> = (0..72)
        .map(|h| {
            if (6..12).contains(&(h % 24)) {
                1000.0
            } else {
                0.0
            }
        })
        .collect();
    SimSite::with_supply("sun", start(), supply)
}

fn job(id: &str, policy: Policy, replicas: u32, hours: i64, deadline_h: i64) -> SimJob {
    SimJob {
        id: format!("test/{id}"),
        submit_s: start(),
        duration_s: hours * HOUR_S,
        replicas,
        gpus_per_replica: 8,
        policy,
        min_renewable_fraction: 0.8,
        interruptible: false,
        power_cap_min_percent: None,
        deadline_s: Some(start() + deadline_h * HOUR_S),
        elastic: None,
    }
}

fn experiment(jobs: Vec<SimJob>) -> Experiment {
    Experiment {
        sites: vec![sunny_morning()],
        jobs,
        config: SimConfig {
            start_s: start(),
            end_s: start() + 24 * HOUR_S,
            step_s: 300,
            cluster: ClusterShape {
                nodes_per_site: 2,
                gpus_per_node: 8,
                gpu_max_watts: 700.0,
                gpu_idle_watts: 0.0,
                node_base_watts: 0.0,
            },
            engine: EngineConfig::default(),
            threshold: 0.5,
            restart_overhead_s: 0,
            resize_overhead_s: 0,
        },
    }
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-3,
        "{what}: {actual} ≠ {expected}"
    );
}

#[test]
fn a_flexible_job_waits_for_the_sun_and_an_urgent_one_does_not() {
    // `green`: 2 h, due at 12:00, so it can run in the sun. `now`: 1 h, due at 02:00,
    // at night whatever happens.
    let exp = experiment(vec![
        job("green", Policy::GreenPreferred, 1, 2, 12),
        job("now", Policy::Immediate, 1, 1, 2),
    ]);
    let cmp = exp.compare(&PolicyKind::ALL, false).unwrap();
    let m = |p: PolicyKind| &cmp.metrics[p.name()];

    // The optimum: all of `green` in the sun, `now` on the grid.
    let oracle = m(PolicyKind::Oracle);
    assert_close(oracle.renewable_kwh, KWH_8_GPUS_2H, "oracle renewable");
    assert_close(oracle.grid_kwh, KWH_8_GPUS_2H / 2.0, "oracle grid");
    assert_eq!(cmp.metrics["oracle"].feasible_deadline_misses, 0);
    assert_close(
        cmp.oracle.as_ref().unwrap().lp_bound_kwh,
        KWH_8_GPUS_2H,
        "LP bound",
    );
    assert_eq!(oracle.deadline_misses, 0);

    // verdant starts `now` at once and defers `green` to the first cycle at which the sun
    // covers its minimum renewable fraction (0.8) of the run: 05:40, with 100 of its 120
    // minutes in the sun.
    let verdant = m(PolicyKind::Verdant);
    let green = &cmp.runs[0].jobs[0];
    assert_eq!(green.first_start_s, Some(start() + 5 * HOUR_S + 40 * 60));
    assert_eq!(cmp.runs[0].jobs[1].first_start_s, Some(start()));
    assert_close(
        verdant.renewable_kwh,
        KWH_8_GPUS_2H * 100.0 / 120.0,
        "verdant renewable",
    );
    assert_close(
        verdant.fraction_of_oracle.unwrap(),
        100.0 / 120.0,
        "of oracle",
    );
    assert_eq!(verdant.deadline_misses, 0);

    // fifo starts both at midnight: nothing renewable.
    let fifo = m(PolicyKind::Fifo);
    assert_close(fifo.renewable_kwh, 0.0, "fifo renewable");
    assert_close(fifo.total_kwh, 1.5 * KWH_8_GPUS_2H, "fifo total");
    assert_eq!(fifo.delay_p99_s, 0.0);

    // threshold-wait: `green` waits for the sun; `now` waits until its latest start
    // (01:00 less two cycles) and then runs on the grid.
    let tw = m(PolicyKind::ThresholdWait);
    assert_close(tw.renewable_kwh, KWH_8_GPUS_2H, "threshold-wait renewable");
    assert_eq!(tw.deadline_misses, 0);
    let run = &cmp.runs[2];
    assert_eq!(run.policy, PolicyKind::ThresholdWait);
    assert_eq!(run.jobs[1].first_start_s, Some(start() + 50 * 60));
}

#[test]
fn two_whole_cluster_jobs_share_the_sunny_hours_one_after_the_other() {
    // Each needs all 16 GPUs for 2 h; six sunny hours fit both.
    let exp = experiment(vec![
        job("a", Policy::GreenPreferred, 2, 2, 14),
        job("b", Policy::GreenPreferred, 2, 2, 14),
    ]);
    let cmp = exp
        .compare(
            &[PolicyKind::Verdant, PolicyKind::Fifo, PolicyKind::Oracle],
            false,
        )
        .unwrap();
    let best = 2.0 * 2.0 * KWH_8_GPUS_2H;
    assert_close(
        cmp.metrics["oracle"].renewable_kwh,
        best,
        "oracle renewable",
    );
    // verdant: the first at 05:40 (0.83 ≥ 0.8 renewable), the second waits for its GPUs
    // and runs fully in the sun.
    let starts: Vec<_> = cmp.runs[0].jobs.iter().map(|j| j.first_start_s).collect();
    let first = start() + 5 * HOUR_S + 40 * 60;
    assert_eq!(starts, vec![Some(first), Some(first + 2 * HOUR_S)]);
    assert_close(
        cmp.metrics["verdant"].renewable_kwh,
        best * (100.0 / 120.0 + 1.0) / 2.0,
        "verdant renewable",
    );
    assert_close(cmp.metrics["fifo"].renewable_kwh, 0.0, "fifo renewable");
    assert_eq!(cmp.metrics["fifo"].capacity_violations, 0);
}

#[test]
fn an_interruptible_job_runs_only_in_the_sun_over_two_days() {
    // 10 h of work due in 40 h: two mornings of sun (6 h each) can hold it, if it stops
    // at noon and resumes the next morning. The oracle does exactly that. verdant, for an
    // interruptible GreenPreferred job, starts it when the sun covers it (06:00), stops it
    // when the site's headroom has been negative for the 10-minute grace (12:10) and
    // resumes it at 06:00 the next day: all but those 10 minutes are renewable.
    let mut long = job("long", Policy::GreenPreferred, 1, 10, 40);
    long.interruptible = true;
    let mut exp = experiment(vec![long]);
    exp.config.end_s = start() + 48 * HOUR_S;
    let cmp = exp
        .compare(&[PolicyKind::Verdant, PolicyKind::Oracle], false)
        .unwrap();
    let all = 8.0 * 0.7 * 10.0;
    assert_close(cmp.metrics["oracle"].renewable_kwh, all, "oracle renewable");
    let verdant = &cmp.metrics["verdant"];
    let ten_minutes_kwh = 8.0 * 0.7 / 6.0;
    assert_close(verdant.total_kwh, all, "verdant total");
    assert_close(
        verdant.renewable_kwh,
        all - ten_minutes_kwh,
        "verdant renewable",
    );
    assert_eq!(verdant.suspensions, Some(1), "stopped once, at noon");
    assert_eq!(verdant.restarts, Some(1));
    assert_eq!(verdant.deadline_misses, 0);
    assert_eq!(
        cmp.runs[0].jobs[0].finish_s,
        Some(start() + 24 * HOUR_S + 9 * HOUR_S + 50 * 60),
        "6 h 10 min on day 1, the other 3 h 50 min from 06:00 on day 2"
    );
}

#[test]
fn a_deadline_after_the_horizon_is_not_missed_by_anyone() {
    // 30 h of work due at 60 h, in a 24-hour horizon: nobody can finish it, nobody has
    // missed its deadline yet, and the oracle puts its optional work in the sun.
    let exp = experiment(vec![job("long", Policy::GreenPreferred, 1, 30, 60)]);
    let cmp = exp.compare(&PolicyKind::ALL, false).unwrap();
    for (name, m) in &cmp.metrics {
        assert_eq!(m.deadline_misses, 0, "{name}");
        assert_eq!(m.jobs_finished, 0, "{name}");
    }
    assert_close(
        cmp.metrics["oracle"].renewable_kwh,
        8.0 * 0.7 * 6.0,
        "six sunny hours of the oracle's optional work",
    );
}
