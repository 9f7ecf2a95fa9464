//! The `verdant-sim` command line: its arguments and [`run`], also used by `sim-bench`
//! and `verdant-evaluate`.

use std::path::{Path, PathBuf};

use clap::Args;
use verdant_core::placement::{EngineConfig, Policy};

use crate::civil::{DAY_S, HOUR_S, format_utc, utc_midnight_s};
use crate::cluster::{ClusterShape, PolicyKind};
use crate::error::SimError;
use crate::experiment::{Comparison, Experiment};
use crate::report::{Report, Setup, SiteSummary, WorkloadSummary, render_markdown};
use crate::simulate::{FORECAST_HOURS, SimConfig};
use crate::sites::load_sites;
use crate::trace::{TraceFormat, read_trace};
use crate::workload::{LoadScale, PolicyMix, WorkloadConfig, build_workload};

/// Replays a GPU job trace on real weather through Verdant's placement engine and
/// accounting, against baselines and the offline optimum.
#[derive(Args, Clone, Debug)]
pub struct SimulateArgs {
    /// Folder of EnergySite manifests; `forecast.replay.path` is relative to the manifest.
    #[arg(long)]
    pub sites: PathBuf,
    /// The job trace.
    #[arg(long)]
    pub trace: PathBuf,
    /// Format of the trace.
    #[arg(long, value_enum, default_value_t = TraceFormat::Itp)]
    pub trace_format: TraceFormat,
    /// First simulated day, YYYY-MM-DD (UTC midnight); weather years are aligned to it by date.
    #[arg(long)]
    pub from: String,
    /// Days of job submissions to replay.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Days the simulation keeps running after the last submission, so that jobs finish.
    #[arg(long, default_value_t = 7)]
    pub drain_days: u32,
    /// Day of the trace (since its start) replayed first.
    #[arg(long, default_value_t = 0.0)]
    pub trace_offset_days: f64,
    /// Scale the trace by this factor (windows of the trace laid over each other).
    #[arg(long, conflicts_with = "target_utilization")]
    pub load_factor: Option<f64>,
    /// Scale the trace so that it asks for this share of the cluster's GPU-hours.
    #[arg(long)]
    pub target_utilization: Option<f64>,
    /// Multiply every site's renewable supply by this, for what-ifs (bigger or smaller plants).
    #[arg(long, default_value_t = 1.0)]
    pub supply_scale: f64,
    /// Give every site with PV arrays a battery of this many hours of the site's peak
    /// facility load (every GPU at full draw, × PUE), charging and discharging at up to
    /// that load, 90 % round trip, 10 % floor. 0: only the batteries of the manifests.
    #[arg(long, default_value_t = 0.0)]
    pub battery_hours: f64,
    /// GPU nodes at each site.
    #[arg(long, default_value_t = 16)]
    pub nodes_per_site: u32,
    /// GPUs per node.
    #[arg(long, default_value_t = 8)]
    pub gpus_per_node: u32,
    /// Draw of a busy GPU, W.
    #[arg(long, default_value_t = 700.0)]
    pub gpu_max_watts: f64,
    /// Draw of an idle GPU, W.
    #[arg(long, default_value_t = 60.0)]
    pub gpu_idle_watts: f64,
    /// Base power of a node besides its GPUs, W.
    #[arg(long, default_value_t = 400.0)]
    pub node_base_watts: f64,
    /// Policies to compare, comma-separated: verdant, fifo, threshold-wait, oracle.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "verdant,fifo,threshold-wait,oracle"
    )]
    pub policies: Vec<PolicyKind>,
    /// Seed of the job mix (policies, slack, capping).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where report.json, report.md and the plots go (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds between scheduling cycles; must divide an hour.
    #[arg(long, default_value_t = 300)]
    pub step_seconds: i64,
    /// Energy policy weights of the trace's jobs: immediate, green-preferred, green-only.
    #[arg(long, value_delimiter = ',', num_args = 3, default_values_t = [0.1, 0.8, 0.1])]
    pub policy_mix: Vec<f64>,
    /// Slack factors drawn uniformly: deadline = submit + duration × (1 + slack).
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 1.0, 2.0])]
    pub slack: Vec<f64>,
    /// The least added delay any deadline allows, hours.
    #[arg(long, default_value_t = 0.0)]
    pub min_slack_hours: f64,
    /// GreenPreferred jobs' minimum renewable fraction.
    #[arg(long, default_value_t = 0.8)]
    pub min_renewable_fraction: f64,
    /// Share of GreenPreferred jobs that checkpoint and may be suspended when renewables
    /// drop (GreenOnly jobs always may).
    #[arg(long, default_value_t = 0.5)]
    pub interruptible_share: f64,
    /// Work a suspended job redoes when it resumes (since its last checkpoint), seconds.
    #[arg(long, default_value_t = 300)]
    pub restart_overhead_seconds: i64,
    /// Share of GreenPreferred jobs that are elastic (torchrun --nnodes=MIN:MAX), from
    /// ⌈replicas / 2⌉ to 2 × replicas: verdant grows them on renewable headroom and
    /// shrinks them when it drops.
    #[arg(long, default_value_t = 0.0)]
    pub elastic_share: f64,
    /// Work an elastic job loses at each resize (torchrun restarts its workers), seconds.
    #[arg(long, default_value_t = 60)]
    pub resize_overhead_seconds: i64,
    /// Share of jobs that allow power capping (down to 60 %).
    #[arg(long, default_value_t = 0.0)]
    pub power_capping_share: f64,
    /// threshold-wait: the renewable share a job must get to start before its latest start.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Skip the plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Also write each job's outcome per policy to `jobs-<policy>.csv`.
    #[arg(long)]
    pub jobs_csv: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl SimulateArgs {
    /// Arguments with every default, for the given inputs and output.
    pub fn new(sites: &Path, trace: &Path, from: &str, out: &Path) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SimulateArgs,
        }
        let argv = [
            "simulate".as_ref(),
            "--sites".as_ref(),
            sites.as_os_str(),
            "--trace".as_ref(),
            trace.as_os_str(),
            "--from".as_ref(),
            from.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        Wrapper::parse_from(argv).args
    }
}

