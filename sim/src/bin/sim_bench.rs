//! `sim-bench`: times a simulation, the engine-driven policies and the oracle apart, and
//! prints a table of medians. Takes the `simulate` arguments plus `--runs N`.
//!
//! ```text
//! cargo run --release -p verdant-sim --bin sim-bench -- --runs 3 \
//!   --sites docs/evaluation/sites --trace sim/data/itp-cluster07.csv --from 2019-06-01 --out /tmp/x
//! ```

use std::time::Instant;

use clap::Parser;
use verdant_sim::PolicyKind;

#[derive(Parser)]
#[command(
    name = "sim-bench",
    about = "Times the simulator: policies but the oracle, and the oracle"
)]
struct Cli {
    /// Runs per measurement.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[command(flatten)]
    args: verdant_sim::cli::SimulateArgs,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let (experiment, setup) = verdant_sim::cli::prepare(&cli.args)?;
    let prepare_s = started.elapsed().as_secs_f64();
    let simulated: Vec<PolicyKind> = cli
        .args
        .policies
        .iter()
        .copied()
        .filter(|p| *p != PolicyKind::Oracle)
        .collect();
    let with_oracle = cli.args.policies.contains(&PolicyKind::Oracle);
    println!(
        "{} jobs, {} sites × {} GPUs, {} → {}, step {} s; {} run(s) each",
        experiment.jobs.len(),
        experiment.sites.len(),
        experiment.config.cluster.site_gpus(),
        setup.from,
        setup.horizon_end,
        experiment.config.step_s,
        cli.runs
    );
    println!("prepare (sites, weather, trace): {prepare_s:.2} s");
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    if !simulated.is_empty() {
        let mut all = Vec::new();
        let mut per_policy: Vec<Vec<f64>> = vec![Vec::new(); simulated.len()];
        for _ in 0..cli.runs {
            let t = Instant::now();
            let comparison = experiment.compare(&simulated, false)?;
            all.push(t.elapsed().as_secs_f64());
            for (i, p) in simulated.iter().enumerate() {
                per_policy[i].push(comparison.wall_s[p.name()]);
            }
        }
        let names: Vec<&str> = simulated.iter().map(|p| p.name()).collect();
        rows.push((format!("{} (in parallel)", names.join(" + ")), all));
        for (p, times) in simulated.iter().zip(per_policy) {
            rows.push((format!("  {p} (its thread)"), times));
        }
    }
    if with_oracle {
        let mut times = Vec::new();
        let mut size = None;
        for _ in 0..cli.runs {
            let t = Instant::now();
            let comparison = experiment.compare(&[PolicyKind::Oracle], false)?;
            times.push(t.elapsed().as_secs_f64());
            size = comparison.oracle.map(|o| (o.variables, o.constraints));
        }
        let label = match size {
            Some((v, c)) => format!("oracle (LP: {v} variables, {c} constraints)"),
            None => "oracle".to_owned(),
        };
        rows.push((label, times));
    }
    println!("\n| measurement | median s | min s | max s |");
    println!("|---|---:|---:|---:|");
    for (label, times) in rows {
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        println!("| {label} | {:.2} | {min:.2} | {max:.2} |", median(times));
    }
    Ok(())
}
