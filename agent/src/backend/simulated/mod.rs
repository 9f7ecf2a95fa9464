//! The simulated backend: N GPUs of a named model whose load follows the pods bound to
//! the node, so that the whole system runs on KWOK nodes and machines without GPUs.
//!
//! Each container that requests `nvidia.com/gpu` gets that many GPUs (the lowest free
//! indices, kept for the container's lifetime, as the device plugin would do). A GPU held
//! by a running container is busy at the pod's annotation
//! `verdant.dev/simulated-gpu-utilization` (percent), else at `--sim-busy-util`; any other
//! GPU runs at `--sim-free-gpu-util` (0 by default: idle). Power follows
//!
//! ```text
//! power_w = min(idle_w + (max_w − idle_w) × utilization, power_limit_w)
//! ```
//!
//! and is constant between two samples; the energy counter integrates it exactly
//! (energy += power × time since the previous sample, at every sample), so window energies are exact to the
//! millijoule.
//!
//! Power limits live in memory, or, with [`SimulatedBackend::persist_limits_in`], in a
//! file that outlives the process, as a real GPU keeps its limit when the agent that set
//! it is killed.

mod demand;
mod identity;
mod limits_file;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use demand::{DemandSource, GpuDemand, NoPods, UTILIZATION_ANNOTATION};
pub use identity::simulated_uuid;

use crate::backend::{BackendError, GpuBackend, SampleSet};
use crate::sample::{GpuSample, now_ms};
use demand::Assignments;
use identity::memory_gib_from_model;

/// The simulated node's GPUs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The node name, which seeds the GPUs' UUIDs (stable across restarts).
    pub node: String,
    /// Number of GPUs.
    pub gpus: u32,
    /// Model name, as NVML would report it.
    pub model: String,
    /// Power at 0 % utilization, W.
    pub idle_w: f64,
    /// Power at 100 % utilization, W; also the default and highest power limit.
    pub max_w: f64,
    /// Utilization of a GPU held by a running container without the annotation, percent.
    pub busy_util_percent: f64,
    /// Utilization of a GPU no container holds, percent.
    pub free_util_percent: f64,
}

#[derive(Clone, Debug)]
struct SimGpu {
    uuid: String,
    /// The energy counter, mJ, kept exact in floating point.
    energy_mj: f64,
    /// Power since the last sample, W.
    power_w: f64,
    power_limit_w: f64,
}

/// GPUs that exist only in memory.
pub struct SimulatedBackend {
    config: SimConfig,
    source: Box<dyn DemandSource>,
    gpus: Vec<SimGpu>,
    assignments: Assignments,
    last_sample_ms: Option<i64>,
    min_limit_w: f64,
    memory_total_bytes: u64,
    /// Where the power limits persist (the simulated hardware's state).
    limits_file: Option<PathBuf>,
}

impl SimulatedBackend {
    /// A simulated node. Rejects configurations that cannot describe a GPU.
    pub fn new(config: SimConfig, source: Box<dyn DemandSource>) -> Result<Self, BackendError> {
        if !(config.idle_w >= 0.0 && config.max_w > config.idle_w && config.max_w.is_finite()) {
            return Err(BackendError::Unavailable(format!(
                "simulated GPUs need 0 <= idle watts < max watts, got idle {} W and max {} W",
                config.idle_w, config.max_w
            )));
        }
        for (name, v) in [
            ("--sim-busy-util", config.busy_util_percent),
            ("--sim-free-gpu-util", config.free_util_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(BackendError::Unavailable(format!(
                    "{name} must be a percentage between 0 and 100, got {v}"
                )));
            }
        }
        let gpus = (0..config.gpus)
            .map(|index| SimGpu {
                uuid: simulated_uuid(&config.node, index),
                energy_mj: 0.0,
                power_w: config.idle_w,
                power_limit_w: config.max_w,
            })
            .collect();
        let min_limit_w = (config.max_w * 0.3).round().max(config.idle_w.ceil());
        let memory_total_bytes = memory_gib_from_model(&config.model) << 30;
        Ok(Self {
            config,
            source,
            gpus,
            assignments: Assignments::default(),
            last_sample_ms: None,
            min_limit_w,
            memory_total_bytes,
            limits_file: None,
        })
    }

    /// Keeps the GPUs' power limits in `path` (JSON, UUID → W): read now, written at
    /// every change. A missing file means every GPU at its default.
    pub fn persist_limits_in(mut self, path: PathBuf) -> Result<Self, BackendError> {
        let limits = limits_file::read(&path)?;
        for gpu in &mut self.gpus {
            if let Some(&w) = limits.get(&gpu.uuid)
                && (self.min_limit_w..=self.config.max_w).contains(&w)
            {
                gpu.power_limit_w = w;
            }
        }
        self.limits_file = Some(path);
        Ok(self)
    }

    fn save_limits(&self) -> Result<(), String> {
        let Some(path) = &self.limits_file else {
            return Ok(());
        };
        let limits: BTreeMap<&str, f64> = self
            .gpus
            .iter()
            .map(|g| (g.uuid.as_str(), g.power_limit_w))
            .collect();
        limits_file::write(path, &limits)
    }

