//! The scale bench (`make bench-scale`): one KWOK cluster of thousands of GPU nodes, and
//! the same jobs placed by kube-scheduler and by Verdant, measured side by side.
//!
//! # Expected flow
//! 1. A control plane with slow KWOK heartbeats ([`cluster::start_plane`]), the nodes and
//!    one Static EnergySite per site ([`cluster::create_fleet`]).
//! 2. kube-scheduler's runs, while no operator runs: each workload as batch/v1 Jobs, then
//!    as plain pods.
//! 3. The operator starts (release build, production cycle and debounce); each workload as
//!    Immediate TrainingJobs, then as GreenPreferred ones.
//! 4. The rest phase ([`rest::measure_rest`]): every GPU held, a queue that cannot move,
//!    the operator's CPU and memory over a quiet window.
//!
//! Each run has a namespace of its own, deleted (and waited for) before the next, so each
//! sees the same free cluster. `result.json` is rewritten after every run, so an
//! interrupted bench keeps what it measured.
//!
//! # Caveats
//! The API request counts are the whole API server's, so they include the bench's own
//! creates and watch, kwok's pod status writes and the controllers' events: the same for
//! every run but the scheduler's. The KWOK nodes' heartbeats are left out
//! ([`measure::is_heartbeat`]).

pub mod cluster;
pub mod measure;
pub mod report;
pub mod rest;
pub mod run;
pub mod watch;
pub mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::OperatorProcess;
use run::{Processes, RunSettings};
use workload::{Submission, Workload};

/// What the bench builds and runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// KWOK nodes.
    pub nodes: u32,
    /// EnergySites the nodes are spread over.
    pub sites: u32,
    /// GPUs per node.
    pub gpus_per_node: u32,
    /// 1×1 jobs per run (0: none).
    pub small_jobs: u32,
    /// 8×8 gangs per run (0: none).
    pub gangs: u32,
    /// The rest phase's quiet window (0: no rest phase).
    pub rest_seconds: u64,
    /// 8×8 gangs queued in the rest phase.
    pub rest_pending: u32,
    /// KWOK node heartbeat period.
    pub node_heartbeat_s: u64,
    /// Runs' creates in flight at once.
    pub concurrency: usize,
    /// Longest wait of a run.
    pub timeout_s: u64,
    /// Wait after a run's last binding before its counters are read.
    pub settle_s: u64,
    /// The operator binary (`e2e-operator`).
    pub operator: PathBuf,
    /// Extra flags of `operator run`.
    pub operator_args: Vec<String>,
    /// Run kube-scheduler's runs.
    pub baseline: bool,
    /// Run Verdant's runs.
    pub verdant: bool,
    /// Where `result.json` and `result.md` go.
    pub out_dir: PathBuf,
}

impl Config {
    /// The full bench of issue 14: 5,000 nodes, 2,000 1×1 jobs, 250 8×8 gangs.
    pub fn full(operator: PathBuf, out_dir: PathBuf) -> Self {
        Self {
            nodes: 5000,
            sites: 5,
            gpus_per_node: 8,
            small_jobs: 2000,
            gangs: 250,
            rest_seconds: 60,
            rest_pending: 100,
            node_heartbeat_s: 300,
            concurrency: 16,
            timeout_s: 1800,
            settle_s: 5,
            operator,
            operator_args: Vec::new(),
            baseline: true,
            verdant: true,
            out_dir,
        }
    }
}

