//! Reporting: one POST per window to the operator's ingest endpoint, through a disk
//! buffer so that nothing is lost while the operator is away.
//!
//! Every closed window is written to the buffer first, then the buffer is sent oldest
//! first. The operator's answer decides a report's fate:
//!
//! | Answer | What the agent does |
//! |---|---|
//! | 2xx (`IngestResponse`, also for a duplicate window) | Deletes it; applies the power limits the answer carries; logs the GPUs it lists as `refusedGpus` (stored, billed to no job). |
//! | 401, 408, 429 | Keeps it and retries later: tokens rotate, the operator may be busy. |
//! | any other 4xx (`IngestError`) | Deletes it, logs the reason, counts it in `verdant_agent_reports_dropped_total{reason="rejected"}`: resending cannot help. |
//! | 5xx (503 while the operator's database is down), no answer, no token | Keeps it; retries with exponential backoff (1 s doubling to `max_backoff`). |
//!
//! Reports are sent strictly in window order: a report is only sent once every older one
//! has been answered.

pub mod buffer;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;
use verdant_crds::wire::{
    AgentReport, IngestError, IngestResponse, MAX_REPORT_BYTES, PowerLimitTarget,
};

use crate::metrics::Metrics;
use buffer::ReportBuffer;

/// The default path of the projected ServiceAccount token (audience `verdant`).
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/verdant/token";

/// Where and how to report.
#[derive(Clone, Debug)]
pub struct ReporterConfig {
    /// The operator's base URL, e.g. `http://verdant-operator.verdant-system:8081`; the
    /// path `/v1/reports` is appended unless the URL ends with it.
    pub operator_url: String,
    /// The projected ServiceAccount token, read again for every request (the kubelet
    /// rotates it).
    pub token_file: PathBuf,
    /// A PEM CA bundle to trust for an `https` operator URL, besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// The buffer folder.
    pub buffer_dir: PathBuf,
    /// Reports the buffer holds at most.
    pub buffer_capacity: usize,
}

/// The result of one POST.
#[derive(Debug)]
pub enum Attempt {
    /// Stored (or stored before).
    Accepted(IngestResponse),
    /// Refused for good.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The operator's reason.
        reason: String,
    },
    /// Try again later.
    Retry {
        /// Metric label.
        kind: &'static str,
        /// What happened.
        reason: String,
    },
}

/// Sends reports to the operator.
pub struct Reporter {
    client: reqwest::Client,
    endpoint: String,
    config: ReporterConfig,
    buffer: ReportBuffer,
    metrics: std::sync::Arc<Metrics>,
    on_limits: Box<dyn Fn(Vec<PowerLimitTarget>) + Send + Sync>,
    failing: bool,
}

impl Reporter {
    /// Opens the buffer and builds the HTTP client. `on_limits` receives the power-limit
    /// targets of every accepted report.
    pub fn new(
        config: ReporterConfig,
        metrics: std::sync::Arc<Metrics>,
        on_limits: Box<dyn Fn(Vec<PowerLimitTarget>) + Send + Sync>,
    ) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            // The token must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("verdant-agent/{}", crate::VERSION));
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("cannot read the CA bundle {}: {e}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("the CA bundle {} is not PEM: {e}", ca.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build()?;
        let base = config.operator_url.trim_end_matches('/');
        let endpoint = if base.ends_with("/v1/reports") {
            base.to_owned()
        } else {
            format!("{base}/v1/reports")
        };
        reqwest::Url::parse(&endpoint)
            .map_err(|e| anyhow::anyhow!("--operator-url {}: {e}", config.operator_url))?;
        let buffer = ReportBuffer::open(&config.buffer_dir, config.buffer_capacity)?;
        metrics.buffered_reports.set(buffer.len() as i64);
        Ok(Self {
            client,
            endpoint,
            config,
            buffer,
            metrics,
            on_limits,
            failing: false,
        })
    }

    /// Reports waiting in the buffer.
    pub fn backlog(&self) -> usize {
        self.buffer.len()
    }

