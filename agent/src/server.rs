//! The agent's HTTP server: `/metrics` and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

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
}

impl Health {
    /// Health for a sampler running every `sample_interval_ms`.
    pub fn new(metrics: Arc<Metrics>, sample_interval_ms: i64) -> Self {
        Self {
            metrics,
            last_sample_ms: AtomicI64::new(0),
            sample_interval_ms,
        }
    }
}

/// The router, apart from the listener so tests can serve it on any socket.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(health)
}

/// Binds `addr` (so a busy port fails at start-up) and returns the server to spawn.
pub async fn bind(
    addr: SocketAddr,
    health: Arc<Health>,
) -> anyhow::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for /metrics and /healthz: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "serving /metrics and /healthz");
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

/// Healthy while GPUs were read within the last three sampling periods (at least 10 s).
async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let last = health.last_sample_ms.load(Ordering::Acquire);
    let limit_ms = (health.sample_interval_ms * 3).max(10_000);
    if last == 0 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no GPU has been read yet\n".to_owned(),
        );
    }
    let age_ms = now_ms() - last;
    if age_ms > limit_ms {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the GPUs were last read {age_ms} ms ago (limit {limit_ms} ms)\n"),
        )
    } else {
        (StatusCode::OK, "ok\n".to_owned())
    }
}
