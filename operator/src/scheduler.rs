//! The scheduling cycle: snapshot the caches, run the pure engine, publish its decisions,
//! and wake the reconciles of the jobs whose decision changed. A tick on which nothing
//! changed and nothing is due is skipped ([`quiet`]).

pub mod quiet;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};
use verdant_core::placement::{self as engine, Action, Decision, JobState};
use verdant_crds::{JobPhase, TrainingJob};

use crate::context::Context;
use crate::metrics::label;
use crate::site_controller::status::headroom_negative_since;
use crate::snapshot::{self, Assumed, Inputs};
use crate::topology::{Overlap, job_id};
use quiet::{Fingerprint, Quiet};

/// How long an assumed placement may wait for the job's status to show it.
const ASSUMED_TTL_S: i64 = 120;

/// Runs a cycle at once, then forever: every `period`, and `debounce` after each
/// wake-up; a cycle whose inputs did not change since the last is skipped until
/// something is due ([`quiet`]).
pub async fn run(
    ctx: Arc<Context>,
    period: Duration,
    debounce: Duration,
    trigger: UnboundedSender<ObjectRef<TrainingJob>>,
) {
    let mut quiet = Quiet::default();
    cycle(&ctx, &trigger, &mut quiet).await;
    loop {
        tokio::select! {
            () = ctx.wake_scheduler.notified() => tokio::time::sleep(debounce).await,
            () = tokio::time::sleep(period) => {}
        }
        // At rest nothing is published, which would otherwise keep a burst's Events.
        ctx.recorder.forget_old();
        cycle(&ctx, &trigger, &mut quiet).await;
    }
}

