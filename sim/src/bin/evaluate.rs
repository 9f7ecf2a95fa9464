//! `verdant-evaluate`: the standing experiment behind `make evaluate`.
//!
//! Three sites (Greensboro solar, Piedmont solar, a German wind turbine), two weeks of one
//! Microsoft ITP cluster's trace in summer and in winter (and summer again with half-size
//! plants), all four policies; then the same weeks with fewer checkpointing jobs. Writes
//! each scenario's `report.json`, `report.md` and plots under `--out-dir`, and the whole
//! story to `--doc` (docs/evaluation.md), with the hand-written part (`--notes`: the
//! engine's before and after, performance) appended. Run from the repository root.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use verdant_sim::PolicyKind;
use verdant_sim::cli::{RunResult, SimulateArgs, prepare, run};
use verdant_sim::metrics::PolicyMetrics;
use verdant_sim::report::{DEFINITIONS, results_table, setup_text, sites_table};

#[derive(Parser)]
#[command(
    name = "verdant-evaluate",
    about = "The standing evaluation: writes docs/evaluation.md"
)]
struct Cli {
    /// EnergySite manifests.
    #[arg(long, default_value = "docs/evaluation/sites")]
    sites: PathBuf,
    /// The ITP trace.
    #[arg(long, default_value = "sim/data/itp/cluster07.csv")]
    trace: PathBuf,
    /// Where each scenario's report and plots go (one folder per scenario).
    #[arg(long, default_value = "docs/evaluation")]
    out_dir: PathBuf,
    /// The document to write.
    #[arg(long, default_value = "docs/evaluation.md")]
    doc: PathBuf,
    /// Hand-written Markdown appended to the document.
    #[arg(long, default_value = "docs/evaluation/notes.md")]
    notes: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// One run of the experiment: its folder under `--out-dir`, its first day, and the
/// factor applied to every site's supply.
struct Scenario {
    key: &'static str,
    title: &'static str,
    from: &'static str,
    supply_scale: f64,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        key: "summer",
        title: "Summer",
        from: "2019-06-01",
        supply_scale: 1.0,
    },
    Scenario {
        key: "winter",
        title: "Winter",
        from: "2019-12-01",
        supply_scale: 1.0,
    },
    Scenario {
        key: "summer-half-plants",
        title: "Summer, plants at half size",
        from: "2019-06-01",
        supply_scale: 0.5,
    },
];

/// Share of GreenPreferred jobs that checkpoint in the headline runs, and the others tried.
const HEADLINE_CHECKPOINTING: f64 = 1.0;
const OTHER_CHECKPOINTING: [f64; 2] = [0.0, 0.5];
/// Shares of GreenPreferred jobs that are elastic, with none checkpointing (0 % is the
/// checkpointing 0 % run).
const ELASTIC: [f64; 2] = [0.5, 1.0];

struct Outcome<'a> {
    scenario: &'a Scenario,
    result: RunResult,
    /// verdant's metrics by checkpointing share.
    checkpointing: Vec<(f64, PolicyMetrics)>,
    /// verdant's metrics without checkpointing, by elastic share.
    elastic: Vec<(f64, PolicyMetrics)>,
    /// verdant's headline run again with a battery of `BATTERY_HOURS` at each solar site.
    battery: PolicyMetrics,
}

/// Hours of the site's peak facility load each solar site's battery holds
/// (`--battery-hours`).
const BATTERY_HOURS: f64 = 4.0;

struct Goal {
    name: &'static str,
    value: String,
    met: bool,
}

