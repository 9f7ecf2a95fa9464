//! What a job's pods say about its gang. Pure: the reconcile feeds it pods from the cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use serde::Deserialize;

use crate::labels::RESTART_LABEL;
use crate::watches::CachedPod;
use crate::workload::pod_name;

/// A pod's `status.phase`, as Kubernetes writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum PodPhase {
    /// Accepted, not all containers running yet (also: no status yet).
    #[default]
    Pending,
    /// Bound, every container started.
    Running,
    /// Every container ended with success.
    Succeeded,
    /// A container ended in failure.
    Failed,
    /// The kubelet does not report (or a phase this code does not know).
    Unknown,
}

impl PodPhase {
    /// Reads `status.phase`; none yet is `Pending`, as for the kubelet.
    pub fn of(pod: &CachedPod) -> PodPhase {
        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            None | Some("Pending") => PodPhase::Pending,
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some(_) => PodPhase::Unknown,
        }
    }

    /// Whether the pod ended (successfully or not).
    pub fn is_finished(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// One replica's pod, as far as the lifecycle cares.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ReplicaPod {
    /// The pod's name.
    pub name: String,
    /// The node it is bound to.
    #[serde(default)]
    pub node: Option<String>,
    /// `status.phase`.
    #[serde(default)]
    pub phase: PodPhase,
    /// The pod's UID: a pod created again under the same name is another pod.
    #[serde(default)]
    pub uid: Option<String>,
}

/// The gang of the current attempt, by replica index, plus pods of earlier attempts.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Gang {
    /// Replica pods of the current attempt (`None`: not created or not yet in the cache).
    #[serde(default)]
    pub replicas: Vec<Option<ReplicaPod>>,
    /// Pods of earlier attempts, or being deleted, still present.
    #[serde(default)]
    pub stale: Vec<String>,
}

/// Why a running gang cannot go on: NCCL does not survive a lost rank, so any of these
/// tears the whole gang down.
#[derive(Clone, Debug, PartialEq)]
pub enum GangProblem {
    /// A replica's pod failed.
    PodFailed {
        /// Pod name.
        pod: String,
        /// Its node.
        node: Option<String>,
    },
    /// A replica's node disappeared.
    NodeLost {
        /// Pod name.
        pod: String,
        /// The node.
        node: String,
    },
    /// A replica's pod disappeared while the gang was running.
    PodMissing {
        /// Pod name.
        pod: String,
    },
}

impl GangProblem {
    /// A sentence for status and events.
    pub fn describe(&self) -> String {
        match self {
            GangProblem::PodFailed {
                pod,
                node: Some(node),
            } => format!("replica pod {pod} failed on node {node}"),
            GangProblem::PodFailed { pod, node: None } => format!("replica pod {pod} failed"),
            GangProblem::NodeLost { pod, node } => {
                format!("node {node} of replica pod {pod} disappeared")
            }
            GangProblem::PodMissing { pod } => format!("replica pod {pod} disappeared"),
        }
    }
}

/// Reads the pods of a job (by name) for attempt `restart`.
pub fn observe(
    job_name: &str,
    replicas: u32,
    restart: i32,
    pods: &BTreeMap<String, &Arc<CachedPod>>,
) -> Gang {
    let mut gang = Gang::default();
    let restart_label = restart.to_string();
    for index in 0..replicas {
        let name = pod_name(job_name, index);
        let pod = pods.get(&name).filter(|p| {
            p.labels().get(RESTART_LABEL) == Some(&restart_label)
                && p.metadata.deletion_timestamp.is_none()
        });
        gang.replicas.push(pod.map(|p| ReplicaPod {
            name: name.clone(),
            node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: PodPhase::of(p),
            uid: p.metadata.uid.clone(),
        }));
    }
    for (name, pod) in pods {
        let current = gang.replicas.iter().flatten().any(|r| &r.name == name);
        if !current || pod.metadata.deletion_timestamp.is_some() {
            gang.stale.push(name.clone());
        }
    }
    gang
}

impl Gang {
    /// Replicas whose pod succeeded.
    pub fn succeeded(&self) -> usize {
        self.count_phase(PodPhase::Succeeded)
    }

    /// Replicas whose pod runs.
    pub fn running(&self) -> usize {
        self.count_phase(PodPhase::Running)
    }

    /// Replicas whose pod exists and is bound.
    pub fn bound(&self) -> usize {
        self.replicas
            .iter()
            .flatten()
            .filter(|r| r.node.is_some())
            .count()
    }

    /// Whether any pod of the job exists at all (current or stale).
    pub fn any_pod(&self) -> bool {
        !self.stale.is_empty() || self.replicas.iter().any(Option::is_some)
    }

    /// Whether every replica succeeded.
    pub fn all_succeeded(&self) -> bool {
        !self.replicas.is_empty() && self.succeeded() == self.replicas.len()
    }

