//! The latest measured power, as reported by the node agents, shared between the ingest
//! endpoint (which writes it) and the scheduling cycle and EnergySite controller (which
//! read it). It holds only the newest window per node and per job: history lives in the
//! store. After an operator restart it is empty until the next reports arrive (10 s), and
//! readers fall back to estimates meanwhile.

use std::collections::HashMap;
use std::sync::RwLock;

use verdant_core::placement::{EngineConfig, JobState, Snapshot};

/// How long a measurement stays current, in seconds.
pub const FRESH_FOR_S: i64 = 60;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Reading {
    value: f64,
    at_s: i64,
}

/// Latest measured power per node and per job.
#[derive(Default)]
pub struct Telemetry {
    node_gpu_power_w: RwLock<HashMap<String, Reading>>,
    job_gpu_watts: RwLock<HashMap<String, Reading>>,
    model_gpu_watts: RwLock<HashMap<String, Reading>>,
}

/// How long a per-model average stays usable, in seconds: it describes the model, not one
/// job, so it outlives the jobs it was measured on.
pub const MODEL_FRESH_FOR_S: i64 = 3600;
/// Weight of a new report in a per-model average.
const MODEL_SMOOTHING: f64 = 0.2;

impl Telemetry {
    /// Records the mean GPU power of a node's report window ending at `at_s`.
    pub fn record_node(&self, node: &str, gpu_power_w: f64, at_s: i64) {
        let mut map = self
            .node_gpu_power_w
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let newer = map.get(node).is_none_or(|r| r.at_s <= at_s);
        if newer && gpu_power_w.is_finite() && gpu_power_w >= 0.0 {
            map.insert(
                node.to_owned(),
                Reading {
                    value: gpu_power_w,
                    at_s,
                },
            );
        }
    }

    /// Records a job's mean draw per GPU (`namespace/name`) over a window ending at `at_s`.
    pub fn record_job(&self, job_id: &str, watts_per_gpu: f64, at_s: i64) {
        let mut map = self
            .job_gpu_watts
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let newer = map.get(job_id).is_none_or(|r| r.at_s <= at_s);
        if newer && watts_per_gpu.is_finite() && watts_per_gpu >= 0.0 {
            map.insert(
                job_id.to_owned(),
                Reading {
                    value: watts_per_gpu,
                    at_s,
                },
            );
        }
    }

    /// Folds the mean draw of a node's busy GPUs (those running a pod) into the moving
    /// average of their model (`nvidia.com/gpu.product`), for jobs not measured yet.
    pub fn record_model(&self, model: &str, watts_per_gpu: f64, at_s: i64) {
        if !(watts_per_gpu.is_finite() && watts_per_gpu >= 0.0) {
            return;
        }
        let mut map = self
            .model_gpu_watts
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let reading = match map.get(model) {
            Some(r) if at_s - r.at_s <= MODEL_FRESH_FOR_S => Reading {
                value: r.value + MODEL_SMOOTHING * (watts_per_gpu - r.value),
                at_s: at_s.max(r.at_s),
            },
            _ => Reading {
                value: watts_per_gpu,
                at_s,
            },
        };
        map.insert(model.to_owned(), reading);
    }

