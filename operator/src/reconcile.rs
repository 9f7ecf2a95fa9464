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

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};
use verdant_core::placement::Action;
use verdant_crds::{JobPhase, TrainingJob, TrainingJobStatus};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::labels::{FIELD_MANAGER, FINALIZER, JOB_NAME_LABEL, RESTART_LABEL};
use crate::lifecycle::{Gang, observe};
use crate::metrics::label;
use crate::snapshot::{job_id, pods_of_job};
use crate::status::{self, set_phase};
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
    match error {
        Error::Invalid(_) => Requeue::await_change(),
        _ => Requeue::requeue(Duration::from_secs(5)),
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

    let requeue = step(&j, &mut status, &gang).await?;
    if status != previous {
        status::write(api, &job, &status).await?;
        publish_transition(&j, &previous, &status).await;
    }
    Ok(requeue)
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
            && status.reason.as_deref() == Some("SuspendedByUser"))
        {
            set_phase(status, JobPhase::Suspended, "SuspendedByUser", "runPolicy.suspend is true: pods deleted gracefully (the template's grace period lets training checkpoint); set it to false to resume".into(), generation, j.now);
            clear_placement(status);
            j.ctx.plan.forget_assumed(&id);
        }
        return Ok(Requeue::await_change());
    }
    if status.phase == JobPhase::Suspended && status.reason.as_deref() == Some("SuspendedByUser") {
        set_phase(
            status,
            JobPhase::Pending,
            "Resuming",
            "runPolicy.suspend is false again: waiting for the next scheduling cycle".into(),
            generation,
            j.now,
        );
        j.ctx.wake_scheduler.notify_one();
        return Ok(Requeue::requeue(Duration::from_secs(2)));
    }

    if let (Some(limit_s), Some(start)) = (
        job.spec.run_policy.active_deadline_seconds,
        &status.start_time,
    ) && j.now.as_second() - start.0.as_second() > limit_s
    {
        delete_pods(j, "activeDeadlineSeconds exceeded").await?;
        set_phase(
            status,
            JobPhase::Failed,
            "DeadlineExceeded",
            format!(
                "the job ran longer than runPolicy.activeDeadlineSeconds ({limit_s} s) since {}; pods deleted",
                start.0
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
                "BackoffLimitExceeded",
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
            "GangRestart",
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
            "Completed",
            format!("all {} replicas completed at {site}", gang.replicas.len()),
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
                clear_placement(status);
                set_phase(
                    status,
                    JobPhase::Suspended,
                    decision.reason.as_str(),
                    decision.message.clone(),
                    generation,
                    j.now,
                );
                j.ctx.wake_scheduler.notify_one();
                return Ok(Requeue::requeue(Duration::from_secs(30)));
            }
            Action::PowerCap { percent } => {
                status.power_cap_percent = Some(*percent as i32);
                status.reason = Some(decision.reason.as_str().to_owned());
                status.message = Some(decision.message.clone());
            }
            Action::Uncap => {
                status.power_cap_percent = None;
                status.reason = Some(decision.reason.as_str().to_owned());
                status.message = Some(decision.message.clone());
            }
            _ => {}
        }
    }

    if status.phase == JobPhase::Starting {
        let site = status.site.clone().unwrap_or_default();
        let nodes = status.nodes.clone();
        if !ensure_gang(j, status.restarts, &site, &nodes, gang).await? {
            return Ok(Requeue::requeue(Duration::from_secs(1)));
        }
        if gang.all_running() {
            if status.start_time.is_none() {
                status.start_time = Some(Time(j.now));
            }
            let reason = status
                .reason
                .clone()
                .unwrap_or_else(|| "Running".to_owned());
            let message = format!(
                "all {} replicas running at {site}; {}",
                gang.replicas.len(),
                status.message.clone().unwrap_or_default()
            );
            set_phase(
                status,
                JobPhase::Running,
                &reason,
                message,
                generation,
                j.now,
            );
            return Ok(Requeue::requeue(Duration::from_secs(30)));
        }
        return Ok(Requeue::requeue(Duration::from_secs(2)));
    }
    let next_check =
        job.spec
            .run_policy
            .active_deadline_seconds
            .map_or(Duration::from_secs(60), |limit| {
                let started = status
                    .start_time
                    .as_ref()
                    .map_or(j.now.as_second(), |t| t.0.as_second());
                Duration::from_secs((started + limit + 1 - j.now.as_second()).clamp(1, 60) as u64)
            });
    Ok(Requeue::requeue(next_check))
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
        let (reason, message) = (placement.reason.clone(), placement.message.clone());
        // The placement is written to the status before any pod exists: if the operator
        // dies now, it finishes this same gang after it restarts.
        status.site = Some(placement.site.clone());
        status.nodes = placement.nodes.clone();
        status.expected_start_time = None;
        set_phase(
            status,
            JobPhase::Starting,
            &reason,
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
                "Queued",
                "waiting for the next scheduling cycle".into(),
                generation,
                j.now,
            );
        }
        j.ctx.wake_scheduler.notify_one();
        return Ok(Requeue::requeue(Duration::from_secs(5)));
    };
    let reason = decision.reason.as_str();
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
                    Err(e) => return Err(Error::kube(format!("creating pod {name}"))(e)),
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
        .map_err(Error::kube(format!(
            "applying the headless Service of {}",
            j.job.name_any()
        )))?;
    Ok(())
}

async fn delete_pods(j: &JobCtx<'_>, why: &str) -> Result<()> {
    let selector = format!("{JOB_NAME_LABEL}={}", j.job.name_any());
    info!(job = %job_id(j.job), reason = why, "deleting the gang's pods");
    j.pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await
        .map_err(Error::kube(format!(
            "deleting the pods of {}",
            j.job.name_any()
        )))?;
    Ok(())
}

fn clear_placement(status: &mut TrainingJobStatus) {
    status.site = None;
    status.nodes.clear();
    status.power_cap_percent = None;
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
    let selector = format!("{JOB_NAME_LABEL}={}", job.name_any());
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&selector),
    )
    .await
    .map_err(Error::kube(format!(
        "deleting the pods of deleted TrainingJob {}",
        job.name_any()
    )))?;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    match services
        .delete(&job.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
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
        (JobPhase::Starting, JobPhase::Running) => "Started".to_owned(),
        _ => status
            .reason
            .clone()
            .unwrap_or_else(|| "Updated".to_owned()),
    };
    let warning = matches!(status.phase, JobPhase::Failed)
        || matches!(
            reason.as_str(),
            "GangRestart" | "Suspended" | "SuspendedForRenewables"
        );
    j.ctx
        .metrics
        .decisions
        .get_or_create(&label("reason", &reason))
        .inc();
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.clone(),
        note: status
            .message
            .clone()
            .map(|m| m.chars().take(1000).collect()),
        action: crate::scheduler::phase_name(status.phase).to_owned(),
        secondary: None,
    };
    if let Err(e) = j.ctx.recorder.publish(&event, &j.job.object_ref(&())).await {
        warn!(job = %job_id(j.job), error = %e, "could not publish event");
    }
}
