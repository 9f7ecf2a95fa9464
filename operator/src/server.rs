//! The operator's HTTP server: `/metrics`, `/livez`, `/readyz`, and the dashboard at `/`
//! with its JSON API under `/api/v1/` (see [`crate::web`]). Followers (`--leader-elect`)
//! serve it too; their dashboard shows no jobs (only the leader caches them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::web::{self, WebState};

/// What the probes look at.
pub struct Health {
    /// Set once every reflector cache has synced (the jobs cache syncs on the leader only).
    pub caches_synced: AtomicBool,
    /// Whether the pod, node and EnergySite caches have synced (on every replica).
    pub watches_synced: crate::watches::Synced,
    /// Whether this replica leads, and who does.
    pub leadership: crate::leader::Leadership,
    /// The scheduling cycle period, to judge liveness.
    pub cycle_period_s: i64,
    /// The plan, whose last cycle time shows the scheduler is alive.
    pub plan: Arc<Plan>,
    /// Metrics to serve.
    pub metrics: Arc<Metrics>,
}

impl Health {
    fn last_cycle_age_s(&self) -> Option<i64> {
        self.plan
            .with(|p| p.last_cycle_s)
            .map(|t| jiff::Timestamp::now().as_second() - t)
    }
}

/// The router, separate from the listener so tests can serve it on any socket.
pub fn router(health: Arc<Health>, web: WebState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(health)
        .merge(web::router(web))
}

/// Serves until the process ends.
pub async fn serve(addr: SocketAddr, health: Arc<Health>, web: WebState) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} for /metrics, /livez, /readyz and the dashboard: {e}"
        )
    })?;
    tracing::info!(%addr, "serving /metrics, /livez, /readyz, the dashboard at / and /api/v1/");
    axum::serve(listener, router(health, web)).await?;
    Ok(())
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

/// Alive while the scheduling loop keeps cycling (or has not had its first cycle yet).
async fn livez(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let limit_s = (health.cycle_period_s * 5).max(60);
    match health.last_cycle_age_s() {
        Some(age) if age > limit_s => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the scheduling cycle last ran {age} s ago (limit {limit_s} s)\n"),
        ),
        _ => (StatusCode::OK, "ok\n".to_owned()),
    }
}

/// The leader is ready once the caches have synced and a scheduling cycle has completed;
/// a follower (`--leader-elect`) once its caches have synced and it knows a live leader,
/// so that a PodDisruptionBudget counts it and it can take over at once.
async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let leader = health.leadership.view();
    if !leader.leading {
        if !health.watches_synced.is_synced() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "follower: caches not synced yet\n".to_owned(),
            );
        }
        return match leader.holder {
            Some(holder) => (
                StatusCode::OK,
                format!("ok: following the leader {holder}\n"),
            ),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "follower: no live leader known (the leader Lease has no holder, or it expired)\n"
                    .to_owned(),
            ),
        };
    }
    if !health.caches_synced.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "caches not synced yet\n".to_owned(),
        );
    }
    match health.last_cycle_age_s() {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no scheduling cycle has completed yet\n".to_owned(),
        ),
        Some(_) => (StatusCode::OK, "ok\n".to_owned()),
    }
}
