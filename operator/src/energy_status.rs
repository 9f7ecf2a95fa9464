//! Keeps `TrainingJob.status.energy` in step with the jobs' ledgers in the store, and the
//! store within its retention.
//!
//! # Expected flow
//! The ingest endpoint marks the jobs a report billed. Every few seconds this loop reads
//! the ledgers of the marked jobs whose last status write is at least
//! `--energy-status-seconds` (30 s) old, and writes `status.energy` with server-side apply
//! under its own field manager, `verdant-accounting`, applying `status.energy` only. The
//! TrainingJob reconcile applies the rest of the status under `verdant-operator` and never
//! sends `energy`, so neither writer removes the other's fields.
//!
//! # Guarantees
//! - The ledger in the store is the truth; the status is a copy, at most one interval
//!   behind. After a restart every live ledger is written once (if it differs), so the
//!   status converges even for reports acknowledged just before a crash.
//! - A job re-created under the same name (another uid) never gets the old job's ledger.
//!
//! Every 10 minutes the loop also marks the ledgers of jobs that are gone and purges what
//! is older than the retention.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};
use verdant_core::accounting::Ledger;
use verdant_crds::{JobEnergy, TrainingJob};
use verdant_store::{JobLedger, Retention, Store, StoreConfig};

use crate::context::Context;
use crate::store_writer::StoreCell;

/// The field manager of `status.energy`.
pub const FIELD_MANAGER: &str = "verdant-accounting";

const TICK: Duration = Duration::from_secs(2);
const MAINTENANCE_EVERY: Duration = Duration::from_secs(600);

/// Jobs whose `status.energy` is due for an update.
pub struct EnergyStatus {
    min_interval: Duration,
    dirty: Mutex<HashSet<String>>,
    written: Mutex<HashMap<String, Instant>>,
}

impl EnergyStatus {
    /// Writes each job's status at most every `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            dirty: Mutex::new(HashSet::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Marks jobs (by uid) whose ledger changed.
    pub fn mark(&self, job_uids: impl IntoIterator<Item = String>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        dirty.extend(job_uids);
    }

    /// Takes the marked jobs whose last write is old enough; the others stay marked.
    fn take_due(&self) -> Vec<String> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let due: Vec<String> = dirty
            .iter()
            .filter(|uid| {
                written
                    .get(*uid)
                    .is_none_or(|at| at.elapsed() >= self.min_interval)
            })
            .cloned()
            .collect();
        for uid in &due {
            dirty.remove(uid);
        }
        due
    }
}

/// `status.energy` from a ledger.
pub fn job_energy(ledger: &JobLedger) -> JobEnergy {
    let l = Ledger {
        energy_j: ledger.energy_j,
        renewable_j: ledger.renewable_j,
        grid_j: ledger.grid_j,
        co2_g: ledger.co2_g,
    };
    let fraction = l.renewable_fraction();
    JobEnergy {
        gpu_energy_kwh: l.energy_kwh(),
        renewable_energy_kwh: l.renewable_kwh(),
        grid_energy_kwh: l.grid_kwh(),
        renewable_fraction: fraction,
        renewable_percent: (fraction * 1000.0).round() / 10.0,
        co2_grams: l.co2_g,
    }
}

