//! Simulated time: the placement engine decides every step, jobs run, windows are billed.
//!
//! # One step `[t, t + step)`
//! 1. Jobs submitted by `t` join the queue.
//! 2. The policy builds an engine [`Snapshot`] (sites with a 48-hour hourly forecast,
//!    nodes with the GPUs in use, active jobs) and `verdant_core::placement::run_cycle`
//!    decides. `Place` binds the gang, `Suspend` stops a job (it keeps its progress, as a
//!    checkpointing job would, less `restart_overhead_s` of work since its last checkpoint),
//!    `PowerCap`/`Uncap` set its power, `Resize` grows or shrinks an elastic job (it loses
//!    `resize_overhead_s` of work at its old size, as torchrun restarts its workers).
//! 3. Running jobs progress at their cap's share of full speed (power caps slow a job as
//!    much as they save power, so a job's energy does not depend on its cap), times
//!    their replicas over the replicas they were submitted with (elastic jobs), and finish
//!    inside the step when their work is done; their GPUs are free at the next step.
//! 4. Each site's window is billed with [`crate::outcome::bill_window`].
//!
//! The forecast the engine sees is the replayed weather itself (a perfect forecast, as the
//! operator's Replay provider gives). Site base load (node base power and idle GPUs, × PUE)
//! is passed to the engine as `base_load_kw`.
//!
//! `snapshot.rs` builds what the engine sees; `threshold.rs` is the `threshold-wait`
//! baseline's gate.

mod snapshot;
mod threshold;

use std::collections::BTreeMap;

use verdant_core::energy::{BatteryState, Storage};
use verdant_core::placement::{Action, EngineConfig, Node, Snapshot, run_cycle};

use crate::civil::HOUR_S;
use crate::cluster::{ClusterShape, PolicyKind};
use crate::outcome::{JobUsage, RunOutcome, bill_window};
use crate::sites::SimSite;
use crate::workload::SimJob;

/// Hours of forecast the engine gets, as in the operator.
pub const FORECAST_HOURS: i64 = 48;

/// Settings of a simulated run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SimConfig {
    /// First instant (a whole UTC hour).
    pub start_s: i64,
    /// End of the horizon: nothing runs or is billed after it.
    pub end_s: i64,
    /// Seconds between scheduling cycles; divides an hour.
    pub step_s: i64,
    pub cluster: ClusterShape,
    pub engine: EngineConfig,
    /// `threshold-wait`: the renewable share a job must get to start before its latest start.
    pub threshold: f64,
    /// Work a suspended job redoes when it resumes, seconds.
    pub restart_overhead_s: i64,
    /// Work an elastic job loses at each resize, seconds at its size before the resize.
    pub resize_overhead_s: i64,
}

impl SimConfig {
    /// Hours in the horizon.
    pub fn hours(&self) -> usize {
        ((self.end_s - self.start_s).max(0) as f64 / HOUR_S as f64).ceil() as usize
    }
}

#[derive(Clone, Debug, PartialEq)]
enum RunState {
    Pending,
    Running {
        site: usize,
        nodes: Vec<u32>,
        started_s: i64,
        /// Remaining work when it (re)started, the engine's estimate of this run.
        estimate_s: i64,
    },
    Suspended,
    Done,
}

struct Live {
    state: RunState,
    /// Seconds of work left at full power and the submitted replicas.
    remaining_s: f64,
    cap_percent: Option<u32>,
    /// Replicas it runs with (elastic jobs resize; others run with their own).
    replicas: u32,
    /// When it was last placed or resized.
    last_resize_s: Option<i64>,
}

impl Live {
    /// Share of full speed: the cap's, times replicas over the submitted ones.
    fn rate(&self, job: &SimJob) -> f64 {
        f64::from(self.cap_percent.unwrap_or(100)) / 100.0 * f64::from(self.replicas)
            / f64::from(job.replicas.max(1))
    }
}

/// Runs one of the engine-driven policies (not the oracle) over the workload.
///
/// `progress` is called after every step with the steps done so far.
pub fn simulate(
    policy: PolicyKind,
    sites: &[SimSite],
    jobs: &[SimJob],
    config: &SimConfig,
    mut progress: impl FnMut(u64),
) -> RunOutcome {
    let mut sim = Simulation::new(policy, sites, jobs, config);
    let mut t = config.start_s;
    let mut steps = 0;
    while t < config.end_s {
        let dt = config.step_s.min(config.end_s - t);
        sim.admit(t);
        if !sim.active.is_empty() {
            sim.decide(t);
        }
        sim.advance(t, dt);
        t += dt;
        steps += 1;
        progress(steps);
    }
    sim.finish()
}