    /// Whether every replica runs (or already finished successfully).
    pub fn all_running(&self) -> bool {
        !self.replicas.is_empty() && self.running() + self.succeeded() == self.replicas.len()
    }

    /// Whether a pod of the current attempt still runs or waits to (neither succeeded nor
    /// failed).
    pub fn any_unfinished(&self) -> bool {
        self.replicas
            .iter()
            .flatten()
            .any(|r| !r.phase.is_finished())
    }

    fn count_phase(&self, phase: PodPhase) -> usize {
        self.replicas
            .iter()
            .flatten()
            .filter(|r| r.phase == phase)
            .count()
    }

    /// The first reason this gang must be torn down, if any. `was_running`: the gang had
    /// fully started, so a pod missing from the cache is a lost replica, not cache lag.
    pub fn problem(
        &self,
        was_running: bool,
        node_exists: impl Fn(&str) -> bool,
    ) -> Option<GangProblem> {
        for replica in self.replicas.iter().flatten() {
            if replica.phase == PodPhase::Failed {
                return Some(GangProblem::PodFailed {
                    pod: replica.name.clone(),
                    node: replica.node.clone(),
                });
            }
            if let Some(node) = &replica.node
                && replica.phase != PodPhase::Succeeded
                && !node_exists(node)
            {
                return Some(GangProblem::NodeLost {
                    pod: replica.name.clone(),
                    node: node.clone(),
                });
            }
        }
        if was_running && let Some(index) = self.replicas.iter().position(Option::is_none) {
            return Some(GangProblem::PodMissing {
                pod: format!("replica {index}"),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, restart: i32, node: Option<&str>, phase: &str) -> Arc<CachedPod> {
        let node = node.map_or("null".to_owned(), |n| format!("{n:?}"));
        Arc::new(
            serde_yaml_ng::from_str(&format!(
                "metadata: {{name: {name}, labels: {{verdant.dev/restart: '{restart}'}}}}\nspec: {{containers: [], nodeName: {node}}}\nstatus: {{phase: {phase}}}"
            ))
            .unwrap(),
        )
    }

    fn by_name(pods: &[Arc<CachedPod>]) -> BTreeMap<String, &Arc<CachedPod>> {
        pods.iter().map(|p| (p.name_any(), p)).collect()
    }

    #[test]
    fn a_failed_replica_breaks_the_gang() {
        let pods = [
            pod("j-0", 0, Some("n1"), "Running"),
            pod("j-1", 0, Some("n2"), "Failed"),
        ];
        let gang = observe("j", 2, 0, &by_name(&pods));
        assert_eq!(gang.bound(), 2);
        assert_eq!(
            gang.problem(true, |_| true),
            Some(GangProblem::PodFailed {
                pod: "j-1".into(),
                node: Some("n2".into())
            })
        );
    }

    #[test]
    fn a_lost_node_breaks_the_gang() {
        let pods = [
            pod("j-0", 0, Some("n1"), "Running"),
            pod("j-1", 0, Some("gone"), "Running"),
        ];
        let gang = observe("j", 2, 0, &by_name(&pods));
        assert_eq!(
            gang.problem(true, |n| n != "gone"),
            Some(GangProblem::NodeLost {
                pod: "j-1".into(),
                node: "gone".into()
            })
        );
    }

    #[test]
    fn missing_pods_only_count_once_the_gang_ran() {
        let pods = [pod("j-0", 0, Some("n1"), "Running")];
        let gang = observe("j", 2, 0, &by_name(&pods));
        assert_eq!(
            gang.problem(false, |_| true),
            None,
            "still starting: the cache may lag"
        );
        assert!(matches!(
            gang.problem(true, |_| true),
            Some(GangProblem::PodMissing { .. })
        ));
    }

    #[test]
    fn pods_of_an_earlier_attempt_are_stale() {
        let pods = [
            pod("j-0", 1, Some("n1"), "Running"),
            pod("j-1", 0, Some("n2"), "Failed"),
        ];
        let gang = observe("j", 2, 1, &by_name(&pods));
        assert_eq!(gang.stale, vec!["j-1".to_owned()]);
        assert_eq!(gang.replicas[1], None);
        assert_eq!(
            gang.problem(false, |_| true),
            None,
            "the old attempt's failure is not this one's"
        );
    }

    #[test]
    fn completion_and_running_are_counted() {
        let pods = [
            pod("j-0", 0, Some("n1"), "Succeeded"),
            pod("j-1", 0, Some("n2"), "Succeeded"),
        ];
        let gang = observe("j", 2, 0, &by_name(&pods));
        assert!(gang.all_succeeded());
        assert!(gang.all_running());
        let pods = [
            pod("j-0", 0, Some("n1"), "Running"),
            pod("j-1", 0, None, "Pending"),
        ];
        let gang = observe("j", 2, 0, &by_name(&pods));
        assert!(!gang.all_running());
        assert_eq!(gang.bound(), 1);
    }
}