/// Connects to the store (retrying until it answers), then keeps statuses and retention.
pub async fn run(
    ctx: Arc<Context>,
    store_cell: StoreCell,
    config: StoreConfig,
    retention: Retention,
    status: Arc<EnergyStatus>,
) {
    let store = connect(&store_cell, &config).await;
    crate::watches::wait_ready(ctx.stores.jobs.clone()).await;
    match store.live_ledgers().await {
        Ok(ledgers) => status.mark(ledgers.into_iter().map(|l| l.job_uid)),
        Err(e) => {
            warn!(error = %e, "reading the ledgers of live jobs failed; their status.energy is written with their next report")
        }
    }
    let mut last_maintenance: Option<Instant> = None;
    loop {
        write_due(&ctx, &store, &status).await;
        if last_maintenance.is_none_or(|at| at.elapsed() >= MAINTENANCE_EVERY) {
            maintain(&ctx, &store, &retention, &status).await;
            last_maintenance = Some(Instant::now());
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn connect(cell: &StoreCell, config: &StoreConfig) -> Store {
    let mut delay = Duration::from_secs(1);
    loop {
        match Store::connect(config).await {
            Ok(store) => {
                info!(backend = store.backend().name(), "energy store ready");
                let _ = cell.set(store.clone());
                return store;
            }
            Err(e) => {
                warn!(error = %e, retry_in_s = delay.as_secs(), "cannot open the energy store; agent reports get 503 until it opens");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn write_due(ctx: &Context, store: &Store, status: &EnergyStatus) {
    let due = status.take_due();
    if due.is_empty() {
        return;
    }
    let ledgers = match store.ledgers(&due).await {
        Ok(ledgers) => ledgers,
        Err(e) => {
            warn!(error = %e, jobs = due.len(), "reading ledgers failed; retrying");
            status.mark(due);
            return;
        }
    };
    for ledger in ledgers {
        let key = ObjectRef::new(&ledger.name).within(&ledger.namespace);
        let Some(job) = ctx.stores.jobs.get(&key) else {
            continue; // gone; its ledger is kept for the retention
        };
        if job.uid().as_deref() != Some(ledger.job_uid.as_str()) {
            continue; // another job of the same name
        }
        let energy = job_energy(&ledger);
        if job.status.as_ref().and_then(|s| s.energy.as_ref()) == Some(&energy) {
            continue;
        }
        match write(ctx, &ledger, &energy).await {
            Ok(()) => {
                ctx.metrics.ingest.energy_status_writes.inc();
                status
                    .written
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(ledger.job_uid.clone(), Instant::now());
                debug!(job = %format!("{}/{}", ledger.namespace, ledger.name), kwh = energy.gpu_energy_kwh, "status.energy written");
            }
            Err(e) => {
                warn!(job = %format!("{}/{}", ledger.namespace, ledger.name), error = %e, "writing status.energy failed; retrying");
                status.mark([ledger.job_uid.clone()]);
            }
        }
    }
}

async fn write(ctx: &Context, ledger: &JobLedger, energy: &JobEnergy) -> kube::Result<()> {
    let api: Api<TrainingJob> = Api::namespaced(ctx.client.clone(), &ledger.namespace);
    let patch = serde_json::json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "status": {"energy": energy},
    });
    api.patch_status(
        &ledger.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

async fn maintain(ctx: &Context, store: &Store, retention: &Retention, status: &EnergyStatus) {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let live: HashSet<String> = ctx
        .stores
        .jobs
        .state()
        .iter()
        .filter_map(|j| j.uid())
        .collect();
    status
        .written
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|uid, _| live.contains(uid));
    if let Err(e) = store.mark_gone_jobs(&live, now_ms).await {
        warn!(error = %e, "marking the ledgers of deleted jobs failed");
    }
    match store.purge(now_ms, retention).await {
        Ok(counts) if counts != Default::default() => info!(
            reports = counts.reports,
            samples = counts.samples,
            hourly = counts.hourly,
            ledgers = counts.ledgers,
            "purged data older than the retention"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "purging old data failed"),
    }
}

/// Waits for a cache's first full list (polled: the store keeps one waker only).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_status_comes_from_the_ledger() {
        let ledger = JobLedger {
            job_uid: "u".into(),
            namespace: "ml".into(),
            name: "llama".into(),
            site: Some("solar-a".into()),
            energy_j: 7_200_000.0,
            renewable_j: 4_798_800.0,
            grid_j: 2_401_200.0,
            co2_g: 240.12,
            first_window_start_ms: 0,
            last_window_end_ms: 0,
            updated_ms: 0,
            deleted_ms: None,
        };
        let e = job_energy(&ledger);
        assert_eq!(e.gpu_energy_kwh, 2.0);
        assert_eq!(e.renewable_energy_kwh, 1.333);
        assert!((e.grid_energy_kwh - 0.667).abs() < 1e-12);
        assert_eq!(e.renewable_percent, 66.7);
        assert!((e.renewable_fraction - 0.6665).abs() < 1e-12);
        assert_eq!(e.co2_grams, 240.12);
    }

    #[test]
    fn a_job_is_due_again_only_after_the_interval() {
        let status = EnergyStatus::new(Duration::from_secs(3600));
        status.mark(["a".to_owned(), "b".to_owned()]);
        let mut due = status.take_due();
        due.sort();
        assert_eq!(due, ["a", "b"]);
        status
            .written
            .lock()
            .unwrap()
            .insert("a".into(), Instant::now());
        status.mark(["a".to_owned()]);
        assert!(status.take_due().is_empty(), "written just now");
        assert_eq!(status.dirty.lock().unwrap().len(), 1, "still marked");
    }
}
