//! When a scheduling cycle can decide nothing new, so the periodic tick may skip it.
//!
//! The engine is a pure function of the snapshot (jobs, nodes, pods, sites, the assumed
//! placements), the measured power, the settings and the time. A queue that cannot move
//! (every GPU busy, 500 jobs waiting) would otherwise be re-decided at full cost every
//! `--cycle-seconds`. A skipped tick still counts as a cycle (`/livez`, the cycle
//! duration histogram), of its short duration.
//!
//! # Expected flow
//! Each tick computes the [`Fingerprint`] of the inputs (cheap: a hash of the jobs'
//! `resourceVersion`s, the topology's generation, the assumed placements). A full cycle
//! records it with the time its decisions may change by the clock alone ([`next_due_s`]).
//! A later tick with the same fingerprint before that time is skipped.
//!
//! # Guarantees
//! - Any change of a job (spec or status), of a pod, node or site in a field the caches
//!   keep, or of an assumed placement makes the next tick run in full.
//! - The clock wakes it too: a forecast step starting, a pending job's latest start, a
//!   deferral's end, a running job's expected end, a GreenOnly grace period ending, an
//!   assumed placement expiring; and whatever else the engine reads the clock for is
//!   caught within [`MAX_QUIET_S`].
//!
//! # Caveats
//! While the agents report measured power, the inputs change with every report: ticks
//! are never skipped then.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use verdant_core::placement::{self as engine, Action, Decision, JobState};
use verdant_crds::TrainingJob;

use crate::snapshot::Assumed;

/// The longest a cycle is skipped while nothing changes.
pub const MAX_QUIET_S: i64 = 60;

/// A hash of everything the cycle reads but the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// Of the jobs (in any order), the topology's generation and the assumed placements.
    pub fn of(
        jobs: &[Arc<TrainingJob>],
        topology_generation: u64,
        assumed: &HashMap<String, Assumed>,
    ) -> Self {
        // Summed, so the order of the cache's hash map does not matter.
        let mut sum = topology_generation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for job in jobs {
            let meta = &job.metadata;
            sum = sum.wrapping_add(hash(&(&meta.namespace, &meta.name, &meta.resource_version)));
        }
        for (id, placement) in assumed {
            sum = sum.wrapping_add(hash(&(id, &placement.nodes, placement.at_s)));
        }
        sum = sum.wrapping_add(hash(&(jobs.len(), assumed.len())));
        Fingerprint(sum)
    }
}

