//! Verdant doing its job on a real node: installed by Helm from the images built here, the
//! operator in a pod on in-cluster credentials, the agent DaemonSet reporting through the
//! chart's Service, and TrainingJobs whose pods run torchrun with the environment Verdant
//! injects, find each other through CoreDNS, train over gloo, checkpoint on SIGTERM when
//! suspended, and are cleaned up by the garbage collector.
//!
//! The node is `hack/node.sh`'s (containerd, runc, CNI bridge, kubelet, kube-proxy,
//! CoreDNS); the tests share it and take turns (see `verdant_tests::real_node`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use verdant_crds::{JobPhase, TrainingJob};
use verdant_tests::jobs::phase_of;
use verdant_tests::real_node::{
    NAMESPACE, NODE, NODE_DATA_DIR, RealCluster, SITE_KW, SiteSupply, job_pods, node_gpus_free,
    pod_log, pods_in_phase, trainer_runs, turn, wait_size, wait_trained,
};
use verdant_tests::{TestNamespace, wait};

const MINUTE: Duration = Duration::from_secs(60);

/// A TrainingJob of `replicas` × 1 GPU, placed at once, with `pod_spec` as its pods' spec
/// and one gang restart allowed.
fn training_job(name: &str, replicas: i32, pod_spec: Value) -> anyhow::Result<TrainingJob> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "gpusPerReplica": 1,
            "energy": {"policy": "Immediate"},
            "runPolicy": {"backoffLimit": 1},
            "template": {"spec": pod_spec}
        }
    }))?)
}

/// The trainer container: torchrun (the image's entrypoint) on train.py, with `env`.
fn trainer(cluster: &RealCluster, env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    json!({
        "name": "trainer",
        "image": cluster.trainer_image(),
        "imagePullPolicy": "Never",
        "env": env,
        "resources": {"limits": {"nvidia.com/gpu": "1"}}
    })
}

