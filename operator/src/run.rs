//! `verdant-operator run`: wires the caches, the TrainingJob controller, the scheduling
//! cycle and the HTTP server together, and exits when any of them stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::{reflector, watcher};
use tokio::sync::Notify;
use tracing::info;
use verdant_crds::{EnergySite, TrainingJob};

use crate::config::RunArgs;
use crate::context::{Context, Stores};
use crate::energy_status::EnergyStatus;
use crate::events::{Recorder, Reporter};
use crate::labels::{JOB_NAME_LABEL, MANAGED_BY_LABEL};
use crate::leader::{Elector, Leadership, LeaseConfig};
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::server::Health;
use crate::store_writer::{StoreCell, Writer};
use crate::topology::SharedTopology;
use crate::watches::CachedPod;
use crate::watches::job_pods::JobPods;
use crate::watches::{Touched, await_synced, wait_ready, watch_all};
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
    let client = client(args.api_concurrency).await?;
    let jobs_api: Api<TrainingJob> = Api::all(client.clone());
    jobs_api
        .list(&ListParams::default().limit(1))
        .await
        .context("listing TrainingJobs failed: are the CRDs installed (kubectl apply --server-side -f crds/) and does the operator's ServiceAccount may list them?")?;
    let (elector, leadership) = elect(&client, lease);

    let wake_scheduler = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::default());
    let plan = Arc::new(Plan::default());

    // Each kind is watched once, into a cache every task reads; the controllers subscribe
    // to its changes. Every change wakes the scheduling cycle, and makes the next reader
    // of the topology build it again.
    let (pods, pods_writer) = reflector::store::<CachedPod>();
    let (nodes, nodes_writer) = reflector::store::<Node>();
    let (sites, sites_writer) = reflector::store::<EnergySite>();
    let topology = Arc::new(SharedTopology::new(
        nodes.clone(),
        pods.clone(),
        sites.clone(),
    ));
    let job_pods = Arc::new(JobPods::new(pods.clone()));
    let changed = || {
        let (wake, topology) = (wake_scheduler.clone(), topology.clone());
        move || {
            topology.invalidate();
            wake.notify_one();
        }
    };
    let pod_changed = {
        let (changed, job_pods) = (changed(), job_pods.clone());
        move |touched: Touched<'_, CachedPod>| {
            job_pods.touched(&touched);
            changed();
        }
    };
    let node_changed = changed();
    let site_changed = changed();
    let (pods_watched, pod_watch) = watch_all(&client, pods_writer, pod_changed);
    let (_, node_watch) = watch_all(&client, nodes_writer, move |_| node_changed());
    let (sites_watched, site_watch) = watch_all(&client, sites_writer, move |_| site_changed());
    // The controller reconciles a job on each change; the reconciler wakes the cycle.
    let (jobs, jobs_writer) = reflector::store::<TrainingJob>();
    let (jobs_watched, job_watch) = watch_all(&client, jobs_writer, |_| {});
    let (synced, cache_sync) = await_synced(vec![
        Box::pin(wait_ready(pods.clone())) as Pin<Box<dyn Future<Output = ()> + Send>>,
        Box::pin(wait_ready(nodes.clone())),
        Box::pin(wait_ready(sites.clone())),
    ]);

    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded();
    let controller = Controller::for_shared_stream(jobs_watched.subscribe(), jobs.clone())
        // Only Verdant's pods can belong to a TrainingJob.
        .owns_shared_stream(pods_watched.subscribe().filter(|pod| {
            std::future::ready(
                pod.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some("verdant"),
            )
        }))
        .owns(
            Api::<Service>::all(client.clone()),
            watcher::Config::default().labels(JOB_NAME_LABEL),
        )
        .reconcile_on(trigger_rx)
        .with_config(
            ControllerConfig::default()
                .debounce(std::time::Duration::from_millis(100))
                .concurrency(args.concurrency),
        )
        .shutdown_on_signal();
    let stores = Stores {
        jobs,
        pods,
        job_pods,
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
        stores,
        synced: synced.clone(),
        topology,
        engine: args.engine_config(),
        wake_scheduler,
        telemetry: Arc::new(crate::telemetry::Telemetry::default()),
        node_base_watts: args.node_base_watts,
        bindings: Default::default(),
    });

    let leader_gauge = metrics.leader.clone();
    let health = Arc::new(Health {
        caches_synced: Default::default(),
        watches_synced: synced,
        leadership: leadership.clone(),
        cycle_period_s: args.cycle_period().as_secs() as i64,
        plan,
        metrics,
    });
    let web = crate::web::WebState::from_context(&ctx);
    let scheduling = {
        let ctx = ctx.clone();
        let health = health.clone();
        let (period, debounce) = (
            args.cycle_period(),
            std::time::Duration::from_millis(args.debounce_ms),
        );
        async move {
            ctx.caches_synced().await;
            health.caches_synced.store(true, Ordering::Release);
            info!("caches synced");
            scheduler::run(ctx, period, debounce, trigger_tx).await;
        }
    };
    let site_controller = crate::site_controller::run(
        ctx.clone(),
        sites_watched.subscribe(),
        args.site.clone(),
        args.time_scale,
    );
    // The agents' reports, the energy store's writer, and the jobs' status.energy.
    let store = StoreCell::default();
    let energy_status = Arc::new(EnergyStatus::new(std::time::Duration::from_secs(
        args.ingest.energy_status_seconds,
    )));
    let (writer, store_writer) = Writer::new(store.clone(), ctx.metrics.clone());
    let accounting = crate::energy_status::run(
        ctx.clone(),
        store,
        args.ingest.store_config(),
        args.ingest.retention(),
        energy_status.clone(),
    );
    let ingest = {
        let (ingest, leadership) = (args.ingest.clone(), leadership.clone());
        let ctx = ctx.clone();
        async move {
            crate::standby::refuse_reports_until_leading(ingest.ingest_addr, leadership).await?;
            crate::ingest::run(ctx, &ingest, writer, energy_status).await
        }
    };
    // TrainingJobs queued in Kueue: their Workloads, admission and eviction.
    let kueue = crate::kueue::controller::run(ctx.clone());
    // On a MultiKueue manager: the worker cluster of each queued job, by renewable headroom.
    let dispatcher = args
        .dispatcher
        .multikueue_dispatcher
        .then(|| crate::kueue::dispatcher::run(ctx.clone(), args.dispatcher.clone()));
    // Waited on by the acting tasks below (the controller takes `ctx`).
    let gate = ctx.clone();
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
        cache_sync.await;
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
    tasks.spawn(async move {
        job_watch.await;
        Ok("TrainingJob watch")
    });
    let leading = leadership.clone();
    let mut acting = vec![tasks.spawn(async move {
        leading.acquired().await;
        leader_gauge.set(1);
        scheduling.await;
        Ok("scheduler")
    })];
    // The controllers act on what the caches show: before the first full list of pods a
    // running gang would look lost and be restarted (a restarted operator of 40,000 pods
    // lists them for over a minute), so they start once every cache is synced.
    let (leading, synced) = (leadership.clone(), gate.clone());
    acting.push(tasks.spawn(async move {
        leading.acquired().await;
        synced.caches_synced().await;
        controlling.await;
        Ok("controller")
    }));
    let (leading, synced) = (leadership.clone(), gate.clone());
    acting.push(tasks.spawn(async move {
        leading.acquired().await;
        synced.caches_synced().await;
        kueue.await;
        Ok("kueue controller")
    }));
    if let Some(dispatcher) = dispatcher {
        let (leading, synced) = (leadership.clone(), gate.clone());
        acting.push(tasks.spawn(async move {
            leading.acquired().await;
            synced.caches_synced().await;
            dispatcher.await;
            Ok("multikueue dispatcher")
        }));
    }
    let (leading, synced) = (leadership.clone(), gate.clone());
    acting.push(tasks.spawn(async move {
        leading.acquired().await;
        synced.caches_synced().await;
        site_controller.await;
        Ok("energysite controller")
    }));
    acting.push(tasks.spawn(async move { ingest.await.map(|()| "ingest") }));
    let leading = leadership.clone();
    acting.push(tasks.spawn(async move {
        leading.acquired().await;
        store_writer.await;
        Ok("energy store writer")
    }));
    let leading = leadership.clone();
    acting.push(tasks.spawn(async move {
        leading.acquired().await;
        accounting.await;
        Ok("energy status")
    }));
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

/// The API client, with at most `api_concurrency` requests in flight (`--api-concurrency`).
async fn client(api_concurrency: u16) -> anyhow::Result<kube::Client> {
    let connecting =
        "connecting to Kubernetes: set KUBECONFIG, or run in a pod with a ServiceAccount";
    let config = kube::Config::infer().await.context(connecting)?;
    let builder = kube::client::ClientBuilder::try_from(config).context(connecting)?;
    // A watch holds its slot only until the API server answers with headers; its events
    // then stream without one.
    let limit = tower::limit::ConcurrencyLimitLayer::new(usize::from(api_concurrency));
    Ok(builder.with_layer(&limit).build())
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
