//! How much a job draws: per-GPU watts × GPUs × PUE, and when running jobs stop drawing.

use super::snapshot::{EngineConfig, Job, Node, Site};

/// Per-GPU draw of each node's GPU model, in watts (`gpu_watts_by_model`, else the default).
pub fn node_gpu_watts(nodes: &[Node], config: &EngineConfig) -> Vec<f64> {
    nodes
        .iter()
        .map(|n| {
            config
                .gpu_watts_by_model
                .get(&n.gpu_model)
                .copied()
                .unwrap_or(config.default_gpu_watts)
        })
        .collect()
}

/// The job's uncapped per-GPU draw on a node whose model draws `model_watts`: the
/// measurement wins over the model table.
pub fn job_gpu_watts(job: &Job, model_watts: f64) -> f64 {
    job.measured_gpu_watts
        .filter(|w| w.is_finite() && *w >= 0.0)
        .unwrap_or(model_watts)
}

/// Uncapped facility power, in kW, of `replicas` replicas of `job` on GPUs drawing
/// `model_watts` each at a site with `pue`.
pub fn replicas_kw(job: &Job, replicas: u32, model_watts: f64, pue: f64) -> f64 {
    f64::from(replicas) * f64::from(job.gpus_per_replica) * job_gpu_watts(job, model_watts) * pue
        / 1000.0
}

/// Uncapped facility power, in kW, of `job` with one replica per listed node.
pub fn job_kw_on(
    job: &Job,
    node_indices: impl IntoIterator<Item = u32>,
    node_watts: &[f64],
    pue: f64,
) -> f64 {
    node_indices
        .into_iter()
        .map(|n| {
            replicas_kw(
                job,
                1,
                node_watts.get(n as usize).copied().unwrap_or(0.0),
                pue,
            )
        })
        .sum()
}

/// The site's PUE, or 1 where the snapshot holds nonsense (≤ 0, NaN): a bad PUE must
/// not turn every job's power into NaN.
pub fn site_pue(site: &Site) -> f64 {
    if site.pue.is_finite() && site.pue > 0.0 {
        site.pue
    } else {
        1.0
    }
}

/// The share of uncapped power a job draws under its current cap.
pub fn cap_factor(job: &Job) -> f64 {
    f64::from(job.power_cap_percent.unwrap_or(100).min(100)) / 100.0
}

/// When a running job is expected to stop drawing power: start + estimate, or, for a job
/// that has outlived its estimate, `overrun_extension_s` from now (it is still drawing).
pub fn running_end_s(job: &Job, started_s: i64, now_s: i64, config: &EngineConfig) -> i64 {
    let end_s = started_s.saturating_add(job.planned_duration_s(config));
    if end_s > now_s {
        end_s
    } else {
        now_s + config.overrun_extension_s.max(1)
    }
}
