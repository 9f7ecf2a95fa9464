//! Which containers hold the simulated GPUs: the claims the pods make, and their
//! assignment to GPU indices, kept for a container's lifetime as the device plugin would.

use std::collections::{BTreeSet, HashMap};

use verdant_crds::wire::PodRef;

/// The annotation that sets a pod's simulated GPU utilization, percent.
pub const UTILIZATION_ANNOTATION: &str = "verdant.dev/simulated-gpu-utilization";

/// A container's claim on GPUs, as the simulation sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuDemand {
    /// Stable identity of the container: pod UID and container name.
    pub key: String,
    /// Who it is.
    pub pod: PodRef,
    /// GPUs it holds.
    pub gpus: u32,
    /// Whether it runs (a pending or terminating container holds GPUs but idles them).
    pub running: bool,
    /// Its utilization, percent, when the pod says so.
    pub util_percent: Option<f64>,
}

/// Where the simulation learns which containers hold GPUs.
pub trait DemandSource: Send {
    /// The containers holding GPUs on this node now.
    fn demands(&self) -> Vec<GpuDemand>;
}

/// No pods: every GPU runs at `free_util_percent`.
pub struct NoPods;

impl DemandSource for NoPods {
    fn demands(&self) -> Vec<GpuDemand> {
        Vec::new()
    }
}

impl DemandSource for Vec<GpuDemand> {
    fn demands(&self) -> Vec<GpuDemand> {
        self.clone()
    }
}

impl<F: Fn() -> Vec<GpuDemand> + Send> DemandSource for F {
    fn demands(&self) -> Vec<GpuDemand> {
        self()
    }
}

/// Container key → the GPU indices it holds.
#[derive(Debug, Default)]
pub struct Assignments(HashMap<String, Vec<u32>>);

impl Assignments {
    /// Keeps existing assignments, frees those of containers that left, and gives new
    /// containers the lowest free of the node's `gpus` indices (a container that does not
    /// fit gets none, as the kubelet would refuse it).
    pub fn update(&mut self, demands: &[GpuDemand], gpus: u32) {
        let present: BTreeSet<&str> = demands.iter().map(|d| d.key.as_str()).collect();
        self.0.retain(|key, _| present.contains(key.as_str()));
        let mut used: BTreeSet<u32> = self.0.values().flatten().copied().collect();
        for demand in demands {
            if self.0.contains_key(&demand.key) || demand.gpus == 0 {
                continue;
            }
            let free: Vec<u32> = (0..gpus)
                .filter(|i| !used.contains(i))
                .take(demand.gpus as usize)
                .collect();
            if free.len() < demand.gpus as usize {
                tracing::warn!(
                    pod = %format!("{}/{}", demand.pod.namespace, demand.pod.name),
                    container = %demand.pod.container,
                    wanted = demand.gpus,
                    free = free.len(),
                    "simulated node has too few free GPUs for this container; it gets none"
                );
                continue;
            }
            used.extend(&free);
            self.0.insert(demand.key.clone(), free);
        }
    }

    /// GPU index → the demand holding it.
    pub fn holders<'a>(&self, demands: &'a [GpuDemand]) -> HashMap<u32, &'a GpuDemand> {
        let mut by_gpu = HashMap::new();
        for demand in demands {
            if let Some(indices) = self.0.get(&demand.key) {
                for i in indices {
                    by_gpu.insert(*i, demand);
                }
            }
        }
        by_gpu
    }
}
