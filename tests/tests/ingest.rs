//! The operator's ingest endpoint and energy accounting, end to end: a real
//! kube-apiserver (TokenRequest, TokenReview, RBAC), KWOK nodes, `verdant-operator run` as
//! a process, real HTTP, and the store on a SQLite file or a real PostgreSQL.
//!
//! Each scenario has its own control plane (an operator sees its whole cluster).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use verdant_crds::wire::{AgentReport, GpuWindow, IngestResponse, PodRef, REPORT_SCHEMA};
use verdant_crds::{EnergySite, JobPhase, TrainingJob};
use verdant_store::{Store, StoreConfig, create_postgres_database};
use verdant_tests::agents::create_agent_pod;
use verdant_tests::proxy::CuttableProxy;
use verdant_tests::service_account::request_token;
use verdant_tests::{ControlPlane, OperatorProcess, TestNamespace, create_gpu_nodes, wait};

const AGENT: &str = "verdant-agent";
const WINDOW_MS: i64 = 10_000;
const PUE: f64 = 1.25;
const CARBON: f64 = 400.0;
const BASE_W: f64 = 400.0;

struct Rig {
    operator: Option<OperatorProcess>,
    ns: TestNamespace,
    client: kube::Client,
    http: reqwest::Client,
    /// GPU nodes, all at one site named after the namespace.
    nodes: Vec<String>,
    /// The agent pod's token of each node (audience `verdant`, bound to the pod).
    tokens: Vec<String>,
    database_url: String,
    plane: ControlPlane,
}

impl Rig {
    /// A control plane, `nodes` KWOK nodes with 4 GPUs at a site with `supply_kw` of
    /// constant renewable supply, an agent pod and token per node, and the operator.
    async fn start(test: &str, nodes: u32, supply_kw: f64, database_url: Option<String>) -> Rig {
        let plane = ControlPlane::start_owned();
        let client = plane.client().await.expect("client");
        let ns = TestNamespace::create(&plane, &client, test)
            .await
            .expect("namespace");
        let site = ns.name().to_owned();
        let names = create_gpu_nodes(&client, &format!("{site}-gpu"), &site, nodes, 4)
            .await
            .expect("nodes");
        let energy_site: EnergySite = serde_json::from_value(json!({
            "apiVersion": "verdant.dev/v1alpha1",
            "kind": "EnergySite",
            "metadata": {"name": site},
            "spec": {
                "nodeSelector": {"matchLabels": {"verdant.dev/site": site}},
                "location": {"latitude": 36.1, "longitude": -79.9},
                "pue": PUE,
                "grid": {"carbonIntensityGPerKwh": CARBON},
                "forecast": {"provider": "Static", "static": {"constantKw": supply_kw}}
            }
        }))
        .unwrap();
        Api::<EnergySite>::all(client.clone())
            .create(&PostParams::default(), &energy_site)
            .await
            .expect("EnergySite");
        let account: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": AGENT}})).unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), ns.name())
            .create(&PostParams::default(), &account)
            .await
            .expect("agent ServiceAccount");
        let mut tokens = Vec::new();
        for node in &names {
            let pod = agent_pod(&client, ns.name(), &format!("agent-{node}"), node, AGENT).await;
            tokens.push(token(&client, ns.name(), AGENT, &["verdant"], Some(&pod)).await);
        }
        let database_url = database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                plane.dir().join(format!("energy-{test}.db")).display()
            )
        });
        let mut rig = Rig {
            operator: None,
            ns,
            client,
            http: reqwest::Client::new(),
            nodes: names,
            tokens,
            database_url,
            plane,
        };
        rig.start_operator().await;
        rig
    }

    async fn start_operator(&mut self) {
        let account = format!("{}:{AGENT}", self.ns.name());
        let ingest_addr = match &self.operator {
            Some(old) => old.ingest_url.trim_start_matches("http://").to_owned(),
            None => format!(
                "127.0.0.1:{}",
                verdant_tests::free_port().expect("a free port")
            ),
        };
        let operator = OperatorProcess::start(
            &self.plane,
            env!("CARGO_BIN_EXE_e2e-operator"),
            &[
                "--agent-service-account",
                &account,
                "--database-url",
                &self.database_url,
                "--ingest-addr",
                &ingest_addr,
                "--node-base-watts",
                &BASE_W.to_string(),
                "--energy-status-seconds",
                "1",
                "--max-gpu-watts",
                "1000",
            ],
        )
        .expect("operator starts");
        self.operator = Some(operator);
        // Up once the endpoint answers (it binds after the caches synced); a GET is
        // refused with 405 without counting as a rejected report.
        let url = self.url();
        let http = self.http.clone();
        wait::until("the ingest endpoint", Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                Ok(match http.get(&url).send().await {
                    Ok(r) => Ok(r.status()),
                    Err(e) => Err(e.to_string()),
                })
            }
        })
        .await
        .expect("ingest endpoint up");
        // Reports get 503 until the store is open (it opens in the background).
        let operator = self.operator.as_ref().expect("operator");
        wait::until("the energy store to open", Duration::from_secs(60), || {
            let ready = operator.log().contains("energy store ready");
            async move {
                Ok(if ready {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                })
            }
        })
        .await
        .expect("energy store open");
    }

    fn url(&self) -> String {
        format!(
            "{}/v1/reports",
            self.operator.as_ref().expect("operator").ingest_url
        )
    }

    fn operator(&mut self) -> &mut OperatorProcess {
        self.operator.as_mut().expect("operator")
    }

    async fn post(&self, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url())
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn send(&self, token: &str, report: &AgentReport) -> (StatusCode, Value) {
        self.post(Some(token), serde_json::to_vec(report).unwrap())
            .await
    }

    async fn metrics(&mut self) -> String {
        let url = format!("{}/metrics", self.operator().http_url);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn store(&self) -> Store {
        Store::connect(&StoreConfig::new(self.database_url.clone()))
            .await
            .expect("opening the operator's store")
    }
}

