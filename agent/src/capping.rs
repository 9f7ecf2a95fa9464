//! Power capping: applies the operator's per-GPU power-limit targets within each GPU's
//! allowed range, puts back the default limit when a target is withdrawn and on exit, and
//! does nothing at all with `--read-only`.

use std::collections::HashMap;

use verdant_crds::wire::PowerLimitTarget;

use crate::backend::GpuBackend;
use crate::metrics::Metrics;
use crate::sample::GpuSample;

/// Limits closer than this to the one in force are left alone, W.
const TOLERANCE_W: f64 = 0.5;

/// The GPUs this agent has capped, and to what.
pub struct PowerCapper {
    read_only: bool,
    /// UUID → limit this agent set, W.
    capped: HashMap<String, f64>,
    /// The last target set, to log a read-only refusal once per change.
    last_targets: Vec<PowerLimitTarget>,
}

impl PowerCapper {
    /// A capper; with `read_only` it never touches a limit.
    pub fn new(read_only: bool) -> Self {
        Self {
            read_only,
            capped: HashMap::new(),
            last_targets: Vec::new(),
        }
    }

    /// The GPUs capped now, UUID → W.
    pub fn capped(&self) -> &HashMap<String, f64> {
        &self.capped
    }

    /// Makes the limits match `targets` (the complete set for this node: GPUs not listed go
    /// back to their default). `gpus` are the latest readings, for the allowed ranges.
    pub fn apply(
        &mut self,
        backend: &mut dyn GpuBackend,
        gpus: &[GpuSample],
        targets: &[PowerLimitTarget],
        metrics: &Metrics,
    ) {
        let changed = targets != self.last_targets.as_slice();
        self.last_targets = targets.to_vec();
        for gpu in gpus {
            let labels = Metrics::gpu_id_labels(gpu.index, &gpu.uuid);
            match targets.iter().find(|t| t.uuid == gpu.uuid) {
                Some(t) => {
                    metrics
                        .power_limit_target_w
                        .get_or_create(&labels)
                        .set(t.limit_w);
                }
                None => {
                    metrics.power_limit_target_w.remove(&labels);
                }
            }
        }
        if self.read_only {
            if changed && !targets.is_empty() {
                tracing::warn!(
                    targets = targets.len(),
                    "the operator asks for power limits; not applying them: --read-only"
                );
                Metrics::count(&metrics.power_limit_changes, "result", "read_only");
            }
            return;
        }
        for target in targets {
            let Some(gpu) = gpus.iter().find(|g| g.uuid == target.uuid) else {
                if changed {
                    tracing::warn!(uuid = %target.uuid, "power-limit target for a GPU this node does not have");
                }
                continue;
            };
            if !target.limit_w.is_finite() || target.limit_w <= 0.0 {
                if changed {
                    tracing::warn!(uuid = %target.uuid, limit_w = target.limit_w, "ignoring a nonsensical power-limit target");
                }
                continue;
            }
            let limit_w = gpu.clamp_power_limit_w(target.limit_w);
            if (gpu.power_limit_w - limit_w).abs() <= TOLERANCE_W {
                self.capped.insert(gpu.uuid.clone(), limit_w);
                continue;
            }
            match backend.set_power_limit(&gpu.uuid, limit_w) {
                Ok(()) => {
                    tracing::info!(gpu = gpu.index, uuid = %gpu.uuid, requested_w = target.limit_w, limit_w, "power limit applied");
                    Metrics::count(&metrics.power_limit_changes, "result", "applied");
                    self.capped.insert(gpu.uuid.clone(), limit_w);
                }
                Err(error) => {
                    tracing::warn!(%error, "power limit not applied");
                    Metrics::count(&metrics.power_limit_changes, "result", "failed");
                }
            }
        }
        let withdrawn: Vec<String> = self
            .capped
            .keys()
            .filter(|uuid| !targets.iter().any(|t| &t.uuid == *uuid))
            .cloned()
            .collect();
        for uuid in withdrawn {
            self.restore(backend, gpus, &uuid, metrics);
        }
    }

    /// Puts every GPU this agent capped back to its default limit (on exit).
    pub fn restore_all(
        &mut self,
        backend: &mut dyn GpuBackend,
        gpus: &[GpuSample],
        metrics: &Metrics,
    ) {
        let uuids: Vec<String> = self.capped.keys().cloned().collect();
        for uuid in uuids {
            self.restore(backend, gpus, &uuid, metrics);
        }
    }

