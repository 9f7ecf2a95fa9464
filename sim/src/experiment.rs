//! Runs several policies over the same sites and jobs and compares them.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cluster::PolicyKind;
use crate::error::SimError;
use crate::metrics::{PolicyMetrics, policy_metrics};
use crate::oracle::{LpSize, solve_oracle};
use crate::outcome::RunOutcome;
use crate::report::OracleInfo;
use crate::simulate::{SimConfig, simulate};
use crate::sites::SimSite;
use crate::workload::SimJob;

/// A policy's run (with the LP's size for the oracle), or why it failed.
type PolicyResult = Result<(RunOutcome, Option<LpSize>), SimError>;

/// The inputs every policy shares.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub sites: Vec<SimSite>,
    /// By submission time.
    pub jobs: Vec<SimJob>,
    pub config: SimConfig,
}

/// The runs and their metrics, in the order the policies were asked for.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub runs: Vec<RunOutcome>,
    pub metrics: BTreeMap<String, PolicyMetrics>,
    pub oracle: Option<OracleInfo>,
    /// Seconds each policy took, by name (not part of the report: not deterministic).
    pub wall_s: BTreeMap<String, f64>,
}

impl Experiment {
    /// Runs `policies` (each at most once, in parallel threads) and computes their metrics.
    /// With `show_progress`, progress bars go to stderr.
    pub fn compare(
        &self,
        policies: &[PolicyKind],
        show_progress: bool,
    ) -> Result<Comparison, SimError> {
        let mut unique: Vec<PolicyKind> = Vec::new();
        for p in policies {
            if !unique.contains(p) {
                unique.push(*p);
            }
        }
        let bars = MultiProgress::with_draw_target(if show_progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let steps = ((self.config.end_s - self.config.start_s) as f64
            / self.config.step_s.max(1) as f64)
            .ceil() as u64;
        let results: Vec<(PolicyResult, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = unique
                    .iter()
                    .map(|&policy| {
                        let bar = bars.add(if policy == PolicyKind::Oracle {
                            let bar = ProgressBar::new_spinner().with_style(
                                ProgressStyle::with_template(
                                    "{spinner} {prefix:>15} {msg} {elapsed}",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                            );
                            bar.enable_steady_tick(Duration::from_millis(200));
                            bar.set_message("solving the linear program");
                            bar
                        } else {
                            ProgressBar::new(steps).with_style(
                                ProgressStyle::with_template(
                                    "{prefix:>15} [{bar:40}] {percent:>3}% simulated, {elapsed} (eta {eta})",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_bar())
                                .progress_chars("=> "),
                            )
                        });
                        bar.set_prefix(policy.name());
                        scope.spawn(move || {
                            let started = std::time::Instant::now();
                            let result = match policy {
                                PolicyKind::Oracle => {
                                    let (outcome, size) =
                                        solve_oracle(&self.sites, &self.jobs, &self.config);
                                    Ok((outcome, Some(size)))
                                }
                                _ => Ok((
                                    simulate(policy, &self.sites, &self.jobs, &self.config, |n| {
                                        if n % 64 == 0 {
                                            bar.set_position(n);
                                        }
                                    }),
                                    None,
                                )),
                            };
                            bar.finish_with_message("done");
                            (result, started.elapsed().as_secs_f64())
                        })
                    })
                    .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (
                            Err(SimError::Config("a simulation thread panicked".into())),
                            0.0,
                        )
                    })
                })
                .collect()
        });
        let mut runs = Vec::with_capacity(results.len());
        let mut wall_s = BTreeMap::new();
        let mut lp_size = None;
        for ((result, seconds), policy) in results.into_iter().zip(&unique) {
            let (run, size) = result?;
            if size.is_some() {
                lp_size = size;
            }
            wall_s.insert(policy.name().to_owned(), seconds);
            runs.push(run);
        }
        let oracle_run = runs.iter().find(|r| r.policy == PolicyKind::Oracle);
        let feasible: Vec<bool> =
            match oracle_run.and_then(|r| r.deadline_met_by_relaxation.as_ref()) {
                Some(met) => met.clone(),
                None => vec![true; self.jobs.len()],
            };
        let oracle_renewable_kwh = oracle_run.map(|r| r.total().renewable_kwh());
        let oracle = oracle_run
            .zip(lp_size)
            .map(|(r, size)| OracleInfo::new(r.lp_bound_kwh.unwrap_or(0.0), size));
        let metrics = runs
            .iter()
            .map(|run| {
                (
                    run.policy.name().to_owned(),
                    policy_metrics(
                        run,
                        &self.jobs,
                        &self.config,
                        &feasible,
                        oracle_renewable_kwh,
                    ),
                )
            })
            .collect();
        Ok(Comparison {
            runs,
            metrics,
            oracle,
            wall_s,
        })
    }
}
