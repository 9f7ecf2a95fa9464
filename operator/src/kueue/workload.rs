//! The `Workload` of a TrainingJob (Kueue's `kueue.x-k8s.io/v1beta2`, the version v0.17.0
//! stores), as JSON: what Verdant creates, and what it reads back (admission, eviction,
//! finish). Conditions are set as Kubernetes' `meta.SetStatusCondition` does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use verdant_crds::TrainingJob;

use super::PRIORITY_CLASS_LABEL;
use crate::labels::GPU_RESOURCE;

/// Kueue's API group.
pub const GROUP: &str = "kueue.x-k8s.io";
/// The version Verdant reads and writes (Kueue v0.17.0 stores it).
pub const VERSION: &str = "v1beta2";
/// The name of a TrainingJob's one podSet.
pub const POD_SET: &str = "workers";
/// Kueue's label with the owner job's UID.
const JOB_UID_LABEL: &str = "kueue.x-k8s.io/job-uid";

/// The API resource of a Kueue kind.
pub fn resource(kind: &str, plural: &str) -> ApiResource {
    let mut resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, kind));
    resource.plural = plural.to_owned();
    resource
}

/// The label naming a job's prebuilt Workload: MultiKueue sets it on the copy of a job it
/// creates in a worker cluster, whose Workload (a copy of the manager's) it created first.
pub const PREBUILT_LABEL: &str = "kueue.x-k8s.io/prebuilt-workload-name";

/// The job's prebuilt Workload, if it names one ([`PREBUILT_LABEL`]).
pub fn prebuilt(job: &TrainingJob) -> Option<&str> {
    job.labels()
        .get(PREBUILT_LABEL)
        .map(String::as_str)
        .filter(|n| !n.is_empty())
}

/// The Workload name of a job: its prebuilt Workload's, else shaped as jobframework's
/// (`trainingjob-<name>-<5 hex digits of a hash of kind, group, name and UID>`; Kueue
/// hashes with SHA-1, Verdant with SHA-256: Kueue finds the Workload by its owner).
pub fn name(job: &TrainingJob) -> String {
    if let Some(prebuilt) = prebuilt(job) {
        return prebuilt.to_owned();
    }
    let name = job.name_any();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let hash = Sha256::digest(format!("TrainingJob\nverdant.dev\n{name}\n{uid}"));
    let hex: String = hash.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let mut prefix = format!("trainingjob-{name}");
    prefix.truncate(253 - 6);
    format!("{prefix}-{}", &hex[..5])
}

/// The pod template of the podSet: the job's template with its GPUs requested (and
/// limited) on its first container, as Verdant's pods have them.
pub fn pod_set_template(job: &TrainingJob) -> PodTemplateSpec {
    let mut template = job.spec.template.clone();
    let gpus = Quantity(job.spec.gpus_per_replica.max(0).to_string());
    if let Some(container) = template
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
    {
        let resources = container.resources.get_or_insert_with(Default::default);
        for list in [&mut resources.requests, &mut resources.limits] {
            list.get_or_insert_with(BTreeMap::new)
                .insert(GPU_RESOURCE.to_owned(), gpus.clone());
        }
    }
    template
}

/// The Workload Verdant creates for a queued job: owned by it (controller), in its
/// namespace, with its queue, its WorkloadPriorityClass (`priority`, that class's value,
/// read by the caller) and one podSet of `replicas` pods.
pub fn build(job: &TrainingJob, queue: &str, priority: Option<(&str, i32)>) -> Value {
    let mut labels = serde_json::Map::new();
    if let Some(uid) = &job.metadata.uid {
        labels.insert(JOB_UID_LABEL.into(), json!(uid));
    }
    let mut spec = json!({
        "queueName": queue,
        "podSets": [{
            "name": POD_SET,
            "count": job.spec.replicas.max(0),
            "template": pod_set_template(job),
        }],
    });
    if let Some((class, value)) = priority {
        spec["priorityClassRef"] =
            json!({"group": GROUP, "kind": "WorkloadPriorityClass", "name": class});
        spec["priority"] = json!(value);
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Workload",
        "metadata": {
            "name": name(job),
            "namespace": job.namespace(),
            "labels": labels,
            "ownerReferences": [owner_reference(job)],
        },
        "spec": spec,
    })
}

