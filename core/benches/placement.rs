//! One placement cycle at fleet scale: 5 sites × 1,000 nodes × 8 GPUs, 600 running jobs,
//! 2,000 pending gangs from 1×1 to 16×8, 48 hourly forecast points per site.
//!
//! `cargo bench -p verdant-core --bench placement -- --warm-up-time 1 --measurement-time 5 --sample-size 10`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use verdant_core::placement::{
    Action, EngineConfig, Job, JobState, Node, Policy, Site, Snapshot, SupplyPoint, run_cycle,
};

/// 2026-06-21 08:00 UTC.
const NOW_S: i64 = 1_782_028_800;
const HOUR_S: i64 = 3600;
const SITES: [&str; 5] = ["solar-a", "solar-b", "wind-c", "wind-d", "hybrid-e"];
const NODES_PER_SITE: usize = 1000;
const GPUS_PER_NODE: u32 = 8;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn forecast(rng: &mut Rng, site: usize) -> Vec<SupplyPoint> {
    (0..48)
        .map(|h| {
            let hour_of_day = (8 + h) % 24;
            let solar = (std::f64::consts::PI * (hour_of_day as f64 - 6.0) / 12.0)
                .sin()
                .max(0.0);
            let wind = 0.35 + 0.25 * (h as f64 / 7.0 + site as f64).sin() + 0.1 * rng.unit();
            let kw = match site {
                0 | 1 => 5200.0 * solar,
                2 | 3 => 4200.0 * wind,
                _ => 2600.0 * solar + 2000.0 * wind,
            };
            SupplyPoint {
                start_s: NOW_S + h * HOUR_S,
                kw,
            }
        })
        .collect()
}

/// The fleet; `oversubscribed` draws every pending gang from 8×8 and 16×8, about five
/// times what the fleet holds, to time the path where most jobs wait.
fn fleet(oversubscribed: bool) -> Snapshot {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let sites: Vec<Site> = SITES
        .iter()
        .enumerate()
        .map(|(i, name)| Site {
            name: name.to_string(),
            pue: 1.1 + 0.05 * i as f64,
            grid_carbon_g_per_kwh: 300.0 + 50.0 * i as f64,
            supply: forecast(&mut rng, i),
            base_load_kw: 150.0,
            headroom_negative_since_s: None,
            storage: Vec::new(),
        })
        .collect();
    let mut nodes: Vec<Node> = (0..SITES.len() * NODES_PER_SITE)
        .map(|i| {
            let site = i / NODES_PER_SITE;
            Node {
                name: format!("{}-gpu-{:04}", SITES[site], i % NODES_PER_SITE),
                site: Some(SITES[site].to_string()),
                gpu_model: if i % 3 == 0 { "A100" } else { "H100" }.to_string(),
                gpus_allocatable: GPUS_PER_NODE,
                // Some GPUs held by pods Verdant does not manage.
                gpus_used: if rng.below(10) == 0 {
                    rng.below(4) as u32
                } else {
                    0
                },
                schedulable: rng.below(100) != 0,
            }
        })
        .collect();

    let mut jobs = Vec::new();
    for i in 0..600 {
        let site = rng.below(SITES.len() as u64) as usize;
        let gpus_per_replica = rng.pick(&[1, 2, 4, 8]);
        let replicas = rng.pick(&[1, 2, 4]);
        let mut placed = Vec::new();
        for _ in 0..replicas {
            for _ in 0..20 {
                let n = site * NODES_PER_SITE + rng.below(NODES_PER_SITE as u64) as usize;
                if nodes[n].gpus_allocatable - nodes[n].gpus_used >= gpus_per_replica {
                    nodes[n].gpus_used += gpus_per_replica;
                    placed.push(n as u32);
                    break;
                }
            }
        }
        let mut job = pending(&mut rng, i, replicas, gpus_per_replica);
        job.replicas = placed.len() as u32;
        job.state = JobState::Running {
            site: SITES[site].to_string(),
            nodes: placed,
            started_s: NOW_S - rng.below(6 * HOUR_S as u64) as i64,
        };
        jobs.push(job);
    }
    for i in 600..2600 {
        let (replicas, gpus_per_replica) = if oversubscribed {
            (rng.pick(&[8, 16]), 8)
        } else {
            (
                rng.pick(&[1, 1, 2, 2, 4, 4, 8, 16]),
                rng.pick(&[1, 2, 4, 8]),
            )
        };
        let mut job = pending(&mut rng, i, replicas, gpus_per_replica);
        match rng.below(20) {
            0 | 1 => job.allowed_sites = vec![SITES[rng.below(5) as usize].to_string()],
            2 => {
                let site = rng.below(5) as usize * NODES_PER_SITE;
                job.allowed_nodes = Some((site..site + 300).map(|n| n as u32).collect());
            }
            _ => {}
        }
        jobs.push(job);
    }
    Snapshot {
        now_s: NOW_S,
        sites,
        nodes,
        jobs,
    }
}

