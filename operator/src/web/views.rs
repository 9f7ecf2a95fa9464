//! The documents of the JSON API (`/api/v1/sites`, `/api/v1/jobs`, `/api/v1/nodes`),
//! built from the operator's caches, plan and telemetry. Pure: every input is passed in,
//! including the time, so the views are unit-tested on inline objects.
//!
//! Field names are camelCase like the Kubernetes API. Quantities carry their unit in the
//! name (`Kw`, `W`, `Kwh`, `Grams`, `Percent`, `Seconds`); a value that is not known is
//! `null`, never a made-up 0.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use serde::Serialize;
use verdant_core::placement::{Action, Decision, EngineConfig};
use verdant_crds::{ForecastProvider, TrainingJob};

use crate::constraints::node_cordoned;
use crate::labels::{GPU_PRODUCT_LABEL, GPU_RESOURCE};
use crate::telemetry::Telemetry;
use crate::topology::{Topology, job_id};

/// `GET /api/v1/sites`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SiteList {
    /// When the document was built (RFC 3339).
    pub generated_at: String,
    /// Every EnergySite, by name.
    pub sites: Vec<SiteView>,
}

/// One EnergySite as the dashboard shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SiteView {
    /// The EnergySite's name.
    pub name: String,
    /// The forecast provider (`OpenMeteo`, `Replay`, `Static`, `Prometheus`), if any.
    pub provider: Option<String>,
    /// Whether the site's `Ready` condition is `True`.
    pub ready: bool,
    /// Solar output now, kW (`null` before the first status).
    pub solar_kw: Option<f64>,
    /// Wind output now, kW.
    pub wind_kw: Option<f64>,
    /// Solar + wind now, kW.
    pub renewable_kw: Option<f64>,
    /// Facility load now (IT load × PUE), kW.
    pub load_kw: Option<f64>,
    /// Renewable output minus load, kW; negative: grid power is drawn.
    pub headroom_kw: Option<f64>,
    /// The share of the load renewables cover now, percent (`null` without load).
    pub renewable_share_percent: Option<f64>,
    /// The site's PUE.
    pub pue: f64,
    /// Carbon intensity of the site's grid power, gCO₂/kWh.
    pub grid_carbon_g_per_kwh: f64,
    /// When the forecast was last refreshed successfully.
    pub last_forecast_time: Option<String>,
    /// Seconds since then.
    pub forecast_age_seconds: Option<i64>,
    /// The 48-point forecast: hourly, or shorter steps when the operator runs with
    /// `--time-scale` (`make demo`).
    pub forecast: Vec<ForecastHour>,
    /// Seconds between forecast points (3600 unless the clock is sped up; `null` with
    /// fewer than two points).
    pub forecast_step_seconds: Option<i64>,
    /// Nodes the site powers.
    pub nodes: usize,
    /// Their allocatable GPUs.
    pub gpus: u32,
    /// GPUs of running pods on them.
    pub gpus_in_use: u32,
    /// The status conditions.
    pub conditions: Vec<ConditionView>,
}

/// One hour of a site's forecast.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ForecastHour {
    /// Start of the hour (RFC 3339).
    pub time: String,
    /// Solar output, kW.
    pub solar_kw: f64,
    /// Wind output, kW.
    pub wind_kw: f64,
}

/// A status condition.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// The condition type (`Ready`, `ForecastDegraded`, ...).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// The reason in words.
    pub message: String,
}

/// `GET /api/v1/jobs`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    /// When the document was built (RFC 3339).
    pub generated_at: String,
    /// TrainingJobs by namespace and name.
    pub jobs: Vec<JobView>,
}

/// One TrainingJob as the dashboard shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pending, Deferred, Starting, Running, Suspended, Succeeded or Failed.
    pub phase: String,
    /// The EnergySite it runs (or ran) at.
    pub site: Option<String>,
    /// The node of each replica.
    pub nodes: Vec<String>,
    /// Replicas (the gang size).
    pub replicas: i32,
    /// GPUs per replica.
    pub gpus_per_replica: i32,
    /// Immediate, GreenPreferred or GreenOnly.
    pub policy: String,
    /// The reason of the last decision applied to the job (`status.reason`).
    pub reason: Option<String>,
    /// That decision in words (`status.message`).
    pub message: Option<String>,
    /// The latest scheduling cycle's decision, when the job is still being scheduled.
    pub decision: Option<DecisionView>,
    /// Creation time (RFC 3339).
    pub created_at: Option<String>,
    /// When a Deferred job is expected to start.
    pub expected_start_time: Option<String>,
    /// When the job first started.
    pub start_time: Option<String>,
    /// When it finished.
    pub completion_time: Option<String>,
    /// The power cap in force, percent of the GPUs' default limit.
    pub power_cap_percent: Option<i32>,
    /// Measured share of the job's energy from renewables, percent (`null` until the
    /// first accounted energy).
    pub renewable_percent: Option<f64>,
    /// The share the last placement or deferral expects, percent.
    pub expected_renewable_percent: Option<f64>,
    /// Energy of the job's GPUs so far, kWh.
    pub energy_kwh: Option<f64>,
    /// CO₂ of its grid energy so far, g.
    pub co2_grams: Option<f64>,
}