/// What [`run`] produced.
#[derive(Debug)]
pub struct RunResult {
    pub report: Report,
    pub comparison: Comparison,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Parses `--from` (YYYY-MM-DD) into Unix seconds at UTC midnight.
pub fn parse_from(from: &str) -> Result<i64, SimError> {
    let date: jiff::civil::Date = from
        .trim()
        .parse()
        .map_err(|e| SimError::Config(format!("--from {from:?} is not a date YYYY-MM-DD: {e}")))?;
    Ok(utc_midnight_s(
        i64::from(date.year()),
        date.month() as u32,
        date.day() as u32,
    ))
}

fn validate(args: &SimulateArgs) -> Result<(), SimError> {
    let check = |ok: bool, message: &str| {
        if ok {
            Ok(())
        } else {
            Err(SimError::Config(message.to_owned()))
        }
    };
    check(
        args.days >= 1 && args.days <= 366,
        "--days must be 1 to 366",
    )?;
    check(args.drain_days <= 60, "--drain-days must be at most 60")?;
    check(
        args.step_seconds >= 1 && HOUR_S % args.step_seconds == 0,
        "--step-seconds must divide 3600 (e.g. 60, 300, 900)",
    )?;
    check(
        args.nodes_per_site >= 1 && args.gpus_per_node >= 1,
        "--nodes-per-site and --gpus-per-node must be at least 1",
    )?;
    check(
        args.gpu_max_watts > 0.0
            && args.gpu_idle_watts >= 0.0
            && args.gpu_idle_watts <= args.gpu_max_watts
            && args.node_base_watts >= 0.0,
        "power settings: need 0 ≤ --gpu-idle-watts ≤ --gpu-max-watts, --gpu-max-watts > 0, --node-base-watts ≥ 0",
    )?;
    check(
        args.policy_mix.len() == 3
            && args.policy_mix.iter().all(|w| w.is_finite() && *w >= 0.0)
            && args.policy_mix.iter().sum::<f64>() > 0.0,
        "--policy-mix takes three non-negative weights (immediate,green-preferred,green-only), not all 0",
    )?;
    check(
        !args.slack.is_empty() && args.slack.iter().all(|s| s.is_finite() && *s >= 0.0),
        "--slack takes non-negative factors",
    )?;
    check(
        (0.0..=1.0).contains(&args.min_renewable_fraction)
            && (0.0..=1.0).contains(&args.power_capping_share)
            && (0.0..=1.0).contains(&args.interruptible_share)
            && (0.0..=1.0).contains(&args.elastic_share)
            && (0.0..=1.0).contains(&args.threshold),
        "--min-renewable-fraction, --interruptible-share, --elastic-share, --power-capping-share and --threshold are shares from 0 to 1",
    )?;
    check(
        (0..=86_400).contains(&args.restart_overhead_seconds)
            && (0..=86_400).contains(&args.resize_overhead_seconds),
        "--restart-overhead-seconds and --resize-overhead-seconds must be 0 to 86400",
    )?;
    check(
        args.load_factor.is_none_or(|f| f.is_finite() && f > 0.0)
            && args
                .target_utilization
                .is_none_or(|u| u.is_finite() && u > 0.0),
        "--load-factor and --target-utilization must be positive",
    )?;
    check(
        args.trace_offset_days.is_finite() && args.trace_offset_days >= 0.0,
        "--trace-offset-days must be at least 0",
    )?;
    check(
        args.supply_scale.is_finite() && (0.0..=1000.0).contains(&args.supply_scale),
        "--supply-scale must be 0 to 1000",
    )?;
    check(
        args.battery_hours.is_finite() && (0.0..=1000.0).contains(&args.battery_hours),
        "--battery-hours must be 0 to 1000",
    )?;
    check(!args.policies.is_empty(), "--policies names no policy")
}

/// Builds the experiment the arguments describe, without running it.
pub fn prepare(args: &SimulateArgs) -> Result<(Experiment, Setup), SimError> {
    validate(args)?;
    let start_s = parse_from(&args.from)?;
    let end_s = start_s + i64::from(args.days + args.drain_days) * DAY_S;
    let hours = ((end_s - start_s) / HOUR_S + FORECAST_HOURS + 1) as usize;
    let mut sites = load_sites(&args.sites, start_s, hours)?;
    if args.supply_scale != 1.0 {
        for site in &mut sites {
            site.scale_supply(args.supply_scale);
        }
    }
    let trace = read_trace(&args.trace, args.trace_format)?;
    let trace_days = trace.jobs.iter().map(|j| j.submit_s).max().unwrap_or(0) as f64 / DAY_S as f64;
    if args.trace_offset_days > trace_days {
        return Err(SimError::Config(format!(
            "--trace-offset-days {} is beyond the trace, whose last job is submitted on day {trace_days:.1}",
            args.trace_offset_days
        )));
    }
    let cluster = ClusterShape {
        nodes_per_site: args.nodes_per_site,
        gpus_per_node: args.gpus_per_node,
        gpu_max_watts: args.gpu_max_watts,
        gpu_idle_watts: args.gpu_idle_watts,
        node_base_watts: args.node_base_watts,
    };
    if args.battery_hours > 0.0 {
        let busy_w = f64::from(cluster.site_gpus()) * cluster.gpu_max_watts;
        for site in sites.iter_mut().filter(|s| s.has_solar) {
            let peak_kw = cluster.site_facility_kw(site, f64::from(cluster.site_gpus()), busy_w);
            site.add_battery(args.battery_hours, peak_kw);
        }
    }
    let mix = PolicyMix {
        immediate: args.policy_mix[0],
        green_preferred: args.policy_mix[1],
        green_only: args.policy_mix[2],
    };
    let workload_config = WorkloadConfig {
        start_s,
        window_s: i64::from(args.days) * DAY_S,
        trace_offset_s: (args.trace_offset_days * DAY_S as f64).round() as i64,
        load: match (args.load_factor, args.target_utilization) {
            (_, Some(u)) => LoadScale::TargetUtilization(u),
            (Some(f), None) => LoadScale::Factor(f),
            (None, None) => LoadScale::Factor(1.0),
        },
        cluster_gpus: u64::from(cluster.site_gpus()) * sites.len() as u64,
        max_gang_gpus: cluster.site_gpus(),
        gpus_per_node: args.gpus_per_node,
        mix,
        slack_choices: args.slack.clone(),
        min_slack_s: (args.min_slack_hours * HOUR_S as f64).round() as i64,
        min_renewable_fraction: args.min_renewable_fraction,
        interruptible_fraction: args.interruptible_share,
        elastic_fraction: args.elastic_share,
        power_capping_fraction: args.power_capping_share,
        power_cap_min_percent: 60,
        seed: args.seed,
    };
    let workload = build_workload(&trace.jobs, &workload_config);
    if workload.jobs.is_empty() {
        return Err(SimError::Config(format!(
            "no jobs of {} fall in the {} days from day {} of the trace",
            args.trace.display(),
            args.days,
            args.trace_offset_days
        )));
    }
    let config = SimConfig {
        start_s,
        end_s,
        step_s: args.step_seconds,
        cluster,
        engine: EngineConfig {
            default_gpu_watts: args.gpu_max_watts,
            ..EngineConfig::default()
        },
        threshold: args.threshold,
        restart_overhead_s: args.restart_overhead_seconds,
        resize_overhead_s: args.resize_overhead_seconds,
    };
    let count = |p: Policy| workload.jobs.iter().filter(|j| j.policy == p).count();
    let setup = Setup {
        from: format_utc(start_s),
        days: args.days,
        horizon_end: format_utc(end_s),
        step_s: args.step_seconds,
        cluster,
        threshold: args.threshold,
        supply_scale: args.supply_scale,
        seed: args.seed,
        trace: args.trace.file_name().map_or_else(
            || args.trace.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        trace_format: args.trace_format,
        workload: WorkloadSummary {
            jobs: workload.jobs.len(),
            gpu_hours: workload
                .jobs
                .iter()
                .map(|j| f64::from(j.gpus()) * j.duration_s as f64 / HOUR_S as f64)
                .sum(),
            scale_factor: workload.scale_factor,
            offered_utilization: workload.offered_utilization,
            dropped_too_large: workload.dropped_too_large,
            skipped_rows: trace.skipped_rows,
            immediate: count(Policy::Immediate),
            green_preferred: count(Policy::GreenPreferred),
            green_only: count(Policy::GreenOnly),
            mix,
            slack_choices: args.slack.clone(),
            min_slack_s: workload_config.min_slack_s,
            min_renewable_fraction: args.min_renewable_fraction,
            interruptible_fraction: args.interruptible_share,
            interruptible: workload.jobs.iter().filter(|j| j.interruptible).count(),
            elastic_fraction: args.elastic_share,
            elastic: workload.jobs.iter().filter(|j| j.elastic.is_some()).count(),
            restart_overhead_s: args.restart_overhead_seconds,
            power_capping_fraction: args.power_capping_share,
        },
        sites: sites
            .iter()
            .map(|s| SiteSummary::new(s, start_s, config.hours()))
            .collect(),
    };
    Ok((
        Experiment {
            sites,
            jobs: workload.jobs,
            config,
        },
        setup,
    ))
}

/// Runs the simulation the arguments describe and writes `report.json`, `report.md` and
/// the plots into `--out`.
pub fn run(args: &SimulateArgs) -> Result<RunResult, SimError> {
    let (experiment, setup) = prepare(args)?;
    tracing::info!(
        jobs = experiment.jobs.len(),
        sites = experiment.sites.len(),
        from = %setup.from,
        until = %setup.horizon_end,
        "simulating"
    );
    let comparison = experiment.compare(&args.policies, !args.quiet)?;
    for (policy, seconds) in &comparison.wall_s {
        tracing::info!(policy = %policy, seconds = format!("{seconds:.1}"), "policy done");
    }
    let report = Report {
        policies: comparison.metrics.clone(),
        setup,
        oracle: comparison.oracle.clone(),
    };
    std::fs::create_dir_all(&args.out).map_err(|source| SimError::Write {
        path: args.out.clone(),
        source,
    })?;
    let mut files = Vec::new();
    let plots = if args.no_plots {
        Vec::new()
    } else {
        crate::plots::draw_all(
            &args.out,
            &experiment.sites,
            &comparison.runs,
            experiment.config.start_s,
        )?
    };
    let plot_names: Vec<String> = plots
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    files.extend(plots);
    let json = serde_json::to_string_pretty(&report).map_err(|e| SimError::Write {
        path: args.out.join("report.json"),
        source: std::io::Error::other(e),
    })?;
    write(&args.out.join("report.json"), &(json + "\n"), &mut files)?;
    if args.jobs_csv {
        for run in &comparison.runs {
            let path = args.out.join(format!("jobs-{}.csv", run.policy));
            write(&path, &jobs_csv(&experiment, run), &mut files)?;
        }
    }
    let order: Vec<PolicyKind> = args.policies.clone();
    write(
        &args.out.join("report.md"),
        &render_markdown(&report, &order, &plot_names),
        &mut files,
    )?;
    Ok(RunResult {
        report,
        comparison,
        files,
    })
}

/// One line per job: what it was and what the policy made of it.
fn jobs_csv(experiment: &Experiment, run: &crate::outcome::RunOutcome) -> String {
    let mut csv = String::from(
        "id,policy,gpus,submit_s,duration_s,deadline_s,interruptible,first_start_s,finish_s,energy_kwh,renewable_kwh,suspensions\n",
    );
    let opt = |v: Option<i64>| v.map_or_else(String::new, |v| v.to_string());
    for (job, out) in experiment.jobs.iter().zip(&run.jobs) {
        csv.push_str(&format!(
            "{},{:?},{},{},{},{},{},{},{},{:.3},{:.3},{}\n",
            job.id,
            job.policy,
            job.gpus(),
            job.submit_s,
            job.duration_s,
            opt(job.deadline_s),
            job.interruptible,
            opt(out.first_start_s),
            opt(out.finish_s),
            out.ledger.energy_kwh(),
            out.ledger.renewable_kwh(),
            out.suspensions,
        ));
    }
    csv
}

fn write(path: &Path, text: &str, files: &mut Vec<PathBuf>) -> Result<(), SimError> {
    std::fs::write(path, text).map_err(|source| SimError::Write {
        path: path.to_owned(),
        source,
    })?;
    files.push(path.to_owned());
    Ok(())
}

/// Readable logs on stderr (`RUST_LOG` overrides the level), for the binaries.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
