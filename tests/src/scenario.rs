//! A scenario of the controller tests: its own control plane (an operator acts on every
//! node, job and site of its cluster), a labelled namespace, an admin client, and the
//! operator as a process once the test has set the stage. The builders create the objects
//! a scenario needs and wait for the states it asserts.
//!
//! A new scenario goes into the test file of the behaviour it shows
//! (`tests/controller.rs`, `tests/energysite.rs`, …) and holds only its story; a builder or
//! a wait two scenarios need goes here (or into `jobs.rs`, `sites.rs`, `wait.rs`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use verdant_crds::{EnergySite, EnergySiteStatus, JobPhase, TrainingJob};

use crate::{ControlPlane, OperatorProcess, TestNamespace, jobs, sites, wait};

/// One scenario's cluster and operator. Fields drop in order: the operator first, the
/// control plane last.
pub struct Scenario {
    /// The operator, once [`Self::start_operator`] ran.
    pub operator: Option<OperatorProcess>,
    /// The scenario's namespace (dumps its state when the test fails).
    pub ns: TestNamespace,
    /// An admin client.
    pub client: kube::Client,
    operator_binary: String,
    operator_flags: Vec<String>,
    /// The control plane, of this scenario only.
    pub plane: ControlPlane,
}

impl Scenario {
    /// Starts a control plane and creates the namespace `e2e-<name>-…`; the operator is
    /// `operator_binary` (`env!("CARGO_BIN_EXE_e2e-operator")` in a test), not started yet.
    pub async fn start(name: &str, operator_binary: &str) -> anyhow::Result<Self> {
        let plane = ControlPlane::start_owned();
        let client = plane.client().await?;
        let ns = TestNamespace::create(&plane, &client, name).await?;
        Ok(Self {
            operator: None,
            ns,
            client,
            operator_binary: operator_binary.to_owned(),
            operator_flags: Vec::new(),
            plane,
        })
    }

    /// Flags every start of the operator gets.
    pub fn with_operator_flags(mut self, flags: &[&str]) -> Self {
        self.operator_flags = flags.iter().map(|f| (*f).to_owned()).collect();
        self
    }

    /// Starts the operator with the scenario's flags and `extra`; a running one is killed
    /// once the new one has started.
    pub fn start_operator(&mut self, extra: &[&str]) -> anyhow::Result<()> {
        let mut flags: Vec<&str> = self.operator_flags.iter().map(String::as_str).collect();
        flags.extend_from_slice(extra);
        self.operator = Some(OperatorProcess::start(
            &self.plane,
            &self.operator_binary,
            &flags,
        )?);
        Ok(())
    }

    /// The running operator.
    ///
    /// # Panics
    /// Before [`Self::start_operator`]: a test that asks for it before has a bug.
    pub fn operator(&self) -> &OperatorProcess {
        self.operator
            .as_ref()
            .expect("the scenario's operator is not started")
    }

    /// The TrainingJobs of the namespace.
    pub fn jobs(&self) -> Api<TrainingJob> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    /// The pods of the namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    /// Every EnergySite of the cluster.
    pub fn sites(&self) -> Api<EnergySite> {
        Api::all(self.client.clone())
    }

    /// Creates the EnergySite `site` (JSON, as a user writes it).
    pub async fn create_site(&self, site: Value) -> anyhow::Result<()> {
        sites::create(&self.client, site).await
    }

    /// Creates [`sites::static_forecast_site`] `name` with `forecast_static`.
    pub async fn site(&self, name: &str, forecast_static: Value) -> anyhow::Result<()> {
        self.create_site(sites::static_forecast_site(name, forecast_static))
            .await
    }

    /// Replaces the static forecast of site `name`.
    pub async fn set_site_supply(&self, name: &str, forecast_static: Value) -> anyhow::Result<()> {
        let patch = json!({"spec": {"forecast": {"static": forecast_static}}});
        self.sites()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Creates [`jobs::training_job`] `name` in the namespace.
    pub async fn job(
        &self,
        name: &str,
        replicas: u32,
        gpus: u32,
        spec: Value,
        pod_annotations: Value,
    ) -> anyhow::Result<()> {
        let body = jobs::training_job(name, replicas, gpus, spec, pod_annotations);
        let job: TrainingJob = serde_json::from_value(body)?;
        self.jobs().create(&PostParams::default(), &job).await?;
        Ok(())
    }

    /// Waits for TrainingJob `name` to reach `phase`; returns it then.
    pub async fn wait_phase(
        &self,
        name: &str,
        phase: JobPhase,
        timeout_s: u64,
    ) -> anyhow::Result<TrainingJob> {
        wait::job_in_phase(&self.jobs(), name, phase, Duration::from_secs(timeout_s)).await
    }

    /// Waits until TrainingJob `name` is gone, finalizer and all.
    pub async fn wait_deleted(&self, name: &str, what: &str) -> anyhow::Result<()> {
        let jobs = self.jobs();
        wait::until(what, Duration::from_secs(30), || {
            let jobs = jobs.clone();
            async move {
                Ok(match jobs.get_opt(name).await? {
                    None => Ok(()),
                    Some(j) => Err(format!(
                        "still there, phase {:?}, finalizers {:?}",
                        j.status.as_ref().map(|s| s.phase),
                        j.finalizers()
                    )),
                })
            }
        })
        .await
    }

    /// The pods of TrainingJob `job`.
    pub async fn pods_of(&self, job: &str) -> anyhow::Result<Vec<Pod>> {
        let list = self
            .pods()
            .list(&ListParams::default().labels(&format!("verdant.dev/job-name={job}")))
            .await?;
        Ok(list.items)
    }

    /// The Events on TrainingJob `job`, as (type, reason, note).
    pub async fn events_of(&self, job: &str) -> anyhow::Result<Vec<(String, String, String)>> {
        let events = Api::<Event>::namespaced(self.client.clone(), self.ns.name())
            .list(&ListParams::default())
            .await?;
        Ok(events
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(job))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Waits for an Event of `type_` and `reason` on TrainingJob `job`; returns its note.
    pub async fn wait_event(&self, job: &str, type_: &str, reason: &str) -> anyhow::Result<String> {
        wait::until(
            &format!("a {type_} Event {reason} on {job}"),
            Duration::from_secs(30),
            || async move {
                let events = self.events_of(job).await?;
                Ok(events
                    .iter()
                    .find(|(t, r, _)| t == type_ && r == reason)
                    .map(|(_, _, note)| note.clone())
                    .ok_or_else(|| format!("events: {events:?}")))
            },
        )
        .await
    }

    /// Waits until site `name`'s status passes `check` (which says what it saw otherwise).
    pub async fn wait_site(
        &self,
        name: &str,
        what: &str,
        timeout_s: u64,
        check: impl Fn(&EnergySiteStatus) -> Result<(), String>,
    ) -> anyhow::Result<EnergySiteStatus> {
        let sites = self.sites();
        let check = &check;
        wait::until(
            &format!("EnergySite {name}: {what}"),
            Duration::from_secs(timeout_s),
            || {
                let sites = sites.clone();
                async move {
                    let status = sites.get(name).await?.status.unwrap_or_default();
                    Ok(check(&status).map(|()| status.clone()))
                }
            },
        )
        .await
    }
}
