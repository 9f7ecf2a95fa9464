//! One picture of the cluster: which site powers each node, which nodes are ready, the
//! GPUs pods hold on each node, and the nodes two sites both select.
//!
//! # Expected flow
//! The node, pod and EnergySite watches bump a generation on every change
//! ([`SharedTopology::invalidate`]); the first reader after a change builds a
//! [`Topology`] from the caches ([`Topology::build`], pure), and every reader after it
//! gets that same picture until the next change. The scheduling cycle, the EnergySite
//! controller, the ingest billing and the web view all read it, so they agree on which
//! site a node counts for and never compute the assignment again.
//!
//! # Guarantees
//! - A picture handed out by [`SharedTopology::current`] is at least as new as every
//!   change seen before the call.
//! - Nodes and sites are in name order: a node matched by two sites counts for the first
//!   by name, and the [`Overlap`]s come in node name order.
//!
//! # Caveats
//! [`SharedTopology::recent`] may hand out a picture a few seconds old, for a caller that
//! reads it on every request and can afford that (the ingest billing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::Store;
use verdant_crds::{EnergySite, TrainingJob};

use crate::labels::{GPU_PRODUCT_LABEL, JOB_NAME_LABEL};
use crate::watches::CachedPod;
use crate::workload::pod_gpus;

/// A node matched by the nodeSelectors of two sites: a configuration error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// The site the node counts for (the first by name).
    pub site: String,
    /// The other site that selects it too.
    pub other_site: String,
    /// The node.
    pub node: String,
}

/// The cluster's nodes, pods and sites, and what the operator derives from them.
#[derive(Debug, Default)]
pub struct Topology {
    /// All nodes, in name order.
    pub nodes: Vec<Arc<Node>>,
    /// All pods.
    pub pods: Vec<Arc<CachedPod>>,
    /// All EnergySites, in name order.
    pub sites: Vec<Arc<EnergySite>>,
    node_site: HashMap<String, String>,
    site_nodes: HashMap<String, Vec<String>>,
    overlaps: Vec<Overlap>,
    ready: HashSet<String>,
    running_gpus: HashMap<String, u32>,
    held_gpus: HashMap<String, u32>,
    gpu_model: HashMap<String, String>,
}

impl Topology {
    /// The picture of these objects. Pure.
    pub fn build(
        mut nodes: Vec<Arc<Node>>,
        mut sites: Vec<Arc<EnergySite>>,
        pods: Vec<Arc<CachedPod>>,
    ) -> Self {
        // By the names in place: a key of `name_any()` allocates twice per comparison.
        nodes.sort_unstable_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        sites.sort_unstable_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let (node_site, overlaps) = assign_nodes_to_sites(&nodes, &sites);
        let mut site_nodes: HashMap<String, Vec<String>> = HashMap::new();
        for node in &nodes {
            let name = node.name_any();
            if let Some(site) = node_site.get(&name) {
                site_nodes.entry(site.clone()).or_default().push(name);
            }
        }
        let mut running_gpus: HashMap<String, u32> = HashMap::new();
        let mut held_gpus: HashMap<String, u32> = HashMap::new();
        for pod in &pods {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) else {
                continue;
            };
            let gpus = pod_gpus(pod);
            if pod_phase(pod) == Some("Running") {
                add_gpus(&mut running_gpus, node, gpus);
            }
            if !pod_finished(pod) {
                add_gpus(&mut held_gpus, node, gpus);
            }
        }
        Self {
            ready: nodes
                .iter()
                .filter(|n| node_ready(n))
                .map(|n| n.name_any())
                .collect(),
            gpu_model: nodes
                .iter()
                .filter_map(|n| {
                    let model = n.labels().get(GPU_PRODUCT_LABEL)?;
                    Some((n.name_any(), model.clone()))
                })
                .collect(),
            node_site,
            site_nodes,
            overlaps,
            running_gpus,
            held_gpus,
            nodes,
            pods,
            sites,
        }
    }

    /// The site that powers `node`, if any.
    pub fn site_of(&self, node: &str) -> Option<&str> {
        self.node_site.get(node).map(String::as_str)
    }

    /// The site of each node, by node name.
    pub fn node_site(&self) -> &HashMap<String, String> {
        &self.node_site
    }

    /// The nodes `site` powers, in name order.
    pub fn nodes_of(&self, site: &str) -> &[String] {
        self.site_nodes
            .get(site)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The site named `name`.
    pub fn site(&self, name: &str) -> Option<&Arc<EnergySite>> {
        self.sites.iter().find(|s| s.name_any() == name)
    }

    /// Nodes that two sites select, in node name order.
    pub fn overlaps(&self) -> &[Overlap] {
        &self.overlaps
    }

    /// Whether `node`'s `Ready` condition is `True`.
    pub fn is_ready(&self, node: &str) -> bool {
        self.ready.contains(node)
    }

    /// GPUs of the pods in phase `Running` on each node (what the site load counts when
    /// no agent measured the node).
    pub fn running_gpus(&self) -> &HashMap<String, u32> {
        &self.running_gpus
    }

    /// GPUs held by the bound, unfinished pods on `node` (Pending ones included: their
    /// GPUs are allocated).
    pub fn held_gpus(&self, node: &str) -> u32 {
        self.held_gpus.get(node).copied().unwrap_or(0)
    }

    /// `nvidia.com/gpu.product` of `node`.
    pub fn gpu_model(&self, node: &str) -> Option<&str> {
        self.gpu_model.get(node).map(String::as_str)
    }
}

