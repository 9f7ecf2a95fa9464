//! The offline optimum: a linear program over hourly slots with perfect knowledge of the
//! weather and of every job's arrival, an upper bound on what any scheduler can get.
//!
//! # Formulation
//! Slots are the hours `h` of the horizon; sites `s` with `N` GPUs each and supply
//! `S[s,h]`; jobs `j` with `g_j` GPUs, work `W_j` (hours at full power), release `r_j` and
//! deadline `d_j` (GreenOnly jobs: none).
//!
//! - `y[j,h] ∈ [0, a[j,h]]`: the share of hour `h` job `j` runs, at any site (preemptive,
//!   divisible, migrating for free: the relaxation), `a[j,h]` the share of the hour
//!   inside `[r_j, d_j)` (or the horizon's end). Jobs not due within the horizon get no
//!   variable in an hour without supply anywhere: work there brings no renewable energy
//!   and need not be done, so the optimum is unchanged.
//! - Work: `Σ_h y[j,h] + miss_j = W_j` with `0 ≤ miss_j ≤ W_j` for jobs whose deadline
//!   falls within the horizon; `Σ y ≤ W_j` for the others (GreenOnly jobs, and jobs due
//!   after the horizon), which need not finish within it.
//! - Sites: `b[s,h] ∈ [0, N]` busy GPUs at each site with supply, `z[h] ∈ [0, N·dark]`
//!   at the sites without (pooled: their GPUs' energy is all grid), and
//!   `Σ_j g_j y[j,h] = Σ_s b[s,h] + z[h]`.
//! - Renewable energy at `(s,h)`: the accounting bills `R(b) = P b · min(1, S / L(b))` kW
//!   for `b` busy GPUs at `P` kW each, where `L(b) = PUE (base + idle·(N − b) + P b)` is
//!   the facility load. `R` is concave and increasing; the LP bounds `r[s,h]` by the
//!   line `P b` and by tangents of `R` at points between the kink (`L = S`) and `N`.
//!   Tangents lie above a concave function, so the LP's optimum is an upper bound.
//! - Objective: maximise `Σ r[s,h] − Σ_j M_j miss_j`, with `M_j` ten times the most
//!   renewable energy an hour of the job's work could bring, so the oracle first meets
//!   every deadline it can and only then maximises renewable energy.
//!
//! This is the per-job, per-site program (`x[j,s,h]`, kept in `reference.rs` for the
//! tests) with the sites pooled, and the two have the same optimum: `y[j,h] = Σ_s
//! x[j,s,h]` and `b[s,h] = Σ_j g_j x[j,s,h]` map a solution of the first onto one of
//! this; back, `x[j,s,h] = y[j,h] · b[s,h] / Σ_s' b[s',h]` (every job spread over the
//! sites in proportion) meets every constraint of the first with the same objective.
//! The renewable cuts then bound one variable `b[s,h]` each instead of every job's
//! term at that site-hour, and each job-hour has one variable instead of one per site.
//! Pooled, the program is a min-cost flow, and [`program`] solves it as one with the
//! network simplex of [`flow`] (see docs/simulator.md for the sizes and times of each
//! step).
//!
//! The schedule found is then billed by [`crate::outcome::bill_window`], like every policy;
//! `renewable_kwh` of the oracle is that bill (at most the LP's objective, reported as
//! `lp_bound_kwh`).
//!
//! What the relaxation ignores, each of which only raises the bound: gangs may be split
//! across sites and hours, nodes and fragmentation do not exist, and jobs are preempted
//! for free.

mod flow;
mod program;
#[cfg(test)]
mod reference;
mod schedule;
#[cfg(test)]
mod tests;
mod windows;

use crate::outcome::RunOutcome;
use crate::simulate::SimConfig;
use crate::sites::SimSite;
use crate::workload::SimJob;

/// Size of the program as the flow network it is solved as, for the report: its arcs are
/// the program's variables, its nodes the rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LpSize {
    pub arcs: usize,
    pub nodes: usize,
}

/// Solves the oracle's linear program and bills its schedule.
pub fn solve_oracle(
    sites: &[SimSite],
    jobs: &[SimJob],
    config: &SimConfig,
) -> (RunOutcome, LpSize) {
    let windows = windows::job_windows(jobs, config);
    let plan = program::solve(sites, &windows, config);
    let outcome = schedule::bill(&plan, jobs, &windows, sites, config);
    (outcome, plan.size)
}
