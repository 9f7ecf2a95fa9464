//! The offline optimum: a linear program over hourly slots with perfect knowledge of the
//! weather and of every job's arrival, an upper bound on what any scheduler can get.
//!
//! # Formulation
//! Slots are the hours `h` of the horizon; sites `s`; jobs `j` with `g_j` GPUs, work
//! `W_j` (hours at full power), release `r_j` and deadline `d_j` (GreenOnly jobs: none).
//!
//! - `x[j,s,h] ≥ 0`: the share of hour `h` job `j` runs at site `s` (preemptive,
//!   divisible: the relaxation). Only hours within `[r_j, d_j)` (or the horizon's end)
//!   exist, and `Σ_s x[j,s,h] ≤ a[j,h]`, the share of the hour inside that window. Jobs
//!   not due within the horizon get no variable where a site has no supply at all: work
//!   there brings no renewable energy and need not be done, so the optimum is unchanged.
//! - Capacity: `Σ_j g_j x[j,s,h] ≤ N_s` (the site's GPUs).
//! - Work: `Σ_{s,h} x[j,s,h] + miss_j = W_j` with `0 ≤ miss_j ≤ W_j` for jobs whose
//!   deadline falls within the horizon; `Σ x ≤ W_j` for the others (GreenOnly jobs, and
//!   jobs due after the horizon), which need not finish within it.
//! - Renewable energy of the jobs at `(s,h)`: the accounting bills
//!   `R(b) = P b · min(1, S / L(b))` kW for `b = Σ_j g_j x[j,s,h]` busy GPUs at `P` kW
//!   each, where `L(b) = PUE (base + idle·(N − b) + P b)` is the facility load and `S`
//!   the supply. `R` is concave and increasing; the LP bounds `r[s,h]` by the line
//!   `P b` and by tangents of `R` at points between the kink (`L = S`) and `N`. Tangents
//!   lie above a concave function, so the LP's optimum is an upper bound.
//! - Objective: maximise `Σ r[s,h] − Σ_j M_j miss_j`, with `M_j` ten times the most
//!   renewable energy an hour of the job's work could bring, so the oracle first meets
//!   every deadline it can and only then maximises renewable energy.
//!
//! The schedule found is then billed by [`crate::outcome::bill_window`], like every policy;
//! `renewable_kwh` of the oracle is that bill (at most the LP's objective, reported as
//! `lp_bound_kwh`).
//!
//! What the relaxation ignores, each of which only raises the bound: gangs may be split
//! across sites and hours, nodes and fragmentation do not exist, and jobs are preempted
//! for free.

use good_lp::solvers::clarabel::clarabel;
use good_lp::{Expression, ProblemVariables, Solution, SolverModel, Variable, variable};

use crate::civil::HOUR_S;
use crate::cluster::PolicyKind;
use crate::error::SimError;
use crate::outcome::{JobUsage, RunOutcome, bill_window};
use crate::simulate::SimConfig;
use crate::sites::SimSite;
use crate::workload::SimJob;

/// Tangents per site-hour approximating the renewable curve beyond the kink.
const TANGENTS: usize = 6;
/// Weight of missed work against renewable energy (see the module docs).
const MISS_WEIGHT: f64 = 10.0;
/// Below this a share of an hour counts as nothing (interior-point solutions are never 0).
const EPS: f64 = 1e-6;

/// Size of the linear program, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LpSize {
    pub variables: usize,
    pub constraints: usize,
}

struct Slot {
    job: usize,
    site: usize,
    hour: usize,
    var: Variable,
}

