//! The store against real databases: a SQLite file and a fresh PostgreSQL database per
//! test. Every scenario runs on both, through the same code.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use verdant_store::{
    Backend, GpuSample, JobCharge, ReportRecord, ReportWrite, Retention, SiteBilling, Store,
    StoreConfig, WriteOutcome,
};

/// 2026-11-29T12:00:00Z in ms.
const T0_MS: i64 = 1_795_953_600_000;
const WINDOW_MS: i64 = 10_000;

/// A report of `node` for window `k` (10 s each from T0): `gpus` GPUs at `watts` each,
/// the first two billed to job `uid-a` with a share of 0.5.
fn report(node: &str, k: i64, gpus: usize, watts: f64) -> ReportWrite {
    let start = T0_MS + k * WINDOW_MS;
    let end = start + WINDOW_MS;
    let samples: Vec<GpuSample> = (0..gpus)
        .map(|i| GpuSample {
            node: node.to_owned(),
            window_start_ms: start,
            window_end_ms: end,
            gpu_uuid: format!("GPU-{node}-{i}"),
            gpu_index: i as i64,
            model: "NVIDIA H100 80GB HBM3".to_owned(),
            samples: 10,
            mean_power_w: watts,
            max_power_w: watts + 20.0,
            energy_j: watts * 10.0,
            energy_counter_reset: false,
            mean_gpu_util_percent: 90.0,
            mean_mem_util_percent: 40.0,
            memory_used_bytes: 60 << 30,
            memory_total_bytes: 80 << 30,
            temperature_c: 61.5,
            sm_clock_mhz: 1980,
            power_limit_w: 700.0,
            pod: (i < 2).then(|| ("ml".to_owned(), "llama-0".to_owned(), "trainer".to_owned())),
            job_uid: (i < 2).then(|| "uid-a".to_owned()),
        })
        .collect();
    let job_energy = if gpus >= 2 { 2.0 * watts * 10.0 } else { 0.0 };
    ReportWrite {
        report: ReportRecord {
            node: node.to_owned(),
            window_start_ms: start,
            window_end_ms: end,
            received_ms: end + 50,
            agent_version: "0.1.0".to_owned(),
            content_hash: format!("hash-{node}-{k}-{watts}"),
            billing: Some(SiteBilling {
                site: "solar-a".to_owned(),
                gpu_power_w: watts * gpus as f64,
                base_power_w: 400.0,
                pue: 1.2,
                renewable_supply_w: 1000.0,
                grid_carbon_g_per_kwh: 360.0,
                renewable_share: 0.5,
            }),
        },
        samples,
        charges: if job_energy > 0.0 {
            vec![JobCharge {
                job_uid: "uid-a".to_owned(),
                namespace: "ml".to_owned(),
                name: "llama".to_owned(),
                site: "solar-a".to_owned(),
                energy_j: job_energy,
                renewable_j: job_energy / 2.0,
                grid_j: job_energy / 2.0,
                co2_g: job_energy / 2.0 / 3.6e6 * 360.0,
            }]
        } else {
            vec![]
        },
    }
}

macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, _dir) = crate::common::sqlite_store().await;
                super::$body(&store).await;
            }
            #[tokio::test]
            async fn postgres() {
                let store = crate::common::postgres_store().await;
                super::$body(&store).await;
            }
        }
    };
}

on_both!(stores_and_reads_back_a_report, stores_and_reads_back);
async fn stores_and_reads_back(store: &Store) {
    let write = report("n1", 0, 4, 650.0);
    let outcomes = store
        .write_batch(std::slice::from_ref(&write))
        .await
        .unwrap();
    assert_eq!(outcomes, vec![WriteOutcome::Stored]);

    let stored = store
        .report("n1", T0_MS)
        .await
        .unwrap()
        .expect("report key");
    assert_eq!(stored.window_end_ms, T0_MS + WINDOW_MS);
    assert_eq!(stored.gpu_count, 4);
    assert_eq!(stored.billing, write.report.billing);

    let samples = store.gpu_samples("n1", T0_MS, T0_MS + 1).await.unwrap();
    assert_eq!(samples, write.samples, "every column reads back as written");

    let ledger = store.ledger("uid-a").await.unwrap().expect("ledger");
    assert_eq!(
        (ledger.namespace.as_str(), ledger.name.as_str()),
        ("ml", "llama")
    );
    assert_eq!(ledger.energy_j, 13_000.0);
    assert_eq!(ledger.renewable_j, 6_500.0);
    assert_eq!(ledger.grid_j, 6_500.0);
    assert_eq!(ledger.site.as_deref(), Some("solar-a"));
    assert_eq!(ledger.first_window_start_ms, T0_MS);
    assert_eq!(ledger.last_window_end_ms, T0_MS + WINDOW_MS);
    assert_eq!(ledger.deleted_ms, None);
    assert!(store.ledger("uid-none").await.unwrap().is_none());
}

