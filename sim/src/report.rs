//! `report.json` and `report.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::civil::HOUR_S;
use crate::cluster::{ClusterShape, PolicyKind};
use crate::metrics::PolicyMetrics;
use crate::oracle::LpSize;
use crate::sites::SimSite;
use crate::trace::TraceFormat;
use crate::workload::PolicyMix;

/// Everything a run found, as written to `report.json`. Deterministic: no wall-clock
/// times or absolute paths, so the same inputs and seed give the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// By policy name.
    pub policies: BTreeMap<String, PolicyMetrics>,
    pub setup: Setup,
    /// The oracle's linear program, when it ran.
    pub oracle: Option<OracleInfo>,
}

/// What was simulated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setup {
    /// First simulated instant, `YYYY-MM-DD HH:MM` UTC.
    pub from: String,
    /// Days of trace replayed (submissions).
    pub days: u32,
    /// End of the horizon (submissions stop after `days`; jobs run on until then).
    pub horizon_end: String,
    pub step_s: i64,
    pub cluster: ClusterShape,
    pub threshold: f64,
    /// Factor applied to every site's supply.
    pub supply_scale: f64,
    pub seed: u64,
    /// The trace's file name.
    pub trace: String,
    pub trace_format: TraceFormat,
    pub workload: WorkloadSummary,
    pub sites: Vec<SiteSummary>,
}

/// The jobs replayed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadSummary {
    pub jobs: usize,
    pub gpu_hours: f64,
    pub scale_factor: f64,
    pub offered_utilization: f64,
    pub dropped_too_large: usize,
    pub skipped_rows: usize,
    pub immediate: usize,
    pub green_preferred: usize,
    pub green_only: usize,
    pub mix: PolicyMix,
    pub slack_choices: Vec<f64>,
    pub min_slack_s: i64,
    pub min_renewable_fraction: f64,
    pub interruptible_fraction: f64,
    /// Jobs that may be suspended.
    pub interruptible: usize,
    pub elastic_fraction: f64,
    /// Elastic jobs (verdant resizes them).
    pub elastic: usize,
    pub restart_overhead_s: i64,
    pub power_capping_fraction: f64,
}

/// A site's supply over the horizon.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiteSummary {
    pub name: String,
    pub source: String,
    pub pue: f64,
    pub grid_carbon_g_per_kwh: f64,
    pub supply_kwh: f64,
    pub mean_supply_kw: f64,
    pub peak_supply_kw: f64,
    pub missing_weather_hours: usize,
}

impl SiteSummary {
    /// Summarises `hours` hours of a site's supply from `start_s`.
    pub fn new(site: &SimSite, start_s: i64, hours: usize) -> Self {
        let supply: Vec<f64> = (0..hours)
            .map(|h| site.supply_kw_at(start_s + h as i64 * HOUR_S))
            .collect();
        let total: f64 = supply.iter().sum();
        Self {
            name: site.name.clone(),
            source: site.source.clone(),
            pue: site.pue,
            grid_carbon_g_per_kwh: site.grid_carbon_g_per_kwh,
            supply_kwh: total,
            mean_supply_kw: if hours > 0 { total / hours as f64 } else { 0.0 },
            peak_supply_kw: supply.iter().copied().fold(0.0, f64::max),
            missing_weather_hours: site.missing_hours,
        }
    }
}

/// The oracle's linear program.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OracleInfo {
    /// The LP objective's renewable part: an upper bound, kWh.
    pub lp_bound_kwh: f64,
    /// The flow network it is solved as: arcs (the program's variables) and nodes (its rows).
    pub arcs: usize,
    pub nodes: usize,
}

impl OracleInfo {
    pub fn new(lp_bound_kwh: f64, size: LpSize) -> Self {
        Self {
            lp_bound_kwh,
            arcs: size.arcs,
            nodes: size.nodes,
        }
    }
}

fn hours_min(s: f64) -> String {
    if !s.is_finite() {
        "–".to_owned()
    } else if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| v.to_string())
}

/// The setup in words: workload, cluster, job mix.
pub fn setup_text(setup: &Setup) -> String {
    let w = &setup.workload;
    let c = &setup.cluster;
    format!(
        "{} jobs of `{}` ({} format, {:.0} GPU-hours, offered load {:.0} % of the cluster; \
         scale factor {:.2}; {} dropped as larger than a site) submitted over {} days from {} UTC, \
         run until {} UTC; a scheduling cycle every {} s; seed {}.\n\n\
         Cluster: {} sites × {} nodes × {} GPUs; a GPU draws {} W busy and {} W idle, a node {} W \
         besides its GPUs. Jobs: {} Immediate, {} GreenPreferred (min renewable fraction {}), {} \
         GreenOnly (no deadline); {} jobs may be suspended (every GreenOnly job, {:.0} % of the \
         GreenPreferred ones), losing {} of work each time; deadline = submit + duration × \
         (1 + slack), slack drawn from {:?}{}. threshold-wait threshold: {}.{}\n",
        w.jobs,
        setup.trace,
        match setup.trace_format {
            TraceFormat::Itp => "Microsoft ITP",
            TraceFormat::Alibaba => "Alibaba GPU v2023",
        },
        w.gpu_hours,
        100.0 * w.offered_utilization,
        w.scale_factor,
        w.dropped_too_large,
        setup.days,
        setup.from,
        setup.horizon_end,
        setup.step_s,
        setup.seed,
        setup.sites.len(),
        c.nodes_per_site,
        c.gpus_per_node,
        c.gpu_max_watts,
        c.gpu_idle_watts,
        c.node_base_watts,
        w.immediate,
        w.green_preferred,
        w.min_renewable_fraction,
        w.green_only,
        w.interruptible,
        100.0 * w.interruptible_fraction,
        hours_min(w.restart_overhead_s as f64),
        w.slack_choices,
        if w.min_slack_s > 0 {
            format!(" (at least {})", hours_min(w.min_slack_s as f64))
        } else {
            String::new()
        },
        setup.threshold,
        if w.elastic > 0 {
            format!(
                " {} GreenPreferred jobs ({:.0} %) are elastic, from ⌈replicas / 2⌉ to 2 × replicas.",
                w.elastic,
                100.0 * w.elastic_fraction
            )
        } else {
            String::new()
        },
    )
}

