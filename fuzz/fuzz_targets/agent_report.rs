//! An agent's report as the ingest endpoint reads it: JSON → validation (values, then the
//! node's GPUs) → attribution → billing. No panic; a report that passes validation bills
//! finite, non-negative energy that adds up.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use verdant_core::accounting::SiteWindow;
use verdant_crds::wire::AgentReport;
use verdant_operator::ingest::billing::{JobRef, SiteContext, bill};
use verdant_operator::ingest::validate::{NodeGpus, validate, validate_against_node};

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
    let site = SiteContext {
        name: "site".into(),
        window: SiteWindow {
            gpu_power_w: report.gpus.iter().map(|g| g.mean_power_w).sum(),
            base_power_w: 400.0,
            pue: 1.25,
            renewable_supply_w: 1000.0,
            grid_carbon_g_per_kwh: 400.0,
        },
    };
    let billed = bill(&report, Some(&site), &jobs, NOW_MS);
    let expected_j: f64 = jobs.keys().map(|i| report.gpus[*i].energy_j).sum();
    let charged_j: f64 = billed.write.charges.iter().map(|c| c.energy_j).sum();
    assert!((expected_j - charged_j).abs() <= 1e-9 * expected_j.max(1.0));
    for c in &billed.write.charges {
        assert!(
            c.renewable_j >= 0.0 && c.grid_j >= 0.0 && c.co2_g >= 0.0,
            "{c:?}"
        );
        assert!((c.renewable_j + c.grid_j - c.energy_j).abs() <= 1e-9 * c.energy_j.max(1.0));
    }
    for limit in &billed.power_limits {
        assert!(limit.limit_w.is_finite() && limit.limit_w >= 0.0);
    }
});
