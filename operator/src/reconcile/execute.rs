//! The executor: performs a [`transition`](super::transition)'s effects against the API
//! server and writes the status, once, with server-side apply.
//!
//! # Expected flow
//! `EnsureGang`: the headless Service (only on a pass that creates pods, and only for a
//! job that [`needs_service`]), the missing pods, then a Binding per unbound pod.
//!
//! # Guarantees
//! - No partial gang holds GPUs: pods are bound only after all of them exist (the pods
//!   are created concurrently, then bound concurrently; no binding starts before every
//!   creation succeeded).
//! - No duplicates: pod names are `<job>-<index>`, so a retried creation finds the pod.
//! - The status is written once, before any pod of a new placement exists and after the
//!   pods it says are gone were deleted; its Events right after it.
//!
//! # Caveats
//! The caches may lag the API server by a moment: creation treats "already exists" as
//! success (unless the pod is of an earlier attempt: then the gang waits for it to go),
//! binding treats "already bound" as success, deletion treats "not found" as success. A
//! pod this operator bound is remembered ([`Bindings`]) until the cache shows it bound,
//! so a pass that runs before then does not bind it again.

use std::time::Duration;

use futures::StreamExt;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};
use verdant_crds::{TrainingJob, TrainingJobStatus};

use super::bindings::Bindings;
use super::effect::{Effect, Outcome, Requeue, Stage};
use crate::context::Context;
use crate::error::{Error, Result, rejection};
use crate::labels::{
    FIELD_MANAGER, JOB_NAME_LABEL, LABEL_VALUE_MAX_LENGTH, MANAGED_BY_LABEL, RESTART_LABEL,
};
use crate::lifecycle::Gang;
use crate::metrics::label;
use crate::reason::Reason;
use crate::status;
use crate::topology::job_id;
use crate::workload::{build_pod, build_service, needs_service, pod_name};

/// Requests in flight at once for one gang's pod creations, and then for its bindings:
/// a 64-replica gang is created in a few round trips rather than 64, while the reconciles
/// running side by side (`--concurrency`) bound the total.
pub const GANG_CONCURRENCY: usize = 16;

/// Carries out the outcomes of one job's pass.
pub struct Executor<'a> {
    ctx: &'a Context,
    job: &'a TrainingJob,
    api: &'a Api<TrainingJob>,
    pods: Api<Pod>,
    gang: &'a Gang,
    now: jiff::Timestamp,
}

impl<'a> Executor<'a> {
    /// An executor for `job`, whose pods were observed as `gang`.
    pub fn new(
        ctx: &'a Context,
        job: &'a TrainingJob,
        api: &'a Api<TrainingJob>,
        gang: &'a Gang,
        now: jiff::Timestamp,
    ) -> Self {
        let namespace = job.namespace().unwrap_or_default();
        Executor {
            ctx,
            job,
            api,
            pods: Api::namespaced(ctx.client.clone(), &namespace),
            gang,
            now,
        }
    }

    /// Applies `outcome` to a job whose status is `written`: the effects in order, with the
    /// status written (if it changed) before the first that follows from it. Returns when
    /// to look again.
    pub async fn apply(&self, written: &TrainingJobStatus, outcome: &Outcome) -> Result<Action> {
        let mut pending_write = outcome.status != *written;
        let mut requeue = match outcome.requeue {
            Requeue::After(after) => Action::requeue(after),
            Requeue::AwaitChange => Action::await_change(),
        };
        for effect in &outcome.effects {
            if pending_write && effect.stage() > Stage::BeforeStatus {
                status::write(self.api, self.job, &outcome.status).await?;
                pending_write = false;
            }
            if !self.effect(effect).await? {
                requeue = Action::requeue(Duration::from_secs(1));
            }
        }
        if pending_write {
            status::write(self.api, self.job, &outcome.status).await?;
        }
        Ok(requeue)
    }

    /// Performs one effect. `Ok(false)`: the gang waits for pods of an earlier attempt to
    /// go away.
    async fn effect(&self, effect: &Effect) -> Result<bool> {
        match effect {
            Effect::DeletePods { why } => {
                info!(job = %job_id(self.job), reason = %why, "deleting the gang's pods");
                delete_owned_pods(&self.pods, self.job).await?;
            }
            Effect::ForgetAssumed => self.ctx.plan.forget_assumed(&job_id(self.job)),
            Effect::DeleteReplicas { pods, why } => {
                info!(job = %job_id(self.job), reason = %why, ?pods, "deleting the replicas a resize removed");
                delete_pods_named(&self.pods, pods).await?;
            }
            Effect::EnsureGang {
                site,
                nodes,
                restart,
            } => return self.ensure_gang(*restart, site, nodes).await,
            Effect::DeleteJob { ttl_s } => self.delete_job(*ttl_s).await?,
            Effect::WakeScheduler => self.ctx.wake_scheduler.notify_one(),
            Effect::Event {
                reason,
                message,
                action,
            } => self.publish(*reason, message, action).await,
        }
        Ok(true)
    }

