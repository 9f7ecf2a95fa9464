//! MultiKueue's External dispatcher, the I/O side of [`super::dispatch`]: on a MultiKueue
//! manager cluster (`--multikueue-dispatcher`), a controller of the Workloads that waits
//! for each one to need a nomination, reads the EnergySites of every worker cluster of its
//! MultiKueue admission check, and writes the best cluster into the Workload's
//! `status.nominatedClusterNames`, with an Event (`Nominated`) that gives the numbers.
//!
//! The way to a worker is MultiKueue's own: AdmissionCheck (`kueue.x-k8s.io/multikueue`)
//! → its `MultiKueueConfig` → `spec.clusters` → each `MultiKueueCluster` → its kubeconfig
//! Secret in Kueue's namespace (key `kubeconfig`). Clients are kept per cluster until the
//! Secret changes.
//!
//! The nomination is written as Kueue's admission field manager (`kueue-admission`), with
//! every status field that manager owns ([`super::owned`]): when a worker reserves quota,
//! MultiKueue assigns `status.clusterName` and drops the nomination by leaving it out of
//! its next server-side apply as that manager, and the Workload's schema rejects a status
//! with both. A nomination owned by another manager would survive that apply, and Kueue's
//! assignment would then be refused. Kueue's own test of the External dispatcher writes
//! the nomination the same way (`workload.PatchAdmissionStatus`). Where Kueue writes with
//! merge patches (feature gate `WorkloadRequestUseMergePatch`) there is no such entry and
//! a merge patch is used: Kueue then clears the field explicitly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};
use verdant_crds::{EnergySite, TrainingJob};

use super::dispatch::{self, Site};
use super::owned;
use super::workload::resource;
use crate::context::Context;
use crate::error::{Error, Result};

/// The `spec.controllerName` of MultiKueue's admission checks.
pub const MULTIKUEUE_CONTROLLER: &str = "kueue.x-k8s.io/multikueue";
/// Kueue's field manager for a Workload's admission status.
pub const ADMISSION_MANAGER: &str = "kueue-admission";
/// How long reading one worker's EnergySites may take.
const WORKER_TIMEOUT: Duration = Duration::from_secs(10);

/// The dispatcher's command-line flags.
#[derive(clap::Args, Clone, Debug)]
pub struct DispatcherArgs {
    /// On a MultiKueue manager cluster: choose each job's worker cluster by renewable
    /// headroom, as MultiKueue's External dispatcher. Set Kueue's
    /// `multiKueue.dispatcherName` to `verdant.dev/follow-the-sun` too (docs/kueue.md).
    #[arg(long, env = "VERDANT_MULTIKUEUE_DISPATCHER")]
    pub multikueue_dispatcher: bool,
    /// The namespace Kueue runs in, where the MultiKueueClusters' kubeconfig Secrets are.
    #[arg(long, env = "VERDANT_KUEUE_NAMESPACE", default_value = "kueue-system")]
    pub kueue_namespace: String,
}

/// What the reconciler keeps between passes.
struct State {
    ctx: Arc<Context>,
    kueue_namespace: String,
    /// A client per worker cluster, with the resourceVersion of the Secret it came from.
    workers: Mutex<HashMap<String, (String, Client)>>,
}

/// Waits for Kueue's API, then nominates worker clusters until the process ends.
pub async fn run(ctx: Arc<Context>, args: DispatcherArgs) {
    while !super::controller::kueue_served(&ctx.client).await {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    info!(
        kueue_namespace = %args.kueue_namespace,
        "MultiKueue dispatcher: nominating worker clusters by renewable headroom"
    );
    let workloads = resource("Workload", "workloads");
    let api = Api::<DynamicObject>::all_with(ctx.client.clone(), &workloads);
    let state = Arc::new(State {
        ctx,
        kueue_namespace: args.kueue_namespace,
        workers: Mutex::default(),
    });
    Controller::new_with(api, watcher::Config::default(), workloads)
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(error) = result {
                debug!(%error, "dispatcher reconcile error");
            }
        })
        .await;
}

fn error_policy(wl: Arc<DynamicObject>, error: &Error, _: Arc<State>) -> Action {
    warn!(workload = %wl.name_any(), %error, "MultiKueue nomination failed; retrying in 10 s");
    Action::requeue(Duration::from_secs(10))
}

