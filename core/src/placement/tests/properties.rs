//! Invariants over random snapshots: whatever the input, the engine never over-commits a
//! node, never places part of a gang, never spans sites, never places a job twice, and
//! answers every job exactly once, deterministically.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const SITES: [&str; 3] = ["s0", "s1", "s2"];

fn arb_site(name: &'static str) -> impl Strategy<Value = Site> {
    (
        prop::collection::vec(0.0..40.0_f64, 0..6),
        0.0..10.0_f64,
        1.0..1.5_f64,
        prop::option::of(-3 * HOUR..=0),
    )
        .prop_map(move |(kws, base_load_kw, pue, since)| {
            let mut s = site(name, &kws);
            s.base_load_kw = base_load_kw;
            s.pue = pue;
            s.headroom_negative_since_s = since.map(|d| NOW + d);
            s
        })
}

fn arb_node() -> impl Strategy<Value = Node> {
    (
        0..5usize,
        0..=8u32,
        0..=10u32,
        prop::bool::weighted(0.85),
        prop::bool::ANY,
    )
        .prop_map(|(site_choice, gpus, used, schedulable, other_model)| Node {
            name: format!("n-{site_choice}-{gpus}-{used}"),
            site: match site_choice {
                0..=2 => Some(SITES[site_choice].to_string()),
                3 => Some("ghost".to_string()),
                _ => None,
            },
            gpu_model: if other_model {
                "A100".into()
            } else {
                "H100".into()
            },
            gpus_allocatable: gpus,
            gpus_used: used,
            schedulable,
        })
}

#[derive(Clone, Debug)]
struct JobSeed {
    replicas: u32,
    gpus: u32,
    policy: Policy,
    state: u8,
    priority: i32,
    age_s: i64,
    latest_s: Option<i64>,
    duration_s: Option<i64>,
    min_fraction: f64,
    interruptible: bool,
    cap_min: Option<u32>,
    cap_now: Option<u32>,
    sites: Vec<usize>,
    nodes: Option<Vec<u32>>,
    run_site: usize,
    run_nodes: Vec<u32>,
}

fn arb_job_seed() -> impl Strategy<Value = JobSeed> {
    let shape = (
        prop_oneof![1 => Just(0u32), 8 => 1..=4u32],
        prop_oneof![1 => Just(0u32), 8 => 1..=8u32],
        prop_oneof![
            Just(Policy::Immediate),
            Just(Policy::GreenPreferred),
            Just(Policy::GreenOnly)
        ],
        0..3u8,
        0..3i32,
        0..4 * HOUR,
    );
    let timing = (
        prop::option::of(-HOUR..6 * HOUR),
        prop::option::of(60..5 * HOUR),
        0.0..=1.0_f64,
        prop::bool::ANY,
        prop::option::of(30..=100u32),
        prop::option::of(30..=100u32),
    );
    let placement = (
        prop::collection::vec(0..4usize, 0..3),
        prop::option::of(prop::collection::vec(0..14u32, 0..8)),
        0..4usize,
        prop::collection::vec(0..14u32, 0..4),
    );
    (shape, timing, placement).prop_map(|(shape, timing, placement)| JobSeed {
        replicas: shape.0,
        gpus: shape.1,
        policy: shape.2,
        state: shape.3,
        priority: shape.4,
        age_s: shape.5,
        latest_s: timing.0,
        duration_s: timing.1,
        min_fraction: timing.2,
        interruptible: timing.3,
        cap_min: timing.4,
        cap_now: timing.5,
        sites: placement.0,
        nodes: placement.1,
        run_site: placement.2,
        run_nodes: placement.3,
    })
}

