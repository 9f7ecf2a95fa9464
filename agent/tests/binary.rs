//! The `verdant-agent` binary end to end, with the simulated backend, against a real
//! local HTTP server playing the operator: reports every window, power limits applied and
//! reported, /metrics, /healthz and /readyz over a real socket, SIGTERM (last window flushed,
//! limits restored), `--read-only`, and `sample` with both backends.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use verdant_crds::wire::{AgentReport, IngestResponse, PowerLimitTarget};

const AGENT: &str = env!("CARGO_BIN_EXE_verdant-agent");

#[derive(Clone, Default)]
struct Operator {
    reports: Arc<Mutex<Vec<AgentReport>>>,
    limits: Arc<Mutex<Vec<PowerLimitTarget>>>,
}

impl Operator {
    fn reports(&self) -> Vec<AgentReport> {
        self.reports.lock().unwrap().clone()
    }
}

async fn ingest(
    State(op): State<Operator>,
    Json(report): Json<AgentReport>,
) -> Json<IngestResponse> {
    op.reports.lock().unwrap().push(report);
    Json(IngestResponse {
        accepted: true,
        duplicate: false,
        power_limits: op.limits.lock().unwrap().clone(),
        ..Default::default()
    })
}

async fn start_operator() -> (Operator, SocketAddr) {
    let op = Operator::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/reports", post(ingest))
        .with_state(op.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (op, addr)
}

async fn free_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn spawn_agent(dir: &Path, operator: SocketAddr, metrics: SocketAddr, extra: &[&str]) -> Child {
    std::fs::write(dir.join("token"), "token-xyz").unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    Command::new(AGENT)
        .args([
            "run",
            "--backend",
            "simulated",
            "--sim-pods",
            "none",
            "--sim-gpus",
            "2",
        ])
        .args(["--sim-free-gpu-util", "100", "--node-name", "node-1"])
        .args(["--operator-url", &format!("http://{operator}")])
        .arg("--token-file")
        .arg(dir.join("token"))
        .arg("--buffer-dir")
        .arg(dir.join("buffer"))
        .args(["--sample-interval", "100ms", "--report-window", "1s"])
        .args(["--metrics-addr", &metrics.to_string()])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 15 s");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("the agent did not stop on SIGTERM within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_applies_power_limits_serves_metrics_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (op, addr) = start_operator().await;
    let metrics_addr = free_addr().await;
    let mut agent = spawn_agent(dir.path(), addr, metrics_addr, &[]);

    wait_for("two full windows", || op.reports().len() >= 3).await;
    let reports = op.reports();
    let full = &reports[1];
    assert_eq!(full.node, "node-1");
    assert_eq!(full.window_end_ms - full.window_start_ms, 1000);
    assert_eq!(
        full.window_end_ms % 1000,
        0,
        "windows align to the window length"
    );
    for pair in reports.windows(2) {
        assert_eq!(
            pair[0].window_end_ms, pair[1].window_start_ms,
            "windows chain"
        );
    }
    let gpu = &full.gpus[0];
    assert_eq!(
        (gpu.samples, gpu.mean_power_w, gpu.max_power_w),
        (10, 700.0, 700.0)
    );
    // 700 W for one window's worth of sampling periods (± one period of jitter).
    assert!(
        (gpu.energy_j - 700.0).abs() <= 70.0 + 1e-9,
        "{}",
        gpu.energy_j
    );
    assert_eq!(gpu.power_limit_w, 700.0);
    let uuid = gpu.uuid.clone();

    // The operator asks for a 300 W cap on GPU 0, and a cap below the minimum on GPU 1.
    *op.limits.lock().unwrap() = vec![
        PowerLimitTarget {
            uuid: uuid.clone(),
            limit_w: 300.0,
        },
        PowerLimitTarget {
            uuid: full.gpus[1].uuid.clone(),
            limit_w: 10.0,
        },
    ];
    wait_for("a window drawn under the cap", || {
        op.reports()
            .iter()
            .any(|r| r.gpus[0].samples == 10 && r.gpus[0].max_power_w == 300.0)
    })
    .await;
    let capped = op
        .reports()
        .into_iter()
        .rfind(|r| r.gpus[0].max_power_w == 300.0)
        .unwrap();
    assert_eq!(capped.gpus[0].power_limit_w, 300.0);
    assert_eq!(
        capped.gpus[1].power_limit_w, 210.0,
        "clamped to the GPU's minimum"
    );

    // /metrics, /healthz and /readyz over a real socket.
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expected = format!(
        "DCGM_FI_DEV_POWER_USAGE{{gpu=\"0\",UUID=\"{uuid}\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"node-1\",container=\"\",namespace=\"\",pod=\"\"}} 300.0"
    );
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains("DCGM_FI_DEV_POWER_MGMT_LIMIT{gpu=\"1\""),
        "{text}"
    );
    assert!(
        text.contains("verdant_agent_power_limit_changes_total{result=\"applied\"} 2"),
        "{text}"
    );
    assert!(text.contains("verdant_agent_reports_sent_total"), "{text}");
    for probe in ["healthz", "readyz"] {
        let health = reqwest::get(format!("http://{metrics_addr}/{probe}"))
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "/{probe}");
    }

    // The cap is withdrawn for GPU 1 only.
    *op.limits.lock().unwrap() = vec![PowerLimitTarget {
        uuid: uuid.clone(),
        limit_w: 300.0,
    }];
    wait_for("GPU 1 back to its default", || {
        op.reports()
            .last()
            .is_some_and(|r| r.gpus[1].power_limit_w == 700.0 && r.gpus[1].samples == 10)
    })
    .await;

    let before_stop = op.reports().len();
    let status = terminate(&mut agent);
    assert!(status.success(), "{status:?}");
    let reports = op.reports();
    let last = reports.last().unwrap();
    assert!(
        reports.len() > before_stop,
        "the open window is flushed on SIGTERM"
    );
    assert_ne!(
        last.window_end_ms % 1000,
        0,
        "the last window ends at the stop"
    );
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(log.contains("power limit restored to the default"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("buffer"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_left_by_a_killed_agent_is_restored_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (op, addr) = start_operator().await;
    // The simulated GPUs keep their limits in a file, as real GPUs keep theirs when the
    // process that set them dies.
    let hardware = dir.path().join("simulated-gpus.json");
    let state = dir.path().join("state");
    let extra = [
        "--sim-state-file",
        hardware.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut agent = spawn_agent(dir.path(), addr, free_addr().await, &extra);
    wait_for("a first report", || !op.reports().is_empty()).await;
    let uuid = op.reports()[0].gpus[0].uuid.clone();
    *op.limits.lock().unwrap() = vec![PowerLimitTarget {
        uuid: uuid.clone(),
        limit_w: 300.0,
    }];
    wait_for("a window under the cap", || {
        op.reports()
            .iter()
            .any(|r| r.gpus[0].power_limit_w == 300.0)
    })
    .await;
    let record = state.join("power-limits-node-1.json");
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(recorded.contains(&uuid), "{recorded}");

    // SIGKILL: no chance to restore anything.
    agent.kill().unwrap();
    agent.wait().unwrap();
    let limits = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    assert_eq!(limits(&hardware)[&uuid], 300.0, "the GPU stays capped");

    // The operator wants no cap any more; the next agent puts the default back before
    // its first window.
    op.limits.lock().unwrap().clear();
    let restarted_ms = jiff::Timestamp::now().as_millisecond();
    let mut agent = spawn_agent(dir.path(), addr, free_addr().await, &extra);
    let first_full = || {
        op.reports()
            .into_iter()
            .find(|r| r.window_start_ms >= restarted_ms && r.gpus[0].samples == 10)
    };
    wait_for("a full window of the new agent", || first_full().is_some()).await;
    let window = first_full().unwrap();
    assert_eq!(
        (window.gpus[0].power_limit_w, window.gpus[0].max_power_w),
        (700.0, 700.0),
        "the cap of the killed agent is gone"
    );
    assert_eq!(limits(&hardware)[&uuid], 700.0);
    assert!(terminate(&mut agent).success());
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(log.contains("restoring the defaults"), "{log}");
    assert_eq!(limits(&record)["cappedW"], serde_json::json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_never_applies_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (op, addr) = start_operator().await;
    let metrics_addr = free_addr().await;
    let mut agent = spawn_agent(dir.path(), addr, metrics_addr, &["--read-only"]);
    wait_for("a first report", || !op.reports().is_empty()).await;
    let uuid = op.reports()[0].gpus[0].uuid.clone();
    *op.limits.lock().unwrap() = vec![PowerLimitTarget {
        uuid,
        limit_w: 300.0,
    }];
    let seen = op.reports().len();
    wait_for("three more windows", || op.reports().len() >= seen + 3).await;
    assert!(
        op.reports()
            .iter()
            .all(|r| r.gpus[0].power_limit_w == 700.0 && r.gpus[0].max_power_w == 700.0)
    );
    assert!(terminate(&mut agent).success());
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(log.contains("--read-only"), "{log}");
}

#[test]
fn json_out_without_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let mut agent = Command::new(AGENT)
        .args([
            "run",
            "--backend",
            "simulated",
            "--sim-pods",
            "none",
            "--sim-gpus",
            "1",
        ])
        .args([
            "--sim-free-gpu-util",
            "50",
            "--node-name",
            "node-1",
            "--no-report",
        ])
        .args([
            "--sample-interval",
            "100ms",
            "--report-window",
            "500ms",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .arg("--json-out")
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::fs::read_to_string(&out)
            .map(|s| s.lines().count())
            .unwrap_or(0)
            >= 3
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(terminate(&mut agent).success());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 3, "{text}");
    let second = &lines[1];
    let gpu = &second["report"]["gpus"][0];
    // 70 + 630 × 0.5 = 385 W, constant: counter energy and integrated power agree.
    assert_eq!(gpu["meanPowerW"], 385.0);
    let counter_j = gpu["energyJ"].as_f64().unwrap();
    let integrated_j = second["integratedPowerJ"][0].as_f64().unwrap();
    assert!(
        (counter_j - integrated_j).abs() < 0.01,
        "{counter_j} vs {integrated_j}"
    );
    assert_eq!(second["attribution"], "backend");
}

#[test]
fn sample_prints_every_gpu_as_json() {
    let output = Command::new(AGENT)
        .args([
            "sample",
            "--backend",
            "simulated",
            "--sim-pods",
            "none",
            "--sim-gpus",
            "3",
        ])
        .args([
            "--node-name",
            "node-9",
            "--sim-model",
            "NVIDIA A100-SXM4-40GB",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["backend"], "simulated");
    assert_eq!(json["node"], "node-9");
    let gpus = json["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 3);
    assert_eq!(gpus[2]["index"], 2);
    assert_eq!(gpus[0]["model"], "NVIDIA A100-SXM4-40GB");
    assert_eq!(gpus[0]["memoryTotalBytes"], 40u64 << 30);
    assert_eq!(gpus[0]["powerW"], 70.0);
}

#[test]
fn nvml_without_a_driver_fails_with_an_explanation() {
    let output = Command::new(AGENT)
        .args([
            "sample",
            "--backend",
            "nvml",
            "--nvml-lib",
            "/nonexistent/libnvidia-ml.so.1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("NVML is unavailable"), "{stderr}");
    assert!(stderr.contains("--backend simulated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn run_needs_an_operator_url_unless_told_not_to_report() {
    let output = Command::new(AGENT)
        .args([
            "run",
            "--backend",
            "simulated",
            "--sim-pods",
            "none",
            "--node-name",
            "n",
        ])
        .env_remove("VERDANT_OPERATOR_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--operator-url"));
}
