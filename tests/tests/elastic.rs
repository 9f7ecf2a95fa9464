//! Elastic TrainingJobs end to end: a real kube-apiserver, KWOK GPU nodes and
//! `verdant-operator run`. The job grows when its site's Static supply is patched up and
//! shrinks (not below `minReplicas`, replica 0 kept) when it is patched down; status,
//! pods and Events show each resize.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;
use verdant_crds::{JobPhase, TrainingJob};
use verdant_tests::jobs::{node_of, phase_of};
use verdant_tests::{Scenario, create_gpu_nodes, wait};

const OPERATOR: &str = env!("CARGO_BIN_EXE_e2e-operator");

/// Waits until the job's `status.size` is `size` and every pod of that size runs; returns
/// the job and the names of its pods (not being deleted).
async fn wait_size(
    s: &Scenario,
    job: &str,
    size: &str,
) -> anyhow::Result<(TrainingJob, BTreeSet<String>)> {
    wait::until(
        &format!("{job} running with size {size}"),
        Duration::from_secs(90),
        || async move {
            let current = s.jobs().get(job).await?;
            let status = current.status.clone().unwrap_or_default();
            let pods: Vec<_> = s
                .pods_of(job)
                .await?
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let running = pods.iter().filter(|p| phase_of(p) == "Running").count();
            let replicas = status.replicas.unwrap_or_default() as usize;
            if status.size.as_deref() == Some(size)
                && status.phase == JobPhase::Running
                && pods.len() == replicas
                && running == replicas
            {
                Ok(Ok((current, pods.iter().map(|p| p.name_any()).collect())))
            } else {
                Ok(Err(format!(
                    "size {:?}, phase {}, {} pods ({running} running): {:?}",
                    status.size,
                    status.phase,
                    pods.len(),
                    status.message
                )))
            }
        },
    )
    .await
}

#[tokio::test]
async fn an_elastic_job_grows_with_the_supply_and_shrinks_to_its_minimum() -> anyhow::Result<()> {
    let mut s = Scenario::start("elastic", OPERATOR).await?;
    create_gpu_nodes(&s.client, "solar", "solar", 4, 8).await?;
    s.site("solar", json!({"constantKw": 0.0})).await?;
    s.start_operator(&[])?;
    // Immediate: it starts without green power, at its starting size.
    s.job(
        "train",
        2,
        8,
        json!({"energy": {"policy": "Immediate"}, "elastic": {"minReplicas": 2, "maxReplicas": 4}}),
        json!({}),
    )
    .await?;
    let (job, pods) = wait_size(&s, "train", "2/2-4").await?;
    let status = job.status.unwrap();
    assert_eq!(
        (status.min_replicas, status.max_replicas),
        (Some(2), Some(4))
    );
    assert_eq!(pods, BTreeSet::from(["train-0".into(), "train-1".into()]));
    let first = s.pods().get("train-0").await?;
    let env: Vec<(String, String)> = first.spec.as_ref().unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let var = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(var("PET_NNODES"), Some("2:4"));
    assert_eq!(var("PET_RDZV_BACKEND"), Some("c10d"));
    assert_eq!(
        var("RANK"),
        None,
        "torchrun assigns ranks to elastic workers"
    );
    let replica0_node = node_of(&first);

    // Green power: the job grows to its maximum on the site's free GPUs.
    s.set_site_supply("solar", json!({"constantKw": 1000.0}))
        .await?;
    let grown = s.wait_event("train", "Normal", "ScaledUp").await?;
    assert!(grown.contains("from 2 to 4 replicas"), "{grown}");
    assert!(
        grown.contains("kW"),
        "the reason carries its numbers: {grown}"
    );
    let (job, pods) = wait_size(&s, "train", "4/2-4").await?;
    let status = job.status.unwrap();
    assert_eq!(status.nodes.len(), 4);
    assert_eq!(status.site.as_deref(), Some("solar"));
    assert_eq!(pods.len(), 4);
    for pod in s.pods_of("train").await? {
        let node = node_of(&pod).expect("bound");
        assert!(node.starts_with("solar-"), "{} on {node}", pod.name_any());
    }

    // The supply drops: the job shrinks back to its minimum, never below, keeping replica 0.
    s.set_site_supply("solar", json!({"constantKw": 0.0}))
        .await?;
    let shrunk = s.wait_event("train", "Normal", "ScaledDown").await?;
    assert!(shrunk.contains("to 2 replicas"), "{shrunk}");
    let (job, pods) = wait_size(&s, "train", "2/2-4").await?;
    assert_eq!(pods, BTreeSet::from(["train-0".into(), "train-1".into()]));
    let first = s.pods().get("train-0").await?;
    assert_eq!(node_of(&first), replica0_node, "replica 0 was never moved");
    assert_eq!(job.status.unwrap().reason.as_deref(), Some("ScaledDown"));
    Ok(())
}

#[tokio::test]
async fn bad_elastic_bounds_are_rejected_naming_the_field() -> anyhow::Result<()> {
    let plane = verdant_tests::ControlPlane::shared();
    let client = plane.client().await?;
    let ns = verdant_tests::TestNamespace::create(plane, &client, "elastic-bounds").await?;
    let jobs: kube::Api<TrainingJob> = kube::Api::namespaced(client.clone(), ns.name());
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let job = |replicas: u32, min: i64, max: i64| {
        verdant_tests::jobs::training_job(
            "elastic",
            replicas,
            1,
            json!({"elastic": {"minReplicas": min, "maxReplicas": max}}),
            json!({}),
        )
    };
    // The bounds the API accepts, then (what is wrong, object, text the message must contain).
    jobs.create(&dry_run, &serde_json::from_value(job(2, 1, 4))?)
        .await?;
    let cases = [
        (
            "min above replicas",
            job(2, 3, 4),
            "spec.elastic.minReplicas",
        ),
        (
            "max below replicas",
            job(3, 1, 2),
            "spec.elastic.maxReplicas",
        ),
        ("min 0", job(2, 0, 4), "spec.elastic.minReplicas"),
        ("max 1025", job(2, 1, 1025), "spec.elastic.maxReplicas"),
    ];
    let mut failures = Vec::new();
    for (what, object, expected) in cases {
        match jobs
            .create(&dry_run, &serde_json::from_value(object)?)
            .await
        {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expected) => {}
            Err(other) => failures.push(format!(
                "{what}: expected a 422 naming {expected}, got {other}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A new CRD reaches the OpenAPI document `kubectl explain` reads a moment after it
    // is Established.
    wait::until(
        "kubectl explain trainingjob.spec.elastic",
        Duration::from_secs(60),
        || async move {
            Ok(
                match plane.kubectl_output(&["explain", "trainingjob.spec.elastic"]) {
                    Ok(text) if text.contains("c10d rendezvous") => Ok(()),
                    Ok(text) => Err(text),
                    Err(e) => Err(e.to_string()),
                },
            )
        },
    )
    .await?;
    Ok(())
}
