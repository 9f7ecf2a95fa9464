//! Checks a report's content before anything is stored: its own values ([`validate`]),
//! then what the operator knows of its node ([`validate_against_node`]). Pure. A refusal
//! is a [`ReportProblem`] whose message names the GPU and the field; the operator answers
//! it with a 400.

use std::collections::HashSet;

use super::{AgentReport, GpuWindow, REPORT_SCHEMA};

/// The longest report window accepted, ms.
pub const MAX_WINDOW_MS: i64 = 3_600_000;
/// How far in the future a window may end (clock skew between node and operator), ms.
pub const MAX_CLOCK_SKEW_MS: i64 = 300_000;
/// The most GPUs in one report.
pub const MAX_GPUS: usize = 256;

/// What kind of refusal a [`ReportProblem`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// Impossible values (negative power, NaN, a window of no length, a GPU twice).
    Invalid,
    /// More GPUs or more power than the operator knows the node to have.
    Implausible,
    /// A window too old to be told from a replay, or in the future.
    Stale,
}

impl ProblemKind {
    /// The `reason` label of `verdant_ingest_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Implausible => "implausible",
            Self::Stale => "stale",
        }
    }
}

/// Why a report is refused, for the agent's log.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ReportProblem {
    /// What kind of refusal.
    pub kind: ProblemKind,
    /// What is wrong and what to do.
    pub message: String,
}

impl ReportProblem {
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(ProblemKind::Invalid, message)
    }

    fn implausible(message: impl Into<String>) -> Self {
        Self::new(ProblemKind::Implausible, message)
    }

    fn stale(message: impl Into<String>) -> Self {
        Self::new(ProblemKind::Stale, message)
    }

    fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Checks a report. `max_age_ms` is how old a window may be: older ones could no longer
/// be told from replays, since their idempotency keys are purged with the samples.
pub fn validate(report: &AgentReport, now_ms: i64, max_age_ms: i64) -> Result<(), ReportProblem> {
    if report.schema != REPORT_SCHEMA {
        return Err(ReportProblem::invalid(format!(
            "report schema {} is not supported; this operator reads schema {REPORT_SCHEMA}. Upgrade the operator or the agent so they match",
            report.schema
        )));
    }
    if report.node.is_empty() || report.node.len() > 253 {
        return Err(ReportProblem::invalid(
            "node must be the Kubernetes node name (1 to 253 characters)",
        ));
    }
    // Saturating: the bounds are the agent's numbers, any i64.
    let duration_ms = report.window_end_ms.saturating_sub(report.window_start_ms);
    if duration_ms <= 0 || duration_ms > MAX_WINDOW_MS {
        return Err(ReportProblem::invalid(format!(
            "window [{}, {}) ms must be longer than 0 and at most {MAX_WINDOW_MS} ms",
            report.window_start_ms, report.window_end_ms
        )));
    }
    if report.window_end_ms > now_ms + MAX_CLOCK_SKEW_MS {
        return Err(ReportProblem::stale(format!(
            "window ends at {} ms, {} s in the future: check the node's clock (NTP)",
            report.window_end_ms,
            (report.window_end_ms - now_ms) / 1000
        )));
    }
    if report.window_start_ms < now_ms - max_age_ms {
        return Err(ReportProblem::stale(format!(
            "window starts at {} ms, older than the {} h the store keeps report keys: it cannot be told from a replay and is refused",
            report.window_start_ms,
            max_age_ms / 3_600_000
        )));
    }
    if report.gpus.len() > MAX_GPUS {
        return Err(ReportProblem::invalid(format!(
            "{} GPUs in one report; at most {MAX_GPUS}",
            report.gpus.len()
        )));
    }
    let mut uuids = HashSet::with_capacity(report.gpus.len());
    for gpu in &report.gpus {
        if !uuids.insert(gpu.uuid.as_str()) {
            return Err(ReportProblem::invalid(format!(
                "GPU {} appears twice in the report",
                gpu.uuid
            )));
        }
        validate_gpu(gpu, duration_ms).map_err(|message| {
            ReportProblem::invalid(format!("GPU {} ({}): {message}", gpu.index, gpu.uuid))
        })?;
    }
    Ok(())
}

/// What the operator knows of a node's GPUs, independent of what its agent claims.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeGpus {
    /// The node's `nvidia.com/gpu` capacity; `None` when the node is unknown or does not
    /// advertise it (no device plugin, MIG-only).
    pub capacity: Option<u32>,
    /// The most one GPU can draw (`--max-gpu-watts`), W.
    pub max_gpu_power_w: f64,
}

