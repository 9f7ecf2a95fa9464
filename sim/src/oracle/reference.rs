//! The oracle's first formulation, per job, site and hour (test only): the program the
//! pooled one in [`super::program`] must agree with.
//!
//! - `x[j,s,h] ≥ 0` within the job's window, `Σ_s x[j,s,h] ≤ a[j,h]`; jobs not due
//!   within the horizon get no variable at a site-hour without supply.
//! - Capacity `Σ_j g_j x[j,s,h] ≤ N_s`; work `Σ x + miss_j = W_j` (due) or `≤ W_j`.
//! - `r[s,h]` below the cuts of the renewable curve at `b = Σ_j g_j x[j,s,h]`.
//! - Maximise `Σ r − Σ_j M_j miss_j`.

use good_lp::solvers::clarabel::clarabel;
use good_lp::{Expression, ProblemVariables, Solution, SolverModel, Variable, variable};

use super::windows::{job_windows, renewable_cuts};
use crate::civil::HOUR_S;
use crate::simulate::SimConfig;
use crate::sites::SimSite;
use crate::workload::SimJob;

const MISS_WEIGHT: f64 = 10.0;

/// The per-job program's renewable bound (kWh).
pub(super) fn per_job_bound(sites: &[SimSite], jobs: &[SimJob], config: &SimConfig) -> f64 {
    let hours = config.hours();
    let shape = &config.cluster;
    let site_gpus = f64::from(shape.site_gpus());
    let p_kw = shape.gpu_max_watts / 1000.0;
    let windows = job_windows(jobs, config);
    let supply =
        |s: usize, hour: usize| sites[s].supply_kw_at(config.start_s + hour as i64 * HOUR_S);

    let mut vars = ProblemVariables::new();
    let mut busy: Vec<Vec<Expression>> = vec![vec![Expression::default(); hours]; sites.len()];
    let mut has_jobs = vec![vec![false; hours]; sites.len()];
    // Per job: per window hour, its share and its variables (one per site).
    let mut slots: Vec<Vec<(f64, Vec<Variable>)>> = Vec::with_capacity(jobs.len());
    for window in &windows {
        let mut per_hour = Vec::new();
        for &(hour, share) in &window.hours {
            let mut xs = Vec::new();
            for s in 0..sites.len() {
                if !window.due && supply(s, hour) <= 0.0 {
                    continue;
                }
                let x = vars.add(variable().min(0.0));
                busy[s][hour].add_mul(window.gpus, x);
                has_jobs[s][hour] = true;
                xs.push(x);
            }
            if !xs.is_empty() {
                per_hour.push((share, xs));
            }
        }
        slots.push(per_hour);
    }
    let misses: Vec<Option<Variable>> = windows
        .iter()
        .map(|w| w.due.then(|| vars.add(variable().min(0.0).max(w.work_h))))
        .collect();
    let mut renewable: Vec<(Variable, usize, usize)> = Vec::new();
    for (s, site_has_jobs) in has_jobs.iter().enumerate() {
        for hour in (0..hours).filter(|h| site_has_jobs[*h] && supply(s, *h) > 0.0) {
            renewable.push((vars.add(variable().min(0.0)), s, hour));
        }
    }
    let mut objective = Expression::default();
    for &(r, _, _) in &renewable {
        objective.add_mul(1.0, r);
    }
    for (window, miss) in windows.iter().zip(&misses) {
        if let Some(miss) = miss {
            objective.add_mul(-MISS_WEIGHT * window.gpus * p_kw, *miss);
        }
    }
    let mut model = vars.maximise(objective).using(clarabel);
    model
        .settings()
        .verbose(false)
        .tol_gap_abs(1e-6)
        .tol_gap_rel(1e-7)
        .max_iter(500);
    for ((window, per_hour), miss) in windows.iter().zip(&slots).zip(&misses) {
        let mut work = Expression::default();
        for (share, xs) in per_hour {
            let mut in_hour = Expression::default();
            for &x in xs {
                in_hour.add_mul(1.0, x);
                work.add_mul(1.0, x);
            }
            model.add_constraint(in_hour.leq(*share));
        }
        match miss {
            Some(miss) => {
                work.add_mul(1.0, *miss);
                model.add_constraint(work.eq(window.work_h));
            }
            None => {
                model.add_constraint(work.leq(window.work_h));
            }
        }
    }
    for (s, per_hour) in busy.iter().enumerate() {
        for (_, expr) in per_hour.iter().enumerate().filter(|(h, _)| has_jobs[s][*h]) {
            model.add_constraint(expr.clone().leq(site_gpus));
        }
    }
    for &(r, s, hour) in &renewable {
        for (c0, c1) in renewable_cuts(shape, &sites[s], supply(s, hour)) {
            let mut cut = Expression::default();
            cut.add_mul(1.0, r);
            cut.add_mul(-c1, busy[s][hour].clone());
            model.add_constraint(cut.leq(c0));
        }
    }
    let solution = model.solve().expect("the per-job program solves");
    renewable
        .iter()
        .map(|(r, _, _)| solution.value(*r).max(0.0))
        .sum()
}
