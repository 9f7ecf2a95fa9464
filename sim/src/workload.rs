//! From a trace to the simulated TrainingJobs: a window of the trace, scaled to the
//! cluster's size, each job turned into a gang with a seeded energy policy and deadline.
//!
//! # Scaling
//! The trace window `[offset, offset + days)` is mapped onto `[from, from + days)`. To
//! scale the load, whole further windows of the trace are laid over the first one (each
//! job kept with a probability): a factor of 1.5 keeps every job of the first window and
//! half the jobs of the next one. `--target-utilization U` picks the factor whose offered
//! load (GPU-seconds requested / GPU-seconds of the cluster over the window) is U. Arrival
//! patterns, job sizes and durations stay those of the trace.
//!
//! # Jobs
//! - `g` GPUs become `1 × g` when `g ≤ gpus_per_node`, else `(g / k) × k` with `k` the
//!   largest divisor of `g` not above `gpus_per_node` (64 → 8 × 8, 12 → 2 × 6).
//! - Jobs larger than the largest site are dropped (and counted).
//! - Each job draws, from its own seeded stream, an energy policy by the mix weights, a
//!   slack from the slack choices, and (with the given probabilities) power capping and,
//!   for GreenPreferred jobs, interruptibility (checkpointing).
//!   Immediate and GreenPreferred jobs get `deadline = submit + duration × (1 + slack)`
//!   (the added delay is at least `min_slack_s`); GreenOnly jobs have no deadline: they
//!   run on renewable power only and are interruptible.

use serde::Serialize;
use verdant_core::placement::Policy;

use crate::trace::TraceJob;

/// Weights of the energy policies the trace's jobs are given.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PolicyMix {
    pub immediate: f64,
    pub green_preferred: f64,
    pub green_only: f64,
}

impl Default for PolicyMix {
    fn default() -> Self {
        Self {
            immediate: 0.1,
            green_preferred: 0.8,
            green_only: 0.1,
        }
    }
}

/// How much of the trace to replay.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadScale {
    /// Windows of the trace laid over each other: 1 = the trace as it is.
    Factor(f64),
    /// The factor that makes the offered load this share of the cluster's GPUs.
    TargetUtilization(f64),
}

/// How trace jobs become simulated TrainingJobs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadConfig {
    /// Unix seconds the trace window is mapped to (the simulation start).
    pub start_s: i64,
    /// Length of the window, seconds.
    pub window_s: i64,
    /// Trace second mapped to `start_s`.
    pub trace_offset_s: i64,
    pub load: LoadScale,
    /// GPUs in the whole cluster, for the offered load.
    pub cluster_gpus: u64,
    /// GPUs of the largest site: bigger gangs are dropped.
    pub max_gang_gpus: u32,
    pub gpus_per_node: u32,
    pub mix: PolicyMix,
    /// Slack factors drawn uniformly: deadline = submit + duration × (1 + slack).
    pub slack_choices: Vec<f64>,
    /// The least added delay a deadline allows, seconds.
    pub min_slack_s: i64,
    /// GreenPreferred threshold.
    pub min_renewable_fraction: f64,
    /// Share of GreenPreferred jobs that checkpoint and may be suspended (GreenOnly jobs
    /// always may).
    pub interruptible_fraction: f64,
    /// Share of GreenPreferred jobs that are elastic: from ⌈replicas / 2⌉ to 2 × replicas
    /// (at most what the largest site holds).
    pub elastic_fraction: f64,
    /// Share of jobs that allow power capping, down to `power_cap_min_percent`.
    pub power_capping_fraction: f64,
    pub power_cap_min_percent: u32,
    pub seed: u64,
}

/// A TrainingJob of the simulation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimJob {
    /// `namespace/name`: the trace name and job id.
    pub id: String,
    pub submit_s: i64,
    /// Run time at full power, seconds.
    pub duration_s: i64,
    pub replicas: u32,
    pub gpus_per_replica: u32,
    #[serde(serialize_with = "serialize_policy")]
    pub policy: Policy,
    pub min_renewable_fraction: f64,
    pub interruptible: bool,
    pub power_cap_min_percent: Option<u32>,
    /// When the job must be finished; `None` for GreenOnly jobs.
    pub deadline_s: Option<i64>,
    /// The replicas an elastic job may run with, `(min, max)`; `replicas` is its start.
    pub elastic: Option<(u32, u32)>,
}