#[tokio::test]
async fn helm_install_runs_the_operator_and_agent_as_pods_on_the_real_node() -> anyhow::Result<()> {
    let _turn = turn().await;
    let cluster = RealCluster::get();
    let started = Instant::now();
    let client = cluster.plane().client().await?;

    // The operator: Ready through its own /readyz (the chart's readinessProbe, probed by the
    // kubelet), with in-cluster config and the chart's ServiceAccount.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let operator = deployments.get("verdant-operator").await?;
    let status = operator.status.unwrap_or_default();
    assert_eq!(status.ready_replicas, Some(1), "{status:?}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let operator_pods = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await?;
    let [operator_pod] = operator_pods.items.as_slice() else {
        panic!(
            "one operator pod: {:?}",
            operator_pods
                .items
                .iter()
                .map(|p| p.name_any())
                .collect::<Vec<_>>()
        );
    };
    let spec = operator_pod.spec.clone().unwrap_or_default();
    assert_eq!(spec.node_name.as_deref(), Some(NODE));
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some("verdant-operator")
    );
    let container = &spec.containers[0];
    assert!(
        container
            .image
            .as_deref()
            .is_some_and(|i| i.starts_with("ghcr.io/verdant-dev/verdant-operator:")),
        "the chart's default image: {:?}",
        container.image
    );
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref());
    assert_eq!(readiness.and_then(|h| h.path.as_deref()), Some("/readyz"));
    let conditions = operator_pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{conditions:?}"
    );
    let log = pod_log(&pods, &operator_pod.name_any()).await?;
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something:\n{log}"
    );

    // The agent: the DaemonSet's pod on the real node (the only node with
    // nvidia.com/gpu.present), simulated backend.
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let agents = daemonsets.get("verdant-agent").await?;
    let agent_status = agents.status.unwrap_or_default();
    assert_eq!(agent_status.number_ready, 1, "{agent_status:?}");
    let agent_pods = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=agent"))
        .await?;
    let [agent_pod] = agent_pods.items.as_slice() else {
        panic!("one agent pod");
    };
    assert_eq!(phase_of(agent_pod), "Running");
    assert_eq!(
        agent_pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(NODE)
    );
    // Ready through its own /readyz (the simulated backend's pods of the node listed),
    // probed by the kubelet: numberReady above counts only what that probe passed.
    let agent_readiness = agent_pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.readiness_probe.as_ref())
        .and_then(|p| p.http_get.as_ref());
    assert_eq!(
        agent_readiness.and_then(|h| h.path.as_deref()),
        Some("/readyz")
    );

    // Its reports reach the operator through the chart's Service, with the kubelet's
    // projected token, and the ingest stores them: the operator's own metrics, read
    // through the API server's Service proxy.
    let metrics_path =
        format!("/api/v1/namespaces/{NAMESPACE}/services/verdant-operator:http/proxy/metrics");
    let plane = cluster.plane();
    let stored = wait::until("the operator to store an agent report", 2 * MINUTE, || {
        let path = metrics_path.clone();
        async move {
            let text = plane.kubectl_output(&["get", "--raw", &path])?;
            let stored = text
                .lines()
                .find(|l| {
                    l.starts_with("verdant_ingest_reports_total{")
                        && l.contains("outcome=\"stored\"")
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            let rejected: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("verdant_ingest_rejected_total{"))
                .collect();
            Ok(if stored > 0.0 {
                Ok(stored)
            } else {
                Err(format!("no report stored yet; rejected: {rejected:?}"))
            })
        }
    })
    .await?;
    assert!(stored >= 1.0);
    let agent_log = pod_log(&pods, &agent_pod.name_any()).await?;
    assert!(
        !agent_log.to_lowercase().contains("forbidden") && !agent_log.contains("401"),
        "the agent was refused:\n{agent_log}"
    );
    println!(
        "helm_install_runs_the_operator_and_agent_as_pods_on_the_real_node: {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn two_replicas_train_with_ddp_over_gloo_and_succeed() -> anyhow::Result<()> {
    let _turn = turn().await;
    let cluster = RealCluster::get();
    let started = Instant::now();
    let client = cluster.plane().client().await?;
    let ns = TestNamespace::create(cluster.plane(), &client, "ddp").await?;
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());

    let job = training_job(
        "ddp",
        2,
        json!({"containers": [trainer(cluster, &[("STEPS", "20")])]}),
    )?;
    jobs.create(&PostParams::default(), &job).await?;

    let succeeded = wait::job_in_phase(&jobs, "ddp", JobPhase::Succeeded, 4 * MINUTE).await?;
    assert_eq!(
        succeeded.status.unwrap_or_default().nodes,
        vec![NODE.to_owned(); 2]
    );
    let finished = pods_in_phase(&pods, "ddp", 2, "Succeeded", MINUTE).await?;
    let master = format!("ddp-0.ddp.{}.svc", ns.name());
    for (rank, name) in ["ddp-0", "ddp-1"].iter().enumerate() {
        let pod = &finished[*name];
        let env: BTreeMap<String, String> = pod.spec.as_ref().unwrap().containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        // What torchrun read: Verdant's env, nothing the test added but STEPS.
        assert_eq!(env["PET_MASTER_ADDR"], master);
        assert_eq!(env["PET_NNODES"], "2");
        assert_eq!(env["PET_NPROC_PER_NODE"], "1");
        assert_eq!(env["PET_NODE_RANK"], rank.to_string());
        let log = pod_log(&pods, name).await?;
        println!("--- log of {name} ---\n{log}");
        assert!(
            log.contains(&format!("world_size=2 rank={rank} step=20 ")),
            "{name} trained 20 steps in a world of 2:\n{log}"
        );
        assert!(
            log.contains(&format!("world_size=2 rank={rank} done steps=20")),
            "{log}"
        );
    }
    println!(
        "two_replicas_train_with_ddp_over_gloo_and_succeed: {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_suspended_job_checkpoints_on_sigterm_and_resumes_from_its_step() -> anyhow::Result<()> {
    let _turn = turn().await;
    let cluster = RealCluster::get();
    let started = Instant::now();
    let client = cluster.plane().client().await?;
    let ns = TestNamespace::create(cluster.plane(), &client, "suspend").await?;
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());

    let checkpoints = format!("{NODE_DATA_DIR}/{}", ns.name());
    let grace_s = 40;
    let mut container = trainer(
        cluster,
        &[
            ("STEPS", "120"),
            ("STEP_SECONDS", "0.25"),
            ("CHECKPOINT_DIR", "/checkpoints"),
        ],
    );
    container["volumeMounts"] = json!([{"name": "checkpoints", "mountPath": "/checkpoints"}]);
    let job = training_job(
        "resumable",
        2,
        json!({
            "terminationGracePeriodSeconds": grace_s,
            "containers": [container],
            "volumes": [{
                "name": "checkpoints",
                "hostPath": {"path": checkpoints, "type": "DirectoryOrCreate"}
            }]
        }),
    )?;
    jobs.create(&PostParams::default(), &job).await?;
    pods_in_phase(&pods, "resumable", 2, "Running", 4 * MINUTE).await?;
    wait::until("rank 0 to pass step 10", 3 * MINUTE, || {
        let pods = pods.clone();
        async move {
            let log = pod_log(&pods, "resumable-0").await?;
            let step = last_step(&log);
            Ok(if step >= 10 {
                Ok(step)
            } else {
                Err(format!("at step {step}"))
            })
        }
    })
    .await?;

    // Watch the pods go: the grace period they are deleted with, and how rank 0 ends.
    let watched_pods = pods.clone();
    let watch = tokio::spawn(async move {
        let mut grace = BTreeMap::new();
        let mut exit_codes = BTreeMap::new();
        let mut stream = watched_pods
            .watch(
                &WatchParams::default().labels("verdant.dev/job-name=resumable"),
                "0",
            )
            .await?
            .boxed();
        while let Some(event) = stream.try_next().await? {
            match event {
                WatchEvent::Modified(pod) => {
                    // The grace period the pod was deleted with; the kubelet's final
                    // delete, once the containers ended, sets it to 0.
                    if pod.metadata.deletion_timestamp.is_some() {
                        grace
                            .entry(pod.name_any())
                            .or_insert(pod.metadata.deletion_grace_period_seconds);
                    }
                    for status in pod
                        .status
                        .and_then(|s| s.container_statuses)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(done) = status.state.and_then(|s| s.terminated) {
                            exit_codes.insert(
                                pod.metadata.name.clone().unwrap_or_default(),
                                done.exit_code,
                            );
                        }
                    }
                }
                WatchEvent::Deleted(pod) => {
                    grace
                        .entry(pod.name_any())
                        .or_insert(pod.metadata.deletion_grace_period_seconds);
                    if grace.len() == 2 && exit_codes.len() == 2 {
                        break;
                    }
                }
                _ => {}
            }
        }
        anyhow::Ok((grace, exit_codes))
    });
    jobs.patch(
        "resumable",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"runPolicy": {"suspend": true}}})),
    )
    .await?;
    let suspended = wait::job_in_phase(&jobs, "resumable", JobPhase::Suspended, 2 * MINUTE).await?;
    wait::until("the suspended job's pods to be gone", 2 * MINUTE, || {
        let pods = pods.clone();
        async move {
            let left = pods.list(&job_pods("resumable")).await?.items.len();
            Ok(if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} pods left"))
            })
        }
    })
    .await?;
    let (grace, exit_codes) = tokio::time::timeout(MINUTE, watch).await???;
    println!(
        "suspended: {:?}; deletion grace {grace:?}; exit codes {exit_codes:?}",
        suspended.status.map(|s| s.message)
    );
    for name in ["resumable-0", "resumable-1"] {
        assert_eq!(
            grace.get(name).copied().flatten(),
            Some(grace_s),
            "{name} was deleted with the template's grace period: {grace:?}"
        );
    }
    // train.py saves on SIGTERM and exits; torchrun, told to stop, then ends too. Had the
    // kubelet not waited for them, they would have been killed (exit code 137).
    for name in ["resumable-0", "resumable-1"] {
        let code = exit_codes.get(name);
        assert!(
            code.is_some_and(|c| *c != 137),
            "{name} ended by itself: {exit_codes:?}"
        );
    }
    let checkpoint = std::path::Path::new(&checkpoints).join("checkpoint.pt");
    assert!(
        checkpoint.is_file(),
        "rank 0 saved {}",
        checkpoint.display()
    );

    jobs.patch(
        "resumable",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"runPolicy": {"suspend": false}}})),
    )
    .await?;
    wait::job_in_phase(&jobs, "resumable", JobPhase::Succeeded, 4 * MINUTE).await?;
    let log = pod_log(&pods, "resumable-0").await?;
    println!("--- log of resumable-0 after the resume ---\n{log}");
    let resumed_from: u32 = log
        .lines()
        .find_map(|l| l.strip_prefix("resumed from step "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("the new pods resumed from the checkpoint:\n{log}"));
    assert!(resumed_from >= 10, "resumed from step {resumed_from}");
    assert!(
        log.contains(&format!(
            "world_size=2 rank=0 starting at step {} of 120",
            resumed_from + 1
        )),
        "{log}"
    );
    assert!(log.contains("world_size=2 rank=0 done steps=120"), "{log}");
    println!(
        "a_suspended_job_checkpoints_on_sigterm_and_resumes_from_its_step: {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn an_elastic_job_grows_to_three_and_shrinks_to_one_while_training_continues()
-> anyhow::Result<()> {
    let _turn = turn().await;
    let cluster = RealCluster::get();
    let started = Instant::now();
    let client = cluster.plane().client().await?;
    let ns = TestNamespace::create(cluster.plane(), &client, "elastic").await?;
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    node_gpus_free(&client, 2 * MINUTE).await?;

    // The site's load: the node's base (400 W × PUE 1.2 = 0.48 kW) and 0.84 kW per replica
    // (1 GPU at the agent's simulated 700 W, × 1.2; the pods run their GPUs at 100% so
    // that the measurement is the model's 700 W). At HOLD_KW two replicas leave 0.32 kW
    // of headroom, too little for a third (0.84 kW + 10% margin), and no draw a GPU can
    // reach makes it negative; SITE_KW lets the job grow to its maximum; at 0 the
    // headroom is negative at any size and the job shrinks to its minimum.
    const HOLD_KW: f64 = 2.48;
    let supply = SiteSupply::take(cluster.plane());
    supply.set(HOLD_KW)?;
    // While the job starts, a pod outside Verdant holds the node's other two GPUs: a
    // replica's first measured windows include the idle GPU before it started, which
    // would otherwise let the engine grow the job before its draw is known.
    let mut filler = trainer(cluster, &[]);
    filler["command"] = json!(["sleep", "3600"]);
    filler["resources"] = json!({"limits": {"nvidia.com/gpu": "2"}});
    let filler: Pod = serde_json::from_value(json!({
        "metadata": {"name": "filler"},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": [filler]}
    }))?;
    pods.create(&PostParams::default(), &filler).await?;
    wait::until("the filler pod to run", 2 * MINUTE, || {
        let pods = pods.clone();
        async move {
            let phase = phase_of(&pods.get("filler").await?);
            Ok(if phase == "Running" {
                Ok(())
            } else {
                Err(phase)
            })
        }
    })
    .await?;

    // All replicas share the checkpoint directory: torchrun may give rank 0 to any of
    // them. A hostPath does on the one real node; a cluster of several nodes needs a
    // shared volume (a ReadWriteMany PVC).
    let mut container = trainer(
        cluster,
        &[
            ("STEPS", "100000"),
            ("STEP_SECONDS", "0.5"),
            ("CHECKPOINT_DIR", "/checkpoints"),
        ],
    );
    container["volumeMounts"] = json!([{"name": "checkpoints", "mountPath": "/checkpoints"}]);
    let mut job = training_job(
        "elastic",
        2,
        json!({
            "terminationGracePeriodSeconds": 30,
            "containers": [container],
            "volumes": [{
                "name": "checkpoints",
                "hostPath": {"path": format!("{NODE_DATA_DIR}/{}", ns.name()), "type": "DirectoryOrCreate"}
            }]
        }),
    )?;
    job.spec.elastic = Some(serde_json::from_value(
        json!({"minReplicas": 1, "maxReplicas": 3}),
    )?);
    job.spec.run_policy.backoff_limit = 0;
    job.spec.template.metadata = Some(serde_json::from_value(json!({
        "annotations": {"verdant.dev/simulated-gpu-utilization": "100"}
    }))?);
    jobs.create(&PostParams::default(), &job).await?;
    wait_size(&jobs, &pods, "elastic", "2/1-3", 4 * MINUTE).await?;
    // The first rendezvous waits for a third agent for torchrun's last call (30 s).
    let runs = wait_trained(&pods, "elastic-0", 2, 5, 0, 4 * MINUTE).await?;
    let before_grow = runs.last().map_or(0, |r| r.last_step);

    // The filler goes: the GPUs are free, but the power is not there for a third replica.
    pods.delete("filler", &DeleteParams::default()).await?;
    wait::until("the filler pod to be gone", 2 * MINUTE, || {
        let pods = pods.clone();
        async move {
            Ok(match pods.get_opt("filler").await? {
                None => Ok(()),
                Some(pod) => Err(phase_of(&pod)),
            })
        }
    })
    .await?;
    assert_eq!(
        jobs.get("elastic")
            .await?
            .status
            .unwrap_or_default()
            .size
            .as_deref(),
        Some("2/1-3"),
        "no third replica at {HOLD_KW} kW"
    );

    // Green power: Verdant adds a third replica; the agents meet again in a world of 3.
    supply.set(SITE_KW)?;
    wait_size(&jobs, &pods, "elastic", "3/1-3", 4 * MINUTE).await?;
    let runs = wait_trained(&pods, "elastic-0", 3, 5, before_grow, 4 * MINUTE).await?;
    let before_shrink = runs.last().map_or(0, |r| r.last_step);

    // No power: Verdant removes replicas 2 and 1; replica 0 trains on alone (its agent
    // waits for the others' heartbeats to expire, then torchrun's last call).
    supply.set(0.0)?;
    wait_size(&jobs, &pods, "elastic", "1/1-3", 4 * MINUTE).await?;
    wait_trained(&pods, "elastic-0", 1, 5, before_shrink, 5 * MINUTE).await?;

    let log = pod_log(&pods, "elastic-0").await?;
    println!("--- log of elastic-0 ---\n{log}");
    let runs = trainer_runs(&log);
    println!("runs of elastic-0's worker: {runs:?}");
    // Each start resumes after the last step the one before printed: rank 0, which
    // saves, is replica 0's worker (c10d ranks the agents by FQDN), and it saves on
    // SIGTERM (a grow) as on a failed step (a shrink).
    for pair in runs.windows(2) {
        assert!(
            pair[1].first_step > pair[0].last_step,
            "the step counter went back: {pair:?}\n{log}"
        );
    }
    let mut sizes: Vec<u32> = runs.iter().map(|r| r.world_size).collect();
    sizes.dedup();
    let order = [2, 3, 1];
    let mut expected = order.iter().peekable();
    for size in &sizes {
        if expected.peek() == Some(&size) {
            expected.next();
        }
    }
    assert!(
        expected.peek().is_none(),
        "world sizes {sizes:?} follow {order:?}"
    );

    // Leave the node's GPUs free for the next test (the supply is set back on drop).
    jobs.delete("elastic", &DeleteParams::default()).await?;
    node_gpus_free(&client, 2 * MINUTE).await?;
    println!(
        "an_elastic_job_grows_to_three_and_shrinks_to_one_while_training_continues: {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The last `step=N` a trainer log shows (0 before the first).
fn last_step(log: &str) -> u32 {
    log.lines()
        .rev()
        .filter_map(|l| l.split(" step=").nth(1))
        .find_map(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn pods_deleted_by_hand_count_against_backoff_and_the_gc_cleans_up_a_deleted_job()
-> anyhow::Result<()> {
    let _turn = turn().await;
    let cluster = RealCluster::get();
    let started = Instant::now();
    let client = cluster.plane().client().await?;
    let ns = TestNamespace::create(cluster.plane(), &client, "backoff").await?;
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let services: Api<Service> = Api::namespaced(client.clone(), ns.name());

    // A long-running gang: the trainer image, sleeping instead of training.
    let mut sleeper = trainer(cluster, &[]);
    sleeper["command"] = json!(["sleep", "3600"]);
    let pod_spec = json!({"terminationGracePeriodSeconds": 1, "containers": [sleeper]});
    jobs.create(
        &PostParams::default(),
        &training_job("gang", 2, pod_spec.clone())?,
    )
    .await?;
    wait::job_in_phase(&jobs, "gang", JobPhase::Running, 3 * MINUTE).await?;
    let first = pods_in_phase(&pods, "gang", 2, "Running", MINUTE).await?;

    // A pod deleted by hand mid-run: the gang restarts (backoffLimit 1 allows one).
    pods.delete("gang-1", &DeleteParams::default()).await?;
    let restarted = wait::until("the gang to restart", 2 * MINUTE, || {
        let jobs = jobs.clone();
        let pods = pods.clone();
        let first = first.clone();
        async move {
            let job = jobs.get("gang").await?;
            let status = job.status.unwrap_or_default();
            let now = pods.list(&job_pods("gang")).await?.items;
            let fresh = now.len() == 2
                && now.iter().all(|p| {
                    phase_of(p) == "Running"
                        && first
                            .get(&p.name_any())
                            .is_none_or(|old| old.uid() != p.uid())
                });
            Ok(
                if status.restarts == 1 && status.phase == JobPhase::Running && fresh {
                    Ok(status)
                } else {
                    Err(format!(
                        "restarts {}, phase {:?}, pods {:?}",
                        status.restarts,
                        status.phase,
                        now.iter()
                            .map(|p| (p.name_any(), phase_of(p)))
                            .collect::<Vec<_>>()
                    ))
                },
            )
        }
    })
    .await?;
    assert_eq!(restarted.restarts, 1);

    // Again: the limit is spent, the job fails.
    pods.delete("gang-0", &DeleteParams::default()).await?;
    let failed = wait::job_in_phase(&jobs, "gang", JobPhase::Failed, 2 * MINUTE).await?;
    assert_eq!(
        failed.status.as_ref().and_then(|s| s.reason.as_deref()),
        Some("BackoffLimitExceeded")
    );

    // A second gang, deleted while it runs: its pods and Service go with it. They are owned
    // by the job, so the garbage collector removes whatever the operator leaves.
    jobs.create(
        &PostParams::default(),
        &training_job("doomed", 2, pod_spec)?,
    )
    .await?;
    wait::job_in_phase(&jobs, "doomed", JobPhase::Running, 3 * MINUTE).await?;
    let running = pods.list(&job_pods("doomed")).await?.items;
    let owner_uid = jobs.get("doomed").await?.uid();
    for pod in &running {
        assert!(
            pod.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == owner_uid.as_ref() && o.kind == "TrainingJob"),
            "{} is owned by its job",
            pod.name_any()
        );
    }
    assert!(services.get_opt("doomed").await?.is_some());
    jobs.delete("doomed", &DeleteParams::default()).await?;
    wait::until(
        "the deleted job's pods and Service to be gone",
        2 * MINUTE,
        || {
            let pods = pods.clone();
            let services = services.clone();
            let jobs = jobs.clone();
            async move {
                let left = pods.list(&job_pods("doomed")).await?.items.len();
                let service = services.get_opt("doomed").await?.is_some();
                let job = jobs.get_opt("doomed").await?.is_some();
                Ok(if left == 0 && !service && !job {
                    Ok(())
                } else {
                    Err(format!("{left} pods, service {service}, job {job}"))
                })
            }
        },
    )
    .await?;
    println!(
        "pods_deleted_by_hand_count_against_backoff_and_the_gc_cleans_up_a_deleted_job: {:?}",
        started.elapsed()
    );
    Ok(())
}