fn goals(outcome: &Outcome<'_>) -> Vec<Goal> {
    let report = &outcome.result.report;
    let m = |p: PolicyKind| &report.policies[p.name()];
    let verdant = m(PolicyKind::Verdant);
    let fifo = m(PolicyKind::Fifo);
    let of_oracle = verdant.fraction_of_oracle.unwrap_or(0.0);
    let over_fifo = verdant.renewable_kwh / fifo.renewable_kwh.max(f64::MIN_POSITIVE);
    let mut goals = vec![
        Goal {
            name: "verdant reaches ≥ 90 % of the oracle's renewable energy",
            value: format!("{:.1} %", 100.0 * of_oracle),
            met: of_oracle >= 0.9,
        },
        Goal {
            name: "verdant uses clearly more renewable energy than fifo (≥ 1.10×)",
            value: format!(
                "{over_fifo:.2}× ({:.0} vs {:.0} kWh)",
                verdant.renewable_kwh, fifo.renewable_kwh
            ),
            met: over_fifo >= 1.1,
        },
        Goal {
            name: "verdant misses no feasible deadline",
            value: format!("{} missed", verdant.feasible_deadline_misses),
            met: verdant.feasible_deadline_misses == 0,
        },
        Goal {
            name: "verdant's p95 added delay stays within the jobs' slack",
            value: format!(
                "p95 of added delay ÷ slack = {:.2}",
                verdant.added_delay_p95_slack_ratio
            ),
            met: verdant.added_delay_p95_slack_ratio <= 1.0,
        },
    ];
    // Every GreenPreferred job elastic, none checkpointing (the last elastic run).
    if let Some((share, elastic)) = outcome.elastic.last() {
        let of_oracle = elastic.fraction_of_oracle.unwrap_or(0.0);
        goals.push(Goal {
            name: "no job checkpointing, every GreenPreferred job elastic: ≥ 90 % of the oracle, \
                   no feasible deadline missed",
            value: format!(
                "{:.1} % at {:.0} % elastic, {} missed",
                100.0 * of_oracle,
                100.0 * share,
                elastic.feasible_deadline_misses
            ),
            met: of_oracle >= 0.9 && elastic.feasible_deadline_misses == 0,
        });
    }
    goals
}

fn run_scenario<'a>(cli: &Cli, scenario: &'a Scenario) -> anyhow::Result<Outcome<'a>> {
    let mut args = SimulateArgs::new(
        &cli.sites,
        &cli.trace,
        scenario.from,
        &cli.out_dir.join(scenario.key),
    );
    args.interruptible_share = HEADLINE_CHECKPOINTING;
    args.supply_scale = scenario.supply_scale;
    args.quiet = cli.quiet;
    tracing::info!(scenario = scenario.key, "all four policies");
    let result = run(&args)?;
    let oracle_kwh = result.report.policies["oracle"].renewable_kwh;
    let mut checkpointing = Vec::new();
    for share in OTHER_CHECKPOINTING {
        tracing::info!(
            scenario = scenario.key,
            share,
            "verdant with fewer checkpointing jobs"
        );
        let mut other = args.clone();
        other.interruptible_share = share;
        checkpointing.push((share, verdant_alone(&other, cli.quiet, oracle_kwh)?));
    }
    let mut elastic = vec![(0.0, checkpointing[0].1.clone())];
    for share in ELASTIC {
        tracing::info!(
            scenario = scenario.key,
            share,
            "verdant without checkpointing, elastic jobs"
        );
        let mut other = args.clone();
        other.interruptible_share = 0.0;
        other.elastic_share = share;
        elastic.push((share, verdant_alone(&other, cli.quiet, oracle_kwh)?));
    }
    checkpointing.push((
        HEADLINE_CHECKPOINTING,
        result.report.policies["verdant"].clone(),
    ));
    tracing::info!(scenario = scenario.key, "verdant with batteries");
    let mut with_battery = args.clone();
    with_battery.battery_hours = BATTERY_HOURS;
    let battery = verdant_alone(&with_battery, cli.quiet, oracle_kwh)?;
    Ok(Outcome {
        scenario,
        result,
        checkpointing,
        elastic,
        battery,
    })
}

/// verdant's metrics alone on `args` (a variant of a scenario), with its share of the
/// scenario's oracle.
fn verdant_alone(
    args: &SimulateArgs,
    quiet: bool,
    oracle_kwh: f64,
) -> anyhow::Result<PolicyMetrics> {
    let (experiment, _) = prepare(args)?;
    let comparison = experiment.compare(&[PolicyKind::Verdant], !quiet)?;
    let mut metrics = comparison.metrics["verdant"].clone();
    metrics.fraction_of_oracle = Some(metrics.renewable_kwh / oracle_kwh);
    Ok(metrics)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    verdant_sim::cli::init_tracing();
    let outcomes = SCENARIOS
        .iter()
        .map(|s| run_scenario(&cli, s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let notes = std::fs::read_to_string(&cli.notes).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the notes {}: {e}; run from the repository root",
            cli.notes.display()
        )
    })?;
    std::fs::write(&cli.doc, document(&outcomes, &notes))?;
    println!("{}", cli.doc.display());
    for o in &outcomes {
        for g in goals(o) {
            let verdict = if g.met { "met" } else { "NOT MET" };
            println!("{}: {verdict}: {}: {}", o.scenario.key, g.name, g.value);
        }
    }
    Ok(())
}

