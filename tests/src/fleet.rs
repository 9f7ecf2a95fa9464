//! A small green fleet for the tests of what operators look at (dashboards, alerts, the
//! web page): three EnergySites, KWOK GPU nodes, the operator (its ingest endpoint on a
//! free port, a SQLite energy store), one simulated agent per node reporting to it, and
//! TrainingJobs in every interesting state.
//!
//! | Site | Supply | Nodes |
//! |---|---|---|
//! | `greensboro` | solar, the Greensboro TMY3 year replayed (`docs/examples`) | 3 × 8 GPUs |
//! | `windpark-2010` | wind, the windpowerlib 2010 weather replayed (`docs/examples`) | 3 × 8 GPUs |
//! | `grid-only` | none (Static, 0 kW) | 2 × 8 GPUs |
//!
//! | Job | Gang | Policy | Ends up |
//! |---|---|---|---|
//! | `llama-7b-pretrain` | 2 × 8 | GreenPreferred, greensboro | Running |
//! | `bert-large-finetune` | 1 × 4 | Immediate, windpark-2010 | Running |
//! | `vit-ablation` | 1 × 2 | Immediate, windpark-2010, finishes after 3 s | Succeeded |
//! | `resnet-sweep` | 1 × 8 | GreenOnly, grid-only, maxDelay 6h | Deferred |
//! | `gpt-xl-eval` | 4 × 8 | Immediate, grid-only, maxDelay 1s | Pending: more GPUs than the site has, past its latest start |

use std::time::Duration;

use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use verdant_crds::{EnergySite, JobPhase, TrainingJob};

use crate::agents::{AGENT_ACCOUNT, AgentProcess};
use crate::jobs::training_job;
use crate::{
    ControlPlane, OperatorProcess, TestNamespace, create_gpu_nodes, examples_dir, sites, wait,
};

/// Sites of the fleet, with their node name prefixes and node counts.
pub const SITES: [(&str, u32); 3] = [("greensboro", 3), ("windpark-2010", 3), ("grid-only", 2)];

/// The jobs and the phase each settles in.
pub const JOBS: [(&str, JobPhase); 5] = [
    ("llama-7b-pretrain", JobPhase::Running),
    ("bert-large-finetune", JobPhase::Running),
    ("vit-ablation", JobPhase::Succeeded),
    ("resnet-sweep", JobPhase::Deferred),
    ("gpt-xl-eval", JobPhase::Pending),
];

/// The test binaries the fleet runs (`env!("CARGO_BIN_EXE_…")` in a test).
pub struct Binaries<'a> {
    /// `e2e-operator`.
    pub operator: &'a str,
    /// `e2e-agent`.
    pub agent: &'a str,
}

/// The running fleet. Dropping it stops the agents and the operator; the control plane
/// goes with the test process.
pub struct Fleet {
    /// One agent per node.
    pub agents: Vec<AgentProcess>,
    /// The operator.
    pub operator: OperatorProcess,
    /// The namespace of the jobs.
    pub ns: TestNamespace,
    /// An admin client.
    pub client: kube::Client,
    /// Node names, by site.
    pub nodes: Vec<(String, Vec<String>)>,
    /// The control plane (last: dropped after everything that uses it).
    pub plane: ControlPlane,
}

/// A fleet job: `replicas` × `gpus` with `spec.energy` set to `energy`, allowed at `sites`.
fn job(
    name: &str,
    replicas: u32,
    gpus: u32,
    energy: Value,
    sites: &[&str],
    annotations: Value,
) -> Value {
    training_job(
        name,
        replicas,
        gpus,
        json!({"sites": sites, "energy": energy}),
        annotations,
    )
}