    fn restore(
        &mut self,
        backend: &mut dyn GpuBackend,
        gpus: &[GpuSample],
        uuid: &str,
        metrics: &Metrics,
    ) {
        let Some(gpu) = gpus.iter().find(|g| g.uuid == uuid) else {
            self.capped.remove(uuid);
            return;
        };
        match backend.set_power_limit(uuid, gpu.default_power_limit_w) {
            Ok(()) => {
                tracing::info!(gpu = gpu.index, %uuid, limit_w = gpu.default_power_limit_w, "power limit restored to the default");
                Metrics::count(&metrics.power_limit_changes, "result", "restored");
                self.capped.remove(uuid);
            }
            Err(error) => {
                // Kept, so the next round (or exit) tries again.
                tracing::warn!(%error, "restoring the default power limit failed");
                Metrics::count(&metrics.power_limit_changes, "result", "failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::simulated::{NoPods, SimConfig, SimulatedBackend};

    fn sim() -> SimulatedBackend {
        SimulatedBackend::new(
            SimConfig {
                node: "n1".into(),
                gpus: 2,
                model: "NVIDIA H100 80GB HBM3".into(),
                idle_w: 70.0,
                max_w: 700.0,
                busy_util_percent: 90.0,
                free_util_percent: 100.0,
            },
            Box::new(NoPods),
        )
        .unwrap()
    }

    fn target(uuid: &str, limit_w: f64) -> PowerLimitTarget {
        PowerLimitTarget {
            uuid: uuid.into(),
            limit_w,
        }
    }

    #[test]
    fn targets_are_clamped_applied_and_withdrawn() {
        let metrics = Metrics::new("n1", "simulated");
        let mut backend = sim();
        let mut capper = PowerCapper::new(false);
        let s = backend.sample_at(0).gpus;
        let (a, b) = (s[0].uuid.clone(), s[1].uuid.clone());
        // 50 W is below the 210 W minimum: clamped.
        capper.apply(
            &mut backend,
            &s,
            &[target(&a, 350.0), target(&b, 50.0)],
            &metrics,
        );
        let s = backend.sample_at(1000).gpus;
        assert_eq!((s[0].power_limit_w, s[1].power_limit_w), (350.0, 210.0));
        assert_eq!((s[0].power_w, s[1].power_w), (350.0, 210.0));
        // b withdrawn: back to its default.
        capper.apply(&mut backend, &s, &[target(&a, 350.0)], &metrics);
        let s = backend.sample_at(2000).gpus;
        assert_eq!((s[0].power_limit_w, s[1].power_limit_w), (350.0, 700.0));
        assert_eq!(capper.capped().len(), 1);
        capper.restore_all(&mut backend, &s, &metrics);
        let s = backend.sample_at(3000).gpus;
        assert_eq!((s[0].power_limit_w, s[1].power_limit_w), (700.0, 700.0));
        assert!(capper.capped().is_empty());
        let text = metrics.render();
        assert!(
            text.contains("verdant_agent_power_limit_changes_total{result=\"applied\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("verdant_agent_power_limit_changes_total{result=\"restored\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn read_only_never_sets_a_limit() {
        let metrics = Metrics::new("n1", "simulated");
        let mut backend = sim();
        let mut capper = PowerCapper::new(true);
        let s = backend.sample_at(0).gpus;
        capper.apply(&mut backend, &s, &[target(&s[0].uuid, 300.0)], &metrics);
        capper.restore_all(&mut backend, &s, &metrics);
        let s = backend.sample_at(1000).gpus;
        assert_eq!(s[0].power_limit_w, 700.0);
        assert!(
            metrics
                .render()
                .contains("verdant_agent_power_limit_changes_total{result=\"read_only\"} 1")
        );
    }

    #[test]
    fn nonsense_targets_are_ignored() {
        let metrics = Metrics::new("n1", "simulated");
        let mut backend = sim();
        let mut capper = PowerCapper::new(false);
        let s = backend.sample_at(0).gpus;
        capper.apply(
            &mut backend,
            &s,
            &[
                target(&s[0].uuid, f64::NAN),
                target(&s[1].uuid, -5.0),
                target("GPU-other", 300.0),
            ],
            &metrics,
        );
        assert!(capper.capped().is_empty());
    }
}