/// Margin over a power limit for what a window's energy may amount to: limits are
/// enforced on averages, and counters tick in steps.
const POWER_MARGIN: f64 = 1.5;

/// Checks a report against the operator's view of its node: no more GPUs than the node
/// has, and no GPU drawing more than `--max-gpu-watts` allows, whatever power limits the
/// agent reports. Refusals are [`ProblemKind::Implausible`]: the whole report, as for
/// impossible values.
pub fn validate_against_node(report: &AgentReport, node: &NodeGpus) -> Result<(), ReportProblem> {
    if let Some(capacity) = node.capacity
        && report.gpus.len() > capacity as usize
    {
        return Err(ReportProblem::implausible(format!(
            "the report lists {} GPUs but node {} has {capacity} (its nvidia.com/gpu capacity)",
            report.gpus.len(),
            report.node
        )));
    }
    let duration_s = report.window_end_ms.saturating_sub(report.window_start_ms) as f64 / 1000.0;
    let most_w = node.max_gpu_power_w * POWER_MARGIN;
    for gpu in &report.gpus {
        let most_j = most_w * duration_s + 1.0;
        let problem = if gpu.energy_j > most_j {
            Some(format!(
                "energyJ {} is more than a GPU can draw in {duration_s} s",
                gpu.energy_j
            ))
        } else if gpu.mean_power_w.max(gpu.max_power_w) > most_w {
            Some(format!(
                "a power of {} W is more than a GPU can draw",
                gpu.mean_power_w.max(gpu.max_power_w)
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ReportProblem::implausible(format!(
                "GPU {} ({}): {problem} (the operator allows {} W per GPU, --max-gpu-watts, with a {POWER_MARGIN}x margin)",
                gpu.index, gpu.uuid, node.max_gpu_power_w
            )));
        }
    }
    Ok(())
}

fn validate_gpu(gpu: &GpuWindow, duration_ms: i64) -> Result<(), String> {
    if gpu.uuid.is_empty() || gpu.uuid.len() > 128 {
        return Err("uuid must be 1 to 128 characters".into());
    }
    let non_negative = [
        ("meanPowerW", gpu.mean_power_w),
        ("maxPowerW", gpu.max_power_w),
        ("energyJ", gpu.energy_j),
        ("powerLimitW", gpu.power_limit_w),
        ("defaultPowerLimitW", gpu.default_power_limit_w),
        ("minPowerLimitW", gpu.min_power_limit_w),
        ("maxPowerLimitW", gpu.max_power_limit_w),
    ];
    for (field, value) in non_negative {
        if !value.is_finite() {
            return Err(format!("{field} is not a number"));
        }
        if value < 0.0 {
            return Err(format!(
                "{field} is {value}: power and energy cannot be negative"
            ));
        }
    }
    for (field, value) in [
        ("meanGpuUtilPercent", gpu.mean_gpu_util_percent),
        ("meanMemUtilPercent", gpu.mean_mem_util_percent),
    ] {
        if !(0.0..=100.0).contains(&value) {
            return Err(format!("{field} is {value}: expected 0 to 100"));
        }
    }
    if !gpu.temperature_c.is_finite() {
        return Err("temperatureC is not a number".into());
    }
    // Energy beyond what the GPU can draw in the window is a misread counter (e.g. a
    // reset taken for a huge delta), not a measurement.
    let ceiling_w = gpu
        .max_power_limit_w
        .max(gpu.power_limit_w)
        .max(gpu.max_power_w);
    let duration_s = duration_ms as f64 / 1000.0;
    if ceiling_w > 0.0 && gpu.energy_j > ceiling_w * POWER_MARGIN * duration_s + 1.0 {
        return Err(format!(
            "energyJ {} is more than this GPU can draw in {duration_s} s (at most {ceiling_w} W); if the energy counter went backwards, report the energy since the reset and set energyCounterReset",
            gpu.energy_j
        ));
    }
    if let Some(pod) = &gpu.pod
        && (pod.namespace.is_empty() || pod.name.is_empty())
    {
        return Err("pod needs a namespace and a name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sample::{NOW_MS, gpu, report};

    const WEEK_MS: i64 = 7 * 86_400_000;

    fn reason(r: &AgentReport) -> String {
        validate(r, NOW_MS, WEEK_MS).unwrap_err().message
    }

    #[test]
    fn a_sound_report_passes() {
        validate(&report(vec![gpu(0, 650.0), gpu(1, 0.0)]), NOW_MS, WEEK_MS).unwrap();
    }

    #[test]
    fn impossible_values_are_explained() {
        let mut negative = gpu(0, 650.0);
        negative.mean_power_w = -5.0;
        assert!(
            reason(&report(vec![negative]))
                .contains("meanPowerW is -5: power and energy cannot be negative")
        );

        let mut nan = gpu(0, 650.0);
        nan.energy_j = f64::NAN;
        assert!(reason(&report(vec![nan])).contains("energyJ is not a number"));

        let mut huge = gpu(0, 650.0);
        huge.energy_j = 4.0e9; // a counter going backwards misread as a delta
        assert!(reason(&report(vec![huge])).contains("energyCounterReset"));

        assert!(reason(&report(vec![gpu(0, 1.0), gpu(0, 2.0)])).contains("appears twice"));

        let mut util = gpu(0, 650.0);
        util.mean_gpu_util_percent = 130.0;
        assert!(reason(&report(vec![util])).contains("expected 0 to 100"));
    }

    #[test]
    fn windows_must_be_sane_and_recent() {
        let mut r = report(vec![gpu(0, 1.0)]);
        r.window_end_ms = r.window_start_ms;
        assert!(reason(&r).contains("longer than 0"));
        let mut r = report(vec![gpu(0, 1.0)]);
        r.window_start_ms = NOW_MS + 3_600_000;
        r.window_end_ms = NOW_MS + 3_610_000;
        let rejection = validate(&r, NOW_MS, WEEK_MS).unwrap_err();
        assert_eq!(rejection.kind, ProblemKind::Stale);
        assert!(rejection.message.contains("future"));
        let mut r = report(vec![gpu(0, 1.0)]);
        r.window_start_ms = NOW_MS - WEEK_MS - 20_000;
        r.window_end_ms = NOW_MS - WEEK_MS - 10_000;
        assert!(reason(&r).contains("cannot be told from a replay"));
        let mut r = report(vec![gpu(0, 1.0)]);
        r.schema = 9;
        assert!(reason(&r).contains("schema 9"));
    }

    #[test]
    fn the_node_bounds_what_its_agent_may_claim() {
        let node = NodeGpus {
            capacity: Some(2),
            max_gpu_power_w: 1000.0,
        };
        validate_against_node(&report(vec![gpu(0, 700.0), gpu(1, 700.0)]), &node).unwrap();
        let three = report(vec![gpu(0, 1.0), gpu(1, 1.0), gpu(2, 1.0)]);
        let rejection = validate_against_node(&three, &node).unwrap_err();
        assert_eq!(rejection.kind, ProblemKind::Implausible);
        assert!(
            rejection
                .message
                .contains("lists 3 GPUs but node gpu-1 has 2"),
            "{}",
            rejection.message
        );
        // An agent claiming a 5 kW limit passes its own check, not the node's: 10 s at
        // 1,000 W × 1.5 is 15,001 J at most.
        let mut greedy = gpu(0, 1400.0);
        (greedy.power_limit_w, greedy.max_power_limit_w) = (5000.0, 5000.0);
        greedy.energy_j = 15_002.0;
        let r = report(vec![greedy.clone()]);
        validate(&r, NOW_MS, WEEK_MS).unwrap();
        let message = validate_against_node(&r, &node).unwrap_err().message;
        assert!(
            message.contains("energyJ 15002 is more than a GPU can draw in 10 s"),
            "{message}"
        );
        greedy.energy_j = 1.0;
        greedy.mean_power_w = 1600.0;
        let message = validate_against_node(&report(vec![greedy]), &node)
            .unwrap_err()
            .message;
        assert!(message.contains("1600 W"), "{message}");
        // A node that does not advertise GPUs bounds the watts only.
        let unknown = NodeGpus {
            capacity: None,
            ..node
        };
        validate_against_node(&three, &unknown).unwrap();
    }

    /// Found while writing the `agent_report` fuzz target (its 2-minute run had not
    /// reached it): the window's length overflowed, a panic in debug builds.
    #[test]
    fn extreme_window_bounds_are_refused_not_overflowed() {
        for (start, end) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN)] {
            let mut r = report(vec![gpu(0, 1.0)]);
            (r.window_start_ms, r.window_end_ms) = (start, end);
            assert!(reason(&r).contains("must be longer than 0 and at most"));
        }
    }

    #[test]
    fn a_counter_reset_with_energy_since_the_reset_is_fine() {
        let mut reset = gpu(0, 650.0);
        reset.energy_counter_reset = true;
        reset.energy_j = 1200.0;
        validate(&report(vec![reset]), NOW_MS, WEEK_MS).unwrap();
    }
}
