//! The simulated cluster's shape and power, and the policies the simulator compares.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::sites::SimSite;

/// Nodes, GPUs and their power draw; the same at every site.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClusterShape {
    pub nodes_per_site: u32,
    pub gpus_per_node: u32,
    /// Draw of a busy GPU at full power, W. Also the engine's `default_gpu_watts`.
    pub gpu_max_watts: f64,
    /// Draw of an idle GPU, W.
    pub gpu_idle_watts: f64,
    /// Base power of a node besides its GPUs (CPUs, fans, NICs), W.
    pub node_base_watts: f64,
}

impl Default for ClusterShape {
    fn default() -> Self {
        Self {
            nodes_per_site: 16,
            gpus_per_node: 8,
            gpu_max_watts: 700.0,
            gpu_idle_watts: 60.0,
            node_base_watts: 400.0,
        }
    }
}

impl ClusterShape {
    /// GPUs at one site.
    pub fn site_gpus(&self) -> u32 {
        self.nodes_per_site * self.gpus_per_node
    }

    /// Base power of a site's nodes besides their GPUs, W.
    pub fn site_base_w(&self) -> f64 {
        f64::from(self.nodes_per_site) * self.node_base_watts
    }

    /// IT power of a site with `busy_gpus` (fractional for averages) drawing `busy_gpu_w`
    /// in total, W: busy GPUs + idle GPUs + node base.
    pub fn site_it_w(&self, busy_gpus: f64, busy_gpu_w: f64) -> f64 {
        let idle = (f64::from(self.site_gpus()) - busy_gpus).max(0.0);
        busy_gpu_w + idle * self.gpu_idle_watts + self.site_base_w()
    }

    /// Facility power of a site, kW.
    pub fn site_facility_kw(&self, site: &SimSite, busy_gpus: f64, busy_gpu_w: f64) -> f64 {
        self.site_it_w(busy_gpus, busy_gpu_w) * site.pue / 1000.0
    }
}

/// A scheduling policy the simulator can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PolicyKind {
    /// The placement engine as the operator runs it, with each job's own energy policy.
    Verdant,
    /// Carbon-agnostic first-come-first-served gang scheduling (the engine with every job
    /// Immediate and no renewable forecast: FCFS with EASY backfilling, least-loaded site).
    Fifo,
    /// Defer while the renewable share a job would get now is below a threshold, up to its
    /// latest start (Wiesner et al., "Let's Wait Awhile", 2021).
    ThresholdWait,
    /// The offline optimum of a linear relaxation with perfect knowledge of the future.
    Oracle,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Verdant,
        PolicyKind::Fifo,
        PolicyKind::ThresholdWait,
        PolicyKind::Oracle,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Verdant => "verdant",
            PolicyKind::Fifo => "fifo",
            PolicyKind::ThresholdWait => "threshold-wait",
            PolicyKind::Oracle => "oracle",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PolicyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyKind::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| {
                format!("unknown policy `{s}`; expected verdant, fifo, threshold-wait or oracle")
            })
    }
}
