//! The ingest endpoint's and the store's metrics, registered in the operator's registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Ingest and store metrics.
pub struct IngestMetrics {
    /// Reports accepted, by outcome (`stored`, `duplicate`).
    pub reports: Family<Labels, Counter>,
    /// Reports refused, by reason.
    pub rejected: Family<Labels, Counter>,
    /// GPU windows stored.
    pub gpu_samples: Counter,
    /// GPUs of accepted reports billed to no job because their pod is refused, by reason.
    pub gpus_refused: Family<Labels, Counter>,
    /// GPU energy counters that went backwards (driver reload, GPU reset).
    pub counter_resets: Counter,
    /// Request handling time, from the first byte to the answer.
    pub request_duration: Histogram,
    /// Reports per store transaction.
    pub batch_reports: Histogram,
    /// Time of one store transaction.
    pub write_duration: Histogram,
    /// TrainingJob `status.energy` writes.
    pub energy_status_writes: Counter,
}

impl IngestMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reports: Family::default(),
            rejected: Family::default(),
            gpu_samples: Counter::default(),
            gpus_refused: Family::default(),
            counter_resets: Counter::default(),
            request_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            batch_reports: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            write_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            energy_status_writes: Counter::default(),
        };
        registry.register(
            "ingest_reports",
            "Agent reports accepted, by outcome (stored, duplicate)",
            metrics.reports.clone(),
        );
        registry.register(
            "ingest_rejected",
            "Agent reports refused, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "ingest_gpu_samples",
            "GPU windows stored",
            metrics.gpu_samples.clone(),
        );
        registry.register(
            "ingest_gpus_refused",
            "GPUs of accepted reports billed to no job: their pod is unknown, on another node or not running (reason)",
            metrics.gpus_refused.clone(),
        );
        registry.register(
            "ingest_energy_counter_resets",
            "GPU energy counters that went backwards (driver reload or GPU reset)",
            metrics.counter_resets.clone(),
        );
        registry.register(
            "ingest_request_duration_seconds",
            "Handling time of one report, including the commit",
            metrics.request_duration.clone(),
        );
        registry.register(
            "store_batch_reports",
            "Reports per store transaction",
            metrics.batch_reports.clone(),
        );
        registry.register(
            "store_write_duration_seconds",
            "Duration of one store transaction",
            metrics.write_duration.clone(),
        );
        registry.register(
            "energy_status_writes",
            "TrainingJob status.energy updates written",
            metrics.energy_status_writes.clone(),
        );
        metrics
    }
}
