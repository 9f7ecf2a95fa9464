//! Chaos: two `verdant-operator run --leader-elect` replicas on one control plane with
//! KWOK GPU nodes and an EnergySite. A seeded loop SIGKILLs the leader 30 times at random
//! moments while gangs are created, bound, suspended and resumed, and starts the killed
//! replica again each time. After each kill: a new leader acts within the failover
//! budget, and once the jobs settle no gang is partly bound, no pod is duplicated, no job
//! is lost or stuck, no node's GPUs are over-committed, and every status matches the pods.
//!
//! Meanwhile simulated agents report every 2 s through a balancing proxy (the Service) to
//! both replicas, which share one store (as they share PostgreSQL in the chart): the
//! follower refuses reports with 503, and every report an agent saw acknowledged is in
//! the store at the end.
//!
//! `VERDANT_CHAOS_SEED=<n>` replays a run (the seed is printed first);
//! `VERDANT_CHAOS_KILLS=<n>` changes the number of kills; `VERDANT_CHAOS_DEFAULT_TIMINGS=1`
//! runs the replicas with the default lease timings instead of the short ones.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use verdant_crds::{EnergySite, JobPhase, TrainingJob};
use verdant_store::{Store, StoreConfig};
use verdant_tests::agents::{AGENT_ACCOUNT, AgentProcess};
use verdant_tests::proxy::CuttableProxy;
use verdant_tests::{ControlPlane, OperatorProcess, TestNamespace, create_gpu_nodes, wait};

const KILLS: usize = 30;

fn kills() -> usize {
    std::env::var("VERDANT_CHAOS_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(KILLS)
}

fn lease_flags() -> &'static [&'static str] {
    if std::env::var("VERDANT_CHAOS_DEFAULT_TIMINGS").is_ok_and(|v| v == "1") {
        &LEASE_FLAGS[..1]
    } else {
        &LEASE_FLAGS
    }
}
const NODES: u32 = 5;
const GPUS_PER_NODE: u32 = 8;
const GPUS_PER_REPLICA: u32 = 4;
/// At most 3 jobs of at most 3 replicas: 36 GPUs of 40, so every job fits at once and
/// one that waits is stuck, not queued.
const MAX_JOBS: usize = 3;
const LEASE: &str = "verdant-operator-leader";
/// Shorter than the defaults (8 s / 5 s / 1 s) so that 30 failovers fit in a few minutes.
const LEASE_FLAGS: [&str; 4] = [
    "--leader-elect",
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=2500ms",
    "--leader-elect-retry-period=500ms",
];
const FAILOVER_BUDGET: Duration = Duration::from_secs(15);

/// splitmix64: small, seedable, good enough to pick moments and sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max + 1))
    }
}

#[derive(Clone, Copy, Debug)]
enum Moment {
    Creation,
    Binding,
    Suspension,
    Resume,
}

struct Replica {
    identity: String,
    process: OperatorProcess,
}

/// Fields drop in order: the replicas (printing their logs on failure) and the namespace
/// (dumping its state) before the control plane goes.
struct Chaos {
    agents: Vec<AgentProcess>,
    replicas: [Replica; 2],
    wiring: Wiring,
    ns: TestNamespace,
    client: kube::Client,
    plane: ControlPlane,
    incarnations: u32,
    rng: Rng,
    /// Every job created and not deleted by the test, with its replica count.
    jobs: BTreeMap<String, u32>,
    created: u32,
}

/// Where a replica listens for reports and keeps them: its own ingest address (the one
/// its slot always has, as a pod's endpoint), and the store both share.
struct Wiring {
    ingest_addrs: [String; 2],
    database_url: String,
}

/// Starts a replica in `slot` under `identity` (a new one per start, as a new pod would
/// get: one that restarts under its old identity takes its Lease back at once).
fn launch(
    plane: &ControlPlane,
    ns: &str,
    wiring: &Wiring,
    slot: usize,
    identity: String,
) -> anyhow::Result<Replica> {
    let agents = format!("{ns}:{AGENT_ACCOUNT}");
    let mut flags = lease_flags().to_vec();
    flags.extend([
        "--ingest-addr",
        &wiring.ingest_addrs[slot],
        "--database-url",
        &wiring.database_url,
        "--agent-service-account",
        &agents,
    ]);
    let process = OperatorProcess::start_with_env(
        plane,
        env!("CARGO_BIN_EXE_e2e-operator"),
        &flags,
        &[("POD_NAME", &identity), ("POD_NAMESPACE", ns)],
    )?;
    Ok(Replica { identity, process })
}

