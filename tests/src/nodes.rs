//! KWOK fake GPU nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

/// The label that tells which EnergySite powers a node (sites select on it in examples).
pub const SITE_LABEL: &str = "verdant.dev/site";

/// A fake GPU node to create.
#[derive(Clone, Debug)]
pub struct FakeGpuNode {
    /// Node name.
    pub name: String,
    /// Value of the `verdant.dev/site` label.
    pub site: String,
    /// Allocatable `nvidia.com/gpu`.
    pub gpus: u32,
    /// GPU model, as `nvidia.com/gpu.product` (the GPU feature discovery label).
    pub gpu_model: String,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
}

impl FakeGpuNode {
    /// The Node object: annotated for kwok, with GPUs in capacity and allocatable. It is
    /// not tainted: this control plane has no other scheduler that could land pods there,
    /// and tests add taints where they test them.
    pub fn to_node(&self) -> Node {
        let mut labels = self.labels.clone();
        labels.insert(SITE_LABEL.to_owned(), self.site.clone());
        labels.insert("type".to_owned(), "kwok".to_owned());
        labels.insert("kubernetes.io/hostname".to_owned(), self.name.clone());
        labels.insert("nvidia.com/gpu.product".to_owned(), self.gpu_model.clone());
        let resources: BTreeMap<String, Quantity> = [
            ("cpu", "64".to_owned()),
            ("memory", "512Gi".to_owned()),
            ("pods", "110".to_owned()),
            ("nvidia.com/gpu", self.gpus.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v)))
        .collect();
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                annotations: Some([("kwok.x-k8s.io/node".to_owned(), "fake".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(resources.clone()),
                capacity: Some(resources),
                ..Default::default()
            }),
        }
    }
}

/// Creates `count` fake nodes named `<prefix>-<i>` at `site`, each with `gpus` GPUs.
pub async fn create_gpu_nodes(
    client: &kube::Client,
    prefix: &str,
    site: &str,
    count: u32,
    gpus: u32,
) -> anyhow::Result<Vec<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut names = Vec::new();
    for i in 0..count {
        let node = FakeGpuNode {
            name: format!("{prefix}-{i}"),
            site: site.to_owned(),
            gpus,
            gpu_model: "NVIDIA-H100-80GB-HBM3".to_owned(),
            labels: BTreeMap::new(),
        };
        nodes
            .create(&PostParams::default(), &node.to_node())
            .await?;
        clear_not_ready_taint(&nodes, &node.name).await?;
        names.push(node.name);
    }
    Ok(names)
}

/// The API server taints every new node `node.kubernetes.io/not-ready:NoSchedule`
/// (TaintNodesByCondition); in a real cluster the node lifecycle controller of
/// kube-controller-manager lifts it once the node is Ready. This control plane has no
/// controller-manager, so the harness lifts it, as that controller would.
pub async fn clear_not_ready_taint(nodes: &Api<Node>, name: &str) -> anyhow::Result<()> {
    let patch = serde_json::json!({"spec": {"taints": null}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
