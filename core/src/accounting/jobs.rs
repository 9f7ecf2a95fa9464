//! One report window of one node, billed to the jobs whose GPUs drew it. Pure.
//!
//! Each job is billed the energy of its GPUs in the window (from their energy counters)
//! at the site window's renewable share ([`SiteWindow::bill`]). GPUs without a job count
//! for the node's power but are billed to nobody.

use std::collections::{BTreeMap, HashMap};

use super::{Ledger, SiteWindow};

/// The TrainingJob a GPU works for.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRef {
    /// The job's uid (ledgers are keyed by it: a job re-created under the same name starts
    /// a new ledger).
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The power cap in force (`status.powerCapPercent`), if any.
    pub power_cap_percent: Option<i32>,
}

impl JobRef {
    /// `namespace/name`, the engine's job id.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One GPU over a window, as billing reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuDraw {
    /// Energy drawn in the window, J.
    pub energy_j: f64,
    /// Mean power draw, W.
    pub mean_power_w: f64,
    /// The driver's default power limit, W: a job's power cap is a percentage of it.
    pub default_power_limit_w: f64,
    /// Whether a pod held it.
    pub busy: bool,
}

/// A job's part of a window.
#[derive(Clone, Debug, PartialEq)]
pub struct JobBill<'a> {
    /// The job.
    pub job: &'a JobRef,
    /// The energy its GPUs drew, J.
    pub energy_j: f64,
    /// That energy at the site's renewable share; `None` when the node has no site.
    pub ledger: Option<Ledger>,
    /// Its mean draw per GPU on this node, W.
    pub watts_per_gpu: f64,
}

/// What a window amounts to.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowBill<'a> {
    /// Each job with a GPU in the window, in uid order.
    pub jobs: Vec<JobBill<'a>>,
    /// The node's GPU power, W (Σ mean power).
    pub gpu_power_w: f64,
    /// Mean draw of the GPUs a pod held, W.
    pub busy_gpu_watts: Option<f64>,
    /// The power limit of each GPU of a power-capped job: (its position in `gpus`, W), in
    /// GPU order.
    pub power_limits: Vec<(usize, f64)>,
}

/// Bills a window. `jobs` maps positions in `gpus` to their job; `window` is the site's
/// window, `None` when the node belongs to no site (nothing is then billed, but the
/// power still adds up).
pub fn bill_jobs<'a>(
    gpus: &[GpuDraw],
    jobs: &'a HashMap<usize, JobRef>,
    window: Option<&SiteWindow>,
) -> WindowBill<'a> {
    // Per job: energy, and power for the per-GPU mean.
    let mut per_job: BTreeMap<&str, (&JobRef, f64, f64, u32)> = BTreeMap::new();
    let mut power_limits = Vec::new();
    for (i, g) in gpus.iter().enumerate() {
        let Some(job) = jobs.get(&i) else { continue };
        let entry = per_job
            .entry(job.uid.as_str())
            .or_insert((job, 0.0, 0.0, 0));
        entry.1 += g.energy_j;
        entry.2 += g.mean_power_w;
        entry.3 += 1;
        if let Some(percent) = job.power_cap_percent.filter(|p| (1..100).contains(p)) {
            power_limits.push((i, g.default_power_limit_w * f64::from(percent) / 100.0));
        }
    }
    let busy: Vec<f64> = gpus
        .iter()
        .filter(|g| g.busy)
        .map(|g| g.mean_power_w)
        .collect();
    WindowBill {
        jobs: per_job
            .into_values()
            .map(|(job, energy_j, watts, count)| JobBill {
                job,
                energy_j,
                ledger: window.map(|w| w.bill(energy_j)),
                watts_per_gpu: watts / f64::from(count.max(1)),
            })
            .collect(),
        gpu_power_w: gpus.iter().map(|g| g.mean_power_w).sum(),
        busy_gpu_watts: (!busy.is_empty()).then(|| busy.iter().sum::<f64>() / busy.len() as f64),
        power_limits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(uid: &str, cap: Option<i32>) -> JobRef {
        JobRef {
            uid: uid.into(),
            namespace: "ml".into(),
            name: format!("job-{uid}"),
            power_cap_percent: cap,
        }
    }

    fn gpu(watts: f64, busy: bool) -> GpuDraw {
        GpuDraw {
            energy_j: watts * 10.0,
            mean_power_w: watts,
            default_power_limit_w: 700.0,
            busy,
        }
    }

    #[test]
    fn each_job_pays_its_gpus_at_the_window_share() {
        // 4 GPUs: two of job a (650 W, 600 W), one of job b (capped at 80 %), one idle.
        let gpus = [
            gpu(650.0, true),
            gpu(600.0, true),
            gpu(500.0, true),
            gpu(70.0, false),
        ];
        let jobs: HashMap<usize, JobRef> = [
            (0, job("a", None)),
            (1, job("a", None)),
            (2, job("b", Some(80))),
        ]
        .into();
        // The 1,820 W of these GPUs + 400 W base, PUE 1.25 → 2,775 W facility; 1,387.5 W
        // of sun covers exactly half.
        let window = SiteWindow {
            gpu_power_w: 1820.0,
            base_power_w: 400.0,
            pue: 1.25,
            renewable_supply_w: 1387.5,
            storage_discharge_w: 0.0,
            grid_carbon_g_per_kwh: 360.0,
        };
        let bill = bill_jobs(&gpus, &jobs, Some(&window));
        assert_eq!(bill.jobs.len(), 2);
        let a = &bill.jobs[0];
        assert_eq!((a.job.uid.as_str(), a.energy_j), ("a", 12_500.0));
        let ledger = a.ledger.unwrap();
        assert_eq!((ledger.renewable_j, ledger.grid_j), (6_250.0, 6_250.0));
        assert!((ledger.co2_g - 6_250.0 / 3.6e6 * 360.0).abs() < 1e-12);
        assert_eq!(a.watts_per_gpu, 625.0);
        assert_eq!(
            (bill.jobs[1].energy_j, bill.jobs[1].watts_per_gpu),
            (5_000.0, 500.0)
        );
        assert_eq!(bill.gpu_power_w, 1820.0);
        assert_eq!(bill.busy_gpu_watts, Some(1750.0 / 3.0));
        assert_eq!(bill.power_limits, vec![(2, 560.0)]);
    }

    #[test]
    fn without_a_site_jobs_are_counted_but_not_billed() {
        let jobs: HashMap<usize, JobRef> = [(0, job("a", Some(100)))].into();
        let bill = bill_jobs(&[gpu(650.0, true)], &jobs, None);
        assert_eq!(bill.jobs[0].energy_j, 6_500.0);
        assert_eq!(bill.jobs[0].ledger, None);
        assert!(bill.power_limits.is_empty(), "100 % is no cap");
    }
}
