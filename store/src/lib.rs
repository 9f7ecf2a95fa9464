//! Verdant's energy store: what the node agents measured, and what each job was billed.
//!
//! One [`Store`] over SQLite (the default: a file, WAL mode) or PostgreSQL (by URL), with
//! the same schema and the same SQL for both (`store/migrations/`). It holds:
//! - the accepted reports, keyed by (node, window start): the idempotency key;
//! - per-GPU windows at full resolution ([`GpuSample`]), kept for [`Retention::samples`];
//! - hourly aggregates per GPU ([`HourlyAggregate`]), kept for [`Retention::hourly`];
//! - per-job energy ledgers ([`JobLedger`]), kept while the job exists and
//!   [`Retention::ledgers_after_job`] after.
//!
//! # Guarantees
//! - [`Store::write_batch`] writes many reports in ONE transaction and returns only after
//!   the commit: a caller that acknowledges a report after it returned never loses it,
//!   even if the process is killed the next instant. SQLite runs with `synchronous=FULL`,
//!   so a commit survives a power loss too.
//! - Reports are idempotent on (node, window start): a report stored before comes back
//!   [`WriteOutcome::Duplicate`] when its content is the same, [`WriteOutcome::Conflict`]
//!   when it differs; neither changes samples, aggregates or ledgers.
//!
//! # Why `sqlx::Any`
//! One pool type over both databases keeps a single code path, tested against both,
//! instead of every query written twice behind an enum. It costs a conversion of each
//! value through `AnyValue` (measured by the `ingest_throughput` bench) and limits column
//! types to integers, floats and text, which is all this schema uses. Generated
//! multi-row statements use `$N` parameters on PostgreSQL and plain `?` on SQLite (see
//! [`Backend::placeholder`]). Pure: no Kubernetes types.

mod error;
mod maintenance;
mod query;
mod records;
mod url;
mod write;

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};

pub use error::{Error, Result};
pub use maintenance::{PurgeCounts, Retention};
pub use records::{
    GpuSample, HourlyAggregate, JobCharge, JobLedger, ReportRecord, ReportWrite, SiteBilling,
    StoredReport, WriteOutcome,
};
pub use url::{Backend, database_url};

/// The schema migrations, embedded (the same files for SQLite and PostgreSQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "energy store",
    include_str!("../migrations/0001_energy_store.sql"),
)];

/// Connection settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `sqlite:///path/to/file.db`, a plain file path, or `postgres://user@host/db`.
    pub database_url: String,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// How long an operation waits for a connection before failing with
    /// [`Error::Unavailable`].
    pub acquire_timeout: Duration,
}

impl StoreConfig {
    /// Defaults for a URL or path: 8 connections (SQLite: 4), 5 s to get one.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The energy store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects (creating a SQLite file if needed), and brings the schema up to date.
    ///
    /// Fails with [`Error::Unavailable`] when the database cannot be reached, and with
    /// [`Error::Config`] when the URL makes no sense.
    pub async fn connect(config: &StoreConfig) -> Result<Store> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let (backend, url) = database_url(&config.database_url)?;
        if backend == Backend::Sqlite {
            create_parent_folder(&url)?;
        }
        let options = AnyConnectOptions::from_str(&url).map_err(|e| {
            Error::Config(format!(
                "database URL {:?} is invalid: {e}",
                redact(&config.database_url)
            ))
        })?;
        let max_connections = match backend {
            // One writer at a time anyway; a few readers alongside it in WAL mode.
            Backend::Sqlite => config.max_connections.min(4),
            Backend::Postgres => config.max_connections,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(config.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer. FULL: a commit is on disk
                        // before the caller acknowledges anything. busy_timeout: another
                        // process holding the write lock makes us wait, not fail.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| Error::from_sqlx(format!("connecting to {}", redact(&url)), e))?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .map_err(|e| Error::Migration(e.to_string()))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| Error::from_sqlx("pinging the database", e))?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// SQLite creates the file, not its folder.
fn create_parent_folder(sqlite_url: &str) -> Result<()> {
    let path = sqlite_url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap_or_default();
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::Config(format!(
                "cannot create the folder {} for the SQLite database: {e}",
                parent.display()
            ))
        })?;
    }
    Ok(())
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url_parse(url) {
        Some((before, after)) => format!("{before}:***@{after}"),
        None => url.to_owned(),
    }
}

/// Splits `scheme://user:password@rest` into (`scheme://user`, `rest`).
fn url_parse(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (userinfo, host) = rest.split_once('@')?;
    let (user, _password) = userinfo.split_once(':')?;
    Some((&url[..scheme.len() + 3 + user.len()], host))
}

/// Creates a fresh, empty PostgreSQL database on the server of `base_url` (whose user
/// must be allowed to create databases) and returns its URL. For tests and benches,
/// which want a clean database each: the name is `<prefix>_<unix seconds>_<random>`.
pub async fn create_postgres_database(base_url: &str, prefix: &str) -> Result<String> {
    use sqlx::Connection;
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let (backend, url) = database_url(base_url)?;
    if backend != Backend::Postgres {
        return Err(Error::Config(format!(
            "{:?} is not a PostgreSQL URL",
            redact(base_url)
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let unique = now.subsec_nanos()
        ^ std::process::id().rotate_left(13)
        ^ COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9);
    let name = format!("{prefix}_{}_{unique:08x}", now.as_secs());
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Config(format!(
            "database name {name:?}: use letters, digits and _ in the prefix"
        )));
    }
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .map_err(|e| Error::from_sqlx(format!("connecting to {}", redact(&url)), e))?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .map_err(|e| Error::from_sqlx(format!("creating database {name}"), e))?;
    let _ = conn.close().await;
    // Replace the database: the path of the URL, before any query.
    let (without_query, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url.as_str(), None),
    };
    let authority_end = without_query
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| without_query[start..].find('/').map(|i| start + i))
        .unwrap_or(without_query.len());
    let mut fresh = format!("{}/{name}", &without_query[..authority_end]);
    if let Some(query) = query {
        fresh.push('?');
        fresh.push_str(query);
    }
    Ok(fresh)
}