    /// Creates the missing pods of the gang, then binds every unbound one, each step with
    /// up to [`GANG_CONCURRENCY`] requests in flight. Returns false while pods of an
    /// earlier attempt are still going away.
    async fn ensure_gang(&self, restart: i32, site: &str, nodes: &[String]) -> Result<bool> {
        let job = self.job;
        let GangWork {
            mut to_bind,
            to_create,
        } = gang_work(&job.name_any(), self.gang, nodes, &self.ctx.bindings);
        // Only a pass that creates pods applies the Service: the passes of a starting
        // gang that only wait for its pods to run (or bind them) need not write it again.
        if !to_create.is_empty() && needs_service(job) {
            self.ensure_service().await?;
        }
        // Futures collected first: a stream over a borrowing closure is not `Send`
        // enough for the controller's task.
        let creations: Vec<_> = to_create
            .into_iter()
            .map(|(index, name, node)| self.create_pod(index, name, node, site, restart))
            .collect();
        let created: Vec<Result<Created>> = futures::stream::iter(creations)
            .buffer_unordered(GANG_CONCURRENCY)
            .collect()
            .await;
        let mut earlier_attempt = false;
        for result in created {
            match result? {
                Created::ToBind(pod) => to_bind.push(pod),
                Created::Bound => {}
                Created::EarlierAttempt => earlier_attempt = true,
            }
        }
        if earlier_attempt {
            return Ok(false);
        }
        // Only now, with every pod of the gang in existence, do any of them get GPUs.
        let bindings: Vec<_> = to_bind.iter().map(|pod| self.bind(pod)).collect();
        let bound: Vec<Result<()>> = futures::stream::iter(bindings)
            .buffer_unordered(GANG_CONCURRENCY)
            .collect()
            .await;
        bound.into_iter().collect::<Result<Vec<()>>>()?;
        if !to_bind.is_empty() {
            let created_s = job
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(self.now.as_second(), |t| t.0.as_second());
            self.ctx
                .metrics
                .placement_latency
                .observe((self.now.as_second() - created_s).max(0) as f64);
            info!(job = %job_id(job), %site, pods = to_bind.len(), "gang bound");
        }
        Ok(true)
    }

    /// Creates replica `index`'s pod (or finds it of this attempt already).
    async fn create_pod(
        &self,
        index: u32,
        name: String,
        node: String,
        site: &str,
        restart: i32,
    ) -> Result<Created> {
        let pod = build_pod(self.job, index, site, &node, restart);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        match self.pods.create(&params, &pod).await {
            Ok(created) => Ok(Created::ToBind(ToBind {
                name,
                node,
                uid: created.metadata.uid,
            })),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Ok(match self.existing_pod(&name, restart).await? {
                    Existing::OfEarlierAttempt => Created::EarlierAttempt,
                    Existing::Unbound(uid) => Created::ToBind(ToBind { name, node, uid }),
                    Existing::Bound => Created::Bound,
                })
            }
            Err(e) => Err(creation_error(format!("pod {name}"), e)),
        }
    }

    /// A pod the cache did not show yet already exists: is it this attempt's?
    async fn existing_pod(&self, name: &str, restart: i32) -> Result<Existing> {
        let existing = self
            .pods
            .get(name)
            .await
            .map_err(Error::kube(format!("reading pod {name}")))?;
        let current = existing.labels().get(RESTART_LABEL) == Some(&restart.to_string())
            && existing.metadata.deletion_timestamp.is_none();
        if !current {
            info!(job = %job_id(self.job), pod = %name, "waiting for the pod of an earlier attempt to go away");
            return Ok(Existing::OfEarlierAttempt);
        }
        let bound = existing
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        Ok(if bound {
            Existing::Bound
        } else {
            Existing::Unbound(existing.metadata.uid)
        })
    }

    /// Binds the pod to its node, and remembers it until the cache shows it bound.
    async fn bind(&self, to_bind: &ToBind) -> Result<()> {
        let (pod, node) = (to_bind.name.as_str(), to_bind.node.as_str());
        let remember = || {
            if let Some(uid) = &to_bind.uid {
                self.ctx.bindings.remember(uid);
            }
        };
        let binding = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        match self
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
                self.ctx.metrics.pods_bound.inc();
                remember();
                Ok(())
            }
            // Already bound (the cache lagged behind an earlier binding).
            Err(kube::Error::Api(e)) if e.code == 409 => {
                remember();
                Ok(())
            }
            Err(e) => Err(Error::kube(format!("binding pod {pod} to node {node}"))(e)),
        }
    }

    async fn ensure_service(&self) -> Result<()> {
        let namespace = self.job.namespace().unwrap_or_default();
        let services: Api<Service> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let name = self.job.name_any();
        services
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&build_service(self.job)),
            )
            .await
            .map_err(|e| creation_error(format!("the headless Service {name}"), e))?;
        Ok(())
    }

    async fn delete_job(&self, ttl_s: i32) -> Result<()> {
        let name = self.job.name_any();
        info!(job = %job_id(self.job), ttl_s, "deleting finished job: ttlSecondsAfterFinished passed");
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(Error::kube(format!("deleting finished TrainingJob {name}"))(e)),
        }
    }

    /// Publishes an Event on the job, of the reason's type, and counts the decision.
    async fn publish(&self, reason: Reason, message: &str, action: &str) {
        self.ctx
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
        let on = self.job.object_ref(&());
        if let Err(e) = self.ctx.recorder.publish(&event, &on).await {
            warn!(job = %job_id(self.job), error = %e, "could not publish event");
        }
    }
}

