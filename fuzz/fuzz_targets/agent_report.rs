//! An agent's report as the ingest endpoint reads it: JSON → validation (values, then the
//! node's GPUs) → the window billed to its jobs. No panic; a report that passes validation
//! bills finite, non-negative energy that adds up.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use verdant_core::accounting::{JobRef, SiteWindow, bill_jobs};
use verdant_crds::wire::validate::{NodeGpus, validate, validate_against_node};
use verdant_crds::wire::{AgentReport, GpuWindow};

/// The reports of the seed corpus end here.
const NOW_MS: i64 = 1_795_953_600_000;
const WEEK_MS: i64 = 7 * 86_400_000;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = serde_json::from_slice::<AgentReport>(data) else {
        return;
    };
    if validate(&report, NOW_MS, WEEK_MS).is_err() {
        return;
    }
    let duration_s = (report.window_end_ms - report.window_start_ms) as f64 / 1000.0;
    assert!(duration_s > 0.0 && duration_s <= 3600.0);
    let node = NodeGpus {
        capacity: Some(8),
        max_gpu_power_w: 1500.0,
    };
    if validate_against_node(&report, &node).is_err() {
        return;
    }
    assert!(report.gpus.len() <= 8);
    for gpu in &report.gpus {
        assert!(gpu.energy_j.is_finite() && gpu.energy_j >= 0.0);
        assert!(gpu.energy_j <= 1500.0 * 1.5 * duration_s + 1.0);
    }
    // Every GPU with a pod billed to one job, at a half-renewable site.
    let job = JobRef {
        uid: "uid".into(),
        namespace: "ml".into(),
        name: "job".into(),
        power_cap_percent: Some(80),
    };
    let jobs: HashMap<usize, JobRef> = (0..report.gpus.len())
        .filter(|i| report.gpus[*i].pod.is_some())
        .map(|i| (i, job.clone()))
        .collect();
    let draws: Vec<_> = report.gpus.iter().map(GpuWindow::draw).collect();
    let window = SiteWindow {
        gpu_power_w: report.gpus.iter().map(|g| g.mean_power_w).sum(),
        base_power_w: 400.0,
        pue: 1.25,
        renewable_supply_w: 1000.0,
        // A battery covering part of any deficit: its share is billed as renewable too.
        storage_discharge_w: 250.0,
        grid_carbon_g_per_kwh: 400.0,
    };
    let billed = bill_jobs(&draws, &jobs, Some(&window));
    let expected_j: f64 = jobs.keys().map(|i| report.gpus[*i].energy_j).sum();
    let ledgers: Vec<_> = billed
        .jobs
        .iter()
        .map(|j| j.ledger.expect("a window with a site bills every job"))
        .collect();
    let charged_j: f64 = ledgers.iter().map(|l| l.energy_j).sum();
    assert!((expected_j - charged_j).abs() <= 1e-9 * expected_j.max(1.0));
    for l in &ledgers {
        assert!(
            l.renewable_j >= 0.0 && l.grid_j >= 0.0 && l.co2_g >= 0.0,
            "{l:?}"
        );
        assert!((l.renewable_j + l.grid_j - l.energy_j).abs() <= 1e-9 * l.energy_j.max(1.0));
    }
    for &(_, limit_w) in &billed.power_limits {
        assert!(limit_w.is_finite() && limit_w >= 0.0);
    }
});