/// The [`Topology`] of the caches, rebuilt once per change and shared by every reader.
pub struct SharedTopology {
    nodes: Store<Node>,
    pods: Store<CachedPod>,
    sites: Store<EnergySite>,
    generation: AtomicU64,
    built: Mutex<Option<Built>>,
}

struct Built {
    generation: u64,
    at: Instant,
    topology: Arc<Topology>,
}

impl SharedTopology {
    /// The picture of these caches.
    pub fn new(nodes: Store<Node>, pods: Store<CachedPod>, sites: Store<EnergySite>) -> Self {
        Self {
            nodes,
            pods,
            sites,
            generation: AtomicU64::new(0),
            built: Mutex::new(None),
        }
    }

    /// A node, pod or site changed: the next reader builds a new picture.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many changes of nodes, pods or sites the caches have taken in so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The picture as of now.
    pub fn current(&self) -> Arc<Topology> {
        self.get(|_| false)
    }

    /// The picture, possibly unchanged for up to `max_age` after a change.
    pub fn recent(&self, max_age: Duration) -> Arc<Topology> {
        self.get(|built| built.at.elapsed() < max_age)
    }

    fn get(&self, good_enough: impl Fn(&Built) -> bool) -> Arc<Topology> {
        // Read before the caches: a change after this point bumps it again.
        let generation = self.generation.load(Ordering::Acquire);
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = built.as_ref()
            && (b.generation == generation || good_enough(b))
        {
            return b.topology.clone();
        }
        let topology = Arc::new(Topology::build(
            self.nodes.state(),
            self.sites.state(),
            self.pods.state(),
        ));
        *built = Some(Built {
            generation,
            at: Instant::now(),
            topology: topology.clone(),
        });
        topology
    }
}

/// Which site powers each node. A node matched by two sites goes to the first by name,
/// and the pair is reported as an [`Overlap`].
pub fn assign_nodes_to_sites(
    nodes: &[Arc<Node>],
    sites: &[Arc<EnergySite>],
) -> (HashMap<String, String>, Vec<Overlap>) {
    let mut sorted: Vec<&Arc<EnergySite>> = sites.iter().collect();
    sorted.sort_by_key(|s| s.name_any());
    let selectors: Vec<(String, Option<Selector>)> = sorted
        .iter()
        .map(|s| {
            (
                s.name_any(),
                Selector::try_from(s.spec.node_selector.clone()).ok(),
            )
        })
        .collect();
    let mut assignment = HashMap::new();
    let mut overlaps = Vec::new();
    for node in nodes {
        let labels = node.labels();
        let mut matching = selectors
            .iter()
            .filter(|(_, selector)| selector.as_ref().is_some_and(|s| s.matches(labels)))
            .map(|(name, _)| name.clone());
        if let Some(first) = matching.next() {
            for other_site in matching {
                overlaps.push(Overlap {
                    site: first.clone(),
                    other_site,
                    node: node.name_any(),
                });
            }
            assignment.insert(node.name_any(), first);
        }
    }
    (assignment, overlaps)
}

