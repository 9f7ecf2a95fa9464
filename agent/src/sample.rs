//! One reading of one GPU: what `verdant-agent sample` prints and what the window
//! aggregates are built from.

use serde::Serialize;
use verdant_crds::wire::PodRef;

/// One reading of one GPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuSample {
    /// NVML UUID, e.g. `GPU-5f1c…`.
    pub uuid: String,
    /// NVML index on the node.
    pub index: u32,
    /// Model name, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// When the reading was taken, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Power draw, W.
    pub power_w: f64,
    /// Whether `power_w` is the instantaneous reading (`NVML_FI_DEV_POWER_INSTANT`)
    /// rather than the driver's one-second average.
    pub power_instant: bool,
    /// The total-energy counter, mJ since the driver loaded; `None` where the GPU has none
    /// (before Volta).
    pub energy_mj: Option<u64>,
    /// GPU utilization, percent.
    pub gpu_util_percent: f64,
    /// Memory-controller utilization, percent.
    pub mem_util_percent: f64,
    /// Memory used, bytes.
    pub memory_used_bytes: u64,
    /// Memory total, bytes.
    pub memory_total_bytes: u64,
    /// Temperature, °C.
    pub temperature_c: f64,
    /// SM clock, MHz.
    pub sm_clock_mhz: u32,
    /// Power limit in force, W.
    pub power_limit_w: f64,
    /// The driver's default power limit, W.
    pub default_power_limit_w: f64,
    /// Lowest settable power limit, W.
    pub min_power_limit_w: f64,
    /// Highest settable power limit, W.
    pub max_power_limit_w: f64,
    /// Compute processes on the GPU (host pids).
    pub pids: Vec<u32>,
    /// The pod holding the GPU, when the backend knows it itself (the simulated backend
    /// assigns GPUs to pods); NVML leaves this to pod attribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
}

impl GpuSample {
    /// Clamps a requested power limit to the GPU's allowed range.
    pub fn clamp_power_limit_w(&self, limit_w: f64) -> f64 {
        if self.min_power_limit_w > 0.0 && self.max_power_limit_w >= self.min_power_limit_w {
            limit_w.clamp(self.min_power_limit_w, self.max_power_limit_w)
        } else {
            limit_w
        }
    }
}

/// The current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
