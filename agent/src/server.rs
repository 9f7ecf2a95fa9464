//! The agent's HTTP server: `/metrics`, `/healthz` (liveness) and `/readyz` (readiness).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::attribution::pods::NodePods;
use crate::metrics::Metrics;
use crate::sample::now_ms;

/// What the endpoints serve.
pub struct Health {
    /// Metrics to serve.
    pub metrics: Arc<Metrics>,
    /// Unix ms of the last sampling round with at least one GPU read (0: none yet).
    pub last_sample_ms: AtomicI64,
    /// The sampling period, ms.
    pub sample_interval_ms: i64,
    /// The watch of the node's pods the simulated backend follows, if it does: not ready
    /// before its first list.
    pod_watch: Option<NodePods>,
    /// Why the agent is stopping (a supervised task ended, or a signal), once it is.
    stopping: OnceLock<String>,
}

impl Health {
    /// Health for a sampler running every `sample_interval_ms`.
    pub fn new(metrics: Arc<Metrics>, sample_interval_ms: i64) -> Self {
        Self {
            metrics,
            last_sample_ms: AtomicI64::new(0),
            sample_interval_ms,
            pod_watch: None,
            stopping: OnceLock::new(),
        }
    }

    /// Not ready until `pods` has its first list.
    pub fn with_pod_watch(mut self, pods: Option<NodePods>) -> Self {
        self.pod_watch = pods;
        self
    }

    /// Marks the agent as stopping: both endpoints answer 503 with `reason` from now on.
    /// The first reason stays.
    pub fn stopping(&self, reason: impl Into<String>) {
        let _ = self.stopping.set(reason.into());
    }

    /// Why the agent is not alive: stopping, or no GPU read recently.
    fn not_alive(&self) -> Option<String> {
        if let Some(reason) = self.stopping.get() {
            return Some(format!("stopping: {reason}"));
        }
        let last = self.last_sample_ms.load(Ordering::Acquire);
        let limit_ms = (self.sample_interval_ms * 3).max(10_000);
        if last == 0 {
            return Some("no GPU has been read yet".to_owned());
        }
        let age_ms = now_ms() - last;
        (age_ms > limit_ms)
            .then(|| format!("the GPUs were last read {age_ms} ms ago (limit {limit_ms} ms)"))
    }

    /// Why the agent is not ready: not alive, or the pods it follows not listed yet.
    fn not_ready(&self) -> Option<String> {
        self.not_alive().or_else(|| {
            self.pod_watch
                .as_ref()
                .is_some_and(|pods| !pods.is_listed())
                .then(|| "the pods of this node are not listed yet".to_owned())
        })
    }
}

/// The router, apart from the listener so tests can serve it on any socket.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// Binds `addr` (so a busy port fails at start-up) and returns the server to spawn.
pub async fn bind(
    addr: SocketAddr,
    health: Arc<Health>,
) -> anyhow::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} for /metrics, /healthz and /readyz: {e}")
    })?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "serving /metrics, /healthz and /readyz");
    Ok((local, axum::serve(listener, router(health)).into_future()))
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}

/// Alive while GPUs were read within the last three sampling periods (at least 10 s) and
/// no supervised task has ended.
async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    answer(health.not_alive())
}

/// Ready while alive and, when the simulated backend follows the node's pods, once they
/// are listed.
async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    answer(health.not_ready())
}

fn answer(problem: Option<String>) -> (StatusCode, String) {
    match problem {
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")),
        None => (StatusCode::OK, "ok\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn both_endpoints_say_why_the_agent_is_not_alive() {
        let health = Arc::new(Health::new(Arc::new(Metrics::new("n1", "simulated")), 1000));
        let (addr, server) = bind("127.0.0.1:0".parse().unwrap(), health.clone())
            .await
            .unwrap();
        let server = tokio::spawn(server);
        for path in ["/healthz", "/readyz"] {
            assert_eq!(
                get(addr, path).await,
                (503, "no GPU has been read yet\n".to_owned())
            );
        }
        health.last_sample_ms.store(now_ms(), Ordering::Release);
        for path in ["/healthz", "/readyz"] {
            assert_eq!(get(addr, path).await, (200, "ok\n".to_owned()));
        }
        health.stopping("the task 'pod watch' ended");
        health.stopping("SIGTERM");
        for path in ["/healthz", "/readyz"] {
            assert_eq!(
                get(addr, path).await,
                (503, "stopping: the task 'pod watch' ended\n".to_owned())
            );
        }
        server.abort();
    }
}
