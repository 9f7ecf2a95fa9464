//! The oracle's linear program, per job and hour with the sites pooled (see the module
//! docs of [`super`] for the formulation and why it is exact).

use good_lp::solvers::clarabel::clarabel;
use good_lp::{Expression, ProblemVariables, Solution, SolverModel, Variable, variable};

use super::LpSize;
use super::windows::{JobWindow, renewable_cuts};
use crate::civil::HOUR_S;
use crate::error::SimError;
use crate::simulate::SimConfig;
use crate::sites::SimSite;

/// Weight of missed work against renewable energy (see the module docs).
const MISS_WEIGHT: f64 = 10.0;

/// The program's optimum: what each job runs when, and where the busy GPUs are.
pub(super) struct Plan {
    /// Per job: the hours it runs in, with the share of each (in increasing hour order).
    pub runs: Vec<Vec<(usize, f64)>>,
    /// Per hour: the busy GPUs the optimum puts at each site (in site order).
    pub site_busy: Vec<Vec<f64>>,
    /// The objective's renewable part, kWh.
    pub lp_bound_kwh: f64,
    pub size: LpSize,
}

/// A site-hour with renewable supply: its busy GPUs and their renewable energy.
struct GreenSlot {
    site: usize,
    busy: Variable,
    renewable: Variable,
}

/// Builds and solves the program for the jobs' `windows`.
pub(super) fn solve(
    sites: &[SimSite],
    windows: &[JobWindow],
    config: &SimConfig,
) -> Result<Plan, SimError> {
    let hours = config.hours();
    let shape = &config.cluster;
    let site_gpus = f64::from(shape.site_gpus());
    let p_kw = shape.gpu_max_watts / 1000.0;
    let supply_kw: Vec<Vec<f64>> = (0..hours)
        .map(|h| {
            let at_s = config.start_s + h as i64 * HOUR_S;
            sites.iter().map(|site| site.supply_kw_at(at_s)).collect()
        })
        .collect();
    let any_supply: Vec<bool> = supply_kw
        .iter()
        .map(|per_site| per_site.iter().any(|s| *s > 0.0))
        .collect();

    let mut vars = ProblemVariables::new();
    // Per job, per window hour: the share of the hour it runs (at any site). Work that
    // need not be done within the horizon gets no variable in an hour without supply
    // anywhere: it would bring no renewable energy, so the optimum never does it there.
    let mut runs: Vec<Vec<(usize, Variable)>> = Vec::with_capacity(windows.len());
    let mut demand: Vec<Expression> = vec![Expression::default(); hours];
    let mut has_jobs = vec![false; hours];
    for window in windows {
        let mut job_runs = Vec::with_capacity(window.hours.len());
        for &(hour, share) in &window.hours {
            if !window.due && !any_supply[hour] {
                continue;
            }
            // `run ≤ share` only where the job's work does not imply it (`Σ runs ≤
            // work_h`): a bound is a row of the solver's system, and most jobs are
            // shorter than an hour.
            let run = match share < window.work_h {
                true => vars.add(variable().min(0.0).max(share)),
                false => vars.add(variable().min(0.0)),
            };
            demand[hour].add_mul(window.gpus, run);
            has_jobs[hour] = true;
            job_runs.push((hour, run));
        }
        runs.push(job_runs);
    }
    let misses: Vec<Option<Variable>> = windows
        .iter()
        // `miss ≤ work_h` follows from its row (`Σ runs + miss = work_h`, runs ≥ 0).
        .map(|w| w.due.then(|| vars.add(variable().min(0.0))))
        .collect();
    // Per hour with jobs: the busy GPUs at each site with supply, and the rest pooled
    // (sites without supply are alike: their GPUs' energy is all grid).
    let mut green: Vec<Vec<GreenSlot>> = (0..hours).map(|_| Vec::new()).collect();
    let mut grid: Vec<Option<Variable>> = vec![None; hours];
    for hour in (0..hours).filter(|h| has_jobs[*h]) {
        let mut grid_gpus = 0.0;
        for (site, supply) in supply_kw[hour].iter().enumerate() {
            if *supply > 0.0 {
                green[hour].push(GreenSlot {
                    site,
                    busy: vars.add(variable().min(0.0).max(site_gpus)),
                    renewable: vars.add(variable().min(0.0)),
                });
            } else {
                grid_gpus += site_gpus;
            }
        }
        if grid_gpus > 0.0 {
            grid[hour] = Some(vars.add(variable().min(0.0).max(grid_gpus)));
        }
    }

    let mut objective = Expression::default();
    for slot in green.iter().flatten() {
        objective.add_mul(1.0, slot.renewable);
    }
    for (window, miss) in windows.iter().zip(&misses) {
        if let Some(miss) = miss {
            objective.add_mul(-MISS_WEIGHT * window.gpus * p_kw, *miss);
        }
    }
    let variables = vars.len();
    let mut model = vars.maximise(objective).using(clarabel);
    model
        .settings()
        .verbose(false)
        .tol_gap_abs(1e-6)
        .tol_gap_rel(1e-7)
        .max_iter(500);
    let mut constraints = 0;
    for ((window, job_runs), miss) in windows.iter().zip(&runs).zip(&misses) {
        let mut work = Expression::default();
        for &(_, run) in job_runs {
            work.add_mul(1.0, run);
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
        constraints += 1;
    }
    for hour in (0..hours).filter(|h| has_jobs[*h]) {
        // The jobs' GPUs are the sites' busy GPUs.
        let mut balance = std::mem::take(&mut demand[hour]);
        for slot in &green[hour] {
            balance.add_mul(-1.0, slot.busy);
        }
        if let Some(grid) = grid[hour] {
            balance.add_mul(-1.0, grid);
        }
        model.add_constraint(balance.eq(0.0));
        constraints += 1;
        for slot in &green[hour] {
            for (c0, c1) in renewable_cuts(shape, &sites[slot.site], supply_kw[hour][slot.site]) {
                // r − c1·b ≤ c0
                let mut cut = Expression::default();
                cut.add_mul(1.0, slot.renewable);
                cut.add_mul(-c1, slot.busy);
                model.add_constraint(cut.leq(c0));
                constraints += 1;
            }
        }
    }

    let solution = model.solve().map_err(|e| SimError::Oracle(e.to_string()))?;

    let runs: Vec<Vec<(usize, f64)>> = runs
        .iter()
        .map(|job_runs| {
            job_runs
                .iter()
                .map(|&(hour, run)| (hour, solution.value(run).max(0.0)))
                .collect()
        })
        .collect();
    let mut site_busy = vec![vec![0.0; sites.len()]; hours];
    let mut lp_bound_kwh = 0.0;
    for (hour, busy) in site_busy.iter_mut().enumerate() {
        for slot in &green[hour] {
            busy[slot.site] = solution.value(slot.busy).max(0.0);
            lp_bound_kwh += solution.value(slot.renewable).max(0.0);
        }
        if let Some(grid) = grid[hour] {
            // The pooled sites without supply share their GPUs' work evenly.
            let dark: Vec<usize> = (0..sites.len())
                .filter(|s| supply_kw[hour][*s] <= 0.0)
                .collect();
            let each = solution.value(grid).max(0.0) / dark.len() as f64;
            for s in dark {
                busy[s] = each;
            }
        }
    }
    Ok(Plan {
        runs,
        site_busy,
        lp_bound_kwh,
        size: LpSize {
            variables,
            constraints,
        },
    })
}