fn serialize_policy<S: serde::Serializer>(policy: &Policy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match policy {
        Policy::Immediate => "Immediate",
        Policy::GreenPreferred => "GreenPreferred",
        Policy::GreenOnly => "GreenOnly",
    })
}

impl SimJob {
    pub fn gpus(&self) -> u32 {
        self.replicas * self.gpus_per_replica
    }

    /// How much faster than at `replicas` the job may run: `max / replicas` for an
    /// elastic job, else 1.
    pub fn max_speedup(&self) -> f64 {
        match self.elastic {
            Some((_, max)) => f64::from(max) / f64::from(self.replicas.max(1)),
            None => 1.0,
        }
    }

    /// The delay the deadline allows beyond running at once, seconds.
    pub fn allowed_delay_s(&self) -> Option<i64> {
        self.deadline_s
            .map(|d| (d - self.submit_s - self.duration_s).max(0))
    }
}

/// What [`build_workload`] made of the trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Jobs by submission time (then id).
    pub jobs: Vec<SimJob>,
    /// The factor applied (windows laid over each other).
    pub scale_factor: f64,
    /// Requested GPU-seconds of the jobs kept / GPU-seconds of the cluster over the window.
    pub offered_utilization: f64,
    /// Jobs dropped because no site has that many GPUs.
    pub dropped_too_large: usize,
}

/// Builds the simulated jobs from a trace.
pub fn build_workload(trace: &[TraceJob], config: &WorkloadConfig) -> Workload {
    let window_s = config.window_s.max(1);
    let trace_end_s = trace.iter().map(|j| j.submit_s + 1).max().unwrap_or(1);
    let capacity_gpu_s = (config.cluster_gpus.max(1) as f64) * window_s as f64;
    let windows: Vec<Vec<(usize, &TraceJob)>> = (0..64)
        .map(|i| {
            let begin_s = (config.trace_offset_s + i * window_s).rem_euclid(trace_end_s);
            trace
                .iter()
                .enumerate()
                .filter(|(_, j)| j.submit_s >= begin_s && j.submit_s < begin_s + window_s)
                .collect()
        })
        .collect();
    let fits = |j: &TraceJob| j.gpus <= config.max_gang_gpus;
    let offered = |w: &[(usize, &TraceJob)]| {
        w.iter()
            .filter(|(_, j)| fits(j))
            .map(|(_, j)| f64::from(j.gpus) * j.duration_s as f64)
            .sum::<f64>()
            / capacity_gpu_s
    };
    let factor = match config.load {
        LoadScale::Factor(f) => f.clamp(0.0, windows.len() as f64),
        LoadScale::TargetUtilization(target) => {
            let mut reached = 0.0;
            let mut factor = windows.len() as f64;
            for (i, window) in windows.iter().enumerate() {
                let load = offered(window);
                if load > 0.0 && reached + load >= target {
                    factor = i as f64 + (target - reached) / load;
                    break;
                }
                reached += load;
            }
            factor.max(0.0)
        }
    };

    let mut jobs = Vec::new();
    let mut dropped_too_large = 0;
    let mut offered_gpu_s = 0.0;
    for (i, window) in windows.iter().enumerate() {
        let keep_share = (factor - i as f64).clamp(0.0, 1.0);
        if keep_share <= 0.0 {
            break;
        }
        let begin_s = (config.trace_offset_s + i as i64 * window_s).rem_euclid(trace_end_s);
        for &(index, trace_job) in window {
            let mut rng = SplitMix64::new(config.seed, i as u64, index as u64);
            if keep_share < 1.0 && rng.next_f64() >= keep_share {
                continue;
            }
            if !fits(trace_job) {
                dropped_too_large += 1;
                continue;
            }
            let job = sim_job(trace_job, i, begin_s, config, &mut rng);
            offered_gpu_s += f64::from(job.gpus()) * job.duration_s as f64;
            jobs.push(job);
        }
    }
    jobs.sort_by(|a, b| a.submit_s.cmp(&b.submit_s).then_with(|| a.id.cmp(&b.id)));
    Workload {
        jobs,
        scale_factor: factor,
        offered_utilization: offered_gpu_s / capacity_gpu_s,
        dropped_too_large,
    }
}