impl Fleet {
    /// Starts a control plane, the sites and nodes, the operator and the agents, creates
    /// the jobs and waits until each has settled in its phase.
    pub async fn start(test: &str, binaries: Binaries<'_>) -> anyhow::Result<Self> {
        let plane = ControlPlane::start_owned();
        let client = plane.client().await?;
        let ns = TestNamespace::create(&plane, &client, test).await?;

        for file in [
            "energysite-greensboro-replay.yaml",
            "energysite-wind-replay.yaml",
        ] {
            let text = std::fs::read_to_string(examples_dir().join(file))?;
            sites::create(&client, serde_yaml_ng::from_str(&text)?).await?;
        }
        sites::create(
            &client,
            json!({
                "apiVersion": "verdant.dev/v1alpha1",
                "kind": "EnergySite",
                "metadata": {"name": "grid-only"},
                "spec": {
                    "nodeSelector": {"matchLabels": {"verdant.dev/site": "grid-only"}},
                    "location": {"latitude": 50.11, "longitude": 8.68},
                    "grid": {"carbonIntensityGPerKwh": 420},
                    "pue": 1.3,
                    "forecast": {"provider": "Static", "static": {"constantKw": 0}}
                }
            }),
        )
        .await?;
        let mut nodes = Vec::new();
        for (site, count) in SITES {
            let names = create_gpu_nodes(&client, &format!("{site}-gpu"), site, count, 8).await?;
            nodes.push((site.to_owned(), names));
        }

        let args: Vec<String> = [
            "--cycle-seconds",
            "2",
            "--debounce-ms",
            "100",
            "--site-status-seconds",
            "1",
            "--energy-status-seconds",
            "2",
            "--weather-dir",
            &examples_dir().to_string_lossy(),
            "--agent-service-account",
            &format!("{}:{AGENT_ACCOUNT}", ns.name()),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let operator = OperatorProcess::start_with_kubeconfig(
            plane.dir(),
            plane.kubeconfig(),
            binaries.operator,
            &args,
            &[],
        )?;
        let all_nodes: Vec<String> = nodes.iter().flat_map(|(_, n)| n.clone()).collect();
        let agents = AgentProcess::start_all(
            &plane,
            &client,
            binaries.agent,
            ns.name(),
            &all_nodes,
            &operator.ingest_url,
        )
        .await?;

        let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
        let none = json!({});
        for body in [
            job(
                "llama-7b-pretrain",
                2,
                8,
                json!({"policy": "GreenPreferred", "minRenewableFraction": 0.0, "estimatedDuration": "6h"}),
                &["greensboro"],
                none.clone(),
            ),
            job(
                "bert-large-finetune",
                1,
                4,
                json!({"policy": "Immediate"}),
                &["windpark-2010"],
                none.clone(),
            ),
            job(
                "vit-ablation",
                1,
                2,
                json!({"policy": "Immediate"}),
                &["windpark-2010"],
                json!({"verdant.dev/kwok-succeed-after": "3s"}),
            ),
            job(
                "resnet-sweep",
                1,
                8,
                json!({"policy": "GreenOnly", "maxDelay": "6h", "estimatedDuration": "2h"}),
                &["grid-only"],
                none.clone(),
            ),
            job(
                "gpt-xl-eval",
                4,
                8,
                json!({"policy": "Immediate", "maxDelay": "1s"}),
                &["grid-only"],
                none.clone(),
            ),
        ] {
            let job: TrainingJob = serde_json::from_value(body)?;
            jobs.create(&PostParams::default(), &job).await?;
        }
        let fleet = Self {
            agents,
            operator,
            ns,
            client,
            nodes,
            plane,
        };
        fleet.wait_settled().await?;
        Ok(fleet)
    }

    /// Creates another TrainingJob in the fleet's namespace: `replicas` × `gpus`, with
    /// `spec.energy` set to `energy`, allowed at `sites`.
    pub async fn submit(
        &self,
        name: &str,
        (replicas, gpus): (u32, u32),
        energy: Value,
        sites: &[&str],
    ) -> anyhow::Result<()> {
        let body = job(name, replicas, gpus, energy, sites, json!({}));
        let job: TrainingJob = serde_json::from_value(body)?;
        Api::<TrainingJob>::namespaced(self.client.clone(), self.ns.name())
            .create(&PostParams::default(), &job)
            .await?;
        Ok(())
    }

    /// Every node name.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().flat_map(|(_, n)| n.clone()).collect()
    }

    async fn wait_settled(&self) -> anyhow::Result<()> {
        let jobs: Api<TrainingJob> = Api::namespaced(self.client.clone(), self.ns.name());
        let sites: Api<EnergySite> = Api::all(self.client.clone());
        wait::until(
            "every job in its phase and every site with a status",
            Duration::from_secs(90),
            || {
                let (jobs, sites) = (jobs.clone(), sites.clone());
                async move {
                    let mut off = Vec::new();
                    for (name, phase) in JOBS {
                        let job = jobs.get(name).await?;
                        let status = job.status.unwrap_or_default();
                        if status.phase != phase {
                            off.push(format!(
                                "{name} is {:?} ({:?}), not {phase:?}",
                                status.phase, status.reason
                            ));
                        }
                    }
                    for (site, _) in SITES {
                        let status = sites.get(site).await?.status.unwrap_or_default();
                        if status.renewable_kw.is_none() || status.forecast.is_empty() {
                            off.push(format!("{site} has no forecast yet"));
                        }
                    }
                    Ok(if off.is_empty() {
                        Ok(())
                    } else {
                        Err(off.join("; "))
                    })
                }
            },
        )
        .await
    }
}
