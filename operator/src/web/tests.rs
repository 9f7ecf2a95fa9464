//! The views on inline objects, and the router over a real socket.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::watches::CachedPod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};
use verdant_core::placement::{Action, Decision, EngineConfig, Reason};
use verdant_crds::{EnergySite, TrainingJob};

use super::views::{self, ViewInputs};
use super::{WebState, router};
use crate::plan::Plan;
use crate::telemetry::Telemetry;
use crate::topology::{SharedTopology, Topology};

const NOW: &str = "2026-11-29T12:00:00Z";

fn site() -> EnergySite {
    serde_json::from_value(json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "EnergySite",
        "metadata": {"name": "solar-a"},
        "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": "solar-a"}},
            "location": {"latitude": 36.1, "longitude": -79.9},
            "pue": 1.2,
            "grid": {"carbonIntensityGPerKwh": 380},
            "forecast": {"provider": "Static", "static": {"constantKw": 100}}
        },
        "status": {
            "renewableKw": {"solar": 80.0, "wind": 20.0, "total": 100.0},
            "loadKw": 125.0,
            "headroomKw": -25.0,
            "lastForecastTime": "2026-11-29T11:50:00Z",
            "forecast": [
                {"time": "2026-11-29T12:00:00Z", "solarKw": 80.0, "windKw": 20.0},
                {"time": "2026-11-29T13:00:00Z", "solarKw": 90.0, "windKw": 10.0}
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "ForecastAvailable",
                "message": "ok", "lastTransitionTime": "2026-11-29T11:00:00Z"}]
        }
    }))
    .expect("valid EnergySite")
}

fn node(name: &str, site: &str, gpus: u32) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "verdant.dev/site": site, "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
        "status": {
            "allocatable": {"nvidia.com/gpu": gpus.to_string()},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .expect("valid Node")
}

fn pod(name: &str, node: &str, gpus: u32) -> CachedPod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"nodeName": node, "containers": [{"name": "trainer", "image": "x",
            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}]},
        "status": {"phase": "Running"}
    }))
    .expect("valid Pod")
}

fn job(name: &str, status: Value) -> TrainingJob {
    serde_json::from_value(json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "ml", "creationTimestamp": "2026-11-29T10:00:00Z"},
        "spec": {
            "replicas": 2,
            "gpusPerReplica": 4,
            "energy": {"policy": "GreenOnly"},
            "template": {"spec": {"containers": [{"name": "trainer", "image": "x"}]}}
        },
        "status": status
    }))
    .expect("valid TrainingJob")
}

struct Fixture {
    jobs: Vec<Arc<TrainingJob>>,
    pods: Vec<Arc<CachedPod>>,
    nodes: Vec<Arc<Node>>,
    sites: Vec<Arc<EnergySite>>,
    topology: Topology,
    decisions: HashMap<String, Decision>,
    telemetry: Telemetry,
    engine: EngineConfig,
}

fn fixture() -> Fixture {
    let now_s = NOW.parse::<jiff::Timestamp>().unwrap().as_second();
    let telemetry = Telemetry::default();
    telemetry.record_node("solar-a-gpu-0", 2600.0, now_s - 5);
    let mut decisions = HashMap::new();
    decisions.insert(
        "ml/waits".to_owned(),
        Decision {
            job: "ml/waits".to_owned(),
            action: Action::Defer {
                until_s: Some(now_s + 3600),
                expected_renewable_fraction: 0.934,
            },
            reason: Reason::DeferredForRenewables,
            message: "renewables cover 40 % now; 93 % expected at 13:00".to_owned(),
        },
    );
    let pods = vec![
        Arc::new(pod("runs-0", "solar-a-gpu-0", 4)),
        Arc::new(pod("runs-1", "solar-a-gpu-1", 4)),
    ];
    let nodes = vec![
        Arc::new(node("solar-a-gpu-0", "solar-a", 8)),
        Arc::new(node("solar-a-gpu-1", "solar-a", 8)),
        Arc::new(node("elsewhere-gpu-0", "elsewhere", 8)),
    ];
    let sites = vec![Arc::new(site())];
    Fixture {
        topology: Topology::build(nodes.clone(), sites.clone(), pods.clone()),
        jobs: vec![
            Arc::new(job(
                "waits",
                json!({"phase": "Deferred", "reason": "DeferredForRenewables",
                    "message": "renewables cover 40 % now"}),
            )),
            Arc::new(job(
                "runs",
                json!({"phase": "Running", "reason": "PlacedGreen", "site": "solar-a",
                    "nodes": ["solar-a-gpu-0", "solar-a-gpu-1"],
                    "energy": {"gpuEnergyKwh": 2.0, "renewableEnergyKwh": 1.5,
                        "gridEnergyKwh": 0.5, "renewableFraction": 0.75,
                        "renewablePercent": 75.0, "co2Grams": 190.0}}),
            )),
        ],
        pods,
        nodes,
        sites,
        decisions,
        telemetry,
        engine: EngineConfig::default(),
    }
}