struct Simulation<'a> {
    policy: PolicyKind,
    sites: &'a [SimSite],
    jobs: &'a [SimJob],
    config: &'a SimConfig,
    live: Vec<Live>,
    /// Submitted, unfinished jobs, by job index.
    active: Vec<usize>,
    next_arrival: usize,
    nodes: Vec<Node>,
    node_site: Vec<usize>,
    negative_since: Vec<Option<i64>>,
    /// Each site's batteries and their state of charge now.
    storage: Vec<Storage>,
    outcome: RunOutcome,
    suspensions: u64,
    restarts: u64,
    resizes: u64,
}

impl<'a> Simulation<'a> {
    fn new(
        policy: PolicyKind,
        sites: &'a [SimSite],
        jobs: &'a [SimJob],
        config: &'a SimConfig,
    ) -> Self {
        let shape = &config.cluster;
        let mut nodes = Vec::new();
        let mut node_site = Vec::new();
        for (s, site) in sites.iter().enumerate() {
            for n in 0..shape.nodes_per_site {
                nodes.push(Node {
                    name: format!("{}-gpu-{n}", site.name),
                    site: Some(site.name.clone()),
                    gpu_model: "sim-gpu".to_owned(),
                    gpus_allocatable: shape.gpus_per_node,
                    gpus_used: 0,
                    schedulable: true,
                });
                node_site.push(s);
            }
        }
        Self {
            policy,
            sites,
            jobs,
            config,
            live: jobs
                .iter()
                .map(|j| Live {
                    state: RunState::Pending,
                    remaining_s: j.duration_s as f64,
                    cap_percent: None,
                    replicas: j.replicas,
                    last_resize_s: None,
                })
                .collect(),
            active: Vec::new(),
            next_arrival: 0,
            nodes,
            node_site,
            negative_since: vec![None; sites.len()],
            storage: sites.iter().map(initial_storage).collect(),
            outcome: RunOutcome::new(policy, jobs.len(), sites, config.start_s, config.hours()),
            suspensions: 0,
            restarts: 0,
            resizes: 0,
        }
    }

    fn admit(&mut self, now_s: i64) {
        while let Some(job) = self.jobs.get(self.next_arrival) {
            if job.submit_s > now_s {
                break;
            }
            self.active.push(self.next_arrival);
            self.next_arrival += 1;
        }
    }

    /// GPUs a job holds now.
    fn gpus_now(&self, j: usize) -> u32 {
        self.live[j].replicas * self.jobs[j].gpus_per_replica
    }

    fn job_kw(&self, job: usize, site: usize) -> f64 {
        f64::from(self.gpus_now(job)) * self.config.cluster.gpu_max_watts * self.sites[site].pue
            / 1000.0
    }

    /// Busy GPUs and their draw (W) per site now.
    fn site_draw(&self) -> Vec<(f64, f64)> {
        let mut draw = vec![(0.0, 0.0); self.sites.len()];
        for &j in &self.active {
            if let RunState::Running { site, .. } = self.live[j].state {
                let gpus = f64::from(self.gpus_now(j));
                let cap = f64::from(self.live[j].cap_percent.unwrap_or(100)) / 100.0;
                draw[site].0 += gpus;
                draw[site].1 += gpus * self.config.cluster.gpu_max_watts * cap;
            }
        }
        draw
    }