/// One pass for one Workload: nominate a cluster if one of its MultiKueue checks waits
/// for that.
async fn reconcile(wl: Arc<DynamicObject>, state: Arc<State>) -> Result<Action> {
    let value = serde_json::to_value(wl.as_ref()).unwrap_or_default();
    let pending: Vec<String> = value
        .pointer("/status/admissionChecks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["state"] == "Pending")
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    for check in pending {
        if !dispatch::needs_nomination(&value, &check) {
            continue;
        }
        let Some(clusters) = state.clusters_of(&check).await? else {
            continue;
        };
        let mut sites = Vec::with_capacity(clusters.len());
        for cluster in clusters {
            let found = state.sites_of(&cluster).await.unwrap_or_else(|error| {
                warn!(%cluster, %error, "cannot read the worker's EnergySites; it ranks last");
                Vec::new()
            });
            sites.push((cluster, found));
        }
        let window = state.window_of(&wl).await;
        let now = jiff::Timestamp::now().as_second();
        let ranking = dispatch::rank(&sites, now, window);
        let Some((names, reason)) = dispatch::nominate(&ranking) else {
            continue;
        };
        write_nomination(&state.ctx.client, &value, &names).await?;
        info!(workload = %format!("{}/{}", wl.namespace().unwrap_or_default(), wl.name_any()),
              clusters = ?names, %reason, "nominated for MultiKueue");
        state
            .ctx
            .metrics
            .decisions
            .get_or_create(&crate::metrics::label("reason", "Nominated"))
            .inc();
        let event = Event {
            type_: EventType::Normal,
            reason: "Nominated".into(),
            note: Some(reason.chars().take(1000).collect()),
            action: "Nominate".into(),
            secondary: None,
        };
        let on = wl.object_ref(&resource("Workload", "workloads"));
        if let Err(error) = state.ctx.recorder.publish(&event, &on).await {
            warn!(workload = %wl.name_any(), %error, "could not publish event");
        }
        return Ok(Action::await_change());
    }
    Ok(Action::await_change())
}

impl State {
    /// The worker clusters of admission check `check`, or None if it is not MultiKueue's.
    async fn clusters_of(&self, check: &str) -> Result<Option<Vec<String>>> {
        let client = &self.ctx.client;
        let checks: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &resource("AdmissionCheck", "admissionchecks"),
        );
        let Some(ac) = checks
            .get_opt(check)
            .await
            .map_err(Error::kube(format!("reading AdmissionCheck {check}")))?
        else {
            return Ok(None);
        };
        if ac.data["spec"]["controllerName"] != MULTIKUEUE_CONTROLLER {
            return Ok(None);
        }
        let Some(config) = ac.data["spec"]["parameters"]["name"].as_str() else {
            return Ok(None);
        };
        let configs: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &resource("MultiKueueConfig", "multikueueconfigs"),
        );
        let config = configs.get(config).await.map_err(Error::kube(format!(
            "reading MultiKueueConfig {config} of AdmissionCheck {check}"
        )))?;
        Ok(Some(
            config.data["spec"]["clusters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
        ))
    }

    /// The EnergySites of worker cluster `cluster`, through its MultiKueueCluster's
    /// kubeconfig Secret.
    async fn sites_of(&self, cluster: &str) -> anyhow::Result<Vec<Site>> {
        let client = self.worker(cluster).await?;
        let sites: Api<EnergySite> = Api::all(client);
        let list = tokio::time::timeout(WORKER_TIMEOUT, sites.list(&ListParams::default()))
            .await
            .map_err(|_| {
                anyhow::anyhow!("listing EnergySites timed out after {WORKER_TIMEOUT:?}")
            })??;
        Ok(list.items.iter().map(Site::from_energy_site).collect())
    }

    /// A client of worker cluster `cluster`, made again when its Secret changed.
    async fn worker(&self, cluster: &str) -> anyhow::Result<Client> {
        let client = &self.ctx.client;
        let clusters: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &resource("MultiKueueCluster", "multikueueclusters"),
        );
        let mkc = clusters.get(cluster).await?;
        let source = &mkc.data["spec"]["clusterSource"]["kubeConfig"];
        let (kind, location) = (
            source["locationType"].as_str().unwrap_or("Secret"),
            source["location"].as_str().unwrap_or_default(),
        );
        anyhow::ensure!(
            kind == "Secret",
            "MultiKueueCluster {cluster}: kubeconfig location type {kind} is not supported, only Secret"
        );
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.kueue_namespace);
        let secret = secrets.get(location).await.map_err(|e| {
            anyhow::anyhow!("reading Secret {}/{location}: {e}", self.kueue_namespace)
        })?;
        let version = secret.resource_version().unwrap_or_default();
        let mut workers = self.workers.lock().await;
        if let Some((seen, client)) = workers.get(cluster)
            && *seen == version
        {
            return Ok(client.clone());
        }
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get("kubeconfig"))
            .map(|b| b.0.clone())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "Secret {}/{location} has no key kubeconfig",
                    self.kueue_namespace
                )
            })?;
        let kubeconfig = Kubeconfig::from_yaml(&String::from_utf8_lossy(&bytes))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let worker = Client::try_from(config)?;
        workers.insert(cluster.to_owned(), (version, worker.clone()));
        Ok(worker)
    }

    /// The window to rank over: that of the TrainingJob that owns the Workload, else an
    /// hour.
    async fn window_of(&self, wl: &DynamicObject) -> i64 {
        let Some(owner) = wl
            .owner_references()
            .iter()
            .find(|o| o.kind == TrainingJob::kind(&()))
        else {
            return dispatch::DEFAULT_WINDOW_S;
        };
        let jobs: Api<TrainingJob> =
            Api::namespaced(self.ctx.client.clone(), &wl.namespace().unwrap_or_default());
        match jobs.get_opt(&owner.name).await {
            Ok(Some(job)) => dispatch::window_s(&job),
            _ => dispatch::DEFAULT_WINDOW_S,
        }
    }
}

