//! The operator's Prometheus metrics (OpenMetrics, prometheus-client).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// Every metric the operator exports, registered once.
pub struct Metrics {
    registry: Registry,
    /// Duration of one scheduling cycle (snapshot, engine, bookkeeping).
    pub cycle_duration: Histogram,
    /// Duration of the engine alone within a cycle.
    pub engine_duration: Histogram,
    /// From a job's creation (or gang restart) to its whole gang bound.
    pub placement_latency: Histogram,
    /// Jobs by phase.
    pub jobs: Family<Labels, Gauge>,
    /// Scheduling decisions by reason.
    pub decisions: Family<Labels, Counter>,
    /// Renewable headroom per site now (supply − load), kW.
    pub site_headroom_kw: Family<Labels, FloatGauge>,
    /// Renewable supply per site and source now, kW.
    pub site_renewable_kw: Family<Labels, FloatGauge>,
    /// Load per site now, kW.
    pub site_load_kw: Family<Labels, FloatGauge>,
    /// State of charge of each site battery, a fraction of its capacity.
    pub site_battery_soc_ratio: Family<Labels, FloatGauge>,
    /// Energy stored in each site battery, kWh.
    pub site_battery_soc_kwh: Family<Labels, FloatGauge>,
    /// Forecast renewable supply per site and horizon (`1h`, `6h`, `24h`, `48h`), kW.
    pub site_forecast_kw: Family<Labels, FloatGauge>,
    /// Age of each site's forecast (now − its last successful refresh), s.
    pub site_forecast_age_s: Family<Labels, FloatGauge>,
    /// Latest start − now of each job that has not started and has a deadline or a
    /// maxDelay, s (negative: it is late).
    pub job_deadline_slack_s: Family<Labels, Gauge>,
    /// End of the newest report window received from each node's agent, Unix s.
    pub node_last_report_s: Family<Labels, Gauge>,
    /// Energy accounted to jobs, by namespace, site and source (`renewable`, `grid`), kWh.
    pub energy_kwh: Family<Labels, FloatCounter>,
    /// CO₂ of the grid energy accounted to jobs, by namespace and site, g.
    pub co2_grams: Family<Labels, FloatCounter>,
    /// Reconcile errors by kind.
    pub reconcile_errors: Family<Labels, Counter>,
    /// Reconciliations run.
    pub reconciliations: Counter,
    /// Pods bound by Verdant.
    pub pods_bound: Counter,
    /// 1 while this replica leads (always, without `--leader-elect`), else 0.
    pub leader: Gauge,
    /// The agents' ingest endpoint and the energy store.
    pub ingest: crate::ingest::metrics::IngestMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("verdant");
        let cycle_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let engine_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let placement_latency = Histogram::new(exponential_buckets(0.05, 2.0, 16));
        let jobs = Family::<Labels, Gauge>::default();
        let decisions = Family::<Labels, Counter>::default();
        let site_headroom_kw = Family::<Labels, FloatGauge>::default();
        let site_renewable_kw = Family::<Labels, FloatGauge>::default();
        let site_load_kw = Family::<Labels, FloatGauge>::default();
        let site_forecast_kw = Family::<Labels, FloatGauge>::default();
        let site_battery_soc_ratio = Family::<Labels, FloatGauge>::default();
        let site_battery_soc_kwh = Family::<Labels, FloatGauge>::default();
        let site_forecast_age_s = Family::<Labels, FloatGauge>::default();
        let job_deadline_slack_s = Family::<Labels, Gauge>::default();
        let node_last_report_s = Family::<Labels, Gauge>::default();
        let energy_kwh = Family::<Labels, FloatCounter>::default();
        let co2_grams = Family::<Labels, FloatCounter>::default();
        let reconcile_errors = Family::<Labels, Counter>::default();
        let reconciliations = Counter::default();
        let pods_bound = Counter::default();
        let leader = Gauge::default();
        let ingest = crate::ingest::metrics::IngestMetrics::register(&mut registry);
        registry.register(
            "scheduling_cycle_duration_seconds",
            "Duration of one scheduling cycle",
            cycle_duration.clone(),
        );
        registry.register(
            "engine_duration_seconds",
            "Duration of the placement engine within a cycle",
            engine_duration.clone(),
        );
        registry.register(
            "placement_latency_seconds",
            "Time from a job's creation or gang restart to its whole gang bound",
            placement_latency.clone(),
        );
        registry.register("jobs", "TrainingJobs by phase", jobs.clone());
        registry.register(
            "scheduling_decisions",
            "Scheduling decisions by reason",
            decisions.clone(),
        );
        registry.register(
            "site_headroom_kw",
            "Renewable headroom per site now: supply minus load, kW",
            site_headroom_kw.clone(),
        );
        registry.register(
            "site_renewable_kw",
            "Renewable supply per site and source now, kW",
            site_renewable_kw.clone(),
        );
        registry.register(
            "site_load_kw",
            "Facility load per site now (IT load × PUE), kW",
            site_load_kw.clone(),
        );
        registry.register(
            "site_battery_state_of_charge_ratio",
            "Estimated state of charge of each site battery (spec.storage), 0 to 1",
            site_battery_soc_ratio.clone(),
        );
        registry.register(
            "site_battery_state_of_charge_kwh",
            "Estimated energy stored in each site battery, kWh",
            site_battery_soc_kwh.clone(),
        );
        registry.register(
            "site_forecast_kw",
            "Forecast renewable supply per site for the hour starting `horizon` hours after the current one (48h: the last forecast hour), kW",
            site_forecast_kw.clone(),
        );
        registry.register(
            "site_forecast_age_seconds",
            "Seconds since each site's forecast was last refreshed successfully",
            site_forecast_age_s.clone(),
        );
        registry.register(
            "job_deadline_slack_seconds",
            "Latest start minus now of each job not started yet that has a deadline or a maxDelay, s (negative: late)",
            job_deadline_slack_s.clone(),
        );
        registry.register(
            "ingest_last_report_timestamp_seconds",
            "End of the newest report window received from each node's agent, Unix time",
            node_last_report_s.clone(),
        );
        registry.register(
            "energy_kwh",
            "GPU energy accounted to TrainingJobs, by namespace, site and source (renewable, grid), kWh",
            energy_kwh.clone(),
        );
        registry.register(
            "co2_grams",
            "CO2 of the grid energy accounted to TrainingJobs, by namespace and site, g",
            co2_grams.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by kind",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconciliations",
            "TrainingJob reconciliations run",
            reconciliations.clone(),
        );
        registry.register(
            "pods_bound",
            "Pods bound to nodes by Verdant",
            pods_bound.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (or runs without --leader-elect)",
            leader.clone(),
        );
        Self {
            registry,
            cycle_duration,
            engine_duration,
            placement_latency,
            jobs,
            decisions,
            site_headroom_kw,
            site_renewable_kw,
            site_load_kw,
            site_forecast_kw,
            site_battery_soc_ratio,
            site_battery_soc_kwh,
            site_forecast_age_s,
            job_deadline_slack_s,
            node_last_report_s,
            energy_kwh,
            co2_grams,
            reconcile_errors,
            reconciliations,
            pods_bound,
            leader,
            ingest,
        }
    }
}

