//! One watch on a run's pods: when each was first seen bound, and which are Running.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// The label every pod of the bench carries: the name of the job it belongs to (a batch
/// Job, a TrainingJob, or a group of plain pods created together).
pub const JOB_LABEL: &str = "bench.verdant.dev/job";

#[derive(Default)]
struct Seen {
    /// Pod name → (its job, when it was first seen with `spec.nodeName`).
    bound: HashMap<String, (String, Instant)>,
    running: HashSet<String>,
    synced: bool,
    error: Option<String>,
}

/// A watch of the pods labelled [`JOB_LABEL`] in one namespace, started before the first
/// object is created, so that no binding is missed.
pub struct PodWatch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodWatch {
    /// Starts the watch and returns once its initial list is done.
    pub async fn start(client: &kube::Client, namespace: &str) -> anyhow::Result<Self> {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let config = watcher::Config::default().labels(JOB_LABEL);
        let mut events = watcher(pods, config).default_backoff().boxed();
        let writer = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let mut seen = writer.lock().expect("watch state");
                match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        record(&mut seen, &pod)
                    }
                    Ok(watcher::Event::InitDone) => seen.synced = true,
                    Ok(_) => {}
                    // The watcher retries with backoff; keep the last error for a timeout.
                    Err(e) => seen.error = Some(e.to_string()),
                }
            }
        });
        let watch = Self { seen, task };
        crate::wait::until(
            "the pod watch's initial list",
            Duration::from_secs(60),
            || async {
                Ok(if watch.seen.lock().expect("watch state").synced {
                    Ok(())
                } else {
                    Err("not synced".to_owned())
                })
            },
        )
        .await?;
        Ok(watch)
    }

    /// Waits until `pods` pods were seen bound (and, with `running`, Running), or fails
    /// after `timeout` saying how many were.
    pub async fn wait_for(
        &self,
        pods: usize,
        running: bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        loop {
            let (bound, run, error) = {
                let seen = self.seen.lock().expect("watch state");
                (seen.bound.len(), seen.running.len(), seen.error.clone())
            };
            let count = if running { run } else { bound };
            if count >= pods {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "timed out after {timeout:?}: {bound} of {pods} pods bound, {run} Running (last watch error: {error:?})"
            );
            if last_report.elapsed() > Duration::from_secs(30) {
                eprintln!("   .. {bound} of {pods} pods bound, {run} Running");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (job, bound at) of every pod seen bound.
    pub fn bindings(&self) -> Vec<(String, Instant)> {
        self.seen
            .lock()
            .expect("watch state")
            .bound
            .values()
            .cloned()
            .collect()
    }
}

fn record(seen: &mut Seen, pod: &Pod) {
    let bound = pod
        .spec
        .as_ref()
        .is_some_and(|s| s.node_name.as_ref().is_some_and(|n| !n.is_empty()));
    if !bound {
        return;
    }
    let name = pod.name_any();
    if crate::jobs::phase_of(pod) == "Running" {
        seen.running.insert(name.clone());
    }
    seen.bound.entry(name).or_insert_with(|| {
        let job = pod.labels().get(JOB_LABEL).cloned().unwrap_or_default();
        (job, Instant::now())
    });
}