    /// Measured mean draw per busy GPU of each model, W, updated in the last
    /// [`MODEL_FRESH_FOR_S`] seconds.
    pub fn model_gpu_watts(&self, now_s: i64) -> Vec<(String, f64)> {
        let map = self
            .model_gpu_watts
            .read()
            .unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, r)| now_s - r.at_s <= MODEL_FRESH_FOR_S)
            .map(|(model, r)| (model.clone(), r.value))
            .collect()
    }

    /// Gives the placement engine what was measured: each running job's fresh per-GPU
    /// draw (uncapped: a capped job's draw is scaled back up by its cap), and each GPU
    /// model's measured average for jobs not running yet, over the configured watts.
    pub fn apply_measurements(
        &self,
        snapshot: &mut Snapshot,
        config: &mut EngineConfig,
        now_s: i64,
    ) {
        for job in &mut snapshot.jobs {
            if !matches!(job.state, JobState::Running { .. }) {
                continue;
            }
            if let Some(watts) = self.job_gpu_watts(&job.id, now_s) {
                let cap = job
                    .power_cap_percent
                    .filter(|p| (1..100).contains(p))
                    .map_or(1.0, |p| f64::from(p) / 100.0);
                job.measured_gpu_watts = Some(watts / cap);
            }
        }
        for (model, watts) in self.model_gpu_watts(now_s) {
            if watts > 0.0 {
                config.gpu_watts_by_model.insert(model, watts);
            }
        }
    }

    /// The node's measured GPU power, W, if reported in the last [`FRESH_FOR_S`] seconds.
    pub fn node_gpu_power_w(&self, node: &str, now_s: i64) -> Option<f64> {
        let map = self
            .node_gpu_power_w
            .read()
            .unwrap_or_else(|p| p.into_inner());
        map.get(node)
            .filter(|r| now_s - r.at_s <= FRESH_FOR_S)
            .map(|r| r.value)
    }

    /// The end of the newest window reported for the node (Unix seconds), however old.
    pub fn node_last_report_s(&self, node: &str) -> Option<i64> {
        let map = self
            .node_gpu_power_w
            .read()
            .unwrap_or_else(|p| p.into_inner());
        map.get(node).map(|r| r.at_s)
    }

    /// The job's measured draw per GPU, W, if reported in the last [`FRESH_FOR_S`] seconds.
    pub fn job_gpu_watts(&self, job_id: &str, now_s: i64) -> Option<f64> {
        let map = self.job_gpu_watts.read().unwrap_or_else(|p| p.into_inner());
        map.get(job_id)
            .filter(|r| now_s - r.at_s <= FRESH_FOR_S)
            .map(|r| r.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_reading_and_forgets_stale_ones() {
        let t = Telemetry::default();
        t.record_node("n1", 2800.0, 100);
        t.record_node("n1", 1000.0, 90); // an older window arriving late
        assert_eq!(t.node_gpu_power_w("n1", 120), Some(2800.0));
        assert_eq!(t.node_gpu_power_w("n1", 100 + FRESH_FOR_S + 1), None);
        assert_eq!(t.node_last_report_s("n1"), Some(100), "kept, however old");
        assert_eq!(t.node_last_report_s("n2"), None);
        t.record_node("n1", f64::NAN, 200);
        assert_eq!(
            t.node_gpu_power_w("n1", 120),
            Some(2800.0),
            "NaN is ignored"
        );
        t.record_job("ml/llama", 650.0, 100);
        assert_eq!(t.job_gpu_watts("ml/llama", 110), Some(650.0));
        assert_eq!(t.job_gpu_watts("ml/other", 110), None);
    }

    #[test]
    fn the_engine_gets_measured_watts_uncapped() {
        use verdant_core::placement::{Job, Policy};
        let t = Telemetry::default();
        t.record_job("ml/capped", 400.0, 100);
        t.record_job("ml/free", 650.0, 100);
        t.record_model("NVIDIA-H100-80GB-HBM3", 640.0, 100);
        let job = |id: &str, running: bool, cap: Option<u32>| Job {
            id: id.into(),
            replicas: 1,
            gpus_per_replica: 8,
            state: if running {
                JobState::Running {
                    site: "a".into(),
                    nodes: vec![0],
                    started_s: 0,
                }
            } else {
                JobState::Pending
            },
            policy: Policy::Immediate,
            min_renewable_fraction: 0.0,
            interruptible: false,
            power_cap_min_percent: None,
            power_cap_percent: cap,
            priority: 0,
            created_s: 0,
            latest_start_s: None,
            estimated_duration_s: None,
            measured_gpu_watts: None,
            allowed_sites: vec![],
            allowed_nodes: None,
            elastic: None,
        };
        let mut snapshot = Snapshot {
            now_s: 110,
            sites: vec![],
            nodes: vec![],
            jobs: vec![
                job("ml/capped", true, Some(80)),
                job("ml/free", true, None),
                job("ml/new", false, None),
            ],
        };
        let mut config = EngineConfig::default();
        t.apply_measurements(&mut snapshot, &mut config, 110);
        assert_eq!(snapshot.jobs[0].measured_gpu_watts, Some(500.0));
        assert_eq!(snapshot.jobs[1].measured_gpu_watts, Some(650.0));
        assert_eq!(snapshot.jobs[2].measured_gpu_watts, None);
        assert_eq!(config.gpu_watts_by_model["NVIDIA-H100-80GB-HBM3"], 640.0);
    }

    #[test]
    fn per_model_watts_are_a_moving_average() {
        let t = Telemetry::default();
        t.record_model("H100", 600.0, 100);
        t.record_model("H100", 700.0, 110);
        assert_eq!(t.model_gpu_watts(120), vec![("H100".to_owned(), 620.0)]);
        assert!(t.model_gpu_watts(110 + MODEL_FRESH_FOR_S + 1).is_empty());
        t.record_model("H100", f64::NAN, 120);
        assert_eq!(t.model_gpu_watts(120), vec![("H100".to_owned(), 620.0)]);
    }
}
