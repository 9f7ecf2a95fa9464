//! From a run to the numbers the report compares.

use serde::Serialize;
use verdant_core::accounting::J_PER_KWH;

use crate::outcome::RunOutcome;
use crate::simulate::SimConfig;
use crate::workload::SimJob;

/// One policy's results: the fields of `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyMetrics {
    /// Renewable energy billed to the jobs' GPUs, kWh.
    pub renewable_kwh: f64,
    /// Grid energy billed to the jobs' GPUs, kWh.
    pub grid_kwh: f64,
    /// Energy of the jobs' GPUs, kWh.
    pub total_kwh: f64,
    /// renewable / total.
    pub renewable_share: f64,
    /// CO₂ of the grid energy at each site's grid intensity, kg.
    pub co2_kg: f64,
    /// Jobs with a deadline that finished after it, or were unfinished when it passed
    /// within the horizon.
    pub deadline_misses: u64,
    /// Of those, the jobs whose deadline was feasible (see the report).
    pub feasible_deadline_misses: u64,
    /// Queueing delay, first start − submission, over the jobs that started, s.
    pub delay_mean_s: f64,
    pub delay_p50_s: f64,
    pub delay_p95_s: f64,
    pub delay_p99_s: f64,
    /// Added delay, finish − (submission + duration), p95 over finished jobs with a
    /// deadline, s.
    pub added_delay_p95_s: f64,
    /// p95 over those jobs of added delay / the delay their deadline allows (≤ 1: within
    /// the slack).
    pub added_delay_p95_slack_ratio: f64,
    /// Busy GPU-seconds / (GPUs × horizon).
    pub gpu_utilization: f64,
    /// `null` for the oracle (its preemption is free and uncounted).
    pub suspensions: Option<u64>,
    pub restarts: Option<u64>,
    /// renewable_kwh / the oracle's renewable_kwh; `null` without the oracle.
    pub fraction_of_oracle: Option<f64>,
    /// Jobs in the workload, finished by the end of the horizon, never started.
    pub jobs: u64,
    pub jobs_finished: u64,
    pub jobs_never_started: u64,
    /// Placements that would have over-committed a node (an invariant: always 0).
    pub capacity_violations: u64,
}

/// Computes a policy's metrics. `feasible[j]` says whether job `j`'s deadline was
/// feasible; `oracle_renewable_kwh` fills `fraction_of_oracle`.
pub fn policy_metrics(
    outcome: &RunOutcome,
    jobs: &[SimJob],
    config: &SimConfig,
    feasible: &[bool],
    oracle_renewable_kwh: Option<f64>,
) -> PolicyMetrics {
    let total = outcome.total();
    let mut delays = Vec::new();
    let mut added = Vec::new();
    let mut ratios = Vec::new();
    let mut misses = 0;
    let mut feasible_misses = 0;
    let mut finished = 0;
    let mut never_started = 0;
    for (j, (job, out)) in jobs.iter().zip(&outcome.jobs).enumerate() {
        match out.first_start_s {
            Some(start) => delays.push((start - job.submit_s).max(0) as f64),
            None => never_started += 1,
        }
        if out.finish_s.is_some() {
            finished += 1;
        }
        let Some(deadline) = job.deadline_s else {
            continue;
        };
        let missed = match &outcome.deadline_met_by_relaxation {
            Some(met) => !met[j],
            None => match out.finish_s {
                Some(finish) => finish > deadline,
                None => deadline <= config.end_s,
            },
        };
        if missed {
            misses += 1;
            if feasible.get(j).copied().unwrap_or(true) {
                feasible_misses += 1;
            }
        }
        if let Some(finish) = out.finish_s {
            let added_s = (finish - job.submit_s - job.duration_s).max(0) as f64;
            added.push(added_s);
            let allowed = job.allowed_delay_s().unwrap_or(0) as f64;
            ratios.push(if allowed > 0.0 {
                added_s / allowed
            } else if added_s > 0.0 {
                f64::INFINITY
            } else {
                0.0
            });
        }
    }
    let gpus = f64::from(config.cluster.site_gpus()) * outcome.hourly.len() as f64;
    let horizon_s = (config.end_s - config.start_s) as f64;
    let renewable_kwh = total.renewable_j / J_PER_KWH;
    PolicyMetrics {
        renewable_kwh,
        grid_kwh: total.grid_j / J_PER_KWH,
        total_kwh: total.energy_j / J_PER_KWH,
        renewable_share: total.renewable_fraction(),
        co2_kg: total.co2_g / 1000.0,
        deadline_misses: misses,
        feasible_deadline_misses: feasible_misses,
        delay_mean_s: mean(&delays),
        delay_p50_s: percentile(&mut delays, 0.50),
        delay_p95_s: percentile(&mut delays, 0.95),
        delay_p99_s: percentile(&mut delays, 0.99),
        added_delay_p95_s: percentile(&mut added, 0.95),
        added_delay_p95_slack_ratio: percentile(&mut ratios, 0.95),
        gpu_utilization: if gpus > 0.0 && horizon_s > 0.0 {
            outcome.busy_gpu_s / (gpus * horizon_s)
        } else {
            0.0
        },
        suspensions: outcome.suspensions,
        restarts: outcome.restarts,
        fraction_of_oracle: oracle_renewable_kwh
            .filter(|o| *o > 0.0)
            .map(|o| renewable_kwh / o),
        jobs: jobs.len() as u64,
        jobs_finished: finished,
        jobs_never_started: never_started,
        capacity_violations: outcome.capacity_violations,
    }
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Nearest-rank percentile; 0 for no values.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.95), 95.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
        assert_eq!(percentile(&mut [7.0], 0.99), 7.0);
    }
}