    fn decide(&mut self, now_s: i64) {
        let draw = self.site_draw();
        let sites = self.engine_sites(now_s, &draw);
        let allowed = match self.policy {
            PolicyKind::ThresholdWait => self.threshold_gate(now_s, &draw),
            _ => BTreeMap::new(),
        };
        let mut index = Vec::with_capacity(self.active.len());
        let mut engine_jobs = Vec::with_capacity(self.active.len());
        for &j in &self.active {
            let live = &self.live[j];
            let allowed_sites = match (&live.state, self.policy) {
                (RunState::Pending | RunState::Suspended, PolicyKind::ThresholdWait) => {
                    match allowed.get(&j) {
                        Some(sites) => sites.clone(),
                        None => continue, // deferred: below the threshold
                    }
                }
                _ => Vec::new(),
            };
            index.push(j);
            engine_jobs.push(self.engine_job(j, allowed_sites));
        }
        if engine_jobs.is_empty() {
            self.update_negative_since(now_s);
            return;
        }
        let snapshot = Snapshot {
            now_s,
            sites,
            nodes: self.nodes.clone(),
            jobs: engine_jobs,
        };
        let decisions = run_cycle(&snapshot, &self.config.engine);
        for (decision, &j) in decisions.iter().zip(&index) {
            tracing::trace!(
                policy = %self.policy,
                at = %crate::civil::format_utc(now_s),
                job = %decision.job,
                reason = %decision.reason,
                message = %decision.message,
                "decision"
            );
            self.apply(j, &decision.action, now_s);
        }
        self.update_negative_since(now_s);
    }

    fn apply(&mut self, j: usize, action: &Action, now_s: i64) {
        match action {
            Action::Place { site, nodes, .. } => {
                let Some(s) = self.sites.iter().position(|x| &x.name == site) else {
                    self.outcome.capacity_violations += 1;
                    return;
                };
                let gpr = self.jobs[j].gpus_per_replica;
                for &n in nodes {
                    let node = &mut self.nodes[n as usize];
                    node.gpus_used += gpr;
                    if node.gpus_used > node.gpus_allocatable || self.node_site[n as usize] != s {
                        self.outcome.capacity_violations += 1;
                    }
                }
                let live = &mut self.live[j];
                if matches!(live.state, RunState::Suspended) {
                    self.restarts += 1;
                    self.outcome.jobs[j].restarts += 1;
                }
                live.replicas = nodes.len() as u32;
                live.last_resize_s = Some(now_s);
                live.state = RunState::Running {
                    site: s,
                    nodes: nodes.clone(),
                    started_s: now_s,
                    estimate_s: (live.remaining_s / live.rate(&self.jobs[j])).ceil() as i64,
                };
                let out = &mut self.outcome.jobs[j];
                out.first_start_s.get_or_insert(now_s);
            }
            Action::Suspend => {
                self.release(j);
                self.live[j].state = RunState::Suspended;
                self.live[j].cap_percent = None;
                // The work since the last checkpoint is lost: it is known at once, so the
                // latest start of what remains accounts for it.
                self.live[j].remaining_s += self.config.restart_overhead_s as f64;
                self.suspensions += 1;
                self.outcome.jobs[j].suspensions += 1;
            }
            Action::PowerCap { percent } => {
                self.live[j].cap_percent = Some((*percent).clamp(1, 100))
            }
            Action::Uncap => self.live[j].cap_percent = None,
            Action::Resize { nodes, .. } => self.resize(j, nodes, now_s),
            Action::Defer { .. } | Action::Wait | Action::Keep => {}
        }
    }

    /// An elastic job runs on `nodes` from now: the GPUs of removed replicas are free at
    /// the next step, added ones are taken now.
    fn resize(&mut self, j: usize, nodes: &[u32], now_s: i64) {
        let RunState::Running {
            site,
            nodes: running,
            ..
        } = &self.live[j].state
        else {
            self.outcome.capacity_violations += 1;
            return;
        };
        let (site, running) = (*site, running.clone());
        let gpr = self.jobs[j].gpus_per_replica;
        for &n in running.iter().skip(nodes.len()) {
            let node = &mut self.nodes[n as usize];
            node.gpus_used = node.gpus_used.saturating_sub(gpr);
        }
        for &n in nodes.iter().skip(running.len()) {
            let node = &mut self.nodes[n as usize];
            node.gpus_used += gpr;
            if node.gpus_used > node.gpus_allocatable || self.node_site[n as usize] != site {
                self.outcome.capacity_violations += 1;
            }
        }
        let job = &self.jobs[j];
        let live = &mut self.live[j];
        live.remaining_s += self.config.resize_overhead_s as f64 * live.rate(job);
        live.replicas = nodes.len() as u32;
        live.last_resize_s = Some(now_s);
        live.state = RunState::Running {
            site,
            nodes: nodes.to_vec(),
            started_s: now_s,
            estimate_s: (live.remaining_s / live.rate(job)).ceil() as i64,
        };
        self.resizes += 1;
    }

