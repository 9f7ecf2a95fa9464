//! Kueue, built from its Go module, against the tests' local control plane: it admits a
//! Workload within a ClusterQueue's GPU quota and holds back the next until the quota is
//! free again; and TrainingJobs as a Kueue external framework, with `verdant-operator`:
//! Kueue admits them within its quota and Verdant places them green within the admitted
//! flavor, and a higher-priority job evicts (suspends) one that resumes later.
//!
//! Kueue's CRDs and webhooks are cluster-wide, so each test has its own control plane.

use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use verdant_crds::{JobPhase, TrainingJob};
use verdant_tests::jobs::node_of;
use verdant_tests::kueue::{
    GROUP, KueueProcess, VERSION, condition, gpu_queues, object, resource, resource_at,
    wait_condition,
};
use verdant_tests::{ControlPlane, Scenario, TestNamespace, create_gpu_nodes, wait};

const TIMEOUT: Duration = Duration::from_secs(60);
const OPERATOR: &str = env!("CARGO_BIN_EXE_e2e-operator");

/// A Workload of `count` pods of 8 GPUs each in the LocalQueue `queue`.
fn workload(name: &str, queue: &str, count: u32) -> anyhow::Result<DynamicObject> {
    object(
        "Workload",
        name,
        json!({
            "queueName": queue,
            "podSets": [{
                "name": "workers",
                "count": count,
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "trainer",
                        "image": "verdant/trainer",
                        "resources": {
                            "requests": {"nvidia.com/gpu": "8"},
                            "limits": {"nvidia.com/gpu": "8"},
                        },
                    }],
                }},
            }],
        }),
    )
}

/// Waits until the Workload `name`'s condition `kind` has `status`; returns the Workload.
async fn workload_condition(
    workloads: &Api<DynamicObject>,
    name: &str,
    kind: &str,
    status: &str,
) -> anyhow::Result<Value> {
    wait_condition(workloads, name, kind, status, TIMEOUT).await
}

#[tokio::test]
async fn kueue_admits_a_workload_within_gpu_quota_and_holds_the_next() -> anyhow::Result<()> {
    let plane = ControlPlane::start_owned();
    let client = plane.client().await?;
    let ns = TestNamespace::create(&plane, &client, "kueue").await?;
    let kueue = KueueProcess::start(&plane).await?;
    let post = PostParams::default();

    gpu_queues(&client, ns.name(), "gpu", json!({}), 16, json!({})).await?;

    let workloads: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns.name(),
        &resource("Workload", "workloads"),
    );
    workloads
        .create(&post, &workload("first", "team", 2)?)
        .await?;
    let first = workload_condition(&workloads, "first", "Admitted", "True").await?;
    assert_eq!(
        first.pointer("/status/admission/clusterQueue"),
        Some(&json!("gpus")),
        "{first:#}"
    );
    let assignment = &first["status"]["admission"]["podSetAssignments"][0];
    assert_eq!(assignment["count"], 2, "{first:#}");
    assert_eq!(assignment["flavors"]["nvidia.com/gpu"], "gpu", "{first:#}");
    assert_eq!(
        assignment["resourceUsage"]["nvidia.com/gpu"], "16",
        "{first:#}"
    );

    // The quota is spent: the second waits, and Kueue says why.
    workloads
        .create(&post, &workload("second", "team", 2)?)
        .await?;
    let second = workload_condition(&workloads, "second", "QuotaReserved", "False").await?;
    let (_, reason, message) = condition(&second, "QuotaReserved").unwrap_or_default();
    assert_eq!(reason, "Pending", "{second:#}");
    assert!(message.contains("nvidia.com/gpu"), "{second:#}");
    assert!(second.pointer("/status/admission").is_none(), "{second:#}");
    let first = serde_json::to_value(workloads.get("first").await?)?;
    assert_eq!(condition(&first, "Admitted").map(|c| c.0), Some("True"));

    // Kueue's conversion webhook serves the v1beta1 API from storage (v1beta2).
    let v1beta1: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns.name(),
        &resource_at("Workload", "workloads", "v1beta1"),
    );
    let old = serde_json::to_value(v1beta1.get("first").await?)?;
    assert_eq!(old["apiVersion"], format!("{GROUP}/v1beta1"));
    assert_eq!(
        old.pointer("/status/admission/clusterQueue"),
        Some(&json!("gpus")),
        "{old:#}"
    );

    // Once the first is gone, its quota goes to the second.
    workloads.delete("first", &DeleteParams::default()).await?;
    workload_condition(&workloads, "second", "Admitted", "True").await?;
    drop(kueue);
    Ok(())
}

