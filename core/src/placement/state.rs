//! What one cycle knows and holds: the per-site picture ([`Cycle`], [`SiteModel`]), the
//! head of the queue's reservation ([`HeadReservation`]) and what the cycle derives once
//! about each pending job ([`JobView`]).
//!
//! Every step of the cycle (brown-outs, the survey, the policies, reservations, making
//! room) reads and updates this state; it imports none of them.

use std::collections::BTreeMap;

use super::decision::Decision;
use super::headroom::{HeadroomTimeline, SupplyCurve};
use super::packing::{GangRequest, NodePool, Release};
use super::power::{cap_factor, job_kw_on, node_gpu_watts, replicas_kw, running_end_s, site_pue};
use super::snapshot::{EngineConfig, Job, JobState, Site, Snapshot};

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
    pub fn new(snap: &'a Snapshot, config: &'a EngineConfig) -> Self {
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
                    )
                    .with_storage(&site.storage),
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

/// What of the head's start condition later jobs must not erode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Protect {
    /// Only GPUs are protected (the head waits for capacity, not for green power).
    GpusOnly,
    /// GreenPreferred head: its renewable fraction at the reserved start stays ≥ this.
    MinFraction(f64),
    /// GreenOnly head: headroom at the reserved start still covers its power.
    HeadroomAtStart,
}

/// The head of the queue and what it holds.
#[derive(Clone, Debug)]
pub(super) struct HeadReservation {
    pub job_id: String,
    pub site: usize,
    pub start_s: i64,
    pub end_s: i64,
    pub power_kw: f64,
    pub gpus: u32,
    pub protect: Protect,
}

/// A job with what the cycle derived about it once.
pub(super) struct JobView<'a> {
    pub job: &'a Job,
    pub index: usize,
    pub duration_s: i64,
    /// When the job would end if started now.
    pub end_now_s: i64,
    /// Per site: the job's allowed nodes there, sorted and unique; `None` = all.
    pub allowed: Vec<Option<Vec<u32>>>,
    /// Allowed sites whose allowed nodes could hold the whole gang when idle.
    pub feasible: Vec<usize>,
    /// Per site: the job's power if placed there, assuming the hungriest allowed GPU model
    /// (used for future starts, whose nodes are not chosen yet).
    pub planning_kw: Vec<f64>,
}

impl<'a> JobView<'a> {
    pub fn new(cy: &mut Cycle<'a>, index: usize) -> Self {
        let snap = cy.snap;
        let job = &snap.jobs[index];
        let site_count = cy.sites.len();
        let allowed: Vec<Option<Vec<u32>>> = match &job.allowed_nodes {
            None => vec![None; site_count],
            Some(list) => {
                let mut per_site = vec![Vec::new(); site_count];
                for &n in list {
                    if let Some(s) = cy.pool.site_of_node(n) {
                        per_site[s].push(n);
                    }
                }
                per_site
                    .into_iter()
                    .map(|mut nodes| {
                        nodes.sort_unstable();
                        nodes.dedup();
                        Some(nodes)
                    })
                    .collect()
            }
        };
        let site_allowed = |s: usize| {
            job.allowed_sites.is_empty()
                || job.allowed_sites.iter().any(|a| *a == snap.sites[s].name)
        };
        let feasible: Vec<usize> = (0..site_count)
            .filter(|&s| {
                site_allowed(s)
                    && cy
                        .pool
                        .static_capacity(s, job.gpus_per_replica, allowed[s].as_deref())
                        >= u64::from(job.replicas)
            })
            .collect();
        // Name order makes every "first of equals" below independent of input order.
        let mut feasible = feasible;
        feasible.sort_by(|&a, &b| snap.sites[a].name.cmp(&snap.sites[b].name));
        let mut planning_kw = vec![0.0; site_count];
        for &s in &feasible {
            let watts = match &allowed[s] {
                Some(nodes) => nodes
                    .iter()
                    .map(|&n| cy.node_watts[n as usize])
                    .fold(0.0, f64::max),
                None => cy.sites[s].max_model_watts,
            };
            planning_kw[s] = replicas_kw(job, job.replicas, watts, site_pue(&snap.sites[s]));
        }
        let duration_s = job.planned_duration_s(cy.config);
        Self {
            job,
            index,
            duration_s,
            end_now_s: cy.now_s + duration_s,
            allowed,
            feasible,
            planning_kw,
        }
    }

    pub fn request(&self, site: usize, end_s: i64) -> GangRequest<'_> {
        GangRequest {
            replicas: self.job.replicas,
            gpus_per_replica: self.job.gpus_per_replica,
            end_s,
            allowed: self.allowed[site].as_deref(),
        }
    }

    /// `4×8 GPUs`
    pub fn shape(&self) -> String {
        format!("{}×{} GPUs", self.job.replicas, self.job.gpus_per_replica)
    }
}