    /// Samples as of `timestamp_ms` (Unix ms; tests drive time with this). The counter
    /// integrates over the samples' own timestamps, so that it agrees to the millijoule
    /// with power integrated over the same readings.
    pub fn sample_at(&mut self, timestamp_ms: i64) -> SampleSet {
        // Integrate the power of the interval that just ended, before anything changes.
        if let Some(last) = self.last_sample_ms {
            // A wall clock stepped back integrates nothing rather than going negative.
            let dt_ms = (timestamp_ms - last).max(0) as f64;
            for gpu in &mut self.gpus {
                gpu.energy_mj += gpu.power_w * dt_ms;
            }
        }
        self.last_sample_ms = Some(timestamp_ms);

        let demands = self.source.demands();
        self.assignments.update(&demands, self.config.gpus);
        let by_gpu = self.assignments.holders(&demands);

        let mut set = SampleSet::default();
        for (index, gpu) in self.gpus.iter_mut().enumerate() {
            let holder = by_gpu.get(&(index as u32));
            let util_percent = match holder {
                Some(d) if d.running => d
                    .util_percent
                    .unwrap_or(self.config.busy_util_percent)
                    .clamp(0.0, 100.0),
                Some(_) => 0.0,
                None => self.config.free_util_percent,
            };
            let uncapped_w = self.config.idle_w
                + (self.config.max_w - self.config.idle_w) * util_percent / 100.0;
            gpu.power_w = uncapped_w.min(gpu.power_limit_w);
            let throttle = if uncapped_w > 0.0 {
                gpu.power_w / uncapped_w
            } else {
                1.0
            };
            let busy = util_percent > 0.0;
            set.gpus.push(GpuSample {
                uuid: gpu.uuid.clone(),
                index: index as u32,
                model: self.config.model.clone(),
                timestamp_ms,
                power_w: gpu.power_w,
                power_instant: true,
                energy_mj: Some(gpu.energy_mj.round() as u64),
                gpu_util_percent: util_percent,
                mem_util_percent: util_percent * 0.5,
                memory_used_bytes: if busy {
                    self.memory_total_bytes / 100 * 85
                } else {
                    0
                },
                memory_total_bytes: self.memory_total_bytes,
                temperature_c: (30.0 + 50.0 * gpu.power_w / self.config.max_w).round(),
                sm_clock_mhz: if busy {
                    (345.0 + (1980.0 - 345.0) * throttle).round() as u32
                } else {
                    345
                },
                power_limit_w: gpu.power_limit_w,
                default_power_limit_w: self.config.max_w,
                min_power_limit_w: self.min_limit_w,
                max_power_limit_w: self.config.max_w,
                pids: Vec::new(),
                pod: holder.map(|d| d.pod.clone()),
            });
        }
        set
    }
}

impl GpuBackend for SimulatedBackend {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn sample(&mut self) -> SampleSet {
        self.sample_at(now_ms())
    }

