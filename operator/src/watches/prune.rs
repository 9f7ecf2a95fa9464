//! What the caches keep of each object: only the fields some task reads.
//!
//! A cluster of 5,000 nodes and 40,000 pods held whole is hundreds of MiB (managed
//! fields, images, env, volumes, conditions with timestamps). Pruned, a pod is its
//! identity, labels, owners, node, GPU requests and phase. Pruning also makes a change
//! that only touches dropped fields (a node's heartbeat, a pod's IP or condition times)
//! compare equal to the cached object, so [`watch_all`](super::watch_all) can ignore it:
//! it neither wakes the scheduling cycle nor reconciles a job.
//!
//! # Guarantees
//! Kept, because a task reads it (keep this list true when a reader wants more):
//! - TrainingJobs: everything but managed fields (a job's managed fields are a JSON tree
//!   of every field each writer set, about 10 KiB a job, and nothing reads them);
//!   `resourceVersion` stays, as the scheduler's quiet check
//!   ([`Fingerprint`](crate::scheduler::quiet::Fingerprint)) hashes it;
//! - EnergySites: everything but managed fields and `resourceVersion`;
//! - pods and nodes: name, namespace, uid, labels, owner references, creation and deletion
//!   timestamps, generation; `resourceVersion` and managed fields go (nothing reads them
//!   from a cache, and they change on every write);
//! - pods: of the labels, only Verdant's own (`verdant.dev/…` and
//!   `app.kubernetes.io/managed-by`: the operator reads no other label of a pod, and in a
//!   shared cluster most pods carry many); `spec.nodeName`, `spec.schedulerName`, each
//!   container's name and GPU count (`workload::pod_gpus`), `status.phase`, and each container's
//!   `terminated.finishedAt` and exit code (billing a finished pod's last window). Pods
//!   are cached as [`CachedPod`], a type of these fields alone, read straight from the
//!   API server's answers: the rest of a pod is never held, not even while a watch event
//!   is read;
//! - nodes: `spec.unschedulable` and taints (placement constraints), the GPU entry of
//!   `status.allocatable` (placement) and of `status.capacity` (the most GPUs a node's
//!   agent may report: `ingest`), and the `Ready` condition's status (no times, reason or
//!   message).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::cached_pod::CachedPod;
use crate::labels::{GPU_RESOURCE, MANAGED_BY_LABEL};

/// A kind the operator caches: what it keeps of each object, and when two kept objects
/// are the same.
pub trait Pruned {
    /// Drops what no task reads.
    fn prune(&mut self);
    /// Whether two pruned objects are the same.
    fn same(&self, other: &Self) -> bool;
}

