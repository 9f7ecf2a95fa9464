//! MultiKueue follow-the-sun (docs/kueue.md): a manager cluster with Kueue and MultiKueue,
//! and two worker clusters, each with Kueue, `verdant-operator`, one EnergySite and KWOK
//! GPU nodes: three control planes on this machine. Verdant on the manager is MultiKueue's
//! External dispatcher: a TrainingJob submitted on the manager runs in the worker whose
//! site has the most renewable headroom; after the supply flips, the next one runs in the
//! other; the manager's objects show the workers' status.
//!
//! Kueue's CRDs and webhooks are cluster-wide, so every cluster is a control plane of this
//! test's own. One test in its own binary: three control planes are enough for this
//! machine at once.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use verdant_crds::{EnergySite, JobPhase, TrainingJob};
use verdant_operator::kueue::dispatch::DISPATCHER_NAME;
use verdant_tests::kueue::{
    KueueProcess, NAMESPACE, gpu_queues, multikueue_manager_config, object, resource,
    wait_condition,
};
use verdant_tests::{
    ControlPlane, OperatorProcess, TestNamespace, create_gpu_nodes, jobs, sites, wait,
};

const OPERATOR: &str = env!("CARGO_BIN_EXE_e2e-operator");
const TIMEOUT: Duration = Duration::from_secs(180);
const TEST: &str = "multikueue";

/// One worker cluster. Fields drop in order: the operator and Kueue first, the control
/// plane last.
struct Worker {
    _operator: OperatorProcess,
    _kueue: KueueProcess,
    _ns: TestNamespace,
    /// The `MultiKueueCluster`'s name.
    name: String,
    /// Its one EnergySite (its nodes are `<site>-0`, `<site>-1`).
    site: String,
    client: Client,
    plane: ControlPlane,
}

impl Worker {
    /// A worker cluster `name` with Kueue, two nodes of 8 GPUs at site `site` of
    /// `kw` kW (constant), the manager's namespace `namespace`, a ResourceFlavor for the
    /// site's nodes with 16 GPUs of quota in the ClusterQueue `gpus` (and LocalQueue
    /// `team`, the manager's names), and Verdant.
    async fn start(name: &str, site: &str, kw: f64, namespace: &str) -> anyhow::Result<Self> {
        let plane = ControlPlane::start_owned();
        let client = plane.client().await?;
        let ns = TestNamespace::create_named(&plane, &client, TEST, namespace).await?;
        let kueue = KueueProcess::start(&plane).await?;
        create_gpu_nodes(&client, site, site, 2, 8).await?;
        sites::create(&client, sites::static_site(site, kw)).await?;
        let labels = json!({"verdant.dev/site": site});
        gpu_queues(&client, namespace, site, labels, 16, json!({})).await?;
        let operator = OperatorProcess::start(&plane, OPERATOR, &[])?;
        Ok(Self {
            _operator: operator,
            _kueue: kueue,
            _ns: ns,
            name: name.to_owned(),
            site: site.to_owned(),
            client,
            plane,
        })
    }

