//! The TrainingJob reconcile: applies the scheduling cycle's decision for one job and
//! drives its lifecycle from what its pods say.
//!
//! # Expected flow
//! Pending/Deferred → (cycle decides Place) → status Starting with site and nodes, written
//! FIRST → headless Service → all pods created unbound → every pod bound → Running when all
//! run → Succeeded when all succeed. A failed replica or lost node tears the whole gang
//! down and restarts it (`restarts`++) up to `backoffLimit`, then Failed.
//!
//! # Guarantees
//! - No partial gang holds GPUs: pods are bound only after all of them exist.
//! - No duplicates: pod names are `<job>-<index>`, so a retried creation finds the pod.
//! - Restart safety: the placement is in the status before any pod exists, so an operator
//!   killed mid-gang finishes the same gang after it restarts.
//!
//! # Caveats
//! The caches may lag the API server by a moment; creation treats "already exists" as
//! success, binding treats "already bound" as success, and missing pods only count as
//! lost once the gang had fully started.
//!
//! A job whose pods or Service the API server rejects (HTTP 400/422) can never run as
//! specified: it fails at once with `FailedCreate` and a Warning Event, its pods are
//! deleted and the engine no longer counts it, so it holds no capacity.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Event;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};
use verdant_core::placement::Action;
use verdant_crds::{JobPhase, TrainingJob, TrainingJobStatus};

use crate::context::Context;
use crate::error::{Error, Result, rejection};
use crate::labels::{FIELD_MANAGER, FINALIZER, MANAGED_BY_LABEL, RESTART_LABEL};
use crate::lifecycle::{Gang, observe};
use crate::metrics::label;
use crate::reason::Reason;
use crate::snapshot::{job_id, pods_of_job};
use crate::status::{self, all_replicas, clear_placement, set_phase};
use crate::workload::{build_pod, build_service, pod_name};

