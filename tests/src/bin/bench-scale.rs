//! The scale bench: a KWOK cluster of 5,000 GPU nodes, the same jobs placed by
//! kube-scheduler (as batch/v1 Jobs and as plain pods) and by Verdant (as Immediate and
//! GreenPreferred TrainingJobs), side by side; then the operator at rest with every GPU
//! held. Writes `target/bench-scale/result.json` and `result.md` and prints the table.
//!
//! Run with `make bench-scale` (release build); `--help` lists the flags.

use std::path::PathBuf;

use anyhow::Context as _;
use verdant_tests::bench_scale::{self, Config};

const HELP: &str = "bench-scale [flags]
  --nodes N              KWOK nodes (5000)
  --sites N              EnergySites the nodes are spread over (5)
  --gpus-per-node N      (8)
  --small-jobs N         1x1 jobs per run, 0 for none (2000)
  --gangs N              8x8 gangs per run, 0 for none (250)
  --rest-seconds N       the at-rest window with every GPU held, 0 to skip (60)
  --rest-pending N       8x8 gangs queued behind the full fleet at rest (100)
  --node-heartbeat-s N   KWOK node status period (300, as a kubelet's report frequency)
  --concurrency N        creates in flight (16)
  --timeout-s N          longest wait of one run (1800)
  --settle-s N           wait after the last binding before the counters are read (5)
  --operator PATH        operator binary (e2e-operator next to this one)
  --operator-arg ARG     extra flag of `operator run` (repeat)
  --skip-baseline        no kube-scheduler runs
  --skip-verdant         no Verdant runs
  --out DIR              where result.json and result.md go (target/bench-scale)
  --report FILE          run nothing: recount FILE (a result.json) without the node
                         heartbeats and write result.json and result.md to --out";

fn main() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut config = Config::full(
        exe.with_file_name("e2e-operator"),
        verdant_tests::repo_root().join("target/bench-scale"),
    );
    let mut report = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => config.nodes = value()?.parse()?,
            "--sites" => config.sites = value()?.parse()?,
            "--gpus-per-node" => config.gpus_per_node = value()?.parse()?,
            "--small-jobs" => config.small_jobs = value()?.parse()?,
            "--gangs" => config.gangs = value()?.parse()?,
            "--rest-seconds" => config.rest_seconds = value()?.parse()?,
            "--rest-pending" => config.rest_pending = value()?.parse()?,
            "--node-heartbeat-s" => config.node_heartbeat_s = value()?.parse()?,
            "--concurrency" => config.concurrency = value()?.parse()?,
            "--timeout-s" => config.timeout_s = value()?.parse()?,
            "--settle-s" => config.settle_s = value()?.parse()?,
            "--operator" => config.operator = PathBuf::from(value()?),
            "--operator-arg" => config.operator_args.push(value()?),
            "--skip-baseline" => config.baseline = false,
            "--skip-verdant" => config.verdant = false,
            "--out" => config.out_dir = PathBuf::from(value()?),
            "--report" => report = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(());
            }
            other => anyhow::bail!("unknown flag {other}\n{HELP}"),
        }
    }
    if let Some(file) = report {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let table = bench_scale::rereport(serde_json::from_str(&text)?, &config.out_dir)?;
        println!("{table}");
        return Ok(());
    }
    anyhow::ensure!(
        config.sites > 0 && config.nodes >= config.sites,
        "--nodes must be at least --sites"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench_scale::run(&config));
    let table = std::fs::read_to_string(config.out_dir.join("result.md")).unwrap_or_default();
    println!("{table}");
    eprintln!(">> {}", config.out_dir.join("result.json").display());
    result.map(|_| ())
}