    /// Sets the site's constant supply and waits until its status shows it.
    async fn set_supply(&self, kw: f64) -> anyhow::Result<()> {
        let sites: Api<EnergySite> = Api::all(self.client.clone());
        let patch = json!({"spec": {"forecast": {"static": {"constantKw": kw}}}});
        sites
            .patch(&self.site, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        wait::until(
            &format!("site {} to report {kw} kW", self.site),
            TIMEOUT,
            || async {
                let status = sites.get(&self.site).await?.status.unwrap_or_default();
                let now = sites::renewable_kw_now(&status);
                Ok(if (now - kw).abs() < 1.0 {
                    Ok(())
                } else {
                    Err(format!("{now} kW"))
                })
            },
        )
        .await
    }
}

/// The manager's MultiKueue objects: a kubeconfig Secret and a MultiKueueCluster per
/// worker, the MultiKueueConfig `follow-the-sun`, the AdmissionCheck `multikueue`; waits
/// until MultiKueue reaches every worker.
async fn connect(client: &Client, workers: &[&Worker]) -> anyhow::Result<()> {
    let post = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let clusters: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("MultiKueueCluster", "multikueueclusters"),
    );
    for worker in workers {
        let kubeconfig = std::fs::read_to_string(worker.plane.kubeconfig())?;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": worker.name, "namespace": NAMESPACE},
            "stringData": {"kubeconfig": kubeconfig},
        }))?;
        secrets.create(&post, &secret).await?;
        let source = json!({"clusterSource": {"kubeConfig": {"locationType": "Secret", "location": worker.name}}});
        clusters
            .create(&post, &object("MultiKueueCluster", &worker.name, source)?)
            .await?;
    }
    let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    Api::<DynamicObject>::all_with(
        client.clone(),
        &resource("MultiKueueConfig", "multikueueconfigs"),
    )
    .create(
        &post,
        &object(
            "MultiKueueConfig",
            "follow-the-sun",
            json!({"clusters": names}),
        )?,
    )
    .await?;
    let check = json!({
        "controllerName": "kueue.x-k8s.io/multikueue",
        "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": "follow-the-sun"},
    });
    Api::<DynamicObject>::all_with(
        client.clone(),
        &resource("AdmissionCheck", "admissionchecks"),
    )
    .create(&post, &object("AdmissionCheck", "multikueue", check)?)
    .await?;
    for name in names {
        wait_condition(&clusters, name, "Active", "True", TIMEOUT).await?;
    }
    Ok(())
}

/// Submits a TrainingJob of 1 × 8 GPUs on the manager, to the LocalQueue `team`, managed
/// by MultiKueue.
async fn submit(client: &Client, ns: &str, name: &str, pods: Value) -> anyhow::Result<()> {
    let spec = json!({"managedBy": "kueue.x-k8s.io/multikueue"});
    let mut body = jobs::training_job(name, 1, 8, spec, pods);
    body["metadata"]["labels"] = json!({"kueue.x-k8s.io/queue-name": "team"});
    let job: TrainingJob = serde_json::from_value(body)?;
    Api::<TrainingJob>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &job)
        .await?;
    Ok(())
}

/// Waits until the manager's Workload of job `name` is assigned a worker cluster; returns
/// that cluster's name and the Workload.
async fn assigned_cluster(
    client: &Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<(String, Value)> {
    let workloads: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &resource("Workload", "workloads"));
    wait::until(
        &format!("the Workload of {name} to get a worker cluster"),
        TIMEOUT,
        || async {
            let found = workloads.list(&ListParams::default()).await?.items;
            let wl = found.into_iter().find(|w| {
                w.owner_references()
                    .iter()
                    .any(|o| o.kind == "TrainingJob" && o.name == name)
            });
            let Some(wl) = wl else {
                return Ok(Err("no Workload yet".to_owned()));
            };
            let wl = serde_json::to_value(wl)?;
            Ok(match wl["status"]["clusterName"].as_str() {
                Some(cluster) => Ok((cluster.to_owned(), wl)),
                None => Err(format!(
                    "nominated {}, checks {}",
                    wl["status"]["nominatedClusterNames"], wl["status"]["admissionChecks"]
                )),
            })
        },
    )
    .await
}

/// The note of the dispatcher's `Nominated` Event on Workload `workload`.
async fn nomination_event(client: &Client, ns: &str, workload: &str) -> anyhow::Result<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    wait::until(
        &format!("a Nominated event on Workload {workload}"),
        TIMEOUT,
        || async {
            let list = events.list(&ListParams::default()).await?.items;
            Ok(list
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("Nominated")
                        && e.involved_object.name.as_deref() == Some(workload)
                })
                .and_then(|e| e.message)
                .ok_or_else(|| "not yet".to_owned()))
        },
    )
    .await
}