impl Metrics {
    /// Counts energy billed to a job of `namespace` at `site`.
    pub fn record_energy(
        &self,
        namespace: &str,
        site: &str,
        renewable_kwh: f64,
        grid_kwh: f64,
        co2_g: f64,
    ) {
        let labels = |source: Option<&str>| {
            let mut labels = vec![
                ("namespace".to_owned(), namespace.to_owned()),
                ("site".to_owned(), site.to_owned()),
            ];
            if let Some(source) = source {
                labels.push(("source".to_owned(), source.to_owned()));
            }
            labels
        };
        // A counter must never go down, nor turn NaN.
        let valid = |x: f64| x.is_finite() && x >= 0.0;
        for (source, kwh) in [("renewable", renewable_kwh), ("grid", grid_kwh)] {
            let counter = self.energy_kwh.get_or_create(&labels(Some(source)));
            if valid(kwh) {
                counter.inc_by(kwh);
            }
        }
        let counter = self.co2_grams.get_or_create(&labels(None));
        if valid(co2_g) {
            counter.inc_by(co2_g);
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// One label pair.
pub fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_counted_per_namespace_site_and_source() {
        let metrics = Metrics::default();
        metrics.record_energy("ml", "solar-a", 1.5, 0.5, 190.0);
        metrics.record_energy("ml", "solar-a", 0.5, f64::NAN, -3.0);
        let text = metrics.render();
        for line in [
            r#"verdant_energy_kwh_total{namespace="ml",site="solar-a",source="renewable"} 2.0"#,
            r#"verdant_energy_kwh_total{namespace="ml",site="solar-a",source="grid"} 0.5"#,
            r#"verdant_co2_grams_total{namespace="ml",site="solar-a"} 190.0"#,
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
