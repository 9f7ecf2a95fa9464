//! Stores for tests and benches: a SQLite file in a temporary folder, and a fresh
//! database on the private PostgreSQL of `hack/postgres.sh`.
#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;

use verdant_store::{Store, StoreConfig, create_postgres_database};

/// The PostgreSQL server for this test run: `$VERDANT_TEST_POSTGRES_URL` (set by
/// `make test`), else the one `hack/postgres.sh up` starts (installing it if needed).
pub fn postgres_base_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("VERDANT_TEST_POSTGRES_URL")
            && !url.trim().is_empty()
        {
            return url;
        }
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/postgres.sh");
        let output = Command::new(&script)
            .arg("up")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} up failed; PostgreSQL tests need it (or set VERDANT_TEST_POSTGRES_URL):\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    })
    .clone()
}

/// A store on a fresh PostgreSQL database.
pub async fn postgres_store() -> Store {
    let url = create_postgres_database(&postgres_base_url(), "verdant_test")
        .await
        .unwrap_or_else(|e| panic!("creating a test database: {e}"));
    Store::connect(&StoreConfig::new(url))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
}

/// A store on a fresh SQLite file; keep the folder alive as long as the store.
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("energy.db");
    let store = Store::connect(&StoreConfig::new(path.display().to_string()))
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    (store, dir)
}
