use serde_json::json;

use super::*;

fn job(annotations: Value, suspend: bool, phase: &str) -> TrainingJob {
    serde_json::from_value(json!({
        "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": "a", "namespace": "ns", "uid": "u1",
            "labels": {"kueue.x-k8s.io/queue-name": "team"}, "annotations": annotations},
        "spec": {"replicas": 1, "gpusPerReplica": 8, "runPolicy": {"suspend": suspend},
            "template": {"spec": {"containers": [{"name": "t", "image": "i"}], "nodeSelector": {"zone": "a"}}}},
        "status": {"phase": phase, "message": "done"},
    }))
    .unwrap()
}

fn queued() -> TrainingJob {
    job(json!({}), false, "Pending")
}

fn started(suspend: bool) -> TrainingJob {
    job(
        json!({"kueue.verdant.dev/started": "w"}),
        suspend,
        "Running",
    )
}

fn workload(conditions: Value, admission: Value) -> Value {
    let mut wl = super::super::workload::build(&queued(), "team", None);
    wl["status"] = json!({"conditions": conditions, "admission": admission});
    wl
}

fn admitted() -> Value {
    workload(
        json!([{"type": "QuotaReserved", "status": "True"}, {"type": "Admitted", "status": "True"}]),
        json!({"clusterQueue": "gpus", "podSetAssignments": [{"name": "workers", "flavors": {"nvidia.com/gpu": "green", "cpu": "green"}}]}),
    )
}

fn evicted_with(admission: Value) -> Value {
    workload(
        json!([{"type": "QuotaReserved", "status": "True"}, {"type": "Admitted", "status": "True"},
               {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "to make room"}]),
        admission,
    )
}

#[test]
fn a_queued_job_gets_its_workload_and_starts_with_the_admitted_flavors() {
    assert_eq!(decide(&queued(), None, false), Step::CreateWorkload);
    assert_eq!(decide(&queued(), None, true), Step::AwaitPodsGone);
    let pending = workload(
        json!([{"type": "QuotaReserved", "status": "False", "reason": "Pending"}]),
        Value::Null,
    );
    assert_eq!(decide(&queued(), Some(&pending), false), Step::Nothing);
    assert_eq!(
        decide(&queued(), Some(&admitted()), false),
        Step::Start {
            flavors: vec!["green".into()]
        }
    );
    assert_eq!(
        decide(&started(false), Some(&admitted()), true),
        Step::Nothing
    );
}

#[test]
fn the_workload_follows_the_queue_label_of_a_suspended_job() {
    let mut other = workload(json!([]), Value::Null);
    other["spec"]["queueName"] = json!("old");
    assert_eq!(
        decide(&queued(), Some(&other), false),
        Step::UpdateQueue("team".into())
    );
}

#[test]
fn an_evicted_job_is_stopped_then_its_reservation_cleared_once_its_pods_are_gone() {
    let evicted = evicted_with(json!({"clusterQueue": "gpus"}));
    assert!(matches!(
        decide(&started(false), Some(&evicted), true),
        Step::Stop { .. }
    ));
    assert_eq!(
        decide(&started(true), Some(&evicted), true),
        Step::AwaitPodsGone
    );
    assert_eq!(
        decide(&started(true), Some(&evicted), false),
        Step::ClearReservation {
            reason: "Preempted".into(),
            message: "to make room".into()
        }
    );
    let cleared = workload(
        json!([{"type": "QuotaReserved", "status": "False"}, {"type": "Evicted", "status": "True", "reason": "Preempted"}]),
        Value::Null,
    );
    assert_eq!(decide(&started(true), Some(&cleared), false), Step::Nothing);
    // Admitted again (Kueue sets Evicted=False): started again.
    assert!(matches!(
        decide(&started(true), Some(&admitted()), false),
        Step::Start { .. }
    ));
    // Running without an admission: stopped.
    let lost = workload(json!([]), Value::Null);
    assert!(matches!(
        decide(&started(false), Some(&lost), true),
        Step::Stop { .. }
    ));
}

#[test]
fn a_finished_job_finishes_its_workload_once() {
    let done = job(
        json!({"kueue.verdant.dev/started": "w"}),
        false,
        "Succeeded",
    );
    assert_eq!(
        decide(&done, Some(&admitted()), false),
        Step::Finish {
            reason: "Succeeded",
            message: "done".into()
        }
    );
    let failed = job(json!({}), false, "Failed");
    assert!(matches!(
        decide(&failed, Some(&admitted()), false),
        Step::Finish {
            reason: "Failed",
            ..
        }
    ));
    let finished = workload(json!([{"type": "Finished", "status": "True"}]), Value::Null);
    assert_eq!(decide(&done, Some(&finished), false), Step::Nothing);
    assert_eq!(decide(&done, None, false), Step::Nothing);
}

#[test]
fn the_workload_is_owned_by_the_job_with_one_pod_set_of_its_gpus() {
    let wl = super::super::workload::build(&queued(), "team", Some(("high", 1000)));
    assert_eq!(wl["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(wl["metadata"]["ownerReferences"][0]["uid"], "u1");
    assert_eq!(wl["metadata"]["namespace"], "ns");
    assert!(
        wl["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("trainingjob-a-")
    );
    assert_eq!(wl["spec"]["queueName"], "team");
    assert_eq!(wl["spec"]["priority"], 1000);
    assert_eq!(
        wl["spec"]["priorityClassRef"]["kind"],
        "WorkloadPriorityClass"
    );
    let set = &wl["spec"]["podSets"][0];
    assert_eq!(set["count"], 1);
    assert_eq!(
        set["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"],
        "8"
    );
    // A stop restores the template's own node selector.
    assert_eq!(
        restored(&wl).node_selector.get("zone").map(String::as_str),
        Some("a")
    );
}

#[test]
fn a_job_copied_by_multikueue_uses_its_prebuilt_workload_and_adopts_it() {
    let mut copy = queued();
    copy.metadata.labels.get_or_insert_default().insert(
        super::super::workload::PREBUILT_LABEL.into(),
        "wl-manager".into(),
    );
    assert_eq!(super::super::workload::name(&copy), "wl-manager");
    assert_eq!(
        decide(&copy, None, false),
        Step::Nothing,
        "awaited, not created"
    );
    // MultiKueue's copy of the manager's Workload has no owner in the worker.
    let mut remote = admitted();
    remote["metadata"]["ownerReferences"] = json!([]);
    assert_eq!(decide(&copy, Some(&remote), false), Step::AdoptWorkload);
    // Adopted (owned by the job's UID), it starts with the admitted flavors.
    assert!(matches!(
        decide(&copy, Some(&admitted()), false),
        Step::Start { .. }
    ));
}
