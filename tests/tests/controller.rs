//! The TrainingJob controller and the green placement engine, end to end: a real
//! kube-apiserver, KWOK GPU nodes, and `verdant-operator run` as a separate process.
//!
//! Each scenario gets its own control plane (an operator sees every node and job of its
//! cluster) and asserts outcomes: where pods land, when, and what the status says.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use verdant_crds::JobPhase;
use verdant_tests::jobs::{self, node_of, phase_of};
use verdant_tests::{OperatorProcess, Scenario, create_gpu_nodes, wait};

/// A template the TrainingJob schema accepts but pod validation rejects (a container
/// name must be a DNS label).
fn rejected_template() -> Value {
    json!({"template": {"spec": {"containers": [{"name": "Trainer_1", "image": "pytorch/pytorch"}]}}})
}

const OPERATOR: &str = env!("CARGO_BIN_EXE_e2e-operator");

/// Scheduling cycles the operator has completed.
async fn cycles(operator: &OperatorProcess) -> anyhow::Result<u64> {
    operator
        .metric("verdant_scheduling_cycle_duration_seconds_count")
        .await?
        .map(|v| v as u64)
        .ok_or_else(|| anyhow::anyhow!("no scheduling cycle count in the metrics"))
}

#[tokio::test]
async fn immediate_job_lands_entirely_on_the_sunny_site_and_runs() -> anyhow::Result<()> {
    let mut s = Scenario::start("immediate", OPERATOR).await?;
    create_gpu_nodes(&s.client, "sunny", "sunny", 2, 8).await?;
    create_gpu_nodes(&s.client, "dark", "dark", 2, 8).await?;
    s.site("sunny", json!({"constantKw": 500.0})).await?;
    s.site("dark", json!({"constantKw": 0.0})).await?;
    s.start_operator(&[])?;
    s.job(
        "train",
        2,
        8,
        json!({"energy": {"policy": "Immediate"}}),
        json!({}),
    )
    .await?;

    let job = s.wait_phase("train", JobPhase::Running, 60).await?;
    let status = job.status.unwrap();
    assert_eq!(status.site.as_deref(), Some("sunny"));
    assert_eq!(status.reason.as_deref(), Some("PlacedImmediate"));
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("sunny"),
        "{:?}",
        status.message
    );
    let pods = s.pods_of("train").await?;
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        let node = node_of(pod).expect("bound");
        assert!(node.starts_with("sunny-"), "{} on {node}", pod.name_any());
        assert_eq!(phase_of(pod), "Running");
        let env: Vec<_> = pod.spec.as_ref().unwrap().containers[0]
            .env
            .clone()
            .unwrap_or_default();
        let world = env
            .iter()
            .find(|e| e.name == "WORLD_SIZE")
            .and_then(|e| e.value.clone());
        assert_eq!(world.as_deref(), Some("16"));
    }
    let nodes: BTreeSet<_> = pods.iter().filter_map(node_of).collect();
    assert_eq!(
        nodes.len(),
        2,
        "best fit: each 8-GPU replica fills a whole node"
    );
    assert_eq!(status.nodes.len(), 2);
    Ok(())
}

