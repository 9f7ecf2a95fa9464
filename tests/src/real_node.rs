//! Verdant on the machine's real node: the control plane with `hack/node.sh`'s node
//! (containerd, kubelet, kube-proxy, CoreDNS), the images `hack/images.sh` builds (loaded
//! into the node's containerd, never pulled), and the chart installed with them.
//!
//! There is one real node per machine, so one test binary (`tests/real_node.rs`) uses it.
//! Its tests share one installation of the chart and take turns ([`turn`]): a test that
//! runs training pods must not compete with another for the node's two CPUs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use verdant_crds::{JobPhase, TrainingJob};

use crate::ControlPlane;
use crate::helm::{install, output};
use crate::jobs::phase_of;
use crate::wait;

/// The real node's name (`hack/node.sh`).
pub const NODE: &str = "verdant-node";
/// Its `verdant.dev/site` label; [`RealCluster::get`] makes an EnergySite of that name.
pub const SITE: &str = "local";
/// The node's `nvidia.com/gpu` capacity, patched into its status.
pub const NODE_GPUS: u32 = 4;
/// The Static supply [`SITE`] is created with, kW: more than the node can draw.
pub const SITE_KW: f64 = 1000.0;
/// Where the chart is installed.
pub use crate::helm::{NAMESPACE, RELEASE};
/// A folder on the node for hostPath volumes; `hack/node.sh down` removes it.
pub const NODE_DATA_DIR: &str = "/var/lib/verdant-node/data";

/// The control plane with the real node, and Verdant installed on it by Helm.
pub struct RealCluster {
    plane: &'static ControlPlane,
    trainer_image: String,
}

/// Whose turn it is on the node: hold the guard for the whole test.
pub async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));
    TURN.lock().await
}

/// The cargo profile whose `verdant-operator` and `verdant-agent` go into the images:
/// `VERDANT_IMAGES_PROFILE`, else `debug`, the tests' own build (`make images` packages
/// `release`).
pub fn images_profile() -> String {
    std::env::var("VERDANT_IMAGES_PROFILE").unwrap_or_else(|_| "debug".to_owned())
}

impl RealCluster {
    /// Builds the images (cached), starts the control plane with the real node, installs
    /// the chart with the local images and waits for the operator's Deployment to be
    /// available; once per test process.
    ///
    /// Panics with the reason if any step fails (every test of the binary then fails with
    /// it, rather than retrying a broken start).
    pub fn get() -> &'static RealCluster {
        static CLUSTER: OnceLock<Result<RealCluster, String>> = OnceLock::new();
        match CLUSTER.get_or_init(|| Self::install().map_err(|e| format!("{e:#}"))) {
            Ok(cluster) => cluster,
            Err(e) => panic!("the real-node cluster could not be set up: {e}"),
        }
    }

    fn install() -> anyhow::Result<RealCluster> {
        let started = Instant::now();
        let images = crate::repo_root().join("hack/images.sh");
        let mut build = Command::new(&images);
        build
            .arg("build")
            .env("VERDANT_IMAGES_PROFILE", images_profile());
        output(build).context("building the images (hack/images.sh build)")?;
        let mut reference = Command::new(&images);
        reference.args(["ref", "trainer"]);
        let trainer_image = output(reference)?.trim().to_owned();
        println!("real node: images built in {:?}", started.elapsed());

        // hack/node.sh loads the images into the node's containerd as it starts.
        let up = Instant::now();
        let plane = ControlPlane::with_real_node();
        println!("real node: control plane and node up in {:?}", up.elapsed());
        let installed = Instant::now();
        let home = plane.dir().join("helm");
        std::fs::create_dir_all(&home)?;
        let sets = [
            // Never pull: the node has the images or the pod says ErrImageNeverPull.
            "operator.image.pullPolicy=Never",
            "agent.image.pullPolicy=Never",
            // No GPUs and no NVIDIA runtime: the agent simulates the node's GPUs.
            "agent.backend=simulated",
            "agent.nvidia.runtimeClassName=",
            &format!("agent.extraArgs={{--sim-gpus={NODE_GPUS}}}"),
            // The node keeps the kubelet's state under /var/lib/verdant-node.
            "agent.podResourcesDir=/var/lib/verdant-node/kubelet/pod-resources",
            "agent.bufferHostPath=/var/lib/verdant-node/agent-buffer",
            // No StorageClass in the local cluster: the database lives in an emptyDir.
            "database.sqlite.persistence.enabled=false",
            // Decide quickly: the tests wait for placements.
            "operator.scheduling.cycleSeconds=2",
            "operator.ingest.energyStatusSeconds=5",
        ];
        let installing = install(
            &home,
            plane.kubeconfig(),
            &sets,
            &["--wait", "--timeout", "5m"],
        );
        if let Err(e) = installing {
            let pods = plane
                .kubectl_output(&["get", "pods", "--all-namespaces", "-o", "wide"])
                .unwrap_or_else(|e| e.to_string());
            let events = plane
                .kubectl_output(&["get", "events", "--namespace", NAMESPACE])
                .unwrap_or_else(|e| e.to_string());
            anyhow::bail!(
                "helm install of the chart with the local images: {e:#}\npods:\n{pods}\nevents:\n{events}\nnode logs in {}",
                plane.dir().join("node").display()
            );
        }
        println!(
            "real node: chart installed, operator and agent ready, in {:?}",
            installed.elapsed()
        );
        let site = crate::sites::static_site(SITE, SITE_KW);
        let file = home.join("site.json");
        std::fs::write(&file, site.to_string())?;
        plane.kubectl_output(&["apply", "-f", file.to_str().context("a UTF-8 path")?])?;
        Ok(RealCluster {
            plane,
            trainer_image,
        })
    }

    /// The control plane (admin kubeconfig, kubectl).
    pub fn plane(&self) -> &'static ControlPlane {
        self.plane
    }

    /// `localhost/verdant-trainer:<appVersion>`: torchrun with `build/trainer/train.py`.
    pub fn trainer_image(&self) -> &str {
        &self.trainer_image
    }

    /// The node's logs folder (containerd, kubelet, kube-proxy, CoreDNS).
    pub fn node_logs(&self) -> PathBuf {
        self.plane.dir().join("node")
    }
}

