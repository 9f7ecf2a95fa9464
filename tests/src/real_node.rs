//! Verdant on the machine's real node: the control plane with `hack/node.sh`'s node
//! (containerd, kubelet, kube-proxy, CoreDNS), the images `hack/images.sh` builds (loaded
//! into the node's containerd, never pulled), and the chart installed with them.
//!
//! There is one real node per machine, so one test binary (`tests/real_node.rs`) uses it.
//! Its tests share one installation of the chart and take turns ([`turn`]): a test that
//! runs training pods must not compete with another for the node's two CPUs.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{LazyLock, OnceLock};
use std::time::Instant;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use crate::ControlPlane;
use crate::helm::{install, output};

/// The real node's name (`hack/node.sh`).
pub const NODE: &str = "verdant-node";
/// Its `verdant.dev/site` label; [`RealCluster::get`] makes an EnergySite of that name.
pub const SITE: &str = "local";
/// The node's `nvidia.com/gpu` capacity, patched into its status.
pub const NODE_GPUS: u32 = 4;
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
        let site = crate::sites::static_site(SITE, 1000.0);
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
