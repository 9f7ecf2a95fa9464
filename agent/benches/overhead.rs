//! Agent overhead: RSS and CPU of the real `verdant-agent run` process with the simulated
//! backend at 8 GPUs, 1 s sampling and 10 s windows, reporting to a local ingest server
//! and scraped every 15 s like Prometheus would. Prints a table.
//!
//! ```sh
//! cargo bench -p verdant-agent --bench overhead                  # 60 s
//! VERDANT_BENCH_SECONDS=300 cargo bench -p verdant-agent --bench overhead
//! ```
//!
//! The process is measured from outside, after a 5 s warm-up: CPU time from
//! `/proc/<pid>/task/*/schedstat` (ns; `/proc/<pid>/stat`'s 10 ms ticks are printed
//! beside it as a cross-check) and memory from `/proc/<pid>/status` (`VmRSS`, `VmHWM`). With
//! `KUBECONFIG` set, the simulated backend also watches the node's pods through that API
//! server (`--sim-pods kube`) for the node `VERDANT_BENCH_NODE` (default `bench-node`);
//! otherwise it runs without pods at 90 % utilization.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use verdant_crds::wire::IngestResponse;

const AGENT: &str = env!("CARGO_BIN_EXE_verdant-agent");
const WARM_UP: Duration = Duration::from_secs(5);
const SCRAPE_EVERY: Duration = Duration::from_secs(15);

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the agent is running");
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// CPU time of all the process's threads, ns (`/proc/<pid>/task/*/schedstat`, first field):
/// nanosecond resolution, where `/proc/<pid>/stat` counts 10 ms ticks.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the agent is running")
        .filter_map(|task| {
            let path = task.ok()?.path().join("schedstat");
            std::fs::read_to_string(path)
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent is running");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let seconds: u64 = std::env::var("VERDANT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(seconds));
}

async fn bench(seconds: u64) {
    let reports = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest_addr = listener.local_addr().unwrap();
    let counter = reports.clone();
    let app = axum::Router::new().route(
        "/v1/reports",
        post(move |_body: String| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::Json(IngestResponse {
                    accepted: true,
                    ..Default::default()
                })
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "bench-token").unwrap();
    let metrics_addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let with_kube = std::env::var_os("KUBECONFIG").is_some();
    let node = std::env::var("VERDANT_BENCH_NODE").unwrap_or_else(|_| "bench-node".to_owned());
    let mut command = Command::new(AGENT);
    command
        .args(["run", "--backend", "simulated", "--sim-gpus", "8"])
        .args(["--sample-interval", "1s", "--report-window", "10s"])
        .args(["--node-name", &node])
        .args(["--operator-url", &format!("http://{ingest_addr}")])
        .arg("--token-file")
        .arg(dir.path().join("token"))
        .arg("--buffer-dir")
        .arg(dir.path().join("buffer"))
        .args(["--metrics-addr", &metrics_addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if with_kube {
        command.args(["--sim-pods", "kube"]);
    } else {
        command.args(["--sim-pods", "none", "--sim-free-gpu-util", "90"]);
    }
    let mut agent = command.spawn().expect("starting verdant-agent");
    let pid = agent.id();

    tokio::time::sleep(WARM_UP).await;
    let client = reqwest::Client::new();
    let ticks_per_s = clock_ticks_per_second();
    let start = Instant::now();
    let start_ticks = cpu_ticks(pid);
    let start_ns = cpu_ns(pid);
    let mut rss_samples_kib = Vec::new();
    let mut scrapes = 0u32;
    let mut metrics_bytes = 0usize;
    let mut next_scrape = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        if Instant::now() >= next_scrape {
            let text = client
                .get(format!("http://{metrics_addr}/metrics"))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("scraping /metrics")
                .text()
                .await
                .unwrap();
            metrics_bytes = text.len();
            scrapes += 1;
            next_scrape += SCRAPE_EVERY;
        }
        rss_samples_kib.push(status_kib(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let cpu_s = (cpu_ns(pid) - start_ns) as f64 / 1e9;
    let cpu_ticks_s = (cpu_ticks(pid) - start_ticks) as f64 / ticks_per_s;
    let rss_now = status_kib(pid, "VmRSS:");
    let rss_peak = status_kib(pid, "VmHWM:");
    let rss_mean = rss_samples_kib.iter().sum::<u64>() as f64 / rss_samples_kib.len().max(1) as f64;
    let _ = agent.kill();
    let _ = agent.wait();

    let mib = |kib: f64| kib / 1024.0;
    let mcpu = cpu_s / elapsed_s * 1000.0;
    println!();
    println!("verdant-agent overhead: simulated backend, 8 GPUs, 1 s sampling, 10 s windows,");
    println!(
        "pods from {}, reporting to a local ingest server, /metrics scraped every {} s",
        if with_kube {
            "the Kubernetes API (KUBECONFIG)"
        } else {
            "nowhere (--sim-pods none)"
        },
        SCRAPE_EVERY.as_secs()
    );
    println!(
        "measured over {elapsed_s:.0} s after a {} s warm-up, from /proc/{pid}",
        WARM_UP.as_secs()
    );
    println!();
    println!("| Measure                  |      Value | Target    |");
    println!("|--------------------------|-----------:|-----------|");
    println!(
        "| RSS at the end           | {:>6.1} MiB | ≤ 16 MiB  |",
        mib(rss_now as f64)
    );
    println!(
        "| RSS mean                 | {:>6.1} MiB | ≤ 16 MiB  |",
        mib(rss_mean)
    );
    println!(
        "| RSS peak (VmHWM)         | {:>6.1} MiB | ≤ 16 MiB  |",
        mib(rss_peak as f64)
    );
    println!("| CPU, mean                | {mcpu:>5.2} mCPU | ≤ 5 mCPU  |");
    println!("| CPU time (schedstat)     | {cpu_s:>8.3} s |           |");
    println!("| CPU time (stat ticks)    | {cpu_ticks_s:>8.2} s |           |");
    println!(
        "| Reports accepted         | {:>10} |           |",
        reports.load(Ordering::Relaxed)
    );
    println!("| /metrics scrapes (bytes) | {scrapes:>3} ({metrics_bytes:>5}) |           |");
    println!();
    let ok = mib(rss_peak as f64) <= 16.0 && mcpu <= 5.0;
    println!(
        "verdict: {}",
        if ok {
            "within both targets"
        } else {
            "OVER TARGET"
        }
    );
}
