//! The Kueue side of TrainingJobs, as a task: a controller of the TrainingJobs labelled
//! with a queue and of the Workloads they own, performing [`decide`]'s steps. It starts
//! once Kueue's API (`kueue.x-k8s.io/v1beta2`) is served, so a cluster without Kueue costs
//! one discovery request a minute.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};
use verdant_crds::TrainingJob;

use super::decide::{Step, decide, restored};
use super::podset::{from_flavors, merged, template_patch};
use super::workload::{self, GROUP, VERSION, resource, set_condition};
use super::{QUEUE_LABEL, STARTED_ANNOTATION};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::watches::prune::Pruned;

/// Waits for Kueue's API, then runs the controller until the process ends.
pub async fn run(ctx: Arc<Context>) {
    while !kueue_served(&ctx.client).await {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    info!("Kueue's API is served: TrainingJobs with {QUEUE_LABEL} are queued in Kueue");
    let jobs: Api<TrainingJob> = Api::all(ctx.client.clone());
    let workloads = resource("Workload", "workloads");
    // A cache of its own (the queued jobs alone), pruned as the main one is.
    let (queued, writer) = reflector::store();
    let queued_jobs = watcher(jobs, watcher::Config::default().labels(QUEUE_LABEL))
        .default_backoff()
        .modify(Pruned::prune)
        .reflect(writer)
        .touched_objects();
    Controller::for_stream(queued_jobs, queued)
        .owns_with(
            Api::<DynamicObject>::all_with(ctx.client.clone(), &workloads),
            workloads,
            watcher::Config::default(),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                debug!(%error, "kueue reconcile error");
            }
        })
        .await;
}

/// Whether Kueue's API (`kueue.x-k8s.io/v1beta2` Workloads) is served.
pub(crate) async fn kueue_served(client: &Client) -> bool {
    client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.name == "workloads"))
}

fn error_policy(job: Arc<TrainingJob>, error: &Error, _: Arc<Context>) -> Action {
    warn!(job = %job.name_any(), %error, "kueue reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// One pass for one queued job: read its Workload, decide, do.
async fn reconcile(job: Arc<TrainingJob>, ctx: Arc<Context>) -> Result<Action> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = job.namespace().unwrap_or_default();
    let workloads: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &namespace,
        &resource("Workload", "workloads"),
    );
    let name = workload::name(&job);
    let found = workloads
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("reading Workload {name}")))?
        .map(|w| serde_json::to_value(w).unwrap_or_default());
    let pods_active = !ctx
        .stores
        .job_pods
        .of_job(&namespace, &job.name_any())
        .is_empty();
    let step = decide(&job, found.as_ref(), pods_active);
    if step != Step::Nothing {
        info!(job = %format!("{namespace}/{}", job.name_any()), workload = %name, ?step, "kueue");
    }
    let wl = found.unwrap_or_default();
    match step {
        Step::Nothing => return Ok(Action::await_change()),
        Step::AwaitPodsGone => return Ok(Action::requeue(Duration::from_secs(1))),
        Step::CreateWorkload => create(&ctx, &job, &workloads).await?,
        Step::Finish { reason, message } => {
            patch_conditions(&workloads, &wl, false, |c, g, now| {
                set_condition(c, "Finished", true, reason, &message, g, now);
            })
            .await?
        }
        Step::ClearReservation { reason, message } => {
            // jobframework: Requeued (true after a preemption or node failures),
            // QuotaReserved=False (Pending), the admission removed, Admitted synced.
            let requeued = matches!(reason.as_str(), "Preempted" | "NodeFailures");
            patch_conditions(&workloads, &wl, true, |c, g, now| {
                set_condition(c, "Requeued", requeued, &reason, &message, g, now);
                set_condition(c, "QuotaReserved", false, "Pending", &message, g, now);
                if workload::condition(&json!({"status": {"conditions": c}}), "Admitted")
                    .is_some_and(|a| a.0 == "True")
                {
                    let text = "The workload has no reservation";
                    set_condition(c, "Admitted", false, "NoReservation", text, g, now);
                }
            })
            .await?
        }
        Step::Start { flavors } => start(&ctx, &job, &name, &flavors).await?,
        Step::Stop { why } => {
            let spec = job.spec.template.spec.clone().unwrap_or_default();
            let mut patch = template_patch(&spec, &restored(&wl));
            patch["spec"]["runPolicy"] = json!({"suspend": true});
            patch_job(&ctx, &job, &patch).await?;
            info!(job = %job.name_any(), %why, "stopped the job for Kueue");
        }
        Step::AdoptWorkload => {
            let mut owners = wl["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            owners.retain(|o| o["controller"] != true);
            owners.push(workload::owner_reference(&job));
            workloads
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"ownerReferences": owners}})),
                )
                .await
                .map_err(Error::kube(format!("adopting Workload {name}")))?;
        }
        Step::UpdateQueue(queue) => {
            workloads
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"queueName": queue}})),
                )
                .await
                .map_err(Error::kube(format!(
                    "updating the queue of Workload {name}"
                )))?;
        }
    }
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// Creates the job's Workload, with its WorkloadPriorityClass's value if it names one.
async fn create(ctx: &Context, job: &TrainingJob, workloads: &Api<DynamicObject>) -> Result<()> {
    let queue = super::queue_name(job).unwrap_or_default();
    let priority = match workload::priority_class(job) {
        None => None,
        Some(class) => {
            let classes: Api<DynamicObject> = Api::all_with(
                ctx.client.clone(),
                &resource("WorkloadPriorityClass", "workloadpriorityclasses"),
            );
            let found = classes.get(class).await.map_err(Error::kube(format!(
                "reading WorkloadPriorityClass {class}"
            )))?;
            let value = found.data["value"].as_i64().unwrap_or_default() as i32;
            Some((class, value))
        }
    };
    let body: DynamicObject = serde_json::from_value(workload::build(job, queue, priority))
        .map_err(|e| Error::Invalid(format!("the Workload of {}: {e}", job.name_any())))?;
    match workloads.create(&PostParams::default(), &body).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(Error::kube(format!(
            "creating Workload {}",
            body.name_any()
        ))(e)),
    }
}

