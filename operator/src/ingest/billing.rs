//! Turns one report into what the store keeps: GPU samples, and the energy billed to each
//! job at its site's renewable share of the window.
//!
//! The site window of a report (`verdant_core::accounting::SiteWindow`):
//! - GPU power = this report's GPUs (Σ mean power) + the latest fresh measurement of every
//!   other node of the site; a node without one is estimated as the EnergySite controller
//!   does: the GPUs of its running pods × its model's watts;
//! - base power = `--node-base-watts` × the site's nodes; PUE and grid carbon from the
//!   site's spec;
//! - renewable supply = the site's supply at the middle of the window (Static sites from
//!   the spec, others from `status.forecast`; see `supply.rs`).
//!
//! Each job is billed the energy of its GPUs in the report (from their energy counters)
//! at that window's share. GPUs of pods that are not a TrainingJob's count for the site's
//! load but are billed to nobody.

use std::collections::HashMap;
use std::sync::Arc;

use kube::ResourceExt;
use sha2::{Digest, Sha256};
use verdant_core::accounting::{GpuDraw, JobRef, SiteWindow, bill_jobs};
use verdant_crds::TrainingJob;
use verdant_crds::wire::{AgentReport, GpuWindow, PowerLimitTarget};
use verdant_store::{GpuSample, JobCharge, ReportRecord, ReportWrite, SiteBilling};

use crate::labels::JOB_NAME_LABEL;
use crate::watches::CachedPod;

/// A report's site and the window it is billed with.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteContext {
    /// The EnergySite.
    pub name: String,
    /// The window.
    pub window: SiteWindow,
}

/// What one report amounts to.
#[derive(Clone, Debug, PartialEq)]
pub struct Billed {
    /// What the store writes.
    pub write: ReportWrite,
    /// The node's GPU power, W (Σ mean power).
    pub node_gpu_power_w: f64,
    /// Each job's mean draw per GPU on this node, W, by job id.
    pub job_watts_per_gpu: Vec<(String, f64)>,
    /// Mean draw of this node's GPUs that run a pod, W, with the node's GPU model label.
    pub busy_gpu_watts: Option<f64>,
    /// Power limits for GPUs of power-capped jobs.
    pub power_limits: Vec<PowerLimitTarget>,
}

/// A hash of a report's content, to tell a retry from a conflicting replay.
pub fn content_hash(report: &AgentReport) -> String {
    let bytes = serde_json::to_vec(report).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bills a report. `jobs` maps GPU positions in `report.gpus` to their job. Pure: the
/// arithmetic is `verdant_core::accounting::bill_jobs`; this shapes it for the store.
pub fn bill(
    report: &AgentReport,
    site: Option<&SiteContext>,
    jobs: &HashMap<usize, JobRef>,
    received_ms: i64,
) -> Billed {
    let samples = report
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| GpuSample {
            node: report.node.clone(),
            window_start_ms: report.window_start_ms,
            window_end_ms: report.window_end_ms,
            gpu_uuid: g.uuid.clone(),
            gpu_index: i64::from(g.index),
            model: g.model.clone(),
            samples: i64::from(g.samples),
            mean_power_w: g.mean_power_w,
            max_power_w: g.max_power_w,
            energy_j: g.energy_j,
            energy_counter_reset: g.energy_counter_reset,
            mean_gpu_util_percent: g.mean_gpu_util_percent,
            mean_mem_util_percent: g.mean_mem_util_percent,
            memory_used_bytes: i64::try_from(g.memory_used_bytes).unwrap_or(i64::MAX),
            memory_total_bytes: i64::try_from(g.memory_total_bytes).unwrap_or(i64::MAX),
            temperature_c: g.temperature_c,
            sm_clock_mhz: i64::from(g.sm_clock_mhz),
            power_limit_w: g.power_limit_w,
            pod: g
                .pod
                .as_ref()
                .map(|p| (p.namespace.clone(), p.name.clone(), p.container.clone())),
            job_uid: jobs.get(&i).map(|j| j.uid.clone()),
        })
        .collect();
    let draws: Vec<GpuDraw> = report.gpus.iter().map(GpuWindow::draw).collect();
    let window = bill_jobs(&draws, jobs, site.map(|s| &s.window));
    let charges = site.map_or_else(Vec::new, |site| {
        window
            .jobs
            .iter()
            .filter_map(|bill| {
                bill.ledger.map(|ledger| JobCharge {
                    job_uid: bill.job.uid.clone(),
                    namespace: bill.job.namespace.clone(),
                    name: bill.job.name.clone(),
                    site: site.name.clone(),
                    energy_j: ledger.energy_j,
                    renewable_j: ledger.renewable_j,
                    grid_j: ledger.grid_j,
                    co2_g: ledger.co2_g,
                })
            })
            .collect()
    });

    Billed {
        write: ReportWrite {
            report: ReportRecord {
                node: report.node.clone(),
                window_start_ms: report.window_start_ms,
                window_end_ms: report.window_end_ms,
                received_ms,
                agent_version: report.agent_version.clone(),
                content_hash: content_hash(report),
                billing: site.map(|s| SiteBilling {
                    site: s.name.clone(),
                    gpu_power_w: s.window.gpu_power_w,
                    base_power_w: s.window.base_power_w,
                    pue: s.window.pue,
                    renewable_supply_w: s.window.renewable_supply_w,
                    grid_carbon_g_per_kwh: s.window.grid_carbon_g_per_kwh,
                    renewable_share: s.window.renewable_share(),
                }),
            },
            samples,
            charges,
        },
        node_gpu_power_w: window.gpu_power_w,
        job_watts_per_gpu: window
            .jobs
            .iter()
            .map(|bill| (bill.job.id(), bill.watts_per_gpu))
            .collect(),
        busy_gpu_watts: window.busy_gpu_watts,
        power_limits: window
            .power_limits
            .iter()
            .map(|&(i, limit_w)| PowerLimitTarget {
                uuid: report.gpus[i].uuid.clone(),
                limit_w,
            })
            .collect(),
    }
}