/// What a pass must do for a gang: the pods to bind and those to create (index, name,
/// node).
#[derive(Debug, Default, PartialEq)]
struct GangWork {
    to_bind: Vec<ToBind>,
    to_create: Vec<(u32, String, String)>,
}

/// A pod that exists unbound, and its planned node.
#[derive(Debug, PartialEq)]
struct ToBind {
    name: String,
    node: String,
    /// Its UID, to remember the binding by.
    uid: Option<String>,
}

/// Which replicas of `gang` (planned on `nodes`) are missing, and which exist unbound. A
/// pod `bindings` remembers was bound by an earlier pass that the cache has not caught up
/// with: it is not bound again; one the cache shows bound is forgotten there.
fn gang_work(job_name: &str, gang: &Gang, nodes: &[String], bindings: &Bindings) -> GangWork {
    let mut work = GangWork::default();
    for (index, node) in nodes.iter().enumerate() {
        let name = pod_name(job_name, index as u32);
        let Some(pod) = gang.replicas.get(index).cloned().flatten() else {
            work.to_create.push((index as u32, name, node.clone()));
            continue;
        };
        match (&pod.node, &pod.uid) {
            (Some(_), Some(uid)) => bindings.seen_bound(uid),
            (Some(_), None) => {}
            (None, Some(uid)) if bindings.bound(uid) => {}
            (None, uid) => work.to_bind.push(ToBind {
                name,
                node: node.clone(),
                uid: uid.clone(),
            }),
        }
    }
    work
}

/// What creating one replica's pod found.
enum Created {
    /// The pod exists unbound: bind it to its node.
    ToBind(ToBind),
    /// It existed already, bound.
    Bound,
    /// A pod of an earlier attempt holds the name: the gang waits for it to go.
    EarlierAttempt,
}

/// A pod that already existed when the gang's was created.
enum Existing {
    OfEarlierAttempt,
    /// Unbound, of this UID.
    Unbound(Option<String>),
    Bound,
}

/// A failed creation: `Rejected` when the API server refused the object as invalid (no
/// retry can help), else a transient API error.
fn creation_error(object: String, error: kube::Error) -> Error {
    match rejection(&error) {
        Some(message) => Error::Rejected { object, message },
        None => Error::kube(format!("creating {object}"))(error),
    }
}

/// Deletes every pod the job owns, found by the job's UID in their owner references
/// rather than by a label selector made of the job's name: that works for any name, so
/// the operator can always delete what it created.
pub async fn delete_owned_pods(pods: &Api<Pod>, job: &TrainingJob) -> Result<()> {
    let job_name = job.name_any();
    let listed = pods
        .list(&ListParams::default().labels(&owned_pods_selector(&job_name)))
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

/// The label selector of a job's pods: by its name, so that deleting a namespace of
/// many jobs does not list every pod of the namespace once per job (at 250 gangs of 8
/// that held the operator at 783 MiB). A name too long to be a label value (a job from
/// before names were validated) never had pods: all of Verdant's pods are listed then.
fn owned_pods_selector(job_name: &str) -> String {
    let managed = format!("{MANAGED_BY_LABEL}=verdant");
    match job_name.len() <= LABEL_VALUE_MAX_LENGTH {
        true => format!("{managed},{JOB_NAME_LABEL}={job_name}"),
        false => managed,
    }
}

/// Deletes the named pods gracefully; one already gone is fine.
async fn delete_pods_named(pods: &Api<Pod>, names: &[String]) -> Result<()> {
    for name in names {
        match pods.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("deleting pod {name}"))(e)),
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

#[cfg(test)]
mod tests;