impl Fixture {
    fn inputs(&self) -> ViewInputs<'_> {
        ViewInputs {
            jobs: &self.jobs,
            topology: &self.topology,
            decisions: &self.decisions,
            telemetry: &self.telemetry,
            engine: &self.engine,
            now: NOW.parse().unwrap(),
        }
    }
}

#[test]
fn sites_show_supply_load_share_forecast_and_their_nodes() {
    let f = fixture();
    let list = views::sites(&f.inputs());
    assert_eq!(list.generated_at, NOW);
    let [site] = list.sites.as_slice() else {
        panic!("one site expected: {list:?}");
    };
    assert_eq!(site.name, "solar-a");
    assert_eq!(site.provider.as_deref(), Some("Static"));
    assert!(site.ready);
    assert_eq!(
        (site.solar_kw, site.wind_kw, site.renewable_kw),
        (Some(80.0), Some(20.0), Some(100.0))
    );
    assert_eq!((site.load_kw, site.headroom_kw), (Some(125.0), Some(-25.0)));
    assert_eq!(site.renewable_share_percent, Some(80.0));
    assert_eq!(site.forecast_age_seconds, Some(600));
    assert_eq!(site.forecast.len(), 2);
    assert_eq!(site.forecast[1].solar_kw, 90.0);
    assert_eq!((site.nodes, site.gpus, site.gpus_in_use), (2, 16, 8));
    assert_eq!(site.grid_carbon_g_per_kwh, 380.0);
}

#[test]
fn jobs_carry_phase_site_share_and_the_last_decision() {
    let f = fixture();
    let list = views::jobs(&f.inputs(), |_| true);
    let names: Vec<&str> = list.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["runs", "waits"], "sorted by namespace and name");
    let runs = &list.jobs[0];
    assert_eq!(runs.phase, "Running");
    assert_eq!(runs.site.as_deref(), Some("solar-a"));
    assert_eq!(runs.renewable_percent, Some(75.0));
    assert_eq!(runs.co2_grams, Some(190.0));
    assert_eq!(runs.policy, "GreenOnly");
    assert!(runs.decision.is_none());
    let waits = &list.jobs[1];
    assert_eq!(waits.phase, "Deferred");
    assert_eq!(waits.renewable_percent, None, "nothing measured yet");
    assert_eq!(waits.expected_renewable_percent, Some(93.4));
    let decision = waits.decision.as_ref().expect("the cycle's decision");
    assert_eq!(
        (decision.action.as_str(), decision.reason.as_str()),
        ("Defer", "DeferredForRenewables")
    );
    let only_running = views::jobs(&f.inputs(), |j| j.phase == "Running");
    assert_eq!(only_running.jobs.len(), 1);
}