fn build_job(i: usize, seed: JobSeed) -> Job {
    let mut j = job(
        &format!("ns/j{i:02}"),
        seed.replicas,
        seed.gpus,
        seed.policy,
    );
    j.priority = seed.priority;
    j.created_s = NOW - seed.age_s;
    j.latest_start_s = seed.latest_s.map(|d| NOW + d);
    j.estimated_duration_s = seed.duration_s;
    j.min_renewable_fraction = seed.min_fraction;
    j.interruptible = seed.interruptible;
    j.power_cap_min_percent = seed.cap_min;
    j.allowed_sites = seed
        .sites
        .iter()
        .map(|&s| SITES.get(s).copied().unwrap_or("ghost").to_string())
        .collect();
    j.allowed_nodes = seed.nodes;
    if seed.priority == 2 {
        j.elastic = Some(Elastic {
            min_replicas: seed.replicas.div_ceil(2).max(1),
            max_replicas: seed.replicas * 2,
            last_resize_s: Some(NOW - seed.age_s / 2),
        });
    }
    j.state = match seed.state {
        0 => JobState::Pending,
        1 => JobState::Suspended,
        _ => {
            j.power_cap_percent = seed.cap_now;
            let mut nodes = seed.run_nodes;
            nodes.resize(seed.replicas as usize, 0);
            JobState::Running {
                site: SITES
                    .get(seed.run_site)
                    .copied()
                    .unwrap_or("ghost")
                    .to_string(),
                nodes,
                started_s: NOW - seed.age_s,
            }
        }
    };
    j
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    (
        (arb_site(SITES[0]), arb_site(SITES[1]), arb_site(SITES[2])),
        1..=3usize,
        prop::collection::vec(arb_node(), 0..14),
        prop::collection::vec(arb_job_seed(), 0..12),
    )
        .prop_map(|(sites, site_count, nodes, seeds)| {
            let sites = [sites.0, sites.1, sites.2]
                .into_iter()
                .take(site_count)
                .collect();
            let jobs = seeds
                .into_iter()
                .enumerate()
                .map(|(i, s)| build_job(i, s))
                .collect();
            snapshot(sites, nodes, jobs)
        })
}

