//! Which pod and container hold each GPU.
//!
//! In order of preference:
//! 1. the backend itself (the simulated backend assigns GPUs to pods);
//! 2. the kubelet PodResources API on its unix socket, when the socket exists;
//! 3. the GPU's compute pids → `/proc/<pid>/cgroup` → pod UID → the pod, looked up among
//!    the node's pods through the Kubernetes API.

pub mod cgroup;
pub mod podresources;
pub mod pods;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::OnceCell;

use crate::tasks::Spawner;
use crate::window::ClosedWindow;
use pods::NodePods;

/// How a window's GPUs were attributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The backend knew (simulated).
    Backend,
    /// The kubelet PodResources API.
    PodResources,
    /// Compute pids and cgroups.
    Cgroup,
    /// Nothing could attribute GPUs.
    None,
}

impl Source {
    /// The label of `verdant_agent_attribution_source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Backend => "backend",
            Source::PodResources => "podresources",
            Source::Cgroup => "cgroup",
            Source::None => "none",
        }
    }
}

/// How to find the pods of the node for the cgroup fallback.
pub enum PodLookup {
    /// Already watching (shared with the simulated backend).
    Watching(NodePods),
    /// Start watching on first need, with a client from the environment.
    Lazy {
        /// This node.
        node: String,
        /// Where the watch runs, supervised with the agent's other tasks.
        tasks: Spawner,
    },
    /// No Kubernetes API access: the fallback cannot name pods.
    Disabled,
}

/// Attributes the GPUs of closed windows to pods.
pub struct Attributor {
    socket: PathBuf,
    proc_root: PathBuf,
    lookup: PodLookup,
    lazy_pods: OnceCell<Option<NodePods>>,
    timeout: Duration,
}

impl Attributor {
    /// Attribution through `socket`, else through the cgroups under `proc_root`.
    pub fn new(socket: PathBuf, proc_root: PathBuf, lookup: PodLookup) -> Self {
        Self {
            socket,
            proc_root,
            lookup,
            lazy_pods: OnceCell::new(),
            timeout: Duration::from_secs(3),
        }
    }

    /// Fills `pod` for every GPU the backend did not attribute itself.
    pub async fn attribute(&self, window: &mut ClosedWindow) -> Source {
        let gpus = &mut window.report.gpus;
        if gpus.iter().any(|g| g.pod.is_some()) || gpus.is_empty() {
            return Source::Backend;
        }
        if self.socket.exists() {
            match podresources::list_gpu_holders(&self.socket, self.timeout).await {
                Ok(holders) => {
                    for gpu in gpus.iter_mut() {
                        gpu.pod = holders.holder(&gpu.uuid, gpu.index).cloned();
                    }
                    return Source::PodResources;
                }
                Err(error) => {
                    tracing::warn!(%error, "PodResources attribution failed; falling back to cgroups");
                }
            }
        }
        let Some(pods) = self.node_pods().await else {
            return Source::None;
        };
        for (gpu, pids) in gpus.iter_mut().zip(&window.pids) {
            gpu.pod =
                pids.iter()
                    .find_map(|pid| match cgroup::owner_of_pid(&self.proc_root, *pid) {
                        Ok(Some(owner)) => pods.find(&owner.pod_uid, owner.container_id.as_deref()),
                        Ok(None) => None,
                        Err(error) => {
                            tracing::debug!(pid, %error, "cannot read the cgroup of a GPU process");
                            None
                        }
                    });
        }
        Source::Cgroup
    }

    async fn node_pods(&self) -> Option<NodePods> {
        match &self.lookup {
            PodLookup::Watching(pods) => Some(pods.clone()),
            PodLookup::Disabled => None,
            PodLookup::Lazy { node, tasks } => self
                .lazy_pods
                .get_or_init(|| async {
                    match kube::Client::try_default().await {
                        Ok(client) => {
                            let (pods, driver) = NodePods::watch(client, node);
                            tasks.spawn("pod watch (cgroup attribution)", async move {
                                driver.await;
                                Ok(())
                            });
                            pods.wait_ready(Duration::from_secs(10)).await;
                            Some(pods)
                        }
                        Err(error) => {
                            tracing::warn!(
                                %error,
                                "no Kubernetes API access: GPUs cannot be attributed through cgroups \
                                 (mount the PodResources socket, or give the agent a ServiceAccount)"
                            );
                            None
                        }
                    }
                })
                .await
                .clone(),
        }
    }
}