/// The job as its Workload's controlling owner.
pub fn owner_reference(job: &TrainingJob) -> Value {
    json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "name": job.name_any(),
        "uid": job.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether the Workload is controlled by the job (its UID).
pub fn controlled_by(workload: &Value, job: &TrainingJob) -> bool {
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    workload
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| o["controller"] == true && o["uid"] == uid)
}

/// The job's WorkloadPriorityClass, from its label.
pub fn priority_class(job: &TrainingJob) -> Option<&str> {
    job.labels().get(PRIORITY_CLASS_LABEL).map(String::as_str)
}

/// Whether a Workload is the queued job's: the queue label is what Verdant compares
/// (jobframework updates `spec.queueName` of a suspended job's Workload).
pub fn queue_of(workload: &Value) -> Option<&str> {
    workload.pointer("/spec/queueName").and_then(Value::as_str)
}

/// A condition of the Workload: (status, reason, message).
pub fn condition<'a>(workload: &'a Value, kind: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let c = workload
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?;
    let field = |f: &str| c[f].as_str().unwrap_or_default();
    Some((field("status"), field("reason"), field("message")))
}

fn is_true(workload: &Value, kind: &str) -> bool {
    condition(workload, kind).is_some_and(|c| c.0 == "True")
}

/// Kueue reserved quota for it (`status.admission` set, `QuotaReserved=True`).
pub fn has_quota_reservation(workload: &Value) -> bool {
    workload
        .pointer("/status/admission")
        .is_some_and(|a| !a.is_null())
        && is_true(workload, "QuotaReserved")
}

/// Admitted: quota reserved and `Admitted=True` (every admission check ready).
pub fn is_admitted(workload: &Value) -> bool {
    workload
        .pointer("/status/admission")
        .is_some_and(|a| !a.is_null())
        && is_true(workload, "Admitted")
}

/// `Evicted=True`: (reason, message).
pub fn evicted(workload: &Value) -> Option<(&str, &str)> {
    condition(workload, "Evicted")
        .filter(|c| c.0 == "True")
        .map(|(_, reason, message)| (reason, message))
}

/// `Finished=True`.
pub fn is_finished(workload: &Value) -> bool {
    is_true(workload, "Finished")
}

/// The flavors assigned to the podSet, by name (every resource's, without repeats).
pub fn admitted_flavors(workload: &Value) -> Vec<String> {
    let mut flavors: Vec<String> = workload
        .pointer("/status/admission/podSetAssignments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a["name"] == POD_SET)
        .filter_map(|a| a["flavors"].as_object())
        .flat_map(|f| f.values().filter_map(Value::as_str).map(str::to_owned))
        .collect();
    flavors.sort();
    flavors.dedup();
    flavors
}

/// The podSet template as the Workload holds it: the job's template before any
/// admission changed it (jobframework restores a stopped job's template from it).
pub fn original_template(workload: &Value) -> Option<PodTemplateSpec> {
    let sets = workload.pointer("/spec/podSets")?.as_array()?;
    let set = sets.iter().find(|s| s["name"] == POD_SET)?;
    serde_json::from_value(set["template"].clone()).ok()
}

/// Sets a condition in `conditions` as `meta.SetStatusCondition` does: the transition
/// time changes only with the status. Returns whether anything changed.
pub fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) -> bool {
    let status = if status { "True" } else { "False" };
    let mut new = json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now,
    });
    if let Some(generation) = generation {
        new["observedGeneration"] = json!(generation);
    }
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        None => {
            conditions.push(new);
            true
        }
        Some(old) => {
            if old["status"] == status {
                new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
    }
}
