//! The agents' ingest endpoint: `POST /v1/reports` on `--ingest-addr` (plain HTTP).
//!
//! # Expected flow
//! body size → token (TokenReview, cached) → JSON → values → the token's pod runs on the
//! report's node → the report fits the node's GPUs (capacity × `--max-gpu-watts`) → each
//! GPU's pod is Pending or Running on that node (else the GPU is billed to no job; see
//! [`attribution`]) → bill the window (site load, renewable share, jobs) → store (group
//! commit) → `200` with the power limits for the node's GPUs and the refused GPUs. Then
//! the measured power goes to the shared telemetry (site load, the engine's per-job and
//! per-model watts) and the jobs billed are queued for a `status.energy` update.
//!
//! # Guarantees
//! - `2xx` only after the report's transaction committed.
//! - Idempotent on (node, window start): an identical retry gets `200` with
//!   `duplicate: true`; different content for a stored window gets `409`.
//! - Every refusal is a 4xx/5xx with an [`IngestError`](verdant_crds::wire::IngestError)
//!   saying why, a count in `verdant_ingest_rejected_total{reason}` and a log line.
//!
//! # Caveats
//! TLS is not terminated here: put the endpoint behind a mesh or a TLS-terminating proxy
//! when the pod network is not trusted. The tokens are short-lived and audience-bound.

pub mod attribution;
pub mod auth;
pub mod billing;
pub mod config;
pub mod metrics;
pub mod rejection;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};
use verdant_core::accounting::{J_PER_KWH, SiteWindow};
use verdant_crds::wire::validate;
use verdant_crds::wire::{AgentReport, IngestResponse, MAX_REPORT_BYTES};
use verdant_store::WriteOutcome;

use crate::context::Context;
use crate::energy_status::EnergyStatus;
use crate::labels::GPU_RESOURCE;
use crate::metrics::label;
use crate::site_controller::storage::discharge_available_w;
use crate::store_writer::Writer;
use crate::supply::{site_supply, supply_now_kw};
use crate::topology::Topology;
use auth::Authenticator;
use billing::{SiteContext, bill};
use rejection::Rejection;

/// How old the topology a report is billed with may be: assigning nodes to sites costs
/// nodes × sites, and reports come from every node every few seconds.
const TOPOLOGY_MAX_AGE: Duration = Duration::from_secs(5);

/// The ingest endpoint's state.
pub struct Ingest {
    ctx: Arc<Context>,
    auth: Authenticator,
    writer: Writer,
    energy_status: Arc<EnergyStatus>,
    /// How old a window may be (the store's sample retention), ms.
    max_age_ms: i64,
    /// The most one GPU can draw (`--max-gpu-watts`), W.
    max_gpu_power_w: f64,
}

impl Ingest {
    /// The endpoint over the operator's context.
    pub fn new(
        ctx: Arc<Context>,
        auth: Authenticator,
        writer: Writer,
        energy_status: Arc<EnergyStatus>,
        max_age: Duration,
        max_gpu_power_w: f64,
    ) -> Self {
        Self {
            ctx,
            auth,
            writer,
            energy_status,
            max_age_ms: i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX),
            max_gpu_power_w,
        }
    }
}

/// Serves the ingest endpoint once the caches are synced, until the process ends. The
/// store `writer` and the `status.energy` loop run as tasks of their own.
pub async fn run(
    ctx: Arc<Context>,
    args: &config::IngestArgs,
    writer: Writer,
    energy_status: Arc<EnergyStatus>,
) -> anyhow::Result<()> {
    let auth = Authenticator::new(
        ctx.client.clone(),
        ctx.stores.pods.clone(),
        args.agent_service_account.clone(),
        Duration::from_secs(args.token_review_cache_seconds),
    );
    let ingest = Arc::new(Ingest::new(
        ctx.clone(),
        auth,
        writer,
        energy_status,
        args.retention().samples,
        args.max_gpu_watts,
    ));
    // Billing needs the sites, nodes, pods and jobs: a report taken before the caches are
    // full would be stored unbilled. Until then agents buffer and retry.
    ctx.caches_synced().await;
    serve(args.ingest_addr, ingest).await
}

/// The router, separate from the listener so tests and benches can serve it anywhere.
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/v1/reports", post(post_report))
        .with_state(ingest)
}

