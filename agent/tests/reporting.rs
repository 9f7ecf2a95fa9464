//! Reporting against a real local HTTP server playing the operator's ingest endpoint:
//! acceptance, rejection, 503 and 401 retries, an operator that is down for a while, a
//! bounded buffer, an agent restart, and power limits in the answer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use verdant_agent::metrics::Metrics;
use verdant_agent::report::{Reporter, ReporterConfig};
use verdant_crds::wire::{
    AgentReport, IngestError, IngestResponse, PowerLimitTarget, REPORT_SCHEMA,
};

const TOKEN: &str = "projected-token-abc";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Accept,
    Reject,
    Unavailable,
    Unauthorized,
}

#[derive(Default)]
struct Seen {
    windows: Vec<i64>,
    auth: Vec<String>,
}

#[derive(Clone)]
struct Operator {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    limits: Arc<Mutex<Vec<PowerLimitTarget>>>,
}

impl Operator {
    fn new(mode: Mode) -> Self {
        Self {
            mode: Arc::new(Mutex::new(mode)),
            seen: Arc::default(),
            limits: Arc::default(),
        }
    }
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn windows(&self) -> Vec<i64> {
        self.seen.lock().unwrap().windows.clone()
    }
}

async fn ingest(State(op): State<Operator>, headers: HeaderMap, body: String) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mode = *op.mode.lock().unwrap();
    let error = |status: StatusCode, why: &str| {
        (status, Json(IngestError { error: why.into() })).into_response()
    };
    match mode {
        Mode::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
        Mode::Unauthorized => error(StatusCode::UNAUTHORIZED, "token rejected"),
        Mode::Reject => error(StatusCode::BAD_REQUEST, "negative watts"),
        Mode::Accept => {
            let Ok(report) = serde_json::from_str::<AgentReport>(&body) else {
                return error(StatusCode::BAD_REQUEST, "not a report");
            };
            let mut seen = op.seen.lock().unwrap();
            let duplicate = seen.windows.contains(&report.window_start_ms);
            if !duplicate {
                seen.windows.push(report.window_start_ms);
            }
            seen.auth.push(auth);
            Json(IngestResponse {
                accepted: true,
                duplicate,
                power_limits: op.limits.lock().unwrap().clone(),
                ..Default::default()
            })
            .into_response()
        }
    }
}

