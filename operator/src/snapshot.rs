//! Turns the cluster as the caches see it into the placement engine's snapshot.
//!
//! The function is pure over its inputs (objects and the time), so it is unit-tested
//! without a cluster. Everything the engine needs is derived from cluster state: a job's
//! placement is durable in `status.site`/`status.nodes` from the moment Verdant decides
//! it, and only the short gap between a decision and that status write is covered by the
//! in-memory `assumed` placements.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PodSpec};
use kube::ResourceExt;
use verdant_core::placement::{self as engine, JobState, Policy};
use verdant_crds::{GreenPolicy, JobPhase, TrainingJob, TrainingJobStatus};

use crate::constraints::{node_cordoned, node_fits};
use crate::labels::{GPU_PRODUCT_LABEL, GPU_RESOURCE};
use crate::supply::site_supply;
use crate::topology::{Topology, job_id};
use crate::workload::{pod_gpus, pod_name};

/// A placement decided but not yet visible in the job's cached status.
#[derive(Clone, Debug, PartialEq)]
pub struct Assumed {
    /// The site.
    pub site: String,
    /// The node of each replica.
    pub nodes: Vec<String>,
    /// When it was decided.
    pub at_s: i64,
    /// The decision's reason (e.g. `PlacedGreen`).
    pub reason: engine::Reason,
    /// The decision's message, with its numbers.
    pub message: String,
}

/// The engine snapshot plus what is needed to map its answers back to objects.
pub struct ClusterSnapshot {
    /// The engine's input.
    pub snapshot: engine::Snapshot,
    /// Node names by engine index.
    pub node_names: Vec<String>,
    /// Jobs placed (in their status) on a node the cache no longer has: the engine leaves
    /// them out, and their reconcile restarts or fails the gang.
    pub placed_on_lost_nodes: Vec<String>,
}

/// Inputs of [`build`].
pub struct Inputs<'a> {
    /// All TrainingJobs.
    pub jobs: &'a [Arc<TrainingJob>],
    /// The nodes, pods and sites, and which site powers each node.
    pub topology: &'a Topology,
    /// Placements decided and not yet in the cached status.
    pub assumed: &'a HashMap<String, Assumed>,
    /// Since when each site's headroom has been negative.
    pub headroom_negative_since: &'a HashMap<String, i64>,
    /// Base power of a node besides its GPUs, W: part of every site's load, as in the
    /// EnergySite controller's `loadKw`, so both see the same headroom.
    pub node_base_watts: f64,
    /// Now, in Unix seconds.
    pub now_s: i64,
}

/// Builds the snapshot.
pub fn build(inputs: &Inputs<'_>) -> ClusterSnapshot {
    let now_s = inputs.now_s;
    let topology = inputs.topology;

    let mut nodes: Vec<engine::Node> = Vec::with_capacity(topology.nodes.len());
    let mut node_names = Vec::with_capacity(topology.nodes.len());
    let mut node_index: HashMap<String, u32> = HashMap::with_capacity(topology.nodes.len());
    for node in &topology.nodes {
        let name = node.name_any();
        let labels = node.labels();
        let allocatable = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get(GPU_RESOURCE))
            .and_then(|q| q.0.parse::<u32>().ok())
            .unwrap_or(0);
        node_index.insert(name.clone(), nodes.len() as u32);
        nodes.push(engine::Node {
            name: name.clone(),
            site: topology.site_of(&name).map(str::to_owned),
            gpu_model: labels
                .get(GPU_PRODUCT_LABEL)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned()),
            gpus_allocatable: allocatable,
            gpus_used: 0,
            schedulable: !node_cordoned(node) && topology.is_ready(&name),
        });
        node_names.push(name);
    }

    // GPUs held by bound, unfinished pods: ours and everybody else's. Keyed by borrowed
    // names: this runs over every pod of the cluster each cycle.
    let mut bound: HashMap<(&str, &str), &str> = HashMap::with_capacity(topology.pods.len());
    for pod in &topology.pods {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if crate::topology::pod_finished(pod) {
            continue;
        }
        if let Some(&i) = node_index.get(node_name) {
            let node = &mut nodes[i as usize];
            node.gpus_used = node.gpus_used.saturating_add(pod_gpus(pod));
        }
        let meta = &pod.metadata;
        bound.insert(
            (
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            ),
            node_name,
        );
    }

    let mut eligibility_cache: HashMap<String, Option<Vec<u32>>> = HashMap::new();
    let no_spec = PodSpec::default();
    let mut jobs = Vec::with_capacity(inputs.jobs.len());
    let mut placed_on_lost_nodes = Vec::new();
    for job in inputs.jobs {
        let id = job_id(job);
        let Some(state) = engine_state(job, inputs.assumed.get(&id), &node_index, now_s) else {
            if placed_on_lost_node(job, &node_index) {
                placed_on_lost_nodes.push(id);
            }
            continue;
        };
        // Replicas placed (in status or assumed) whose pods are not bound yet still hold
        // their GPUs, or two cycles could hand the same GPUs out twice.
        if let JobState::Running { nodes: placed, .. } = &state {
            let (namespace, name) = (
                job.metadata.namespace.as_deref().unwrap_or_default(),
                job.metadata.name.as_deref().unwrap_or_default(),
            );
            for (index, &node) in placed.iter().enumerate() {
                let pod = pod_name(name, index as u32);
                let node_name = node_names[node as usize].as_str();
                if bound.get(&(namespace, pod.as_str())) != Some(&node_name) {
                    let n = &mut nodes[node as usize];
                    n.gpus_used = n
                        .gpus_used
                        .saturating_add(job.spec.gpus_per_replica.max(0) as u32);
                }
            }
        }
        let template_spec = job.spec.template.spec.as_ref().unwrap_or(&no_spec);
        let signature = constraint_signature(template_spec);
        let allowed_nodes = eligibility_cache
            .entry(signature)
            .or_insert_with(|| allowed_nodes(template_spec, &topology.nodes))
            .clone();
        jobs.push(engine_job(job, id, state, allowed_nodes, now_s));
    }

    let base_w = if inputs.node_base_watts.is_finite() {
        inputs.node_base_watts.max(0.0)
    } else {
        0.0
    };
    let sites = topology
        .sites
        .iter()
        .map(|site| {
            let name = site.name_any();
            let site_nodes = topology.nodes_of(&name).len() as u32;
            engine::Site {
                supply: site_supply(site, now_s),
                pue: site.spec.pue,
                grid_carbon_g_per_kwh: site.spec.grid.carbon_intensity_g_per_kwh,
                base_load_kw: f64::from(site_nodes) * base_w * site.spec.pue.max(1.0) / 1000.0,
                headroom_negative_since_s: inputs.headroom_negative_since.get(&name).copied(),
                storage: crate::site_controller::storage::engine_storage(site),
                name,
            }
        })
        .collect();

    ClusterSnapshot {
        snapshot: engine::Snapshot {
            now_s,
            sites,
            nodes,
            jobs,
        },
        node_names,
        placed_on_lost_nodes,
    }
}