/// A decision of the scheduling cycle.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    /// Place, Defer, Wait, Suspend, PowerCap, Uncap or Keep.
    pub action: String,
    /// The reason code (see docs/scheduling.md).
    pub reason: String,
    /// The decision in words, with its numbers.
    pub message: String,
}

/// `GET /api/v1/nodes`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeList {
    /// When the document was built (RFC 3339).
    pub generated_at: String,
    /// GPU nodes and nodes of a site, by site and name.
    pub nodes: Vec<NodeView>,
}

/// One node as the dashboard shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// The EnergySite that powers it.
    pub site: Option<String>,
    /// `nvidia.com/gpu.product`.
    pub gpu_model: Option<String>,
    /// Allocatable GPUs.
    pub gpus: u32,
    /// GPUs of running pods.
    pub gpus_in_use: u32,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// Ready and not cordoned.
    pub schedulable: bool,
    /// GPU power now, W: measured by the node's agent when it reported in the last
    /// minute, else estimated from the running pods' GPUs.
    pub gpu_power_w: f64,
    /// `measured` or `estimated`.
    pub gpu_power_source: &'static str,
}

/// Everything the views read, borrowed from the caches.
pub struct ViewInputs<'a> {
    /// TrainingJobs.
    pub jobs: &'a [Arc<TrainingJob>],
    /// Nodes, pods and sites, and which site powers each node.
    pub topology: &'a Topology,
    /// The last cycle's decisions by `namespace/name`.
    pub decisions: &'a HashMap<String, Decision>,
    /// Measured power.
    pub telemetry: &'a Telemetry,
    /// Per-GPU watts for estimates.
    pub engine: &'a EngineConfig,
    /// Now.
    pub now: jiff::Timestamp,
}

fn rfc3339(time: &Time) -> String {
    time.0.to_string()
}

fn node_gpus(node: &Node) -> u32 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(GPU_RESOURCE))
        .and_then(|q| q.0.parse::<u32>().ok())
        .unwrap_or(0)
}

fn provider_name(provider: ForecastProvider) -> &'static str {
    match provider {
        ForecastProvider::OpenMeteo => "OpenMeteo",
        ForecastProvider::Replay => "Replay",
        ForecastProvider::Static => "Static",
        ForecastProvider::Prometheus => "Prometheus",
    }
}

