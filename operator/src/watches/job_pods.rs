//! The pods of each TrainingJob, found without scanning every pod in the cluster.
//!
//! A reconcile needs its job's pods. Filtering the whole pod cache for them costs a pass
//! over every pod (40,000 in a large cluster) per reconcile; this index keeps the names
//! of the pods that carry each job's label, fed by the pod watch.
//!
//! # Guarantees
//! [`JobPods::of_job`] returns exactly the pods in the cache whose namespace and
//! `verdant.dev/job-name` label are the job's, as a scan of the cache would: every name
//! is checked against the cache when read, so an entry the index missed a deletion of
//! (while the watch was listing again) is dropped then.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::Touched;
use crate::labels::JOB_NAME_LABEL;
use crate::watches::CachedPod;

/// (namespace, job name).
type JobKey = (String, String);

/// Pod names by job, over the pod cache.
pub struct JobPods {
    pods: Store<CachedPod>,
    names: Mutex<HashMap<JobKey, BTreeSet<String>>>,
}

impl JobPods {
    /// The index over this pod cache (empty until the watch reports changes).
    pub fn new(pods: Store<CachedPod>) -> Self {
        Self {
            pods,
            names: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobKey, BTreeSet<String>>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in a change of the pod cache (after the cache has it).
    pub fn touched(&self, change: &Touched<'_, CachedPod>) {
        match change {
            Touched::Applied(pod) => {
                if let Some(key) = job_of(pod) {
                    self.lock().entry(key).or_default().insert(pod.name_any());
                }
            }
            Touched::Deleted(pod) => {
                if let Some(key) = job_of(pod) {
                    let mut names = self.lock();
                    if let Some(set) = names.get_mut(&key) {
                        set.remove(&pod.name_any());
                        if set.is_empty() {
                            names.remove(&key);
                        }
                    }
                }
            }
            Touched::Relisted => self.rebuild(),
        }
    }

    fn rebuild(&self) {
        let mut names: HashMap<JobKey, BTreeSet<String>> = HashMap::new();
        for pod in self.pods.state() {
            if let Some(key) = job_of(&pod) {
                names.entry(key).or_default().insert(pod.name_any());
            }
        }
        *self.lock() = names;
    }

    /// The cached pods of job `name` in `namespace`, by pod name.
    pub fn of_job(&self, namespace: &str, name: &str) -> BTreeMap<String, Arc<CachedPod>> {
        let key = (namespace.to_owned(), name.to_owned());
        let candidates: Vec<String> = self
            .lock()
            .get(&key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        candidates
            .into_iter()
            .filter_map(|pod_name| {
                let pod = self
                    .pods
                    .get(&ObjectRef::new(&pod_name).within(namespace))?;
                (pod.labels().get(JOB_NAME_LABEL).map(String::as_str) == Some(name))
                    .then_some((pod_name, pod))
            })
            .collect()
    }
}

fn job_of(pod: &CachedPod) -> Option<JobKey> {
    let job = pod.labels().get(JOB_NAME_LABEL)?;
    Some((pod.namespace().unwrap_or_default(), job.clone()))
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use super::*;

    fn pod(name: &str, job: Option<&str>) -> CachedPod {
        let labels: BTreeMap<String, String> = job
            .map(|j| (JOB_NAME_LABEL.to_owned(), j.to_owned()))
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "labels": labels}
        }))
        .unwrap()
    }

    #[test]
    fn finds_a_jobs_pods_as_a_scan_would() {
        let (store, mut writer) = reflector::store::<CachedPod>();
        let index = JobPods::new(store);
        let apply = |writer: &mut reflector::store::Writer<CachedPod>, p: CachedPod| {
            writer.apply_watcher_event(&watcher::Event::Apply(p.clone()));
            index.touched(&Touched::Applied(&p));
        };
        apply(&mut writer, pod("a-0", Some("a")));
        apply(&mut writer, pod("a-1", Some("a")));
        apply(&mut writer, pod("b-0", Some("b")));
        apply(&mut writer, pod("other", None));
        let names = |job: &str| -> Vec<String> { index.of_job("ns", job).into_keys().collect() };
        assert_eq!(names("a"), ["a-0", "a-1"]);
        assert_eq!(names("b"), ["b-0"]);
        assert!(index.of_job("elsewhere", "a").is_empty());

        let gone = pod("a-1", Some("a"));
        writer.apply_watcher_event(&watcher::Event::Delete(gone.clone()));
        index.touched(&Touched::Deleted(&gone));
        assert_eq!(names("a"), ["a-0"]);

        // A relabelled pod no longer counts, even before the index hears of it.
        writer.apply_watcher_event(&watcher::Event::Apply(pod("a-0", Some("c"))));
        assert!(names("a").is_empty());

        // A deletion missed while the watch listed again: the pod is not in the cache.
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(pod("b-1", Some("b"))));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        index.touched(&Touched::Relisted);
        assert_eq!(names("b"), ["b-1"]);
    }
}