/// One scheduling cycle, unless `quiet` says it would decide nothing new.
pub async fn cycle(
    ctx: &Context,
    trigger: &UnboundedSender<ObjectRef<TrainingJob>>,
    quiet: &mut Quiet,
) {
    let started = Instant::now();
    let now_s = jiff::Timestamp::now().as_second();
    let mut jobs = ctx.stores.jobs.state();
    // Read before the caches: a change after this point bumps it again.
    let topology_generation = ctx.topology.generation();
    let assumed = ctx.plan.with(|plan| {
        prune_assumed(&mut plan.assumed, &jobs, now_s);
        plan.assumed.clone()
    });
    let fingerprint = Fingerprint::of(&jobs, topology_generation, &assumed);
    if quiet.may_skip(fingerprint, now_s) {
        // A cycle that concluded, cheaply, that nothing changed: /livez and the cycle
        // count see it like any other.
        ctx.plan.with(|plan| plan.last_cycle_s = Some(now_s));
        ctx.metrics
            .cycle_duration
            .observe(started.elapsed().as_secs_f64());
        debug!(
            jobs = jobs.len(),
            "scheduling cycle skipped: nothing changed and nothing is due"
        );
        return;
    }
    // The stores hand objects out in hash order, and the engine breaks ties (and lists
    // sites in its messages) by position: in name order (the topology keeps nodes and
    // sites so) the same cluster gets the same decisions and the same words every cycle.
    jobs.sort_unstable_by(|a, b| {
        let (a, b) = (&a.metadata, &b.metadata);
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    let topology = ctx.topology.current();
    let (nodes, sites) = (&topology.nodes, &topology.sites);
    // Kept by the EnergySite controller in each site's RenewableDeficit condition, so the
    // GreenOnly grace period survives a restart of the operator.
    let negative_since = headroom_negative_since(sites);
    let built = snapshot::build(&Inputs {
        jobs: &jobs,
        topology: &topology,
        assumed: &assumed,
        headroom_negative_since: &negative_since,
        node_base_watts: ctx.node_base_watts,
        now_s,
    });
    for Overlap {
        site,
        other_site,
        node,
    } in topology.overlaps()
    {
        warn!(%site, %other_site, %node, "node is matched by two EnergySites; it counts for {site} only. Make the nodeSelectors disjoint");
    }
    record_deadline_slack(ctx, &built.snapshot.jobs, now_s);
    let engine_started = Instant::now();
    let mut snapshot = built.snapshot;
    // Measured power, where the agents report it, replaces the per-model estimates.
    let mut config = ctx.engine.clone();
    ctx.telemetry
        .apply_measurements(&mut snapshot, &mut config, now_s);
    let measured = config.gpu_watts_by_model != ctx.engine.gpu_watts_by_model
        || snapshot.jobs.iter().any(|j| j.measured_gpu_watts.is_some());
    let assumed_now = assumed.clone();
    let engine = move || {
        let decisions = engine::run_cycle(&snapshot, &config);
        let due_s = quiet::next_due_s(&snapshot, &decisions, &assumed_now, &config, ASSUMED_TTL_S);
        (decisions, due_s)
    };
    let (decisions, due_s) = match tokio::task::spawn_blocking(engine).await {
        Ok(decided) => decided,
        Err(e) => {
            warn!(error = %e, "the placement engine panicked; keeping the previous decisions");
            return;
        }
    };
    quiet.ran(fingerprint, (!measured).then_some(due_s));
    ctx.metrics
        .engine_duration
        .observe(engine_started.elapsed().as_secs_f64());

    let node_names = built.node_names;
    // Their reconcile restarts the gang elsewhere (or fails it) now, not at its resync.
    let mut changed = built.placed_on_lost_nodes;
    ctx.plan.with(|plan| {
        let mut next = HashMap::with_capacity(decisions.len());
        for decision in decisions {
            if let Action::Place { site, nodes, .. } | Action::Resize { site, nodes } =
                &decision.action
            {
                plan.assumed.insert(
                    decision.job.clone(),
                    Assumed {
                        site: site.clone(),
                        nodes: nodes
                            .iter()
                            .map(|&i| node_names[i as usize].clone())
                            .collect(),
                        at_s: now_s,
                        reason: decision.reason,
                        message: decision.message.clone(),
                    },
                );
            }
            let previous = plan.decisions.get(&decision.job);
            if previous.is_none_or(|p| materially_different(p, &decision)) {
                changed.push(decision.job.clone());
            }
            next.insert(decision.job.clone(), decision);
        }
        // Jobs that left the engine's view (finished, deleted, suspended by the user)
        plan.decisions = next;
        plan.last_cycle_s = Some(now_s);
    });

    for id in &changed {
        if let Some((namespace, name)) = id.split_once('/') {
            let _ = trigger.unbounded_send(ObjectRef::new(name).within(namespace));
        }
    }
    record_metrics(ctx, &jobs);
    record_node_reports(ctx, nodes);
    let elapsed = started.elapsed();
    ctx.metrics.cycle_duration.observe(elapsed.as_secs_f64());
    if changed.is_empty() {
        debug!(
            jobs = jobs.len(),
            nodes = nodes.len(),
            elapsed_ms = elapsed.as_millis() as u64,
            "scheduling cycle: no change"
        );
    } else {
        info!(
            jobs = jobs.len(),
            nodes = nodes.len(),
            changed = changed.len(),
            elapsed_ms = elapsed.as_millis() as u64,
            "scheduling cycle"
        );
    }
}

/// A new decision is worth a reconcile (and a status write) when it changes what happens,
/// not when only its numbers drift.
fn materially_different(old: &Decision, new: &Decision) -> bool {
    if old.reason != new.reason {
        return true;
    }
    match (&old.action, &new.action) {
        (Action::Place { .. }, Action::Place { .. }) => true,
        (Action::Defer { until_s: a, .. }, Action::Defer { until_s: b, .. }) => a != b,
        (Action::PowerCap { percent: a }, Action::PowerCap { percent: b }) => a != b,
        (a, b) => std::mem::discriminant(a) != std::mem::discriminant(b),
    }
}

/// Drops assumed placements the cache now shows in status, of jobs that are gone, and
/// those too old to still be in flight (their reconcile failed; the next cycle re-plans).
fn prune_assumed(assumed: &mut HashMap<String, Assumed>, jobs: &[Arc<TrainingJob>], now_s: i64) {
    // Runs on every tick, skipped or not: at rest there is nothing to prune.
    if assumed.is_empty() {
        return;
    }
    let by_id: HashMap<String, &Arc<TrainingJob>> = jobs.iter().map(|j| (job_id(j), j)).collect();
    assumed.retain(|id, placement| {
        let Some(job) = by_id.get(id) else {
            return false;
        };
        let Some(status) = &job.status else {
            return now_s - placement.at_s < ASSUMED_TTL_S;
        };
        let visible = matches!(
            status.phase,
            JobPhase::Starting | JobPhase::Running | JobPhase::Succeeded | JobPhase::Failed
        ) && status.nodes == placement.nodes;
        !visible && now_s - placement.at_s < ASSUMED_TTL_S
    });
}

fn record_metrics(ctx: &Context, jobs: &[Arc<TrainingJob>]) {
    let mut phases: BTreeMap<&'static str, i64> =
        JobPhase::ALL.into_iter().map(|p| (p.as_str(), 0)).collect();
    for job in jobs {
        let phase = job.status.as_ref().map(|s| s.phase).unwrap_or_default();
        *phases.entry(phase.as_str()).or_default() += 1;
    }
    for (phase, count) in phases {
        ctx.metrics
            .jobs
            .get_or_create(&label("phase", phase))
            .set(count);
    }
}

/// `verdant_job_deadline_slack_seconds`: for every job waiting to start (pending or
/// suspended) that has a latest start, how long it may still wait. Jobs that started or
/// left are dropped, so the family only holds jobs at risk of being late.
fn record_deadline_slack(ctx: &Context, jobs: &[engine::Job], now_s: i64) {
    let slack = &ctx.metrics.job_deadline_slack_s;
    slack.clear();
    for job in jobs {
        let waiting = matches!(job.state, JobState::Pending | JobState::Suspended);
        if let (true, Some(latest_start_s)) = (waiting, job.latest_start_s)
            && let Some((namespace, name)) = job.id.split_once('/')
        {
            slack
                .get_or_create(&vec![
                    ("namespace".to_owned(), namespace.to_owned()),
                    ("trainingjob".to_owned(), name.to_owned()),
                ])
                .set(latest_start_s - now_s);
        }
    }
}

/// `verdant_ingest_last_report_timestamp_seconds`: when each node's agent last reported,
/// for the nodes in the cache (a deleted node's series goes with it).
fn record_node_reports(ctx: &Context, nodes: &[Arc<k8s_openapi::api::core::v1::Node>]) {
    let family = &ctx.metrics.node_last_report_s;
    family.clear();
    for node in nodes {
        let name = node.name_any();
        if let Some(at_s) = ctx.telemetry.node_last_report_s(&name) {
            family.get_or_create(&label("node", &name)).set(at_s);
        }
    }
}