    /// Writes a report to the buffer.
    pub fn enqueue(&mut self, report: &AgentReport) {
        let body = match serde_json::to_vec(report) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "cannot serialise a report; dropping it");
                Metrics::count(&self.metrics.reports_dropped, "reason", "unreadable");
                return;
            }
        };
        if body.len() > MAX_REPORT_BYTES {
            tracing::error!(
                bytes = body.len(),
                limit = MAX_REPORT_BYTES,
                window_start_ms = report.window_start_ms,
                "report larger than the operator accepts; dropping it"
            );
            Metrics::count(&self.metrics.reports_dropped, "reason", "too_large");
            return;
        }
        match self
            .buffer
            .push(report.window_start_ms, report.window_end_ms, &body)
        {
            Ok(dropped) => {
                for _ in 0..dropped {
                    Metrics::count(&self.metrics.reports_dropped, "reason", "buffer_full");
                }
            }
            Err(error) => {
                // A full or read-only disk: every report goes through the buffer, so this
                // one is lost. Loud, counted, and the agent keeps going.
                tracing::error!(%error, "cannot buffer a report on disk; dropping it");
                Metrics::count(&self.metrics.reports_dropped, "reason", "disk_error");
            }
        }
        self.metrics.buffered_reports.set(self.buffer.len() as i64);
    }

    /// Sends buffered reports oldest first until the buffer is empty (`true`) or an attempt
    /// must be retried later (`false`).
    pub async fn drain(&mut self) -> bool {
        let mut sent = 0usize;
        while let Some(entry) = self.buffer.oldest() {
            let (path, body) = match entry {
                Ok(entry) => entry,
                Err(_) => {
                    Metrics::count(&self.metrics.reports_dropped, "reason", "unreadable");
                    continue;
                }
            };
            match self.post(body).await {
                Attempt::Accepted(response) => {
                    self.buffer.remove(&path);
                    sent += 1;
                    self.metrics.reports_sent.inc();
                    if response.duplicate {
                        self.metrics.reports_duplicate.inc();
                    }
                    for refused in &response.refused_gpus {
                        // Stored, but billed to no job: the operator sees that pod
                        // elsewhere or finished (attribution out of date or wrong).
                        tracing::warn!(uuid = %refused.uuid, reason = %refused.reason, "{}", refused.message);
                    }
                    if !response.accepted {
                        tracing::warn!(path = %path.display(), "the operator answered 2xx but did not accept the report");
                    }
                    self.metrics
                        .last_report_success_s
                        .set(jiff::Timestamp::now().as_second());
                    (self.on_limits)(response.power_limits);
                }
                Attempt::Rejected { status, reason } => {
                    tracing::error!(status, %reason, path = %path.display(), "the operator rejected a report; dropping it");
                    Metrics::count(&self.metrics.reports_dropped, "reason", "rejected");
                    self.buffer.remove(&path);
                }
                Attempt::Retry { kind, reason } => {
                    Metrics::count(&self.metrics.report_retries, "reason", kind);
                    if self.failing {
                        tracing::debug!(%reason, backlog = self.buffer.len(), "report not delivered; will retry");
                    } else {
                        tracing::warn!(%reason, backlog = self.buffer.len(), "report not delivered; buffering and retrying");
                        self.failing = true;
                    }
                    self.metrics.buffered_reports.set(self.buffer.len() as i64);
                    return false;
                }
            }
            self.metrics.buffered_reports.set(self.buffer.len() as i64);
        }
        if self.failing && sent > 0 {
            tracing::info!(
                sent,
                "the operator is reachable again; buffered reports delivered"
            );
            self.failing = false;
        }
        true
    }

    /// One POST of a report body.
    pub async fn post(&self, body: Vec<u8>) -> Attempt {
        let token = match std::fs::read_to_string(&self.config.token_file) {
            Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
            Ok(_) => {
                return Attempt::Retry {
                    kind: "token",
                    reason: format!(
                        "the token file {} is empty",
                        self.config.token_file.display()
                    ),
                };
            }
            Err(error) => {
                return Attempt::Retry {
                    kind: "token",
                    reason: format!(
                        "cannot read the token file {}: {error} (is the projected ServiceAccount \
                         token with audience verdant mounted?)",
                        self.config.token_file.display()
                    ),
                };
            }
        };
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(error) => {
                return Attempt::Retry {
                    kind: "unreachable",
                    reason: format!("POST {} failed: {error}", self.endpoint),
                };
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return match serde_json::from_str::<IngestResponse>(&text) {
                Ok(r) => Attempt::Accepted(r),
                Err(error) => {
                    tracing::warn!(%error, "the operator's answer is not an IngestResponse; taking the report as stored");
                    Attempt::Accepted(IngestResponse {
                        accepted: true,
                        ..Default::default()
                    })
                }
            };
        }
        let reason = serde_json::from_str::<IngestError>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| text.chars().take(200).collect());
        let reason = format!("HTTP {status}: {reason}");
        if matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
        ) {
            Attempt::Retry {
                kind: if status == StatusCode::UNAUTHORIZED {
                    "unauthorized"
                } else {
                    "busy"
                },
                reason,
            }
        } else if status.is_client_error() {
            Attempt::Rejected {
                status: status.as_u16(),
                reason,
            }
        } else {
            Attempt::Retry {
                kind: "server_error",
                reason,
            }
        }
    }

    /// Buffers and sends reports as they arrive, retrying with backoff, until `reports`
    /// closes; then makes one last attempt (bounded by `final_deadline`) and returns.
    pub async fn run(
        mut self,
        mut reports: tokio::sync::mpsc::UnboundedReceiver<AgentReport>,
        final_deadline: Duration,
    ) {
        let initial_backoff = self.config.max_backoff.min(Duration::from_secs(1));
        let mut backoff = initial_backoff;
        let mut retry_at: Option<Instant> = (!self.buffer.is_empty()).then(Instant::now);
        loop {
            let sleep = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now));
            tokio::select! {
                report = reports.recv() => match report {
                    Some(report) => self.enqueue(&report),
                    None => break,
                },
                () = sleep, if retry_at.is_some() => {}
            }
            if retry_at.is_some_and(|t| Instant::now() < t) {
                continue;
            }
            if self.drain().await {
                retry_at = None;
                backoff = initial_backoff;
            } else {
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(self.config.max_backoff);
            }
        }
        if !self.buffer.is_empty() {
            match tokio::time::timeout(final_deadline, self.drain()).await {
                Ok(true) => {}
                _ => tracing::warn!(
                    backlog = self.buffer.len(),
                    dir = %self.config.buffer_dir.display(),
                    "stopping with reports still buffered; the next start sends them"
                ),
            }
        }
    }
}