/// Solves the oracle's linear program and bills its schedule.
pub fn solve_oracle(
    sites: &[SimSite],
    jobs: &[SimJob],
    config: &SimConfig,
) -> Result<(RunOutcome, LpSize), SimError> {
    let hours = config.hours();
    let shape = &config.cluster;
    let site_gpus = f64::from(shape.site_gpus());
    let p_kw = shape.gpu_max_watts / 1000.0;

    let mut vars = ProblemVariables::new();
    let mut slots: Vec<Slot> = Vec::new();
    // Per job: its window's hours with their available share.
    let mut windows: Vec<Vec<(usize, f64)>> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let release_s = job.submit_s.max(config.start_s);
        let end_s = job.deadline_s.unwrap_or(config.end_s).min(config.end_s);
        let mut window = Vec::new();
        if end_s > release_s {
            let first = ((release_s - config.start_s) / HOUR_S) as usize;
            let last = ((end_s - config.start_s + HOUR_S - 1) / HOUR_S) as usize;
            for hour in first..last.min(hours) {
                let slot_start = config.start_s + hour as i64 * HOUR_S;
                let overlap =
                    (end_s.min(slot_start + HOUR_S) - release_s.max(slot_start)).max(0) as f64;
                if overlap > 0.0 {
                    window.push((hour, overlap / HOUR_S as f64));
                }
            }
        }
        windows.push(window);
    }
    // Per job and window hour: the indices of its slots (one per site it may use then).
    // Jobs whose deadline falls within the horizon must finish (or count as missed);
    // the others' work within the horizon is optional, as for the policies.
    let due: Vec<bool> = jobs
        .iter()
        .map(|job| job.deadline_s.is_some_and(|d| d <= config.end_s))
        .collect();
    let mut hour_slots: Vec<Vec<(f64, Vec<usize>)>> = Vec::with_capacity(jobs.len());
    for (j, window) in windows.iter().enumerate() {
        let mut per_hour = Vec::with_capacity(window.len());
        for &(hour, share) in window {
            let mut ids = Vec::with_capacity(sites.len());
            for (site, sim_site) in sites.iter().enumerate() {
                // Work that need not be done within the horizon could bring no renewable
                // energy where there is no supply at all, so the optimum never puts it
                // there and the variable can go (a sixth of the program, same optimum).
                if !due[j] && sim_site.supply_kw_at(config.start_s + hour as i64 * HOUR_S) <= 0.0 {
                    continue;
                }
                ids.push(slots.len());
                slots.push(Slot {
                    job: j,
                    site,
                    hour,
                    var: vars.add(variable().min(0.0)),
                });
            }
            if !ids.is_empty() {
                per_hour.push((share, ids));
            }
        }
        hour_slots.push(per_hour);
    }
    let misses: Vec<Option<Variable>> = jobs
        .iter()
        .zip(&due)
        .map(|(job, &due)| {
            due.then(|| {
                vars.add(
                    variable()
                        .min(0.0)
                        .max(job.duration_s as f64 / HOUR_S as f64),
                )
            })
        })
        .collect();

    // Busy GPUs per (site, hour), as expressions.
    let mut busy: Vec<Vec<Expression>> = vec![vec![Expression::default(); hours]; sites.len()];
    let mut has_jobs = vec![vec![false; hours]; sites.len()];
    for slot in &slots {
        busy[slot.site][slot.hour].add_mul(f64::from(jobs[slot.job].gpus()), slot.var);
        has_jobs[slot.site][slot.hour] = true;
    }
    // Renewable variables and their tangent cuts.
    let mut renewable: Vec<Variable> = Vec::new();
    let mut cuts: Vec<(Variable, usize, usize, f64, f64)> = Vec::new(); // r ≤ c0 + c1·b
    for (s, site) in sites.iter().enumerate() {
        let a_kw = site.pue * (shape.site_base_w() + shape.gpu_idle_watts * site_gpus) / 1000.0;
        let c_kw = site.pue * (shape.gpu_max_watts - shape.gpu_idle_watts) / 1000.0;
        for (hour, _) in has_jobs[s].iter().enumerate().filter(|(_, busy)| **busy) {
            let supply_kw = site.supply_kw_at(config.start_s + hour as i64 * HOUR_S);
            if supply_kw <= 0.0 {
                continue;
            }
            let r = vars.add(variable().min(0.0));
            renewable.push(r);
            cuts.push((r, s, hour, 0.0, p_kw));
            // R(b) = P·S·b / (a + c·b) beyond the kink b* where a + c·b* = S.
            let kink = ((supply_kw - a_kw) / c_kw).max(0.0);
            if kink < site_gpus {
                for k in 0..TANGENTS {
                    let b = kink + (site_gpus - kink) * k as f64 / (TANGENTS - 1) as f64;
                    let load = a_kw + c_kw * b;
                    let value = p_kw * supply_kw * b / load;
                    let slope = p_kw * supply_kw * a_kw / (load * load);
                    cuts.push((r, s, hour, value - slope * b, slope));
                }
            }
        }
    }

    let mut objective = Expression::default();
    for &r in &renewable {
        objective.add_mul(1.0, r);
    }
    for (job, miss) in jobs.iter().zip(&misses) {
        if let Some(miss) = miss {
            objective.add_mul(-MISS_WEIGHT * f64::from(job.gpus()) * p_kw, *miss);
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

    for (j, per_hour) in hour_slots.iter().enumerate() {
        let mut work = Expression::default();
        for (share, ids) in per_hour {
            // One job runs at most its window's share of each hour, over all sites.
            let mut in_hour = Expression::default();
            for &i in ids {
                in_hour.add_mul(1.0, slots[i].var);
                work.add_mul(1.0, slots[i].var);
            }
            model.add_constraint(in_hour.leq(*share));
            constraints += 1;
        }
        let work_h = jobs[j].duration_s as f64 / HOUR_S as f64;
        match misses[j] {
            Some(miss) => {
                work.add_mul(1.0, miss);
                model.add_constraint(work.eq(work_h));
            }
            None => {
                model.add_constraint(work.leq(work_h));
            }
        }
        constraints += 1;
    }
    for (s, per_hour) in busy.iter().enumerate() {
        for (hour, expr) in per_hour.iter().enumerate() {
            if has_jobs[s][hour] {
                model.add_constraint(expr.clone().leq(site_gpus));
                constraints += 1;
            }
        }
    }
    for &(r, s, hour, c0, c1) in &cuts {
        // r − c1·b ≤ c0
        let mut cut = Expression::default();
        cut.add_mul(1.0, r);
        cut.add_mul(-c1, busy[s][hour].clone());
        model.add_constraint(cut.leq(c0));
        constraints += 1;
    }

    let solution = model.solve().map_err(|e| SimError::Oracle(e.to_string()))?;

    let mut outcome = RunOutcome::new(PolicyKind::Oracle, jobs.len(), sites, config.start_s, hours);
    let mut usage: Vec<Vec<Vec<JobUsage>>> = vec![vec![Vec::new(); hours]; sites.len()];
    let mut done_h = vec![0.0_f64; jobs.len()];
    let mut last_hour: Vec<Option<(usize, f64)>> = vec![None; jobs.len()];
    for slot in &slots {
        let x = solution.value(slot.var).max(0.0);
        if x <= EPS {
            continue;
        }
        let job = &jobs[slot.job];
        let gpus = f64::from(job.gpus());
        usage[slot.site][slot.hour].push(JobUsage {
            job: slot.job,
            energy_j: gpus * shape.gpu_max_watts * x * HOUR_S as f64,
            busy_gpu_s: gpus * x * HOUR_S as f64,
        });
        done_h[slot.job] += x;
        let slot_start = config.start_s + slot.hour as i64 * HOUR_S;
        let out = &mut outcome.jobs[slot.job];
        let start = slot_start.max(job.submit_s);
        out.first_start_s = Some(out.first_start_s.map_or(start, |s| s.min(start)));
        let entry = &mut last_hour[slot.job];
        match entry {
            Some((h, sum)) if *h == slot.hour => *sum += x,
            Some((h, _)) if *h > slot.hour => {}
            _ => *entry = Some((slot.hour, x)),
        }
    }
    for (s, site) in sites.iter().enumerate() {
        for (hour, hour_usage) in usage[s].iter().enumerate() {
            let start_s = config.start_s + hour as i64 * HOUR_S;
            let len_s = (config.end_s - start_s).min(HOUR_S) as f64;
            bill_window(
                shape,
                site,
                s,
                start_s,
                config.start_s,
                len_s,
                hour_usage,
                &mut outcome,
            );
        }
    }
    let mut met = Vec::with_capacity(jobs.len());
    for (j, job) in jobs.iter().enumerate() {
        let work_h = job.duration_s as f64 / HOUR_S as f64;
        let finished = done_h[j] >= work_h * (1.0 - 1e-4) - EPS;
        if finished && let Some((hour, x)) = last_hour[j] {
            let slot_start = config.start_s + hour as i64 * HOUR_S;
            outcome.jobs[j].finish_s =
                Some(slot_start.max(job.submit_s) + (x.min(1.0) * HOUR_S as f64).ceil() as i64);
        }
        met.push(!due[j] || finished);
    }
    let lp_bound_kwh: f64 = renewable.iter().map(|r| solution.value(*r).max(0.0)).sum();
    outcome.deadline_met_by_relaxation = Some(met);
    outcome.lp_bound_kwh = Some(lp_bound_kwh);
    Ok((
        outcome,
        LpSize {
            variables,
            constraints,
        },
    ))
}