/// Reconciles one TrainingJob.
pub async fn reconcile(job: Arc<TrainingJob>, ctx: Arc<Context>) -> Result<Requeue> {
    ctx.metrics.reconciliations.inc();
    let namespace = job.namespace().ok_or_else(|| {
        Error::Invalid(format!("TrainingJob {} has no namespace", job.name_any()))
    })?;
    let api: Api<TrainingJob> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, job, |event| async {
        match event {
            FinalizerEvent::Apply(job) => apply(job, &ctx, &api).await,
            FinalizerEvent::Cleanup(job) => cleanup(job, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Transient errors are retried with a short delay; invalid objects wait for a change.
pub fn error_policy(job: Arc<TrainingJob>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&label("error", error.metric_label()))
        .inc();
    warn!(job = %job_id(&job), %error, "reconcile failed");
    if error.is_invalid() {
        Requeue::await_change()
    } else {
        Requeue::requeue(Duration::from_secs(5))
    }
}

struct JobCtx<'a> {
    ctx: &'a Context,
    job: &'a TrainingJob,
    api: &'a Api<TrainingJob>,
    pods: Api<Pod>,
    now: jiff::Timestamp,
}

async fn apply(job: Arc<TrainingJob>, ctx: &Context, api: &Api<TrainingJob>) -> Result<Requeue> {
    let j = JobCtx {
        ctx,
        job: &job,
        api,
        pods: Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default()),
        now: jiff::Timestamp::now(),
    };
    let previous = job.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    status.observed_generation = job.metadata.generation;
    let all_pods = ctx.stores.pods.state();
    let job_pods = pods_of_job(&job, &all_pods);
    let gang = observe(
        &job.name_any(),
        job.spec.replicas.max(0) as u32,
        status.restarts,
        &job_pods,
    );

    let deadline_warning = status::warn_deadline_in_past(&mut status, &job, j.now);
    let requeue = match step(&j, &mut status, &gang).await {
        Err(Error::Rejected { object, message }) => {
            fail_rejected(&j, &mut status, &object, &message).await?
        }
        other => other?,
    };
    if status != previous {
        status::write(api, &job, &status).await?;
        publish_transition(&j, &previous, &status).await;
    }
    if let Some(message) = deadline_warning {
        publish(&j, Reason::DeadlineInPast, &message, "Accepted").await;
    }
    Ok(requeue)
}

/// The API server rejected the job's pods or Service: the job can never run as
/// specified. It fails, its pods go, and the engine stops counting it.
async fn fail_rejected(
    j: &JobCtx<'_>,
    status: &mut TrainingJobStatus,
    object: &str,
    message: &str,
) -> Result<Requeue> {
    warn!(job = %job_id(j.job), %object, %message, "the API server rejected the job's workload; the job fails");
    j.ctx
        .metrics
        .reconcile_errors
        .get_or_create(&label("error", "invalid"))
        .inc();
    delete_pods(j, "the API server rejected the job's workload").await?;
    j.ctx.plan.forget_assumed(&job_id(j.job));
    clear_placement(status);
    set_phase(
        status,
        JobPhase::Failed,
        Reason::FailedCreate,
        format!(
            "the API server rejected {object}: {message}; the job cannot run as specified: fix spec.template and create it again"
        ),
        j.job.metadata.generation,
        j.now,
    );
    status.completion_time = Some(Time(j.now));
    j.ctx.wake_scheduler.notify_one();
    ttl(j, status).await
}

/// Decides and performs the next step; mutates `status` to what it should become.
async fn step(j: &JobCtx<'_>, status: &mut TrainingJobStatus, gang: &Gang) -> Result<Requeue> {
    let job = j.job;
    let generation = job.metadata.generation;
    let id = job_id(job);

    if status.phase.is_finished() {
        if status.phase == JobPhase::Failed
            && gang
                .replicas
                .iter()
                .flatten()
                .any(|r| r.phase != "Failed" && r.phase != "Succeeded")
        {
            delete_pods(j, "the job failed").await?;
        }
        return ttl(j, status).await;
    }

    if job.spec.run_policy.suspend {
        if gang.any_pod() {
            delete_pods(j, "runPolicy.suspend is true").await?;
        }
        if !(status.phase == JobPhase::Suspended
            && status.reason.as_deref() == Some(Reason::SuspendedByUser.as_str()))
        {
            set_phase(status, JobPhase::Suspended, Reason::SuspendedByUser, "runPolicy.suspend is true: pods deleted gracefully (the template's grace period lets training checkpoint); set it to false to resume".into(), generation, j.now);
            status::suspend(status);
            j.ctx.plan.forget_assumed(&id);
        }
        return Ok(Requeue::await_change());
    }
    if status.phase == JobPhase::Suspended
        && status.reason.as_deref() == Some(Reason::SuspendedByUser.as_str())
    {
        // Still Suspended: the engine queues it as a suspended job and resumes it
        // (`Resumed`) under its policy, like a job suspended for renewables.
        set_phase(
            status,
            JobPhase::Suspended,
            Reason::Resuming,
            "runPolicy.suspend is false again: waiting for the next scheduling cycle to resume the job".into(),
            generation,
            j.now,
        );
        j.ctx.wake_scheduler.notify_one();
        return Ok(Requeue::requeue(Duration::from_secs(2)));
    }

    let limit_s = job.spec.run_policy.active_deadline_seconds;
    if let Some(deadline) = status::active_deadline_at(limit_s, status)
        && j.now > deadline
    {
        let started = status.start_time.as_ref().map(|t| t.0);
        delete_pods(j, "activeDeadlineSeconds exceeded").await?;
        set_phase(
            status,
            JobPhase::Failed,
            Reason::DeadlineExceeded,
            format!(
                "the job ran longer than runPolicy.activeDeadlineSeconds ({} s) since it last started running at {}; pods deleted",
                limit_s.unwrap_or_default(),
                started.map(|t| t.to_string()).unwrap_or_default()
            ),
            generation,
            j.now,
        );
        status.completion_time = Some(Time(j.now));
        j.ctx.wake_scheduler.notify_one();
        return ttl(j, status).await;
    }

    match status.phase {
        JobPhase::Starting | JobPhase::Running => running_gang(j, status, gang).await,
        JobPhase::Pending | JobPhase::Deferred | JobPhase::Suspended => {
            waiting_job(j, status, gang).await
        }
        JobPhase::Succeeded | JobPhase::Failed => Ok(Requeue::await_change()),
    }
}

/// A placed gang: restart it if broken, finish it, apply power decisions, complete its start.
async fn running_gang(
    j: &JobCtx<'_>,
    status: &mut TrainingJobStatus,
    gang: &Gang,
) -> Result<Requeue> {
    let job = j.job;
    let generation = job.metadata.generation;
    let id = job_id(job);
    let nodes = &j.ctx.stores.nodes;
    let node_exists = |name: &str| nodes.state().iter().any(|n| n.name_any() == name);
    let planned_node_lost = status.nodes.iter().find(|n| !node_exists(n)).cloned();
    let problem = gang
        .problem(status.phase == JobPhase::Running, node_exists)
        .map(|p| p.describe())
        .or_else(|| planned_node_lost.map(|n| format!("planned node {n} disappeared")));

    if let Some(problem) = problem {
        delete_pods(j, &problem).await?;
        j.ctx.plan.forget_assumed(&id);
        clear_placement(status);
        let limit = job.spec.run_policy.backoff_limit;
        if status.restarts >= limit {
            set_phase(
                status,
                JobPhase::Failed,
                Reason::BackoffLimitExceeded,
                format!(
                    "{problem}; the gang was already restarted {} time(s), runPolicy.backoffLimit is {limit}",
                    status.restarts
                ),
                generation,
                j.now,
            );
            status.completion_time = Some(Time(j.now));
            j.ctx.wake_scheduler.notify_one();
            return ttl(j, status).await;
        }
        status.restarts += 1;
        set_phase(
            status,
            JobPhase::Pending,
            Reason::GangRestart,
            format!(
                "{problem}; NCCL cannot survive a lost rank, so the whole gang was torn down and will be placed again (restart {} of at most {limit})",
                status.restarts
            ),
            generation,
            j.now,
        );
        j.ctx.wake_scheduler.notify_one();
        return Ok(Requeue::requeue(Duration::from_secs(2)));
    }

    if gang.all_succeeded() {
        let site = status.site.clone().unwrap_or_default();
        set_phase(
            status,
            JobPhase::Succeeded,
            Reason::Completed,
            format!("{} completed at {site}", all_replicas(gang.replicas.len())),
            generation,
            j.now,
        );
        status.completion_time = Some(Time(j.now));
        j.ctx.wake_scheduler.notify_one();
        return ttl(j, status).await;
    }

    let (decision, _) = j.ctx.plan.for_job(&id);
    if let Some(decision) = &decision {
        match &decision.action {
            // The engine suspends interruptible jobs only: GreenOnly ones in a brown-out,
            // GreenPreferred ones with slack in a brown-out or to make room for a job at
            // its latest start.
            Action::Suspend if job.spec.energy.interruptible => {
                delete_pods(j, &decision.message).await?;
                status::suspend(status);
                set_phase(
                    status,
                    JobPhase::Suspended,
                    decision.reason.into(),
                    decision.message.clone(),
                    generation,
                    j.now,
                );
                j.ctx.wake_scheduler.notify_one();
                return Ok(Requeue::requeue(Duration::from_secs(30)));
            }
            _ => status::apply_power_decision(status, decision),
        }
    }

    if status.phase == JobPhase::Starting {
        let site = status.site.clone().unwrap_or_default();
        let nodes = status.nodes.clone();
        if !ensure_gang(j, status.restarts, &site, &nodes, gang).await? {
            return Ok(Requeue::requeue(Duration::from_secs(1)));
        }
        if gang.all_running() {
            status::mark_running(status, j.now);
            let reason = status
                .reason
                .as_deref()
                .and_then(Reason::from_code)
                .unwrap_or(Reason::Engine(verdant_core::placement::Reason::Running));
            let message = format!(
                "{} running at {site}; {}",
                all_replicas(gang.replicas.len()),
                status.message.clone().unwrap_or_default()
            );
            set_phase(
                status,
                JobPhase::Running,
                reason,
                message,
                generation,
                j.now,
            );
            return Ok(Requeue::requeue(status::next_check(
                status::active_deadline_at(job.spec.run_policy.active_deadline_seconds, status),
                j.now,
            )));
        }
        return Ok(Requeue::requeue(Duration::from_secs(2)));
    }
    let deadline = status::active_deadline_at(job.spec.run_policy.active_deadline_seconds, status);
    Ok(Requeue::requeue(status::next_check(deadline, j.now)))
}

/// A job waiting for a placement: apply the cycle's decision.
async fn waiting_job(
    j: &JobCtx<'_>,
    status: &mut TrainingJobStatus,
    gang: &Gang,
) -> Result<Requeue> {
    let job = j.job;
    let generation = job.metadata.generation;
    let id = job_id(job);
    let (decision, assumed) = j.ctx.plan.for_job(&id);

    if let Some(placement) = assumed {
        // The assumed placement keeps the Place decision: later cycles see the job as
        // running and decide Keep for it.
        let (reason, message) = (placement.reason, placement.message.clone());
        // The placement is written to the status before any pod exists: if the operator
        // dies now, it finishes this same gang after it restarts.
        status.site = Some(placement.site.clone());
        status.nodes = placement.nodes.clone();
        status.expected_start_time = None;
        set_phase(
            status,
            JobPhase::Starting,
            reason.into(),
            message,
            generation,
            j.now,
        );
        status::write(j.api, job, status).await?;
        ensure_gang(j, status.restarts, &placement.site, &placement.nodes, gang).await?;
        return Ok(Requeue::requeue(Duration::from_secs(1)));
    }

    let Some(decision) = decision else {
        if status.reason.is_none() {
            set_phase(
                status,
                JobPhase::Pending,
                Reason::Queued,
                "waiting for the next scheduling cycle".into(),
                generation,
                j.now,
            );
        }
        j.ctx.wake_scheduler.notify_one();
        return Ok(Requeue::requeue(Duration::from_secs(5)));
    };
    let reason = Reason::from(decision.reason);
    match &decision.action {
        Action::Defer { until_s, .. } => {
            let phase = if status.phase == JobPhase::Suspended {
                JobPhase::Suspended
            } else {
                JobPhase::Deferred
            };
            set_phase(
                status,
                phase,
                reason,
                decision.message.clone(),
                generation,
                j.now,
            );
            status.expected_start_time = until_s
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(Time);
        }
        Action::Suspend => {
            if gang.any_pod() {
                delete_pods(j, &decision.message).await?;
            }
            status::suspend(status);
            set_phase(
                status,
                JobPhase::Suspended,
                reason,
                decision.message.clone(),
                generation,
                j.now,
            );
        }
        _ => {
            let phase = if status.phase == JobPhase::Suspended {
                JobPhase::Suspended
            } else {
                JobPhase::Pending
            };
            set_phase(
                status,
                phase,
                reason,
                decision.message.clone(),
                generation,
                j.now,
            );
            status.expected_start_time = None;
        }
    }
    Ok(Requeue::requeue(Duration::from_secs(60)))
}

/// Creates the missing pods of the gang, then binds every unbound one. Returns false while
/// pods of an earlier attempt are still going away.
async fn ensure_gang(
    j: &JobCtx<'_>,
    restart: i32,
    site: &str,
    nodes: &[String],
    gang: &Gang,
) -> Result<bool> {
    let job = j.job;
    let job_name = job.name_any();
    ensure_service(j).await?;
    let mut to_bind: Vec<(String, String)> = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let index = index as u32;
        let name = pod_name(&job_name, index);
        match gang.replicas.get(index as usize).cloned().flatten() {
            Some(pod) if pod.node.is_some() => continue,
            Some(_) => to_bind.push((name, node.clone())),
            None => {
                let pod = build_pod(job, index, site, node, restart);
                match j
                    .pods
                    .create(
                        &PostParams {
                            field_manager: Some(FIELD_MANAGER.to_owned()),
                            ..Default::default()
                        },
                        &pod,
                    )
                    .await
                {
                    Ok(_) => to_bind.push((name, node.clone())),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let existing = j
                            .pods
                            .get(&name)
                            .await
                            .map_err(Error::kube(format!("reading pod {name}")))?;
                        let current = existing.labels().get(RESTART_LABEL)
                            == Some(&restart.to_string())
                            && existing.metadata.deletion_timestamp.is_none();
                        if !current {
                            info!(job = %job_id(job), pod = %name, "waiting for the pod of an earlier attempt to go away");
                            return Ok(false);
                        }
                        if existing
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_ref())
                            .is_none()
                        {
                            to_bind.push((name, node.clone()));
                        }
                    }
                    Err(e) => return Err(creation_error(format!("pod {name}"), e)),
                }
            }
        }
    }
    // Only now, with every pod of the gang in existence, do any of them get GPUs.
    for (name, node) in &to_bind {
        bind(j, name, node).await?;
    }
    if !to_bind.is_empty() {
        let created_s = job
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(j.now.as_second(), |t| t.0.as_second());
        j.ctx
            .metrics
            .placement_latency
            .observe((j.now.as_second() - created_s).max(0) as f64);
        info!(job = %job_id(job), %site, pods = to_bind.len(), "gang bound");
    }
    Ok(true)
}