#[test]
fn nodes_use_measured_power_else_an_estimate() {
    let f = fixture();
    let list = views::nodes(&f.inputs(), None);
    let by_name: HashMap<&str, &views::NodeView> =
        list.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let measured = by_name["solar-a-gpu-0"];
    assert_eq!(
        (measured.gpu_power_w, measured.gpu_power_source),
        (2600.0, "measured")
    );
    let estimated = by_name["solar-a-gpu-1"];
    assert_eq!(estimated.gpu_power_source, "estimated");
    assert_eq!(
        estimated.gpu_power_w,
        4.0 * EngineConfig::default().default_gpu_watts
    );
    assert_eq!((estimated.gpus, estimated.gpus_in_use), (8, 4));
    assert_eq!(by_name["elsewhere-gpu-0"].site, None, "no site selects it");
    assert_eq!(views::nodes(&f.inputs(), Some("solar-a")).nodes.len(), 2);
}

fn filled<K>(objects: &[Arc<K>]) -> Store<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object.as_ref().clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

async fn serve(f: &Fixture) -> String {
    let plan = Arc::new(Plan::default());
    plan.with(|p| p.decisions = f.decisions.clone());
    let telemetry = Arc::new(Telemetry::default());
    let state = WebState {
        jobs: filled(&f.jobs),
        topology: Arc::new(SharedTopology::new(
            filled(&f.nodes),
            filled(&f.pods),
            filled(&f.sites),
        )),
        plan,
        telemetry,
        engine: EngineConfig::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    format!("http://{addr}")
}

async fn get(url: &str) -> (u16, String, String) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn the_api_and_the_page_over_a_real_socket() {
    let f = fixture();
    let base = serve(&f).await;

    let (status, content_type, body) = get(&format!("{base}/api/v1/sites")).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let sites: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sites["sites"][0]["name"], "solar-a");
    assert_eq!(sites["sites"][0]["headroomKw"], -25.0);
    assert_eq!(sites["sites"][0]["forecast"][0]["solarKw"], 80.0);

    let (status, _, body) = get(&format!("{base}/api/v1/jobs?phase=Deferred")).await;
    assert_eq!(status, 200);
    let jobs: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(
        jobs["jobs"][0]["decision"]["reason"],
        "DeferredForRenewables"
    );

    let (status, _, body) = get(&format!("{base}/api/v1/jobs?namespace=other")).await;
    assert_eq!(status, 200);
    assert_eq!(body.matches("\"name\"").count(), 0, "{body}");

    let (status, _, body) = get(&format!("{base}/api/v1/nodes?site=solar-a")).await;
    assert_eq!(status, 200);
    let nodes: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 2);

    let (status, content_type, body) = get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("<script src=\"app.js\">"), "{body}");
    let (status, content_type, body) = get(&format!("{base}/app.js")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/javascript"));
    assert!(body.contains("api/v1/sites"));
    let (status, content_type, _) = get(&format!("{base}/style.css")).await;
    assert_eq!((status, content_type.starts_with("text/css")), (200, true));
}

#[tokio::test]
async fn api_errors_are_json_with_a_reason() {
    let f = fixture();
    let base = serve(&f).await;
    for (path, code, reason, says) in [
        ("/api/v1/widgets", 404, "NotFound", "/api/v1/sites"),
        ("/api/v2/sites", 404, "NotFound", "no API at /api/v2/sites"),
        ("/api", 404, "NotFound", "/api/v1/jobs"),
        (
            "/api/v1/jobs?color=red",
            400,
            "UnknownParameter",
            "it takes namespace, site, phase",
        ),
        (
            "/api/v1/jobs?phase=Sleeping",
            400,
            "InvalidParameter",
            "Deferred",
        ),
        ("/api/v1/nodes?site=", 400, "EmptyParameter", "site"),
        (
            "/api/v1/sites?site=x",
            400,
            "UnknownParameter",
            "takes none",
        ),
    ] {
        let (status, content_type, body) = get(&format!("{base}{path}")).await;
        assert_eq!(status, code, "{path}: {body}");
        assert_eq!(content_type, "application/json", "{path}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["code"], code, "{path}");
        assert_eq!(error["reason"], reason, "{path}: {body}");
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/jobs"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["reason"], "MethodNotAllowed");
    assert!(error["message"].as_str().unwrap().contains("read-only"));
}