/// The job of a pod: its TrainingJob owner reference, else its `verdant.dev/job-name`
/// label and the jobs cache.
pub fn job_of_pod(
    pod: &CachedPod,
    job: impl Fn(&str, &str) -> Option<Arc<TrainingJob>>,
) -> Option<JobRef> {
    let namespace = pod.namespace().unwrap_or_default();
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.kind == "TrainingJob" && o.api_version.starts_with("verdant.dev/"));
    let name = owner
        .map(|o| o.name.clone())
        .or_else(|| pod.labels().get(JOB_NAME_LABEL).cloned())?;
    let cached = job(&namespace, &name);
    let uid = match (owner, &cached) {
        (Some(o), _) => o.uid.clone(),
        (None, Some(j)) => j.uid()?,
        (None, None) => return None,
    };
    let power_cap_percent = cached
        .as_ref()
        .filter(|j| j.uid().as_deref() == Some(uid.as_str()))
        .and_then(|j| j.status.as_ref())
        .and_then(|s| s.power_cap_percent);
    Some(JobRef {
        uid,
        namespace,
        name,
        power_cap_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdant_crds::wire::sample::{gpu, report};

    fn job(uid: &str, cap: Option<i32>) -> JobRef {
        JobRef {
            uid: uid.into(),
            namespace: "ml".into(),
            name: format!("job-{uid}"),
            power_cap_percent: cap,
        }
    }

    #[test]
    fn each_job_pays_its_gpus_at_the_window_share() {
        // 4 GPUs: two of job a (650 W, 600 W), one of job b (capped at 80 %), one idle.
        let mut idle = gpu(3, 70.0);
        idle.pod = None;
        let r = report(vec![gpu(0, 650.0), gpu(1, 600.0), gpu(2, 500.0), idle]);
        let jobs: HashMap<usize, JobRef> = [
            (0, job("a", None)),
            (1, job("a", None)),
            (2, job("b", Some(80))),
        ]
        .into();
        // Site: the 1,820 W of these GPUs + 400 W base, PUE 1.25 → 2,775 W facility;
        // 1,387.5 W of sun covers exactly half.
        let site = SiteContext {
            name: "solar-a".into(),
            window: SiteWindow {
                gpu_power_w: 1820.0,
                base_power_w: 400.0,
                pue: 1.25,
                renewable_supply_w: 1387.5,
                storage_discharge_w: 0.0,
                grid_carbon_g_per_kwh: 360.0,
            },
        };
        let billed = bill(&r, Some(&site), &jobs, 42);
        let charges = &billed.write.charges;
        assert_eq!(charges.len(), 2);
        let a = charges.iter().find(|c| c.job_uid == "a").unwrap();
        assert_eq!(a.energy_j, 12_500.0);
        assert_eq!(a.renewable_j, 6_250.0);
        assert_eq!(a.grid_j, 6_250.0);
        assert!((a.co2_g - 6_250.0 / 3.6e6 * 360.0).abs() < 1e-12);
        let b = charges.iter().find(|c| c.job_uid == "b").unwrap();
        assert_eq!(b.energy_j, 5_000.0);
        assert_eq!(billed.node_gpu_power_w, 1820.0);
        assert_eq!(
            billed.job_watts_per_gpu,
            vec![
                ("ml/job-a".to_owned(), 625.0),
                ("ml/job-b".to_owned(), 500.0)
            ]
        );
        assert_eq!(billed.busy_gpu_watts, Some(1750.0 / 3.0));
        assert_eq!(
            billed.power_limits,
            vec![PowerLimitTarget {
                uuid: "GPU-2".into(),
                limit_w: 560.0
            }]
        );
        let billing = billed.write.report.billing.as_ref().unwrap();
        assert_eq!(billing.renewable_share, 0.5);
        assert_eq!(billed.write.samples[0].job_uid.as_deref(), Some("a"));
        assert_eq!(billed.write.samples[3].job_uid, None);
        assert_eq!(billed.write.report.received_ms, 42);
    }

    #[test]
    fn without_a_site_nothing_is_billed_but_everything_is_kept() {
        let r = report(vec![gpu(0, 650.0)]);
        let jobs: HashMap<usize, JobRef> = [(0, job("a", None))].into();
        let billed = bill(&r, None, &jobs, 0);
        assert!(billed.write.charges.is_empty());
        assert_eq!(billed.write.samples.len(), 1);
        assert_eq!(billed.write.report.billing, None);
    }

    #[test]
    fn content_hash_tells_content_apart() {
        let a = report(vec![gpu(0, 650.0)]);
        let mut b = a.clone();
        assert_eq!(content_hash(&a), content_hash(&b));
        b.gpus[0].energy_j += 1.0;
        assert_ne!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&a).len(), 64);
    }
}
