//! One placement cycle: build the per-site picture, settle running jobs (brown-outs and
//! caps), then walk the queue once, in order.

use std::collections::BTreeMap;

use super::headroom::{HeadroomTimeline, SupplyCurve};
use super::packing::{NodePool, Release};
use super::power::{cap_factor, job_kw_on, node_gpu_watts, running_end_s, site_pue};
use super::queue::ordered_indices;
use super::reservation::HeadReservation;
use super::{Decision, EngineConfig, JobState, Site, Snapshot, brownout, pending};

/// Decides, for every job in `snapshot`, what the controller should do now.
///
/// Returns exactly one [`Decision`] per job, in the order of `snapshot.jobs`: pending and
/// suspended jobs get `Place`, `Defer` or `Wait`; running jobs get `Suspend`, `PowerCap`,
/// `Uncap` or `Keep`. The result depends only on the arguments (no clock, no randomness,
/// no hash order), so the live controller and the trace simulator agree.
///
/// # Guarantees
/// - A `Place` puts every replica of the gang on nodes of one site, and never more GPUs on
///   a node than it has free (allocatable − used − earlier placements of this cycle).
/// - Only schedulable nodes at a known site, within `allowed_nodes` and `allowed_sites`.
/// - At most one job (the head of the queue) holds a reservation; nothing placed in the
///   same cycle delays its reserved start (see docs/scheduling.md, "Backfilling").
pub fn run_cycle(snapshot: &Snapshot, config: &EngineConfig) -> Vec<Decision> {
    let mut cycle = Cycle::new(snapshot, config);
    brownout::decide_running(&mut cycle);
    let queue = ordered_indices(&snapshot.jobs, snapshot.now_s, |j| {
        matches!(j.state, JobState::Pending | JobState::Suspended)
    });
    for job_index in queue {
        let decision = pending::decide(&mut cycle, job_index);
        cycle.decisions[job_index] = Some(decision);
    }
    cycle.decisions.into_iter().flatten().collect()
}

/// A site as the cycle sees it.
pub(super) struct SiteModel<'a> {
    pub site: &'a Site,
    pub timeline: HeadroomTimeline,
    /// Forecast step starts after `now_s`: the candidate start times of a deferral.
    pub step_starts_s: Vec<i64>,
    /// Highest per-GPU model draw among the site's eligible nodes, for planning future
    /// starts whose nodes are not known yet.
    pub max_model_watts: f64,
}

/// Mutable state of one cycle.
pub(super) struct Cycle<'a> {
    pub snap: &'a Snapshot,
    pub config: &'a EngineConfig,
    pub now_s: i64,
    pub sites: Vec<SiteModel<'a>>,
    pub site_index: BTreeMap<&'a str, usize>,
    pub node_watts: Vec<f64>,
    pub pool: NodePool,
    /// Per site: GPUs expected to free up, from running jobs and this cycle's placements.
    pub releases: Vec<Vec<Release>>,
    pub head: Option<HeadReservation>,
    pub decisions: Vec<Option<Decision>>,
}

impl<'a> Cycle<'a> {
    fn new(snap: &'a Snapshot, config: &'a EngineConfig) -> Self {
        let now_s = snap.now_s;
        let mut site_index = BTreeMap::new();
        for (i, site) in snap.sites.iter().enumerate() {
            site_index.entry(site.name.as_str()).or_insert(i);
        }
        let node_watts = node_gpu_watts(&snap.nodes, config);
        let pool = NodePool::new(&snap.nodes, snap.sites.len(), |name| {
            site_index.get(name).copied()
        });

        let mut loads: Vec<Vec<(i64, f64)>> = vec![Vec::new(); snap.sites.len()];
        let mut releases: Vec<Vec<Release>> = vec![Vec::new(); snap.sites.len()];
        for job in &snap.jobs {
            let JobState::Running {
                site,
                nodes,
                started_s,
            } = &job.state
            else {
                continue;
            };
            let end_s = running_end_s(job, *started_s, now_s, config);
            if let Some(&s) = site_index.get(site.as_str()) {
                let kw = job_kw_on(
                    job,
                    nodes.iter().copied(),
                    &node_watts,
                    site_pue(&snap.sites[s]),
                ) * cap_factor(job);
                loads[s].push((end_s, kw));
            }
            for &node in nodes {
                if let Some(node_site) = pool.site_of_node(node) {
                    releases[node_site].push(Release {
                        node,
                        gpus: job.gpus_per_replica,
                        end_s,
                    });
                }
            }
        }

        let mut max_model_watts = vec![0.0_f64; snap.sites.len()];
        for (n, watts) in node_watts.iter().enumerate() {
            if let Some(s) = pool.site_of_node(n as u32) {
                max_model_watts[s] = max_model_watts[s].max(*watts);
            }
        }
        let sites = snap
            .sites
            .iter()
            .zip(loads)
            .zip(max_model_watts)
            .map(|((site, loads), max_model_watts)| {
                let curve = SupplyCurve::new(&site.supply);
                SiteModel {
                    site,
                    timeline: HeadroomTimeline::new(
                        now_s,
                        &site.supply,
                        finite_or_zero(site.base_load_kw),
                        &loads,
                    ),
                    step_starts_s: curve.step_starts_s().filter(|t| *t > now_s).collect(),
                    max_model_watts: if max_model_watts > 0.0 {
                        max_model_watts
                    } else {
                        config.default_gpu_watts
                    },
                }
            })
            .collect();

        Self {
            snap,
            config,
            now_s,
            sites,
            site_index,
            node_watts,
            pool,
            releases,
            head: None,
            decisions: vec![None; snap.jobs.len()],
        }
    }

    pub fn site_name(&self, site: usize) -> &'a str {
        &self.snap.sites[site].name
    }
}

fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// `12.4` (kW with one decimal) for messages.
pub(super) fn kw(v: f64) -> String {
    format!("{v:.1}")
}
