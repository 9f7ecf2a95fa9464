//! One measured run: submit a workload one way, wait for every pod to be bound, count,
//! then delete it all and wait until it is gone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::measure::{self, ApiCounts, ProcSample};
use super::watch::PodWatch;
use super::workload::{Submission, Workload};
use crate::{ControlPlane, TestNamespace};

/// The processes whose CPU and memory a run reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Processes {
    /// The operator, while it runs (the Verdant runs and the rest phase).
    pub operator: Option<u32>,
    /// kube-scheduler.
    pub scheduler: Option<u32>,
    /// kube-controller-manager (the Job controller, the garbage collector...).
    pub controller_manager: Option<u32>,
    /// kube-apiserver.
    pub apiserver: Option<u32>,
}

impl Processes {
    fn named(&self) -> [(&'static str, Option<u32>); 4] {
        [
            ("operator", self.operator),
            ("kube_scheduler", self.scheduler),
            ("kube_controller_manager", self.controller_manager),
            ("kube_apiserver", self.apiserver),
        ]
    }

    /// Resets every peak RSS and samples every process.
    pub fn start_interval(&self) -> anyhow::Result<HashMap<&'static str, ProcSample>> {
        let mut samples = HashMap::new();
        for (name, pid) in self.named() {
            if let Some(pid) = pid {
                measure::reset_peak_rss(pid)?;
                samples.insert(name, measure::sample(pid)?);
            }
        }
        Ok(samples)
    }

    /// `<name>_cpu_s` and `<name>_peak_rss_mib` of each process since `before`.
    pub fn end_interval(
        &self,
        before: &HashMap<&'static str, ProcSample>,
        into: &mut serde_json::Map<String, Value>,
    ) -> anyhow::Result<()> {
        for (name, pid) in self.named() {
            let (cpu, rss) = match (pid, before.get(name)) {
                (Some(pid), Some(b)) => {
                    let a = measure::sample(pid)?;
                    (
                        json!(round(a.cpu_s - b.cpu_s, 2)),
                        json!(round(a.peak_rss_mib, 1)),
                    )
                }
                _ => (Value::Null, Value::Null),
            };
            into.insert(format!("{name}_cpu_s"), cpu);
            into.insert(format!("{name}_peak_rss_mib"), rss);
        }
        Ok(())
    }
}

/// How runs create their objects and how long they wait.
#[derive(Clone, Copy, Debug)]
pub struct RunSettings {
    /// Creates in flight at once.
    pub concurrency: usize,
    /// Longest wait for every pod to be bound, and for a namespace to be gone.
    pub timeout: Duration,
    /// Wait after the last binding before the counters are read, so that the writes that
    /// follow a binding (job status, events) are counted.
    pub settle: Duration,
}