/// Runs the bench; returns `result.json`'s content, also written to `config.out_dir`
/// with `result.md`. A run that fails is recorded with its error and the bench goes on;
/// the returned error then names the failed runs.
pub async fn run(config: &Config) -> anyhow::Result<Value> {
    std::fs::create_dir_all(&config.out_dir)?;
    anyhow::ensure!(
        config.operator.exists(),
        "{} not found: build with `cargo build --release -p verdant-tests --bins`",
        config.operator.display()
    );
    let conditions = measure::conditions();
    let plane = cluster::start_plane(&config.out_dir, config.node_heartbeat_s)?;
    let client = plane.client().await?;
    cluster::create_fleet(
        &client,
        config.nodes,
        config.sites,
        config.gpus_per_node,
        config.concurrency * 2,
    )
    .await?;
    let pid = |c| measure::component_pid(plane.dir(), c);
    let mut processes = Processes {
        operator: None,
        scheduler: pid("kube-scheduler"),
        controller_manager: pid("kube-controller-manager"),
        apiserver: pid("kube-apiserver"),
    };
    let settings = RunSettings {
        concurrency: config.concurrency,
        timeout: Duration::from_secs(config.timeout_s),
        settle: Duration::from_secs(config.settle_s),
    };
    let workloads: Vec<Workload> = [
        Workload::new(config.small_jobs, 1, 1),
        Workload::new(config.gangs, 8, 8),
    ]
    .into_iter()
    .filter(|w| w.jobs > 0)
    .collect();
    let mut result = json!({
        "runs": [],
        "rest": null,
        "conditions": conditions,
        "cluster": {"nodes": config.nodes, "sites": config.sites, "gpus_per_node": config.gpus_per_node,
                    "node_heartbeat_s": config.node_heartbeat_s, "create_concurrency": config.concurrency,
                    "operator_args": config.operator_args,
                    "kube_scheduler": "defaults (client QPS 50, burst 100)",
                    "kube_controller_manager": "defaults (--kube-api-qps 20, --kube-api-burst 30)"},
    });
    let mut failed = Vec::new();
    let mut operator: Option<OperatorProcess> = None;
    for submission in Submission::ALL {
        let is_verdant = submission.scheduler() == "verdant";
        if (is_verdant && !config.verdant) || (!is_verdant && !config.baseline) {
            continue;
        }
        if is_verdant && operator.is_none() {
            let process = start_operator(&plane, config).await?;
            processes.operator = Some(process.pid());
            operator = Some(process);
        }
        for workload in &workloads {
            let measured =
                run::measure_run(&plane, &client, submission, workload, &processes, settings).await;
            let error = match measured {
                Ok((row, namespace)) => {
                    push_run(&mut result, row, config)?;
                    run::delete_namespace(&client, &namespace, settings.timeout).await?;
                    continue;
                }
                Err(e) => e,
            };
            eprintln!("!! {} {}: {error:#}", submission.label(), workload.name);
            failed.push(format!("{} {}", submission.label(), workload.name));
            let row = json!({"scheduler": submission.scheduler(), "workload": workload.name,
                             "submitted_as": submission.label(), "error": format!("{error:#}")});
            push_run(&mut result, row, config)?;
        }
    }
    if config.rest_seconds > 0 {
        let process = match operator.take() {
            Some(p) => p,
            None => start_operator(&plane, config).await?,
        };
        let rest = rest::measure_rest(
            &plane,
            &client,
            config.nodes,
            config.gpus_per_node,
            process.pid(),
            rest::RestSettings {
                window: Duration::from_secs(config.rest_seconds),
                pending_jobs: config.rest_pending,
            },
            settings,
        )
        .await
        .unwrap_or_else(|e| {
            eprintln!("!! rest: {e:#}");
            failed.push("rest".to_owned());
            json!({"error": format!("{e:#}")})
        });
        result["rest"] = rest;
        write(&result, config)?;
    }
    result["conditions"]["loadavg_at_end"] = json!(measure::load_average());
    write(&result, config)?;
    anyhow::ensure!(failed.is_empty(), "runs failed: {}", failed.join(", "));
    Ok(result)
}

/// The operator as its own process with its production cycle and debounce, info logs.
async fn start_operator(
    plane: &crate::ControlPlane,
    config: &Config,
) -> anyhow::Result<OperatorProcess> {
    let mut args = vec!["--log-format".to_owned(), "json".to_owned()];
    args.extend(config.operator_args.iter().cloned());
    let mut process = OperatorProcess::start_with_kubeconfig(
        plane.dir(),
        plane.kubeconfig(),
        config.operator.to_str().context("operator path")?,
        &args,
        &[("RUST_LOG".to_owned(), "info,kube=warn".to_owned())],
    )?;
    let started = std::time::Instant::now();
    loop {
        anyhow::ensure!(
            process.is_running(),
            "the operator exited; its log:\n{}",
            process.log()
        );
        if let Some((200, _)) = process.readyz().await {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the operator was not ready within 600 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        ">> operator ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(process)
}

/// Recounts the runs of a stored `result` without the heartbeats
/// ([`measure::recount`]), writes it to `out_dir` and returns its Markdown.
pub fn rereport(mut result: Value, out_dir: &std::path::Path) -> anyhow::Result<String> {
    if let Some(runs) = result["runs"].as_array_mut() {
        runs.iter_mut().for_each(measure::recount);
    }
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(
        out_dir.join("result.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    let table = report::markdown(&result);
    std::fs::write(out_dir.join("result.md"), &table)?;
    Ok(table)
}

fn push_run(result: &mut Value, row: Value, config: &Config) -> anyhow::Result<()> {
    result["runs"]
        .as_array_mut()
        .expect("runs is an array")
        .push(row);
    write(result, config)
}

fn write(result: &Value, config: &Config) -> anyhow::Result<()> {
    std::fs::write(
        config.out_dir.join("result.json"),
        serde_json::to_string_pretty(result)?,
    )?;
    std::fs::write(config.out_dir.join("result.md"), report::markdown(result))?;
    Ok(())
}
