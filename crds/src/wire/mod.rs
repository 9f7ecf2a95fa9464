//! The wire format between `verdant-agent` and the operator's ingest endpoint
//! (`POST /v1/reports`, JSON). Versioned by `AgentReport::schema`.
//!
//! # HTTP semantics
//! The operator serves the endpoint on `--ingest-addr` (default `0.0.0.0:9090`), plain
//! HTTP. Each request carries `Authorization: Bearer <projected ServiceAccount token>`
//! (audience `verdant`). Answers:
//! - `200` with [`IngestResponse`]: the window is stored (committed) — or it had been
//!   stored before with the same content (`duplicate: true`): a retry after a lost answer
//!   is safe. Reports are idempotent on (node, `windowStartMs`). GPUs attributed to a pod
//!   the operator does not see Pending or Running on `node` are listed in
//!   `refusedGpus`: stored, but billed to no job.
//! - `400` (malformed JSON, invalid values), `403` (the token is not the agent's, or its
//!   pod runs on another node than `node`), `409` (this node's window was stored before
//!   with different content), `413` (body over [`MAX_REPORT_BYTES`]): retrying the same
//!   report cannot succeed; the agent logs the [`IngestError`] and drops it.
//! - `401`: no token, or the API server rejected it (expired, its pod deleted, wrong
//!   audience). Re-read the token file and retry.
//! - `503`: the store or the API server is unavailable; retry the same report later.
//!
//! What a report must satisfy is in [`validate`].

pub mod sample;
pub mod validate;

use serde::{Deserialize, Serialize};
use verdant_core::accounting::GpuDraw;

/// The current report schema version.
pub const REPORT_SCHEMA: u32 = 1;

/// The largest report body the operator accepts, in bytes.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// One report window of one node: what its GPUs drew and who used them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReport {
    /// Schema version, [`REPORT_SCHEMA`].
    pub schema: u32,
    /// The Kubernetes node the agent runs on.
    pub node: String,
    /// The agent's version.
    pub agent_version: String,
    /// Start of the window, Unix milliseconds (inclusive).
    pub window_start_ms: i64,
    /// End of the window, Unix milliseconds (exclusive).
    pub window_end_ms: i64,
    /// Per-GPU aggregates over the window.
    pub gpus: Vec<GpuWindow>,
}

/// One GPU over one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuWindow {
    /// NVML UUID, e.g. `GPU-5f1c…`.
    pub uuid: String,
    /// NVML index on the node.
    pub index: u32,
    /// Model name, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// Samples taken in the window.
    pub samples: u32,
    /// Mean power draw, W.
    pub mean_power_w: f64,
    /// Max power draw, W.
    pub max_power_w: f64,
    /// Energy in the window, J: from the total-energy counter where the GPU has one,
    /// else integrated power.
    pub energy_j: f64,
    /// Whether the energy counter went backwards in the window (driver reload): the
    /// energy then counts from the reset.
    #[serde(default)]
    pub energy_counter_reset: bool,
    /// Mean GPU utilization, percent.
    pub mean_gpu_util_percent: f64,
    /// Mean memory-controller utilization, percent.
    pub mean_mem_util_percent: f64,
    /// Memory used at the end of the window, bytes.
    pub memory_used_bytes: u64,
    /// Memory total, bytes.
    pub memory_total_bytes: u64,
    /// Temperature at the end of the window, °C.
    pub temperature_c: f64,
    /// SM clock at the end of the window, MHz.
    pub sm_clock_mhz: u32,
    /// Power limit in force, W.
    pub power_limit_w: f64,
    /// The driver's default power limit, W.
    pub default_power_limit_w: f64,
    /// Lowest settable power limit, W.
    pub min_power_limit_w: f64,
    /// Highest settable power limit, W.
    pub max_power_limit_w: f64,
    /// The pod holding this GPU, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
}

impl GpuWindow {
    /// The GPU as billing reads it.
    pub fn draw(&self) -> GpuDraw {
        GpuDraw {
            energy_j: self.energy_j,
            mean_power_w: self.mean_power_w,
            default_power_limit_w: self.default_power_limit_w,
            busy: self.pod.is_some(),
        }
    }
}

/// A container of a pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Container name.
    #[serde(default)]
    pub container: String,
}

/// The operator's answer to an accepted report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestResponse {
    /// True when the report is stored (or was stored before: reports are idempotent).
    pub accepted: bool,
    /// True when this window had been stored already.
    #[serde(default)]
    pub duplicate: bool,
    /// Power limits the operator wants on this node's GPUs. A GPU not listed goes back to
    /// its default limit.
    #[serde(default)]
    pub power_limits: Vec<PowerLimitTarget>,
    /// GPUs whose pod the operator does not bill (the pod is unknown, bound to another
    /// node, or not running there). Their readings are stored and count for the site's
    /// load; no job is charged for them. Empty for a fully billed report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_gpus: Vec<RefusedGpu>,
}

/// A GPU of an accepted report that is billed to no job, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedGpu {
    /// NVML UUID.
    pub uuid: String,
    /// A short machine-readable reason: `pod_not_found`, `pod_not_on_node`,
    /// `pod_not_active`.
    pub reason: String,
    /// What the operator saw, for the agent's log.
    pub message: String,
}

/// A power limit for one GPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PowerLimitTarget {
    /// NVML UUID.
    pub uuid: String,
    /// The limit, W (the agent clamps it to the GPU's allowed range).
    pub limit_w: f64,
}

/// An error answer (4xx/5xx) of the ingest endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestError {
    /// Why the report was refused.
    pub error: String,
}