#[tokio::test]
async fn green_preferred_job_defers_then_starts_when_supply_rises() -> anyhow::Result<()> {
    let mut s = Scenario::start("deferred", OPERATOR).await?;
    create_gpu_nodes(&s.client, "solar", "solar", 2, 8).await?;
    // Green power only three hours from now (UTC hour profile), none before.
    let hour_index = jiff::Timestamp::now().as_second() / 3600;
    let now_hour = hour_index.rem_euclid(24) as usize;
    let green_hour = (now_hour + 3) % 24;
    let mut hourly = vec![0.0; 24];
    hourly[green_hour] = 1000.0;
    hourly[(green_hour + 1) % 24] = 1000.0;
    s.site("solar", json!({"hourlyKw": hourly})).await?;
    s.start_operator(&[])?;
    let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(12);
    s.job("train", 1, 8, json!({"energy": {"policy": "GreenPreferred", "deadline": deadline.to_string(), "estimatedDuration": "1h"}}), json!({}))
        .await?;

    let job = s.wait_phase("train", JobPhase::Deferred, 60).await?;
    let status = job.status.unwrap();
    let expected = status
        .expected_start_time
        .expect("a deferred job says when it expects to start")
        .0;
    // From the hour the profile was built in: the clock may have passed an hour since.
    let green_start = (hour_index + 3) * 3600;
    assert_eq!(
        expected.as_second(),
        green_start,
        "starts with the green hours"
    );
    assert_eq!(status.reason.as_deref(), Some("DeferredForRenewables"));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("kW"),
        "the reason carries its numbers: {message}"
    );
    assert!(
        s.pods_of("train").await?.is_empty(),
        "a deferred job holds no pods"
    );

    s.set_site_supply("solar", json!({"hourlyKw": null, "constantKw": 1000.0}))
        .await?;
    let job = s.wait_phase("train", JobPhase::Running, 60).await?;
    assert_eq!(job.status.unwrap().reason.as_deref(), Some("PlacedGreen"));
    Ok(())
}

#[tokio::test]
async fn latest_start_places_the_job_without_green_power_and_says_why() -> anyhow::Result<()> {
    let mut s = Scenario::start("latest-start", OPERATOR).await?;
    create_gpu_nodes(&s.client, "dark", "dark", 1, 8).await?;
    // Green power three hours from now; none before.
    let now_hour = (jiff::Timestamp::now().as_second() / 3600).rem_euclid(24) as usize;
    let mut hourly = vec![0.0; 24];
    hourly[(now_hour + 3) % 24] = 1000.0;
    s.site("dark", json!({"hourlyKw": hourly})).await?;
    s.start_operator(&[])?;
    s.job("urgent", 1, 8, json!({"energy": {"policy": "GreenPreferred", "maxDelay": "6h", "estimatedDuration": "1h"}}), json!({}))
        .await?;
    let deferred = s.wait_phase("urgent", JobPhase::Deferred, 30).await?;
    assert!(deferred.status.unwrap().expected_start_time.is_some());

    // The owner cannot wait that long after all: maxDelay becomes 1s, so the latest
    // start (creation + maxDelay) is in the past, and the job must start although no
    // renewable power is there. The creation time has whole seconds: wait until even
    // the latest start it rounds to has passed, or the engine rightly places the job
    // "best available" before its latest start.
    let created = deferred
        .metadata
        .creation_timestamp
        .as_ref()
        .expect("the API server sets creationTimestamp")
        .0;
    let past_latest_start = created + jiff::SignedDuration::from_secs(2);
    let wait = jiff::Timestamp::now().duration_until(past_latest_start);
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
    let patch = json!({"spec": {"energy": {"maxDelay": "1s"}}});
    s.jobs()
        .patch("urgent", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let job = s.wait_phase("urgent", JobPhase::Running, 60).await?;
    let status = job.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("PlacedAtLatestStart"));
    let message = status.message.unwrap_or_default();
    assert!(
        message.to_lowercase().contains("latest start"),
        "says why: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn gang_waits_whole_until_capacity_frees_and_never_partially_binds() -> anyhow::Result<()> {
    let mut s = Scenario::start("gang", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 4, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    // Someone else's pod holds 4 GPUs on one node: only 3 nodes have 8 free.
    let blocker: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "blocker"},
        "spec": {"nodeName": "site-3", "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}
    }))?;
    s.pods().create(&PostParams::default(), &blocker).await?;
    s.start_operator(&[])?;
    s.job(
        "big",
        4,
        8,
        json!({"energy": {"policy": "Immediate"}}),
        json!({}),
    )
    .await?;

    let jobs = s.jobs();
    wait::until(
        "the gang to wait for capacity",
        Duration::from_secs(30),
        || async {
            let status = jobs.get("big").await?.status.unwrap_or_default();
            Ok(match (status.phase, status.reason.as_deref()) {
                (JobPhase::Pending, Some("WaitingForCapacity")) => Ok(()),
                other => Err(format!("{other:?} {:?}", status.message)),
            })
        },
    )
    .await?;
    // Through three more scheduling cycles, no pod of the gang is ever bound.
    let operator = s.operator();
    let from = cycles(operator).await?;
    let bound = wait::until(
        "three more scheduling cycles, or a bound pod",
        Duration::from_secs(30),
        || async {
            let bound: Vec<String> = s
                .pods_of("big")
                .await?
                .into_iter()
                .filter(|p| node_of(p).is_some())
                .map(|p| p.name_any())
                .collect();
            let done = cycles(operator).await?;
            Ok(if !bound.is_empty() || done >= from + 3 {
                Ok(bound)
            } else {
                Err(format!("{} cycles so far", done - from))
            })
        },
    )
    .await?;
    assert!(bound.is_empty(), "no partial gang may hold GPUs: {bound:?}");
    let status = s.jobs().get("big").await?.status.unwrap();
    assert_eq!(
        (status.phase, status.reason.as_deref()),
        (JobPhase::Pending, Some("WaitingForCapacity")),
        "{:?}",
        status.message
    );

    s.pods().delete("blocker", &DeleteParams::default()).await?;
    s.wait_phase("big", JobPhase::Running, 60).await?;
    let pods = s.pods_of("big").await?;
    assert_eq!(pods.len(), 4);
    assert_eq!(
        pods.iter()
            .filter_map(node_of)
            .collect::<BTreeSet<_>>()
            .len(),
        4
    );
    Ok(())
}

