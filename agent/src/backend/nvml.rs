//! The NVML backend: real GPUs through `libnvidia-ml`.
//!
//! Every call is a read except [`GpuBackend::set_power_limit`], which the agent only makes
//! for power-limit targets from the operator and never with `--read-only`.

use std::collections::HashMap;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT;

use super::{BackendError, GpuBackend, SampleSet};
use crate::sample::{GpuSample, now_ms};

/// Library names tried in order when no path is given. Containers set up by the NVIDIA
/// container toolkit only have the versioned name, which `Nvml::init` does not try.
const LIBRARY_CANDIDATES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// What does not change while the driver stays loaded.
#[derive(Clone, Debug)]
struct StaticInfo {
    uuid: String,
    model: String,
    default_power_limit_w: f64,
    min_power_limit_w: f64,
    max_power_limit_w: f64,
    /// Whether `NVML_FI_DEV_POWER_INSTANT` answered last time; `None` before the first try.
    instant_power: Option<bool>,
}

/// Real GPUs through NVML.
pub struct NvmlBackend {
    nvml: Nvml,
    device_count: u32,
    driver_version: String,
    statics: HashMap<u32, StaticInfo>,
}

impl NvmlBackend {
    /// Loads NVML (from `library`, else `libnvidia-ml.so.1` or `libnvidia-ml.so`) and
    /// initialises it. Fails with an explanation when the library or the driver is missing;
    /// never panics.
    pub fn open(library: Option<&str>) -> Result<Self, BackendError> {
        let candidates: Vec<&str> = match library {
            Some(path) => vec![path],
            None => LIBRARY_CANDIDATES.to_vec(),
        };
        let mut last = None;
        for candidate in &candidates {
            match Nvml::builder().lib_path(candidate.as_ref()).init() {
                Ok(nvml) => {
                    let device_count = nvml.device_count().map_err(|e| {
                        BackendError::Unavailable(format!(
                            "NVML loaded from {candidate} but cannot count the GPUs: {e}"
                        ))
                    })?;
                    let driver_version = nvml.sys_driver_version().unwrap_or_default();
                    tracing::info!(library = candidate, device_count, %driver_version, "NVML initialised");
                    return Ok(Self {
                        nvml,
                        device_count,
                        driver_version,
                        statics: HashMap::new(),
                    });
                }
                Err(e) => last = Some((*candidate, e)),
            }
        }
        let (candidate, error) = last.expect("at least one candidate");
        Err(BackendError::Unavailable(explain_init_error(
            &candidates,
            candidate,
            &error,
        )))
    }

    /// The driver version NVML reports.
    pub fn driver_version(&self) -> &str {
        &self.driver_version
    }

    fn static_info(&mut self, index: u32) -> Result<StaticInfo, BackendError> {
        if let Some(info) = self.statics.get(&index) {
            return Ok(info.clone());
        }
        let device = self
            .nvml
            .device_by_index(index)
            .map_err(|source| device_error(index, "nvmlDeviceGetHandleByIndex", source))?;
        let uuid = device
            .uuid()
            .map_err(|source| device_error(index, "nvmlDeviceGetUUID", source))?;
        let model = device.name().unwrap_or_else(|_| "NVIDIA GPU".to_owned());
        let default_power_limit_w = device
            .power_management_limit_default()
            .map(mw_to_w)
            .unwrap_or(0.0);
        let (min_power_limit_w, max_power_limit_w) = device
            .power_management_limit_constraints()
            .map(|c| (mw_to_w(c.min_limit), mw_to_w(c.max_limit)))
            .unwrap_or((0.0, 0.0));
        let info = StaticInfo {
            uuid,
            model,
            default_power_limit_w,
            min_power_limit_w,
            max_power_limit_w,
            instant_power: None,
        };
        self.statics.insert(index, info.clone());
        Ok(info)
    }

    fn sample_device(&mut self, index: u32) -> Result<GpuSample, BackendError> {
        let info = self.static_info(index)?;
        let device = self
            .nvml
            .device_by_index(index)
            .map_err(|source| device_error(index, "nvmlDeviceGetHandleByIndex", source))?;
        let timestamp_ms = now_ms();

        // Instantaneous power where the driver offers it (R535+ on Ampere and later);
        // else the driver's one-second average.
        let mut power_instant = false;
        let mut power_w = None;
        if info.instant_power != Some(false) {
            let instant = device
                .field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])
                .ok()
                .and_then(|mut values| values.pop())
                .and_then(|v| v.ok())
                .and_then(|v| v.value.ok())
                .map(|v| match v {
                    SampleValue::F64(x) => x,
                    SampleValue::U32(x) => f64::from(x),
                    SampleValue::U64(x) => x as f64,
                    SampleValue::I64(x) => x as f64,
                });
            if let Some(s) = self.statics.get_mut(&index) {
                s.instant_power = Some(instant.is_some());
            }
            if let Some(mw) = instant {
                power_w = Some(mw / 1000.0);
                power_instant = true;
            }
        }
        let power_w = match power_w {
            Some(w) => w,
            None => device
                .power_usage()
                .map(mw_to_w)
                .map_err(|source| device_error(index, "nvmlDeviceGetPowerUsage", source))?,
        };
        let energy_mj = match device.total_energy_consumption() {
            Ok(mj) => Some(mj),
            Err(NvmlError::NotSupported) => None,
            Err(source) => {
                return Err(device_error(
                    index,
                    "nvmlDeviceGetTotalEnergyConsumption",
                    source,
                ));
            }
        };
        let (gpu_util_percent, mem_util_percent) = device
            .utilization_rates()
            .map(|u| (f64::from(u.gpu), f64::from(u.memory)))
            .unwrap_or((0.0, 0.0));
        let (memory_used_bytes, memory_total_bytes) = device
            .memory_info()
            .map(|m| (m.used, m.total))
            .unwrap_or((0, 0));
        let temperature_c = device
            .temperature(TemperatureSensor::Gpu)
            .map(f64::from)
            .unwrap_or(0.0);
        let sm_clock_mhz = device.clock_info(Clock::SM).unwrap_or(0);
        let power_limit_w = device
            .enforced_power_limit()
            .or_else(|_| device.power_management_limit())
            .map(mw_to_w)
            .unwrap_or(info.default_power_limit_w);
        let pids = device
            .running_compute_processes()
            .map(|ps| ps.into_iter().map(|p| p.pid).collect())
            .unwrap_or_default();
        Ok(GpuSample {
            uuid: info.uuid,
            index,
            model: info.model,
            timestamp_ms,
            power_w,
            power_instant,
            energy_mj,
            gpu_util_percent,
            mem_util_percent,
            memory_used_bytes,
            memory_total_bytes,
            temperature_c,
            sm_clock_mhz,
            power_limit_w,
            default_power_limit_w: info.default_power_limit_w,
            min_power_limit_w: info.min_power_limit_w,
            max_power_limit_w: info.max_power_limit_w,
            pids,
            pod: None,
        })
    }
}

