//! Which TrainingJob each GPU of a report is billed to. Pure: the caches come in as
//! lookups.
//!
//! # Expected flow
//! The agent names the pod holding each GPU (kubelet PodResources, cgroups, or the
//! simulation). The operator bills the GPU to that pod's job only when its own view of
//! the pod agrees with the report: the pod exists, is bound to the report's node, and is
//! `Pending` or `Running` there, or finished no earlier than the window's start (its last
//! seconds are in the window).
//!
//! # Guarantees
//! - An agent can bill only the pods of its own node: the token check ties the report to
//!   the agent's node, and this check ties each GPU's pod to that node.
//! - A refused GPU is refused alone, never the report: its readings are stored (they are
//!   real power on this node and count for the site's load) and billed to no job. The
//!   answer lists it in `refusedGpus`; `verdant_ingest_gpus_refused_total{reason}` counts
//!   it.
//!
//! # Caveats
//! The check uses the operator's pod cache, which can trail the API server by a moment: a
//! pod's first window after binding, or the window after its deletion, may be refused
//! (`pod_not_found`). The agent cannot lie about which GPUs of its own node a pod holds:
//! that is the node's business, and the node is trusted with its own pods.

use std::collections::HashMap;
use std::sync::Arc;

use verdant_core::accounting::JobRef;
use verdant_crds::TrainingJob;
use verdant_crds::wire::{AgentReport, RefusedGpu};

use super::billing::job_of_pod;
use crate::watches::CachedPod;

/// Why a GPU's pod is not billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The operator does not know the pod.
    PodNotFound,
    /// The pod is bound to another node, or to none.
    PodNotOnNode,
    /// The pod finished (or is `Unknown`) before the window started.
    PodNotActive,
}

impl Refusal {
    /// The `reason` label and the `refusedGpus[].reason` text.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::PodNotFound => "pod_not_found",
            Refusal::PodNotOnNode => "pod_not_on_node",
            Refusal::PodNotActive => "pod_not_active",
        }
    }
}

/// The outcome for a whole report.
#[derive(Debug, Default)]
pub struct Attribution {
    /// The job of each billed GPU, by position in `report.gpus`.
    pub jobs: HashMap<usize, JobRef>,
    /// GPUs whose pod is refused, in report order.
    pub refused: Vec<(Refusal, RefusedGpu)>,
}

/// Attributes each GPU of `report`. `pod(namespace, name)` and `job(namespace, name)` look
/// the objects up in the operator's caches.
pub fn attribute(
    report: &AgentReport,
    pod: impl Fn(&str, &str) -> Option<Arc<CachedPod>>,
    job: impl Fn(&str, &str) -> Option<Arc<TrainingJob>>,
) -> Attribution {
    let mut attribution = Attribution::default();
    for (i, gpu) in report.gpus.iter().enumerate() {
        let Some(pod_ref) = &gpu.pod else { continue };
        let named = format!("{}/{}", pod_ref.namespace, pod_ref.name);
        let checked = match pod(&pod_ref.namespace, &pod_ref.name) {
            None => Err((
                Refusal::PodNotFound,
                format!("pod {named} does not exist (or the operator has not seen it yet)"),
            )),
            Some(p) => check_pod(&p, &report.node, report.window_start_ms)
                .map(|()| p)
                .map_err(|(refusal, why)| (refusal, format!("pod {named} {why}"))),
        };
        match checked {
            Ok(p) => {
                if let Some(job_ref) = job_of_pod(&p, &job) {
                    attribution.jobs.insert(i, job_ref);
                }
            }
            Err((refusal, message)) => attribution.refused.push((
                refusal,
                RefusedGpu {
                    uuid: gpu.uuid.clone(),
                    reason: refusal.reason().to_owned(),
                    message: format!(
                        "GPU {} ({}): {message}; its energy is billed to no job",
                        gpu.index, gpu.uuid
                    ),
                },
            )),
        }
    }
    attribution
}

