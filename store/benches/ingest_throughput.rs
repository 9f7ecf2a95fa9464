//! Sustained ingest throughput of the store, SQLite and PostgreSQL: GPU samples per
//! second written through `Store::write_batch`, the path every accepted report takes
//! (one transaction per batch: report keys, samples, hourly aggregates, job ledgers).
//!
//! `cargo bench -p verdant-store --bench ingest_throughput` (PostgreSQL from
//! `$VERDANT_TEST_POSTGRES_URL`, else `hack/postgres.sh up`). Prints a table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use verdant_store::{
    GpuSample, JobCharge, ReportRecord, ReportWrite, SiteBilling, Store, WriteOutcome,
};

const GPUS_PER_NODE: usize = 8;
const NODES: usize = 5_000;
const WINDOW_MS: i64 = 10_000;

/// Window `k` of node `n`: 8 GPUs, two jobs of four GPUs each.
fn report(n: usize, k: i64, t0_ms: i64) -> ReportWrite {
    let node = format!("gpu-node-{n:05}");
    let start = t0_ms + k * WINDOW_MS;
    let samples = (0..GPUS_PER_NODE)
        .map(|i| GpuSample {
            node: node.clone(),
            window_start_ms: start,
            window_end_ms: start + WINDOW_MS,
            gpu_uuid: format!("GPU-{n:05}-{i}"),
            gpu_index: i as i64,
            model: "NVIDIA H100 80GB HBM3".into(),
            samples: 10,
            mean_power_w: 612.5,
            max_power_w: 698.0,
            energy_j: 6125.0,
            energy_counter_reset: false,
            mean_gpu_util_percent: 97.0,
            mean_mem_util_percent: 41.0,
            memory_used_bytes: 71 << 30,
            memory_total_bytes: 80 << 30,
            temperature_c: 64.0,
            sm_clock_mhz: 1980,
            power_limit_w: 700.0,
            pod: Some((
                "ml".into(),
                format!("job-{n}-{}-0", i / 4),
                "trainer".into(),
            )),
            job_uid: Some(format!("uid-{n}-{}", i / 4)),
        })
        .collect();
    let charges = (0..2)
        .map(|j| JobCharge {
            job_uid: format!("uid-{n}-{j}"),
            namespace: "ml".into(),
            name: format!("job-{n}-{j}"),
            site: "solar-a".into(),
            energy_j: 24_500.0,
            renewable_j: 12_250.0,
            grid_j: 12_250.0,
            co2_g: 1.225,
        })
        .collect();
    ReportWrite {
        report: ReportRecord {
            node,
            window_start_ms: start,
            window_end_ms: start + WINDOW_MS,
            received_ms: start + WINDOW_MS + 20,
            agent_version: "0.1.0".into(),
            content_hash: format!("{n}-{k}"),
            billing: Some(SiteBilling {
                site: "solar-a".into(),
                gpu_power_w: 2.4e6,
                base_power_w: 2.0e6,
                pue: 1.2,
                renewable_supply_w: 2.6e6,
                grid_carbon_g_per_kwh: 360.0,
                renewable_share: 0.5,
            }),
        },
        samples,
        charges,
    }
}

struct Row {
    backend: &'static str,
    batch: usize,
    samples: usize,
    seconds: f64,
    mean_tx_ms: f64,
    max_tx_ms: f64,
}

/// Writes `reports` reports in batches of `batch`, nodes round-robin (as 5,000 nodes
/// reporting every 10 s would), into a fresh store.
async fn run(backend: &'static str, store: &Store, batch: usize, reports: usize) -> Row {
    let t0_ms = 1_795_953_600_000;
    let writes: Vec<ReportWrite> = (0..reports)
        .map(|i| report(i % NODES, (i / NODES) as i64, t0_ms))
        .collect();
    let mut tx_ms = Vec::new();
    let started = Instant::now();
    for chunk in writes.chunks(batch) {
        let t = Instant::now();
        let outcomes = store.write_batch(chunk).await.expect("write_batch");
        tx_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(outcomes.iter().all(|o| *o == WriteOutcome::Stored));
    }
    let seconds = started.elapsed().as_secs_f64();
    let (_, samples, _, _) = store.row_counts().await.expect("counting");
    assert_eq!(samples as usize, reports * GPUS_PER_NODE);
    Row {
        backend,
        batch,
        samples: reports * GPUS_PER_NODE,
        seconds,
        mean_tx_ms: tx_ms.iter().sum::<f64>() / tx_ms.len() as f64,
        max_tx_ms: tx_ms.iter().cloned().fold(0.0, f64::max),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs a quick smoke pass.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 20 } else { 1 };
    // (reports per batch, reports): a batch of 1 is one commit (one fsync) per report,
    // the worst case; concurrent agents fill bigger batches (group commit).
    let plan: [(usize, usize); 4] = [
        (1, 2_000 / scale),
        (16, 10_000 / scale),
        (128, 20_000 / scale),
        (512, 20_000 / scale),
    ];
    let mut rows = Vec::new();
    for &(batch, reports) in &plan {
        let (store, _dir) = common::sqlite_store().await;
        rows.push(run("sqlite", &store, batch, reports).await);
    }
    for &(batch, reports) in &plan {
        let store = common::postgres_store().await;
        rows.push(run("postgres", &store, batch, reports).await);
    }
    println!();
    println!(
        "| backend  | reports/tx | GPU samples | seconds | GPU samples/s | mean tx ms | max tx ms |"
    );
    println!(
        "|----------|-----------:|------------:|--------:|--------------:|-----------:|----------:|"
    );
    for r in &rows {
        println!(
            "| {:<8} | {:>10} | {:>11} | {:>7.2} | {:>13.0} | {:>10.2} | {:>9.2} |",
            r.backend,
            r.batch,
            r.samples,
            r.seconds,
            r.samples as f64 / r.seconds,
            r.mean_tx_ms,
            r.max_tx_ms
        );
    }
    println!(
        "\n{GPUS_PER_NODE} GPUs per report, 2 jobs per report; each transaction writes report keys, GPU samples, hourly aggregates and ledgers. Target: ≥ 20,000 GPU samples/s sustained."
    );
}