/// The engine id of a job: `namespace/name`.
pub fn job_id(job: &TrainingJob) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

/// Adds `gpus` to `node`'s count, copying the name only for a node not counted yet.
fn add_gpus(counts: &mut HashMap<String, u32>, node: &str, gpus: u32) {
    match counts.get_mut(node) {
        Some(count) => *count += gpus,
        None => {
            counts.insert(node.to_owned(), gpus);
        }
    }
}

/// Pods of one job, by replica index, from a list of pods.
pub fn pods_of_job<'a>(
    job: &TrainingJob,
    pods: &'a [Arc<CachedPod>],
) -> BTreeMap<String, &'a Arc<CachedPod>> {
    let namespace = job.namespace();
    let name = job.name_any();
    pods.iter()
        .filter(|p| p.namespace() == namespace && p.labels().get(JOB_NAME_LABEL) == Some(&name))
        .map(|p| (p.name_any(), p))
        .collect()
}

/// Whether the node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Whether a pod has finished (its resources are free again).
pub fn pod_finished(pod: &CachedPod) -> bool {
    matches!(pod_phase(pod), Some("Succeeded" | "Failed"))
}

fn pod_phase(pod: &CachedPod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: &[(&str, &str)], ready: bool) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {
                    "name": name,
                    "labels": labels.iter().copied().collect::<BTreeMap<_, _>>(),
                },
                "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap(),
        )
    }

    fn site(name: &str, zone: &str) -> Arc<EnergySite> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "verdant.dev/v1alpha1",
                "kind": "EnergySite",
                "metadata": {"name": name},
                "spec": {
                    "nodeSelector": {"matchLabels": {"zone": zone}},
                    "location": {"latitude": 36.1, "longitude": -79.9},
                },
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, node: &str, phase: &str, gpus: u32) -> Arc<CachedPod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"nodeName": node, "containers": [{
                    "name": "c",
                    "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}},
                }]},
                "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn one_picture_of_sites_nodes_and_gpus() {
        let topology = Topology::build(
            vec![
                node("n2", &[("zone", "b"), (GPU_PRODUCT_LABEL, "H100")], true),
                node("n1", &[("zone", "a")], false),
                node("n3", &[("zone", "c")], true),
            ],
            vec![site("wind", "b"), site("solar", "a"), site("also-b", "b")],
            vec![
                pod("p1", "n2", "Running", 2),
                pod("p2", "n2", "Pending", 1),
                pod("p3", "n2", "Succeeded", 4),
            ],
        );
        assert_eq!(topology.site_of("n1"), Some("solar"));
        assert_eq!(topology.site_of("n2"), Some("also-b"), "first by name");
        assert_eq!(topology.site_of("n3"), None);
        assert_eq!(topology.nodes_of("also-b"), ["n2".to_owned()]);
        assert!(topology.nodes_of("wind").is_empty());
        assert_eq!(
            topology.overlaps(),
            [Overlap {
                site: "also-b".into(),
                other_site: "wind".into(),
                node: "n2".into(),
            }]
        );
        assert!(topology.is_ready("n2") && !topology.is_ready("n1"));
        assert_eq!(topology.running_gpus().get("n2"), Some(&2));
        assert_eq!(
            topology.held_gpus("n2"),
            3,
            "running and pending, not finished"
        );
        assert_eq!(topology.gpu_model("n2"), Some("H100"));
        assert_eq!(topology.gpu_model("n1"), None);
        let names: Vec<String> = topology.nodes.iter().map(|n| n.name_any()).collect();
        assert_eq!(names, ["n1", "n2", "n3"]);
    }
}
