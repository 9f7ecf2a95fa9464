//! The pods bound to this node, watched through the Kubernetes API (a reflector with the
//! field selector `spec.nodeName=<node>`). The simulated backend takes its load from
//! them, and the cgroup fallback turns pod UIDs into names with them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use verdant_crds::wire::PodRef;

use crate::backend::simulated::{GpuDemand, UTILIZATION_ANNOTATION};

/// The GPU resource.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// A live view of the pods bound to one node.
#[derive(Clone)]
pub struct NodePods {
    store: Store<Pod>,
    listed: Arc<AtomicBool>,
}

impl NodePods {
    /// Starts watching the pods of `node`. The returned future drives the watch (it
    /// retries with backoff when the API server is unreachable) and never ends; run it
    /// under the agent's supervisor.
    pub fn watch(client: Client, node: &str) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store();
        let listed = Arc::new(AtomicBool::new(false));
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let node = node.to_owned();
        let driver = {
            let listed = listed.clone();
            async move {
                let stream = watcher(Api::<Pod>::all(client), config)
                    .default_backoff()
                    .modify(|pod| {
                        // Keeps the cache small: nothing here needs these.
                        pod.managed_fields_mut().clear();
                        pod.annotations_mut()
                            .retain(|k, _| k.as_str() == UTILIZATION_ANNOTATION);
                    })
                    .reflect(writer);
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::InitDone) => listed.store(true, Ordering::Release),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%node, %error, "watching the pods of this node failed; retrying");
                        }
                    }
                }
            }
        };
        (Self { store, listed }, driver)
    }

    /// Whether the first list of the pods has arrived (it stays true through later
    /// relists, while the cache keeps serving the last one).
    pub fn is_listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    /// Waits until the first list has arrived (or `timeout` passed). Returns whether it has.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, self.store.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The pods now.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.store.state()
    }

    /// The GPU claims of the pods now, for the simulated backend.
    pub fn gpu_demands(&self) -> Vec<GpuDemand> {
        gpu_demands(&self.pods())
    }

    /// The container a cgroup owner belongs to.
    pub fn find(&self, pod_uid: &str, container_id: Option<&str>) -> Option<PodRef> {
        find_container(&self.pods(), pod_uid, container_id)
    }
}

fn gpus_of(container: &k8s_openapi::api::core::v1::Container) -> u32 {
    let resources = container.resources.as_ref();
    let quantity = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get(GPU_RESOURCE))
        .or_else(|| {
            resources
                .and_then(|r| r.requests.as_ref())
                .and_then(|l| l.get(GPU_RESOURCE))
        });
    quantity.and_then(|q| q.0.parse().ok()).unwrap_or(0)
}

/// Every container that holds GPUs: bound pods that have not finished, in creation order
/// (then by namespace and name), containers in spec order.
pub fn gpu_demands(pods: &[Arc<Pod>]) -> Vec<GpuDemand> {
    let mut live: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        })
        .collect();
    live.sort_by(|a, b| {
        (a.creation_timestamp(), a.namespace(), a.name_any()).cmp(&(
            b.creation_timestamp(),
            b.namespace(),
            b.name_any(),
        ))
    });
    let mut demands = Vec::new();
    for pod in live {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let util_percent = pod
            .annotations()
            .get(UTILIZATION_ANNOTATION)
            .and_then(|v| v.trim().trim_end_matches('%').parse::<f64>().ok())
            .filter(|v| v.is_finite());
        let uid = pod.uid().unwrap_or_else(|| pod.name_any());
        for container in pod.spec.iter().flat_map(|s| &s.containers) {
            let gpus = gpus_of(container);
            if gpus == 0 {
                continue;
            }
            demands.push(GpuDemand {
                key: format!("{uid}/{}", container.name),
                pod: PodRef {
                    namespace: pod.namespace().unwrap_or_default(),
                    name: pod.name_any(),
                    container: container.name.clone(),
                },
                gpus,
                running,
                util_percent,
            });
        }
    }
    demands
}

/// The container of pod `pod_uid` whose runtime ID is `container_id`; without an ID (or
/// without a match), the pod's only GPU container, else the pod with no container name.
pub fn find_container(
    pods: &[Arc<Pod>],
    pod_uid: &str,
    container_id: Option<&str>,
) -> Option<PodRef> {
    let pod = pods.iter().find(|p| p.uid().as_deref() == Some(pod_uid))?;
    let by_id = container_id.and_then(|id| {
        pod.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find(|s| {
                s.container_id
                    .as_deref()
                    .is_some_and(|cid| cid.rsplit("://").next() == Some(id))
            })
            .map(|s| s.name.clone())
    });
    let container = by_id.or_else(|| {
        let gpu_containers: Vec<&str> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter(|c| gpus_of(c) > 0)
            .map(|c| c.name.as_str())
            .collect();
        (gpu_containers.len() == 1).then(|| gpu_containers[0].to_owned())
    });
    Some(PodRef {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        container: container.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: serde_json::Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(yaml).unwrap())
    }

    fn trainer(name: &str, uid: &str, created: &str, phase: &str, gpus: &str) -> Arc<Pod> {
        pod(serde_json::json!({
            "metadata": {"name": name, "namespace": "ml", "uid": uid, "creationTimestamp": created,
                         "annotations": {UTILIZATION_ANNOTATION: "75"}},
            "spec": {"nodeName": "n1", "containers": [
                {"name": "sidecar"},
                {"name": "trainer", "resources": {"limits": {"nvidia.com/gpu": gpus}}}
            ]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "trainer", "containerID": "containerd://abc123", "image": "", "imageID": "",
                 "ready": true, "restartCount": 0},
                {"name": "sidecar", "containerID": "containerd://def456", "image": "", "imageID": "",
                 "ready": true, "restartCount": 0}
            ]}
        }))
    }

    #[test]
    fn demands_come_from_unfinished_gpu_containers_in_creation_order() {
        let pods = vec![
            trainer("late", "u2", "2026-11-29T10:00:05Z", "Pending", "2"),
            trainer("early", "u1", "2026-11-29T10:00:00Z", "Running", "4"),
            trainer("done", "u3", "2026-11-29T09:00:00Z", "Succeeded", "8"),
        ];
        let demands = gpu_demands(&pods);
        let summary: Vec<(&str, u32, bool, Option<f64>)> = demands
            .iter()
            .map(|d| (d.pod.name.as_str(), d.gpus, d.running, d.util_percent))
            .collect();
        assert_eq!(
            summary,
            [
                ("early", 4, true, Some(75.0)),
                ("late", 2, false, Some(75.0))
            ]
        );
        assert_eq!(demands[0].key, "u1/trainer");
        assert_eq!(demands[0].pod.container, "trainer");
    }

    #[test]
    fn cgroup_owners_map_to_containers() {
        let pods = vec![trainer("p", "u1", "2026-11-29T10:00:00Z", "Running", "1")];
        let by_id = find_container(&pods, "u1", Some("def456")).unwrap();
        assert_eq!(
            (by_id.name.as_str(), by_id.container.as_str()),
            ("p", "sidecar")
        );
        // Without a container ID, the only GPU container.
        assert_eq!(
            find_container(&pods, "u1", None).unwrap().container,
            "trainer"
        );
        assert_eq!(
            find_container(&pods, "u1", Some("ffff")).unwrap().container,
            "trainer"
        );
        assert!(find_container(&pods, "nope", None).is_none());
    }
}
