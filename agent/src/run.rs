//! Wiring of `verdant-agent run` and `verdant-agent sample`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use verdant_crds::wire::AgentReport;

use crate::attribution::pods::NodePods;
use crate::attribution::{Attributor, PodLookup, Source};
use crate::backend::GpuBackend;
use crate::backend::nvml::NvmlBackend;
use crate::backend::simulated::{DemandSource, NoPods, SimConfig, SimulatedBackend};
use crate::cap_record::CapRecord;
use crate::cli::{BackendArgs, BackendKind, RunArgs, SampleArgs, SimPods};
use crate::metrics::Metrics;
use crate::report::{Reporter, ReporterConfig};
use crate::sample::GpuSample;
use crate::sampler::{self, Command, Holders, SamplerConfig};
use crate::server::{self, Health};
use crate::tasks::Supervisor;
use crate::window::ClosedWindow;

/// How long the final attempt to deliver buffered reports may take on exit.
const FINAL_SEND_DEADLINE: Duration = Duration::from_secs(5);
/// How long the window handler and the reporter may take to pass on the last window when
/// the agent stops (attribution, then the final send).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);
/// The tasks that finish their work when the agent stops, rather than being aborted.
const WINDOW_HANDLER: &str = "window handler";
const REPORTER: &str = "reporter";

/// Builds the backend. For the simulated backend following Kubernetes pods, also starts
/// the watch of the node's pods under `tasks` and returns it.
pub async fn build_backend(
    args: &BackendArgs,
    node: &str,
    tasks: &mut Supervisor,
) -> anyhow::Result<(Box<dyn GpuBackend>, Option<NodePods>)> {
    match args.backend {
        BackendKind::Nvml => {
            let library = args.nvml_lib.clone();
            let backend =
                tokio::task::spawn_blocking(move || NvmlBackend::open(library.as_deref()))
                    .await
                    .context("the NVML initialisation thread failed")??;
            Ok((Box::new(backend), None))
        }
        BackendKind::Simulated => {
            let (source, pods): (Box<dyn DemandSource>, Option<NodePods>) = match args.sim_pods {
                SimPods::None => (Box::new(NoPods), None),
                SimPods::Kube => {
                    let client = kube::Client::try_default().await.context(
                        "the simulated backend follows the pods bound to this node through the \
                         Kubernetes API, but no client could be configured (KUBECONFIG, or a \
                         ServiceAccount in a pod); use --sim-pods none to simulate without pods",
                    )?;
                    let (pods, driver) = NodePods::watch(client, node);
                    tasks.spawn("pod watch", async move {
                        driver.await;
                        Ok(())
                    });
                    if !pods.wait_ready(Duration::from_secs(15)).await {
                        tracing::warn!(
                            node,
                            "the pods of this node are not listed yet; simulated GPUs idle until they are"
                        );
                    }
                    let reader = pods.clone();
                    (Box::new(move || reader.gpu_demands()), Some(pods))
                }
            };
            let backend = SimulatedBackend::new(
                SimConfig {
                    node: node.to_owned(),
                    gpus: args.sim_gpus,
                    model: args.sim_model.clone(),
                    idle_w: args.sim_idle_watts,
                    max_w: args.sim_max_watts,
                    busy_util_percent: args.sim_busy_util,
                    free_util_percent: args.sim_free_gpu_util,
                },
                source,
            )?;
            let backend = match &args.sim_state_file {
                Some(path) => backend.persist_limits_in(path.clone())?,
                None => backend,
            };
            Ok((Box::new(backend), pods))
        }
    }
}

/// What `verdant-agent sample` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampleOutput<'a> {
    node: &'a str,
    backend: &'static str,
    agent_version: &'static str,
    gpus: &'a [GpuSample],
    errors: Vec<String>,
}

/// `verdant-agent sample`: one reading of every GPU as JSON on stdout.
pub async fn sample(args: SampleArgs) -> anyhow::Result<()> {
    // Keeps the pod watch running while the GPUs are read; dropping it stops the watch.
    let mut tasks = Supervisor::new();
    let (mut backend, _pods) = build_backend(&args.backend, &args.node_name, &mut tasks).await?;
    let name = backend.name();
    let set = tokio::task::spawn_blocking(move || backend.sample()).await?;
    let output = SampleOutput {
        node: &args.node_name,
        backend: name,
        agent_version: crate::VERSION,
        gpus: &set.gpus,
        errors: set.errors.iter().map(ToString::to_string).collect(),
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    if set.gpus.is_empty() && !set.errors.is_empty() {
        anyhow::bail!("no GPU could be read: {}", output.errors.join("; "));
    }
    Ok(())
}

/// One line of `--json-out`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WindowLine<'a> {
    report: &'a AgentReport,
    /// Per GPU, power integrated over the window (trapezoids), J.
    integrated_power_j: &'a [f64],
    attribution: Source,
}

