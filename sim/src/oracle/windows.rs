//! What the oracle's program knows of each job and site-hour: the hours a job may run in
//! (with the share of each inside its window), and the renewable curve's cuts.

use crate::civil::HOUR_S;
use crate::cluster::ClusterShape;
use crate::simulate::SimConfig;
use crate::sites::SimSite;
use crate::workload::SimJob;

/// Tangents per site-hour approximating the renewable curve beyond the kink.
const TANGENTS: usize = 6;

/// One job as the program sees it.
pub(super) struct JobWindow {
    /// The deadline falls within the horizon: the work must be done (or counted missed).
    pub due: bool,
    /// Work, hours at full power.
    pub work_h: f64,
    pub gpus: f64,
    /// The hours of `[release, deadline or horizon end)`, each with the share of the hour
    /// inside that window, in increasing order.
    pub hours: Vec<(usize, f64)>,
}

/// Every job's window over the horizon of `config`.
pub(super) fn job_windows(jobs: &[SimJob], config: &SimConfig) -> Vec<JobWindow> {
    let hours = config.hours();
    jobs.iter()
        .map(|job| {
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
            JobWindow {
                // Jobs due after the horizon, and GreenOnly jobs, need not finish within
                // it, as for the policies.
                due: job.deadline_s.is_some_and(|d| d <= config.end_s),
                work_h: job.duration_s as f64 / HOUR_S as f64,
                gpus: f64::from(job.gpus()),
                hours: window,
            }
        })
        .collect()
}

/// The renewable energy (kWh in an hour, so kW) the accounting bills for `b` busy GPUs at
/// a site with `supply_kw`, bounded from above by lines `r ≤ c0 + c1·b`: the line `P·b`
/// and tangents of `R(b) = P·b·min(1, S / L(b))` between the kink (`L = S`) and all GPUs
/// busy. `R` is concave, so the lines lie above it. Returns `(c0, c1)` pairs.
pub(super) fn renewable_cuts(
    shape: &ClusterShape,
    site: &SimSite,
    supply_kw: f64,
) -> Vec<(f64, f64)> {
    let site_gpus = f64::from(shape.site_gpus());
    let p_kw = shape.gpu_max_watts / 1000.0;
    let a_kw = site.pue * (shape.site_base_w() + shape.gpu_idle_watts * site_gpus) / 1000.0;
    let c_kw = site.pue * (shape.gpu_max_watts - shape.gpu_idle_watts) / 1000.0;
    let mut cuts = vec![(0.0, p_kw)];
    // R(b) = P·S·b / (a + c·b) beyond the kink b* where a + c·b* = S.
    let kink = ((supply_kw - a_kw) / c_kw).max(0.0);
    if kink < site_gpus {
        for k in 0..TANGENTS {
            let b = kink + (site_gpus - kink) * k as f64 / (TANGENTS - 1) as f64;
            let load = a_kw + c_kw * b;
            let value = p_kw * supply_kw * b / load;
            let slope = p_kw * supply_kw * a_kw / (load * load);
            cuts.push((value - slope * b, slope));
        }
    }
    cuts
}

/// The upper bound the `cuts` put on the renewable energy of `b` busy GPUs: the least of
/// their lines at `b`.
pub(super) fn bound_at(cuts: &[(f64, f64)], b: f64) -> f64 {
    cuts.iter()
        .map(|(c0, c1)| c0 + c1 * b)
        .fold(f64::INFINITY, f64::min)
}

/// The same bound as consecutive pieces over `[0, top]` busy GPUs: `(end, slope)` in
/// increasing `b`, so in decreasing slope (the least of lines is concave).
pub(super) fn bound_pieces(cuts: &[(f64, f64)], top: f64) -> Vec<(f64, f64)> {
    let at_zero = |k: usize| cuts[k].0;
    // The lowest line at 0, the flattest of ties.
    let Some(mut line) = (0..cuts.len()).min_by(|&a, &b| {
        at_zero(a)
            .total_cmp(&at_zero(b))
            .then(cuts[a].1.total_cmp(&cuts[b].1))
    }) else {
        return Vec::new();
    };
    let mut at = 0.0;
    let mut pieces = Vec::new();
    loop {
        // The flatter line crossing the current one soonest from `at` (the flattest of
        // ties) takes over there.
        let (c0, c1) = cuts[line];
        let next = (0..cuts.len())
            .filter(|&k| cuts[k].1 < c1)
            .map(|k| (k, (cuts[k].0 - c0) / (c1 - cuts[k].1)))
            .filter(|(_, x)| *x >= at)
            .min_by(|a, b| {
                a.1.total_cmp(&b.1)
                    .then(cuts[a.0].1.total_cmp(&cuts[b.0].1))
            });
        match next {
            Some((k, x)) if x < top => {
                if x > at {
                    pieces.push((x, c1));
                }
                line = k;
                at = x;
            }
            _ => {
                pieces.push((top, c1));
                return pieces;
            }
        }
    }
}
