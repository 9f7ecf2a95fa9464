//! The store's errors.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached (connection refused or lost, pool timed out).
    /// Transient: retry later.
    #[error("the energy database is unavailable while {context}: {message}")]
    Unavailable {
        /// What the store was doing.
        context: String,
        /// The driver's message.
        message: String,
    },
    /// The database answered with an error.
    #[error("the energy database failed while {context}: {message}")]
    Database {
        /// What the store was doing.
        context: String,
        /// The driver's message.
        message: String,
    },
    /// The schema could not be brought up to date.
    #[error(
        "migrating the energy database failed: {0}. Check that the database user may create tables, and that no newer Verdant has migrated it"
    )]
    Migration(String),
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
}

/// The store's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether retrying later may succeed (the database was unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    pub(crate) fn from_sqlx(context: impl Into<String>, error: sqlx::Error) -> Self {
        let context = context.into();
        let message = error.to_string();
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Error::Unavailable { context, message },
            sqlx::Error::Database(ref db) if is_unavailable_code(db.code().as_deref()) => {
                Error::Unavailable { context, message }
            }
            sqlx::Error::Configuration(_) => Error::Config(format!("{context}: {message}")),
            _ => Error::Database { context, message },
        }
    }
}

/// PostgreSQL's "connection exception" and "operator intervention" classes (the server is
/// shutting down or restarting), and SQLite's "busy"/"locked".
fn is_unavailable_code(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            code.starts_with("08")
                || code.starts_with("57P")
                || code == "5"
                || code == "6"
                || code == "517"
                || code == "261"
        }
        None => false,
    }
}