/// A pod's log, through the API server and the node's kubelet.
pub async fn pod_log(pods: &Api<Pod>, name: &str) -> anyhow::Result<String> {
    pods.logs(name, &LogParams::default())
        .await
        .with_context(|| format!("reading the log of pod {name}"))
}

/// Selects the pods of the TrainingJob `job`.
pub fn job_pods(job: &str) -> ListParams {
    ListParams::default().labels(&format!("verdant.dev/job-name={job}"))
}

/// Waits until the job's pods are exactly `count`, all in `phase`; returns them by name.
pub async fn pods_in_phase(
    pods: &Api<Pod>,
    job: &str,
    count: usize,
    phase: &str,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, Pod>> {
    wait::until(
        &format!("{count} pods of {job} {phase}"),
        timeout,
        || async move {
            let list = pods.list(&job_pods(job)).await?;
            let phases: Vec<(String, String)> = list
                .items
                .iter()
                .map(|p| (p.name_any(), phase_of(p)))
                .collect();
            Ok(
                if list.items.len() == count && phases.iter().all(|(_, p)| p == phase) {
                    Ok(list.items.into_iter().map(|p| (p.name_any(), p)).collect())
                } else {
                    Err(format!("{phases:?}"))
                },
            )
        },
    )
    .await
}

/// The Static supply of [`SITE`], set by one test and set back to [`SITE_KW`] when dropped,
/// also when the test panics (the other tests share the site).
pub struct SiteSupply {
    plane: &'static ControlPlane,
}

impl SiteSupply {
    /// Takes the site's supply over (hold it while holding [`turn`]).
    pub fn take(plane: &'static ControlPlane) -> Self {
        SiteSupply { plane }
    }

    /// Patches `spec.forecast.static` to a constant `kw`; the scheduling cycle reads it
    /// from the spec (no forecast to wait for).
    pub fn set(&self, kw: f64) -> anyhow::Result<()> {
        let patch = serde_json::json!({"spec": {"forecast": {"static": {"constantKw": kw}}}});
        self.plane.kubectl_output(&[
            "patch",
            "energysite",
            SITE,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])?;
        Ok(())
    }
}

impl Drop for SiteSupply {
    fn drop(&mut self) {
        if let Err(e) = self.set(SITE_KW) {
            eprintln!("could not set the supply of {SITE} back to {SITE_KW} kW: {e:#}");
        }
    }
}

/// Waits until no unfinished pod on the real node holds a GPU (a test that ended or
/// failed before may leave pods terminating).
pub async fn node_gpus_free(client: &kube::Client, timeout: Duration) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(client.clone());
    wait::until(
        &format!("no pod on {NODE} holding GPUs"),
        timeout,
        || async {
            let on_node = ListParams::default().fields(&format!("spec.nodeName={NODE}"));
            let holding: Vec<String> = pods
                .list(&on_node)
                .await?
                .items
                .iter()
                .filter(|p| !matches!(phase_of(p).as_str(), "Succeeded" | "Failed"))
                .filter(|p| {
                    p.spec.iter().flat_map(|s| &s.containers).any(|c| {
                        c.resources
                            .as_ref()
                            .and_then(|r| r.limits.as_ref())
                            .is_some_and(|l| l.contains_key("nvidia.com/gpu"))
                    })
                })
                .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
                .collect();
            Ok(if holding.is_empty() {
                Ok(())
            } else {
                Err(format!("held by {holding:?}"))
            })
        },
    )
    .await
}

