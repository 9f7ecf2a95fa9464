//! What a follower (`--leader-elect`) answers on the agents' ingest address until it
//! leads: `503 Service Unavailable` with an [`IngestError`] that names the leader.
//!
//! Only the leader stores reports: with SQLite each replica has its own store, and the
//! leader alone keeps the jobs cache that billing needs. The agent keeps a report it got
//! a 5xx for in its disk buffer and sends it again with backoff (`agent/src/report/`), so
//! a report reaches the leader through the Service, and none is acknowledged unstored.

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use verdant_crds::wire::IngestError;

use crate::leader::Leadership;

/// Serves the refusal on `addr` until this replica leads, then frees the address for
/// the ingest endpoint.
pub async fn refuse_reports_until_leading(
    addr: SocketAddr,
    leadership: Leadership,
) -> anyhow::Result<()> {
    if leadership.is_leading() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} for the agents' reports (--ingest-addr): {e}")
    })?;
    let answer = leadership.clone();
    let router = Router::new().fallback(move || not_leader(answer.clone()));
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { leadership.acquired().await })
        .await?;
    Ok(())
}

async fn not_leader(leadership: Leadership) -> Response {
    let error = match leadership.view().holder {
        Some(holder) => format!(
            "this operator replica is a follower; the leader is {holder}: the report was not stored, send it again"
        ),
        None => {
            "no operator replica leads yet: the report was not stored, send it again".to_owned()
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        // Closing the connection makes the agent's retry a new connection, which the
        // Service may send to the leader; a kept-alive one would come back here.
        [(header::RETRY_AFTER, "1"), (header::CONNECTION, "close")],
        axum::Json(IngestError { error }),
    )
        .into_response()
}
