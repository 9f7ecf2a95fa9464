//! What a policy's run produced, and the billing shared by every policy.
//!
//! Every policy, the oracle included, is billed by [`bill_window`], which hands each
//! window to `verdant_core::accounting::SiteWindow::bill`: the code that bills live jobs
//! in the operator. A window's GPU power is the jobs' draw plus the idle GPUs'; the
//! node base power and PUE complete the facility load whose renewable share each joule
//! of job energy gets.

use serde::Serialize;
use verdant_core::accounting::{Ledger, SiteWindow};

use crate::civil::HOUR_S;
use crate::cluster::{ClusterShape, PolicyKind};
use crate::sites::SimSite;

/// One job's result under one policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct JobOutcome {
    /// When the job first started (the oracle: first slot with work).
    pub first_start_s: Option<i64>,
    /// When its last work was done; `None` if unfinished at the end of the horizon.
    pub finish_s: Option<i64>,
    /// Its GPUs' energy, billed window by window.
    pub ledger: Ledger,
    pub suspensions: u32,
    pub restarts: u32,
}

/// One site's hour, for plots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HourRecord {
    /// Renewable supply, kW.
    pub supply_kw: f64,
    /// Mean facility load ((GPUs + node base) × PUE), kW.
    pub facility_load_kw: f64,
    /// Energy billed to jobs, J.
    pub job_energy_j: f64,
    /// Of it renewable, J.
    pub renewable_j: f64,
}

/// A policy's whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunOutcome {
    pub policy: PolicyKind,
    /// By job index of the workload.
    pub jobs: Vec<JobOutcome>,
    /// GPU-seconds of job work (busy GPUs × time).
    pub busy_gpu_s: f64,
    /// `None` where the notion does not apply (the oracle's relaxation).
    pub suspensions: Option<u64>,
    pub restarts: Option<u64>,
    /// Per site (in site order), per hour of the horizon.
    pub hourly: Vec<Vec<HourRecord>>,
    /// Placements that would have put more GPUs on a node than it has (must stay 0).
    pub capacity_violations: u64,
    /// Most GPUs busy at once, per site.
    pub peak_busy_gpus: Vec<f64>,
    /// The oracle only: whether its relaxation meets each job's deadline.
    pub deadline_met_by_relaxation: Option<Vec<bool>>,
    /// The oracle only: the linear program's objective, an upper bound on the renewable
    /// kWh any schedule meeting the same deadlines can get, kWh.
    pub lp_bound_kwh: Option<f64>,
}

impl RunOutcome {
    /// An empty outcome for `jobs` jobs over `hours` hours at `sites`.
    pub fn new(
        policy: PolicyKind,
        jobs: usize,
        sites: &[SimSite],
        start_s: i64,
        hours: usize,
    ) -> Self {
        let hourly = sites
            .iter()
            .map(|site| {
                (0..hours)
                    .map(|h| HourRecord {
                        supply_kw: site.supply_kw_at(start_s + h as i64 * HOUR_S),
                        ..HourRecord::default()
                    })
                    .collect()
            })
            .collect();
        Self {
            policy,
            jobs: vec![JobOutcome::default(); jobs],
            busy_gpu_s: 0.0,
            suspensions: None,
            restarts: None,
            hourly,
            capacity_violations: 0,
            peak_busy_gpus: vec![0.0; sites.len()],
            deadline_met_by_relaxation: None,
            lp_bound_kwh: None,
        }
    }

    /// The sum of every job's ledger.
    pub fn total(&self) -> Ledger {
        let mut total = Ledger::default();
        for job in &self.jobs {
            total += &job.ledger;
        }
        total
    }
}

/// A job's share of one billing window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobUsage {
    pub job: usize,
    /// Energy of the job's GPUs in the window, J.
    pub energy_j: f64,
    /// GPU-seconds the job kept busy in the window.
    pub busy_gpu_s: f64,
}

/// Bills one window `[start_s, start_s + duration_s)` at one site (within one hour of the
/// supply series) and records it: each job's ledger, and the site's hour.
/// `storage_discharge_w` is the mean power the site's batteries delivered (renewable).
#[allow(clippy::too_many_arguments)]
pub fn bill_window(
    cluster: &ClusterShape,
    site: &SimSite,
    site_index: usize,
    start_s: i64,
    horizon_start_s: i64,
    duration_s: f64,
    usage: &[JobUsage],
    storage_discharge_w: f64,
    outcome: &mut RunOutcome,
) {
    if duration_s <= 0.0 {
        return;
    }
    let jobs_energy_j: f64 = usage.iter().map(|u| u.energy_j).sum();
    let busy_gpu_s: f64 = usage.iter().map(|u| u.busy_gpu_s).sum();
    let busy_gpus = busy_gpu_s / duration_s;
    let window = SiteWindow {
        gpu_power_w: cluster.site_it_w(busy_gpus, jobs_energy_j / duration_s)
            - cluster.site_base_w(),
        base_power_w: cluster.site_base_w(),
        pue: site.pue,
        renewable_supply_w: site.supply_kw_at(start_s) * 1000.0,
        storage_discharge_w,
        grid_carbon_g_per_kwh: site.grid_carbon_g_per_kwh,
    };
    let mut renewable_j = 0.0;
    for u in usage {
        let ledger = window.bill(u.energy_j);
        renewable_j += ledger.renewable_j;
        outcome.jobs[u.job].ledger += &ledger;
    }
    outcome.busy_gpu_s += busy_gpu_s;
    let peak = &mut outcome.peak_busy_gpus[site_index];
    *peak = peak.max(busy_gpus);
    let hour = (start_s - horizon_start_s).div_euclid(HOUR_S);
    if let Some(record) = usize::try_from(hour)
        .ok()
        .and_then(|h| outcome.hourly[site_index].get_mut(h))
    {
        record.facility_load_kw += window.facility_load_w() / 1000.0 * duration_s / HOUR_S as f64;
        record.job_energy_j += jobs_energy_j;
        record.renewable_j += renewable_j;
    }
}
