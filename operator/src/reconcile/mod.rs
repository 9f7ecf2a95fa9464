//! The TrainingJob reconcile: observes one job, asks the pure [`transition`] what its
//! status should be and what must happen, and lets the [`execute`] module do it.
//!
//! # Expected flow
//! watch event → [`reconcile`] (through the finalizer) → observe: the job, its pods from
//! the cache as a [`Gang`](crate::lifecycle::Gang) (through the job→pods index), which
//! of the nodes it refers to exist, and the cycle's decision and assumed placement from
//! the [`Plan`](crate::plan::Plan) →
//! [`transition::transition`] → [`execute::Executor::apply`]: pods deleted, the status
//! written once, the gang created and bound, Events published, the scheduler woken.
//!
//! # Guarantees
//! - Restart safety: the placement is in the status before any pod exists, so an operator
//!   killed mid-gang finishes the same gang after it restarts.
//! - A job whose pods or Service the API server rejects (HTTP 400/422) can never run as
//!   specified: it fails at once with `FailedCreate` and a Warning Event
//!   ([`transition::rejected`]), its pods are deleted and the engine no longer counts it,
//!   so it holds no capacity. (That pass writes the status a second time: the rejection
//!   is only known once the placement was written and the gang attempted.)
//! - A job whose namespace is being deleted neither restarts its gang when its pods go
//!   first (the Namespace is read before any restart) nor retries creations the API
//!   server refuses there (403 `NamespaceTerminating`): it waits for its own deletion.
//! - A deleted job's pods and Service (if it has one) go with it ([`cleanup`], under a
//!   finalizer).

pub mod bindings;
pub mod effect;
pub mod execute;
pub mod transition;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};
use verdant_crds::TrainingJob;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::labels::FINALIZER;
use crate::lifecycle::observe;
use crate::metrics::label;
use crate::topology::job_id;
use crate::workload::needs_service;
use execute::{Executor, delete_owned_pods};
use transition::{JobPlan, Observed, transition};

