//! Simulated node agents as real processes (`verdant-agent run --backend simulated`), one
//! per KWOK node, reporting to the operator's ingest endpoint the way a DaemonSet does:
//! each with a ServiceAccount token of audience `verdant` bound to an agent pod on its
//! node (the operator checks that the pod of a token runs on the node its report names).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::ControlPlane;
use crate::service_account::request_token;

/// The agents' ServiceAccount name (in the namespace passed to [`AgentProcess::start_all`]).
pub const AGENT_ACCOUNT: &str = "verdant-agent";

/// One running agent, killed when dropped.
pub struct AgentProcess {
    child: Child,
    log: PathBuf,
    /// The node it measures.
    pub node: String,
    /// `127.0.0.1:<port>` of its `/metrics`.
    pub metrics_addr: String,
}

impl AgentProcess {
    /// Creates the agents' ServiceAccount in `namespace`, an agent pod on each of `nodes`,
    /// and starts `binary` (`env!("CARGO_BIN_EXE_e2e-agent")` in a test) once per node,
    /// reporting every 2 s to `ingest_url`. The simulated GPUs follow the pods bound to
    /// the node (8 GPUs per node).
    pub async fn start_all(
        plane: &ControlPlane,
        client: &kube::Client,
        binary: &str,
        namespace: &str,
        nodes: &[String],
        ingest_url: &str,
    ) -> anyhow::Result<Vec<AgentProcess>> {
        let account: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": AGENT_ACCOUNT}}))?;
        Api::<ServiceAccount>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &account)
            .await?;
        let mut agents = Vec::new();
        for node in nodes {
            let token = report_token(
                client,
                namespace,
                AGENT_ACCOUNT,
                &format!("verdant-agent-{node}"),
                node,
            )
            .await?;
            let token_file = plane.dir().join(format!("agent-{node}.token"));
            std::fs::write(&token_file, token)?;
            agents.push(Self::start(plane, binary, node, ingest_url, &token_file)?);
        }
        Ok(agents)
    }

    fn start(
        plane: &ControlPlane,
        binary: &str,
        node: &str,
        ingest_url: &str,
        token_file: &Path,
    ) -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let metrics_addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .args(["run", "--backend", "simulated", "--node-name", node])
            .args(["--operator-url", ingest_url])
            .arg("--token-file")
            .arg(token_file)
            .args(["--metrics-addr", &metrics_addr])
            .arg("--buffer-dir")
            .arg(plane.dir().join(format!("agent-{node}.buffer")))
            .args(["--sample-interval", "250ms", "--report-window", "2s"])
            .env("KUBECONFIG", plane.kubeconfig())
            .env("RUST_LOG", "info");
        let log = plane.dir().join(format!("agent-{node}.log"));
        Self::spawn(command, node, metrics_addr, log)
    }

    /// Runs `command` (the agent binary, its flags and environment) as the agent of
    /// `node` serving `/metrics` on `metrics_addr`, its output in `log`.
    pub fn spawn(
        mut command: Command,
        node: &str,
        metrics_addr: String,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let file = std::fs::File::create(&log)?;
        let child = command
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()?;
        Ok(Self {
            child,
            log,
            node: node.to_owned(),
            metrics_addr,
        })
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Creates the agent pod `pod_name` on `node`, running as ServiceAccount `account` of
/// `namespace`, and returns a report token for it: audience `verdant`, bound to the pod,
/// as the DaemonSet's projected volume holds it (the operator checks that the pod of a
/// token runs on the node its report names).
pub async fn report_token(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    pod_name: &str,
    node: &str,
) -> anyhow::Result<String> {
    let pod = create_agent_pod(client, namespace, pod_name, node, account).await?;
    request_token(
        client,
        namespace,
        account,
        &["verdant"],
        3600,
        Some((&pod.name_any(), &pod.uid().unwrap_or_default())),
    )
    .await
}

/// Creates the pod `name` on `node` that an agent of the DaemonSet would run in, as
/// ServiceAccount `account` of `namespace` (KWOK plays its kubelet; no process runs in it).
pub async fn create_agent_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    node: &str,
    account: &str,
) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "verdant-agent"}},
        "spec": {
            "nodeName": node,
            "serviceAccountName": account,
            "containers": [{"name": "agent", "image": "verdant-agent"}]
        }
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await?)
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!("===== agent {} log (last 15 lines) =====", self.node);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
