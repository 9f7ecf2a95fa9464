//! What the engine sees of the simulated cluster: sites with their base load and a
//! perfect forecast, and the active jobs as TrainingJobs would describe them.

use verdant_core::placement::{Elastic, Job, JobState, Policy, Site, SupplyPoint};

use super::{FORECAST_HOURS, RunState, Simulation};
use crate::civil::HOUR_S;
use crate::cluster::PolicyKind;
use crate::sites::SimSite;

impl Simulation<'_> {
    /// The engine's sites now; `draw` is each site's busy GPUs and their draw (W).
    pub(super) fn engine_sites(&self, now_s: i64, draw: &[(f64, f64)]) -> Vec<Site> {
        let shape = &self.config.cluster;
        let blind = self.policy == PolicyKind::Fifo;
        self.sites
            .iter()
            .enumerate()
            .map(|(s, site)| {
                let idle_gpus = f64::from(shape.site_gpus()) - draw[s].0;
                Site {
                    name: site.name.clone(),
                    pue: site.pue,
                    grid_carbon_g_per_kwh: site.grid_carbon_g_per_kwh,
                    supply: if blind {
                        Vec::new()
                    } else {
                        forecast(site, now_s)
                    },
                    base_load_kw: (shape.site_base_w() + idle_gpus.max(0.0) * shape.gpu_idle_watts)
                        * site.pue
                        / 1000.0,
                    headroom_negative_since_s: self.negative_since[s],
                    storage: self.storage[s].batteries.clone(),
                }
            })
            .collect()
    }

    /// The latest start the engine is given: two cycles before the last instant that
    /// still meets the deadline. Decisions are taken once a step, so a job is placed up to
    /// a step after its latest start; and one that must first have room made for it
    /// (suspensions take a cycle to free their GPUs) is placed a cycle later still.
    pub(super) fn latest_start_s(&self, deadline_s: i64, remaining_s: i64) -> i64 {
        deadline_s - remaining_s - 2 * self.config.step_s
    }

    pub(super) fn engine_job(&self, j: usize, allowed_sites: Vec<String>) -> Job {
        let job = &self.jobs[j];
        let live = &self.live[j];
        let remaining_s = live.remaining_s.ceil() as i64;
        let state = match &live.state {
            RunState::Running {
                site,
                nodes,
                started_s,
                ..
            } => JobState::Running {
                site: self.sites[*site].name.clone(),
                nodes: nodes.clone(),
                started_s: *started_s,
            },
            RunState::Suspended => JobState::Suspended,
            RunState::Pending | RunState::Done => JobState::Pending,
        };
        let estimated_duration_s = match live.state {
            RunState::Running { estimate_s, .. } => estimate_s,
            _ => remaining_s,
        };
        let green_aware = self.policy == PolicyKind::Verdant;
        let elastic = job.elastic.filter(|_| green_aware);
        // A running elastic job's due time is `latest_start_s + estimated_duration_s`
        // (see `Job::due_s`): its estimate is from its last resize, so its latest start is too.
        let latest_start_s = match (&live.state, elastic) {
            (RunState::Running { .. }, Some(_)) => job
                .deadline_s
                .map(|d| d - estimated_duration_s - 2 * self.config.step_s),
            _ => job.deadline_s.map(|d| self.latest_start_s(d, remaining_s)),
        };
        Job {
            id: job.id.clone(),
            replicas: live.replicas,
            gpus_per_replica: job.gpus_per_replica,
            state,
            policy: if green_aware {
                job.policy
            } else {
                Policy::Immediate
            },
            min_renewable_fraction: job.min_renewable_fraction,
            interruptible: green_aware && job.interruptible,
            power_cap_min_percent: job.power_cap_min_percent.filter(|_| green_aware),
            power_cap_percent: live.cap_percent,
            priority: 0,
            created_s: job.submit_s,
            latest_start_s: latest_start_s.filter(|_| green_aware),
            estimated_duration_s: Some(estimated_duration_s.max(1)),
            measured_gpu_watts: None,
            allowed_sites,
            allowed_nodes: None,
            elastic: elastic.map(|(min_replicas, max_replicas)| Elastic {
                min_replicas,
                max_replicas,
                last_resize_s: live.last_resize_s,
            }),
        }
    }
}

/// Hourly supply points from the current hour for [`FORECAST_HOURS`]; the first point
/// starts at `now_s` (the engine reads the first point as "now").
fn forecast(site: &SimSite, now_s: i64) -> Vec<SupplyPoint> {
    let hour_start = now_s.div_euclid(HOUR_S) * HOUR_S;
    (0..FORECAST_HOURS)
        .map(|h| {
            let start_s = hour_start + h * HOUR_S;
            SupplyPoint {
                start_s: start_s.max(now_s),
                kw: site.supply_kw_at(start_s),
            }
        })
        .collect()
}