async fn bind(j: &JobCtx<'_>, pod: &str, node: &str) -> Result<()> {
    let binding = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match j
        .pods
        .create_subresource::<serde_json::Value, serde_json::Value>(
            "binding",
            pod,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            j.ctx.metrics.pods_bound.inc();
            Ok(())
        }
        // Already bound (the cache lagged behind an earlier binding).
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(Error::kube(format!("binding pod {pod} to node {node}"))(e)),
    }
}

async fn ensure_service(j: &JobCtx<'_>) -> Result<()> {
    let services: Api<Service> =
        Api::namespaced(j.ctx.client.clone(), &j.job.namespace().unwrap_or_default());
    let service = build_service(j.job);
    services
        .patch(
            &j.job.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&service),
        )
        .await
        .map_err(|e| creation_error(format!("the headless Service {}", j.job.name_any()), e))?;
    Ok(())
}

/// A failed creation: `Rejected` when the API server refused the object as invalid (no
/// retry can help), else a transient API error.
fn creation_error(object: String, error: kube::Error) -> Error {
    match rejection(&error) {
        Some(message) => Error::Rejected { object, message },
        None => Error::kube(format!("creating {object}"))(error),
    }
}

async fn delete_pods(j: &JobCtx<'_>, why: &str) -> Result<()> {
    info!(job = %job_id(j.job), reason = why, "deleting the gang's pods");
    delete_owned_pods(&j.pods, j.job).await
}