fn document(outcomes: &[Outcome<'_>], notes: &str) -> String {
    let mut md = String::new();
    let first = &outcomes[0].result.report;
    let _ = writeln!(
        md,
        "# Evaluation: how green is Verdant's schedule, and what does it cost?\n\n\
         *Generated by `make evaluate` (`sim/src/bin/evaluate.rs`) up to \"Checkpointing\"; the \
         sections after it come from `docs/evaluation/notes.md`.*\n\n\
         The trace simulator (`verdant-sim`, [simulator.md](simulator.md)) replays two weeks of a \
         real GPU cluster's jobs on three sites with real weather, through the placement engine \
         the operator runs and the accounting it bills with, and compares four policies: \
         **verdant** (the engine, each job with its own energy policy), **fifo** (first come, \
         first served, carbon-agnostic), **threshold-wait** (wait while the renewable share is \
         below 50 %, up to the latest start; Wiesner et al. 2021) and the **oracle** (a linear \
         relaxation with perfect knowledge of the future: an upper bound).\n\n\
         ## Setup\n\n{}",
        setup_text(&first.setup),
    );
    let _ = writeln!(
        md,
        "Every scenario replays the same jobs (the trace's first 14 days) from its own date; \
         each site's weather is its file's, aligned by date. The wind site's turbine makes it \
         the greenest place most of the time; the solar sites are green around their local \
         noon (17:00 UTC in Greensboro, 11:00 UTC in Piedmont). With full-size plants the sites \
         together supply about twice the cluster's mean load; the third scenario halves every \
         plant, so that renewable energy is short and the oracle's bound is not simply \"all of \
         it\". The sites' supply over each horizon:\n"
    );
    for o in outcomes {
        let _ = writeln!(
            md,
            "**{}** (from {})\n",
            o.scenario.title, o.result.report.setup.from
        );
        md.push_str(&sites_table(&o.result.report.setup));
        md.push('\n');
    }

    let _ = writeln!(md, "## Goals\n");
    let titles: Vec<&str> = outcomes.iter().map(|o| o.scenario.title).collect();
    let _ = writeln!(md, "| goal | {} |", titles.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(outcomes.len()));
    let per_scenario: Vec<Vec<Goal>> = outcomes.iter().map(goals).collect();
    for (i, goal) in per_scenario[0].iter().enumerate() {
        let cells: Vec<String> = per_scenario
            .iter()
            .map(|g| format!("{} {}", if g[i].met { "✅" } else { "❌" }, g[i].value))
            .collect();
        let _ = writeln!(md, "| {} | {} |", goal.name, cells.join(" | "));
    }
    md.push('\n');

    for o in outcomes {
        let report = &o.result.report;
        let key = o.scenario.key;
        let _ = writeln!(
            md,
            "## {} ({} to {} UTC)\n",
            o.scenario.title, report.setup.from, report.setup.horizon_end
        );
        md.push_str(&results_table(report, &PolicyKind::ALL));
        if let Some(oracle) = &report.oracle {
            let _ = writeln!(
                md,
                "\nOracle: a flow network of {} arcs and {} nodes; LP bound {:.0} kWh.",
                oracle.arcs, oracle.nodes, oracle.lp_bound_kwh
            );
        }
        let _ = writeln!(
            md,
            "\n![cumulative renewable share, {key}](evaluation/{key}/renewable-share.svg)\n"
        );
        for site in &report.setup.sites {
            let _ = writeln!(
                md,
                "![{name} supply and load, {key}](evaluation/{key}/supply-load-{name}.svg)\n",
                name = site.name
            );
        }
        let _ = writeln!(
            md,
            "Full report: [evaluation/{key}/report.md](evaluation/{key}/report.md), numbers in \
             [report.json](evaluation/{key}/report.json).\n"
        );
    }
    let _ = writeln!(md, "{DEFINITIONS}\n");

    let _ = writeln!(
        md,
        "## Checkpointing\n\n\
         The oracle preempts any job for free. Verdant suspends only jobs that checkpoint \
         (`interruptible: true`); the runs above assume every GreenPreferred job does, as \
         long training jobs usually checkpoint anyway. With fewer checkpointing jobs verdant \
         still meets every deadline, but follows the sun and wind less:\n\n\
         | scenario | GreenPreferred jobs checkpointing | renewable kWh | of oracle | renewable \
         share | deadline misses (feasible) | delay p95 | suspensions |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for o in outcomes {
        for (share, m) in &o.checkpointing {
            let _ = writeln!(
                md,
                "| {} | {:.0} % | {:.0} | {:.1} % | {:.1} % | {} ({}) | {:.1} h | {} |",
                o.scenario.title,
                100.0 * share,
                m.renewable_kwh,
                100.0 * m.fraction_of_oracle.unwrap_or(0.0),
                100.0 * m.renewable_share,
                m.deadline_misses,
                m.feasible_deadline_misses,
                m.delay_p95_s / 3600.0,
                m.suspensions.unwrap_or(0),
            );
        }
    }
    let _ = writeln!(
        md,
        "\n## Elastic jobs\n\n\
         No job sets `interruptible` here; a share of the GreenPreferred jobs is elastic \
         (`spec.elastic`, from ⌈replicas / 2⌉ to 2 × replicas). They grow on renewable \
         headroom and shrink when it drops; each resize loses a minute of work. torchrun \
         restarts an elastic job's workers from their checkpoint at every resize, so an \
         elastic job is resumable: once shrinking (not below its minimum) does not close a \
         brown-out, it is suspended like an interruptible job (losing 5 minutes), with the \
         same slack rule. Most jobs of the trace have one replica (min 1), so shrinking alone \
         rarely helps: before elastic jobs could be suspended below their minimum, 100 % \
         elastic reached 79.8 % of the oracle in summer, 82.4 % in winter and 76.1 % with \
         plants at half size. The oracle runs a job at most at its submitted size; where it \
         bills every job's energy as renewable (summer and winter) it is an upper bound all \
         the same:\n\n\
         | scenario | GreenPreferred jobs elastic | renewable kWh | of oracle | renewable share \
         | deadline misses (feasible) | delay p95 | suspensions |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for o in outcomes {
        for (share, m) in &o.elastic {
            let _ = writeln!(
                md,
                "| {} | {:.0} % | {:.0} | {:.1} % | {:.1} % | {} ({}) | {:.1} h | {} |",
                o.scenario.title,
                100.0 * share,
                m.renewable_kwh,
                100.0 * m.fraction_of_oracle.unwrap_or(0.0),
                100.0 * m.renewable_share,
                m.deadline_misses,
                m.feasible_deadline_misses,
                m.delay_p95_s / 3600.0,
                m.suspensions.unwrap_or(0),
            );
        }
    }
    let _ = writeln!(
        md,
        "\n## Batteries\n\n\
         The headline runs again with a battery at each solar site: {BATTERY_HOURS} h of the \
         site's peak facility load (every GPU at full draw, × PUE), charging and discharging at \
         up to that load, 90 % round trip, 10 % floor, empty at the start. It charges from \
         the site's surplus only, and what it delivers is billed as renewable. The oracle \
         (no storage) is the one of the runs without batteries:\n\n\
         | scenario | renewable kWh without → with | gain | renewable share without → with \
         | of oracle | deadline misses (feasible) |\n|---|---:|---:|---:|---:|---:|"
    );
    for o in outcomes {
        let (before, after) = (&o.result.report.policies["verdant"], &o.battery);
        let _ = writeln!(
            md,
            "| {} | {:.0} → {:.0} | {:+.1} % | {:.1} % → {:.1} % | {:.1} % | {} ({}) |",
            o.scenario.title,
            before.renewable_kwh,
            after.renewable_kwh,
            100.0 * (after.renewable_kwh / before.renewable_kwh.max(f64::MIN_POSITIVE) - 1.0),
            100.0 * before.renewable_share,
            100.0 * after.renewable_share,
            100.0 * after.fraction_of_oracle.unwrap_or(0.0),
            after.deadline_misses,
            after.feasible_deadline_misses,
        );
    }
    md.push('\n');
    md.push_str(notes);
    md
}
