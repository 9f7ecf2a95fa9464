//! Turning `--database-url` into a driver URL.

use crate::error::{Error, Result};

/// The database behind a [`crate::Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// How parameters are written in generated SQL: PostgreSQL only knows `$N`. SQLite
    /// gets plain `?` (numbered in order): for `$N` and `?N` it keeps a list of names that
    /// sqlx searches, linearly, for every parameter it binds, which made a 256-row insert
    /// quadratic in its ~5,600 parameters.
    pub fn placeholder(self) -> char {
        match self {
            Backend::Sqlite => '?',
            Backend::Postgres => '$',
        }
    }

    /// `sqlite` or `postgres`, for metrics and messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Normalizes a database setting into (backend, driver URL).
///
/// Accepted:
/// - `postgres://…` or `postgresql://…`: PostgreSQL, passed through;
/// - `sqlite:///abs/path.db`, `sqlite://rel/path.db`, `sqlite:path.db`: a SQLite file,
///   created if missing;
/// - a plain path (`/var/lib/verdant/energy.db`, `energy.db`): a SQLite file.
///
/// `sqlite::memory:` is refused: a store that forgets everything on restart would break
/// the promise that acknowledged reports are kept.
pub fn database_url(setting: &str) -> Result<(Backend, String)> {
    let setting = setting.trim();
    if setting.is_empty() {
        return Err(Error::Config(
            "the database URL is empty: give a SQLite file path or a postgres:// URL".into(),
        ));
    }
    if setting.starts_with("postgres://") || setting.starts_with("postgresql://") {
        return Ok((Backend::Postgres, setting.to_owned()));
    }
    let path = if let Some(rest) = setting.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = setting.strip_prefix("sqlite:") {
        rest
    } else if setting.contains("://") {
        return Err(Error::Config(format!(
            "database URL {setting:?}: unsupported scheme; use a SQLite file path, sqlite:///path or postgres://…"
        )));
    } else {
        setting
    };
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    if path.is_empty() || path.contains(":memory:") {
        return Err(Error::Config(format!(
            "database URL {setting:?}: give a SQLite file path; an in-memory database would lose acknowledged reports"
        )));
    }
    let query = query.map_or_else(|| "mode=rwc".to_owned(), |q| format!("{q}&mode=rwc"));
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_normalize() {
        assert_eq!(
            database_url("/var/lib/verdant/energy.db").unwrap(),
            (
                Backend::Sqlite,
                "sqlite:///var/lib/verdant/energy.db?mode=rwc".into()
            )
        );
        assert_eq!(
            database_url("sqlite:///tmp/e.db").unwrap().1,
            "sqlite:///tmp/e.db?mode=rwc"
        );
        assert_eq!(
            database_url("sqlite:e.db").unwrap().1,
            "sqlite://e.db?mode=rwc"
        );
        assert_eq!(
            database_url("postgres://verdant@db:5432/verdant").unwrap(),
            (
                Backend::Postgres,
                "postgres://verdant@db:5432/verdant".into()
            )
        );
        for bad in ["", "sqlite::memory:", "mysql://x/y", "sqlite://"] {
            assert!(
                matches!(database_url(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }
}