/// A scenario with Kueue, three nodes of 8 GPUs at the green site `green`, the queues of
/// [`gpu_queues`], and the operator.
async fn kueue_scenario(name: &str, preemption: Value) -> anyhow::Result<(Scenario, KueueProcess)> {
    let mut s = Scenario::start(name, OPERATOR).await?;
    let kueue = KueueProcess::start(&s.plane).await?;
    create_gpu_nodes(&s.client, "green", "green", 3, 8).await?;
    s.site("green", json!({"constantKw": 1000.0})).await?;
    // A ResourceFlavor `green` for the nodes of site `green`, and 16 GPUs of quota.
    let labels = json!({"verdant.dev/site": "green"});
    let preemption = json!({"preemption": preemption});
    gpu_queues(&s.client, s.ns.name(), "green", labels, 16, preemption).await?;
    s.start_operator(&[])?;
    Ok((s, kueue))
}

/// Submits a TrainingJob of 1 × 8 GPUs to the LocalQueue `team` (with `labels` besides)
/// whose pods carry `pod_annotations`.
async fn submit(
    s: &Scenario,
    name: &str,
    labels: Value,
    pod_annotations: Value,
) -> anyhow::Result<()> {
    let mut body = verdant_tests::jobs::training_job(name, 1, 8, json!({}), pod_annotations);
    body["metadata"]["labels"] = labels;
    body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = json!("team");
    let job: TrainingJob = serde_json::from_value(body)?;
    s.jobs().create(&PostParams::default(), &job).await?;
    Ok(())
}

/// Waits until job `name` runs with every pod bound on a node of the admitted flavor (site
/// `green`) and carrying the flavor's node selector.
async fn wait_running_in_flavor(s: &Scenario, name: &str) -> anyhow::Result<()> {
    s.wait_phase(name, JobPhase::Running, 90).await?;
    for pod in s.pods_of(name).await? {
        let selector = pod
            .spec
            .as_ref()
            .and_then(|p| p.node_selector.clone())
            .unwrap_or_default();
        assert_eq!(
            selector.get("verdant.dev/site").map(String::as_str),
            Some("green"),
            "{}",
            pod.name_any()
        );
        assert!(
            node_of(&pod).is_some_and(|n| n.starts_with("green-")),
            "{}",
            pod.name_any()
        );
    }
    Ok(())
}

/// Waits until job `name` waits for Kueue in phase `phase` without pods; returns its
/// status message.
async fn wait_for_kueue(s: &Scenario, name: &str, phase: JobPhase) -> anyhow::Result<String> {
    wait::until(
        &format!("{name} to wait for Kueue ({phase})"),
        Duration::from_secs(90),
        || async {
            let job = s.jobs().get(name).await?;
            let status = job.status.unwrap_or_default();
            let pods = s.pods_of(name).await?.len();
            Ok(
                match (status.phase == phase, status.reason.as_deref(), pods) {
                    (true, Some("WaitingForKueue"), 0) => Ok(status.message.unwrap_or_default()),
                    _ => Err(format!(
                        "{} {:?} with {pods} pods: {:?}",
                        status.phase, status.reason, status.message
                    )),
                },
            )
        },
    )
    .await
}

/// The Workload of job `name` (the one it owns).
async fn workload_of(s: &Scenario, name: &str) -> anyhow::Result<Value> {
    let workloads: Api<DynamicObject> = Api::namespaced_with(
        s.client.clone(),
        s.ns.name(),
        &resource("Workload", "workloads"),
    );
    let uid = s.jobs().get(name).await?.uid();
    let found = workloads
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find(|w| {
            w.owner_references()
                .iter()
                .any(|o| o.kind == "TrainingJob" && Some(&o.uid) == uid.as_ref())
        });
    Ok(serde_json::to_value(found.ok_or_else(|| {
        anyhow::anyhow!("no Workload owned by {name}")
    })?)?)
}

