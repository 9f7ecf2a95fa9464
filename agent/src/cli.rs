//! The command line of `verdant-agent`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::attribution::podresources::DEFAULT_SOCKET;
use crate::report::DEFAULT_TOKEN_FILE;

/// Verdant's GPU node agent: measures what the GPUs draw and who uses them, and reports
/// it to the operator.
#[derive(Parser)]
#[command(name = "verdant-agent", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the agent: sample, export /metrics, report every window to the operator, apply
    /// power limits.
    Run(Box<RunArgs>),
    /// Print one JSON sample of every GPU and exit.
    Sample(SampleArgs),
}

/// Which backend reads the GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Real GPUs through NVML (libnvidia-ml).
    Nvml,
    /// Simulated GPUs whose load follows the pods bound to the node.
    Simulated,
}

/// Where the simulated backend finds the pods of its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SimPods {
    /// Watch the pods bound to --node-name through the Kubernetes API.
    Kube,
    /// No pods: every GPU runs at --sim-free-gpu-util.
    None,
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The backend and its settings.
#[derive(Args, Clone, Debug)]
pub struct BackendArgs {
    /// Where GPU readings come from.
    #[arg(long, env = "VERDANT_AGENT_BACKEND", value_enum, default_value_t = BackendKind::Nvml)]
    pub backend: BackendKind,
    /// Path of the NVML library (default: libnvidia-ml.so.1, then libnvidia-ml.so, from the
    /// loader's search path).
    #[arg(long, env = "VERDANT_AGENT_NVML_LIB")]
    pub nvml_lib: Option<String>,
    /// Simulated backend: number of GPUs.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sim_gpus: u32,
    /// Simulated backend: model name.
    #[arg(long, default_value = "NVIDIA H100 80GB HBM3")]
    pub sim_model: String,
    /// Simulated backend: power at 0 % utilization, W.
    #[arg(long, default_value_t = 70.0)]
    pub sim_idle_watts: f64,
    /// Simulated backend: power at 100 % utilization, W (also the default power limit).
    #[arg(long, default_value_t = 700.0)]
    pub sim_max_watts: f64,
    /// Simulated backend: utilization of a GPU held by a running container, percent
    /// (the pod annotation verdant.dev/simulated-gpu-utilization overrides it).
    #[arg(long, default_value_t = 90.0)]
    pub sim_busy_util: f64,
    /// Simulated backend: utilization of a GPU no container holds, percent.
    #[arg(long, default_value_t = 0.0)]
    pub sim_free_gpu_util: f64,
    /// Simulated backend: where the pods come from.
    #[arg(long, value_enum, default_value_t = SimPods::Kube)]
    pub sim_pods: SimPods,
    /// Simulated backend: a file that keeps the GPUs' power limits across agent processes,
    /// as real GPUs keep theirs (default: in memory only).
    #[arg(long)]
    pub sim_state_file: Option<PathBuf>,
}

/// Settings of `verdant-agent run`. Every flag also reads an environment variable where
/// one is named.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The Kubernetes node this agent runs on (from the downward API in a DaemonSet).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The operator's ingest URL, e.g. http://verdant-operator.verdant-system:8081
    /// (/v1/reports is appended).
    #[arg(
        long,
        env = "VERDANT_OPERATOR_URL",
        required_unless_present = "no_report"
    )]
    pub operator_url: Option<String>,
    /// The projected ServiceAccount token (audience verdant), read for every report.
    #[arg(long, env = "VERDANT_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE)]
    pub token_file: PathBuf,
    /// A PEM CA bundle for an https operator URL.
    #[arg(long, env = "VERDANT_OPERATOR_CA_FILE")]
    pub operator_ca_file: Option<PathBuf>,
    /// Sampling period (e.g. 500ms, 1s).
    #[arg(long, env = "VERDANT_SAMPLE_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub sample_interval: Duration,
    /// Report window (e.g. 10s); windows are aligned to multiples of it.
    #[arg(long, env = "VERDANT_REPORT_WINDOW", default_value = "10s", value_parser = parse_duration)]
    pub report_window: Duration,
    /// Folder of the report buffer (a hostPath or emptyDir; survives agent restarts when
    /// it is a hostPath).
    #[arg(
        long,
        env = "VERDANT_BUFFER_DIR",
        default_value = "/var/lib/verdant-agent/buffer"
    )]
    pub buffer_dir: PathBuf,
    /// Folder of the agent's own state: the record of the power limits it set
    /// (power-limits-NODE.json), so that a restart after a crash (SIGKILL, OOM kill) puts
    /// their defaults back. Default: the folder that holds --buffer-dir.
    #[arg(long, env = "VERDANT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// How much reporting the buffer keeps while the operator is unreachable; beyond it
    /// the oldest reports are dropped.
    #[arg(long, env = "VERDANT_BUFFER_MAX_AGE", default_value = "1h", value_parser = parse_duration)]
    pub buffer_max_age: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "VERDANT_METRICS_ADDR", default_value = "0.0.0.0:9400")]
    pub metrics_addr: SocketAddr,
    /// Never set power limits (targets from the operator are logged and ignored).
    #[arg(long, env = "VERDANT_READ_ONLY")]
    pub read_only: bool,
    /// Do not report to an operator (sampling, /metrics and --json-out only).
    #[arg(long)]
    pub no_report: bool,
    /// Append every window (the report, the integrated power and the attribution source)
    /// as a JSON line to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// The kubelet PodResources socket.
    #[arg(long, env = "VERDANT_POD_RESOURCES_SOCKET", default_value = DEFAULT_SOCKET)]
    pub pod_resources_socket: PathBuf,
    /// Where the host's /proc is (for the cgroup fallback; needs hostPID or a mount).
    #[arg(long, env = "VERDANT_PROC_ROOT", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Log format.
    #[arg(long, env = "VERDANT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Settings of `verdant-agent sample`.
#[derive(Args, Clone, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The node (for the simulated backend's pods and UUIDs).
    #[arg(long, env = "NODE_NAME", default_value = "localhost")]
    pub node_name: String,
    /// Accepted for symmetry with `run`: `sample` only ever reads.
    #[arg(long)]
    pub read_only: bool,
}

/// Parses `500ms`, `1s`, `10s`, `1h`, … into a positive duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 1s, 10s or 1h: {e}"))?;
    if d.is_negative() || d.is_zero() {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok(d.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
