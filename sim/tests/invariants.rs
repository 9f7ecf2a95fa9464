//! Invariants over generated workloads on real weather: no policy ever puts more GPUs on
//! a node or a site than it has, and none gets more renewable energy than the oracle's
//! bound.

mod common;

use verdant_sim::cli::{SimulateArgs, prepare};
use verdant_sim::{Comparison, Experiment, PolicyKind};

fn experiment(jobs: usize, nodes_per_site: u32, seed: u64, interruptible_share: f64) -> Experiment {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sites")).unwrap();
    common::write_sites(&dir.path().join("sites"));
    common::write_trace(&dir.path().join("trace.csv"), jobs, 2, seed);
    let mut args = SimulateArgs::new(
        &dir.path().join("sites"),
        &dir.path().join("trace.csv"),
        "2019-07-01",
        &dir.path().join("out"),
    );
    args.days = 2;
    args.drain_days = 1;
    args.nodes_per_site = nodes_per_site;
    args.seed = seed;
    args.interruptible_share = interruptible_share;
    // Redone work after a suspension is energy the oracle never spends; without it the
    // oracle's bound holds for every policy.
    args.restart_overhead_seconds = 0;
    prepare(&args).unwrap().0
}

fn check_capacity(exp: &Experiment, cmp: &Comparison) {
    let site_gpus = f64::from(exp.config.cluster.site_gpus());
    for run in &cmp.runs {
        assert_eq!(
            run.capacity_violations, 0,
            "{}: a placement over-committed a node",
            run.policy
        );
        for (s, peak) in run.peak_busy_gpus.iter().enumerate() {
            assert!(
                *peak <= site_gpus + 1e-6,
                "{} at {}: {peak} GPUs busy of {site_gpus}",
                run.policy,
                exp.sites[s].name
            );
        }
    }
}

#[test]
fn no_policy_exceeds_capacity_or_beats_the_oracle() {
    for (seed, share) in [(11, 1.0), (12, 0.0)] {
        let exp = experiment(40, 4, seed, share);
        let cmp = exp.compare(&PolicyKind::ALL, false).unwrap();
        for (name, m) in &cmp.metrics {
            eprintln!("{name}: {m:?}");
        }
        check_capacity(&exp, &cmp);
        let bound = cmp.oracle.as_ref().unwrap().lp_bound_kwh;
        let oracle = &cmp.metrics["oracle"];
        assert!(
            oracle.renewable_kwh <= bound + 1e-6,
            "{oracle:?} vs {bound}"
        );
        assert!(bound > 1.0, "the case has renewable energy to fight for");
        for policy in [
            PolicyKind::Verdant,
            PolicyKind::Fifo,
            PolicyKind::ThresholdWait,
        ] {
            let m = &cmp.metrics[policy.name()];
            assert!(
                m.renewable_kwh <= bound + 1e-6,
                "seed {seed}: {policy} gets {} kWh renewable, above the oracle's bound {bound}",
                m.renewable_kwh
            );
            assert!(
                m.fraction_of_oracle.unwrap() <= 1.0 + 1e-3,
                "seed {seed}: {policy} beats the oracle: {m:?}"
            );
            assert!(
                (m.renewable_kwh + m.grid_kwh - m.total_kwh).abs() < 1e-6,
                "renewable + grid = total"
            );
        }
        assert!(
            cmp.metrics["verdant"].renewable_kwh >= cmp.metrics["fifo"].renewable_kwh,
            "seed {seed}: verdant {} < fifo {}",
            cmp.metrics["verdant"].renewable_kwh,
            cmp.metrics["fifo"].renewable_kwh
        );
    }
}

#[test]
fn an_overloaded_cluster_never_over_commits() {
    // Three times what the cluster can serve: queues, reservations, suspensions and
    // deadline preemption all at work.
    let exp = experiment(240, 2, 5, 0.5);
    let policies = [
        PolicyKind::Verdant,
        PolicyKind::Fifo,
        PolicyKind::ThresholdWait,
    ];
    let cmp = exp.compare(&policies, false).unwrap();
    check_capacity(&exp, &cmp);
    for policy in policies {
        let m = &cmp.metrics[policy.name()];
        assert!(
            m.gpu_utilization > 0.5,
            "{policy}: the cluster is kept busy"
        );
    }
}