    fn set_power_limit(&mut self, uuid: &str, limit_w: f64) -> Result<(), BackendError> {
        let min_limit_w = self.min_limit_w;
        let max_w = self.config.max_w;
        let gpu = self
            .gpus
            .iter_mut()
            .find(|g| g.uuid == uuid)
            .ok_or_else(|| BackendError::UnknownGpu(uuid.to_owned()))?;
        if !(min_limit_w..=max_w).contains(&limit_w) {
            return Err(BackendError::SetPowerLimit {
                uuid: uuid.to_owned(),
                limit_w,
                reason: format!("outside the allowed range {min_limit_w}–{max_w} W"),
            });
        }
        // Takes effect from the next sample on, like a real limit within the next
        // driver control period.
        let before = gpu.power_limit_w;
        gpu.power_limit_w = limit_w;
        self.save_limits().map_err(|reason| {
            if let Some(gpu) = self.gpus.iter_mut().find(|g| g.uuid == uuid) {
                gpu.power_limit_w = before;
            }
            BackendError::SetPowerLimit {
                uuid: uuid.to_owned(),
                limit_w,
                reason,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use verdant_crds::wire::PodRef;

    use super::*;

    fn config(gpus: u32) -> SimConfig {
        SimConfig {
            node: "gpu-node-1".into(),
            gpus,
            model: "NVIDIA H100 80GB HBM3".into(),
            idle_w: 70.0,
            max_w: 700.0,
            busy_util_percent: 90.0,
            free_util_percent: 0.0,
        }
    }

    fn demand(name: &str, gpus: u32, running: bool, util: Option<f64>) -> GpuDemand {
        GpuDemand {
            key: format!("uid-{name}/main"),
            pod: PodRef {
                namespace: "ml".into(),
                name: name.into(),
                container: "main".into(),
            },
            gpus,
            running,
            util_percent: util,
        }
    }

    #[test]
    fn power_follows_the_curve_and_the_counter_integrates_it_exactly() {
        let pods = vec![
            demand("a", 2, true, None),
            demand("b", 1, true, Some(50.0)),
            demand("c", 1, false, None),
        ];
        let mut sim = SimulatedBackend::new(config(8), Box::new(pods)).unwrap();
        let first = sim.sample_at(0);
        let watts: Vec<f64> = first.gpus.iter().map(|g| g.power_w).collect();
        // 70 + 630 × 0.9 = 637; 70 + 630 × 0.5 = 385; pending and free GPUs idle.
        assert_eq!(watts, [637.0, 637.0, 385.0, 70.0, 70.0, 70.0, 70.0, 70.0]);
        assert_eq!(first.gpus[0].pod.as_ref().unwrap().name, "a");
        assert_eq!(first.gpus[2].pod.as_ref().unwrap().name, "b");
        assert_eq!(first.gpus[3].pod.as_ref().unwrap().name, "c");
        assert!(first.gpus[4].pod.is_none());

        let later = sim.sample_at(10_250);
        // 637 W × 10.25 s = 6529.25 J.
        assert_eq!(later.gpus[0].energy_mj, Some(6_529_250));
        assert_eq!(later.gpus[2].energy_mj, Some(3_946_250));
        assert_eq!(later.gpus[7].energy_mj, Some(717_500));
    }

    #[test]
    fn assignments_stay_put_and_freed_gpus_are_reused() {
        let pods = std::sync::Arc::new(std::sync::Mutex::new(vec![
            demand("a", 2, true, None),
            demand("b", 2, true, None),
        ]));
        let source = {
            let pods = pods.clone();
            move || pods.lock().unwrap().clone()
        };
        let mut sim = SimulatedBackend::new(config(4), Box::new(source)).unwrap();
        let holders = |set: &SampleSet| -> Vec<Option<String>> {
            set.gpus
                .iter()
                .map(|g| g.pod.as_ref().map(|p| p.name.clone()))
                .collect()
        };
        let s = sim.sample_at(0);
        assert_eq!(
            holders(&s),
            [
                Some("a".into()),
                Some("a".into()),
                Some("b".into()),
                Some("b".into())
            ]
        );
        pods.lock().unwrap().remove(0);
        pods.lock().unwrap().push(demand("c", 1, true, None));
        pods.lock().unwrap().push(demand("d", 4, true, None)); // does not fit
        let s = sim.sample_at(1000);
        assert_eq!(
            holders(&s),
            [Some("c".into()), None, Some("b".into()), Some("b".into())]
        );
    }

    #[test]
    fn a_power_limit_caps_the_power_from_the_next_sample_on() {
        let mut sim =
            SimulatedBackend::new(config(1), Box::new(vec![demand("a", 1, true, Some(100.0))]))
                .unwrap();
        let s = sim.sample_at(0);
        assert_eq!(s.gpus[0].power_w, 700.0);
        assert_eq!(
            (s.gpus[0].min_power_limit_w, s.gpus[0].max_power_limit_w),
            (210.0, 700.0)
        );
        let uuid = s.gpus[0].uuid.clone();
        sim.set_power_limit(&uuid, 400.0).unwrap();
        let s = sim.sample_at(1000);
        // The second before the cap drew 700 W.
        assert_eq!(s.gpus[0].energy_mj, Some(700_000));
        assert_eq!((s.gpus[0].power_w, s.gpus[0].power_limit_w), (400.0, 400.0));
        assert!(s.gpus[0].sm_clock_mhz < 1980);
        let s = sim.sample_at(2000);
        assert_eq!(s.gpus[0].energy_mj, Some(1_100_000));
        assert!(matches!(
            sim.set_power_limit(&uuid, 100.0),
            Err(BackendError::SetPowerLimit { .. })
        ));
        assert!(matches!(
            sim.set_power_limit("GPU-nope", 300.0),
            Err(BackendError::UnknownGpu(_))
        ));
    }

    #[test]
    fn persisted_limits_outlive_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gpus.json");
        let open = || {
            SimulatedBackend::new(config(2), Box::new(NoPods))
                .unwrap()
                .persist_limits_in(file.clone())
                .unwrap()
        };
        let mut sim = open();
        let uuid = sim.sample_at(0).gpus[1].uuid.clone();
        sim.set_power_limit(&uuid, 300.0).unwrap();
        drop(sim);
        let s = open().sample_at(0);
        assert_eq!(
            (s.gpus[0].power_limit_w, s.gpus[1].power_limit_w),
            (700.0, 300.0)
        );
        std::fs::write(&file, "[").unwrap();
        let error = SimulatedBackend::new(config(2), Box::new(NoPods))
            .unwrap()
            .persist_limits_in(file.clone())
            .err()
            .unwrap();
        assert!(error.to_string().contains("gpus.json"), "{error}");
    }

    #[test]
    fn nonsense_power_curves_are_refused() {
        let mut c = config(1);
        c.max_w = 50.0;
        assert!(SimulatedBackend::new(c, Box::new(NoPods)).is_err());
        let mut c = config(1);
        c.busy_util_percent = 150.0;
        assert!(SimulatedBackend::new(c, Box::new(NoPods)).is_err());
    }
}