/// Writes `names` into the Workload's `status.nominatedClusterNames`, conditional on its
/// resourceVersion (see the module's documentation for why as `kueue-admission`).
async fn write_nomination(client: &Client, wl: &Value, names: &[String]) -> Result<()> {
    let text = |p: &str| wl.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (name, namespace) = (text("/metadata/name"), text("/metadata/namespace"));
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("Workload", "workloads"),
    );
    let meta = json!({
        "name": name, "namespace": namespace, "resourceVersion": text("/metadata/resourceVersion"),
    });
    let result = match owned::fields_of(wl, ADMISSION_MANAGER, "Apply", "status") {
        Some(fields) => {
            let mut body = apply_body(wl, fields, names);
            body["metadata"] = meta;
            api.patch_status(
                name,
                &PatchParams::apply(ADMISSION_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        }
        None => {
            let patch = json!({"metadata": meta, "status": {"nominatedClusterNames": names}});
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    };
    result.map_err(Error::kube(format!(
        "nominating worker clusters for Workload {namespace}/{name}"
    )))?;
    Ok(())
}

/// The status apply of Kueue's admission manager: every field it owns, as it is, and the
/// nomination.
fn apply_body(wl: &Value, fields: &Value, names: &[String]) -> Value {
    let owned = owned::extract(wl, fields);
    let mut status = owned.get("status").cloned().unwrap_or_else(|| json!({}));
    status["nominatedClusterNames"] = json!(names);
    json!({
        "apiVersion": wl["apiVersion"],
        "kind": "Workload",
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_keeps_what_kueue_admission_owns_and_adds_the_nomination() {
        let wl = json!({
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
            "metadata": {"name": "w", "namespace": "ns", "managedFields": [
                {"manager": "kueue-admission", "operation": "Apply", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:admission": {}, "f:admissionChecks": {
                     "k:{\"name\":\"mk\"}": {".": {}, "f:name": {}, "f:state": {}}}}}},
            ]},
            "status": {
                "admission": {"clusterQueue": "gpus"},
                "admissionChecks": [{"name": "mk", "state": "Pending"}],
                "conditions": [{"type": "Finished", "status": "False"}],
            },
        });
        let fields = owned::fields_of(&wl, ADMISSION_MANAGER, "Apply", "status").unwrap();
        let body = apply_body(&wl, fields, &["worker-a".to_owned()]);
        assert_eq!(
            body,
            json!({
                "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
                "status": {
                    "admission": {"clusterQueue": "gpus"},
                    "admissionChecks": [{"name": "mk", "state": "Pending"}],
                    "nominatedClusterNames": ["worker-a"],
                },
            })
        );
    }
}
