//! The latest measured power, as reported by the node agents, shared between the ingest
//! endpoint (which writes it) and the scheduling cycle and EnergySite controller (which
//! read it). It holds only the newest window per node and per job: history lives in the
//! store. After an operator restart it is empty until the next reports arrive (10 s), and
//! readers fall back to estimates meanwhile.

use std::collections::HashMap;
use std::sync::RwLock;

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
}

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
}