fn sim_job(
    trace_job: &TraceJob,
    window: usize,
    window_begin_s: i64,
    config: &WorkloadConfig,
    rng: &mut SplitMix64,
) -> SimJob {
    let (replicas, gpus_per_replica) = gang_shape(trace_job.gpus, config.gpus_per_node);
    let mix = config.mix;
    let total = (mix.immediate + mix.green_preferred + mix.green_only).max(f64::MIN_POSITIVE);
    let draw = rng.next_f64() * total;
    let policy = if draw < mix.immediate {
        Policy::Immediate
    } else if draw < mix.immediate + mix.green_preferred {
        Policy::GreenPreferred
    } else {
        Policy::GreenOnly
    };
    let slack = if config.slack_choices.is_empty() {
        0.0
    } else {
        let i = (rng.next_u64() % config.slack_choices.len() as u64) as usize;
        config.slack_choices[i].max(0.0)
    };
    let capping = rng.next_f64() < config.power_capping_fraction;
    let interruptible = match policy {
        Policy::GreenOnly => true,
        Policy::GreenPreferred => rng.next_f64() < config.interruptible_fraction,
        Policy::Immediate => false,
    };
    // Drawn last, so that the other draws do not depend on the elastic share.
    let elastic_draw = rng.next_f64();
    let most_replicas = (config.max_gang_gpus / gpus_per_replica.max(1)).max(replicas);
    let elastic = (policy == Policy::GreenPreferred && elastic_draw < config.elastic_fraction)
        .then(|| (replicas.div_ceil(2), (2 * replicas).min(most_replicas)));
    let submit_s = config.start_s + (trace_job.submit_s - window_begin_s);
    let duration_s = trace_job.duration_s;
    let allowed_delay_s = ((duration_s as f64 * slack).round() as i64).max(config.min_slack_s);
    let suffix = if window == 0 {
        String::new()
    } else {
        format!("-w{window}")
    };
    SimJob {
        id: format!("trace/{}{suffix}", trace_job.id),
        submit_s,
        duration_s,
        replicas,
        gpus_per_replica,
        policy,
        min_renewable_fraction: config.min_renewable_fraction,
        interruptible,
        power_cap_min_percent: capping.then_some(config.power_cap_min_percent),
        deadline_s: (policy != Policy::GreenOnly)
            .then_some(submit_s + duration_s + allowed_delay_s),
        elastic,
    }
}