/// Serves the endpoint until the process ends.
pub async fn serve(addr: SocketAddr, ingest: Arc<Ingest>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} for the agents' reports (--ingest-addr): {e}")
    })?;
    info!(%addr, "serving agent reports on POST /v1/reports");
    axum::serve(
        listener,
        router(ingest).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

async fn post_report(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let mut node = None;
    let result = handle(&ingest, request, &mut node).await;
    let metrics = &ingest.ctx.metrics.ingest;
    metrics
        .request_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(response) => (StatusCode::OK, axum::Json(response)).into_response(),
        Err(rejection) => {
            metrics
                .rejected
                .get_or_create(&label("reason", rejection.reason))
                .inc();
            warn!(
                %peer,
                node = node.as_deref().unwrap_or("?"),
                reason = rejection.reason,
                status = rejection.status.as_u16(),
                error = %rejection.message,
                "agent report refused"
            );
            rejection.into_response()
        }
    }
}

async fn handle(
    ingest: &Ingest,
    request: Request,
    node: &mut Option<String>,
) -> Result<IngestResponse, Rejection> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > MAX_REPORT_BYTES as u64
    {
        return Err(too_large(length));
    }
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("<not text>"));
    // The token first: nobody unauthenticated makes the operator parse a megabyte.
    let identity = ingest.auth.authenticate(authorization).await?;

    let bytes = read_body(body).await?;
    let report: AgentReport = serde_json::from_slice(&bytes).map_err(|e| {
        Rejection::malformed(format!("the body is not an agent report (JSON): {e}"))
    })?;
    *node = Some(report.node.clone());
    let now_ms = jiff::Timestamp::now().as_millisecond();
    validate::validate(&report, now_ms, ingest.max_age_ms)?;
    ingest.auth.check(&identity, &report.node).await?;
    validate::validate_against_node(&report, &node_gpus(ingest, &report.node))?;

    let topology = ingest.ctx.topology.recent(TOPOLOGY_MAX_AGE);
    let site = site_context(ingest, &topology, &report, now_ms);
    let attribution = attribute(ingest, &report);
    let billed = bill(&report, site.as_ref(), &attribution.jobs, now_ms);
    for gpu in report.gpus.iter().filter(|g| g.energy_counter_reset) {
        ingest.ctx.metrics.ingest.counter_resets.inc();
        info!(node = %report.node, gpu = %gpu.uuid, energy_j = gpu.energy_j, "the GPU's energy counter went backwards (driver reload or GPU reset); this window's energy counts from the reset");
    }

    let outcome = ingest
        .writer
        .write(billed.write.clone())
        .await
        .map_err(|e| {
            if e.is_unavailable() {
                Rejection::store_unavailable(format!("{e}; retry later"))
            } else {
                Rejection {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    reason: "store_error",
                    message: e.to_string(),
                }
            }
        })?;
    let metrics = &ingest.ctx.metrics.ingest;
    match outcome {
        WriteOutcome::Stored => {
            metrics
                .reports
                .get_or_create(&label("outcome", "stored"))
                .inc();
            metrics.gpu_samples.inc_by(report.gpus.len() as u64);
            for (refusal, gpu) in &attribution.refused {
                metrics
                    .gpus_refused
                    .get_or_create(&label("reason", refusal.reason()))
                    .inc();
                warn!(node = %report.node, reason = refusal.reason(), "{}", gpu.message);
            }
            let at_s = report.window_end_ms.div_euclid(1000);
            let telemetry = &ingest.ctx.telemetry;
            telemetry.record_node(&report.node, billed.node_gpu_power_w, at_s);
            for (job, watts) in &billed.job_watts_per_gpu {
                telemetry.record_job(job, *watts, at_s);
            }
            if let (Some(watts), Some(model)) =
                (billed.busy_gpu_watts, topology.gpu_model(&report.node))
            {
                telemetry.record_model(model, watts, at_s);
            }
            ingest
                .energy_status
                .mark(billed.write.charges.iter().map(|c| c.job_uid.clone()));
            // verdant_energy_kwh_total / verdant_co2_grams_total, counted once per stored
            // window (never for duplicates), for the per-namespace dashboards.
            for charge in &billed.write.charges {
                ingest.ctx.metrics.record_energy(
                    &charge.namespace,
                    &charge.site,
                    charge.renewable_j / J_PER_KWH,
                    charge.grid_j / J_PER_KWH,
                    charge.co2_g,
                );
            }
        }
        WriteOutcome::Duplicate => {
            metrics
                .reports
                .get_or_create(&label("outcome", "duplicate"))
                .inc();
        }
        WriteOutcome::Conflict => {
            return Err(Rejection::replayed(format!(
                "node {} already reported the window starting at {} ms with different content; a window is accepted once",
                report.node, report.window_start_ms
            )));
        }
    }
    Ok(IngestResponse {
        accepted: true,
        duplicate: outcome == WriteOutcome::Duplicate,
        power_limits: billed.power_limits,
        refused_gpus: attribution.refused.into_iter().map(|(_, g)| g).collect(),
    })
}

