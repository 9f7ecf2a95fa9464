//! One real control plane per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A running etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok,
/// started by `hack/control-plane.sh`, and with [`ControlPlane::with_real_node`] the
/// machine's one real node.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    tools_bin: PathBuf,
}

static SHARED: OnceLock<ControlPlane> = OnceLock::new();
static WITH_REAL_NODE: OnceLock<ControlPlane> = OnceLock::new();

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The shared control plane lives in a static and is never dropped: its watchdog
        // removes it when the process exits. Owned ones go away with their test.
        let _ = Command::new(crate::repo_root().join("hack/control-plane.sh"))
            .arg("down")
            .arg(&self.dir)
            .output();
    }
}

impl ControlPlane {
    /// A control plane of the caller's own, torn down when dropped (and, should the test
    /// process die, by the watchdog). For tests that run an operator: an operator sees
    /// every node and job of its cluster, so tests that run one must not share it.
    pub fn start_owned() -> ControlPlane {
        Self::start(false, &[]).unwrap_or_else(|e| panic!("control plane failed to start: {e:#}"))
    }

    /// [`Self::start_owned`] with extra environment for `hack/control-plane.sh` (e.g.
    /// `VERDANT_KWOK_CONFIG`, `VERDANT_NODE_MONITOR_GRACE_PERIOD`: see the script).
    pub fn start_owned_with_env(env: &[(&str, &str)]) -> anyhow::Result<ControlPlane> {
        Self::start(false, env)
    }

    /// The control plane of this test process, started on first use.
    ///
    /// Panics with the control plane's logs if it cannot start: without it no end-to-end
    /// test can run, and the reason must be visible.
    pub fn shared() -> &'static ControlPlane {
        SHARED.get_or_init(|| {
            Self::start(false, &[])
                .unwrap_or_else(|e| panic!("control plane failed to start: {e:#}"))
        })
    }

    /// The control plane of this test process with the machine's real node (containerd,
    /// kubelet, kube-proxy, CoreDNS: `hack/node.sh`), started on first use. There is one
    /// real node per machine, so one test binary uses it, and its tests take turns.
    ///
    /// Panics with the logs if it cannot start.
    pub fn with_real_node() -> &'static ControlPlane {
        WITH_REAL_NODE.get_or_init(|| {
            Self::start(true, &[]).unwrap_or_else(|e| {
                panic!("control plane with the real node failed to start: {e:#}")
            })
        })
    }

    fn start(real_node: bool, env: &[(&str, &str)]) -> anyhow::Result<ControlPlane> {
        // The watchdog removes the folder when this process exits.
        let dir = tempfile::Builder::new()
            .prefix("verdant-e2e-")
            .tempdir()
            .context("creating the control plane's temporary folder")?
            .keep();
        let script = crate::repo_root().join("hack/control-plane.sh");
        let mut up = Command::new(&script);
        up.args(["up"])
            .arg(&dir)
            .args(["--watch-pid", &std::process::id().to_string()])
            .envs(env.iter().copied());
        if real_node {
            // hack/node.sh loads the images (hack/images.sh) built from this profile.
            up.arg("--real-node")
                .env("VERDANT_IMAGES_PROFILE", crate::real_node::images_profile());
        }
        let output = up
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            anyhow::bail!(
                "{} up failed ({}):\n{}\n{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let tools = Command::new(crate::repo_root().join("hack/tools.sh"))
            .arg("--print-dir")
            .output()
            .context("locating the tools cache")?;
        let tools_bin = PathBuf::from(String::from_utf8_lossy(&tools.stdout).trim()).join("bin");
        Ok(ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            tools_bin,
        })
    }

    /// The admin kubeconfig of this control plane.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The folder holding the control plane's state and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A folder with the pinned `kubectl`, `kube-apiserver`, `etcd` and `kwok`.
    pub fn tools_bin(&self) -> &Path {
        &self.tools_bin
    }

    /// A kube client with admin rights. Create one per test: a client is tied to the
    /// tokio runtime it was made on.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }

    /// The admin client configuration, to adjust (e.g. the server URL) before making a
    /// client.
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
    }

    /// `kubectl` with this control plane's kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.tools_bin.join("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// Runs kubectl and returns stdout, or an error with stderr.
    pub fn kubectl_output(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .kubectl()
            .args(args)
            .output()
            .context("running kubectl")?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            anyhow::bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )
        }
    }
}