impl Pruned for CachedPod {
    fn prune(&mut self) {
        metadata(&mut self.metadata);
        if let Some(labels) = &mut self.metadata.labels {
            labels.retain(|key, _| verdant_label(key));
        }
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Pruned for Node {
    fn prune(&mut self) {
        node(self);
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Pruned for verdant_crds::TrainingJob {
    fn prune(&mut self) {
        self.metadata.managed_fields = None;
    }
    fn same(&self, other: &Self) -> bool {
        self.metadata == other.metadata && self.spec == other.spec && self.status == other.status
    }
}

impl Pruned for verdant_crds::EnergySite {
    fn prune(&mut self) {
        site(self);
    }
    fn same(&self, other: &Self) -> bool {
        self.metadata == other.metadata && self.spec == other.spec && self.status == other.status
    }
}

/// The metadata every cache keeps.
pub fn metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.resource_version = None;
    meta.annotations = None;
    meta.generate_name = None;
    meta.finalizers = None;
}

/// Whether a pod's label `key` is one the operator reads: its own.
fn verdant_label(key: &str) -> bool {
    key.starts_with("verdant.dev/") || key == MANAGED_BY_LABEL
}

/// Of a node's resource list, the GPU entry alone.
fn gpu_entry(mut list: BTreeMap<String, Quantity>) -> BTreeMap<String, Quantity> {
    list.retain(|resource, _| resource == GPU_RESOURCE);
    list
}

/// An EnergySite is read whole (spec and status); only what changes on every write goes.
pub fn site(site: &mut verdant_crds::EnergySite) {
    site.metadata.managed_fields = None;
    site.metadata.resource_version = None;
}

/// Keeps the fields of a node that the operator reads.
pub fn node(node: &mut Node) {
    metadata(&mut node.metadata);
    if let Some(spec) = node.spec.take() {
        node.spec = Some(NodeSpec {
            unschedulable: spec.unschedulable,
            taints: spec.taints,
            ..Default::default()
        });
    }
    if let Some(status) = node.status.take() {
        node.status = Some(NodeStatus {
            capacity: status.capacity.map(gpu_entry),
            allocatable: status.allocatable.map(gpu_entry),
            conditions: status.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .filter(|c| c.type_ == "Ready")
                    .map(|c| NodeCondition {
                        type_: c.type_,
                        status: c.status,
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::node_ready;
    use crate::workload::pod_gpus;

    #[test]
    fn a_pod_keeps_what_is_read_and_a_heartbeat_compares_equal() {
        let full = |ip: &str| -> CachedPod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j-0", "namespace": "ns", "uid": "u1", "resourceVersion": ip,
                    "labels": {"verdant.dev/job-name": "j", "app.kubernetes.io/managed-by": "verdant",
                        "pod-template-hash": "5d8f", "team": ip},
                    "annotations": {"a": "b"},
                    "managedFields": [{"manager": "x"}],
                    "ownerReferences": [{"apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob", "name": "j", "uid": "o", "controller": true}]},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "big", "env": [{"name": "A", "value": "1"}],
                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
                "status": {"phase": "Failed", "podIP": ip, "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [{"name": "c", "image": "big", "imageID": "x", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 3, "finishedAt": "2026-01-01T00:00:00Z", "message": "long"}}}]},
            }))
            .unwrap()
        };
        let (mut a, mut b) = (full("10.0.0.1"), full("10.0.0.2"));
        a.prune();
        b.prune();
        assert_eq!(a, b, "only dropped fields differed");
        assert_eq!(pod_gpus(&a), 8);
        assert_eq!(a.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(a.metadata.owner_references.as_ref().unwrap().len(), 1);
        let labels = a.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["verdant.dev/job-name"], "j");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "verdant");
        assert_eq!(
            labels.len(),
            2,
            "labels no task reads are dropped: {labels:?}"
        );
        let spec = a.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.containers[0].name, "c");
        let status = a.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let terminated = status.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap();
        assert!(terminated.finished_at.is_some());
        assert!(a.metadata.managed_fields.is_none() && a.metadata.annotations.is_none());
    }

    #[test]
    fn a_training_job_loses_its_managed_fields_only() {
        let mut job: verdant_crds::TrainingJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "j", "namespace": "ns", "resourceVersion": "7",
                "finalizers": ["verdant.dev/cleanup"], "labels": {"team": "a"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": 2, "gpusPerReplica": 1,
                "template": {"spec": {"containers": [{"name": "t", "image": "trainer:1"}]}}},
        }))
        .unwrap();
        let whole = job.clone();
        job.prune();
        assert!(job.metadata.managed_fields.is_none());
        job.metadata.managed_fields = whole.metadata.managed_fields.clone();
        assert!(job.same(&whole), "nothing else changed");
        assert!(!job.same(&verdant_crds::TrainingJob {
            metadata: kube::api::ObjectMeta {
                resource_version: Some("8".into()),
                ..job.metadata.clone()
            },
            ..job.clone()
        }));
    }

    #[test]
    fn a_node_keeps_readiness_capacity_and_taints_but_not_heartbeats() {
        let full = |beat: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n1", "labels": {"zone": "a"}, "resourceVersion": beat},
                "spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24",
                    "taints": [{"key": "k", "effect": "NoSchedule"}]},
                "status": {"allocatable": {"nvidia.com/gpu": "8", "cpu": "64"}, "capacity": {"nvidia.com/gpu": "8", "memory": "1Ti"},
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastHeartbeatTime": beat, "reason": "KubeletReady"},
                        {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": beat}],
                    "images": [{"names": ["a"], "sizeBytes": 1}],
                    "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "k", "osImage": "o",
                        "containerRuntimeVersion": "c", "kubeletVersion": "v", "kubeProxyVersion": "p",
                        "operatingSystem": "linux", "architecture": "amd64"}},
            }))
            .unwrap()
        };
        let (mut a, mut b) = (full("2026-01-01T00:00:00Z"), full("2026-01-01T00:00:20Z"));
        node(&mut a);
        node(&mut b);
        assert_eq!(a, b, "a heartbeat is no change");
        assert!(node_ready(&a));
        assert!(crate::constraints::node_cordoned(&a));
        assert_eq!(a.spec.as_ref().unwrap().taints.as_ref().unwrap().len(), 1);
        let status = a.status.as_ref().unwrap();
        assert_eq!(
            status.allocatable.as_ref().unwrap()["nvidia.com/gpu"].0,
            "8"
        );
        assert_eq!(
            status.allocatable.as_ref().unwrap().len(),
            1,
            "the GPU entry alone"
        );
        assert_eq!(
            status.capacity.as_ref().unwrap().len(),
            1,
            "the GPU entry alone"
        );
        assert!(status.images.is_none() && status.node_info.is_none());
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
    }
}