/// Starts the job for its admission: the flavors' node labels and tolerations into its
/// template, `runPolicy.suspend` false, and the started annotation.
async fn start(ctx: &Context, job: &TrainingJob, workload: &str, names: &[String]) -> Result<()> {
    let flavors: Api<DynamicObject> = Api::all_with(
        ctx.client.clone(),
        &resource("ResourceFlavor", "resourceflavors"),
    );
    let mut objects = Vec::with_capacity(names.len());
    for name in names {
        let flavor = flavors
            .get(name)
            .await
            .map_err(Error::kube(format!("reading ResourceFlavor {name}")))?;
        objects.push(serde_json::to_value(flavor).unwrap_or_default());
    }
    let spec = job.spec.template.spec.clone().unwrap_or_default();
    let target = from_flavors(&objects)
        .and_then(|info| merged(&spec, &info))
        .map_err(Error::Invalid)?;
    let mut patch = template_patch(&spec, &target);
    patch["spec"]["runPolicy"] = json!({"suspend": false});
    patch["metadata"] = json!({"annotations": {STARTED_ANNOTATION: workload}});
    patch_job(ctx, job, &patch).await?;
    ctx.wake_scheduler.notify_one();
    Ok(())
}

async fn patch_job(ctx: &Context, job: &TrainingJob, patch: &Value) -> Result<()> {
    let jobs: Api<TrainingJob> =
        Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    jobs.patch(
        &job.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(Error::kube(format!(
        "patching TrainingJob {} for Kueue",
        job.name_any()
    )))?;
    Ok(())
}

/// Changes the Workload's conditions (and removes its admission if `clear_admission`)
/// with a merge patch of its status, conditional on its resourceVersion: a Workload that
/// Kueue changed meanwhile is read again (409, retried).
async fn patch_conditions(
    workloads: &Api<DynamicObject>,
    wl: &Value,
    clear_admission: bool,
    change: impl FnOnce(&mut Vec<Value>, Option<i64>, &str),
) -> Result<()> {
    let name = wl
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut conditions: Vec<Value> = wl
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let generation = wl.pointer("/metadata/generation").and_then(Value::as_i64);
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    change(&mut conditions, generation, &now);
    let mut patch = json!({
        "metadata": {"resourceVersion": wl.pointer("/metadata/resourceVersion")},
        "status": {"conditions": conditions},
    });
    if clear_admission {
        patch["status"]["admission"] = Value::Null;
    }
    workloads
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(format!(
            "updating the status of Workload {name}"
        )))?;
    Ok(())
}