fn free_local_addr() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", verdant_tests::free_port()?))
}

/// An agent's counter from its `/metrics`.
async fn agent_counter(agent: &AgentProcess, name: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("http://{}/metrics", agent.metrics_addr))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("agent {}: no {name} in its metrics", agent.node))
}

impl Chaos {
    fn start_replica(&mut self, slot: usize) -> anyhow::Result<()> {
        self.incarnations += 1;
        let identity = format!("replica-{slot}-{}", self.incarnations);
        self.replicas[slot] = launch(&self.plane, self.ns.name(), &self.wiring, slot, identity)?;
        Ok(())
    }

    fn job_api(&self) -> Api<TrainingJob> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    fn pod_api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    /// Waits for a leader among the live replicas that has completed a scheduling cycle
    /// (`/readyz` of a leader), restarting any replica that exited on its own.
    async fn ready_leader(&mut self) -> anyhow::Result<usize> {
        for slot in 0..2 {
            if !self.replicas[slot].process.is_running() {
                println!(
                    "replica {} exited on its own; starting it again",
                    self.replicas[slot].identity
                );
                self.start_replica(slot)?;
            }
        }
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), self.ns.name());
        let replicas = &self.replicas;
        wait::until("a ready leader", Duration::from_secs(30), || {
            let leases = leases.clone();
            async move {
                let holder = leases
                    .get_opt(LEASE)
                    .await?
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity);
                let Some(slot) = replicas
                    .iter()
                    .position(|r| Some(&r.identity) == holder.as_ref())
                else {
                    return Ok(Err(format!("Lease held by {holder:?}")));
                };
                Ok(match replicas[slot].process.readyz().await {
                    Some((200, body)) if body == "ok\n" => Ok(slot),
                    other => Err(format!("leader {holder:?}: /readyz {other:?}")),
                })
            }
        })
        .await
    }

    async fn create_job(&mut self) -> anyhow::Result<String> {
        if self.jobs.len() >= MAX_JOBS {
            let oldest = self.jobs.keys().next().cloned().expect("jobs");
            self.job_api()
                .delete(&oldest, &DeleteParams::default())
                .await?;
            let jobs = self.job_api();
            wait::until(
                &format!("job {oldest} to be deleted"),
                Duration::from_secs(30),
                || async {
                    Ok(match jobs.get_opt(&oldest).await? {
                        None => Ok(()),
                        Some(_) => Err("still there".to_owned()),
                    })
                },
            )
            .await?;
            self.jobs.remove(&oldest);
        }
        self.created += 1;
        let name = format!("gang-{:02}", self.created);
        let replicas = 2 + self.rng.below(2) as u32;
        let job: TrainingJob = serde_json::from_value(json!({
            "apiVersion": "verdant.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "gpusPerReplica": GPUS_PER_REPLICA,
                "energy": {"policy": "Immediate"},
                "template": {"spec": {"containers": [{"name": "trainer", "image": "pytorch/pytorch"}]}}
            }
        }))?;
        self.job_api().create(&PostParams::default(), &job).await?;
        self.jobs.insert(name.clone(), replicas);
        Ok(name)
    }

    async fn set_suspend(&self, name: &str, suspend: bool) -> anyhow::Result<()> {
        let patch = json!({"spec": {"runPolicy": {"suspend": suspend}}});
        self.job_api()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn jobs_in(&self, phase: JobPhase) -> anyhow::Result<Vec<String>> {
        Ok(self
            .job_api()
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter(|j| j.status.as_ref().is_some_and(|s| s.phase == phase))
            .map(|j| j.name_any())
            .collect())
    }

    async fn bound_pods(&self, job: &str) -> anyhow::Result<usize> {
        let pods = self
            .pod_api()
            .list(&ListParams::default().labels(&format!("verdant.dev/job-name={job}")))
            .await?;
        Ok(pods
            .items
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .count())
    }

    /// Does what `moment` names, and returns the job that then waits for a placement.
    async fn act(&mut self, moment: Moment) -> anyhow::Result<Option<String>> {
        match moment {
            Moment::Creation => {
                let name = self.create_job().await?;
                tokio::time::sleep(self.rng.millis(600)).await;
                Ok(Some(name))
            }
            Moment::Binding => {
                let name = self.create_job().await?;
                let pods = self.pod_api();
                let selector = format!("verdant.dev/job-name={name}");
                wait::until(
                    &format!("the first pod of {name}"),
                    Duration::from_secs(20),
                    || async {
                        let list = pods.list(&ListParams::default().labels(&selector)).await?;
                        Ok(if list.items.is_empty() {
                            Err("no pod yet".to_owned())
                        } else {
                            Ok(())
                        })
                    },
                )
                .await?;
                tokio::time::sleep(self.rng.millis(100)).await;
                Ok(Some(name))
            }
            Moment::Suspension => {
                let running = self.jobs_in(JobPhase::Running).await?;
                let name = match running.first() {
                    Some(name) => name.clone(),
                    None => {
                        let name = self.create_job().await?;
                        self.settle().await?;
                        name
                    }
                };
                self.set_suspend(&name, true).await?;
                tokio::time::sleep(self.rng.millis(800)).await;
                Ok(None)
            }
            Moment::Resume => {
                let suspended = self.jobs_in(JobPhase::Suspended).await?;
                let name = match suspended.first() {
                    Some(name) => name.clone(),
                    None => {
                        let running = self.jobs_in(JobPhase::Running).await?;
                        let name = match running.first() {
                            Some(name) => name.clone(),
                            None => self.create_job().await?,
                        };
                        self.settle().await?;
                        self.set_suspend(&name, true).await?;
                        self.settle().await?;
                        name
                    }
                };
                self.set_suspend(&name, false).await?;
                tokio::time::sleep(self.rng.millis(800)).await;
                Ok(Some(name))
            }
        }
    }

    /// Waits until every job is where its spec says (Running with all replicas bound, or
    /// Suspended without pods): a job that never gets there is stuck.
    async fn settle(&self) -> anyhow::Result<()> {
        let (jobs, pods) = (self.job_api(), self.pod_api());
        wait::until("every job to settle", Duration::from_secs(30), || async {
            let pods = pods.list(&ListParams::default()).await?.items;
            let mut unsettled = Vec::new();
            for job in jobs.list(&ListParams::default()).await? {
                let name = job.name_any();
                let status = job.status.clone().unwrap_or_default();
                let mine: Vec<&Pod> = pods.iter().filter(|p| job_of(p) == Some(&name)).collect();
                let running = mine
                    .iter()
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .count();
                let settled = if job.spec.run_policy.suspend {
                    status.phase == JobPhase::Suspended && mine.is_empty()
                } else {
                    status.phase == JobPhase::Running && running == job.spec.replicas as usize
                };
                if !settled {
                    unsettled.push(format!(
                        "{name}: suspend {}, phase {:?} ({:?}), {} pods, {running} running",
                        job.spec.run_policy.suspend,
                        status.phase,
                        status.message,
                        mine.len()
                    ));
                }
            }
            Ok(if unsettled.is_empty() {
                Ok(())
            } else {
                Err(unsettled.join("; "))
            })
        })
        .await
    }

    /// The invariants that must hold at every moment, and those of a settled cluster.
    async fn check(&self, settled: bool) -> anyhow::Result<()> {
        let pods = self.pod_api().list(&ListParams::default()).await?.items;
        let jobs = self.job_api().list(&ListParams::default()).await?.items;
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await?;
        // No GPU over-committed: what the pods bound to a node request fits in it.
        let mut used: BTreeMap<String, u32> = BTreeMap::new();
        for pod in pods.iter().filter(|p| is_active(p)) {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
                *used.entry(node).or_default() += gpus_of(pod);
            }
        }
        for node in &nodes {
            let allocatable = node
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .and_then(|a| a.get("nvidia.com/gpu"))
                .and_then(|q| q.0.parse::<u32>().ok())
                .unwrap_or(0);
            let in_use = used.get(&node.name_any()).copied().unwrap_or(0);
            anyhow::ensure!(
                in_use <= allocatable,
                "node {} over-committed: {in_use} GPUs requested of {allocatable}",
                node.name_any()
            );
        }
        // No job lost; no duplicate pod (one per replica index, none beyond the replicas).
        let names: BTreeSet<String> = jobs.iter().map(|j| j.name_any()).collect();
        let expected: BTreeSet<String> = self.jobs.keys().cloned().collect();
        anyhow::ensure!(names == expected, "jobs {names:?}, expected {expected:?}");
        for job in &jobs {
            let name = job.name_any();
            let mine: Vec<&Pod> = pods
                .iter()
                .filter(|p| job_of(p) == Some(&name) && is_active(p))
                .collect();
            let indices: BTreeSet<&str> = mine
                .iter()
                .filter_map(|p| {
                    p.labels()
                        .get("verdant.dev/replica-index")
                        .map(String::as_str)
                })
                .collect();
            anyhow::ensure!(
                indices.len() == mine.len() && mine.len() <= job.spec.replicas as usize,
                "job {name}: duplicate pods {:?}",
                mine.iter().map(|p| p.name_any()).collect::<Vec<_>>()
            );
            if !settled {
                continue;
            }
            // No partial gang, and the status says what the pods say.
            let bound: BTreeSet<String> = mine
                .iter()
                .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                .collect();
            let bound_pods = mine
                .iter()
                .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
                .count();
            anyhow::ensure!(
                bound_pods == 0 || bound_pods == job.spec.replicas as usize,
                "job {name}: a partial gang of {bound_pods}/{} pods is bound",
                job.spec.replicas
            );
            let status = job.status.clone().unwrap_or_default();
            let status_nodes: BTreeSet<String> = status.nodes.iter().cloned().collect();
            match status.phase {
                JobPhase::Running => anyhow::ensure!(
                    status_nodes == bound,
                    "job {name}: status.nodes {status_nodes:?}, pods on {bound:?}"
                ),
                JobPhase::Suspended => {
                    anyhow::ensure!(mine.is_empty(), "job {name}: Suspended with pods")
                }
                other => anyhow::bail!("job {name}: settled in phase {other:?}"),
            }
        }
        Ok(())
    }
}

