//! What every reconcile and the scheduling cycle share, built once at start-up.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::Store;
use tokio::sync::Notify;
use verdant_core::placement::EngineConfig;
use verdant_crds::{EnergySite, TrainingJob};

use crate::events::Recorder;
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::reconcile::bindings::Bindings;
use crate::telemetry::Telemetry;
use crate::topology::SharedTopology;
use crate::watches::CachedPod;
use crate::watches::job_pods::JobPods;
use crate::watches::{Synced, wait_ready};

/// The reflector caches the operator reads.
#[derive(Clone)]
pub struct Stores {
    /// TrainingJobs (the controller's own cache).
    pub jobs: Store<TrainingJob>,
    /// All pods, pruned to the fields the operator reads, for GPUs in use and the state
    /// of gangs.
    pub pods: Store<CachedPod>,
    /// The pods of each TrainingJob, by the job's label (no scan of every pod).
    pub job_pods: Arc<JobPods>,
    /// All nodes.
    pub nodes: Store<Node>,
    /// All EnergySites.
    pub sites: Store<EnergySite>,
}

/// Shared state of the operator.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// The one event recorder, so events aggregate.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The last cycle's decisions.
    pub plan: Arc<Plan>,
    /// Caches.
    pub stores: Stores,
    /// Whether the node, pod and site caches have synced.
    pub synced: Synced,
    /// Which site powers each node, and the GPUs in use: one picture for every task.
    pub topology: Arc<SharedTopology>,
    /// Placement engine settings.
    pub engine: EngineConfig,
    /// Wakes the scheduling cycle early.
    pub wake_scheduler: Arc<Notify>,
    /// The latest power measured by the node agents.
    pub telemetry: Arc<Telemetry>,
    /// Base power of a GPU node besides its GPUs (CPUs, fans, NICs), W.
    pub node_base_watts: f64,
    /// The Bindings made and not yet seen in the pod cache, so none is made twice.
    pub bindings: Bindings,
}

impl Context {
    /// Waits until every cache, the jobs' included, has its first full list: deciding or
    /// billing on half-filled caches would place jobs on GPUs in use, or bill nobody.
    pub async fn caches_synced(&self) {
        self.synced.wait().await;
        wait_ready(self.stores.jobs.clone()).await;
    }
}