/// Waits until the elastic job `name` is Running with `status.size` `size` ("3/1-3") and
/// as many Running pods as its replicas (pods being deleted aside); returns the job.
pub async fn wait_size(
    jobs: &Api<TrainingJob>,
    pods: &Api<Pod>,
    name: &str,
    size: &str,
    timeout: Duration,
) -> anyhow::Result<TrainingJob> {
    wait::until(
        &format!("{name} running with size {size}"),
        timeout,
        || async move {
            let job = jobs.get(name).await?;
            let status = job.status.clone().unwrap_or_default();
            let selector = ListParams::default().labels(&format!("verdant.dev/job-name={name}"));
            let phases: Vec<(String, String)> = pods
                .list(&selector)
                .await?
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| (p.name_any(), phase_of(p)))
                .collect();
            let replicas = status.replicas.unwrap_or_default() as usize;
            Ok(
                if status.size.as_deref() == Some(size)
                    && status.phase == JobPhase::Running
                    && phases.len() == replicas
                    && phases.iter().all(|(_, phase)| phase == "Running")
                {
                    Ok(job)
                } else {
                    Err(format!(
                        "size {:?}, phase {:?}, pods {phases:?}: {:?}",
                        status.size, status.phase, status.message
                    ))
                },
            )
        },
    )
    .await
}

/// One start of train.py's workers as a trainer log shows it: the world size, the step
/// it started at, and the last step it printed (`first_step - 1` before any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainerRun {
    pub world_size: u32,
    pub first_step: u32,
    pub last_step: u32,
}

/// The runs in a trainer log, in order: each begins at a line
/// `world_size=W rank=R starting at step K of N` and counts its `world_size=W rank=R step=S`
/// lines.
pub fn trainer_runs(log: &str) -> Vec<TrainerRun> {
    let mut runs: Vec<TrainerRun> = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("world_size=") else {
            continue;
        };
        let number = |text: &str| text.split(' ').next()?.trim().parse::<u32>().ok();
        let Some(world_size) = number(rest) else {
            continue;
        };
        if let Some(first_step) = rest
            .split_once(" starting at step ")
            .and_then(|(_, k)| number(k))
        {
            runs.push(TrainerRun {
                world_size,
                first_step,
                last_step: first_step.saturating_sub(1),
            });
        } else if let Some(step) = rest.split_once(" step=").and_then(|(_, s)| number(s))
            && let Some(run) = runs.last_mut()
            && run.world_size == world_size
        {
            run.last_step = run.last_step.max(step);
        }
    }
    runs
}

/// Waits until pod `name`'s trainer, in a world of `world_size`, has printed `steps` steps
/// since it last started, the last beyond step `after`; returns its runs then.
pub async fn wait_trained(
    pods: &Api<Pod>,
    name: &str,
    world_size: u32,
    steps: u32,
    after: u32,
    timeout: Duration,
) -> anyhow::Result<Vec<TrainerRun>> {
    wait::until(
        &format!("{name} to train {steps} steps in a world of {world_size}, beyond step {after}"),
        timeout,
        || async move {
            let runs = trainer_runs(&pod_log(pods, name).await?);
            Ok(match runs.last() {
                Some(run)
                    if run.world_size == world_size
                        && run.last_step + 1 >= run.first_step + steps
                        && run.last_step > after =>
                {
                    Ok(runs)
                }
                _ => Err(format!("runs {runs:?}")),
            })
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainer_runs_follow_the_restarts_of_the_workers() {
        let log = "\
world_size=2 rank=0 starting at step 1 of 100
world_size=2 rank=0 step=1 loss=0.5
world_size=2 rank=0 step=2 loss=0.4
INFO:torch.distributed.elastic.agent.server.api:[default] Starting worker group
resumed from step 2
world_size=3 rank=0 starting at step 3 of 100
world_size=3 rank=0 step=3 loss=0.3
world_size=1 rank=0 starting at step 4 of 100
";
        assert_eq!(
            trainer_runs(log),
            [
                TrainerRun {
                    world_size: 2,
                    first_step: 1,
                    last_step: 2
                },
                TrainerRun {
                    world_size: 3,
                    first_step: 3,
                    last_step: 3
                },
                TrainerRun {
                    world_size: 1,
                    first_step: 4,
                    last_step: 3
                },
            ]
        );
    }
}
