//! TrainingJob objects the tests create, and their pods.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// A TrainingJob `name` of `replicas` × `gpus` with one `trainer` container whose pods
/// carry `pod_annotations`; `spec` is merged into its spec (energy policy, sites,
/// deadlines, …).
pub fn training_job(
    name: &str,
    replicas: u32,
    gpus: u32,
    spec: Value,
    pod_annotations: Value,
) -> Value {
    let mut job = json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "gpusPerReplica": gpus,
            "template": {
                "metadata": {"annotations": pod_annotations},
                "spec": {"containers": [{"name": "trainer", "image": "pytorch/pytorch"}]}
            }
        }
    });
    merge(&mut job["spec"], spec);
    job
}

/// Merges `patch` into `target` as a JSON merge patch does, without deletions: objects
/// key by key, anything else replaced.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// The node a pod is bound to.
pub fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// A pod's phase (empty before the kubelet reports one).
pub fn phase_of(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}