on_both!(reports_are_idempotent_on_node_and_window, idempotent);
async fn idempotent(store: &Store) {
    let first = report("n1", 0, 4, 650.0);
    assert_eq!(
        store
            .write_batch(std::slice::from_ref(&first))
            .await
            .unwrap(),
        vec![WriteOutcome::Stored]
    );
    // A retry (same content), a replay with other numbers, and a new window, in one batch
    // that also carries the new window twice.
    let replay = report("n1", 0, 4, 100.0);
    let next = report("n1", 1, 4, 650.0);
    let next_forged = report("n1", 1, 4, 1.0);
    let outcomes = store
        .write_batch(&[
            first.clone(),
            replay,
            next.clone(),
            next.clone(),
            next_forged,
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Duplicate,
            WriteOutcome::Conflict,
            WriteOutcome::Stored,
            WriteOutcome::Duplicate,
            WriteOutcome::Conflict
        ]
    );
    let (reports, samples, hourly, ledgers) = store.row_counts().await.unwrap();
    assert_eq!((reports, samples, hourly, ledgers), (2, 8, 4, 1));
    let ledger = store.ledger("uid-a").await.unwrap().unwrap();
    assert_eq!(
        ledger.energy_j, 26_000.0,
        "two windows, never counted twice"
    );
    let hour = store.hourly("n1", T0_MS, T0_MS + 3_600_000).await.unwrap();
    assert!(
        hour.iter()
            .all(|h| h.windows == 2 && h.energy_j == 13_000.0)
    );
}

on_both!(large_batches_sum_exactly, large_batches);
async fn large_batches(store: &Store) {
    // 300 reports × 8 GPUs: crosses the 256/64/16/4/1 statement shapes.
    let writes: Vec<ReportWrite> = (0..300)
        .map(|k| report(&format!("n{}", k % 30), k / 30, 8, 500.0 + (k % 7) as f64))
        .collect();
    let outcomes = store.write_batch(&writes).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == WriteOutcome::Stored));
    let (reports, samples, hourly, ledgers) = store.row_counts().await.unwrap();
    assert_eq!((reports, samples, hourly, ledgers), (300, 2400, 240, 1));
    let expected: f64 = writes
        .iter()
        .flat_map(|w| &w.charges)
        .map(|c| c.energy_j)
        .sum();
    let ledger = store.ledger("uid-a").await.unwrap().unwrap();
    assert_eq!(ledger.energy_j, expected);
    assert_eq!(ledger.first_window_start_ms, T0_MS);
    assert_eq!(ledger.last_window_end_ms, T0_MS + 10 * WINDOW_MS);
    // Hourly aggregates of n0: 10 windows per GPU, 100 s covered.
    let hours = store.hourly("n0", T0_MS, T0_MS + 3_600_000).await.unwrap();
    assert_eq!(hours.len(), 8);
    let h = &hours[0];
    assert_eq!((h.windows, h.covered_ms), (10, 100_000));
    let energy: f64 = writes
        .iter()
        .filter(|w| w.report.node == "n0")
        .map(|w| w.samples[0].energy_j)
        .sum();
    assert_eq!(h.energy_j, energy);
    assert!((h.mean_power_w() - energy / 100.0).abs() < 1e-9);
    assert_eq!(h.gpu_util_percent_ms / h.covered_ms as f64, 90.0);
}

