//! The pooled program against the per-job one, on generated workloads over real weather.

use std::path::Path;

use super::reference::per_job_bound;
use super::windows::{bound_at, bound_pieces, job_windows};
use super::{program, schedule};
use crate::civil::HOUR_S;
use crate::cli::{SimulateArgs, prepare};
use crate::experiment::Experiment;
use crate::workload::SplitMix64;

fn weather(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/data/weather")
        .join(file)
        .display()
        .to_string()
}

/// A solar and a wind site replaying the repository's weather files, `jobs` jobs of 1
/// to 16 GPUs over two days (a day to drain), `nodes` nodes of 8 GPUs per site.
fn experiment(jobs: usize, nodes: u32, supply_scale: f64, seed: u64) -> Experiment {
    let dir = tempfile::tempdir().unwrap();
    let sites = dir.path().join("sites");
    std::fs::create_dir(&sites).unwrap();
    let solar = format!(
        "apiVersion: verdant.dev/v1alpha1\nkind: EnergySite\nmetadata: {{name: solar}}\n\
         spec:\n  location: {{latitude: 36.1, longitude: -79.95, elevationM: 273}}\n  \
         solar:\n  - {{name: field, capacityKw: 80, tiltDegrees: 25}}\n  \
         grid: {{carbonIntensityGPerKwh: 380}}\n  pue: 1.2\n  forecast:\n    \
         provider: Replay\n    replay: {{path: {}}}\n",
        weather("pvlib_723170TYA_greensboro_nc_tmy3.csv")
    );
    let wind = format!(
        "apiVersion: verdant.dev/v1alpha1\nkind: EnergySite\nmetadata: {{name: wind}}\n\
         spec:\n  location: {{latitude: 53.5, longitude: 9.9}}\n  wind:\n  - name: small\n    \
         count: 1\n    hubHeightM: 40\n    powerCurve:\n    - {{speedMs: 3, powerKw: 0}}\n    \
         - {{speedMs: 12, powerKw: 60}}\n    - {{speedMs: 25, powerKw: 60}}\n  \
         grid: {{carbonIntensityGPerKwh: 350}}\n  forecast:\n    provider: Replay\n    \
         replay: {{path: {}}}\n",
        weather("windpowerlib_example_weather_2010.csv")
    );
    std::fs::write(sites.join("solar.yaml"), solar).unwrap();
    std::fs::write(sites.join("wind.yaml"), wind).unwrap();
    let mut rng = SplitMix64::new(seed, 7, 7);
    let mut csv = String::from("job_id,submission_time,duration,num_gpu\n");
    for i in 0..jobs {
        let submit = (rng.next_f64() * 2.0 * 86_400.0) as i64;
        let duration = 600 + (rng.next_f64().powi(2) * 40_000.0) as i64;
        let gpus = [1, 1, 2, 4, 8, 16][(rng.next_u64() % 6) as usize];
        csv.push_str(&format!("job-{i},{submit},{duration},{gpus}\n"));
    }
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, csv).unwrap();
    let mut args = SimulateArgs::new(&sites, &trace, "2019-07-01", &dir.path().join("out"));
    args.days = 2;
    args.drain_days = 1;
    args.nodes_per_site = nodes;
    args.supply_scale = supply_scale;
    args.seed = seed;
    prepare(&args).unwrap().0
}

#[test]
fn pooled_program_has_the_per_job_programs_optimum_and_bills_within_it() {
    // Plenty of supply (tangents idle), scarce supply (tangents bind), and an overloaded
    // cluster where deadlines are missed.
    let cases = [(30, 2, 1.0), (40, 4, 0.15), (60, 1, 0.5), (25, 6, 0.05)];
    for seed in 1..=3 {
        for &(jobs, nodes, supply_scale) in &cases {
            let exp = experiment(jobs, nodes, supply_scale, seed);
            let case = format!("seed {seed}, {jobs} jobs, {nodes} nodes, supply × {supply_scale}");
            let reference = per_job_bound(&exp.sites, &exp.jobs, &exp.config);
            let windows = job_windows(&exp.jobs, &exp.config);
            let plan = program::solve(&exp.sites, &windows, &exp.config);
            let outcome = schedule::bill(&plan, &exp.jobs, &windows, &exp.sites, &exp.config);
            let bound = outcome.lp_bound_kwh.unwrap();
            assert!(
                reference > 1.0,
                "{case}: a trivial instance ({reference} kWh)"
            );
            assert!(
                (bound - reference).abs() <= 1e-4 * reference,
                "{case}: pooled bound {bound} kWh, per-job bound {reference} kWh"
            );
            // Spread over the sites, the schedule bills all the work the program does, within
            // the bound, and over-commits no site.
            let planned_gpu_s: f64 = windows
                .iter()
                .zip(&plan.runs)
                .map(|(w, runs)| {
                    w.gpus
                        * runs
                            .iter()
                            .map(|(_, x)| x)
                            .filter(|x| **x > 1e-6)
                            .sum::<f64>()
                })
                .sum::<f64>()
                * HOUR_S as f64;
            assert!(
                (outcome.busy_gpu_s - planned_gpu_s).abs() <= 1e-6 * planned_gpu_s.max(1.0),
                "{case}: billed {} GPU-s of the plan's {planned_gpu_s}",
                outcome.busy_gpu_s
            );
            let billed = outcome.total().renewable_kwh();
            assert!(
                billed <= bound * (1.0 + 1e-6) + 1e-6,
                "{case}: billed {billed} > {bound}"
            );
            let site_gpus = f64::from(exp.config.cluster.site_gpus());
            for peak in &outcome.peak_busy_gpus {
                assert!(
                    *peak <= site_gpus * (1.0 + 1e-6),
                    "{case}: {peak} GPUs busy"
                );
            }
        }
    }
}

#[test]
fn the_bound_pieces_follow_the_least_line() {
    // r ≤ 2b, r ≤ 4 + b, r ≤ 10, and a line that is never the least.
    let cuts = [(0.0, 2.0), (4.0, 1.0), (10.0, 0.0), (20.0, 0.5)];
    let pieces = bound_pieces(&cuts, 8.0);
    assert_eq!(pieces, [(4.0, 2.0), (6.0, 1.0), (8.0, 0.0)]);
    assert_eq!(bound_pieces(&cuts, 3.0), [(3.0, 2.0)]);
    // Filled in order, the pieces give the bound at every point.
    for b in [0.0_f64, 1.0, 4.0, 5.5, 6.0, 8.0] {
        let (mut start, mut filled) = (0.0, 0.0);
        for (end, slope) in &pieces {
            filled += slope * (b.min(*end) - start).max(0.0);
            start = *end;
        }
        assert_eq!(filled, bound_at(&cuts, b), "at {b}");
    }
}