fn pending(rng: &mut Rng, i: usize, replicas: u32, gpus_per_replica: u32) -> Job {
    let policy = match rng.below(10) {
        0..=3 => Policy::Immediate,
        4..=7 => Policy::GreenPreferred,
        _ => Policy::GreenOnly,
    };
    Job {
        id: format!("team-{}/job-{i:05}", i % 17),
        replicas,
        gpus_per_replica,
        state: JobState::Pending,
        policy,
        min_renewable_fraction: rng.pick(&[0.5, 0.7, 0.8, 0.9]),
        interruptible: rng.below(2) == 0,
        power_cap_min_percent: (rng.below(3) == 0).then_some(60),
        power_cap_percent: None,
        priority: rng.below(4) as i32,
        created_s: NOW_S - rng.below(12 * HOUR_S as u64) as i64,
        latest_start_s: (rng.below(2) == 0).then(|| NOW_S + rng.below(24 * HOUR_S as u64) as i64),
        estimated_duration_s: (rng.below(10) != 0).then(|| 60 * (30 + rng.below(690) as i64)),
        measured_gpu_watts: (rng.below(4) == 0).then(|| 250.0 + rng.below(450) as f64),
        allowed_sites: Vec::new(),
        allowed_nodes: None,
        elastic: None,
    }
}

fn bench(c: &mut Criterion) {
    let config = EngineConfig {
        gpu_watts_by_model: BTreeMap::from([("H100".into(), 700.0), ("A100".into(), 400.0)]),
        ..EngineConfig::default()
    };
    for (name, oversubscribed) in [
        ("placement_cycle_5000_nodes_2000_jobs", false),
        ("placement_cycle_5000_nodes_2000_jobs_oversubscribed", true),
    ] {
        let snapshot = fleet(oversubscribed);
        report_once(name, &snapshot, &config);
        c.bench_function(name, |b| {
            b.iter(|| run_cycle(black_box(&snapshot), black_box(&config)))
        });
    }
}

/// Prints what one cycle places, so the pods/s figure can be derived from the median.
fn report_once(name: &str, snapshot: &Snapshot, config: &EngineConfig) {
    let started = Instant::now();
    let decisions = run_cycle(snapshot, config);
    let elapsed = started.elapsed();
    let pods: usize = decisions
        .iter()
        .map(|d| d.action.placed_nodes().len())
        .sum();
    let placed = decisions
        .iter()
        .filter(|d| matches!(d.action, Action::Place { .. }))
        .count();
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &decisions {
        *by_reason.entry(d.reason.as_str()).or_default() += 1;
    }
    println!(
        "{name}: {placed} jobs / {pods} pods placed per cycle; first run {:.1} ms = {:.0} pods/s; {by_reason:?}",
        elapsed.as_secs_f64() * 1e3,
        pods as f64 / elapsed.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
