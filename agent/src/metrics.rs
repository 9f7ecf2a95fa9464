//! The agent's Prometheus metrics: GPU gauges under the DCGM exporter's names and labels,
//! so existing GPU dashboards work unchanged, and the agent's own under `verdant_agent_`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use verdant_crds::wire::PodRef;

use crate::sample::GpuSample;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The DCGM exporter's GPU metrics (same names, units and labels).
struct DcgmGauges {
    power_usage_w: Family<Labels, FloatGauge>,
    total_energy_mj: Family<Labels, FloatGauge>,
    gpu_util_percent: Family<Labels, FloatGauge>,
    mem_copy_util_percent: Family<Labels, FloatGauge>,
    fb_used_mib: Family<Labels, FloatGauge>,
    fb_free_mib: Family<Labels, FloatGauge>,
    gpu_temp_c: Family<Labels, FloatGauge>,
    sm_clock_mhz: Family<Labels, FloatGauge>,
    power_mgmt_limit_w: Family<Labels, FloatGauge>,
}

impl DcgmGauges {
    fn all(&self) -> [&Family<Labels, FloatGauge>; 9] {
        [
            &self.power_usage_w,
            &self.total_energy_mj,
            &self.gpu_util_percent,
            &self.mem_copy_util_percent,
            &self.fb_used_mib,
            &self.fb_free_mib,
            &self.gpu_temp_c,
            &self.sm_clock_mhz,
            &self.power_mgmt_limit_w,
        ]
    }
}

/// Every metric the agent exports, registered once.
pub struct Metrics {
    registry: Registry,
    hostname: String,
    dcgm: DcgmGauges,
    /// The label set each GPU's series carry now, to retire series when a GPU changes hands.
    current_labels: Mutex<HashMap<String, Labels>>,
    /// Sampling rounds.
    pub samples: Counter,
    /// GPU readings that failed, by kind.
    pub sample_errors: Family<Labels, Counter>,
    /// Windows closed.
    pub windows: Counter,
    /// Reports the operator accepted (duplicates included).
    pub reports_sent: Counter,
    /// Reports accepted as duplicates.
    pub reports_duplicate: Counter,
    /// Reports given up, by reason (`rejected`, `buffer_full`, `too_large`, `unreadable`, `disk_error`).
    pub reports_dropped: Family<Labels, Counter>,
    /// Failed attempts that will be retried, by reason.
    pub report_retries: Family<Labels, Counter>,
    /// Reports waiting in the disk buffer.
    pub buffered_reports: Gauge,
    /// Unix time of the last accepted report, s.
    pub last_report_success_s: Gauge,
    /// Power-limit target from the operator per GPU, W (absent: none).
    pub power_limit_target_w: Family<Labels, FloatGauge>,
    /// Power-limit changes, by result (`applied`, `restored`, `failed`, `read_only`).
    pub power_limit_changes: Family<Labels, Counter>,
    /// 1 for the attribution source in use.
    pub attribution_source: Family<Labels, Gauge>,
}

impl Metrics {
    /// Metrics for the node `hostname` (the `Hostname` label).
    pub fn new(hostname: &str, backend: &str) -> Self {
        let mut registry = Registry::default();
        let gauge = Family::<Labels, FloatGauge>::default;
        let dcgm = DcgmGauges {
            power_usage_w: gauge(),
            total_energy_mj: gauge(),
            gpu_util_percent: gauge(),
            mem_copy_util_percent: gauge(),
            fb_used_mib: gauge(),
            fb_free_mib: gauge(),
            gpu_temp_c: gauge(),
            sm_clock_mhz: gauge(),
            power_mgmt_limit_w: gauge(),
        };
        for (name, help, family) in [
            (
                "DCGM_FI_DEV_POWER_USAGE",
                "Power draw (in W)",
                &dcgm.power_usage_w,
            ),
            (
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                "Total energy consumption since boot (in mJ)",
                &dcgm.total_energy_mj,
            ),
            (
                "DCGM_FI_DEV_GPU_UTIL",
                "GPU utilization (in %)",
                &dcgm.gpu_util_percent,
            ),
            (
                "DCGM_FI_DEV_MEM_COPY_UTIL",
                "Memory utilization (in %)",
                &dcgm.mem_copy_util_percent,
            ),
            (
                "DCGM_FI_DEV_FB_USED",
                "Framebuffer memory used (in MiB)",
                &dcgm.fb_used_mib,
            ),
            (
                "DCGM_FI_DEV_FB_FREE",
                "Framebuffer memory free (in MiB)",
                &dcgm.fb_free_mib,
            ),
            (
                "DCGM_FI_DEV_GPU_TEMP",
                "GPU temperature (in C)",
                &dcgm.gpu_temp_c,
            ),
            (
                "DCGM_FI_DEV_SM_CLOCK",
                "SM clock frequency (in MHz)",
                &dcgm.sm_clock_mhz,
            ),
            (
                "DCGM_FI_DEV_POWER_MGMT_LIMIT",
                "Power management limit (in W)",
                &dcgm.power_mgmt_limit_w,
            ),
        ] {
            registry.register(name, help, family.clone());
        }

        let samples = Counter::default();
        let sample_errors = Family::<Labels, Counter>::default();
        let windows = Counter::default();
        let reports_sent = Counter::default();
        let reports_duplicate = Counter::default();
        let reports_dropped = Family::<Labels, Counter>::default();
        let report_retries = Family::<Labels, Counter>::default();
        let buffered_reports = Gauge::default();
        let last_report_success_s = Gauge::default();
        let power_limit_target_w = Family::<Labels, FloatGauge>::default();
        let power_limit_changes = Family::<Labels, Counter>::default();
        let attribution_source = Family::<Labels, Gauge>::default();
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&vec![
                ("version".to_owned(), crate::VERSION.to_owned()),
                ("backend".to_owned(), backend.to_owned()),
            ])
            .set(1);