/// Reconciles one TrainingJob.
pub async fn reconcile(job: Arc<TrainingJob>, ctx: Arc<Context>) -> Result<Requeue> {
    ctx.metrics.reconciliations.inc();
    if !job.spec.managed_by_verdant() {
        // Another controller runs it (`spec.managedBy`, immutable): no finalizer, no
        // status, no pods from Verdant.
        return Ok(Requeue::await_change());
    }
    let namespace = job.namespace().ok_or_else(|| {
        Error::Invalid(format!("TrainingJob {} has no namespace", job.name_any()))
    })?;
    let api: Api<TrainingJob> = Api::namespaced(ctx.client.clone(), &namespace);
    // The finalizer helper only adds the finalizer on a new job's first pass; the job is
    // then safe to act on, so the same pass goes on rather than waiting for the watch to
    // bring the patched job back (one round trip less before a new job is decided).
    let adds_finalizer = job.metadata.deletion_timestamp.is_none()
        && !job.finalizers().iter().any(|f| f == FINALIZER);
    let requeue = finalizer(&api, FINALIZER, job.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(job) => apply(job, &ctx, &api).await,
            FinalizerEvent::Cleanup(job) => cleanup(job, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    match adds_finalizer {
        true => apply(job, &ctx, &api).await,
        false => Ok(requeue),
    }
}

/// Transient errors are retried with a short delay (a stale cached job after 1 s, logged
/// at debug); invalid objects wait for a change.
pub fn error_policy(job: Arc<TrainingJob>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&label("error", error.metric_label()))
        .inc();
    if error.is_conflict() {
        debug!(job = %job_id(&job), %error, "the cached job was behind the API server; retried in 1 s");
        return Requeue::requeue(Duration::from_secs(1));
    }
    warn!(job = %job_id(&job), %error, "reconcile failed");
    if error.is_invalid() {
        Requeue::await_change()
    } else {
        Requeue::requeue(Duration::from_secs(5))
    }
}

/// Observes the job, decides, and carries the decision out.
async fn apply(job: Arc<TrainingJob>, ctx: &Context, api: &Api<TrainingJob>) -> Result<Requeue> {
    let now = jiff::Timestamp::now();
    let previous = job.status.clone().unwrap_or_default();
    let namespace = job.namespace().unwrap_or_default();
    let pods = ctx.stores.job_pods.of_job(&namespace, &job.name_any());
    let gang = observe(
        &job.name_any(),
        crate::status::gang_size(&job),
        previous.restarts,
        &pods.iter().map(|(name, pod)| (name.clone(), pod)).collect(),
    );
    let (decision, assumed) = ctx.plan.for_job(&job_id(&job));
    let nodes = existing_nodes(ctx, &previous, assumed.as_ref(), &gang);
    let mut observed = Observed {
        job: &job,
        gang: &gang,
        nodes: &nodes,
        namespace_terminating: false,
    };
    let plan = JobPlan { decision, assumed };
    let mut outcome = transition(&observed, &plan, now);
    // Asked only when the gang would restart: pods vanish first when a namespace is
    // deleted, and a restart there would be torn down again by the teardown.
    if outcome.gang_lost && namespace_terminating(ctx, &namespace).await {
        info!(job = %job_id(&job), "the namespace is being deleted: the gang is not restarted");
        observed.namespace_terminating = true;
        outcome = transition(&observed, &plan, now);
    }
    let executor = Executor::new(ctx, &job, api, &gang, now);
    match executor.apply(&previous, &outcome).await {
        // Nothing can be created there any more, and the job is deleted soon.
        Err(error) if error.is_namespace_terminating() => {
            info!(job = %job_id(&job), %error, "the namespace is being deleted: the job waits for its deletion");
            Ok(Requeue::await_change())
        }
        Err(Error::Rejected { object, message }) => {
            warn!(job = %job_id(&job), %object, %message, "the API server rejected the job's workload; the job fails");
            ctx.metrics
                .reconcile_errors
                .get_or_create(&label("error", "invalid"))
                .inc();
            // The rejection came from creating the gang, after the status was written.
            let failed = transition::rejected(&observed, &outcome.status, &object, &message, now);
            executor.apply(&outcome.status, &failed).await
        }
        other => other,
    }
}

/// Whether `namespace` is being deleted (or is gone). A failed look is "no": the gang is
/// restarted as it would be without the check.
async fn namespace_terminating(ctx: &Context, namespace: &str) -> bool {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    match namespaces.get_opt(namespace).await {
        Ok(Some(found)) => found.metadata.deletion_timestamp.is_some(),
        Ok(None) => true,
        Err(error) => {
            warn!(%namespace, %error, "could not read the namespace of a gang to restart");
            false
        }
    }
}

/// Which of the nodes the job refers to (in its status, its assumed placement, under its
/// pods) exist: looked up one by one rather than copying every node name of a large
/// cluster on every reconcile.
fn existing_nodes(
    ctx: &Context,
    status: &verdant_crds::TrainingJobStatus,
    assumed: Option<&crate::snapshot::Assumed>,
    gang: &crate::lifecycle::Gang,
) -> BTreeSet<String> {
    let pod_nodes = gang
        .replicas
        .iter()
        .flatten()
        .filter_map(|r| r.node.as_ref());
    status
        .nodes
        .iter()
        .chain(assumed.into_iter().flat_map(|a| a.nodes.iter()))
        .chain(pod_nodes)
        .filter(|name| ctx.stores.nodes.get(&ObjectRef::new(name)).is_some())
        .cloned()
        .collect()
}

/// Removes the job's pods and Service: nothing else would (no garbage collector needed).
async fn cleanup(job: Arc<TrainingJob>, ctx: &Context) -> Result<Requeue> {
    let namespace = job.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    delete_owned_pods(&pods, &job).await?;
    // A job of one replica that is not elastic never had a Service, unless it was placed
    // on several nodes under an earlier spec.
    let placed_on = job.status.as_ref().map_or(0, |s| s.nodes.len());
    let had_service = needs_service(&job) || placed_on > 1;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleted = match had_service {
        true => services
            .delete(&job.name_any(), &DeleteParams::default())
            .await
            .map(drop),
        false => Ok(()),
    };
    match deleted {
        Ok(()) => {}
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
