//! Why a report was refused: an HTTP status, a metric label and a message for the agent.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use verdant_crds::wire::IngestError;
use verdant_crds::wire::validate::ReportProblem;

/// A refused report.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `reason` label of `verdant_ingest_rejected_total`.
    pub reason: &'static str,
    /// What is wrong and what to do, for the agent's log.
    pub message: String,
}

impl Rejection {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }

    /// 413: the body is over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 400: not a report (broken JSON, wrong shape).
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    /// 401: no token, or the API server does not accept it.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: a valid token that may not write this report.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403: a valid agent token whose pod runs on another node than the report claims.
    pub fn node_mismatch(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "node_mismatch", message)
    }

    /// 409: the window was stored before with other content.
    pub fn replayed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "replayed", message)
    }

    /// 503: the store cannot take the report now.
    pub fn store_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }

    /// 503: the token cannot be checked now (the API server is unreachable).
    pub fn auth_unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable", message)
    }
}

/// 400: a report refused for its content (`verdant_crds::wire::validate`): impossible
/// values (`invalid`), more GPUs or power than its node has (`implausible`), a window too
/// old to be told from a replay or in the future (`stale`).
impl From<ReportProblem> for Rejection {
    fn from(problem: ReportProblem) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            problem.kind.reason(),
            problem.message,
        )
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = Json(IngestError {
            error: self.message,
        });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}