fn too_large(length: u64) -> Rejection {
    Rejection::too_large(format!(
        "the report is {length} bytes; at most {MAX_REPORT_BYTES} are accepted. Send fewer GPUs or shorter windows per report"
    ))
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, Rejection> {
    axum::body::to_bytes(body, MAX_REPORT_BYTES)
        .await
        .map_err(|e| {
            let over_limit =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if over_limit {
                Rejection::too_large(format!(
                    "the report is over {MAX_REPORT_BYTES} bytes, the most accepted"
                ))
            } else {
                Rejection::malformed(format!("reading the body failed: {e}"))
            }
        })
}

/// The site of the report's node and the window it is billed with.
fn site_context(
    ingest: &Ingest,
    topology: &Topology,
    report: &AgentReport,
    now_ms: i64,
) -> Option<SiteContext> {
    let site_name = topology.site_of(&report.node)?;
    let site = topology.site(site_name)?;
    let nodes = topology.nodes_of(site_name);
    let now_s = now_ms.div_euclid(1000);
    let own_w: f64 = report.gpus.iter().map(|g| g.mean_power_w).sum();
    let telemetry = &ingest.ctx.telemetry;
    let model_watts: HashMap<String, f64> = telemetry.model_gpu_watts(now_s).into_iter().collect();
    let engine = &ingest.ctx.engine;
    let others_w: f64 = nodes
        .iter()
        .filter(|n| **n != report.node)
        .map(|n| {
            telemetry.node_gpu_power_w(n, now_s).unwrap_or_else(|| {
                let per_gpu = topology
                    .gpu_model(n)
                    .and_then(|m| {
                        model_watts
                            .get(m)
                            .or_else(|| engine.gpu_watts_by_model.get(m))
                    })
                    .copied()
                    .unwrap_or(engine.default_gpu_watts);
                per_gpu * f64::from(topology.held_gpus(n))
            })
        })
        .sum();
    let middle_s = (report.window_start_ms + report.window_end_ms).div_euclid(2000);
    let supply_kw = supply_now_kw(&site_supply(site, middle_s), middle_s);
    Some(SiteContext {
        name: site_name.to_owned(),
        window: SiteWindow {
            gpu_power_w: own_w + others_w,
            base_power_w: ingest.ctx.node_base_watts * nodes.len() as f64,
            pue: site.spec.pue,
            renewable_supply_w: supply_kw * 1000.0,
            // What the batteries with energy above their floor could deliver now; the
            // accounting counts it only into a deficit. They charge from surplus
            // renewables only (site_controller/storage.rs), so it is renewable.
            storage_discharge_w: discharge_available_w(site),
            grid_carbon_g_per_kwh: site.spec.grid.carbon_intensity_g_per_kwh,
        },
    })
}

/// The TrainingJob of each GPU's pod, and the GPUs whose pod is refused.
fn attribute(ingest: &Ingest, report: &AgentReport) -> attribution::Attribution {
    let stores = &ingest.ctx.stores;
    attribution::attribute(
        report,
        |namespace, name| stores.pods.get(&ObjectRef::new(name).within(namespace)),
        |namespace, name| stores.jobs.get(&ObjectRef::new(name).within(namespace)),
    )
}

/// The operator's view of a node's GPUs.
fn node_gpus(ingest: &Ingest, node: &str) -> validate::NodeGpus {
    let capacity = ingest
        .ctx
        .stores
        .nodes
        .get(&ObjectRef::new(node))
        .and_then(|n| {
            n.status
                .as_ref()?
                .capacity
                .as_ref()?
                .get(GPU_RESOURCE)
                .cloned()
        })
        .and_then(|q| verdant_crds::gpu_count(&q.0))
        .filter(|gpus| *gpus > 0);
    validate::NodeGpus {
        capacity,
        max_gpu_power_w: ingest.max_gpu_power_w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_too_large() {
        // No Content-Length: the limit is found while reading.
        let chunks =
            futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100_000])));
        let rejection = read_body(Body::from_stream(chunks)).await.unwrap_err();
        assert_eq!(rejection.reason, "too_large");
        assert_eq!(rejection.status, StatusCode::PAYLOAD_TOO_LARGE);
        let small = read_body(Body::from("{}")).await.unwrap();
        assert_eq!(&small[..], b"{}");
    }
}