/// The sites and their supply over the horizon, as a Markdown table.
pub fn sites_table(setup: &Setup) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| site | supply | PUE | grid gCO₂/kWh | supply over the horizon | mean | peak |"
    );
    let _ = writeln!(md, "|---|---|---|---|---:|---:|---:|");
    for s in &setup.sites {
        let _ = writeln!(
            md,
            "| {} | {}{} | {} | {} | {:.0} kWh | {:.1} kW | {:.1} kW |",
            s.name,
            s.source,
            if s.missing_weather_hours > 0 {
                format!(" ({} hours missing)", s.missing_weather_hours)
            } else {
                String::new()
            },
            s.pue,
            s.grid_carbon_g_per_kwh,
            s.supply_kwh,
            s.mean_supply_kw,
            s.peak_supply_kw
        );
    }
    md
}

/// The policies' metrics, in `order`, as a Markdown table.
pub fn results_table(report: &Report, order: &[PolicyKind]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| policy | renewable kWh | grid kWh | total kWh | renewable share | CO₂ kg | of oracle | \
         deadline misses (feasible) | delay mean / p50 / p95 / p99 | added delay p95 (÷ slack) | \
         GPU util. | suspensions / restarts |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"
    );
    for policy in order {
        let Some(m) = report.policies.get(policy.name()) else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} % | {:.0} | {} | {} ({}) | {} / {} / {} / {} | {} ({:.2}) | {:.1} % | {} / {} |",
            policy,
            m.renewable_kwh,
            m.grid_kwh,
            m.total_kwh,
            100.0 * m.renewable_share,
            m.co2_kg,
            m.fraction_of_oracle
                .map_or_else(|| "–".to_owned(), |f| format!("{:.1} %", 100.0 * f)),
            m.deadline_misses,
            m.feasible_deadline_misses,
            hours_min(m.delay_mean_s),
            hours_min(m.delay_p50_s),
            hours_min(m.delay_p95_s),
            hours_min(m.delay_p99_s),
            hours_min(m.added_delay_p95_s),
            m.added_delay_p95_slack_ratio,
            100.0 * m.gpu_utilization,
            opt(m.suspensions),
            opt(m.restarts),
        );
    }
    md
}

/// What the numbers mean, for readers of either report.
pub const DEFINITIONS: &str = "Energies are the jobs' GPU energy, billed per window with \
`verdant_core::accounting::SiteWindow::bill` (renewable share of a window = supply / facility \
load, at most 1). *of oracle* is renewable kWh over the oracle's. Delay is first start − \
submission; added delay is finish − (submission + duration), and ÷ slack divides it by the \
delay the job's deadline allows (≤ 1: within the slack). A deadline is *feasible* when the \
oracle's relaxation meets it (without the oracle: every deadline counts as feasible). The \
oracle preempts and migrates for free, so it has no suspensions to count and its delays are \
those of its first slice of work.";

/// The Markdown report: setup, the results table, the plots (`plots` are file names
/// relative to the report).
pub fn render_markdown(report: &Report, order: &[PolicyKind], plots: &[String]) -> String {
    let mut md = String::from("# Simulation report\n\n");
    md.push_str(&setup_text(&report.setup));
    md.push('\n');
    md.push_str(&sites_table(&report.setup));
    md.push_str("\n## Results\n\n");
    md.push_str(&results_table(report, order));
    if let Some(oracle) = &report.oracle {
        let _ = writeln!(
            md,
            "\nThe oracle's linear program (a flow network of {} arcs and {} nodes) bounds the renewable \
             energy of any schedule meeting the same deadlines by {:.0} kWh; its schedule, billed \
             like the others, gets the `renewable kWh` above.",
            oracle.arcs, oracle.nodes, oracle.lp_bound_kwh
        );
    }
    let _ = writeln!(md, "\n{DEFINITIONS}\n");
    if !plots.is_empty() {
        let _ = writeln!(md, "## Plots\n");
        for plot in plots {
            let _ = writeln!(md, "![{plot}]({plot})\n");
        }
    }
    md
}
