//! Aggregation of samples into report windows.
//!
//! Windows are aligned to multiples of the window length in Unix time (10 s windows end at
//! :00, :10, :20, …), so the windows of all nodes line up for the operator's per-site
//! accounting. The first window after a start begins at the first sample, and the last one
//! before a stop ends at the stop, so windows of one node never overlap.
//!
//! A window's energy is the counter's increase from the last reading of the previous
//! window to the last reading of this one: consecutive windows chain without gap or
//! overlap, so no millijoule is lost or counted twice while the agent runs. A counter that
//! goes backwards (driver reload) counts from zero and flags the window. GPUs without a
//! counter integrate power (trapezoids between readings).

use std::collections::BTreeMap;

use verdant_crds::wire::{AgentReport, GpuWindow, REPORT_SCHEMA};

use crate::sample::GpuSample;

/// The last reading of a GPU, carried from one window to the next.
#[derive(Clone, Copy, Debug)]
struct Reading {
    timestamp_ms: i64,
    energy_mj: Option<u64>,
    power_w: f64,
}

#[derive(Clone, Debug)]
struct Accumulator {
    samples: u32,
    power_sum_w: f64,
    power_max_w: f64,
    gpu_util_sum: f64,
    mem_util_sum: f64,
    counter_energy_mj: u64,
    counter_reset: bool,
    /// Whether every reading in the window had a counter.
    counter_complete: bool,
    integrated_j: f64,
    last: GpuSample,
}

/// A window that has closed, with what the report does not carry.
#[derive(Clone, Debug)]
pub struct ClosedWindow {
    /// The report, without pod attribution for GPUs the backend did not attribute itself.
    pub report: AgentReport,
    /// Per GPU (same order as `report.gpus`): compute pids at the window's last reading.
    pub pids: Vec<Vec<u32>>,
    /// Per GPU: power integrated over the window (trapezoids), J, for checking the
    /// energy counter against the power readings.
    pub integrated_power_j: Vec<f64>,
}

/// Turns a stream of samples into closed windows.
pub struct WindowAggregator {
    node: String,
    window_ms: i64,
    /// Start and (exclusive) end of the open window.
    open: Option<(i64, i64)>,
    gpus: BTreeMap<String, Accumulator>,
    last: BTreeMap<String, Reading>,
}