/// `verdant-agent run`: the daemon.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.report_window < args.sample_interval {
        anyhow::bail!(
            "--report-window ({:?}) must be at least --sample-interval ({:?})",
            args.report_window,
            args.sample_interval
        );
    }
    if args.node_name.is_empty() {
        anyhow::bail!("--node-name (or NODE_NAME) must name this node");
    }
    let mut tasks = Supervisor::new();
    let (backend, pods) = build_backend(&args.backend, &args.node_name, &mut tasks).await?;
    supervise(args, backend, pods, tasks).await
}

/// Starts sampling, serving, attributing and reporting around `backend`, every task under
/// `tasks`, and runs until a signal (`Ok`) or until any task ends (an error naming it, so
/// that the process exits non-zero and Kubernetes restarts the agent). Either way it then
/// stops sampling (the open window is flushed and the power limits restored) and lets the
/// last window through attribution and reporting.
async fn supervise(
    args: RunArgs,
    backend: Box<dyn GpuBackend>,
    pods: Option<NodePods>,
    mut tasks: Supervisor,
) -> anyhow::Result<()> {
    let node = args.node_name.clone();
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| match args.buffer_dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        });
    let metrics = Arc::new(Metrics::new(&node, backend.name()));
    let health = Arc::new(
        Health::new(metrics.clone(), args.sample_interval.as_millis() as i64)
            .with_pod_watch(pods.clone()),
    );
    let (_, server) = server::bind(args.metrics_addr, health.clone()).await?;
    tasks.spawn("/metrics server", async move {
        server
            .await
            .context("serving /metrics, /healthz and /readyz failed")
    });

    let holders = Holders::default();
    let (windows_tx, windows_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sampler = sampler::spawn(
        backend,
        SamplerConfig {
            node: node.clone(),
            interval: args.sample_interval,
            window: args.report_window,
            read_only: args.read_only,
            cap_record: Some(CapRecord::in_dir(&state_dir, &node).with_context(|| {
                format!(
                    "cannot create the state folder {} (--state-dir)",
                    state_dir.display()
                )
            })?),
        },
        metrics.clone(),
        health.clone(),
        holders.clone(),
        windows_tx,
    )
    .context("cannot start the sampling thread")?;
    let sampling_ended = sampler.ended();
    tasks.spawn("sampling thread", async move {
        sampling_ended.await;
        Ok(())
    });
    tracing::info!(
        %node,
        backend = ?args.backend.backend,
        sample_interval = ?args.sample_interval,
        report_window = ?args.report_window,
        read_only = args.read_only,
        "sampling"
    );

    let reports_tx = match (&args.operator_url, args.no_report) {
        (Some(url), false) => {
            let window_s = args.report_window.as_secs_f64();
            let capacity = (args.buffer_max_age.as_secs_f64() / window_s)
                .ceil()
                .max(1.0) as usize;
            let commands = sampler.commands();
            let reporter = Reporter::new(
                ReporterConfig {
                    operator_url: url.clone(),
                    token_file: args.token_file.clone(),
                    ca_file: args.operator_ca_file.clone(),
                    request_timeout: Duration::from_secs(10),
                    max_backoff: Duration::from_secs(30),
                    buffer_dir: args.buffer_dir.clone(),
                    buffer_capacity: capacity,
                },
                metrics.clone(),
                Box::new(move |limits| {
                    let _ = commands.send(Command::PowerLimits(limits));
                }),
            )?;
            tracing::info!(url, buffer = %args.buffer_dir.display(), capacity, "reporting to the operator");
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tasks.spawn(REPORTER, async move {
                reporter.run(rx, FINAL_SEND_DEADLINE).await;
                Ok(())
            });
            Some(tx)
        }
        _ => None,
    };

    let lookup = match pods {
        Some(pods) => PodLookup::Watching(pods),
        None => PodLookup::Lazy {
            node: node.clone(),
            tasks: tasks.spawner(),
        },
    };
    let attributor = Attributor::new(
        args.pod_resources_socket.clone(),
        args.proc_root.clone(),
        lookup,
    );
    let handler = handle_windows(
        windows_rx,
        // The simulated backend assigns GPUs to pods itself.
        (args.backend.backend == BackendKind::Nvml).then_some(attributor),
        holders,
        metrics.clone(),
        args.json_out.clone(),
        reports_tx,
    );
    tasks.spawn(WINDOW_HANDLER, async move {
        handler.await;
        Ok(())
    });

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); health.stopping("SIGTERM"); Ok(()) }
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted: stopping"); health.stopping("interrupted"); Ok(()) }
        ended = tasks.next_ended() => {
            let error = ended.into_error();
            let reason = format!("{error:#}");
            tracing::error!(error = reason, "a critical task ended; stopping the agent so that it restarts");
            health.stopping(reason);
            Err(error)
        }
    };
    // Stop sampling (flushes the open window and restores power limits), then let the
    // last window through attribution and reporting.
    tokio::task::spawn_blocking(move || sampler.stop()).await?;
    tasks
        .shut_down(&[WINDOW_HANDLER, REPORTER], SHUTDOWN_DEADLINE)
        .await;
    outcome
}