fn hash(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// What the last full cycle saw.
#[derive(Debug, Default)]
pub struct Quiet {
    last: Option<(Fingerprint, i64)>,
}

impl Quiet {
    /// Whether a tick at `now_s` with inputs `fingerprint` may be skipped.
    pub fn may_skip(&self, fingerprint: Fingerprint, now_s: i64) -> bool {
        self.last
            .is_some_and(|(seen, due_s)| seen == fingerprint && now_s < due_s)
    }

    /// A full cycle ran on `fingerprint`; its decisions hold until `due_s` unless the
    /// inputs change. `None`: the inputs change by themselves (measured power).
    pub fn ran(&mut self, fingerprint: Fingerprint, due_s: Option<i64>) {
        self.last = due_s.map(|due_s| (fingerprint, due_s));
    }
}

/// The first time after `snapshot.now_s` at which the engine could decide differently on
/// the same inputs, at most [`MAX_QUIET_S`] away.
pub fn next_due_s(
    snapshot: &engine::Snapshot,
    decisions: &[Decision],
    assumed: &HashMap<String, Assumed>,
    config: &engine::EngineConfig,
    assumed_ttl_s: i64,
) -> i64 {
    let now_s = snapshot.now_s;
    let supply_steps = snapshot
        .sites
        .iter()
        .flat_map(|site| site.supply.iter().map(|p| p.start_s));
    let grace_ends = snapshot.sites.iter().filter_map(|site| {
        site.headroom_negative_since_s
            .map(|since| since + config.green_only_grace_s)
    });
    let job_times = snapshot.jobs.iter().filter_map(|job| match &job.state {
        JobState::Pending | JobState::Suspended => job.latest_start_s,
        JobState::Running { started_s, .. } => {
            let duration_s = job
                .estimated_duration_s
                .unwrap_or(config.default_duration_s);
            Some(started_s + duration_s)
        }
    });
    let deferrals = decisions.iter().filter_map(|d| match d.action {
        Action::Defer { until_s, .. } => until_s,
        _ => None,
    });
    let expiries = assumed.values().map(|a| a.at_s + assumed_ttl_s);
    supply_steps
        .chain(grace_ends)
        .chain(job_times)
        .chain(deferrals)
        .chain(expiries)
        .filter(|&t| t > now_s)
        .fold(now_s + MAX_QUIET_S, i64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, version: &str) -> Arc<TrainingJob> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
                "spec": {"replicas": 1, "gpusPerReplica": 1,
                         "template": {"spec": {"containers": [{"name": "t", "image": "x"}]}}},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn any_change_of_a_job_the_topology_or_an_assumption_is_seen() {
        let none = HashMap::new();
        let jobs = [job("a", "1"), job("b", "7")];
        let base = Fingerprint::of(&jobs, 3, &none);
        let reversed = [jobs[1].clone(), jobs[0].clone()];
        assert_eq!(Fingerprint::of(&reversed, 3, &none), base, "order");
        assert_ne!(
            Fingerprint::of(&[job("a", "2"), job("b", "7")], 3, &none),
            base
        );
        assert_ne!(Fingerprint::of(&jobs[..1], 3, &none), base);
        assert_ne!(Fingerprint::of(&jobs, 4, &none), base);
        let assumed = HashMap::from([(
            "ns/a".to_owned(),
            Assumed {
                site: "s".into(),
                nodes: vec!["n1".into()],
                at_s: 10,
                reason: engine::Reason::PlacedGreen,
                message: String::new(),
            },
        )]);
        assert_ne!(Fingerprint::of(&jobs, 3, &assumed), base);
    }

    #[test]
    fn a_tick_is_skipped_only_while_nothing_changed_and_nothing_is_due() {
        let f = Fingerprint::of(&[job("a", "1")], 1, &HashMap::new());
        let g = Fingerprint::of(&[job("a", "2")], 1, &HashMap::new());
        let mut quiet = Quiet::default();
        assert!(!quiet.may_skip(f, 100), "never ran");
        quiet.ran(f, Some(130));
        assert!(quiet.may_skip(f, 129));
        assert!(!quiet.may_skip(f, 130), "due");
        assert!(!quiet.may_skip(g, 101), "changed");
        quiet.ran(f, None);
        assert!(!quiet.may_skip(f, 101), "measured power changes by itself");
    }

    #[test]
    fn the_clock_wakes_it_at_the_first_time_something_is_due() {
        let snapshot = |jobs: Vec<engine::Job>, supply_start_s: i64| engine::Snapshot {
            now_s: 1_000,
            sites: vec![engine::Site {
                name: "s".into(),
                pue: 1.2,
                grid_carbon_g_per_kwh: 400.0,
                supply: vec![
                    engine::SupplyPoint {
                        start_s: 0,
                        kw: 1.0,
                    },
                    engine::SupplyPoint {
                        start_s: supply_start_s,
                        kw: 2.0,
                    },
                ],
                base_load_kw: 0.0,
                headroom_negative_since_s: None,
                storage: Vec::new(),
            }],
            nodes: vec![],
            jobs,
        };
        let config = engine::EngineConfig::default();
        let none = HashMap::new();
        let due = |s: &engine::Snapshot| next_due_s(s, &[], &none, &config, 120);
        assert_eq!(
            due(&snapshot(vec![], 1_030)),
            1_030,
            "the next forecast step"
        );
        assert_eq!(
            due(&snapshot(vec![], 9_000)),
            1_000 + MAX_QUIET_S,
            "at most a minute"
        );
        let mut pending: engine::Job = serde_json::from_value(serde_json::json!({
            "id": "ns/a", "replicas": 1, "gpus_per_replica": 1, "state": "Pending",
            "policy": "Immediate", "min_renewable_fraction": 0.0, "interruptible": false,
            "power_cap_min_percent": null, "power_cap_percent": null, "priority": 0,
            "created_s": 0, "latest_start_s": 1_020, "estimated_duration_s": null,
            "measured_gpu_watts": null, "allowed_sites": [], "allowed_nodes": null,
        }))
        .unwrap();
        assert_eq!(
            due(&snapshot(vec![pending.clone()], 1_030)),
            1_020,
            "a latest start"
        );
        pending.latest_start_s = Some(900);
        assert_eq!(
            due(&snapshot(vec![pending], 1_030)),
            1_030,
            "a latest start already passed is no wake-up"
        );
    }
}
