//! Sound example values of the wire types, for the tests of the crates that read them
//! (the validation here, the operator's billing and attribution).

use super::{AgentReport, GpuWindow, PodRef, REPORT_SCHEMA};

/// When the sample report's window ends, Unix ms (2026-11-29T12:00:00Z).
pub const NOW_MS: i64 = 1_795_953_600_000;

/// A sound reading of GPU `index` (an H100) drawing `watts` for 10 s, held by pod
/// `ml/llama-0`.
pub fn gpu(index: u32, watts: f64) -> GpuWindow {
    GpuWindow {
        uuid: format!("GPU-{index}"),
        index,
        model: "NVIDIA H100 80GB HBM3".into(),
        samples: 10,
        mean_power_w: watts,
        max_power_w: watts,
        energy_j: watts * 10.0,
        energy_counter_reset: false,
        mean_gpu_util_percent: 50.0,
        mean_mem_util_percent: 20.0,
        memory_used_bytes: 1,
        memory_total_bytes: 2,
        temperature_c: 50.0,
        sm_clock_mhz: 1500,
        power_limit_w: 700.0,
        default_power_limit_w: 700.0,
        min_power_limit_w: 200.0,
        max_power_limit_w: 700.0,
        pod: Some(PodRef {
            namespace: "ml".into(),
            name: "llama-0".into(),
            container: "trainer".into(),
        }),
    }
}

/// A sound report of node `gpu-1` over the 10 s before [`NOW_MS`].
pub fn report(gpus: Vec<GpuWindow>) -> AgentReport {
    AgentReport {
        schema: REPORT_SCHEMA,
        node: "gpu-1".into(),
        agent_version: "0.1.0".into(),
        window_start_ms: NOW_MS - 10_000,
        window_end_ms: NOW_MS,
        gpus,
    }
}
