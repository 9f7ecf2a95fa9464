//! `verdant-operator run`: wires the caches, the TrainingJob controller, the scheduling
//! cycle and the HTTP server together, and exits when any of them stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::Notify;
use tracing::info;
use verdant_crds::{EnergySite, TrainingJob};

use crate::config::RunArgs;
use crate::context::{Context, Stores};
use crate::labels::JOB_NAME_LABEL;
use crate::leader::{Elector, Leadership, LeaseConfig};
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::server::Health;
use crate::{reconcile, scheduler, server};

/// Runs the operator until a signal arrives or a critical task stops.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Bad election flags fail before anything connects.
    let lease = args
        .leader
        .leader_elect
        .then(|| args.leader.config())
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default().await.context(
        "connecting to Kubernetes: set KUBECONFIG, or run in a pod with a ServiceAccount",
    )?;
    let jobs_api: Api<TrainingJob> = Api::all(client.clone());
    jobs_api
        .list(&ListParams::default().limit(1))
        .await
        .context("listing TrainingJobs failed: are the CRDs installed (kubectl apply --server-side -f crds/) and does the operator's ServiceAccount may list them?")?;
    let (elector, leadership) = elect(&client, lease);

    let wake_scheduler = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::default());
    let plan = Arc::new(Plan::default());

    let (pods, pod_watch) = cache_all::<Pod>(&client, &wake_scheduler);
    let (nodes, node_watch) = cache_all::<Node>(&client, &wake_scheduler);
    let (sites, site_watch) = cache_all::<EnergySite>(&client, &wake_scheduler);

    let owned = watcher::Config::default().labels(JOB_NAME_LABEL);
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded();
    let controller = Controller::new(jobs_api, watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned)
        .reconcile_on(trigger_rx)
        .with_config(
            ControllerConfig::default()
                .debounce(std::time::Duration::from_millis(100))
                .concurrency(args.concurrency),
        )
        .shutdown_on_signal();
    let stores = Stores {
        jobs: controller.store(),
        pods,
        nodes,
        sites,
    };

    let reporter = Reporter {
        controller: "verdant-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        metrics: metrics.clone(),
        plan: plan.clone(),
        stores: stores.clone(),
        engine: args.engine_config(),
        wake_scheduler,
        telemetry: Arc::new(crate::telemetry::Telemetry::default()),
        node_base_watts: args.node_base_watts,
    });

    let leader_gauge = metrics.leader.clone();
    let health = Arc::new(Health {
        caches_synced: Default::default(),
        watches_synced: Default::default(),
        leadership: leadership.clone(),
        cycle_period_s: args.cycle_period().as_secs() as i64,
        plan,
        metrics,
    });
    let web = crate::web::WebState::from_context(&ctx);
    let scheduling = {
        let ctx = ctx.clone();
        let stores = stores.clone();
        let health = health.clone();
        let (period, debounce) = (
            args.cycle_period(),
            std::time::Duration::from_millis(args.debounce_ms),
        );
        async move {
            // Deciding on half-filled caches would place jobs on GPUs that are in use.
            wait_ready(&stores.jobs).await;
            wait_ready(&stores.pods).await;
            wait_ready(&stores.nodes).await;
            wait_ready(&stores.sites).await;
            health.caches_synced.store(true, Ordering::Release);
            info!("caches synced");
            scheduler::cycle(&ctx, &trigger_tx).await;
            scheduler::run(ctx, period, debounce, trigger_tx).await;
        }
    };
    let site_controller =
        crate::site_controller::run(ctx.clone(), args.site.clone(), args.time_scale);
    let ingest = {
        let (ingest, leadership) = (args.ingest.clone(), leadership.clone());
        let ctx = ctx.clone();
        async move {
            crate::standby::refuse_reports_until_leading(ingest.ingest_addr, leadership).await?;
            crate::ingest::run(ctx, ingest).await
        }
    };
    let watches_synced = {
        let (stores, health) = (stores.clone(), health.clone());
        async move {
            wait_ready(&stores.pods).await;
            wait_ready(&stores.nodes).await;
            wait_ready(&stores.sites).await;
            health.watches_synced.store(true, Ordering::Release);
        }
    };
    let controlling = controller
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        });

    info!(cycle_s = args.cycle_seconds, addr = %args.http_addr, "verdant-operator started");
    // Every task is critical: if one stops, the process exits and Kubernetes restarts it,
    // rather than leaving a pod that looks ready and does nothing.
    // Only the leader acts: the tasks that write to the API server or the store wait for
    // the Lease (at once without --leader-elect); losing it ends the process.
    let mut tasks = tokio::task::JoinSet::new();
    let renew_deadline = args.leader.leader_elect_renew_deadline;
    if let Some(elector) = elector {
        tasks.spawn(async move {
            elector.run().await?;
            Ok("leader election")
        });
    }
    tasks.spawn(async move {
        watches_synced.await;
        std::future::pending::<()>().await;
        Ok("cache sync")
    });
    tasks.spawn(async move {
        server::serve(args.http_addr, health, web)
            .await
            .map(|_| "http server")
    });
    tasks.spawn(async move {
        pod_watch.await;
        Ok("pod watch")
    });
    tasks.spawn(async move {
        node_watch.await;
        Ok("node watch")
    });
    tasks.spawn(async move {
        site_watch.await;
        Ok("energy site watch")
    });
    let leading = leadership.clone();
    let mut acting = vec![tasks.spawn(async move {
        leading.acquired().await;
        leader_gauge.set(1);
        scheduling.await;
        Ok("scheduler")
    })];
    let leading = leadership.clone();
    acting.push(tasks.spawn(async move {
        leading.acquired().await;
        controlling.await;
        Ok("controller")
    }));
    let leading = leadership.clone();
    acting.push(tasks.spawn(async move {
        leading.acquired().await;
        site_controller.await;
        Ok("energysite controller")
    }));
    acting.push(tasks.spawn(async move { ingest.await.map(|()| "ingest") }));
    match tasks.join_next().await {
        Some(Ok(Ok("controller"))) => {
            info!("controller stopped (signal received); shutting down");
            // Stop acting before the Lease is handed back, so that no two replicas act.
            acting.iter().for_each(tokio::task::AbortHandle::abort);
            resign(&leadership, &mut tasks, renew_deadline).await;
            Ok(())
        }
        Some(Ok(Ok(task))) => {
            anyhow::bail!("critical task '{task}' stopped; exiting so that the pod restarts")
        }
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => anyhow::bail!("a critical task panicked: {e}"),
        None => Ok(()),
    }
}

