//! End-to-end placement benchmark: a 500-node KWOK cluster (8 GPUs per node, 5 sites),
//! 200 TrainingJobs created at once, and the time until every pod of every gang is bound.
//!
//! Run with `make bench-e2e` (release build). It starts its own control plane and the
//! operator (`e2e-operator`, built next to this binary) and prints a table.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use verdant_crds::{EnergySite, TrainingJob};
use verdant_tests::{ControlPlane, OperatorProcess, TestNamespace, create_gpu_nodes};

const SITES: u32 = 5;
const NODES_PER_SITE: u32 = 100;
const JOBS: u32 = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let operator_bin = std::env::current_exe()?.with_file_name("e2e-operator");
    anyhow::ensure!(
        operator_bin.exists(),
        "{} not found: build with `cargo build --release -p verdant-tests --bins`",
        operator_bin.display()
    );
    eprintln!(">> starting a control plane");
    let plane = ControlPlane::start_owned();
    let client = plane.client().await?;
    let ns = TestNamespace::create(&plane, &client, "bench").await?;
    let started = Instant::now();
    for s in 0..SITES {
        let site = format!("site-{s}");
        create_gpu_nodes(&client, &site, &site, NODES_PER_SITE, 8).await?;
        let manifest: EnergySite = serde_json::from_value(json!({
            "apiVersion": "verdant.dev/v1alpha1", "kind": "EnergySite", "metadata": {"name": site},
            "spec": {"nodeSelector": {"matchLabels": {"verdant.dev/site": site}},
                     "location": {"latitude": 40.0, "longitude": 0.0},
                     "forecast": {"provider": "Static", "static": {"constantKw": 100000.0}}}
        }))?;
        Api::<EnergySite>::all(client.clone())
            .create(&PostParams::default(), &manifest)
            .await?;
        eprintln!(">> site {site}: {NODES_PER_SITE} nodes");
    }
    eprintln!(
        ">> {} nodes in {:.1}s",
        SITES * NODES_PER_SITE,
        started.elapsed().as_secs_f64()
    );
    let _operator = OperatorProcess::start(
        &plane,
        operator_bin.to_str().context("path")?,
        &["--log-format", "json"],
    )?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Mixed gang sizes: 1×1, 1×4, 1×8, 2×8, 4×8 (3,440 GPUs of 4,000).
    let shapes = [(1, 1), (1, 4), (1, 8), (2, 8), (4, 8)];
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let mut expected_pods = 0usize;
    let mut bound_at: HashMap<String, Duration> = HashMap::new();
    let watch = watcher(pods.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let create_started = Instant::now();
    let mut created_at = HashMap::new();
    for i in 0..JOBS {
        let (replicas, gpus) = shapes[i as usize % shapes.len()];
        expected_pods += replicas;
        let job: TrainingJob = serde_json::from_value(json!({
            "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": format!("job-{i}")},
            "spec": {"replicas": replicas, "gpusPerReplica": gpus, "energy": {"policy": "Immediate"},
                     "template": {"spec": {"containers": [{"name": "t", "image": "x"}]}}}
        }))?;
        jobs.create(&PostParams::default(), &job).await?;
        created_at.insert(format!("job-{i}"), create_started.elapsed());
    }
    let create_s = create_started.elapsed().as_secs_f64();
    eprintln!(
        ">> created {JOBS} jobs ({expected_pods} pods) in {create_s:.2}s; waiting for every pod to be bound"
    );
    let mut watch = watch;
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound_at.len() < expected_pods {
        let next = tokio::time::timeout_at(deadline.into(), watch.next()).await;
        let Ok(Some(event)) = next else {
            anyhow::bail!(
                "timed out: {} of {expected_pods} pods bound",
                bound_at.len()
            )
        };
        let pod = event?;
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some()
        {
            bound_at
                .entry(pod.name_any())
                .or_insert_with(|| create_started.elapsed());
        }
    }
    let all_bound_s = create_started.elapsed().as_secs_f64();
    // Per-job latency: creation to its last pod bound.
    let mut job_latency: Vec<f64> = created_at
        .iter()
        .map(|(job, created)| {
            let last = bound_at
                .iter()
                .filter(|(pod, _)| pod.rsplit_once('-').is_some_and(|(j, _)| j == job))
                .map(|(_, t)| *t)
                .max()
                .unwrap_or_default();
            last.saturating_sub(*created).as_secs_f64()
        })
        .collect();
    job_latency.sort_by(f64::total_cmp);
    let pct = |p: f64| job_latency[((job_latency.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "| nodes | jobs | pods | create all (s) | all pods bound (s) | pods/s | job latency p50 (s) | p95 (s) | max (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {JOBS} | {expected_pods} | {create_s:.2} | {all_bound_s:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
        SITES * NODES_PER_SITE,
        expected_pods as f64 / all_bound_s,
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
    Ok(())
}
