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

/// CPU seconds this process has used (all threads, user + system), from /proc/self/stat
/// (Linux; clock ticks of 1/100 s); `None` elsewhere. The machine is shared, so wall
/// time alone says little.
fn cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
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
    let mut rows: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    if !simulated.is_empty() {
        let (mut all, mut all_cpu) = (Vec::new(), Vec::new());
        let mut per_policy: Vec<Vec<f64>> = vec![Vec::new(); simulated.len()];
        for _ in 0..cli.runs {
            let (t, c) = (Instant::now(), cpu_s());
            let comparison = experiment.compare(&simulated, false)?;
            all.push(t.elapsed().as_secs_f64());
            all_cpu.push(cpu_s().zip(c).map_or(f64::NAN, |(b, a)| b - a));
            for (i, p) in simulated.iter().enumerate() {
                per_policy[i].push(comparison.wall_s[p.name()]);
            }
        }
        let names: Vec<&str> = simulated.iter().map(|p| p.name()).collect();
        rows.push((format!("{} (in parallel)", names.join(" + ")), all, all_cpu));
        for (p, times) in simulated.iter().zip(per_policy) {
            rows.push((format!("  {p} (its thread)"), times, Vec::new()));
        }
    }
    if with_oracle {
        let (mut times, mut cpu) = (Vec::new(), Vec::new());
        let mut size = None;
        for _ in 0..cli.runs {
            let (t, c) = (Instant::now(), cpu_s());
            let comparison = experiment.compare(&[PolicyKind::Oracle], false)?;
            times.push(t.elapsed().as_secs_f64());
            cpu.push(cpu_s().zip(c).map_or(f64::NAN, |(b, a)| b - a));
            size = comparison.oracle.map(|o| (o.arcs, o.nodes));
        }
        let label = match size {
            Some((a, n)) => format!("oracle (LP as a flow: {a} arcs, {n} nodes)"),
            None => "oracle".to_owned(),
        };
        rows.push((label, times, cpu));
    }
    println!("\n| measurement | median wall s | min | max | median CPU s |");
    println!("|---|---:|---:|---:|---:|");
    for (label, times, cpu) in rows {
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        let cpu = if cpu.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.2}", median(cpu))
        };
        println!(
            "| {label} | {:.2} | {min:.2} | {max:.2} | {cpu} |",
            median(times)
        );
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("\nload average after the runs: {}", load.trim());
    }
    Ok(())
}