        let agent = registry.sub_registry_with_prefix("verdant_agent");
        agent.register("samples", "Sampling rounds over all GPUs", samples.clone());
        agent.register(
            "sample_errors",
            "GPU readings that failed, by kind",
            sample_errors.clone(),
        );
        agent.register("windows", "Report windows closed", windows.clone());
        agent.register(
            "reports_sent",
            "Reports the operator accepted",
            reports_sent.clone(),
        );
        agent.register(
            "reports_duplicate",
            "Reports the operator had stored already",
            reports_duplicate.clone(),
        );
        agent.register(
            "reports_dropped",
            "Reports given up, by reason (rejected, buffer_full, too_large, unreadable, disk_error)",
            reports_dropped.clone(),
        );
        agent.register(
            "report_retries",
            "Report attempts that failed and will be retried, by reason",
            report_retries.clone(),
        );
        agent.register(
            "buffered_reports",
            "Reports waiting in the disk buffer",
            buffered_reports.clone(),
        );
        agent.register(
            "last_report_success_timestamp_seconds",
            "Unix time of the last report the operator accepted",
            last_report_success_s.clone(),
        );
        agent.register(
            "power_limit_target_watts",
            "Power-limit target from the operator, per GPU",
            power_limit_target_w.clone(),
        );
        agent.register(
            "power_limit_changes",
            "Power-limit changes, by result (applied, restored, failed, read_only)",
            power_limit_changes.clone(),
        );
        agent.register(
            "attribution_source",
            "1 for the way GPUs are attributed to pods now",
            attribution_source.clone(),
        );
        agent.register("build_info", "The agent's version and backend", build_info);

        Self {
            registry,
            hostname: hostname.to_owned(),
            dcgm,
            current_labels: Mutex::new(HashMap::new()),
            samples,
            sample_errors,
            windows,
            reports_sent,
            reports_duplicate,
            reports_dropped,
            report_retries,
            buffered_reports,
            last_report_success_s,
            power_limit_target_w,
            power_limit_changes,
            attribution_source,
        }
    }

    /// Sets the GPU gauges from one round of samples. `holder` gives each GPU's pod.
    pub fn record_samples<'a>(
        &self,
        samples: &[GpuSample],
        holder: impl Fn(&GpuSample) -> Option<&'a PodRef>,
    ) {
        let mut current = self
            .current_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for s in samples {
            let pod = s.pod.as_ref().or_else(|| holder(s));
            let labels = self.gpu_labels(s, pod);
            if let Some(old) = current.get(&s.uuid)
                && *old != labels
            {
                for family in self.dcgm.all() {
                    family.remove(old);
                }
            }
            let mib = |bytes: u64| (bytes >> 20) as f64;
            let d = &self.dcgm;
            d.power_usage_w.get_or_create(&labels).set(s.power_w);
            if let Some(mj) = s.energy_mj {
                d.total_energy_mj.get_or_create(&labels).set(mj as f64);
            }
            d.gpu_util_percent
                .get_or_create(&labels)
                .set(s.gpu_util_percent);
            d.mem_copy_util_percent
                .get_or_create(&labels)
                .set(s.mem_util_percent);
            d.fb_used_mib
                .get_or_create(&labels)
                .set(mib(s.memory_used_bytes));
            d.fb_free_mib.get_or_create(&labels).set(mib(s
                .memory_total_bytes
                .saturating_sub(s.memory_used_bytes)));
            d.gpu_temp_c.get_or_create(&labels).set(s.temperature_c);
            d.sm_clock_mhz
                .get_or_create(&labels)
                .set(f64::from(s.sm_clock_mhz));
            d.power_mgmt_limit_w
                .get_or_create(&labels)
                .set(s.power_limit_w);
            current.insert(s.uuid.clone(), labels);
        }
        self.samples.inc();
    }

    /// Marks `source` as the attribution in use.
    pub fn set_attribution_source(&self, source: &str) {
        for s in ["backend", "podresources", "cgroup", "none"] {
            self.attribution_source
                .get_or_create(&vec![("source".to_owned(), s.to_owned())])
                .set(i64::from(s == source));
        }
    }

    /// Counts an event in a family with one label.
    pub fn count(family: &Family<Labels, Counter>, label: &str, value: &str) {
        family
            .get_or_create(&vec![(label.to_owned(), value.to_owned())])
            .inc();
    }

    /// The labels of one GPU for the per-GPU `verdant_agent_` metrics.
    pub fn gpu_id_labels(index: u32, uuid: &str) -> Labels {
        vec![
            ("gpu".to_owned(), index.to_string()),
            ("UUID".to_owned(), uuid.to_owned()),
        ]
    }

    fn gpu_labels(&self, s: &GpuSample, pod: Option<&PodRef>) -> Labels {
        let (namespace, name, container) = pod
            .map(|p| (p.namespace.clone(), p.name.clone(), p.container.clone()))
            .unwrap_or_default();
        vec![
            ("gpu".to_owned(), s.index.to_string()),
            ("UUID".to_owned(), s.uuid.clone()),
            ("device".to_owned(), format!("nvidia{}", s.index)),
            ("modelName".to_owned(), s.model.clone()),
            ("Hostname".to_owned(), self.hostname.clone()),
            ("container".to_owned(), container),
            ("namespace".to_owned(), namespace),
            ("pod".to_owned(), name),
        ]
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