/// Creates `objects` in `namespace`, `concurrency` at a time; returns when each job's
/// first create was sent.
pub async fn create_all(
    client: &kube::Client,
    namespace: &str,
    objects: Vec<(String, kube::api::ApiResource, DynamicObject)>,
    concurrency: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let sent: Vec<(String, Instant)> = stream::iter(objects)
        .map(|(job, resource, object)| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            async move {
                let at = Instant::now();
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating {} of job {job}", resource.kind))?;
                anyhow::Ok((job, at))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let mut first: HashMap<String, Instant> = HashMap::new();
    for (job, at) in sent {
        let entry = first.entry(job).or_insert(at);
        *entry = (*entry).min(at);
    }
    Ok(first)
}

/// Every object of `workload` submitted as `submission`, job names `j-<i>`.
pub fn objects_of(
    submission: Submission,
    workload: &Workload,
) -> anyhow::Result<Vec<(String, kube::api::ApiResource, DynamicObject)>> {
    let mut objects = Vec::new();
    for i in 0..workload.jobs {
        let job = format!("j-{i:05}");
        for (resource, object) in submission.objects(&job, workload)? {
            objects.push((job.clone(), resource, object));
        }
    }
    Ok(objects)
}

/// One run: its row of `result.json`, and its namespace, to delete with
/// [`delete_namespace`] once the row is saved (a cleanup can be slow).
pub async fn measure_run(
    plane: &ControlPlane,
    client: &kube::Client,
    submission: Submission,
    workload: &Workload,
    processes: &Processes,
    settings: RunSettings,
) -> anyhow::Result<(Value, String)> {
    let ns = TestNamespace::create(
        plane,
        client,
        &format!("scale-{}-{}", submission.slug(), workload.name),
    )
    .await?;
    eprintln!(
        ">> {} {} × {} ({}) in {}",
        submission.scheduler(),
        workload.jobs,
        workload.name,
        submission.label(),
        ns.name()
    );
    let objects = objects_of(submission, workload)?;
    let watch = PodWatch::start(client, ns.name()).await?;
    let load_before = measure::load_average();
    let api_before = ApiCounts::scrape(plane)?;
    let proc_before = processes.start_interval()?;

    let first_create = Instant::now();
    let created = create_all(client, ns.name(), objects, settings.concurrency).await?;
    let create_s = first_create.elapsed().as_secs_f64();
    watch
        .wait_for(workload.pods(), false, settings.timeout)
        .await
        .with_context(|| format!("{} {}", submission.label(), workload.name))?;
    let bindings = watch.bindings();
    let last_bound = bindings
        .iter()
        .map(|(_, at)| *at)
        .max()
        .unwrap_or(first_create);
    tokio::time::sleep(settings.settle).await;
    let api = ApiCounts::scrape(plane)?.since(&api_before);
    let mut row = serde_json::Map::new();
    processes.end_interval(&proc_before, &mut row)?;

    let mut last_of_job: HashMap<&str, (usize, Instant)> = HashMap::new();
    for (job, at) in &bindings {
        let entry = last_of_job.entry(job.as_str()).or_insert((0, *at));
        entry.0 += 1;
        entry.1 = entry.1.max(*at);
    }
    let mut latencies = Vec::new();
    for (job, created_at) in &created {
        let (count, last) = last_of_job
            .get(job.as_str())
            .with_context(|| format!("job {job} has no pod bound"))?;
        anyhow::ensure!(
            *count == workload.replicas as usize,
            "job {job} has {count} pods bound, not {}",
            workload.replicas
        );
        latencies.push(last.duration_since(*created_at).as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    let span_s = last_bound.duration_since(first_create).as_secs_f64();
    let pods = bindings.len();
    let per_pod = |n: f64| round(n / pods.max(1) as f64, 2);
    let base = json!({
        "scheduler": submission.scheduler(),
        "workload": workload.name,
        "submitted_as": submission.label(),
        "jobs": created.len(),
        "pods": pods,
        "pods_per_s": round(pods as f64 / span_s.max(1e-3), 1),
        "job_latency_p50_s": round(measure::quantile(&latencies, 0.5), 2),
        "job_latency_p99_s": round(measure::quantile(&latencies, 0.99), 2),
        "api_requests_per_pod": per_pod(api.total()),
        "api_requests_per_pod_by_verb": api.by_verb().into_iter().map(|(v, n)| (v, json!(per_pod(n)))).collect::<serde_json::Map<_, _>>(),
        "api_requests_by_verb_and_resource": api.by_verb_and_resource(),
        "create_all_s": round(create_s, 2),
        "first_create_to_last_bound_s": round(span_s, 2),
        "load_before": load_before,
    });
    let Value::Object(base) = base else {
        unreachable!("a json! object")
    };
    row.extend(base);
    eprintln!(
        "   {pods} pods bound in {span_s:.1}s ({:.1} pods/s)",
        pods as f64 / span_s.max(1e-3)
    );
    Ok((Value::Object(row), ns.name().to_owned()))
}

/// Deletes namespace `name` and waits until it is gone, with everything in it.
pub async fn delete_namespace(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(name, &DeleteParams::background()).await?;
    let started = Instant::now();
    release_job_tracking(client, name).await?;
    let gone = crate::wait::until(&format!("namespace {name} to be gone"), timeout, || async {
        Ok(match namespaces.get_opt(name).await? {
            None => Ok(()),
            Some(ns) => Err(format!(
                "phase {:?}",
                ns.status.and_then(|s| s.phase).unwrap_or_default()
            )),
        })
    })
    .await;
    eprintln!("   cleaned up in {:.1}s", started.elapsed().as_secs_f64());
    gone
}

/// Removes the Job controller's `batch.kubernetes.io/job-tracking` finalizer from the
/// pods of `namespace`. The controller removes it itself, but at its client's 20 requests
/// a second the cleanup of 2,000 pods takes minutes; the bench does not time cleanups and
/// only needs them done.
async fn release_job_tracking(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let held: Vec<String> = pods
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.finalizers().iter().any(|f| f == JOB_TRACKING_FINALIZER))
        .map(|p| p.name_any())
        .collect();
    let patch = json!({"metadata": {"finalizers": null}});
    stream::iter(held)
        .map(|pod| {
            let (pods, patch) = (pods.clone(), &patch);
            async move {
                match pods
                    .patch(&pod, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    // Gone already, or released by the Job controller first.
                    Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    Ok(())
}

const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}
