//! The agent's Kubernetes side against a real API server: the simulated backend's load
//! follows the pods bound to its node, and the cgroup fallback names the pods of GPU
//! processes. Both go through one watch limited to `spec.nodeName=<node>`, made with a
//! ServiceAccount token that has exactly the agent's documented RBAC (get, list and watch
//! pods).

use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use verdant_agent::attribution::pods::NodePods;
use verdant_agent::attribution::{Attributor, PodLookup, Source};
use verdant_agent::backend::simulated::{SimConfig, SimulatedBackend};
use verdant_agent::window::WindowAggregator;
use verdant_tests::{ControlPlane, TestNamespace, create_gpu_nodes, wait};

/// A client acting as a ServiceAccount `verdant-agent` in `ns` that may only read pods.
async fn agent_client(
    plane: &ControlPlane,
    admin: &kube::Client,
    ns: &str,
) -> anyhow::Result<kube::Client> {
    let account: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "verdant-agent", "namespace": ns}
    }))?;
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &account)
        .await?;
    // The ClusterRole of docs/agent.md.
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": format!("{ns}-agent")},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    }))?;
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{ns}-agent")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{ns}-agent")},
        "subjects": [{"kind": "ServiceAccount", "name": "verdant-agent", "namespace": ns}]
    }))?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))?;
    let answer = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_token_request("verdant-agent", &PostParams::default(), &request)
        .await?;
    let token = serde_json::to_value(&answer)?["status"]["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token in the TokenRequest answer"))?
        .to_owned();
    let mut config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(plane.kubeconfig())?,
        &KubeConfigOptions::default(),
    )
    .await?;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    Ok(kube::Client::try_from(config)?)
}

fn gpu_pod(name: &str, node: &str, gpus: u32, utilization: Option<&str>) -> anyhow::Result<Pod> {
    let annotations = utilization
        .map(|u| json!({"verdant.dev/simulated-gpu-utilization": u}))
        .unwrap_or(json!({}));
    let mut containers = vec![json!({"name": "sidecar", "image": "busybox"})];
    if gpus > 0 {
        containers.push(json!({
            "name": "trainer", "image": "pytorch",
            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}
        }));
    }
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"nodeName": node, "containers": containers}
    }))?)
}