impl GpuBackend for NvmlBackend {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn sample(&mut self) -> SampleSet {
        let mut set = SampleSet::default();
        for index in 0..self.device_count {
            match self.sample_device(index) {
                Ok(sample) => set.gpus.push(sample),
                Err(e) => {
                    // A GPU that fell off the bus must be looked up again when it returns.
                    self.statics.remove(&index);
                    set.errors.push(e);
                }
            }
        }
        set
    }

    fn set_power_limit(&mut self, uuid: &str, limit_w: f64) -> Result<(), BackendError> {
        let mut device = self
            .nvml
            .device_by_uuid(uuid)
            .map_err(|_| BackendError::UnknownGpu(uuid.to_owned()))?;
        let limit_mw = (limit_w * 1000.0).round().max(0.0) as u32;
        device
            .set_power_management_limit(limit_mw)
            .map_err(|e| BackendError::SetPowerLimit {
                uuid: uuid.to_owned(),
                limit_w,
                reason: match e {
                    NvmlError::NoPermission => {
                        "no permission: the agent needs root (or CAP_SYS_ADMIN) to set power limits"
                            .to_owned()
                    }
                    other => other.to_string(),
                },
            })
    }
}

fn mw_to_w(mw: u32) -> f64 {
    f64::from(mw) / 1000.0
}

fn device_error(index: u32, what: &'static str, source: NvmlError) -> BackendError {
    BackendError::Device {
        index,
        what,
        source,
    }
}

/// Turns NVML's initialisation error into what an operator needs to know.
fn explain_init_error(tried: &[&str], last: &str, error: &NvmlError) -> String {
    let hint = "Check that the NVIDIA driver is installed and loaded on the node, and that the \
                agent's container sees the driver's libnvidia-ml.so.1 and /dev/nvidia* (the \
                NVIDIA container toolkit's runtime class, or hostPath mounts; see docs/agent.md). \
                On machines without GPUs use --backend simulated.";
    match error {
        NvmlError::LibloadingError(e) => format!(
            "NVML is unavailable: cannot load the NVML library (tried {}): {e}. {hint}",
            tried.join(", ")
        ),
        NvmlError::DriverNotLoaded => format!(
            "NVML is unavailable: {last} loaded, but the NVIDIA kernel driver is not running. {hint}"
        ),
        NvmlError::NoPermission => format!(
            "NVML is unavailable: {last} loaded, but the agent has no permission to talk to the \
             NVIDIA driver (/dev/nvidiactl). {hint}"
        ),
        NvmlError::LibraryNotFound => format!(
            "NVML is unavailable: the NVML shared library was not found (tried {}). {hint}",
            tried.join(", ")
        ),
        other => format!("NVML is unavailable: initialising {last} failed: {other}. {hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error_not_a_panic() {
        let error = match NvmlBackend::open(Some("/nonexistent/libnvidia-ml.so.1")) {
            Ok(_) => panic!("a library that does not exist cannot load"),
            Err(e) => e,
        };
        let message = error.to_string();
        assert!(message.contains("NVML is unavailable"), "{message}");
        assert!(
            message.contains("/nonexistent/libnvidia-ml.so.1"),
            "{message}"
        );
        assert!(message.contains("--backend simulated"), "{message}");
        assert_eq!(error.metric_label(), "unavailable");
    }

    #[test]
    fn a_library_that_is_not_nvml_is_a_clear_error() {
        // A real shared library without NVML's symbols: loading works, nvmlInit_v2 is missing.
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
        let Some(libc) = libc else { return };
        let message = match NvmlBackend::open(Some(libc)) {
            Ok(_) => panic!("libc is not NVML"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains("NVML is unavailable"), "{message}");
    }

    #[test]
    fn the_default_search_fails_cleanly_on_a_machine_without_a_driver() {
        match NvmlBackend::open(None) {
            // A machine with a GPU: nothing to check here (hack/gpu-evidence.sh covers it).
            Ok(backend) => {
                assert!(!backend.driver_version().is_empty() || backend.device_count == 0)
            }
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains("libnvidia-ml.so.1"), "{message}");
                assert!(message.contains("docs/agent.md"), "{message}");
            }
        }
    }
}