fn condition_view(c: &Condition) -> ConditionView {
    ConditionView {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

/// The sites document.
pub fn sites(inputs: &ViewInputs<'_>) -> SiteList {
    let topology = inputs.topology;
    let running = topology.running_gpus();
    let mut per_site: HashMap<&str, (usize, u32, u32)> = HashMap::new();
    for node in &topology.nodes {
        let name = node.name_any();
        if let Some(site) = topology.site_of(&name) {
            let entry = per_site.entry(site).or_default();
            entry.0 += 1;
            entry.1 += node_gpus(node);
            entry.2 += running.get(&name).copied().unwrap_or(0);
        }
    }
    let now_s = inputs.now.as_second();
    let mut sites: Vec<SiteView> = topology
        .sites
        .iter()
        .map(|site| {
            let name = site.name_any();
            let status = site.status.clone().unwrap_or_default();
            let renewable = status.renewable_kw.as_ref();
            let (nodes, gpus, gpus_in_use) =
                per_site.get(name.as_str()).copied().unwrap_or_default();
            let share = match (renewable, status.load_kw) {
                (Some(r), Some(load)) if load > 0.0 => {
                    Some(round1((r.total / load).clamp(0.0, 1.0) * 100.0))
                }
                _ => None,
            };
            SiteView {
                provider: site
                    .spec
                    .forecast
                    .as_ref()
                    .map(|f| provider_name(f.provider).to_owned()),
                ready: status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                solar_kw: renewable.map(|r| r.solar),
                wind_kw: renewable.map(|r| r.wind),
                renewable_kw: renewable.map(|r| r.total),
                load_kw: status.load_kw,
                headroom_kw: status.headroom_kw,
                renewable_share_percent: share,
                pue: site.spec.pue,
                grid_carbon_g_per_kwh: site.spec.grid.carbon_intensity_g_per_kwh,
                last_forecast_time: status.last_forecast_time.as_ref().map(rfc3339),
                forecast_age_seconds: status
                    .last_forecast_time
                    .as_ref()
                    .map(|t| (now_s - t.0.as_second()).max(0)),
                forecast: status
                    .forecast
                    .iter()
                    .map(|p| ForecastHour {
                        time: rfc3339(&p.time),
                        solar_kw: p.solar_kw,
                        wind_kw: p.wind_kw,
                    })
                    .collect(),
                forecast_step_seconds: match status.forecast.as_slice() {
                    [first, second, ..] => {
                        Some(second.time.0.as_second() - first.time.0.as_second())
                    }
                    _ => None,
                },
                nodes,
                gpus,
                gpus_in_use,
                conditions: status.conditions.iter().map(condition_view).collect(),
                name,
            }
        })
        .collect();
    sites.sort_by(|a, b| a.name.cmp(&b.name));
    SiteList {
        generated_at: inputs.now.to_string(),
        sites,
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Place { .. } => "Place",
        Action::Defer { .. } => "Defer",
        Action::Wait => "Wait",
        Action::Suspend => "Suspend",
        Action::PowerCap { .. } => "PowerCap",
        Action::Uncap => "Uncap",
        Action::Keep => "Keep",
        Action::Resize { .. } => "Resize",
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The jobs document; `filter` keeps the jobs it accepts.
pub fn jobs(inputs: &ViewInputs<'_>, filter: impl Fn(&JobView) -> bool) -> JobList {
    let mut jobs: Vec<JobView> = inputs
        .jobs
        .iter()
        .map(|job| {
            let status = job.status.clone().unwrap_or_default();
            let decision = inputs.decisions.get(&job_id(job));
            let expected = decision.and_then(|d| match &d.action {
                Action::Place {
                    expected_renewable_fraction,
                    ..
                }
                | Action::Defer {
                    expected_renewable_fraction,
                    ..
                } => Some(round1(expected_renewable_fraction.clamp(0.0, 1.0) * 100.0)),
                _ => None,
            });
            let energy = status.energy.as_ref();
            JobView {
                namespace: job.namespace().unwrap_or_default(),
                name: job.name_any(),
                phase: status.phase.as_str().to_owned(),
                site: status.site.clone(),
                nodes: status.nodes.clone(),
                replicas: job.spec.replicas,
                gpus_per_replica: job.spec.gpus_per_replica,
                policy: serde_json::to_value(job.spec.energy.policy)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                reason: status.reason.clone(),
                message: status.message.clone(),
                decision: decision.map(|d| DecisionView {
                    action: action_name(&d.action).to_owned(),
                    reason: d.reason.as_str().to_owned(),
                    message: d.message.clone(),
                }),
                created_at: job.metadata.creation_timestamp.as_ref().map(rfc3339),
                expected_start_time: status.expected_start_time.as_ref().map(rfc3339),
                start_time: status.start_time.as_ref().map(rfc3339),
                completion_time: status.completion_time.as_ref().map(rfc3339),
                power_cap_percent: status.power_cap_percent,
                renewable_percent: energy
                    .filter(|e| e.gpu_energy_kwh > 0.0)
                    .map(|e| e.renewable_percent),
                expected_renewable_percent: expected,
                energy_kwh: energy.map(|e| e.gpu_energy_kwh),
                co2_grams: energy.map(|e| e.co2_grams),
            }
        })
        .filter(|j| filter(j))
        .collect();
    jobs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    JobList {
        generated_at: inputs.now.to_string(),
        jobs,
    }
}

/// The nodes document: nodes with GPUs or powered by a site; `site` keeps one site's.
pub fn nodes(inputs: &ViewInputs<'_>, site: Option<&str>) -> NodeList {
    let topology = inputs.topology;
    let running = topology.running_gpus();
    let now_s = inputs.now.as_second();
    let mut nodes: Vec<NodeView> = topology
        .nodes
        .iter()
        .filter_map(|node| {
            let name = node.name_any();
            let node_site = topology.site_of(&name).map(str::to_owned);
            let gpus = node_gpus(node);
            if gpus == 0 && node_site.is_none() {
                return None;
            }
            if site.is_some_and(|s| node_site.as_deref() != Some(s)) {
                return None;
            }
            let model = node.labels().get(GPU_PRODUCT_LABEL).cloned();
            let gpus_in_use = running.get(&name).copied().unwrap_or(0);
            let (gpu_power_w, gpu_power_source) =
                match inputs.telemetry.node_gpu_power_w(&name, now_s) {
                    Some(w) => (w, "measured"),
                    None => {
                        let per_gpu = model
                            .as_ref()
                            .and_then(|m| inputs.engine.gpu_watts_by_model.get(m))
                            .copied()
                            .unwrap_or(inputs.engine.default_gpu_watts);
                        (per_gpu * f64::from(gpus_in_use), "estimated")
                    }
                };
            let ready = topology.is_ready(&name);
            Some(NodeView {
                site: node_site,
                gpu_model: model,
                gpus,
                gpus_in_use,
                ready,
                schedulable: ready && !node_cordoned(node),
                gpu_power_w: round1(gpu_power_w),
                gpu_power_source,
                name,
            })
        })
        .collect();
    nodes.sort_by(|a, b| (&a.site, &a.name).cmp(&(&b.site, &b.name)));
    NodeList {
        generated_at: inputs.now.to_string(),
        nodes,
    }
}
