//! The built-in dashboard: a self-contained page at `/` (HTML, JS and CSS compiled into
//! the binary; no CDN, no web fonts) over a read-only JSON API:
//!
//! | Path | Document |
//! |---|---|
//! | `GET /api/v1/sites` | [`views::SiteList`]: supply, load, headroom, forecast per EnergySite |
//! | `GET /api/v1/jobs` | [`views::JobList`]: phase, site, renewable share, last decision per TrainingJob; `?namespace=`, `?site=`, `?phase=` filter |
//! | `GET /api/v1/nodes` | [`views::NodeList`]: GPUs and GPU power per node; `?site=` filters |
//!
//! Everything comes from the operator's reflector caches, its last scheduling cycle and
//! the agents' latest reports; nothing here calls the API server. Unknown API paths and
//! query parameters are answered with a JSON error (`404`, `400`, `405`) that says why.

pub mod views;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::runtime::reflector::Store;
use serde::Serialize;
use verdant_core::placement::EngineConfig;
use verdant_crds::{JobPhase, TrainingJob};

use crate::context::Context;
use crate::plan::Plan;
use crate::telemetry::Telemetry;
use crate::topology::SharedTopology;
use views::ViewInputs;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// What the dashboard reads.
#[derive(Clone)]
pub struct WebState {
    /// The TrainingJobs cache.
    pub jobs: Store<TrainingJob>,
    /// Nodes, pods and sites, and which site powers each node.
    pub topology: Arc<SharedTopology>,
    /// The last cycle's decisions.
    pub plan: Arc<Plan>,
    /// Measured power from the agents.
    pub telemetry: Arc<Telemetry>,
    /// Per-GPU watts, for power estimates where nothing was measured.
    pub engine: EngineConfig,
}

impl WebState {
    /// The handles of the operator's context.
    pub fn from_context(ctx: &Context) -> Self {
        Self {
            jobs: ctx.stores.jobs.clone(),
            topology: ctx.topology.clone(),
            plan: ctx.plan.clone(),
            telemetry: ctx.telemetry.clone(),
            engine: ctx.engine.clone(),
        }
    }

    fn view<T>(&self, f: impl FnOnce(&ViewInputs<'_>) -> T) -> T {
        let jobs = self.jobs.state();
        let topology = self.topology.current();
        let decisions = self.plan.with(|p| p.decisions.clone());
        f(&ViewInputs {
            jobs: &jobs,
            topology: &topology,
            decisions: &decisions,
            telemetry: &self.telemetry,
            engine: &self.engine,
            now: jiff::Timestamp::now(),
        })
    }
}

/// The page, its assets and the API.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/nodes", get(nodes))
        .route("/api", get(unknown_api))
        .route("/api/{*rest}", get(unknown_api))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// An API error: `{"code": 404, "reason": "NotFound", "message": "..."}`.
#[derive(Debug, Serialize)]
pub struct ApiError {
    /// The HTTP status code.
    pub code: u16,
    /// A CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, reason: &'static str, message: String) -> Self {
        Self {
            code: status.as_u16(),
            reason,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

const API_PATHS: &str = "/api/v1/sites, /api/v1/jobs and /api/v1/nodes";

async fn unknown_api(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "there is no API at {}; the dashboard API has {API_PATHS} (GET)",
            uri.path()
        ),
    )
}

async fn method_not_allowed(uri: Uri, method: axum::http::Method) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "{method} is not allowed on {}: the dashboard API is read-only (GET)",
                uri.path()
            ),
        )
        .into_response()
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {}\n", uri.path()),
        )
            .into_response()
    }
}

/// Checks that only `allowed` query parameters are present, and not empty.
fn check_query(
    path: &str,
    query: &HashMap<String, String>,
    allowed: &[&str],
) -> Result<(), ApiError> {
    for (key, value) in query {
        if !allowed.contains(&key.as_str()) {
            let known = if allowed.is_empty() {
                "it takes none".to_owned()
            } else {
                format!("it takes {}", allowed.join(", "))
            };
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UnknownParameter",
                format!("{path} has no query parameter '{key}': {known}"),
            ));
        }
        if value.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "EmptyParameter",
                format!("query parameter '{key}' of {path} is empty: give a value or leave it out"),
            ));
        }
    }
    Ok(())
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
}

async fn style_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE_CSS,
    )
}

async fn sites(
    State(state): State<WebState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<views::SiteList>, ApiError> {
    check_query("/api/v1/sites", &query, &[])?;
    Ok(Json(state.view(views::sites)))
}

async fn jobs(
    State(state): State<WebState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<views::JobList>, ApiError> {
    check_query("/api/v1/jobs", &query, &["namespace", "site", "phase"])?;
    if let Some(phase) = query.get("phase")
        && !JobPhase::ALL.iter().any(|p| p.as_str() == phase)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!(
                "phase '{phase}' is not a TrainingJob phase: use one of {}",
                JobPhase::ALL.map(JobPhase::as_str).join(", ")
            ),
        ));
    }
    let get = |key: &str| query.get(key).map(String::as_str);
    let (namespace, site, phase) = (get("namespace"), get("site"), get("phase"));
    Ok(Json(state.view(|inputs| {
        views::jobs(inputs, |job| {
            namespace.is_none_or(|n| job.namespace == n)
                && site.is_none_or(|s| job.site.as_deref() == Some(s))
                && phase.is_none_or(|p| job.phase == p)
        })
    })))
}

async fn nodes(
    State(state): State<WebState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<views::NodeList>, ApiError> {
    check_query("/api/v1/nodes", &query, &["site"])?;
    let site = query.get("site").map(String::as_str);
    Ok(Json(state.view(|inputs| views::nodes(inputs, site))))
}

#[cfg(test)]
mod tests;