#[tokio::test]
async fn kueue_admits_two_training_jobs_within_quota_and_verdant_places_them_green()
-> anyhow::Result<()> {
    let (s, _kueue) = kueue_scenario("kueue-quota", json!({})).await?;
    // The first finishes after a while; the second runs on.
    submit(
        &s,
        "first",
        json!({}),
        json!({"verdant.dev/kwok-succeed-after": "20s"}),
    )
    .await?;
    submit(&s, "second", json!({}), json!({})).await?;
    wait_running_in_flavor(&s, "first").await?;
    wait_running_in_flavor(&s, "second").await?;
    let wl = workload_of(&s, "second").await?;
    assert_eq!(wl["spec"]["queueName"], "team", "{wl:#}");
    assert_eq!(wl["spec"]["podSets"][0]["count"], 1, "{wl:#}");
    assert_eq!(
        wl["spec"]["podSets"][0]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"],
        "8",
        "{wl:#}"
    );
    assert_eq!(
        condition(&wl, "Admitted").map(|c| c.0),
        Some("True"),
        "{wl:#}"
    );

    // The quota (16 GPUs) is spent: the third waits in Kueue's queue, not in Verdant's.
    submit(&s, "third", json!({}), json!({})).await?;
    let message = wait_for_kueue(&s, "third", JobPhase::Pending).await?;
    assert!(message.contains("queue team"), "{message}");
    let third = workload_of(&s, "third").await?;
    assert_eq!(
        condition(&third, "QuotaReserved").map(|c| c.0),
        Some("False"),
        "{third:#}"
    );

    // The first finishes: its Workload is Finished, and its quota goes to the third.
    s.wait_phase("first", JobPhase::Succeeded, 90).await?;
    wait::until(
        "the first job's Workload to be Finished",
        TIMEOUT,
        || async {
            let wl = workload_of(&s, "first").await?;
            Ok(match condition(&wl, "Finished") {
                Some(("True", "Succeeded", _)) => Ok(()),
                other => Err(format!("Finished: {other:?}")),
            })
        },
    )
    .await?;
    wait_running_in_flavor(&s, "third").await?;
    assert_eq!(
        s.jobs()
            .get("second")
            .await?
            .status
            .unwrap_or_default()
            .phase,
        JobPhase::Running
    );
    Ok(())
}

#[tokio::test]
async fn a_higher_priority_workload_evicts_a_running_training_job_which_resumes_later()
-> anyhow::Result<()> {
    let (s, _kueue) = kueue_scenario(
        "kueue-evict",
        json!({"withinClusterQueue": "LowerPriority"}),
    )
    .await?;
    let post = PostParams::default();
    let classes: Api<DynamicObject> = Api::all_with(
        s.client.clone(),
        &resource("WorkloadPriorityClass", "workloadpriorityclasses"),
    );
    for (name, value) in [("low", 10), ("high", 1000)] {
        let class: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/{VERSION}"), "kind": "WorkloadPriorityClass",
            "metadata": {"name": name}, "value": value,
        }))?;
        classes.create(&post, &class).await?;
    }
    let low = json!({"kueue.x-k8s.io/priority-class": "low"});
    submit(&s, "low-a", low.clone(), json!({})).await?;
    submit(&s, "low-b", low, json!({})).await?;
    wait_running_in_flavor(&s, "low-a").await?;
    wait_running_in_flavor(&s, "low-b").await?;
    assert_eq!(workload_of(&s, "low-a").await?["spec"]["priority"], 10);

    // A job of higher priority: Kueue evicts one of the two, Verdant suspends it.
    let high = json!({"kueue.x-k8s.io/priority-class": "high"});
    submit(
        &s,
        "urgent",
        high,
        json!({"verdant.dev/kwok-succeed-after": "15s"}),
    )
    .await?;
    let evicted = wait::until(
        "a low job to be evicted",
        Duration::from_secs(90),
        || async {
            for name in ["low-a", "low-b"] {
                let status = s.jobs().get(name).await?.status.unwrap_or_default();
                if status.reason.as_deref() == Some("WaitingForKueue") {
                    return Ok(Ok(name));
                }
            }
            Ok(Err("both low jobs still run".to_owned()))
        },
    )
    .await?;
    let other = if evicted == "low-a" { "low-b" } else { "low-a" };
    wait_for_kueue(&s, evicted, JobPhase::Suspended).await?;
    let wl = workload_of(&s, evicted).await?;
    assert!(
        condition(&wl, "Evicted").is_some_and(|c| c.0 == "True")
            || condition(&wl, "QuotaReserved").is_some_and(|c| c.0 == "False"),
        "{wl:#}"
    );
    wait_running_in_flavor(&s, "urgent").await?;
    assert_eq!(
        s.jobs().get(other).await?.status.unwrap_or_default().phase,
        JobPhase::Running
    );

    // The urgent job finishes: the evicted one is admitted again and resumes.
    s.wait_phase("urgent", JobPhase::Succeeded, 90).await?;
    wait_running_in_flavor(&s, evicted).await?;
    Ok(())
}
