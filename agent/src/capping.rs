//! Power capping: applies the operator's per-GPU power-limit targets within each GPU's
//! allowed range, puts back the default limit when a target is withdrawn, on exit, and on
//! the next start after a crash (the limits set are recorded on disk first, see
//! [`cap_record`](crate::cap_record)), and does nothing at all with `--read-only`.

use std::collections::HashMap;

use verdant_crds::wire::PowerLimitTarget;

use crate::backend::{GpuBackend, SampleSet};
use crate::cap_record::CapRecord;
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
    /// `capped` on disk; `None` keeps it in memory only (tests, `sample`).
    record: Option<CapRecord>,
}

impl PowerCapper {
    /// A capper; with `read_only` it never touches a limit. With a `record`, every GPU is
    /// recorded there before it is capped and until its default is back.
    pub fn new(read_only: bool, record: Option<CapRecord>) -> Self {
        Self {
            read_only,
            capped: HashMap::new(),
            last_targets: Vec::new(),
            record,
        }
    }

    /// On start: puts back the default limit of every GPU the record says an earlier run
    /// capped (it was killed before it could). `reading` is a first reading; a recorded
    /// GPU missing from it is forgotten only when every GPU could be read (it is gone),
    /// else kept for the next restore.
    pub fn recover(
        &mut self,
        backend: &mut dyn GpuBackend,
        reading: &SampleSet,
        metrics: &Metrics,
    ) {
        let gpus = reading.gpus.as_slice();
        let Some(record) = &self.record else { return };
        let recorded = match record.load() {
            Ok(recorded) => recorded,
            Err(error) => {
                tracing::error!(path = %record.path().display(), %error, "cannot read the record of power limits set before; GPUs an earlier run capped may stay capped. Check the file, or reset the limits with nvidia-smi -rpl");
                return;
            }
        };
        if recorded.is_empty() {
            return;
        }
        if self.read_only {
            tracing::warn!(gpus = ?recorded, "an earlier run capped these GPUs and did not restore them; --read-only leaves them as they are");
            return;
        }
        tracing::info!(
            gpus = recorded.len(),
            "an earlier run ended without restoring its power limits; restoring the defaults"
        );
        self.capped.extend(recorded);
        let uuids: Vec<String> = self.capped.keys().cloned().collect();
        for uuid in uuids {
            if !gpus.iter().any(|g| g.uuid == uuid) {
                if reading.errors.is_empty() {
                    tracing::warn!(%uuid, "a GPU recorded as capped is not on this node any more; forgetting it");
                    self.capped.remove(&uuid);
                    self.persist();
                } else {
                    tracing::warn!(%uuid, "a GPU recorded as capped could not be read; its default limit is restored once it can be");
                }
                continue;
            }
            self.restore(backend, gpus, &uuid, metrics);
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
            let before = self.capped.insert(gpu.uuid.clone(), limit_w);
            if before != Some(limit_w) && !self.persist() {
                // Unrecorded, a cap could outlive a crash of this agent: not set.
                self.forget(&gpu.uuid, before);
                Metrics::count(&metrics.power_limit_changes, "result", "failed");
                continue;
            }
            if (gpu.power_limit_w - limit_w).abs() <= TOLERANCE_W {
                continue;
            }
            match backend.set_power_limit(&gpu.uuid, limit_w) {
                Ok(()) => {
                    tracing::info!(gpu = gpu.index, uuid = %gpu.uuid, requested_w = target.limit_w, limit_w, "power limit applied");
                    Metrics::count(&metrics.power_limit_changes, "result", "applied");
                }
                Err(error) => {
                    tracing::warn!(%error, "power limit not applied");
                    Metrics::count(&metrics.power_limit_changes, "result", "failed");
                    self.forget(&gpu.uuid, before);
                    self.persist();
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
            self.persist();
            return;
        };
        match backend.set_power_limit(uuid, gpu.default_power_limit_w) {
            Ok(()) => {
                tracing::info!(gpu = gpu.index, %uuid, limit_w = gpu.default_power_limit_w, "power limit restored to the default");
                Metrics::count(&metrics.power_limit_changes, "result", "restored");
                self.capped.remove(uuid);
                self.persist();
            }
            Err(error) => {
                // Kept, so the next round (or exit) tries again.
                tracing::warn!(%error, "restoring the default power limit failed");
                Metrics::count(&metrics.power_limit_changes, "result", "failed");
            }
        }
    }

    /// Puts a GPU's entry back to what it was before a cap that did not happen.
    fn forget(&mut self, uuid: &str, before: Option<f64>) {
        match before {
            Some(w) => self.capped.insert(uuid.to_owned(), w),
            None => self.capped.remove(uuid),
        };
    }

    /// Writes `capped` to the record; false (logged) when it cannot.
    fn persist(&self) -> bool {
        let Some(record) = &self.record else {
            return true;
        };
        match record.store(&self.capped) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(path = %record.path().display(), %error, "cannot record the power limits set; no new limit is set until it can be");
                false
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
        let mut capper = PowerCapper::new(false, None);
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

    /// The simulated backend, checking at every set that a cap below the default is
    /// already in the record.
    struct Recorded {
        sim: SimulatedBackend,
        record: CapRecord,
    }

    impl GpuBackend for Recorded {
        fn name(&self) -> &'static str {
            "recorded"
        }
        fn sample(&mut self) -> SampleSet {
            self.sim.sample_at(0)
        }
        fn set_power_limit(
            &mut self,
            uuid: &str,
            limit_w: f64,
        ) -> Result<(), crate::backend::BackendError> {
            if limit_w < 700.0 {
                let recorded = self.record.load().unwrap();
                assert_eq!(
                    recorded.get(uuid),
                    Some(&limit_w),
                    "recorded before it is set"
                );
            }
            self.sim.set_power_limit(uuid, limit_w)
        }
    }

    #[test]
    fn caps_are_recorded_first_and_restored_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let record = CapRecord::in_dir(dir.path(), "n1").unwrap();
        let metrics = Metrics::new("n1", "simulated");
        let mut backend = Recorded {
            sim: sim(),
            record: record.clone(),
        };
        let s = backend.sample().gpus;
        let mut capper = PowerCapper::new(false, Some(record.clone()));
        capper.apply(&mut backend, &s, &[target(&s[0].uuid, 300.0)], &metrics);
        assert_eq!(record.load().unwrap().len(), 1);
        // A crash: the capper is gone without restoring; the GPU stays capped.
        drop(capper);
        let s = backend.sample().gpus;
        assert_eq!(s[0].power_limit_w, 300.0);
        // The next start finds the record and puts the default back.
        let mut capper = PowerCapper::new(false, Some(record.clone()));
        let reading = backend.sample();
        assert_eq!(reading.gpus[0].power_limit_w, 300.0);
        capper.recover(&mut backend, &reading, &metrics);
        assert_eq!(backend.sample().gpus[0].power_limit_w, 700.0);
        assert!(record.load().unwrap().is_empty());
        assert!(capper.capped().is_empty());
        // Read-only leaves a record and the cap alone.
        let mut writer = PowerCapper::new(false, Some(record.clone()));
        writer.apply(&mut backend, &s, &[target(&s[1].uuid, 400.0)], &metrics);
        let reading = backend.sample();
        PowerCapper::new(true, Some(record.clone())).recover(&mut backend, &reading, &metrics);
        assert_eq!(backend.sample().gpus[1].power_limit_w, 400.0);
        assert_eq!(record.load().unwrap().len(), 1);
        // A recorded GPU that cannot be read now is kept for later; one missing from a
        // complete reading is gone and forgotten.
        let unreadable = SampleSet {
            gpus: Vec::new(),
            errors: vec![crate::backend::BackendError::UnknownGpu("?".into())],
        };
        let mut capper = PowerCapper::new(false, Some(record.clone()));
        capper.recover(&mut backend, &unreadable, &metrics);
        assert_eq!(record.load().unwrap().len(), 1);
        let mut capper = PowerCapper::new(false, Some(record.clone()));
        capper.recover(&mut backend, &SampleSet::default(), &metrics);
        assert!(record.load().unwrap().is_empty());
    }

    #[test]
    fn read_only_never_sets_a_limit() {
        let metrics = Metrics::new("n1", "simulated");
        let mut backend = sim();
        let mut capper = PowerCapper::new(true, None);
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
        let mut capper = PowerCapper::new(false, None);
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