fn job_of(pod: &Pod) -> Option<&String> {
    pod.labels().get("verdant.dev/job-name")
}

fn is_active(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn gpus_of(pod: &Pod) -> u32 {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| {
            c.resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("nvidia.com/gpu")
        })
        .filter_map(|q| q.0.parse::<u32>().ok())
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test]
async fn the_leader_is_killed_thirty_times_and_no_job_or_gpu_goes_astray() -> anyhow::Result<()> {
    let seed = std::env::var("VERDANT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("chaos seed {seed} (replay with VERDANT_CHAOS_SEED={seed})");
    let started = Instant::now();
    let plane = ControlPlane::start_owned();
    let client = plane.client().await?;
    let ns = TestNamespace::create(&plane, &client, "chaos").await?;
    let site = format!("{}-site", ns.name());
    let energy_site: EnergySite =
        serde_json::from_value(verdant_tests::sites::static_site(&site, 1000.0))?;
    Api::<EnergySite>::all(client.clone())
        .create(&PostParams::default(), &energy_site)
        .await?;
    let nodes = create_gpu_nodes(
        &client,
        &format!("{}-gpu", ns.name()),
        &site,
        NODES,
        GPUS_PER_NODE,
    )
    .await?;

    let wiring = Wiring {
        ingest_addrs: [free_local_addr()?, free_local_addr()?],
        database_url: format!("sqlite://{}", plane.dir().join("chaos-energy.db").display()),
    };
    let replicas = [
        launch(&plane, ns.name(), &wiring, 0, "replica-0-1".to_owned())?,
        launch(&plane, ns.name(), &wiring, 1, "replica-1-2".to_owned())?,
    ];
    let service = CuttableProxy::balanced(wiring.ingest_addrs.to_vec()).await?;
    let agents = AgentProcess::start_all(
        &plane,
        &client,
        env!("CARGO_BIN_EXE_e2e-agent"),
        ns.name(),
        &nodes[..2],
        &format!("http://127.0.0.1:{}", service.port),
    )
    .await?;
    let mut chaos = Chaos {
        agents,
        client,
        ns,
        replicas,
        wiring,
        incarnations: 2,
        rng: Rng(seed),
        jobs: BTreeMap::new(),
        created: 0,
        plane,
    };
    let leader = chaos.ready_leader().await?;

    // The follower refuses agents' reports with 503 and a reason; the agent keeps a report
    // it got a 5xx for and sends it again (agent/tests/reporting.rs), so only the leader
    // stores reports.
    let follower = &chaos.replicas[1 - leader];
    let leader_id = &chaos.replicas[leader].identity;
    wait::until(
        "the follower to be ready",
        Duration::from_secs(20),
        || async {
            Ok(match follower.process.readyz().await {
                Some((200, body)) if body == format!("ok: following the leader {leader_id}\n") => {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await?;
    let refused = wait::until(
        "the follower's ingest to answer",
        Duration::from_secs(20),
        || async {
            Ok(
                match reqwest::Client::new()
                    .post(format!("{}/v1/reports", follower.process.ingest_url))
                    .body("{}")
                    .send()
                    .await
                {
                    Ok(response) => Ok((response.status().as_u16(), response.text().await?)),
                    Err(e) => Err(e.to_string()),
                },
            )
        },
    )
    .await?;
    assert_eq!(refused.0, 503, "{refused:?}");
    assert!(refused.1.contains("follower"), "{refused:?}");
    assert!(
        refused.1.contains(&chaos.replicas[leader].identity),
        "{refused:?}"
    );

    let mut failovers = Vec::new();
    let mut placements = Vec::new();
    let kills = kills();
    println!("lease flags {:?}, {kills} kills", lease_flags());
    for kill in 0..kills {
        let moment = [
            Moment::Creation,
            Moment::Binding,
            Moment::Suspension,
            Moment::Resume,
        ][chaos.rng.below(4) as usize];
        let leader = chaos.ready_leader().await?;
        let waiting = chaos.act(moment).await?;
        let unplaced = match &waiting {
            Some(job) => chaos.bound_pods(job).await? < chaos.jobs[job] as usize,
            None => false,
        };
        let killed = Instant::now();
        let victim = chaos.replicas[leader].identity.clone();
        chaos.replicas[leader].process.kill();
        chaos.start_replica(leader)?;
        chaos.check(false).await?;
        chaos.ready_leader().await?;
        let failover = killed.elapsed();
        failovers.push(failover);
        let mut placement = None;
        if let (Some(job), true) = (&waiting, unplaced) {
            let replicas = chaos.jobs[job] as usize;
            let chaos = &chaos;
            wait::until(
                &format!("{job} to be placed"),
                FAILOVER_BUDGET * 2,
                || async {
                    let bound = chaos.bound_pods(job).await?;
                    Ok(if bound == replicas {
                        Ok(())
                    } else {
                        Err(format!("{bound}/{replicas} bound"))
                    })
                },
            )
            .await?;
            placement = Some(killed.elapsed());
            placements.push(killed.elapsed());
        }
        chaos.settle().await?;
        chaos.check(true).await?;
        println!(
            "kill {:2}: {moment:?}, killed {victim}, new leader ready after {failover:.1?}{}",
            kill + 1,
            placement
                .map(|p| format!(", placement after {p:.1?}"))
                .unwrap_or_default()
        );
    }

    failovers.sort();
    placements.sort();
    let max_failover = *failovers.last().expect("kills");
    println!(
        "failover (kill → new leader ready, first cycle done) over {kills} kills: p50 {:.1?}, max {max_failover:.1?}",
        percentile(&failovers, 0.5)
    );
    if !placements.is_empty() {
        println!(
            "kill → next placement over {} kills with a gang waiting: p50 {:.1?}, max {:.1?}",
            placements.len(),
            percentile(&placements, 0.5),
            placements.last().expect("placements")
        );
    }

    // The agents deliver their backlog to the last leader (their backoff is at most 30 s).
    for agent in &chaos.agents {
        wait::until(
            &format!("agent on {} to deliver its backlog", agent.node),
            Duration::from_secs(90),
            || async {
                let backlog = agent_counter(agent, "verdant_agent_buffered_reports").await?;
                Ok(if backlog <= 1 {
                    Ok(())
                } else {
                    Err(format!("{backlog} buffered"))
                })
            },
        )
        .await?;
    }
    // No acknowledged report lost: what each agent saw accepted is in the shared store.
    let mut acknowledged = BTreeMap::new();
    for agent in &chaos.agents {
        let metrics = reqwest::get(format!("http://{}/metrics", agent.metrics_addr))
            .await?
            .text()
            .await?;
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("verdant_agent_report"))
        {
            println!("agent on {}: {line}", agent.node);
        }
        let sent = agent_counter(agent, "verdant_agent_reports_sent_total").await?;
        let duplicate = agent_counter(agent, "verdant_agent_reports_duplicate_total").await?;
        acknowledged.insert(agent.node.clone(), sent - duplicate);
    }
    for replica in &mut chaos.replicas {
        replica.process.kill();
    }
    let store = Store::connect(&StoreConfig::new(chaos.wiring.database_url.clone())).await?;
    for (node, acked) in &acknowledged {
        let stored = store.report_windows(node).await?.len() as u64;
        println!("agent on {node}: {acked} reports acknowledged, {stored} windows stored");
        assert!(
            *acked >= 10,
            "agent on {node}: only {acked} reports got through"
        );
        assert!(
            stored >= *acked,
            "agent on {node}: {acked} reports acknowledged but only {stored} stored"
        );
    }
    println!("chaos test took {:.0?}", started.elapsed());
    assert!(
        max_failover <= FAILOVER_BUDGET,
        "failover took {max_failover:?}"
    );
    if let Some(max) = placements.last() {
        assert!(
            *max <= FAILOVER_BUDGET,
            "placement after a kill took {max:?}"
        );
    }
    Ok(())
}

/// Waits until `process` answers `/readyz` with 200 and `body`.
async fn ready_with(process: &OperatorProcess, body: &str) -> anyhow::Result<()> {
    wait::until(
        &format!("/readyz to say {body:?}"),
        Duration::from_secs(30),
        || async {
            Ok(match process.readyz().await {
                Some((200, text)) if text == body => Ok(()),
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await
}

/// `verdant_leader` from `process`'s `/metrics`.
async fn leader_gauge(process: &OperatorProcess) -> anyhow::Result<i64> {
    let text = reqwest::get(format!("{}/metrics", process.http_url))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("verdant_leader ")?.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no verdant_leader in the metrics"))
}

#[tokio::test]
async fn a_leader_stopped_by_sigterm_hands_the_lease_over_at_once() -> anyhow::Result<()> {
    let plane = ControlPlane::start_owned();
    let client = plane.client().await?;
    let ns = TestNamespace::create(&plane, &client, "handover").await?;
    // A long lease: a takeover well within it can only come from the hand-over.
    let flags = [
        "--leader-elect",
        "--leader-elect-lease-duration=30s",
        "--leader-elect-renew-deadline=10s",
        "--leader-elect-retry-period=500ms",
    ];
    let start = |identity: &str| {
        OperatorProcess::start_with_env(
            &plane,
            env!("CARGO_BIN_EXE_e2e-operator"),
            &flags,
            &[("POD_NAME", identity), ("POD_NAMESPACE", ns.name())],
        )
    };
    let mut old = start("old")?;
    ready_with(&old, "ok\n").await?;
    let new = start("new")?;
    ready_with(&new, "ok: following the leader old\n").await?;
    assert_eq!(leader_gauge(&old).await?, 1);
    assert_eq!(leader_gauge(&new).await?, 0);

    let stopped = Instant::now();
    let status = old.terminate(Duration::from_secs(20))?;
    assert!(
        status.success(),
        "a SIGTERMed leader exits cleanly: {status}"
    );
    ready_with(&new, "ok\n").await?;
    let handover = stopped.elapsed();
    println!("hand-over after SIGTERM: {handover:.1?} (lease 30 s)");
    assert!(handover < Duration::from_secs(10), "{handover:?}");
    let holder = Api::<Lease>::namespaced(client.clone(), ns.name())
        .get(LEASE)
        .await?
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("new"));
    assert_eq!(leader_gauge(&new).await?, 1);
    Ok(())
}