#[tokio::test]
async fn failed_replica_restarts_the_gang_until_the_backoff_limit() -> anyhow::Result<()> {
    let mut s = Scenario::start("backoff", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 2, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    s.start_operator(&[])?;
    s.job(
        "flaky",
        2,
        8,
        json!({"energy": {"policy": "Immediate"}, "runPolicy": {"backoffLimit": 1}}),
        json!({"verdant.dev/kwok-fail-after": "2s"}),
    )
    .await?;
    let job = s.wait_phase("flaky", JobPhase::Failed, 90).await?;
    let status = job.status.unwrap();
    assert_eq!(status.restarts, 1, "restarted once, then gave up");
    assert_eq!(status.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert!(status.message.unwrap_or_default().contains("failed"));
    let events =
        Api::<k8s_openapi::api::core::v1::Event>::namespaced(s.client.clone(), s.ns.name())
            .list(&ListParams::default())
            .await?;
    let reasons: BTreeSet<_> = events
        .items
        .iter()
        .filter_map(|e| e.reason.clone())
        .collect();
    assert!(reasons.contains("GangRestart"), "events: {reasons:?}");
    assert!(
        reasons.contains("BackoffLimitExceeded"),
        "events: {reasons:?}"
    );
    let active: Vec<_> = s
        .pods_of("flaky")
        .await?
        .into_iter()
        .filter(|p| phase_of(p) == "Running")
        .collect();
    assert!(active.is_empty(), "a failed job holds no running pods");
    Ok(())
}

#[tokio::test]
async fn suspend_removes_the_pods_and_resume_brings_them_back() -> anyhow::Result<()> {
    let mut s = Scenario::start("suspend", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 2, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    s.start_operator(&[])?;
    s.job(
        "pausable",
        2,
        8,
        json!({"energy": {"policy": "Immediate"}}),
        json!({}),
    )
    .await?;
    s.wait_phase("pausable", JobPhase::Running, 60).await?;

    let suspend = |value: bool| json!({"spec": {"runPolicy": {"suspend": value}}});
    s.jobs()
        .patch(
            "pausable",
            &PatchParams::default(),
            &Patch::Merge(&suspend(true)),
        )
        .await?;
    let job = s.wait_phase("pausable", JobPhase::Suspended, 30).await?;
    assert_eq!(
        job.status.unwrap().reason.as_deref(),
        Some("SuspendedByUser")
    );
    let pods = s.pods();
    wait::until("the pods to be gone", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move {
            let left = pods
                .list(&ListParams::default().labels("verdant.dev/job-name=pausable"))
                .await?
                .items
                .len();
            Ok(if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} pods left"))
            })
        }
    })
    .await?;

    s.jobs()
        .patch(
            "pausable",
            &PatchParams::default(),
            &Patch::Merge(&suspend(false)),
        )
        .await?;
    s.wait_phase("pausable", JobPhase::Running, 60).await?;
    assert_eq!(s.pods_of("pausable").await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn completed_job_succeeds_and_its_ttl_deletes_it() -> anyhow::Result<()> {
    let mut s = Scenario::start("complete", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 1, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    s.start_operator(&[])?;
    s.job(
        "short",
        1,
        8,
        json!({"energy": {"policy": "Immediate"}, "runPolicy": {"ttlSecondsAfterFinished": 3}}),
        json!({"verdant.dev/kwok-succeed-after": "3s"}),
    )
    .await?;
    let job = s.wait_phase("short", JobPhase::Succeeded, 60).await?;
    let status = job.status.unwrap();
    assert!(status.completion_time.is_some());
    assert!(status.start_time.is_some());
    s.wait_deleted("short", "the TTL to delete the job").await?;
    assert!(
        s.pods_of("short").await?.is_empty(),
        "the finalizer removed the pods"
    );
    Ok(())
}

#[tokio::test]
async fn operator_killed_during_gang_creation_leaves_a_whole_gang_after_restart()
-> anyhow::Result<()> {
    let mut s = Scenario::start("restart", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 2, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    s.start_operator(&[])?;
    s.job(
        "wide",
        16,
        1,
        json!({"energy": {"policy": "Immediate"}}),
        json!({}),
    )
    .await?;

    // Kill the operator the moment the first pod of the gang exists.
    let pods = s.pods();
    wait::until("the first pod of the gang", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let n = pods
                .list(&ListParams::default().labels("verdant.dev/job-name=wide"))
                .await?
                .items
                .len();
            Ok(if n > 0 {
                Ok(())
            } else {
                Err("no pod yet".into())
            })
        }
    })
    .await?;
    if let Some(operator) = s.operator.as_mut() {
        operator.kill();
    }
    let at_kill = s.pods_of("wide").await?;
    let bound_at_kill = at_kill.iter().filter(|p| node_of(p).is_some()).count();
    assert!(
        bound_at_kill == 0 || at_kill.len() == 16,
        "pods are bound only once all 16 exist: {} pods, {bound_at_kill} bound",
        at_kill.len()
    );

    s.start_operator(&[])?;
    s.wait_phase("wide", JobPhase::Running, 60).await?;
    let pods = s.pods_of("wide").await?;
    let names: BTreeSet<_> = pods.iter().map(|p| p.name_any()).collect();
    assert_eq!(pods.len(), 16, "no duplicates, none missing");
    assert_eq!(names, (0..16).map(|i| format!("wide-{i}")).collect());
    assert!(pods.iter().all(|p| node_of(p).is_some()));
    let job = s.jobs().get("wide").await?;
    assert_eq!(
        job.status.unwrap().restarts,
        0,
        "an operator restart is not a gang restart"
    );
    Ok(())
}

#[tokio::test]
async fn two_jobs_that_each_need_the_whole_cluster_both_finish_in_turn() -> anyhow::Result<()> {
    let mut s = Scenario::start("no-deadlock", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 2, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    s.start_operator(&[])?;
    let done = json!({"verdant.dev/kwok-succeed-after": "4s"});
    s.job(
        "first",
        2,
        8,
        json!({"energy": {"policy": "Immediate"}, "priority": 1}),
        done.clone(),
    )
    .await?;
    s.job(
        "second",
        2,
        8,
        json!({"energy": {"policy": "Immediate"}}),
        done,
    )
    .await?;

    // Sample while they run: never more GPUs bound than the cluster has.
    let pods = s.pods();
    let nodes: Api<Node> = Api::all(s.client.clone());
    let mut max_bound_gpus = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let all = pods.list(&ListParams::default()).await?.items;
        let bound = all
            .iter()
            .filter(|p| {
                node_of(p).is_some() && !matches!(phase_of(p).as_str(), "Succeeded" | "Failed")
            })
            .count()
            * 8;
        max_bound_gpus = max_bound_gpus.max(bound);
        let jobs = s.jobs().list(&ListParams::default()).await?.items;
        let finished = jobs
            .iter()
            .filter(|j| {
                j.status
                    .as_ref()
                    .is_some_and(|s| s.phase == JobPhase::Succeeded)
            })
            .count();
        if finished == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both jobs should finish; phases: {:?}",
            jobs.iter()
                .map(|j| (j.name_any(), j.status.as_ref().map(|s| s.phase)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(nodes.list(&ListParams::default()).await?.items.len(), 2);
    assert!(
        max_bound_gpus <= 16,
        "over-committed: {max_bound_gpus} GPUs bound on 16"
    );
    let first = s.jobs().get("first").await?.status.unwrap();
    let second = s.jobs().get("second").await?.status.unwrap();
    assert!(
        first.completion_time.unwrap().0 <= second.start_time.unwrap().0,
        "the higher-priority job ran first and the other started after it finished"
    );
    Ok(())
}

#[tokio::test]
async fn jobs_the_operator_cannot_act_on_get_a_warning_hold_nothing_and_delete_cleanly()
-> anyhow::Result<()> {
    let mut s = Scenario::start("rejected", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 1, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    s.start_operator(&[])?;

    // Pods the API server rejects: the job fails at once, with the reason in status
    // and a Warning Event, and frees its GPUs.
    let mut spec = json!({"energy": {"policy": "Immediate"}});
    jobs::merge(&mut spec, rejected_template());
    s.job("broken", 1, 8, spec, json!({})).await?;
    let job = s.wait_phase("broken", JobPhase::Failed, 60).await?;
    let status = job.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("FailedCreate"));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("broken-0") && message.contains("spec.containers[0].name"),
        "{message}"
    );
    assert!(
        status.nodes.is_empty(),
        "holds no nodes: {:?}",
        status.nodes
    );
    let note = s.wait_event("broken", "Warning", "FailedCreate").await?;
    assert!(note.contains("spec.containers[0].name"), "{note}");
    let invalid = s
        .operator()
        .metric("verdant_reconcile_errors_total{error=\"invalid\"}")
        .await?;
    assert!(
        invalid.is_some_and(|n| n >= 1.0),
        "counted as invalid: {invalid:?}"
    );

    // Its GPUs are free: a job needing all of them runs.
    s.job(
        "next",
        1,
        8,
        json!({"energy": {"policy": "Immediate"}}),
        json!({}),
    )
    .await?;
    s.wait_phase("next", JobPhase::Running, 60).await?;

    // A job that can never run as specified: Unschedulable, with a Warning Event.
    s.job(
        "too-wide",
        1,
        16,
        json!({"energy": {"policy": "Immediate"}}),
        json!({}),
    )
    .await?;
    s.wait_event("too-wide", "Warning", "Unschedulable").await?;

    // The operator deletes what it owns: the failed job goes, finalizer and all.
    s.jobs().delete("broken", &DeleteParams::default()).await?;
    s.wait_deleted("broken", "the failed job to be deleted")
        .await?;
    Ok(())
}

#[tokio::test]
async fn suspended_time_does_not_count_toward_active_deadline_seconds() -> anyhow::Result<()> {
    let mut s = Scenario::start("active-deadline", OPERATOR).await?;
    create_gpu_nodes(&s.client, "site", "site", 1, 8).await?;
    s.site("site", json!({"constantKw": 1000.0})).await?;
    s.start_operator(&[])?;
    let limit_s = 10;
    s.job(
        "timed",
        1,
        8,
        json!({"energy": {"policy": "Immediate"}, "runPolicy": {"activeDeadlineSeconds": limit_s}}),
        json!({}),
    )
    .await?;
    let job = s.wait_phase("timed", JobPhase::Running, 60).await?;
    let first_start = job.status.unwrap().start_time.expect("started").0;

    let suspend = |value: bool| json!({"spec": {"runPolicy": {"suspend": value}}});
    s.jobs()
        .patch(
            "timed",
            &PatchParams::default(),
            &Patch::Merge(&suspend(true)),
        )
        .await?;
    let job = s.wait_phase("timed", JobPhase::Suspended, 30).await?;
    let status = job.status.unwrap();
    assert_eq!(
        status.site.as_deref(),
        Some("site"),
        "the site it ran at stays"
    );
    assert_eq!(status.start_time, None, "the run clock stopped");

    // Suspended past the limit: had the clock kept running, the job would be over.
    let over = first_start + jiff::SignedDuration::from_secs(limit_s + 2);
    let jobs = s.jobs();
    wait::until(
        "the limit to pass while suspended",
        Duration::from_secs(30),
        || {
            let jobs = jobs.clone();
            async move {
                let phase = jobs.get("timed").await?.status.unwrap_or_default().phase;
                anyhow::ensure!(phase == JobPhase::Suspended, "left Suspended: {phase:?}");
                Ok(if jiff::Timestamp::now() > over {
                    Ok(())
                } else {
                    Err(format!("{phase:?}"))
                })
            }
        },
    )
    .await?;
    let resumed_at = jiff::Timestamp::now();
    s.jobs()
        .patch(
            "timed",
            &PatchParams::default(),
            &Patch::Merge(&suspend(false)),
        )
        .await?;
    let status = wait::until(
        "the job to run again (or fail)",
        Duration::from_secs(60),
        || {
            let jobs = jobs.clone();
            async move {
                let status = jobs.get("timed").await?.status.unwrap_or_default();
                Ok(match status.phase {
                    JobPhase::Running | JobPhase::Failed => Ok(status),
                    other => Err(format!("{other:?} {:?}", status.reason)),
                })
            }
        },
    )
    .await?;
    assert_eq!(
        (status.phase, status.reason.as_deref()),
        (JobPhase::Running, Some("Resumed")),
        "{:?}",
        status.message
    );
    let second_start = status.start_time.expect("started again").0;
    assert!(
        second_start.as_second() >= resumed_at.as_second(),
        "the clock starts again at the resume: {second_start} < {resumed_at}"
    );

    // Then the limit ends it, counted from the resume.
    let job = s.wait_phase("timed", JobPhase::Failed, 60).await?;
    let status = job.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    let failed_at = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .unwrap()
        .last_transition_time
        .0;
    assert!(
        failed_at.as_second() - second_start.as_second() >= limit_s,
        "ran {} s after the resume",
        failed_at.as_second() - second_start.as_second()
    );
    Ok(())
}

#[tokio::test]
async fn a_deadline_already_past_is_accepted_warned_and_overdue() -> anyhow::Result<()> {
    let mut s = Scenario::start("past-deadline", OPERATOR).await?;
    create_gpu_nodes(&s.client, "dark", "dark", 1, 8).await?;
    s.site("dark", json!({"constantKw": 0.0})).await?;
    s.start_operator(&[])?;
    let deadline = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    s.job(
        "late",
        1,
        8,
        json!({"energy": {"policy": "GreenPreferred", "deadline": deadline.to_string(), "estimatedDuration": "1h"}}),
        json!({}),
    )
    .await?;
    // Overdue: it starts without green power, at once.
    let job = s.wait_phase("late", JobPhase::Running, 60).await?;
    let status = job.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("PlacedAtLatestStart"));
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "DeadlineInPast")
        .expect("a DeadlineInPast condition");
    assert_eq!(condition.status, "True");
    let note = s.wait_event("late", "Warning", "DeadlineInPast").await?;
    assert!(note.contains("already past"), "{note}");
    Ok(())
}

/// An operator restarted while a gang runs acts only once every cache holds its first
/// full list. Until its pod cache is synced a running gang's pods are missing from it, and
/// a reconcile would take the gang for lost and restart it (found at 5,000 nodes: a
/// restarted operator lists 40,000 pods for over a minute, and restarted 285 running
/// gangs meanwhile). Here the restarted operator may not list pods at first (its
/// ServiceAccount lacks the right), so its pod cache cannot sync until it is granted.
#[tokio::test]
async fn a_restarted_operator_acts_only_once_it_has_listed_every_pod() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use verdant_tests::service_account::{request_token, write_token_kubeconfig};

    let mut s = Scenario::start("restart-sync", OPERATOR).await?;
    create_gpu_nodes(&s.client, "sunny", "sunny", 2, 8).await?;
    s.site("sunny", json!({"constantKw": 500.0})).await?;
    s.start_operator(&[])?;
    s.job(
        "train",
        2,
        8,
        json!({"energy": {"policy": "Immediate"}}),
        json!({}),
    )
    .await?;
    s.wait_phase("train", JobPhase::Running, 60).await?;
    let uids = |pods: Vec<Pod>| pods.iter().filter_map(|p| p.uid()).collect::<BTreeSet<_>>();
    let before = uids(s.pods_of("train").await?);
    assert_eq!(before.len(), 2);
    let stopped = s
        .operator
        .take()
        .expect("started")
        .terminate(Duration::from_secs(20))?;
    assert!(stopped.success(), "{stopped}");

    // The restarted operator's account: what it needs (generously), but listing pods.
    let account = "restarted-operator";
    let namespace = s.ns.name().to_owned();
    Api::<ServiceAccount>::namespaced(s.client.clone(), &namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": account}}))?,
        )
        .await?;
    let grant = |role: &str, rules: Value| {
        let client = s.client.clone();
        let (role, namespace) = (role.to_owned(), namespace.clone());
        async move {
            Api::<ClusterRole>::all(client.clone())
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": role}, "rules": rules}))?,
                )
                .await?;
            Api::<ClusterRoleBinding>::all(client)
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({
                        "metadata": {"name": role},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
                    }))?,
                )
                .await?;
            anyhow::Ok(())
        }
    };
    grant(
        "restarted-operator-all-but-listing-pods",
        json!([
            {"apiGroups": ["*"], "verbs": ["*"], "resources": [
                "trainingjobs", "trainingjobs/status", "trainingjobs/finalizers",
                "energysites", "energysites/status", "nodes", "services", "namespaces",
                "configmaps", "secrets", "events", "leases", "pods/binding", "workloads",
                "workloads/status", "resourceflavors", "workloadpriorityclasses",
                "admissionchecks", "multikueueconfigs", "multikueueclusters", "tokenreviews"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create", "delete", "patch"]},
        ]),
    )
    .await?;
    let token = request_token(&s.client, &namespace, account, &[], 3600, None).await?;
    let kubeconfig = write_token_kubeconfig(
        s.plane.kubeconfig(),
        &token,
        &s.plane.dir().join("restarted-operator.kubeconfig"),
    )?;
    let operator =
        OperatorProcess::start_with_kubeconfig(s.plane.dir(), &kubeconfig, OPERATOR, &[], &[])?;

    // Refused twice: the TrainingJob list (one job, asked at the same moment) came back
    // long before the second try, so an operator that acts on a half-filled cache has
    // reconciled the job by now.
    wait::until(
        "the restarted operator to be refused the pod list twice",
        Duration::from_secs(60),
        || async {
            let refused = (operator.log().lines())
                .filter(|l| l.contains("watch failed") && l.contains("pods"))
                .count();
            Ok(if refused >= 2 {
                Ok(())
            } else {
                Err(format!("refused {refused} times"))
            })
        },
    )
    .await?;
    let reconciles = || async {
        anyhow::Ok(
            operator
                .metric("verdant_reconciliations_total")
                .await?
                .unwrap_or(0.0),
        )
    };
    assert_eq!(
        reconciles().await?,
        0.0,
        "no job is reconciled before the pod cache is synced"
    );

    grant(
        "restarted-operator-listing-pods",
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]),
    )
    .await?;
    wait::until(
        "the restarted operator to reconcile the job",
        Duration::from_secs(90),
        || async {
            let n = reconciles().await?;
            Ok(if n >= 1.0 {
                Ok(())
            } else {
                Err(format!("{n} reconciles"))
            })
        },
    )
    .await?;
    let job = s.jobs().get("train").await?;
    let status = job.status.expect("a status");
    assert_eq!(status.phase, JobPhase::Running, "{status:?}");
    assert_eq!(status.restarts, 0, "{status:?}");
    assert_eq!(uids(s.pods_of("train").await?), before, "the same pods");
    Ok(())
}