/// Whether `pod` may be billed for a window of `node` starting at `window_start_ms`.
fn check_pod(pod: &CachedPod, node: &str, window_start_ms: i64) -> Result<(), (Refusal, String)> {
    let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if bound != Some(node) {
        return Err((
            Refusal::PodNotOnNode,
            match bound {
                Some(other) => format!("runs on node {other}, not on {node}"),
                None => format!("is not bound to a node, so not to {node}"),
            },
        ));
    }
    let status = pod.status.as_ref();
    match status.and_then(|s| s.phase.as_deref()) {
        None | Some("Pending" | "Running") => Ok(()),
        Some(phase @ ("Succeeded" | "Failed")) => match finished_ms(pod) {
            Some(finished) if finished >= window_start_ms => Ok(()),
            _ => Err((
                Refusal::PodNotActive,
                format!("is {phase} and had finished before the window started"),
            )),
        },
        Some(phase) => Err((
            Refusal::PodNotActive,
            format!("is in phase {phase}, neither Pending nor Running"),
        )),
    }
}

/// When the pod's last container ended, Unix ms.
fn finished_ms(pod: &CachedPod) -> Option<i64> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0.as_millisecond())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdant_crds::wire::PodRef;
    use verdant_crds::wire::sample::{NOW_MS, gpu, report};

    fn pod(name: &str, node: Option<&str>, phase: &str, finished: Option<&str>) -> Arc<CachedPod> {
        let mut status = serde_json::json!({"phase": phase});
        if let Some(at) = finished {
            status["containerStatuses"] = serde_json::json!([{
                "name": "trainer", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "finishedAt": at}}
            }]);
        }
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ml", "uid": format!("uid-{name}"),
                    "ownerReferences": [{"apiVersion": "verdant.dev/v1alpha1",
                        "kind": "TrainingJob", "name": "llama", "uid": "job-uid"}]},
                "spec": {"nodeName": node, "containers": [{"name": "trainer"}]},
                "status": status,
            }))
            .unwrap(),
        )
    }

    fn on(index: u32, pod_name: &str) -> verdant_crds::wire::GpuWindow {
        let mut g = gpu(index, 500.0);
        g.pod = Some(PodRef {
            namespace: "ml".into(),
            name: pod_name.into(),
            container: "trainer".into(),
        });
        g
    }

    #[test]
    fn only_active_pods_of_the_reporting_node_are_billed() {
        // The window is [NOW − 10 s, NOW); the report's node is gpu-1.
        let window_start = jiff::Timestamp::from_millisecond(NOW_MS - 10_000).unwrap();
        let during = (window_start + jiff::SignedDuration::from_secs(3)).to_string();
        let before = (window_start - jiff::SignedDuration::from_secs(60)).to_string();
        let pods: HashMap<&str, Arc<CachedPod>> = [
            ("running", pod("running", Some("gpu-1"), "Running", None)),
            ("pending", pod("pending", Some("gpu-1"), "Pending", None)),
            (
                "elsewhere",
                pod("elsewhere", Some("gpu-2"), "Running", None),
            ),
            ("unbound", pod("unbound", None, "Pending", None)),
            (
                "ended",
                pod("ended", Some("gpu-1"), "Succeeded", Some(&before)),
            ),
            (
                "ending",
                pod("ending", Some("gpu-1"), "Failed", Some(&during)),
            ),
            ("lost", pod("lost", Some("gpu-1"), "Unknown", None)),
        ]
        .into();
        let mut idle = gpu(8, 60.0);
        idle.pod = None;
        let r = report(vec![
            on(0, "running"),
            on(1, "pending"),
            on(2, "elsewhere"),
            on(3, "unbound"),
            on(4, "ended"),
            on(5, "ending"),
            on(6, "lost"),
            on(7, "ghost"),
            idle,
        ]);
        let a = attribute(&r, |_, name| pods.get(name).cloned(), |_, _| None);
        let mut billed: Vec<usize> = a.jobs.keys().copied().collect();
        billed.sort();
        assert_eq!(
            billed,
            [0, 1, 5],
            "running, pending, finished during the window"
        );
        assert!(a.jobs.values().all(|j| j.uid == "job-uid"));
        let refused: Vec<(&str, &str)> = a
            .refused
            .iter()
            .map(|(_, g)| (g.uuid.as_str(), g.reason.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                ("GPU-2", "pod_not_on_node"),
                ("GPU-3", "pod_not_on_node"),
                ("GPU-4", "pod_not_active"),
                ("GPU-6", "pod_not_active"),
                ("GPU-7", "pod_not_found"),
            ]
        );
        let message = &a.refused[0].1.message;
        assert!(
            message.contains("pod ml/elsewhere runs on node gpu-2, not on gpu-1"),
            "{message}"
        );
        assert!(a.refused[1].1.message.contains("not bound to a node"));
        assert!(a.refused[3].1.message.contains("phase Unknown"));
    }
}
