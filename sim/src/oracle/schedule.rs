//! From the program's optimum to a per-job, per-site schedule, billed like every policy.

use super::program::Plan;
use super::windows::JobWindow;
use crate::civil::HOUR_S;
use crate::cluster::PolicyKind;
use crate::outcome::{JobUsage, RunOutcome, bill_window};
use crate::simulate::SimConfig;
use crate::sites::SimSite;
use crate::workload::SimJob;

/// Below this a share of an hour counts as nothing.
const EPS: f64 = 1e-6;

/// Splits each hour's job work over the sites in proportion to the busy GPUs the optimum
/// puts at each (any split of an hour's work is a valid schedule of the relaxation: jobs
/// are divisible and migrate for free), and bills every site-hour with [`bill_window`].
pub(super) fn bill(
    plan: &Plan,
    jobs: &[SimJob],
    windows: &[JobWindow],
    sites: &[SimSite],
    config: &SimConfig,
) -> RunOutcome {
    let hours = config.hours();
    let shape = &config.cluster;
    let mut outcome = RunOutcome::new(PolicyKind::Oracle, jobs.len(), sites, config.start_s, hours);
    let mut by_hour: Vec<Vec<(usize, f64)>> = vec![Vec::new(); hours];
    let mut met = Vec::with_capacity(jobs.len());
    for (j, ((job, window), runs)) in jobs.iter().zip(windows).zip(&plan.runs).enumerate() {
        let mut done_h = 0.0;
        let mut last: Option<(usize, f64)> = None;
        for &(hour, x) in runs.iter().filter(|(_, x)| *x > EPS) {
            by_hour[hour].push((j, x));
            done_h += x;
            let start = (config.start_s + hour as i64 * HOUR_S).max(job.submit_s);
            let out = &mut outcome.jobs[j];
            out.first_start_s = Some(out.first_start_s.map_or(start, |s| s.min(start)));
            last = Some((hour, x));
        }
        let finished = done_h >= window.work_h * (1.0 - 1e-4) - EPS;
        if finished && let Some((hour, x)) = last {
            let slot_start = config.start_s + hour as i64 * HOUR_S;
            outcome.jobs[j].finish_s =
                Some(slot_start.max(job.submit_s) + (x.min(1.0) * HOUR_S as f64).ceil() as i64);
        }
        met.push(!window.due || finished);
    }
    for (hour, hour_runs) in by_hour.iter().enumerate() {
        let start_s = config.start_s + hour as i64 * HOUR_S;
        let len_s = (config.end_s - start_s).min(HOUR_S) as f64;
        let busy = &plan.site_busy[hour];
        let total: f64 = busy.iter().sum();
        for (s, site) in sites.iter().enumerate() {
            let share = if total > 0.0 { busy[s] / total } else { 0.0 };
            let usage: Vec<JobUsage> = if share > 0.0 {
                hour_runs
                    .iter()
                    .map(|&(job, x)| {
                        let gpus = windows[job].gpus;
                        JobUsage {
                            job,
                            energy_j: gpus * shape.gpu_max_watts * x * share * HOUR_S as f64,
                            busy_gpu_s: gpus * x * share * HOUR_S as f64,
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            bill_window(
                shape,
                site,
                s,
                start_s,
                config.start_s,
                len_s,
                &usage,
                0.0,
                &mut outcome,
            );
        }
    }
    outcome.deadline_met_by_relaxation = Some(met);
    outcome.lp_bound_kwh = Some(plan.lp_bound_kwh);
    outcome
}