/// Deletes every pod the job owns, found by the job's UID in their owner references
/// rather than by a label selector made of the job's name: that works for any name, so
/// the operator can always delete what it created.
async fn delete_owned_pods(pods: &Api<Pod>, job: &TrainingJob) -> Result<()> {
    let job_name = job.name_any();
    let managed = format!("{MANAGED_BY_LABEL}=verdant");
    let listed = pods
        .list(&ListParams::default().labels(&managed))
        .await
        .map_err(Error::kube(format!("listing the pods of {job_name}")))?;
    let uid = job.uid();
    for pod in listed.items.iter().filter(|p| owned_by(p, uid.as_deref())) {
        let name = pod.name_any();
        match pods.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(Error::kube(format!("deleting pod {name} of {job_name}"))(e));
            }
        }
    }
    Ok(())
}

/// Whether `uid` is the controller owner of `pod`.
fn owned_by(pod: &Pod, uid: Option<&str>) -> bool {
    uid.is_some_and(|uid| {
        pod.owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == uid)
    })
}

/// Deletes a finished job once its TTL has passed.
async fn ttl(j: &JobCtx<'_>, status: &TrainingJobStatus) -> Result<Requeue> {
    let (Some(ttl_s), Some(done)) = (
        j.job.spec.run_policy.ttl_seconds_after_finished,
        &status.completion_time,
    ) else {
        return Ok(Requeue::await_change());
    };
    let due_s = done.0.as_second() + i64::from(ttl_s);
    let left_s = due_s - j.now.as_second();
    if left_s > 0 {
        return Ok(Requeue::requeue(Duration::from_secs(left_s as u64)));
    }
    info!(job = %job_id(j.job), ttl_s, "deleting finished job: ttlSecondsAfterFinished passed");
    match j
        .api
        .delete(&j.job.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            return Err(Error::kube(format!(
                "deleting finished TrainingJob {}",
                j.job.name_any()
            ))(e));
        }
    }
    Ok(Requeue::await_change())
}