/// Starting or running, on a node that is not in the cache any more.
fn placed_on_lost_node(job: &TrainingJob, node_index: &HashMap<String, u32>) -> bool {
    job.status.as_ref().is_some_and(|status| {
        matches!(status.phase, JobPhase::Starting | JobPhase::Running)
            && status.nodes.iter().any(|n| !node_index.contains_key(n))
    })
}

/// Jobs with the same signature may run on the same nodes. Most jobs constrain nothing:
/// they share the empty signature without a serialization each cycle.
fn constraint_signature(spec: &PodSpec) -> String {
    let node_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref());
    if spec.node_selector.as_ref().is_none_or(|s| s.is_empty())
        && node_affinity.is_none()
        && spec.tolerations.as_ref().is_none_or(|t| t.is_empty())
    {
        return String::new();
    }
    serde_json::json!([
        spec.node_selector,
        spec.affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref()),
        spec.tolerations
    ])
    .to_string()
}

fn allowed_nodes(spec: &PodSpec, nodes: &[Arc<Node>]) -> Option<Vec<u32>> {
    let fitting: Vec<u32> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| node_fits(spec, n))
        .map(|(i, _)| i as u32)
        .collect();
    (fitting.len() != nodes.len()).then_some(fitting)
}

/// The engine's view of a job's state, or None when the engine has nothing to decide
/// (finished, suspended by the user, waiting for Kueue's admission, run by another
/// controller (`spec.managedBy`), or being deleted).
fn engine_state(
    job: &TrainingJob,
    assumed: Option<&Assumed>,
    node_index: &HashMap<String, u32>,
    now_s: i64,
) -> Option<JobState> {
    if job.metadata.deletion_timestamp.is_some()
        || job.spec.run_policy.suspend
        || !job.spec.managed_by_verdant()
        || crate::kueue::waiting_for_admission(job).is_some()
    {
        return None;
    }
    let default = TrainingJobStatus::default();
    let status = job.status.as_ref().unwrap_or(&default);
    let started_s = status
        .start_time
        .as_ref()
        .map_or(now_s, |t| t.0.as_second());
    let running = |site: &str, nodes: &[String]| -> Option<JobState> {
        let indices: Option<Vec<u32>> = nodes.iter().map(|n| node_index.get(n).copied()).collect();
        // A placement on a node that no longer exists is torn down by the job's reconcile;
        // until then the engine must neither count it nor place the job again.
        indices.map(|nodes| JobState::Running {
            site: site.to_owned(),
            nodes,
            started_s,
        })
    };
    match status.phase {
        JobPhase::Succeeded | JobPhase::Failed => None,
        JobPhase::Starting | JobPhase::Running => match (&status.site, status.nodes.is_empty()) {
            // An elastic job's resize, decided and not yet in its status.
            (Some(site), false) if assumed.is_some_and(|a| &a.site == site) => {
                assumed.and_then(|a| running(&a.site, &a.nodes))
            }
            (Some(site), false) => running(site, &status.nodes),
            _ => None,
        },
        JobPhase::Pending | JobPhase::Deferred | JobPhase::Suspended => match assumed {
            Some(a) => running(&a.site, &a.nodes),
            None if status.phase == JobPhase::Suspended => Some(JobState::Suspended),
            None => Some(JobState::Pending),
        },
    }
}