async fn agent_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    node: &str,
    account: &str,
) -> Pod {
    create_agent_pod(client, namespace, name, node, account)
        .await
        .expect("agent pod")
}

/// A token of `account` from the TokenRequest API, bound to `pod` as a projected token is.
async fn token(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    audiences: &[&str],
    pod: Option<&Pod>,
) -> String {
    let uid = pod.and_then(|p| p.uid()).unwrap_or_default();
    let bound = pod.map(|p| (p.metadata.name.as_deref().unwrap_or_default(), uid.as_str()));
    request_token(client, namespace, account, audiences, 600, bound)
        .await
        .expect("TokenRequest")
}

fn gpu(index: u32, watts: f64, pod: Option<(&str, &str)>) -> GpuWindow {
    GpuWindow {
        uuid: format!("GPU-{index:02}"),
        index,
        model: "NVIDIA H100 80GB HBM3".into(),
        samples: 10,
        mean_power_w: watts,
        max_power_w: watts,
        energy_j: watts * (WINDOW_MS / 1000) as f64,
        energy_counter_reset: false,
        mean_gpu_util_percent: if pod.is_some() { 95.0 } else { 0.0 },
        mean_mem_util_percent: 30.0,
        memory_used_bytes: 1 << 30,
        memory_total_bytes: 80 << 30,
        temperature_c: 55.0,
        sm_clock_mhz: 1980,
        power_limit_w: 700.0,
        default_power_limit_w: 700.0,
        min_power_limit_w: 200.0,
        max_power_limit_w: 700.0,
        pod: pod.map(|(namespace, name)| PodRef {
            namespace: namespace.into(),
            name: name.into(),
            container: "trainer".into(),
        }),
    }
}