/// Waits until job `name` runs in `worker` on its site's nodes, and the manager's copy
/// shows that status (phase, site, nodes); returns the manager's status.
async fn runs_in(
    manager: &Client,
    ns: &str,
    worker: &Worker,
    name: &str,
) -> anyhow::Result<verdant_crds::TrainingJobStatus> {
    let remote: Api<TrainingJob> = Api::namespaced(worker.client.clone(), ns);
    let local: Api<TrainingJob> = Api::namespaced(manager.clone(), ns);
    wait::until(
        &format!(
            "{name} to run in {} and the manager to show it",
            worker.name
        ),
        TIMEOUT,
        || async {
            let Some(there) = remote.get_opt(name).await? else {
                return Ok(Err(format!("no {name} in {}", worker.name)));
            };
            let there = there.status.unwrap_or_default();
            let here = local.get(name).await?.status.unwrap_or_default();
            let on_site = there.site.as_deref() == Some(worker.site.as_str())
                && !there.nodes.is_empty()
                && there.nodes.iter().all(|n| n.starts_with(&worker.site));
            let shown =
                (here.phase, &here.site, &here.nodes) == (there.phase, &there.site, &there.nodes);
            Ok(if there.phase == JobPhase::Running && on_site && shown {
                Ok(here)
            } else {
                Err(format!(
                    "{}: {} at {:?} on {:?}; manager: {} at {:?}",
                    worker.name, there.phase, there.site, there.nodes, here.phase, here.site
                ))
            })
        },
    )
    .await
}

#[tokio::test]
async fn multikueue_sends_each_job_to_the_worker_with_the_most_renewable_headroom()
-> anyhow::Result<()> {
    let manager = ControlPlane::start_owned();
    let client = manager.client().await?;
    let ns = TestNamespace::create(&manager, &client, TEST).await?;
    let namespace = ns.name().to_owned();
    let kueue =
        KueueProcess::start_with(&manager, &multikueue_manager_config(DISPATCHER_NAME)).await?;
    let a = Worker::start("worker-a", "sun-a", 1000.0, &namespace).await?;
    let b = Worker::start("worker-b", "sun-b", 100.0, &namespace).await?;
    connect(&client, &[&a, &b]).await?;
    let checks = json!({"admissionChecksStrategy": {"admissionChecks": [{"name": "multikueue"}]}});
    gpu_queues(&client, &namespace, "default", json!({}), 64, checks).await?;
    let operator = OperatorProcess::start(&manager, OPERATOR, &["--multikueue-dispatcher"])?;

    // Worker A's site has 1,000 kW, B's 100 kW: the first job goes to A, and only there.
    let finish = json!({"verdant.dev/kwok-succeed-after": "60s"});
    submit(&client, &namespace, "first", finish).await?;
    let (cluster, wl) = assigned_cluster(&client, &namespace, "first").await?;
    assert_eq!(cluster, "worker-a", "{wl:#}");
    let note = nomination_event(
        &client,
        &namespace,
        wl["metadata"]["name"].as_str().unwrap_or_default(),
    )
    .await?;
    assert!(note.starts_with("worker-a: site sun-a has"), "{note}");
    assert!(note.contains("worker-b"), "{note}");
    let status = runs_in(&client, &namespace, &a, "first").await?;
    assert_eq!(status.site.as_deref(), Some("sun-a"));
    let in_b: Api<TrainingJob> = Api::namespaced(b.client.clone(), &namespace);
    assert!(in_b.get_opt("first").await?.is_none(), "a copy in worker-b");

    // The supply flips: the next job goes to B.
    a.set_supply(0.0).await?;
    b.set_supply(1000.0).await?;
    submit(&client, &namespace, "second", json!({})).await?;
    let (cluster, wl) = assigned_cluster(&client, &namespace, "second").await?;
    assert_eq!(cluster, "worker-b", "{wl:#}");
    runs_in(&client, &namespace, &b, "second").await?;
    let nominated = "verdant_scheduling_decisions_total{reason=\"Nominated\"}";
    assert_eq!(operator.metric(nominated).await?, Some(2.0));

    // The first job finishes in A: the manager's object shows it, its Workload is
    // Finished there.
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), &namespace);
    wait::until("first to succeed on the manager", TIMEOUT, || async {
        let status = jobs.get("first").await?.status.unwrap_or_default();
        Ok(match status.phase {
            JobPhase::Succeeded => Ok(()),
            other => Err(format!("{other}")),
        })
    })
    .await?;
    let (_, wl) = assigned_cluster(&client, &namespace, "first").await?;
    let workloads: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &resource("Workload", "workloads"),
    );
    let name = wl["metadata"]["name"].as_str().unwrap_or_default();
    wait_condition(&workloads, name, "Finished", "True", TIMEOUT).await?;
    drop(kueue);
    Ok(())
}