fn check_invariants(snap: &Snapshot, decisions: &[Decision]) -> Result<(), TestCaseError> {
    prop_assert_eq!(decisions.len(), snap.jobs.len());
    let mut placed_gpus: BTreeMap<u32, u64> = BTreeMap::new();
    let mut placed_jobs = BTreeSet::new();
    for (d, j) in decisions.iter().zip(&snap.jobs) {
        prop_assert_eq!(&d.job, &j.id);
        let is_running = matches!(j.state, JobState::Running { .. });
        match &d.action {
            Action::Place {
                site,
                nodes,
                expected_renewable_fraction,
            } => {
                prop_assert!(!is_running, "running job {} placed", j.id);
                prop_assert!(placed_jobs.insert(j.id.clone()), "{} placed twice", j.id);
                prop_assert!((0.0..=1.0).contains(expected_renewable_fraction));
                prop_assert_eq!(
                    nodes.len(),
                    j.replicas as usize,
                    "partial gang for {}",
                    j.id
                );
                prop_assert!(snap.sites.iter().any(|s| &s.name == site));
                prop_assert!(j.allowed_sites.is_empty() || j.allowed_sites.contains(site));
                for &n in nodes {
                    let node = snap.nodes.get(n as usize);
                    prop_assert!(node.is_some(), "unknown node {}", n);
                    let node = node.unwrap();
                    prop_assert!(node.schedulable, "unschedulable node {}", n);
                    prop_assert_eq!(
                        node.site.as_deref(),
                        Some(site.as_str()),
                        "gang spans sites"
                    );
                    if let Some(allowed) = &j.allowed_nodes {
                        prop_assert!(allowed.contains(&n), "node {} not allowed for {}", n, j.id);
                    }
                    *placed_gpus.entry(n).or_default() += u64::from(j.gpus_per_replica);
                }
                prop_assert!(matches!(
                    d.reason,
                    Reason::PlacedImmediate
                        | Reason::PlacedGreen
                        | Reason::PlacedAtLatestStart
                        | Reason::PlacedBestAvailable
                        | Reason::Resumed
                ));
            }
            Action::Defer {
                expected_renewable_fraction,
                ..
            } => {
                prop_assert!(!is_running);
                prop_assert!((0.0..=1.0).contains(expected_renewable_fraction));
                prop_assert!(matches!(
                    d.reason,
                    Reason::DeferredForRenewables
                        | Reason::DeferredForBetterWindow
                        | Reason::NoGreenWindowInForecast
                ));
            }
            Action::Wait => {
                prop_assert!(!is_running);
                prop_assert!(matches!(
                    d.reason,
                    Reason::WaitingForCapacity
                        | Reason::WaitingForGreenCapacity
                        | Reason::ReservedForHeadOfQueue
                        | Reason::Unschedulable
                ));
            }
            Action::Suspend => {
                prop_assert!(is_running && j.resumable());
                prop_assert!(
                    j.policy == Policy::GreenOnly
                        || (j.policy == Policy::GreenPreferred
                            && j.latest_start_s.is_some_and(|t| t - snap.now_s >= 3600))
                );
                prop_assert!(matches!(
                    d.reason,
                    Reason::Suspended | Reason::SuspendedForRenewables
                ));
            }
            Action::PowerCap { percent } => {
                prop_assert!(is_running);
                prop_assert!(
                    j.power_cap_min_percent
                        .is_some_and(|min| *percent >= min && *percent <= 100)
                );
                prop_assert_eq!(d.reason, Reason::PowerCapped);
            }
            Action::Uncap => {
                prop_assert!(is_running);
                prop_assert_eq!(d.reason, Reason::PowerUncapped);
            }
            Action::Resize {
                site: resized_at,
                nodes,
            } => {
                let JobState::Running {
                    site,
                    nodes: running,
                    ..
                } = &j.state
                else {
                    panic!("{} resized while not running", j.id);
                };
                prop_assert_eq!(resized_at, site);
                let elastic = j.elastic.expect("only elastic jobs are resized");
                prop_assert!(nodes.len() as u32 >= elastic.min_replicas.max(1));
                prop_assert!(nodes.len() as u32 <= elastic.max_replicas);
                prop_assert!(nodes.len() != running.len());
                let kept = nodes.len().min(running.len());
                prop_assert_eq!(
                    &nodes[..kept],
                    &running[..kept],
                    "replica 0.. keep their nodes"
                );
                for &n in &nodes[kept..] {
                    let node = &snap.nodes[n as usize];
                    prop_assert!(node.schedulable);
                    prop_assert_eq!(node.site.as_deref(), Some(site.as_str()), "grown off-site");
                    if let Some(allowed) = &j.allowed_nodes {
                        prop_assert!(allowed.contains(&n));
                    }
                    *placed_gpus.entry(n).or_default() += u64::from(j.gpus_per_replica);
                }
                prop_assert!(matches!(d.reason, Reason::ScaledUp | Reason::ScaledDown));
            }
            Action::Keep => {
                prop_assert!(is_running);
                prop_assert_eq!(d.reason, Reason::Running);
            }
        }
    }
    for (n, gpus) in placed_gpus {
        let node = &snap.nodes[n as usize];
        let free = node.gpus_allocatable.saturating_sub(node.gpus_used);
        prop_assert!(
            gpus <= u64::from(free),
            "node {} over-committed: {} > {} free",
            n,
            gpus,
            free
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_over_commits_splits_or_duplicates(snap in arb_snapshot()) {
        let decisions = run_cycle(&snap, &config());
        check_invariants(&snap, &decisions)?;
    }

    #[test]
    fn decisions_do_not_depend_on_job_order_or_repetition(snap in arb_snapshot()) {
        let decisions = run_cycle(&snap, &config());
        prop_assert_eq!(&decisions, &run_cycle(&snap, &config()));
        let mut reversed = snap.clone();
        reversed.jobs.reverse();
        let mut again = run_cycle(&reversed, &config());
        again.reverse();
        prop_assert_eq!(decisions, again);
    }
}
