//! Where GPU readings come from: NVML on real GPUs, or a simulation driven by the pods
//! bound to the node.

pub mod nvml;
pub mod simulated;

use crate::sample::GpuSample;

/// A source of GPU readings that can also set power limits.
///
/// Implementations are synchronous: NVML calls block, so the agent drives a backend from
/// its own sampling thread.
pub trait GpuBackend: Send {
    /// `nvml` or `simulated`.
    fn name(&self) -> &'static str;

    /// Reads every GPU once. A GPU that cannot be read is left out and its error
    /// returned beside the readings of the others.
    fn sample(&mut self) -> SampleSet;

    /// Sets a GPU's power limit, W (already clamped to its allowed range).
    fn set_power_limit(&mut self, uuid: &str, limit_w: f64) -> Result<(), BackendError>;
}

/// One round of readings.
#[derive(Debug, Default)]
pub struct SampleSet {
    /// The GPUs that could be read.
    pub gpus: Vec<GpuSample>,
    /// Why the others could not.
    pub errors: Vec<BackendError>,
}

/// What went wrong talking to the GPUs.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// NVML could not be loaded or initialised: no driver, no library, no permission.
    #[error("{0}")]
    Unavailable(String),
    /// A GPU could not be read.
    #[error("GPU {index}: {what} failed: {source}")]
    Device {
        /// NVML index.
        index: u32,
        /// The call that failed.
        what: &'static str,
        /// NVML's error.
        source: ::nvml_wrapper::error::NvmlError,
    },
    /// No GPU with that UUID.
    #[error("no GPU with UUID {0} on this node")]
    UnknownGpu(String),
    /// Setting a power limit failed.
    #[error("setting the power limit of GPU {uuid} to {limit_w:.0} W failed: {reason}")]
    SetPowerLimit {
        /// The GPU.
        uuid: String,
        /// The requested limit.
        limit_w: f64,
        /// Why.
        reason: String,
    },
}

impl BackendError {
    /// A short label for the `verdant_agent_sample_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BackendError::Unavailable(_) => "unavailable",
            BackendError::Device { .. } => "device",
            BackendError::UnknownGpu(_) => "unknown_gpu",
            BackendError::SetPowerLimit { .. } => "set_power_limit",
        }
    }
}
