//! The operator at rest: every GPU of the fleet held by a running TrainingJob pod, a
//! queue of gangs that cannot start, and nothing changing; its CPU and memory over a
//! window of quiet.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use verdant_crds::TrainingJob;

use super::measure::{self, ApiCounts};
use super::run::{RunSettings, create_all, objects_of, round};
use super::watch::PodWatch;
use super::workload::{Submission, Workload};
use crate::{ControlPlane, TestNamespace};

/// What the rest phase builds and how long it watches.
#[derive(Clone, Copy, Debug)]
pub struct RestSettings {
    /// Length of the quiet window measured.
    pub window: Duration,
    /// 8×8 gangs queued behind the full fleet.
    pub pending_jobs: u32,
}

/// Fills `nodes` nodes of `gpus_per_node` GPUs with `gpus_per_node`×1 TrainingJobs (one
/// pod per GPU), queues `rest.pending_jobs` 8×8 gangs that cannot fit, waits until every
/// pod runs and every queued job has a status, then measures the operator `operator_pid`
/// over `rest.window`.
pub async fn measure_rest(
    plane: &ControlPlane,
    client: &kube::Client,
    nodes: u32,
    gpus_per_node: u32,
    operator_pid: u32,
    rest: RestSettings,
    settings: RunSettings,
) -> anyhow::Result<Value> {
    let ns = TestNamespace::create(plane, client, "scale-rest").await?;
    let fill = Workload::new(nodes, gpus_per_node, 1);
    eprintln!(
        ">> rest: filling {} GPUs with {} TrainingJobs of {} in {}",
        fill.pods(),
        fill.jobs,
        fill.name,
        ns.name()
    );
    let watch = PodWatch::start(client, ns.name()).await?;
    let started = Instant::now();
    create_all(
        client,
        ns.name(),
        objects_of(Submission::VerdantImmediate, &fill)?,
        settings.concurrency,
    )
    .await?;
    watch
        .wait_for(fill.pods(), false, settings.timeout)
        .await
        .context("filling the fleet")?;
    let fill_s = started.elapsed().as_secs_f64();
    eprintln!(
        "   {} pods bound in {fill_s:.1}s; queueing {} 8x8 gangs",
        fill.pods(),
        rest.pending_jobs
    );

    let mut pending = objects_of(
        Submission::VerdantImmediate,
        &Workload::new(rest.pending_jobs, 8, 8),
    )?;
    for (job, _, object) in &mut pending {
        *job = format!("p{job}");
        object.metadata.name = Some(job.clone());
    }
    create_all(client, ns.name(), pending, settings.concurrency).await?;
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    crate::wait::until(
        "every queued job to have a status",
        settings.timeout,
        || async {
            let without = jobs_without_status(&jobs).await?;
            Ok(if without == 0 {
                Ok(())
            } else {
                Err(format!("{without} jobs without a status"))
            })
        },
    )
    .await?;
    watch
        .wait_for(fill.pods(), true, settings.timeout)
        .await
        .context("waiting for every pod to be Running")?;
    tokio::time::sleep(settings.settle).await;

    let lifetime = measure::sample(operator_pid)?;
    measure::reset_peak_rss(operator_pid)?;
    let before = measure::sample(operator_pid)?;
    let api_before = ApiCounts::scrape(plane)?;
    let load_before = measure::load_average();
    eprintln!(
        "   quiet window of {:?} (operator RSS {:.0} MiB, lifetime peak {:.0} MiB)",
        rest.window, before.rss_mib, lifetime.peak_rss_mib
    );
    tokio::time::sleep(rest.window).await;
    let after = measure::sample(operator_pid)?;
    let api = ApiCounts::scrape(plane)?.since(&api_before);
    let window_s = rest.window.as_secs_f64();
    Ok(json!({
        "nodes": nodes,
        "pods": fill.pods(),
        "running_jobs": fill.jobs,
        "pending_jobs": rest.pending_jobs,
        "fill_s": round(fill_s, 1),
        "fill_pods_per_s": round(fill.pods() as f64 / fill_s.max(1e-3), 1),
        "window_s": window_s,
        "operator_cpu_percent": round(100.0 * (after.cpu_s - before.cpu_s) / window_s, 2),
        "operator_peak_rss_mib": round(after.peak_rss_mib, 1),
        "operator_rss_mib": round(after.rss_mib, 1),
        "operator_lifetime_peak_rss_mib": round(lifetime.peak_rss_mib.max(after.peak_rss_mib), 1),
        "api_requests_per_s_by_verb_and_resource": api
            .by_verb_and_resource()
            .into_iter()
            .map(|(k, n)| (k, json!(round(n / window_s, 2))))
            .collect::<serde_json::Map<_, _>>(),
        "load_before": load_before,
        "load_after": measure::load_average(),
    }))
}

async fn jobs_without_status(jobs: &Api<TrainingJob>) -> anyhow::Result<usize> {
    let mut without = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = jobs.list(&params).await?;
        without += page.items.iter().filter(|j| j.status.is_none()).count();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(without),
        }
    }
}