fn report(node: &str, window_start_ms: i64, gpus: Vec<GpuWindow>) -> AgentReport {
    AgentReport {
        schema: REPORT_SCHEMA,
        node: node.into(),
        agent_version: "e2e".into(),
        window_start_ms,
        window_end_ms: window_start_ms + WINDOW_MS,
        gpus,
    }
}

/// The start of a window that ended a little before now, aligned to 10 s.
fn recent_window_ms(windows_ago: i64) -> i64 {
    let now = jiff::Timestamp::now().as_millisecond();
    (now / WINDOW_MS - 1 - windows_ago) * WINDOW_MS
}

/// POSTs a body of `len` bytes over a raw socket and reads the answer while the body is
/// still being written: the server answers 413 from the headers and closes, which an HTTP
/// client library reports as a broken pipe rather than the answer.
async fn post_oversized(url: &str, token: &str, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /v1/reports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        if write.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if write.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&answer).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                writer.abort();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return (status, body.to_owned());
            }
        }
        match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            other => panic!(
                "no complete answer to the oversized report ({other:?}); got {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
}

fn error_of(body: &Value) -> String {
    body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn reports_are_authenticated_checked_and_idempotent() {
    let mut rig = Rig::start("ingest-auth", 2, 10.0, None).await;
    let (node_a, node_b) = (rig.nodes[0].clone(), rig.nodes[1].clone());
    let token_a = rig.tokens[0].clone();
    let ns = rig.ns.name().to_owned();
    let start = recent_window_ms(3);
    let good = report(
        &node_a,
        start,
        vec![gpu(0, 650.0, None), gpu(1, 80.0, None)],
    );

    // Accepted, then the same window again: an identical retry is a duplicate.
    let (status, body) = rig.send(&token_a, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: IngestResponse = serde_json::from_value(body).unwrap();
    assert!(answer.accepted && !answer.duplicate);
    let (status, body) = rig.send(&token_a, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], true);
    // The same window with other numbers is a replay.
    let mut replay = good.clone();
    replay.gpus[0].energy_j = 1.0;
    let (status, body) = rig.send(&token_a, &replay).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_of(&body).contains("different content"), "{body}");

    // A valid token of node A never writes node B.
    let forged = report(&node_b, start, vec![gpu(0, 650.0, None)]);
    let (status, body) = rig.send(&token_a, &forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error_of(&body).contains(&format!("cannot write reports for node {node_b}")),
        "{body}"
    );

    // No token, a token for the API server's audience, and another account's token.
    let (status, body) = rig.post(None, serde_json::to_vec(&good).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        error_of(&body).contains("no Authorization header"),
        "{body}"
    );
    let agent_a = Api::<Pod>::namespaced(rig.client.clone(), &ns)
        .get(&format!("agent-{node_a}"))
        .await
        .unwrap();
    let wrong_audience = token(&rig.client, &ns, AGENT, &[], Some(&agent_a)).await;
    let (status, body) = rig.send(&wrong_audience, &good).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("rejected the token"), "{body}");
    let other_pod = agent_pod(&rig.client, &ns, "not-the-agent", &node_a, "default").await;
    let other = token(&rig.client, &ns, "default", &["verdant"], Some(&other_pod)).await;
    let (status, body) = rig.send(&other, &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error_of(&body).contains("not to the agent's ServiceAccount"),
        "{body}"
    );
    let unbound = token(&rig.client, &ns, AGENT, &["verdant"], None).await;
    let (status, body) = rig.send(&unbound, &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_of(&body).contains("not bound to a pod"), "{body}");

    // A token whose pod is gone is dead, as an expired one is.
    let doomed = agent_pod(&rig.client, &ns, "agent-doomed", &node_a, AGENT).await;
    let doomed_token = token(&rig.client, &ns, AGENT, &["verdant"], Some(&doomed)).await;
    Api::<Pod>::namespaced(rig.client.clone(), &ns)
        .delete("agent-doomed", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait::until("the doomed pod to be gone", Duration::from_secs(30), || {
        let pods = Api::<Pod>::namespaced(rig.client.clone(), &ns);
        async move {
            Ok(match pods.get_opt("agent-doomed").await? {
                None => Ok(()),
                Some(_) => Err("still there".to_owned()),
            })
        }
    })
    .await
    .unwrap();
    let next = report(&node_a, start + WINDOW_MS, vec![gpu(0, 600.0, None)]);
    let (status, body) = rig.send(&doomed_token, &next).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Broken JSON, a 10 MB body, negative watts.
    let (status, body) = rig
        .post(Some(&token_a), b"{\"schema\": 1, \"node\":".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("not an agent report"), "{body}");
    let (status, body) = post_oversized(&rig.url(), &token_a, 10 * 1024 * 1024).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("at most 1048576"), "{body}");
    let mut negative = next.clone();
    negative.gpus[0].mean_power_w = -300.0;
    let (status, body) = rig.send(&token_a, &negative).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("cannot be negative"), "{body}");

    // A counter that went backwards: the energy since the reset is accepted and logged.
    let mut reset = next.clone();
    reset.gpus[0].energy_counter_reset = true;
    reset.gpus[0].energy_j = 1234.5;
    let (status, body) = rig.send(&token_a, &reset).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let store = rig.store().await;
    assert_eq!(
        store.report_windows(&node_a).await.unwrap(),
        vec![start, start + WINDOW_MS]
    );
    assert!(store.report_windows(&node_b).await.unwrap().is_empty());
    let samples = store
        .gpu_samples(&node_a, start + WINDOW_MS, start + 2 * WINDOW_MS)
        .await
        .unwrap();
    assert!(samples[0].energy_counter_reset);
    assert_eq!(samples[0].energy_j, 1234.5);

    let metrics = rig.metrics().await;
    for (reason, count) in [
        ("replayed", 1),
        ("node_mismatch", 1),
        ("unauthenticated", 3),
        ("forbidden", 2),
        ("malformed", 1),
        ("too_large", 1),
        ("invalid", 1),
    ] {
        let line = format!("verdant_ingest_rejected_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "missing {line} in:\n{metrics}");
    }
    assert!(metrics.contains("verdant_ingest_energy_counter_resets_total 1"));
    assert!(metrics.contains("verdant_ingest_reports_total{outcome=\"duplicate\"} 1"));
    let log = rig.operator().log();
    assert!(log.contains("agent report refused"), "{log}");
    assert!(log.contains("node_mismatch"));
    assert!(log.contains("energy counter went backwards"));
}