/// `replicas × gpus_per_replica` for a job of `gpus` GPUs.
pub fn gang_shape(gpus: u32, gpus_per_node: u32) -> (u32, u32) {
    let per_node = gpus_per_node.max(1);
    if gpus <= per_node {
        return (1, gpus);
    }
    let k = (1..=per_node)
        .rev()
        .find(|k| gpus.is_multiple_of(*k))
        .unwrap_or(1);
    (gpus / k, k)
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fixed generator, so that a seed means
/// the same jobs on every platform and every version of the dependencies.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream for one `(seed, a, b)`, independent of the order streams are made in.
    pub fn new(seed: u64, a: u64, b: u64) -> Self {
        let mut s = Self(seed ^ 0x9E37_79B9_7F4A_7C15);
        let x = s.next_u64() ^ a.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut s = Self(x);
        let y = s.next_u64() ^ b.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        Self(y)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkloadConfig {
        WorkloadConfig {
            start_s: 1_000_000,
            window_s: 1000,
            trace_offset_s: 0,
            load: LoadScale::Factor(1.0),
            cluster_gpus: 16,
            max_gang_gpus: 16,
            gpus_per_node: 8,
            mix: PolicyMix::default(),
            slack_choices: vec![0.5, 1.0],
            min_slack_s: 0,
            min_renewable_fraction: 0.8,
            interruptible_fraction: 0.0,
            elastic_fraction: 0.0,
            power_capping_fraction: 0.0,
            power_cap_min_percent: 60,
            seed: 7,
        }
    }

    fn trace() -> Vec<TraceJob> {
        (0..40)
            .map(|i| TraceJob {
                id: format!("j{i}"),
                submit_s: i * 50,
                duration_s: 100,
                gpus: [1, 2, 8, 12, 64][i as usize % 5],
            })
            .collect()
    }

    #[test]
    fn gangs_split_on_node_boundaries() {
        assert_eq!(gang_shape(1, 8), (1, 1));
        assert_eq!(gang_shape(8, 8), (1, 8));
        assert_eq!(gang_shape(64, 8), (8, 8));
        assert_eq!(gang_shape(12, 8), (2, 6));
        assert_eq!(gang_shape(13, 8), (13, 1));
    }

    #[test]
    fn window_is_mapped_to_the_start_and_big_gangs_are_dropped() {
        let w = build_workload(&trace(), &config());
        // Window [0, 1000): jobs 0..20; one in five asks for 64 GPUs > 16.
        assert_eq!(w.dropped_too_large, 4);
        assert_eq!(w.jobs.len(), 16);
        assert_eq!(w.jobs[0].submit_s, 1_000_000);
        assert!(w.jobs.iter().all(|j| j.gpus() <= 16));
        for job in &w.jobs {
            match job.policy {
                Policy::GreenOnly => assert!(job.deadline_s.is_none() && job.interruptible),
                _ => {
                    let delay = job.allowed_delay_s().unwrap();
                    assert!(delay == 50 || delay == 100, "{delay}");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_jobs_other_seed_other_mix() {
        let a = build_workload(&trace(), &config());
        let b = build_workload(&trace(), &config());
        assert_eq!(a, b);
        let c = build_workload(
            &trace(),
            &WorkloadConfig {
                seed: 8,
                ..config()
            },
        );
        assert_ne!(
            a.jobs.iter().map(|j| j.policy).collect::<Vec<_>>(),
            c.jobs.iter().map(|j| j.policy).collect::<Vec<_>>()
        );
    }

    #[test]
    fn elastic_jobs_are_green_preferred_from_half_to_twice_their_replicas() {
        let none = build_workload(&trace(), &config());
        assert!(none.jobs.iter().all(|j| j.elastic.is_none()));
        let all = build_workload(
            &trace(),
            &WorkloadConfig {
                elastic_fraction: 1.0,
                ..config()
            },
        );
        for (plain, elastic) in none.jobs.iter().zip(&all.jobs) {
            // The elastic draw comes last: every other draw is unchanged.
            assert_eq!(plain.policy, elastic.policy);
            assert_eq!(plain.deadline_s, elastic.deadline_s);
            match elastic.policy {
                Policy::GreenPreferred => {
                    let (min, max) = elastic.elastic.expect("every GreenPreferred job");
                    assert_eq!(min, elastic.replicas.div_ceil(2));
                    assert!(max >= elastic.replicas);
                    assert!(max <= 2 * elastic.replicas);
                    assert!(
                        max * elastic.gpus_per_replica <= 16,
                        "fits the largest site"
                    );
                }
                _ => assert_eq!(elastic.elastic, None),
            }
        }
        assert!(all.jobs.iter().any(|j| j.elastic.is_some()));
    }

    #[test]
    fn target_utilization_lays_windows_over_each_other() {
        // One window offers 16 jobs' GPU-seconds; ask for 1.5 windows' worth.
        let one = build_workload(&trace(), &config()).offered_utilization;
        let w = build_workload(
            &trace(),
            &WorkloadConfig {
                load: LoadScale::TargetUtilization(one * 1.5),
                ..config()
            },
        );
        assert!((w.scale_factor - 1.5).abs() < 1e-9, "{}", w.scale_factor);
        assert!(w.jobs.len() > 16 && w.jobs.len() < 32, "{}", w.jobs.len());
        let ids: std::collections::BTreeSet<_> = w.jobs.iter().map(|j| &j.id).collect();
        assert_eq!(ids.len(), w.jobs.len(), "ids stay unique across windows");
    }
}
