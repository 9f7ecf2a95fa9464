//! The bench's cluster: a control plane whose KWOK nodes beat slowly enough that thousands
//! of them leave the machine's cores to the schedulers, the nodes (created concurrently)
//! and one Static EnergySite per group of nodes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use verdant_crds::EnergySite;

use crate::nodes::{FakeGpuNode, clear_not_ready_taint};
use crate::{ControlPlane, repo_root};

/// The heartbeat stage's delay in `hack/kwok/stages.yaml` (20 to 25 s), replaced here.
const KWOK_HEARTBEAT_DELAY: &str =
    "durationMilliseconds: 20000\n    jitterDurationMilliseconds: 25000";

/// Starts a control plane whose KWOK nodes report their status every `heartbeat_s`
/// (±20 %), as a kubelet does every 5 minutes when nothing changes
/// (`nodeStatusReportFrequency`), with kube-controller-manager's node grace period at three
/// heartbeats. The default kwok configuration beats every 20 to 25 s, which at 5,000
/// nodes is 200 node writes a second, each sent to every node watcher. kwok keeps no node
/// leases here (`nodeLeaseDurationSeconds: 0`), so the status is the only heartbeat.
pub fn start_plane(out_dir: &Path, heartbeat_s: u64) -> anyhow::Result<ControlPlane> {
    let stages = std::fs::read_to_string(repo_root().join("hack/kwok/stages.yaml"))?;
    anyhow::ensure!(
        stages.contains(KWOK_HEARTBEAT_DELAY),
        "hack/kwok/stages.yaml no longer has the heartbeat delay the bench replaces ({KWOK_HEARTBEAT_DELAY:?})"
    );
    let (min_ms, max_ms) = (heartbeat_s * 800, heartbeat_s * 1200);
    let stages = stages.replace(
        KWOK_HEARTBEAT_DELAY,
        &format!("durationMilliseconds: {min_ms}\n    jitterDurationMilliseconds: {max_ms}"),
    );
    let config = out_dir.join("kwok-stages.yaml");
    std::fs::write(&config, stages)?;
    let grace = format!("{}s", (heartbeat_s * 3).max(120));
    ControlPlane::start_owned_with_env(&[
        ("VERDANT_KWOK_CONFIG", config.to_str().context("path")?),
        ("VERDANT_NODE_MONITOR_GRACE_PERIOD", &grace),
    ])
}

/// The name of site `s`, which is also its nodes' `verdant.dev/site` label.
pub fn site_name(s: u32) -> String {
    format!("site-{s}")
}

/// Creates `nodes` KWOK nodes with `gpus` GPUs each, spread over `sites` sites (named by
/// [`site_name`]), `concurrency` creates at a time, and one EnergySite per site with a
/// Static supply far above what its nodes draw; waits until every node is Ready and
/// untainted.
pub async fn create_fleet(
    client: &kube::Client,
    nodes: u32,
    sites: u32,
    gpus: u32,
    concurrency: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let api: Api<Node> = Api::all(client.clone());
    stream::iter(0..nodes)
        .map(|i| {
            let api = api.clone();
            async move {
                let site = site_name(i % sites);
                let node = FakeGpuNode {
                    name: format!("{site}-{}", i / sites),
                    site,
                    gpus,
                    gpu_model: "NVIDIA-H100-80GB-HBM3".to_owned(),
                    labels: BTreeMap::new(),
                };
                api.create(&PostParams::default(), &node.to_node())
                    .await
                    .with_context(|| format!("creating node {}", node.name))?;
                clear_not_ready_taint(&api, &node.name).await
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    eprintln!(
        ">> {nodes} nodes created in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let sites_api: Api<EnergySite> = Api::all(client.clone());
    for s in 0..sites {
        let site = site_name(s);
        let manifest: EnergySite = serde_json::from_value(json!({
            "apiVersion": "verdant.dev/v1alpha1", "kind": "EnergySite", "metadata": {"name": site},
            "spec": {"nodeSelector": {"matchLabels": {crate::nodes::SITE_LABEL: site}},
                     "location": {"latitude": 40.0, "longitude": 0.0},
                     "forecast": {"provider": "Static", "static": {"constantKw": 1_000_000.0}}}
        }))?;
        sites_api.create(&PostParams::default(), &manifest).await?;
    }
    crate::wait::until(
        &format!("{nodes} nodes Ready and untainted"),
        Duration::from_secs(600 + u64::from(nodes) / 10),
        || async {
            let ready = ready_nodes(&api).await?;
            Ok(if ready >= nodes as usize {
                Ok(())
            } else {
                Err(format!("{ready} of {nodes} ready"))
            })
        },
    )
    .await?;
    eprintln!(
        ">> {nodes} nodes Ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn ready_nodes(api: &Api<Node>) -> anyhow::Result<usize> {
    let mut ready = 0;
    let mut params = ListParams::default().labels("type=kwok").limit(1000);
    loop {
        let page = api.list(&params).await?;
        ready += page
            .items
            .iter()
            .filter(|n| {
                let untainted = n
                    .spec
                    .as_ref()
                    .is_none_or(|s| s.taints.as_ref().is_none_or(|t| t.is_empty()));
                let is_ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                untainted && is_ready
            })
            .count();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(ready),
        }
    }
}