async fn handle_windows(
    mut windows: UnboundedReceiver<ClosedWindow>,
    attributor: Option<Attributor>,
    holders: Holders,
    metrics: Arc<Metrics>,
    json_out: Option<PathBuf>,
    reports: Option<UnboundedSender<AgentReport>>,
) {
    while let Some(mut window) = windows.recv().await {
        let source = match &attributor {
            Some(attributor) => attributor.attribute(&mut window).await,
            None => Source::Backend,
        };
        metrics.set_attribution_source(source.as_str());
        {
            let mut holders = holders.write().unwrap_or_else(|e| e.into_inner());
            holders.clear();
            for gpu in &window.report.gpus {
                if let Some(pod) = &gpu.pod {
                    holders.insert(gpu.uuid.clone(), pod.clone());
                }
            }
        }
        if let Some(path) = &json_out
            && let Err(error) = append_json_line(path, &window, source)
        {
            tracing::error!(path = %path.display(), %error, "cannot write the window to --json-out");
        }
        if let Some(reports) = &reports {
            let _ = reports.send(window.report);
        }
    }
}

fn append_json_line(path: &PathBuf, window: &ClosedWindow, source: Source) -> std::io::Result<()> {
    let line = serde_json::to_string(&WindowLine {
        report: &window.report,
        integrated_power_j: &window.integrated_power_j,
        attribution: source,
    })?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SampleSet;
    use crate::backend::simulated::NoPods;

    /// A simulated node whose GPUs stop answering: the backend panics on its `fail_at`th
    /// reading, which ends the sampling thread.
    struct FailingBackend {
        inner: SimulatedBackend,
        readings: u32,
        fail_at: u32,
    }

    impl GpuBackend for FailingBackend {
        fn name(&self) -> &'static str {
            "simulated"
        }
        fn sample(&mut self) -> SampleSet {
            self.readings += 1;
            assert!(self.readings < self.fail_at, "the simulated driver hung up");
            self.inner.sample()
        }
        fn set_power_limit(
            &mut self,
            uuid: &str,
            limit_w: f64,
        ) -> Result<(), crate::backend::BackendError> {
            self.inner.set_power_limit(uuid, limit_w)
        }
    }

    fn run_args(dir: &std::path::Path) -> RunArgs {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            run: RunArgs,
        }
        let buffer = dir.join("buffer");
        let line = <Line as clap::Parser>::try_parse_from([
            "verdant-agent",
            "--backend=simulated",
            "--sim-pods=none",
            "--node-name=node-1",
            "--no-report",
            "--metrics-addr=127.0.0.1:0",
            "--sample-interval=50ms",
            "--report-window=200ms",
            &format!("--buffer-dir={}", buffer.display()),
        ])
        .unwrap();
        line.run
    }

    #[tokio::test]
    async fn a_critical_task_that_ends_stops_the_agent_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let args = run_args(dir.path());
        let inner = SimulatedBackend::new(
            SimConfig {
                node: "node-1".into(),
                gpus: 1,
                model: "NVIDIA H100 80GB HBM3".into(),
                idle_w: 70.0,
                max_w: 700.0,
                busy_util_percent: 90.0,
                free_util_percent: 0.0,
            },
            Box::new(NoPods),
        )
        .unwrap();
        let backend = Box::new(FailingBackend {
            inner,
            readings: 0,
            fail_at: 5,
        });
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            supervise(args, backend, None, Supervisor::new()),
        )
        .await
        .expect("the agent kept running after its sampling thread died");
        let error = format!("{:#}", outcome.unwrap_err());
        assert_eq!(error, "the task 'sampling thread' ended");
    }
}