/// Expected bill of one window: (energy, renewable, grid, CO₂) of a job's GPUs.
fn expected_bill(site_gpu_w: f64, supply_w: f64, job_j: f64) -> (f64, f64, f64, f64) {
    let facility_w = (site_gpu_w + BASE_W) * PUE;
    let share = (supply_w / facility_w).min(1.0);
    let renewable = job_j * share;
    let grid = job_j - renewable;
    (job_j, renewable, grid, grid / 3.6e6 * CARBON)
}

/// Creates the one-replica job `llama` with `gpus` GPUs (succeeding after
/// `succeed_after` on KWOK, if given) and waits until it runs.
async fn running_llama(
    jobs: &Api<TrainingJob>,
    gpus: u32,
    succeed_after: Option<&str>,
) -> TrainingJob {
    let annotations = match succeed_after {
        Some(after) => json!({"verdant.dev/kwok-succeed-after": after}),
        None => json!({}),
    };
    let job: TrainingJob = serde_json::from_value(json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "llama"},
        "spec": {
            "replicas": 1,
            "gpusPerReplica": gpus,
            "energy": {"policy": "Immediate"},
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"containers": [{"name": "trainer", "image": "pytorch/pytorch"}]}
            }
        }
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    wait::until("llama to run", Duration::from_secs(60), || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get("llama").await?;
            let phase = job.status.as_ref().map(|s| s.phase).unwrap_or_default();
            Ok(if phase == JobPhase::Running {
                Ok(job)
            } else {
                Err(format!("{phase:?}"))
            })
        }
    })
    .await
    .unwrap()
}