impl WindowAggregator {
    /// Windows of `window_ms` for `node`.
    pub fn new(node: impl Into<String>, window_ms: i64) -> Self {
        Self {
            node: node.into(),
            window_ms: window_ms.max(1),
            open: None,
            gpus: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// Adds one round of samples taken at `at_ms`. Returns the window that closed before
    /// them, if any.
    pub fn push(&mut self, at_ms: i64, samples: &[GpuSample]) -> Option<ClosedWindow> {
        let closed = self.close_if_due(at_ms);
        if self.open.is_none() {
            let aligned_end = (at_ms.div_euclid(self.window_ms) + 1) * self.window_ms;
            self.open = Some((at_ms, aligned_end));
        }
        for sample in samples {
            self.add(sample);
        }
        closed
    }

    /// Closes the open window if `now_ms` is at or past its end.
    pub fn close_if_due(&mut self, now_ms: i64) -> Option<ClosedWindow> {
        match self.open {
            Some((_, end)) if now_ms >= end => {
                let closed = self.close(end);
                // The next window starts where this one ended.
                let next_end = (now_ms.div_euclid(self.window_ms) + 1) * self.window_ms;
                self.open = Some((end.max(next_end - self.window_ms), next_end));
                closed
            }
            _ => None,
        }
    }

    /// Closes the open window at `now_ms` (on shutdown), whatever its planned end.
    pub fn flush(&mut self, now_ms: i64) -> Option<ClosedWindow> {
        let (start, end) = self.open?;
        let closed = self.close(now_ms.clamp(start + 1, end));
        self.open = None;
        closed
    }

    fn add(&mut self, sample: &GpuSample) {
        let previous = self.last.get(&sample.uuid).copied();
        let acc = self
            .gpus
            .entry(sample.uuid.clone())
            .or_insert_with(|| Accumulator {
                samples: 0,
                power_sum_w: 0.0,
                power_max_w: 0.0,
                gpu_util_sum: 0.0,
                mem_util_sum: 0.0,
                counter_energy_mj: 0,
                counter_reset: false,
                counter_complete: true,
                integrated_j: 0.0,
                last: sample.clone(),
            });
        acc.samples += 1;
        acc.power_sum_w += sample.power_w;
        acc.power_max_w = acc.power_max_w.max(sample.power_w);
        acc.gpu_util_sum += sample.gpu_util_percent;
        acc.mem_util_sum += sample.mem_util_percent;
        if let Some(prev) = previous {
            let dt_s = (sample.timestamp_ms - prev.timestamp_ms).max(0) as f64 / 1000.0;
            acc.integrated_j += (prev.power_w + sample.power_w) / 2.0 * dt_s;
            match (prev.energy_mj, sample.energy_mj) {
                (Some(before), Some(now)) if now >= before => acc.counter_energy_mj += now - before,
                (Some(_), Some(now)) => {
                    acc.counter_reset = true;
                    acc.counter_energy_mj += now;
                }
                _ => acc.counter_complete = false,
            }
        } else if sample.energy_mj.is_none() {
            acc.counter_complete = false;
        }
        acc.last = sample.clone();
        self.last.insert(
            sample.uuid.clone(),
            Reading {
                timestamp_ms: sample.timestamp_ms,
                energy_mj: sample.energy_mj,
                power_w: sample.power_w,
            },
        );
    }

    fn close(&mut self, end_ms: i64) -> Option<ClosedWindow> {
        let (start_ms, _) = self.open?;
        let gpus = std::mem::take(&mut self.gpus);
        if gpus.is_empty() {
            return None;
        }
        let mut windows = Vec::with_capacity(gpus.len());
        let mut pids = Vec::with_capacity(gpus.len());
        let mut integrated = Vec::with_capacity(gpus.len());
        let mut ordered: Vec<Accumulator> = gpus.into_values().collect();
        ordered.sort_by_key(|a| a.last.index);
        for acc in ordered {
            let n = f64::from(acc.samples.max(1));
            let last = acc.last;
            let energy_j = if acc.counter_complete {
                acc.counter_energy_mj as f64 / 1000.0
            } else {
                acc.integrated_j
            };
            windows.push(GpuWindow {
                uuid: last.uuid.clone(),
                index: last.index,
                model: last.model.clone(),
                samples: acc.samples,
                mean_power_w: acc.power_sum_w / n,
                max_power_w: acc.power_max_w,
                energy_j,
                energy_counter_reset: acc.counter_reset,
                mean_gpu_util_percent: acc.gpu_util_sum / n,
                mean_mem_util_percent: acc.mem_util_sum / n,
                memory_used_bytes: last.memory_used_bytes,
                memory_total_bytes: last.memory_total_bytes,
                temperature_c: last.temperature_c,
                sm_clock_mhz: last.sm_clock_mhz,
                power_limit_w: last.power_limit_w,
                default_power_limit_w: last.default_power_limit_w,
                min_power_limit_w: last.min_power_limit_w,
                max_power_limit_w: last.max_power_limit_w,
                pod: last.pod.clone(),
            });
            pids.push(last.pids);
            integrated.push(acc.integrated_j);
        }
        Some(ClosedWindow {
            report: AgentReport {
                schema: REPORT_SCHEMA,
                node: self.node.clone(),
                agent_version: crate::VERSION.to_owned(),
                window_start_ms: start_ms,
                window_end_ms: end_ms,
                gpus: windows,
            },
            pids,
            integrated_power_j: integrated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uuid: &str, t_ms: i64, power_w: f64, energy_mj: Option<u64>) -> GpuSample {
        GpuSample {
            uuid: uuid.into(),
            index: uuid.trim_start_matches("GPU-").parse().unwrap_or(0),
            model: "NVIDIA H100 80GB HBM3".into(),
            timestamp_ms: t_ms,
            power_w,
            power_instant: true,
            energy_mj,
            gpu_util_percent: 50.0,
            mem_util_percent: 20.0,
            memory_used_bytes: 1,
            memory_total_bytes: 2,
            temperature_c: 40.0,
            sm_clock_mhz: 1500,
            power_limit_w: 700.0,
            default_power_limit_w: 700.0,
            min_power_limit_w: 200.0,
            max_power_limit_w: 700.0,
            pids: vec![42],
            pod: None,
        }
    }

    #[test]
    fn windows_align_and_chain_energy_without_gaps() {
        let mut agg = WindowAggregator::new("n1", 10_000);
        let mut closed = Vec::new();
        // Samples every second from t = 3 s to 25 s, 100 W, counter 100 J/s.
        for s in 3..=25i64 {
            let t = s * 1000 + 5;
            let set = [sample("GPU-0", t, 100.0, Some((s as u64) * 100_000))];
            closed.extend(agg.push(t, &set));
        }
        closed.extend(agg.flush(25_500));
        let spans: Vec<(i64, i64, u32)> = closed
            .iter()
            .map(|w| {
                (
                    w.report.window_start_ms,
                    w.report.window_end_ms,
                    w.report.gpus[0].samples,
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                (3_005, 10_000, 7),
                (10_000, 20_000, 10),
                (20_000, 25_500, 6)
            ]
        );
        let energies: Vec<f64> = closed.iter().map(|w| w.report.gpus[0].energy_j).collect();
        // First window: readings 3..=9 → 6 s; then 10 s; then 20..=25 after 19 → 6 s.
        assert_eq!(energies, [600.0, 1000.0, 600.0]);
        assert_eq!(energies.iter().sum::<f64>(), 2200.0); // 25 − 3 s, nothing lost
        assert_eq!(closed[1].integrated_power_j, [1000.0]);
        assert_eq!(closed[1].pids, [vec![42]]);
        assert_eq!(closed[1].report.node, "n1");
        assert_eq!(closed[1].report.schema, REPORT_SCHEMA);
    }

    #[test]
    fn a_counter_that_goes_backwards_counts_from_the_reset() {
        let mut agg = WindowAggregator::new("n1", 10_000);
        agg.push(1000, &[sample("GPU-0", 1000, 300.0, Some(5_000_000))]);
        agg.push(2000, &[sample("GPU-0", 2000, 300.0, Some(5_300_000))]);
        agg.push(3000, &[sample("GPU-0", 3000, 300.0, Some(250_000))]); // driver reload
        agg.push(4000, &[sample("GPU-0", 4000, 300.0, Some(550_000))]);
        let w = agg.flush(4001).unwrap();
        let gpu = &w.report.gpus[0];
        assert!(gpu.energy_counter_reset);
        assert_eq!(gpu.energy_j, 300.0 + 250.0 + 300.0);
        assert_eq!(
            (gpu.mean_power_w, gpu.max_power_w, gpu.samples),
            (300.0, 300.0, 4)
        );
    }

    #[test]
    fn gpus_without_a_counter_integrate_power() {
        let mut agg = WindowAggregator::new("n1", 10_000);
        agg.push(0, &[sample("GPU-0", 0, 100.0, None)]);
        agg.push(1000, &[sample("GPU-0", 1000, 300.0, None)]);
        agg.push(2000, &[sample("GPU-0", 2000, 300.0, None)]);
        let w = agg
            .push(10_000, &[sample("GPU-0", 10_000, 300.0, None)])
            .unwrap();
        let gpu = &w.report.gpus[0];
        assert_eq!(gpu.energy_j, 200.0 + 300.0);
        assert!(!gpu.energy_counter_reset);
        assert!((gpu.mean_power_w - 700.0 / 3.0).abs() < 1e-9);
        assert_eq!(gpu.max_power_w, 300.0);
    }

    #[test]
    fn gpus_are_reported_in_index_order_and_a_window_without_samples_is_skipped() {
        let mut agg = WindowAggregator::new("n1", 10_000);
        assert!(agg.flush(5).is_none());
        let set = [
            sample("GPU-1", 100, 10.0, Some(0)),
            sample("GPU-0", 100, 20.0, Some(0)),
        ];
        agg.push(100, &set);
        // A long stall: the window that ended is closed; the empty ones in between are not.
        let w = agg.close_if_due(35_000).unwrap();
        assert_eq!(
            w.report.gpus.iter().map(|g| g.index).collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(agg.close_if_due(35_001).is_none());
        // Nothing was sampled in [30 s, 40 s): that window is skipped, and the energy
        // since the last reading goes to the window of the next one.
        assert!(
            agg.push(41_000, &[sample("GPU-0", 41_000, 20.0, Some(10))])
                .is_none()
        );
        let w2 = agg.flush(42_000).unwrap();
        assert_eq!(
            (w2.report.window_start_ms, w2.report.window_end_ms),
            (40_000, 42_000)
        );
        assert_eq!(w2.report.gpus.len(), 1);
        assert_eq!(w2.report.gpus[0].energy_j, 0.01);
    }
}
