//! Settings of the ingest endpoint, the energy store and the accounting.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use verdant_store::{Retention, StoreConfig};

use super::auth::parse_service_account;

const DAY_S: u64 = 86_400;

/// Flags of `verdant-operator run` for the agents' reports. Each also reads an
/// environment variable.
#[derive(Args, Clone, Debug)]
pub struct IngestArgs {
    /// Address of the agents' ingest endpoint (POST /v1/reports). Plain HTTP: terminate
    /// TLS in front of it (mesh, proxy) when the pod network is not trusted.
    #[arg(long, env = "VERDANT_INGEST_ADDR", default_value = "0.0.0.0:9090")]
    pub ingest_addr: SocketAddr,

    /// The energy store: a SQLite file (a path or sqlite:///path; WAL mode, created if
    /// missing) or a PostgreSQL URL (postgres://user:password@host:5432/db).
    #[arg(
        long,
        env = "VERDANT_DATABASE_URL",
        default_value = "/var/lib/verdant/energy.db"
    )]
    pub database_url: String,

    /// Days to keep per-GPU samples and report keys at full resolution, and the ledgers
    /// of deleted jobs. Windows older than this are refused.
    #[arg(long, env = "VERDANT_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_days: u64,

    /// Days to keep the hourly aggregates.
    #[arg(long, env = "VERDANT_HOURLY_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..))]
    pub hourly_retention_days: u64,

    /// The agents' ServiceAccount, NAMESPACE:NAME: only its tokens may report.
    #[arg(
        long,
        env = "VERDANT_AGENT_SERVICE_ACCOUNT",
        default_value = "verdant-system:verdant-agent",
        value_parser = parse_service_account
    )]
    pub agent_service_account: (String, String),

    /// Seconds a TokenReview answer is reused for the same token.
    #[arg(long, env = "VERDANT_TOKEN_REVIEW_CACHE_SECONDS", default_value_t = 60)]
    pub token_review_cache_seconds: u64,

    /// Least seconds between two updates of one TrainingJob's status.energy.
    #[arg(long, env = "VERDANT_ENERGY_STATUS_SECONDS", default_value_t = 30)]
    pub energy_status_seconds: u64,

    /// The most one GPU can draw, W: with the node's nvidia.com/gpu capacity, it bounds
    /// what a report may claim, whatever power limits the agent reports (1,500 W is above
    /// every GPU sold today; lower it to your fleet's highest limit).
    #[arg(long, env = "VERDANT_MAX_GPU_WATTS", default_value_t = 1500.0, value_parser = parse_positive_watts)]
    pub max_gpu_watts: f64,
}

fn parse_positive_watts(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok(w),
        _ => Err(format!("{text:?} is not a positive number of watts")),
    }
}

impl IngestArgs {
    /// The store's connection settings.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig::new(self.database_url.clone())
    }

    /// How long each kind of data is kept.
    pub fn retention(&self) -> Retention {
        Retention {
            samples: Duration::from_secs(self.retention_days * DAY_S),
            hourly: Duration::from_secs(self.hourly_retention_days * DAY_S),
            ledgers_after_job: Duration::from_secs(self.retention_days * DAY_S),
        }
    }
}