/// The sum of a counter's series for one namespace, from the operator's /metrics.
fn counter_sum(metrics: &str, name: &str, namespace: &str) -> f64 {
    let prefix = format!("{name}{{namespace=\"{namespace}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn the_ledger_is_exact_to_the_watt_second() {
    // 1.5 kW of sun for one node with 4 GPUs and 400 W of base load, PUE 1.25.
    let mut rig = Rig::start("ingest-ledger", 1, 1.5, None).await;
    let ns = rig.ns.name().to_owned();
    let node = rig.nodes[0].clone();
    let token_a = rig.tokens[0].clone();
    let jobs: Api<TrainingJob> = Api::namespaced(rig.client.clone(), &ns);
    let running = running_llama(&jobs, 2, Some("40s")).await;
    let uid = running.uid().unwrap();
    let pod = (ns.as_str(), "llama-0");

    // Three windows: the job's two GPUs, one GPU of a pod that is not a job's, one idle.
    // Site GPU power 1,000 W, then 2,000 W, then 500 W; the job's GPUs draw 600, 1,500
    // and 300 W in all.
    let plan: [(f64, f64, f64, f64); 3] = [
        (250.0, 350.0, 300.0, 100.0),
        (700.0, 800.0, 400.0, 100.0),
        (100.0, 200.0, 150.0, 50.0),
    ];
    let first = recent_window_ms(4);
    let mut expected = (0.0, 0.0, 0.0, 0.0);
    for (k, (g0, g1, g2, g3)) in plan.iter().copied().enumerate() {
        let r = report(
            &node,
            first + k as i64 * WINDOW_MS,
            vec![
                gpu(0, g0, Some(pod)),
                gpu(1, g1, Some(pod)),
                gpu(2, g2, Some((ns.as_str(), "someone-else"))),
                gpu(3, g3, None),
            ],
        );
        let (status, body) = rig.send(&token_a, &r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let bill = expected_bill(g0 + g1 + g2 + g3, 1500.0, (g0 + g1) * 10.0);
        expected.0 += bill.0;
        expected.1 += bill.1;
        expected.2 += bill.2;
        expected.3 += bill.3;
    }
    // Window 1: (1000 + 400) × 1.25 = 1750 W, share 1500/1750; window 2: 3000 W, share
    // 0.5; window 3: 1125 W, share 1 (capped).
    assert!((expected.0 - 24_000.0).abs() < 1e-9);

    let store = rig.store().await;
    let ledger = store
        .ledger(&uid)
        .await
        .unwrap()
        .expect("a ledger for llama");
    assert_eq!(
        (ledger.namespace.as_str(), ledger.name.as_str()),
        (ns.as_str(), "llama")
    );
    assert_eq!(ledger.site.as_deref(), Some(ns.as_str()));
    for (what, got, want) in [
        ("energy", ledger.energy_j, expected.0),
        ("renewable", ledger.renewable_j, expected.1),
        ("grid", ledger.grid_j, expected.2),
    ] {
        assert!(
            (got - want).abs() < 1e-6,
            "{what}: billed {got} J, expected {want} J"
        );
    }
    assert!((ledger.co2_g - expected.3).abs() < 1e-9);
    let stored = store.report(&node, first).await.unwrap().unwrap();
    let billing = stored.billing.unwrap();
    assert_eq!(billing.gpu_power_w, 1000.0);
    assert_eq!(billing.base_power_w, BASE_W);
    assert_eq!(billing.renewable_supply_w, 1500.0);
    assert!((billing.renewable_share - 1500.0 / 1750.0).abs() < 1e-12);

    // status.energy follows, under its own field manager, next to the reconcile's fields.
    let expected_kwh = expected.0 / 3.6e6;
    let job = wait::until("status.energy of llama", Duration::from_secs(30), || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get("llama").await?;
            let energy = job.status.as_ref().and_then(|s| s.energy.clone());
            Ok(match energy {
                Some(e) if (e.gpu_energy_kwh - expected_kwh).abs() < 1e-12 => Ok(job),
                other => Err(format!("{other:?}")),
            })
        }
    })
    .await
    .unwrap();
    let energy = job.status.as_ref().unwrap().energy.clone().unwrap();
    let fraction = expected.1 / expected.0;
    assert!((energy.renewable_fraction - fraction).abs() < 1e-12);
    assert_eq!(energy.renewable_percent, (fraction * 1000.0).round() / 10.0);
    assert!((energy.co2_grams - expected.3).abs() < 1e-9);
    assert_eq!(
        job.status.as_ref().unwrap().phase,
        JobPhase::Running,
        "the energy write kept the phase"
    );
    let managers: BTreeSet<String> = job
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:status"].get("f:energy").is_some())
        })
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, BTreeSet::from(["verdant-accounting".to_owned()]));

    // The per-namespace counters count each stored window once: they add up to the
    // job's status.energy (this namespace has no other job).
    let metrics = rig.metrics().await;
    let kwh = counter_sum(&metrics, "verdant_energy_kwh_total", &ns);
    let co2_g = counter_sum(&metrics, "verdant_co2_grams_total", &ns);
    assert!(
        (kwh - energy.gpu_energy_kwh).abs() < 1e-12,
        "verdant_energy_kwh_total {kwh} vs status.energy {} kWh:\n{metrics}",
        energy.gpu_energy_kwh
    );
    assert!(
        (co2_g - energy.co2_grams).abs() < 1e-9,
        "verdant_co2_grams_total {co2_g} vs status.energy {} g",
        energy.co2_grams
    );

    // The job finishes; the reconcile writes Succeeded and the energy stays.
    let done = wait::until("llama to succeed", Duration::from_secs(90), || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get("llama").await?;
            let phase = job.status.as_ref().map(|s| s.phase).unwrap_or_default();
            Ok(if phase == JobPhase::Succeeded {
                Ok(job)
            } else {
                Err(format!("{phase:?}"))
            })
        }
    })
    .await
    .unwrap();
    assert_eq!(done.status.unwrap().energy, Some(energy));
}

