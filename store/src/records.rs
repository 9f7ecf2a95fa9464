//! What goes into the store and what comes out.

/// One accepted agent report: its idempotency key and what it was billed with.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRecord {
    /// The node the report is for.
    pub node: String,
    /// Window start, Unix ms (with `node`, the idempotency key).
    pub window_start_ms: i64,
    /// Window end, Unix ms.
    pub window_end_ms: i64,
    /// When the operator received it, Unix ms.
    pub received_ms: i64,
    /// The agent's version.
    pub agent_version: String,
    /// A hash of the report's content: an identical retry is a duplicate, anything else
    /// for the same key is a conflict.
    pub content_hash: String,
    /// How the window was billed; `None` when the node belongs to no site.
    pub billing: Option<SiteBilling>,
}

/// The site window a report was billed with (`verdant_core::accounting::SiteWindow`,
/// plus the share it gave).
#[derive(Clone, Debug, PartialEq)]
pub struct SiteBilling {
    /// The EnergySite.
    pub site: String,
    /// GPU power of all the site's nodes, W.
    pub gpu_power_w: f64,
    /// Base power of the site's nodes, W.
    pub base_power_w: f64,
    /// PUE.
    pub pue: f64,
    /// Renewable supply, W.
    pub renewable_supply_w: f64,
    /// Grid carbon intensity, g/kWh.
    pub grid_carbon_g_per_kwh: f64,
    /// The renewable share of every joule in the window, 0..=1.
    pub renewable_share: f64,
}

/// One GPU over one report window.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuSample {
    /// Node.
    pub node: String,
    /// Window start, Unix ms.
    pub window_start_ms: i64,
    /// Window end, Unix ms.
    pub window_end_ms: i64,
    /// NVML UUID.
    pub gpu_uuid: String,
    /// NVML index.
    pub gpu_index: i64,
    /// Model name.
    pub model: String,
    /// Samples the agent took in the window.
    pub samples: i64,
    /// Mean power, W.
    pub mean_power_w: f64,
    /// Max power, W.
    pub max_power_w: f64,
    /// Energy, J.
    pub energy_j: f64,
    /// Whether the energy counter went backwards in the window.
    pub energy_counter_reset: bool,
    /// Mean GPU utilization, percent.
    pub mean_gpu_util_percent: f64,
    /// Mean memory utilization, percent.
    pub mean_mem_util_percent: f64,
    /// Memory used, bytes.
    pub memory_used_bytes: i64,
    /// Memory total, bytes.
    pub memory_total_bytes: i64,
    /// Temperature, °C.
    pub temperature_c: f64,
    /// SM clock, MHz.
    pub sm_clock_mhz: i64,
    /// Power limit in force, W.
    pub power_limit_w: f64,
    /// The pod holding the GPU: (namespace, name, container).
    pub pod: Option<(String, String, String)>,
    /// The TrainingJob (uid) the GPU's energy was billed to.
    pub job_uid: Option<String>,
}

/// Energy billed to one job by one report.
#[derive(Clone, Debug, PartialEq)]
pub struct JobCharge {
    /// The TrainingJob's uid.
    pub job_uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The site it ran at.
    pub site: String,
    /// Energy, J.
    pub energy_j: f64,
    /// Of it renewable, J.
    pub renewable_j: f64,
    /// Of it from the grid, J.
    pub grid_j: f64,
    /// CO₂ of the grid part, g.
    pub co2_g: f64,
}

/// Everything one report writes.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportWrite {
    /// The report.
    pub report: ReportRecord,
    /// Its GPUs.
    pub samples: Vec<GpuSample>,
    /// What it bills to jobs.
    pub charges: Vec<JobCharge>,
}

/// What became of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored now.
    Stored,
    /// Stored before with the same content: nothing changed.
    Duplicate,
    /// Stored before with different content: nothing changed.
    Conflict,
}

/// A job's energy, summed over every window billed to it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobLedger {
    /// The TrainingJob's uid.
    pub job_uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The site of its latest window.
    pub site: Option<String>,
    /// Energy, J.
    pub energy_j: f64,
    /// Of it renewable, J.
    pub renewable_j: f64,
    /// Of it from the grid, J.
    pub grid_j: f64,
    /// CO₂ of the grid part, g.
    pub co2_g: f64,
    /// Earliest window start billed, Unix ms.
    pub first_window_start_ms: i64,
    /// Latest window end billed, Unix ms.
    pub last_window_end_ms: i64,
    /// When the ledger last changed, Unix ms.
    pub updated_ms: i64,
    /// When the job was seen gone, Unix ms.
    pub deleted_ms: Option<i64>,
}

/// One GPU over one hour.
#[derive(Clone, Debug, PartialEq)]
pub struct HourlyAggregate {
    /// Node.
    pub node: String,
    /// NVML UUID.
    pub gpu_uuid: String,
    /// Start of the hour, Unix ms.
    pub hour_start_ms: i64,
    /// Model name.
    pub model: String,
    /// Windows that started in the hour.
    pub windows: i64,
    /// Milliseconds those windows cover.
    pub covered_ms: i64,
    /// Energy, J.
    pub energy_j: f64,
    /// Highest power in any window, W.
    pub max_power_w: f64,
    /// Σ utilization × window length, percent·ms (÷ `covered_ms` = mean utilization).
    pub gpu_util_percent_ms: f64,
}

impl HourlyAggregate {
    /// Mean power over the covered time, W.
    pub fn mean_power_w(&self) -> f64 {
        if self.covered_ms > 0 {
            self.energy_j / (self.covered_ms as f64 / 1000.0)
        } else {
            0.0
        }
    }
}

/// A stored report's key and billing, as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReport {
    /// Node.
    pub node: String,
    /// Window start, Unix ms.
    pub window_start_ms: i64,
    /// Window end, Unix ms.
    pub window_end_ms: i64,
    /// GPUs in the report.
    pub gpu_count: i64,
    /// Content hash.
    pub content_hash: String,
    /// Billing, when the node had a site.
    pub billing: Option<SiteBilling>,
}
