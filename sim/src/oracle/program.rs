//! The oracle's linear program, per job and hour with the sites pooled (see the module
//! docs of [`super`] for the formulation and why it is exact), solved as the min-cost flow
//! it is.
//!
//! # The network
//! Flow is GPU-seconds. A source feeds each job up to its work (`g_j·W_j`); each job feeds
//! the hours of its window up to its GPUs times its seconds there (`g_j·a[j,h]`, the
//! program's `y[j,h] ≤ a[j,h]`); each hour drains to a sink through the pieces of every
//! green site's renewable bound (the least of its cuts, concave, so its pieces fill in
//! order) and through the pooled sites without supply; the sink returns to the source. A
//! unit through a piece earns the piece's slope, a unit through a due job earns the miss
//! weight (the program's `−M_j·miss_j`, less a constant). The program's rows are the
//! nodes' conservation, its variables the arcs, and a network's program has integral
//! vertices: with every datum in whole GPU-seconds the flow found is the program's optimum
//! up to the rounding of the slopes (to 10⁻¹² kWh per GPU-second), of the pieces' ends (to
//! a GPU-second) and the lateness cost below (a unit per GPU-second per hour), together
//! under 10⁻⁶ of the bound, where it may move 0.5 %.

use super::LpSize;
use super::flow::{Network, UNBOUNDED};
use super::windows::{JobWindow, bound_at, bound_pieces, renewable_cuts};
use crate::civil::HOUR_S;
use crate::simulate::SimConfig;
use crate::sites::SimSite;

/// Weight of missed work against renewable energy (see the module docs).
const MISS_WEIGHT: f64 = 10.0;

/// The cost unit, kWh: slopes are rounded to it per GPU-second.
const COST_UNIT_KWH: f64 = 1e-12;

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

/// A green site-hour: its site, its cuts and the arcs of its pieces.
struct GreenSlot {
    site: usize,
    cuts: Vec<(f64, f64)>,
    arcs: std::ops::Range<usize>,
}

const SOURCE: usize = 0;
const SINK: usize = 1;

/// A rate in kWh per GPU-hour as a cost per GPU-second (negative: a reward).
fn reward(kwh_per_gpu_h: f64) -> i64 {
    -(kwh_per_gpu_h / HOUR_S as f64 / COST_UNIT_KWH).round() as i64
}

/// Builds and solves the program for the jobs' `windows`.
pub(super) fn solve(sites: &[SimSite], windows: &[JobWindow], config: &SimConfig) -> Plan {
    let hours = config.hours();
    let shape = &config.cluster;
    let site_gpus = f64::from(shape.site_gpus());
    let hour_s = HOUR_S as f64;
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
    let hour_node = |h: usize| 2 + h;
    let mut net = Network::new(2 + hours + windows.len());

    // Per job, per window hour: the arc of the seconds it runs there. Work that need not be
    // done within the horizon gets no arc in an hour without supply anywhere: it would
    // bring no renewable energy, so the optimum never does it there.
    let miss_reward = reward(MISS_WEIGHT * p_kw);
    let mut runs: Vec<Vec<(usize, usize)>> = Vec::with_capacity(windows.len());
    let mut has_jobs = vec![false; hours];
    for (j, window) in windows.iter().enumerate() {
        let job = 2 + hours + j;
        let gpus = window.gpus.round() as i64;
        let work_s = (window.work_h * hour_s).round() as i64;
        let cost = if window.due { miss_reward } else { 0 };
        net.add_arc(SOURCE, job, gpus * work_s, cost);
        let mut job_runs = Vec::with_capacity(window.hours.len());
        for &(hour, share) in &window.hours {
            if !window.due && !any_supply[hour] {
                continue;
            }
            // A cost unit per hour from the horizon's start: of the schedules with the
            // most renewable energy (there are many where supply exceeds the load), the
            // one that does work earliest, not a vertex that starts a job days late for
            // nothing.
            let seconds = (share * hour_s).round() as i64;
            let lateness = hour as i64;
            job_runs.push((
                hour,
                net.add_arc(job, hour_node(hour), gpus * seconds, lateness),
            ));
            has_jobs[hour] = true;
        }
        runs.push(job_runs);
    }
    // Per hour with jobs: the pieces of each green site's bound, and the sites without
    // supply pooled (alike: their GPUs' energy is all grid).
    let site_gpu_s = i64::from(shape.site_gpus()) * HOUR_S;
    let mut green: Vec<Vec<GreenSlot>> = (0..hours).map(|_| Vec::new()).collect();
    let mut grid: Vec<Option<usize>> = vec![None; hours];
    for hour in (0..hours).filter(|h| has_jobs[*h]) {
        let mut grid_gpu_s = 0;
        for (site, supply) in supply_kw[hour].iter().enumerate() {
            if *supply <= 0.0 {
                grid_gpu_s += site_gpu_s;
                continue;
            }
            let cuts = renewable_cuts(shape, &sites[site], *supply);
            let first = net.arcs();
            let mut start = 0;
            for (end, slope) in bound_pieces(&cuts, site_gpus) {
                let end = ((end * hour_s).round() as i64).min(site_gpu_s);
                if end > start {
                    net.add_arc(hour_node(hour), SINK, end - start, reward(slope));
                    start = end;
                }
            }
            let arcs = first..net.arcs();
            green[hour].push(GreenSlot { site, cuts, arcs });
        }
        if grid_gpu_s > 0 {
            grid[hour] = Some(net.add_arc(hour_node(hour), SINK, grid_gpu_s, 0));
        }
    }
    net.add_arc(SINK, SOURCE, UNBOUNDED, 0);
    let size = LpSize {
        arcs: net.arcs(),
        nodes: net.nodes(),
    };
    tracing::debug!(
        arcs = size.arcs,
        nodes = size.nodes,
        "solving the oracle's flow"
    );
    let flow = net.min_cost_circulation();

    let runs: Vec<Vec<(usize, f64)>> = runs
        .iter()
        .zip(windows)
        .map(|(job_runs, window)| {
            job_runs
                .iter()
                .map(|&(hour, arc)| (hour, flow[arc] as f64 / (window.gpus * hour_s)))
                .collect()
        })
        .collect();
    let mut site_busy = vec![vec![0.0; sites.len()]; hours];
    let mut lp_bound_kwh = 0.0;
    for (hour, busy) in site_busy.iter_mut().enumerate() {
        for slot in &green[hour] {
            let gpus = slot.arcs.clone().map(|a| flow[a]).sum::<i64>() as f64 / hour_s;
            busy[slot.site] = gpus;
            lp_bound_kwh += bound_at(&slot.cuts, gpus);
        }
        if let Some(arc) = grid[hour] {
            // The pooled sites without supply share their GPUs' work evenly.
            let dark: Vec<usize> = (0..sites.len())
                .filter(|s| supply_kw[hour][*s] <= 0.0)
                .collect();
            let each = flow[arc] as f64 / hour_s / dark.len() as f64;
            for s in dark {
                busy[s] = each;
            }
        }
    }
    Plan {
        runs,
        site_busy,
        lp_bound_kwh,
        size,
    }
}