fn engine_job(
    job: &TrainingJob,
    id: String,
    state: JobState,
    allowed_nodes: Option<Vec<u32>>,
    now_s: i64,
) -> engine::Job {
    let energy = &job.spec.energy;
    let created_s = job
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now_s, |t| t.0.as_second());
    let estimated_duration_s = energy
        .estimated_duration
        .map(|d| std::time::Duration::from(d).as_secs() as i64);
    let latest_start_s = match (&energy.deadline, energy.max_delay, estimated_duration_s) {
        (Some(deadline), _, Some(duration)) => Some(deadline.0.as_second() - duration),
        (None, Some(delay), _) => {
            Some(created_s + std::time::Duration::from(delay).as_secs() as i64)
        }
        _ => None,
    };
    // A running job has one replica per node (an elastic one may have been resized).
    let replicas = match &state {
        JobState::Running { nodes, .. } => nodes.len() as u32,
        _ => job.spec.replicas.max(0) as u32,
    };
    let last_resize_s = job
        .status
        .as_ref()
        .and_then(|s| s.last_resize_time.as_ref())
        .map(|t| t.0.as_second());
    engine::Job {
        id,
        replicas,
        gpus_per_replica: job.spec.gpus_per_replica.max(0) as u32,
        state,
        policy: match energy.policy {
            GreenPolicy::Immediate => Policy::Immediate,
            GreenPolicy::GreenPreferred => Policy::GreenPreferred,
            GreenPolicy::GreenOnly => Policy::GreenOnly,
        },
        min_renewable_fraction: energy.min_renewable_fraction,
        interruptible: energy.interruptible,
        power_cap_min_percent: energy
            .power_capping
            .as_ref()
            .filter(|p| p.enabled)
            .map(|p| p.min_percent.clamp(1, 100) as u32),
        power_cap_percent: job
            .status
            .as_ref()
            .and_then(|s| s.power_cap_percent)
            .map(|p| p.clamp(1, 100) as u32),
        priority: job.spec.priority,
        created_s,
        latest_start_s,
        estimated_duration_s,
        measured_gpu_watts: None,
        allowed_sites: job.spec.sites.clone(),
        allowed_nodes,
        elastic: job.spec.elastic.as_ref().map(|e| engine::Elastic {
            min_replicas: e.min_replicas.max(1) as u32,
            max_replicas: e.max_replicas.max(1) as u32,
            last_resize_s,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"zone": "a"}},
                "status": {"allocatable": {GPU_RESOURCE: "8"},
                           "conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .unwrap(),
        )
    }

    fn job(name: &str, status: serde_json::Value, selector: serde_json::Value) -> Arc<TrainingJob> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"replicas": 1, "gpusPerReplica": 8, "template": {"spec": {
                    "nodeSelector": selector,
                    "containers": [{"name": "t", "image": "x"}]}}},
                "status": status,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn jobs_on_lost_nodes_are_left_out_and_named_and_constraints_select_nodes() {
        let topology = Topology::build(vec![node("n1"), node("n2")], vec![], vec![]);
        let running =
            |nodes: &[&str]| serde_json::json!({"phase": "Running", "site": "s", "nodes": nodes});
        let jobs = vec![
            job("kept", running(&["n1"]), serde_json::json!(null)),
            job("lost", running(&["gone"]), serde_json::json!(null)),
            job("anywhere", serde_json::json!(null), serde_json::json!({})),
            job(
                "zone-b",
                serde_json::json!(null),
                serde_json::json!({"zone": "b"}),
            ),
            job(
                "zone-a",
                serde_json::json!(null),
                serde_json::json!({"zone": "a"}),
            ),
        ];
        let built = build(&Inputs {
            jobs: &jobs,
            topology: &topology,
            assumed: &HashMap::new(),
            headroom_negative_since: &HashMap::new(),
            node_base_watts: 0.0,
            now_s: 1_000,
        });
        assert_eq!(built.placed_on_lost_nodes, ["ns/lost"]);
        let allowed: Vec<(&str, Option<Vec<u32>>)> = (built.snapshot.jobs.iter())
            .map(|j| (j.id.as_str(), j.allowed_nodes.clone()))
            .collect();
        assert_eq!(
            allowed,
            [
                ("ns/kept", None),
                ("ns/anywhere", None),
                ("ns/zone-b", Some(vec![])),
                ("ns/zone-a", None),
            ]
        );
        assert_eq!(built.snapshot.nodes[0].gpus_used, 8, "kept holds n1");
    }
}