/// Serves the fake operator on `addr` (port 0: any) until the task is aborted.
async fn start(op: &Operator, addr: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/reports", post(ingest))
        .with_state(op.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (local, task)
}

fn report(start_ms: i64) -> AgentReport {
    AgentReport {
        schema: REPORT_SCHEMA,
        node: "node-1".into(),
        agent_version: "test".into(),
        window_start_ms: start_ms,
        window_end_ms: start_ms + 10_000,
        gpus: vec![],
    }
}

fn config(url: String, dir: &Path, token_file: PathBuf, capacity: usize) -> ReporterConfig {
    ReporterConfig {
        operator_url: url,
        token_file,
        ca_file: None,
        request_timeout: Duration::from_secs(2),
        max_backoff: Duration::from_millis(100),
        buffer_dir: dir.join("buffer"),
        buffer_capacity: capacity,
    }
}

fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

fn reporter(
    config: ReporterConfig,
    metrics: &Arc<Metrics>,
) -> (Reporter, Arc<Mutex<Vec<Vec<PowerLimitTarget>>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let r = Reporter::new(
        config,
        metrics.clone(),
        Box::new(move |limits| sink.lock().unwrap().push(limits)),
    )
    .unwrap();
    (r, got)
}

fn metric(metrics: &Metrics, line_start: &str) -> Option<f64> {
    metrics
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A free port with nothing listening on it.
async fn free_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn retries_503_and_401_delivers_in_order_and_drops_rejected_reports() {
    let dir = tempfile::tempdir().unwrap();
    let op = Operator::new(Mode::Unavailable);
    let (addr, _server) = start(&op, "127.0.0.1:0".parse().unwrap()).await;
    let metrics = Arc::new(Metrics::new("node-1", "simulated"));
    let (mut r, limits) = reporter(
        config(
            format!("http://{addr}"),
            dir.path(),
            token_file(dir.path()),
            360,
        ),
        &metrics,
    );

    for start in [0, 10_000, 20_000] {
        r.enqueue(&report(start));
    }
    assert!(!r.drain().await, "503 must be retried");
    assert_eq!(r.backlog(), 3);
    op.set(Mode::Unauthorized);
    assert!(!r.drain().await, "401 must be retried");
    assert_eq!(r.backlog(), 3);
    assert_eq!(
        metric(
            &metrics,
            "verdant_agent_report_retries_total{reason=\"server_error\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "verdant_agent_report_retries_total{reason=\"unauthorized\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "verdant_agent_buffered_reports"),
        Some(3.0)
    );

    op.set(Mode::Accept);
    *op.limits.lock().unwrap() = vec![PowerLimitTarget {
        uuid: "GPU-1".into(),
        limit_w: 400.0,
    }];
    assert!(r.drain().await);
    assert_eq!(op.windows(), [0, 10_000, 20_000]);
    assert_eq!(r.backlog(), 0);
    assert!(
        op.seen
            .lock()
            .unwrap()
            .auth
            .iter()
            .all(|a| a == &format!("Bearer {TOKEN}"))
    );
    assert_eq!(limits.lock().unwrap().len(), 3);
    assert_eq!(limits.lock().unwrap()[2][0].limit_w, 400.0);
    assert_eq!(
        metric(&metrics, "verdant_agent_reports_sent_total"),
        Some(3.0)
    );

    // A resend of a stored window is a duplicate: accepted, counted.
    r.enqueue(&report(10_000));
    assert!(r.drain().await);
    assert_eq!(
        metric(&metrics, "verdant_agent_reports_duplicate_total"),
        Some(1.0)
    );

    op.set(Mode::Reject);
    r.enqueue(&report(30_000));
    assert!(r.drain().await, "a 4xx report is dropped, not retried");
    assert_eq!(r.backlog(), 0);
    assert_eq!(
        metric(
            &metrics,
            "verdant_agent_reports_dropped_total{reason=\"rejected\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_operator_down_for_a_while_and_an_agent_restart_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr().await;
    let url = format!("http://{addr}/");
    let metrics = Arc::new(Metrics::new("node-1", "simulated"));

    // First agent: the operator is down; its reports stay on disk when it stops.
    {
        let (r, _) = reporter(
            config(url.clone(), dir.path(), token_file(dir.path()), 360),
            &metrics,
        );
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(r.run(rx, Duration::from_millis(300)));
        for start in [0, 10_000, 20_000] {
            tx.send(report(start)).unwrap();
        }
        // The operator is down: wait for the reporter to have tried and failed.
        wait_for(|| {
            metric(
                &metrics,
                "verdant_agent_report_retries_total{reason=\"unreachable\"}",
            )
            .is_some_and(|retries| retries >= 1.0)
        })
        .await;
        drop(tx);
        task.await.unwrap();
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("buffer"))
            .unwrap()
            .count(),
        3
    );

    // Second agent, same buffer; the operator comes back while it runs.
    let (r, _) = reporter(
        config(url, dir.path(), token_file(dir.path()), 360),
        &metrics,
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(r.run(rx, Duration::from_secs(2)));
    tx.send(report(30_000)).unwrap();
    // It has found the operator still down before the operator comes back.
    let retries_before = metric(
        &metrics,
        "verdant_agent_report_retries_total{reason=\"unreachable\"}",
    )
    .unwrap();
    wait_for(|| {
        metric(
            &metrics,
            "verdant_agent_report_retries_total{reason=\"unreachable\"}",
        )
        .is_some_and(|retries| retries > retries_before)
    })
    .await;
    let op = Operator::new(Mode::Accept);
    let (_, server) = start(&op, addr).await;
    tx.send(report(40_000)).unwrap();
    wait_for(|| op.windows().len() == 5).await;
    assert_eq!(op.windows(), [0, 10_000, 20_000, 30_000, 40_000]);
    drop(tx);
    task.await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("buffer"))
            .unwrap()
            .count(),
        0
    );
    server.abort();
}

#[tokio::test]
async fn the_buffer_is_bounded_and_drops_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr().await;
    let metrics = Arc::new(Metrics::new("node-1", "simulated"));
    let (mut r, _) = reporter(
        config(
            format!("http://{addr}"),
            dir.path(),
            token_file(dir.path()),
            3,
        ),
        &metrics,
    );
    for i in 0..5 {
        r.enqueue(&report(i * 10_000));
    }
    assert!(!r.drain().await);
    assert_eq!(r.backlog(), 3);
    assert_eq!(
        metric(
            &metrics,
            "verdant_agent_reports_dropped_total{reason=\"buffer_full\"}"
        ),
        Some(2.0)
    );
    let op = Operator::new(Mode::Accept);
    let (_, server) = start(&op, addr).await;
    assert!(r.drain().await);
    assert_eq!(op.windows(), [20_000, 30_000, 40_000]);
    server.abort();
}

#[tokio::test]
async fn a_missing_token_is_retried_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let op = Operator::new(Mode::Accept);
    let (addr, server) = start(&op, "127.0.0.1:0".parse().unwrap()).await;
    let metrics = Arc::new(Metrics::new("node-1", "simulated"));
    let token = dir.path().join("not-yet");
    let (mut r, _) = reporter(
        config(format!("http://{addr}"), dir.path(), token.clone(), 360),
        &metrics,
    );
    r.enqueue(&report(0));
    assert!(!r.drain().await);
    assert_eq!(
        metric(
            &metrics,
            "verdant_agent_report_retries_total{reason=\"token\"}"
        ),
        Some(1.0)
    );
    std::fs::write(&token, TOKEN).unwrap();
    assert!(r.drain().await);
    assert_eq!(op.windows(), [0]);
    server.abort();
}

#[tokio::test]
async fn a_bad_operator_url_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new("node-1", "simulated"));
    let result = Reporter::new(
        config("not a url".into(), dir.path(), token_file(dir.path()), 10),
        metrics,
        Box::new(|_| {}),
    );
    let error = result.err().expect("a bad URL").to_string();
    assert!(error.contains("--operator-url"), "{error}");
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}
