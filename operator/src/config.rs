//! The operator's settings, from flags and environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use verdant_core::placement::EngineConfig;

pub use crate::time_scale::TimeScale;

/// `verdant-operator run` settings. Every flag also reads an environment variable.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Seconds between scheduling cycles. Cycles also run, debounced, when jobs, pods,
    /// nodes or sites change.
    #[arg(long, env = "VERDANT_CYCLE_SECONDS", default_value_t = 15)]
    pub cycle_seconds: u64,

    /// Milliseconds to wait after a change before a cycle runs, so bursts share one cycle.
    #[arg(long, env = "VERDANT_DEBOUNCE_MS", default_value_t = 250)]
    pub debounce_ms: u64,

    /// Per-GPU power in watts assumed for GPU models without a measurement or an entry
    /// in --gpu-watts.
    #[arg(long, env = "VERDANT_DEFAULT_GPU_WATTS", default_value_t = 700.0)]
    pub default_gpu_watts: f64,

    /// Per-model GPU watts, as MODEL=WATTS pairs separated by commas; MODEL is the node
    /// label nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3=700,NVIDIA-A100-SXM4-80GB=400.
    #[arg(long, env = "VERDANT_GPU_WATTS", value_delimiter = ',', value_parser = parse_model_watts)]
    pub gpu_watts: Vec<(String, f64)>,

    /// Base power of a GPU node besides its GPUs (CPUs, memory, fans, NICs), in watts; part
    /// of each site's IT load in energy accounting and headroom.
    #[arg(long, env = "VERDANT_NODE_BASE_WATTS", default_value_t = 400.0)]
    pub node_base_watts: f64,

    /// Seconds a GreenOnly interruptible job keeps running after its site's renewable
    /// headroom turned negative, before it is suspended.
    #[arg(long, env = "VERDANT_GREEN_ONLY_GRACE_SECONDS", default_value_t = 600)]
    pub green_only_grace_seconds: i64,

    /// Run time assumed for jobs without spec.energy.estimatedDuration, in seconds.
    #[arg(long, env = "VERDANT_DEFAULT_DURATION_SECONDS", default_value_t = 3600)]
    pub default_duration_seconds: i64,

    /// Runs the operator's own time constants this many times faster than the wall clock,
    /// to match weather replayed with `spec.forecast.replay.speedup` (`make demo` sets both
    /// to 120: a day in 12 minutes). Divided by it: --green-only-grace-seconds,
    /// --default-duration-seconds, --forecast-max-age-seconds, the overrun extension
    /// (30 min), the suspension slack of GreenPreferred jobs (1 h), the forecast's step (an
    /// hour) and its persistence decay (6 h). Not scaled: what job specs say (durations,
    /// deadlines), how often work is done (--cycle-seconds, --site-status-seconds), Static
    /// profiles (UTC hours of the wall clock) and energy accounting. 1 to 3600.
    #[arg(long, env = "VERDANT_TIME_SCALE", default_value = "1", value_parser = TimeScale::parse)]
    pub time_scale: TimeScale,

    /// Address of the HTTP server for /metrics, /livez and /readyz.
    #[arg(long, env = "VERDANT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// How many TrainingJobs are reconciled at once.
    #[arg(long, env = "VERDANT_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Requests to the API server in flight at once, at most; more wait their turn. The
    /// Rust client has no QPS limiter like client-go's: this bounds the bursts of many
    /// gangs created and bound at once (each gang up to 16 requests at a time) below the
    /// API server's own limits (--max-requests-inflight, priority and fairness).
    #[arg(long, env = "VERDANT_API_CONCURRENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub api_concurrency: u16,

    /// Log format: `text` for terminals, `json` in clusters.
    #[arg(long, env = "VERDANT_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// The EnergySite controller and its forecast providers.
    #[command(flatten)]
    pub site: crate::site_controller::SiteArgs,

    /// The agents' ingest endpoint, the energy store and the accounting.
    #[command(flatten)]
    pub ingest: crate::ingest::config::IngestArgs,

    /// Leader election, for more than one replica.
    #[command(flatten)]
    pub leader: crate::leader::LeaderArgs,

    /// MultiKueue: Verdant as the External dispatcher on a manager cluster.
    #[command(flatten)]
    pub dispatcher: crate::kueue::dispatcher::DispatcherArgs,
}

/// How logs are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_model_watts(text: &str) -> Result<(String, f64), String> {
    let (model, watts) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected MODEL=WATTS"))?;
    let watts: f64 = watts
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {watts:?} is not a number of watts"))?;
    if !(watts.is_finite() && watts > 0.0) {
        return Err(format!("{text:?}: watts must be positive"));
    }
    Ok((model.trim().to_owned(), watts))
}

impl RunArgs {
    /// The placement engine's settings, its durations divided by --time-scale.
    pub fn engine_config(&self) -> EngineConfig {
        let defaults = EngineConfig::default();
        let scale = self.time_scale;
        EngineConfig {
            default_gpu_watts: self.default_gpu_watts,
            gpu_watts_by_model: self.gpu_watts.iter().cloned().collect(),
            green_only_grace_s: scale.wall_s(self.green_only_grace_seconds),
            default_duration_s: scale.wall_s(self.default_duration_seconds),
            overrun_extension_s: scale.wall_s(defaults.overrun_extension_s),
            suspend_min_slack_s: scale.wall_s(defaults.suspend_min_slack_s),
            ..defaults
        }
    }

    /// Time between cycles.
    pub fn cycle_period(&self) -> Duration {
        Duration::from_secs(self.cycle_seconds.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_watts_parse_and_reject_nonsense() {
        assert_eq!(
            parse_model_watts("H100=700").unwrap(),
            ("H100".to_owned(), 700.0)
        );
        assert!(
            parse_model_watts("H100")
                .unwrap_err()
                .contains("MODEL=WATTS")
        );
        assert!(
            parse_model_watts("H100=lots")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_model_watts("H100=-5")
                .unwrap_err()
                .contains("positive")
        );
    }
}