#[tokio::test]
async fn gpus_are_billed_only_to_pods_running_on_the_reporting_node() {
    let mut rig = Rig::start("ingest-attribution", 2, 10.0, None).await;
    let ns = rig.ns.name().to_owned();
    let jobs: Api<TrainingJob> = Api::namespaced(rig.client.clone(), &ns);
    let uid = running_llama(&jobs, 4, None).await.uid().unwrap();
    let pod = Api::<Pod>::namespaced(rig.client.clone(), &ns)
        .get("llama-0")
        .await
        .unwrap();
    let home = pod.spec.unwrap().node_name.unwrap();
    let (h, a) = if rig.nodes[0] == home { (0, 1) } else { (1, 0) };
    let (away, token_home, token_away) = (
        rig.nodes[a].clone(),
        rig.tokens[h].clone(),
        rig.tokens[a].clone(),
    );
    let llama = Some((ns.as_str(), "llama-0"));
    let start = recent_window_ms(3);

    // The other node's agent names llama-0 for one GPU and a pod that does not exist for
    // another: stored, billed to nobody, and said so.
    let stray = report(
        &away,
        start,
        vec![
            gpu(0, 600.0, llama),
            gpu(1, 500.0, Some((ns.as_str(), "ghost"))),
            gpu(2, 60.0, None),
        ],
    );
    let (status, body) = rig.send(&token_away, &stray).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: IngestResponse = serde_json::from_value(body.clone()).unwrap();
    let refused: Vec<(&str, &str)> = answer
        .refused_gpus
        .iter()
        .map(|g| (g.uuid.as_str(), g.reason.as_str()))
        .collect();
    assert_eq!(
        refused,
        [("GPU-00", "pod_not_on_node"), ("GPU-01", "pod_not_found")],
        "{body}"
    );
    assert!(
        answer.refused_gpus[0]
            .message
            .contains(&format!("runs on node {home}, not on {away}")),
        "{body}"
    );
    let store = rig.store().await;
    assert_eq!(
        store.ledger(&uid).await.unwrap(),
        None,
        "nothing billed to llama"
    );
    let samples = store
        .gpu_samples(&away, start, start + WINDOW_MS)
        .await
        .unwrap();
    assert_eq!(samples.len(), 3, "the readings are kept");
    assert!(samples.iter().all(|s| s.job_uid.is_none()));

    // Its own node's agent bills it.
    let own = report(
        &home,
        start,
        vec![gpu(0, 600.0, llama), gpu(1, 600.0, llama)],
    );
    let (status, body) = rig.send(&token_home, &own).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refusedGpus").is_none(), "{body}");
    let ledger = store.ledger(&uid).await.unwrap().expect("llama billed");
    assert!((ledger.energy_j - 12_000.0).abs() < 1e-9, "{ledger:?}");

    // What the operator knows of the node bounds what its agent may claim: 4 GPUs
    // (nvidia.com/gpu), 1,000 W each (--max-gpu-watts), whatever limits it reports.
    let five = report(
        &home,
        start + WINDOW_MS,
        (0..5).map(|i| gpu(i, 300.0, None)).collect(),
    );
    let (status, body) = rig.send(&token_home, &five).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_of(&body).contains(&format!("lists 5 GPUs but node {home} has 4")),
        "{body}"
    );
    let mut greedy = gpu(0, 1600.0, llama);
    (greedy.power_limit_w, greedy.max_power_limit_w) = (5000.0, 5000.0);
    let (status, body) = rig
        .send(&token_home, &report(&home, start + WINDOW_MS, vec![greedy]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_of(&body).contains("--max-gpu-watts"), "{body}");
    assert_eq!(
        store.ledger(&uid).await.unwrap().unwrap().energy_j,
        ledger.energy_j,
        "refused reports bill nothing"
    );

    let metrics = rig.metrics().await;
    for line in [
        "verdant_ingest_gpus_refused_total{reason=\"pod_not_on_node\"} 1",
        "verdant_ingest_gpus_refused_total{reason=\"pod_not_found\"} 1",
        "verdant_ingest_rejected_total{reason=\"implausible\"} 2",
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    let log = rig.operator().log();
    assert!(log.contains("pod_not_on_node"), "{log}");
}

fn postgres_base_url() -> String {
    if let Ok(url) = std::env::var("VERDANT_TEST_POSTGRES_URL")
        && !url.trim().is_empty()
    {
        return url;
    }
    let script = verdant_tests::repo_root().join("hack/postgres.sh");
    let output = std::process::Command::new(&script)
        .arg("up")
        .output()
        .expect("running hack/postgres.sh");
    assert!(
        output.status.success(),
        "hack/postgres.sh up failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn an_unreachable_database_gets_503_then_recovers() {
    let database = create_postgres_database(&postgres_base_url(), "verdant_test")
        .await
        .expect("a fresh PostgreSQL database");
    // postgres://user@127.0.0.1:PORT/db → through the proxy.
    let (prefix, rest) = database.split_once("@").unwrap();
    let (host_port, db) = rest.split_once('/').unwrap();
    let proxy = CuttableProxy::start(host_port.to_owned()).await.unwrap();
    let through_proxy = format!("{prefix}@127.0.0.1:{}/{db}", proxy.port);
    let rig = Rig::start("ingest-db-down", 1, 10.0, Some(through_proxy)).await;
    let node = rig.nodes[0].clone();
    let token_a = rig.tokens[0].clone();
    let start = recent_window_ms(5);

    // The operator connects to the database in the background; until then it answers
    // 503 and the agent retries, as later on.
    let first = report(&node, start, vec![gpu(0, 500.0, None)]);
    wait::until(
        "the first report to be stored",
        Duration::from_secs(60),
        || {
            let (rig, token, first) = (&rig, &token_a, &first);
            async move {
                let (status, body) = rig.send(token, first).await;
                Ok(if status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(format!("{status}: {body}"))
                })
            }
        },
    )
    .await
    .unwrap();

    proxy.cut();
    let second = report(&node, start + WINDOW_MS, vec![gpu(0, 510.0, None)]);
    let (status, body) = rig.send(&token_a, &second).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(error_of(&body).contains("unavailable"), "{body}");

    // The agent retries the same report; once the database is back it is stored.
    proxy.restore().await.unwrap();
    let retried = wait::until(
        "the retried report to be stored",
        Duration::from_secs(60),
        || {
            let (rig, token, second) = (&rig, &token_a, &second);
            async move {
                let (status, body) = rig.send(token, second).await;
                Ok(if status == StatusCode::OK {
                    Ok(body)
                } else {
                    Err(format!("{status}: {body}"))
                })
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(retried["duplicate"], false, "stored once, by the retry");
    let store = Store::connect(&StoreConfig::new(database)).await.unwrap();
    assert_eq!(
        store.report_windows(&node).await.unwrap(),
        vec![start, start + WINDOW_MS]
    );
}

#[tokio::test]
async fn sigkill_mid_batch_loses_no_acknowledged_report() {
    let mut rig = Rig::start("ingest-sigkill", 4, 10.0, None).await;
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let first = recent_window_ms(400);
    let url = rig.url();
    // Four agents (one per node) flush their buffers as fast as the operator answers.
    let mut senders = Vec::new();
    for (node, token) in rig.nodes.iter().cloned().zip(rig.tokens.iter().cloned()) {
        let (http, url, acknowledged) = (rig.http.clone(), url.clone(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            for k in 0..390 {
                let r = report(
                    &node,
                    first + k * WINDOW_MS,
                    (0..4).map(|i| gpu(i, 300.0 + k as f64, None)).collect(),
                );
                let sent = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&r)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => acknowledged
                        .lock()
                        .unwrap()
                        .push((node.clone(), r.window_start_ms)),
                    _ => break, // the operator is gone
                }
            }
        }));
    }
    wait::until("some reports acknowledged", Duration::from_secs(60), || {
        let acknowledged = acknowledged.clone();
        async move {
            let n = acknowledged.lock().unwrap().len();
            Ok(if n >= 40 { Ok(()) } else { Err(format!("{n}")) })
        }
    })
    .await
    .unwrap();
    rig.operator().kill();
    for sender in senders {
        let _ = sender.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 40);

    // Straight from the file the killed operator left: every acknowledged window is there.
    let store = rig.store().await;
    let mut stored = BTreeSet::new();
    for node in &rig.nodes {
        for start in store.report_windows(node).await.unwrap() {
            stored.insert((node.clone(), start));
        }
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|key| !stored.contains(*key))
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let (_, samples, _, _) = store.row_counts().await.unwrap();
    assert_eq!(samples as usize, stored.len() * 4, "no half-written report");
    store.close().await;

    // After a restart, the agents' retries of acknowledged windows are duplicates and
    // the rest is stored.
    rig.start_operator().await;
    let node = rig.nodes[0].clone();
    let token_a = rig.tokens[0].clone();
    let last_acknowledged = acknowledged
        .iter()
        .filter(|(n, _)| *n == node)
        .map(|(_, start)| *start)
        .max()
        .unwrap();
    let k = (last_acknowledged - first) / WINDOW_MS;
    let retry = report(
        &node,
        last_acknowledged,
        (0..4).map(|i| gpu(i, 300.0 + k as f64, None)).collect(),
    );
    let (status, body) = rig.send(&token_a, &retry).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], true, "{body}");
}