    fn release(&mut self, j: usize) {
        if let RunState::Running { nodes, .. } = &self.live[j].state {
            let gpr = self.jobs[j].gpus_per_replica;
            for &n in nodes {
                let node = &mut self.nodes[n as usize];
                node.gpus_used = node.gpus_used.saturating_sub(gpr);
            }
        }
    }

    /// The operator's rule: a site's negative-headroom clock starts when supply falls
    /// below the facility load and stops when it is back.
    fn update_negative_since(&mut self, now_s: i64) {
        let draw = self.site_draw();
        for (s, site) in self.sites.iter().enumerate() {
            let load = self
                .config
                .cluster
                .site_facility_kw(site, draw[s].0, draw[s].1);
            let battery_kw = self.storage[s].available_discharge_kw();
            if site.supply_kw_at(now_s) + battery_kw < load {
                self.negative_since[s].get_or_insert(now_s);
            } else {
                self.negative_since[s] = None;
            }
        }
    }

    fn advance(&mut self, t: i64, dt: i64) {
        let shape = self.config.cluster;
        let mut usage: Vec<Vec<JobUsage>> = vec![Vec::new(); self.sites.len()];
        let mut finished = Vec::new();
        for &j in &self.active {
            let live = &mut self.live[j];
            let RunState::Running { site, .. } = live.state else {
                continue;
            };
            let rate = live.rate(&self.jobs[j]);
            let cap = f64::from(live.cap_percent.unwrap_or(100)) / 100.0;
            let run_s = (live.remaining_s / rate).min(dt as f64);
            live.remaining_s -= run_s * rate;
            let gpus = f64::from(live.replicas * self.jobs[j].gpus_per_replica);
            usage[site].push(JobUsage {
                job: j,
                energy_j: gpus * shape.gpu_max_watts * cap * run_s,
                busy_gpu_s: gpus * run_s,
            });
            if live.remaining_s <= 1e-6 {
                finished.push((j, t + run_s.ceil() as i64));
            }
        }
        for (s, site) in self.sites.iter().enumerate() {
            let storage_discharge_w = self.step_storage(s, t, dt, &usage[s]);
            bill_window(
                &shape,
                site,
                s,
                t,
                self.config.start_s,
                dt as f64,
                &usage[s],
                storage_discharge_w,
                &mut self.outcome,
            );
        }
        for (j, at_s) in finished {
            self.release(j);
            self.live[j].state = RunState::Done;
            self.live[j].remaining_s = 0.0;
            self.outcome.jobs[j].finish_s = Some(at_s);
        }
        self.active
            .retain(|&j| !matches!(self.live[j].state, RunState::Done));
    }

    /// Steps site `s`'s batteries over `[t, t + dt)` with its supply and facility load;
    /// returns their mean discharge, W.
    fn step_storage(&mut self, s: usize, t: i64, dt: i64, usage: &[JobUsage]) -> f64 {
        if self.storage[s].is_empty() || dt <= 0 {
            return 0.0;
        }
        let dt_f = dt as f64;
        let busy_gpus = usage.iter().map(|u| u.busy_gpu_s).sum::<f64>() / dt_f;
        let busy_w = usage.iter().map(|u| u.energy_j).sum::<f64>() / dt_f;
        let site = &self.sites[s];
        let load_kw = self
            .config
            .cluster
            .site_facility_kw(site, busy_gpus, busy_w);
        let flow = self.storage[s].step(site.supply_kw_at(t) - load_kw, dt_f);
        flow.discharged_kwh * 3.6e6 / dt_f
    }

    fn finish(mut self) -> RunOutcome {
        tracing::debug!(policy = %self.policy, resizes = self.resizes, "elastic resizes");
        self.outcome.suspensions = Some(self.suspensions);
        self.outcome.restarts = Some(self.restarts);
        self.outcome
    }
}

/// A site's batteries as the run starts: at their floor (the conservative guess the
/// operator makes for a battery it has not seen before).
fn initial_storage(site: &SimSite) -> Storage {
    Storage::new(
        site.storage
            .iter()
            .map(|b| BatteryState {
                battery: b.clone(),
                soc_kwh: b.min_soc_kwh(),
            })
            .collect(),
    )
}