/// The leader election of `--leader-elect`, or none (this replica leads from the start).
fn elect(client: &kube::Client, lease: Option<LeaseConfig>) -> (Option<Elector>, Leadership) {
    match lease {
        Some(config) => {
            let (elector, leadership) = Elector::new(client.clone(), config);
            (Some(elector), leadership)
        }
        None => (None, Leadership::sole("verdant-operator")),
    }
}

/// On a graceful shutdown, hands the Lease back so that a follower takes over at its next
/// look rather than after the lease duration.
async fn resign(
    leadership: &Leadership,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<&'static str>>,
    renew_deadline: std::time::Duration,
) {
    leadership.resign();
    let released = async {
        while let Some(task) = tasks.join_next().await {
            if matches!(task, Ok(Ok("leader election"))) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(renew_deadline, released).await;
}

/// Waits until a cache has its first full list. The store's readiness future keeps one
/// waker only (the controller waits on the jobs store too), so it is polled with a short
/// timeout rather than awaited once.
async fn wait_ready<K: kube::Resource + Clone + 'static>(store: &kube::runtime::reflector::Store<K>)
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(
        std::time::Duration::from_millis(200),
        store.wait_until_ready(),
    )
    .await
    .is_err()
    {}
}

/// A cache of every `K` in the cluster, and the watch that fills it; each change wakes
/// the scheduling cycle.
fn cache_all<K>(
    client: &kube::Client,
    wake: &Arc<Notify>,
) -> (
    kube::runtime::reflector::Store<K>,
    impl std::future::Future<Output = ()> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let wake = wake.clone();
    let watch = reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(move |_| {
        wake.notify_one();
        async {}
    });
    (store, watch)
}