on_both!(windows_across_hours_aggregate_by_start, hourly_boundaries);
async fn hourly_boundaries(store: &Store) {
    // Windows 359 (starts 59:50) and 360 (starts 1:00:00) fall in different hours.
    store
        .write_batch(&[report("n1", 359, 1, 300.0), report("n1", 360, 1, 400.0)])
        .await
        .unwrap();
    let hours = store.hourly("n1", T0_MS, T0_MS + 7_200_000).await.unwrap();
    assert_eq!(hours.len(), 2);
    assert_eq!(hours[0].hour_start_ms, T0_MS);
    assert_eq!(hours[0].energy_j, 3_000.0);
    assert_eq!(hours[0].max_power_w, 320.0);
    assert_eq!(hours[1].hour_start_ms, T0_MS + 3_600_000);
    assert_eq!(hours[1].energy_j, 4_000.0);
}

on_both!(retention_forgets_old_data_and_gone_jobs, retention);
async fn retention(store: &Store) {
    store
        .write_batch(&[report("n1", 0, 2, 500.0), report("n1", 1, 2, 500.0)])
        .await
        .unwrap();
    let mut other = report("n2", 0, 2, 500.0);
    for c in &mut other.charges {
        c.job_uid = "uid-b".into();
        c.name = "bert".into();
    }
    store.write_batch(&[other]).await.unwrap();

    let day_ms = 86_400_000;
    // The job uid-a still exists; uid-b is gone.
    let live: HashSet<String> = ["uid-a".to_owned()].into();
    assert_eq!(
        store.mark_gone_jobs(&live, T0_MS + day_ms).await.unwrap(),
        1
    );
    assert_eq!(
        store
            .mark_gone_jobs(&live, T0_MS + 2 * day_ms)
            .await
            .unwrap(),
        0,
        "marked once"
    );
    assert_eq!(store.live_ledgers().await.unwrap().len(), 1);

    let retention = Retention::default();
    // Six days later nothing is old enough.
    let counts = store.purge(T0_MS + 6 * day_ms, &retention).await.unwrap();
    assert_eq!(counts, Default::default());
    // Eight days later samples, keys and the gone job's ledger go; hours and the live
    // job's ledger stay.
    let counts = store
        .purge(T0_MS + 8 * day_ms + 1, &retention)
        .await
        .unwrap();
    assert_eq!(
        (
            counts.reports,
            counts.samples,
            counts.hourly,
            counts.ledgers
        ),
        (3, 6, 0, 1)
    );
    let ledgers = store.all_ledgers().await.unwrap();
    assert_eq!(ledgers.len(), 1);
    assert_eq!(ledgers[0].job_uid, "uid-a");
    assert_eq!(store.hourly("n1", 0, i64::MAX).await.unwrap().len(), 2);
    // A year and a day: the hours go too.
    let counts = store.purge(T0_MS + 366 * day_ms, &retention).await.unwrap();
    assert_eq!(counts.hourly, 4);
}

#[tokio::test]
async fn sqlite_keeps_data_across_reopen_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("energy.db");
    let config = StoreConfig::new(format!("sqlite://{}", path.display()));
    let store = Store::connect(&config).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store
        .write_batch(&[report("n1", 0, 2, 500.0)])
        .await
        .unwrap();
    assert!(
        dir.path().join("energy.db-wal").exists(),
        "the database runs in WAL mode"
    );
    drop(store);
    // Reopening migrates nothing twice and finds the committed report.
    let store = Store::connect(&config).await.unwrap();
    assert_eq!(store.report_windows("n1").await.unwrap(), vec![T0_MS]);
    assert_eq!(
        store
            .write_batch(&[report("n1", 0, 2, 500.0)])
            .await
            .unwrap(),
        vec![WriteOutcome::Duplicate]
    );
}

#[tokio::test]
async fn unreachable_postgres_is_reported_as_unavailable() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = StoreConfig::new(format!("postgres://verdant:secret@127.0.0.1:{port}/energy"));
    config.acquire_timeout = Duration::from_secs(1);
    let error = Store::connect(&config).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    let message = error.to_string();
    assert!(message.contains("unavailable"), "{message}");
    assert!(
        !message.contains("secret"),
        "no password in messages: {message}"
    );
}

#[tokio::test]
async fn bad_urls_are_explained() {
    for (url, needle) in [
        ("mysql://db/verdant", "unsupported scheme"),
        ("sqlite::memory:", "in-memory"),
        ("", "empty"),
    ] {
        let error = Store::connect(&StoreConfig::new(url)).await.unwrap_err();
        assert!(error.to_string().contains(needle), "{url}: {error}");
    }
}