/// Removes the job's pods and Service: nothing else would (no garbage collector needed).
async fn cleanup(job: Arc<TrainingJob>, ctx: &Context) -> Result<Requeue> {
    let namespace = job.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    delete_owned_pods(&pods, &job).await?;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    match services
        .delete(&job.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        // 400: a name no Service can have (a job from before names were validated).
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 400 => {}
        Err(e) => {
            return Err(Error::kube(format!(
                "deleting the Service of deleted TrainingJob {}",
                job.name_any()
            ))(e));
        }
    }
    let id = job_id(&job);
    ctx.plan.with(|p| {
        p.assumed.remove(&id);
        p.decisions.remove(&id);
    });
    ctx.wake_scheduler.notify_one();
    info!(job = %id, "cleaned up pods and Service of deleted job");
    Ok(Requeue::await_change())
}

/// One Event per transition of phase or reason, with the decision's message.
async fn publish_transition(
    j: &JobCtx<'_>,
    previous: &TrainingJobStatus,
    status: &TrainingJobStatus,
) {
    if previous.phase == status.phase
        && previous.reason == status.reason
        && previous.power_cap_percent == status.power_cap_percent
    {
        return;
    }
    let reason = match (previous.phase, status.phase) {
        (JobPhase::Starting, JobPhase::Running) => Some(Reason::Started),
        _ => status.reason.as_deref().and_then(Reason::from_code),
    };
    let Some(reason) = reason else {
        warn!(job = %job_id(j.job), reason = ?status.reason, "no Event for a reason Verdant does not define");
        return;
    };
    let message = status.message.clone().unwrap_or_default();
    publish(
        j,
        reason,
        &message,
        crate::scheduler::phase_name(status.phase),
    )
    .await;
}

/// Publishes an Event on the job, of the reason's type, and counts the decision.
async fn publish(j: &JobCtx<'_>, reason: Reason, message: &str, action: &str) {
    j.ctx
        .metrics
        .decisions
        .get_or_create(&label("reason", reason.as_str()))
        .inc();
    let event = Event {
        type_: reason.event_type(),
        reason: reason.as_str().to_owned(),
        note: Some(message.chars().take(1000).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = j.ctx.recorder.publish(&event, &j.job.object_ref(&())).await {
        warn!(job = %job_id(j.job), error = %e, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_found_by_their_controller_owner() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x-0", "ownerReferences": [
                {"apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob", "name": "x", "uid": "u1", "controller": true}
            ]}
        }))
        .unwrap();
        assert!(owned_by(&pod, Some("u1")));
        assert!(!owned_by(&pod, Some("u2")));
        assert!(!owned_by(&pod, None));
    }
}