#[tokio::test]
async fn simulated_gpus_follow_the_pods_bound_to_their_node() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let admin = plane.client().await?;
    let ns = TestNamespace::create(plane, &admin, "agent-pods").await?;
    let nodes = create_gpu_nodes(&admin, ns.name(), "agent-site", 2, 8).await?;
    let (node, other_node) = (&nodes[0], &nodes[1]);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns.name());
    // Created in this order: the trainer's GPUs come first.
    pods.create(
        &PostParams::default(),
        &gpu_pod("trainer", node, 2, Some("50"))?,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1100)).await; // distinct creation seconds
    pods.create(&PostParams::default(), &gpu_pod("bert", node, 1, None)?)
        .await?;
    pods.create(&PostParams::default(), &gpu_pod("cpu-only", node, 0, None)?)
        .await?;
    pods.create(
        &PostParams::default(),
        &gpu_pod("elsewhere", other_node, 4, None)?,
    )
    .await?;

    let client = agent_client(plane, &admin, ns.name()).await?;
    let (node_pods, driver) = NodePods::watch(client, node);
    let watch = tokio::spawn(driver);
    assert!(
        node_pods.wait_ready(Duration::from_secs(20)).await,
        "the pod list never arrived"
    );
    // The agent's /readyz waits for this.
    wait::until(
        "the watch to say the pods are listed",
        Duration::from_secs(5),
        || {
            let listed = node_pods.is_listed();
            async move {
                Ok(if listed {
                    Ok(())
                } else {
                    Err("not listed".to_owned())
                })
            }
        },
    )
    .await?;
    // kwok plays the kubelet and marks the pods Running.
    wait::until(
        "both GPU pods of the node running",
        Duration::from_secs(30),
        || {
            let demands = node_pods.gpu_demands();
            async move {
                let running = demands.iter().filter(|d| d.running).count();
                Ok(if running == 2 {
                    Ok(())
                } else {
                    Err(format!("{demands:?}"))
                })
            }
        },
    )
    .await?;

    let reader = node_pods.clone();
    let mut sim = SimulatedBackend::new(
        SimConfig {
            node: node.clone(),
            gpus: 8,
            model: "NVIDIA H100 80GB HBM3".into(),
            idle_w: 70.0,
            max_w: 700.0,
            busy_util_percent: 90.0,
            free_util_percent: 0.0,
        },
        Box::new(move || reader.gpu_demands()),
    )?;
    let first = sim.sample_at(0);
    let watts: Vec<f64> = first.gpus.iter().map(|g| g.power_w).collect();
    // trainer at 50 % (annotation): 70 + 630 × 0.5 = 385 W; bert at the default 90 %: 637 W.
    assert_eq!(watts, [385.0, 385.0, 637.0, 70.0, 70.0, 70.0, 70.0, 70.0]);
    let holder = |i: usize| {
        first.gpus[i]
            .pod
            .as_ref()
            .map(|p| format!("{}/{}", p.name, p.container))
    };
    assert_eq!(holder(0).as_deref(), Some("trainer/trainer"));
    assert_eq!(holder(2).as_deref(), Some("bert/trainer"));
    assert_eq!(first.gpus[2].pod.as_ref().unwrap().namespace, ns.name());
    assert_eq!(holder(3), None);
    let later = sim.sample_at(10_000);
    assert_eq!(later.gpus[0].energy_mj, Some(3_850_000));
    assert_eq!(later.gpus[2].energy_mj, Some(6_370_000));

    // The trainer ends: its GPUs idle, bert keeps GPU 2.
    pods.delete("trainer", &DeleteParams::default().grace_period(0))
        .await?;
    wait::until(
        "the trainer gone from the node's pods",
        Duration::from_secs(30),
        || {
            let demands = node_pods.gpu_demands();
            async move {
                Ok(if demands.iter().all(|d| d.pod.name != "trainer") {
                    Ok(())
                } else {
                    Err(format!("{demands:?}"))
                })
            }
        },
    )
    .await?;
    let after = sim.sample_at(20_000);
    let watts: Vec<f64> = after.gpus.iter().map(|g| g.power_w).collect();
    assert_eq!(watts, [70.0, 70.0, 637.0, 70.0, 70.0, 70.0, 70.0, 70.0]);

    // The cgroup fallback: a GPU process in bert's cgroup is attributed to bert.
    let bert = pods.get("bert").await?;
    let uid = bert.uid().expect("a stored pod has a UID");
    let proc_root = tempfile::tempdir()?;
    std::fs::create_dir_all(proc_root.path().join("4242"))?;
    std::fs::write(
        proc_root.path().join("4242/cgroup"),
        format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-0123456789abcdef.scope\n",
            uid.replace('-', "_")
        ),
    )?;
    let mut sample = after.gpus[2].clone();
    sample.pod = None;
    sample.pids = vec![4242];
    let mut aggregator = WindowAggregator::new(node.clone(), 10_000);
    aggregator.push(20_000, &[sample]);
    let mut window = aggregator.flush(21_000).expect("a window with one sample");
    let attributor = Attributor::new(
        proc_root.path().join("no-kubelet.sock"),
        proc_root.path().to_path_buf(),
        PodLookup::Watching(node_pods.clone()),
    );
    assert_eq!(attributor.attribute(&mut window).await, Source::Cgroup);
    let pod = window.report.gpus[0].pod.clone().expect("attributed");
    assert_eq!(
        (pod.namespace.as_str(), pod.name.as_str()),
        (ns.name(), "bert")
    );
    // The only GPU container of the pod (kwok reports no container IDs).
    assert_eq!(pod.container, "trainer");
    watch.abort();
    Ok(())
}
