//! KWOK fake GPU nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ObjectMeta, PostParams};

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
    /// The Node object: annotated for kwok, tainted like kwok's docs suggest so that
    /// nothing lands there by accident, with GPUs in capacity and allocatable.
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
            spec: Some(NodeSpec {
                taints: Some(vec![Taint {
                    key: "kwok.x-k8s.io/node".to_owned(),
                    value: Some("fake".to_owned()),
                    effect: "NoSchedule".to_owned(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
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
        nodes.create(&PostParams::default(), &node.to_node()).await?;
        names.push(node.name);
    }
    Ok(names)
}
