//! MultiKueue follow-the-sun: Verdant on a MultiKueue manager as Kueue's **External
//! dispatcher** (Kueue v0.17.0, `multiKueue.dispatcherName` other than Kueue's two
//! built-in ones). MultiKueue then creates remote Workloads only in the worker clusters
//! named in the manager Workload's `status.nominatedClusterNames`, and an external
//! controller writes that list. Verdant writes one name: the worker cluster whose
//! EnergySites have the most renewable headroom over the job's window.
//!
//! This module is the pure part: a worker's EnergySites as [`Site`]s, a site's mean
//! headroom over a window ([`site_headroom_kw`]), the ranking of clusters
//! ([`rank`]), the window of a job ([`window_s`]), and when a manager Workload waits for a
//! nomination ([`needs_nomination`]). Reading the workers' EnergySites (through the
//! kubeconfig Secrets of the `MultiKueueCluster`s) and patching the Workload is the I/O
//! side's.

use serde_json::Value;
use verdant_crds::{EnergySite, TrainingJob};

use super::workload;

/// The `multiKueue.dispatcherName` that hands nomination to Verdant.
pub const DISPATCHER_NAME: &str = "verdant.dev/follow-the-sun";
/// The window of a job without `spec.energy.estimatedDuration`: one hour.
pub const DEFAULT_WINDOW_S: i64 = 3_600;
/// One forecast step: an hour.
const STEP_S: i64 = 3_600;

/// What the dispatcher needs of one EnergySite of a worker cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub name: String,
    /// Its `Ready` condition is True.
    pub ready: bool,
    /// `status.headroomKw`: renewable output minus facility load now.
    pub headroom_now_kw: Option<f64>,
    /// `status.loadKw`: facility load now (taken as the load over the window).
    pub load_kw: f64,
    /// `status.forecast`: (start of the hour in Unix seconds, solar + wind in kW).
    pub forecast: Vec<(i64, f64)>,
}

impl Site {
    /// The dispatcher's view of an EnergySite's status.
    pub fn from_energy_site(site: &EnergySite) -> Self {
        let status = site.status.clone().unwrap_or_default();
        Site {
            name: site.metadata.name.clone().unwrap_or_default(),
            ready: status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            headroom_now_kw: status.headroom_kw,
            load_kw: status.load_kw.unwrap_or(0.0),
            forecast: status
                .forecast
                .iter()
                .map(|p| (p.time.0.as_second(), p.solar_kw + p.wind_kw))
                .collect(),
        }
    }
}

/// The window a job is ranked over: its `spec.energy.estimatedDuration`, else an hour.
pub fn window_s(job: &TrainingJob) -> i64 {
    job.spec
        .energy
        .estimated_duration
        .map(|d| std::time::Duration::from(d).as_secs() as i64)
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_WINDOW_S)
}

/// A site's mean renewable headroom in kW over `[now_s, now_s + window_s)`: each forecast
/// hour's renewable output minus the load now, weighted by its overlap with the window;
/// a part of the window that no forecast hour covers counts at the headroom now. None for
/// a site that is not Ready or has neither a forecast nor a headroom.
pub fn site_headroom_kw(site: &Site, now_s: i64, window_s: i64) -> Option<f64> {
    if !site.ready || window_s <= 0 {
        return None;
    }
    let end = now_s + window_s;
    let mut covered = 0i64;
    let mut sum = 0.0;
    for &(start, renewable) in &site.forecast {
        let overlap = (start + STEP_S).min(end) - start.max(now_s);
        if overlap > 0 {
            covered += overlap;
            sum += (renewable - site.load_kw) * overlap as f64;
        }
    }
    let rest = window_s - covered.min(window_s);
    if rest > 0 {
        sum += site.headroom_now_kw? * rest as f64;
    }
    Some(sum / window_s as f64)
}

/// One worker cluster's place in the ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterScore {
    /// The `MultiKueueCluster`'s name (what `nominatedClusterNames` holds).
    pub cluster: String,
    /// The best site's mean headroom over the window; None when no site could be scored
    /// (none Ready, none with status, or the worker unreadable).
    pub headroom_kw: Option<f64>,
    /// That site.
    pub site: Option<String>,
}

/// Worker clusters ranked by renewable headroom over the window, best first: a cluster
/// scores its best site (Verdant on the worker places the gang there); clusters without a
/// score come last; ties go by name, so the ranking is stable.
pub fn rank(clusters: &[(String, Vec<Site>)], now_s: i64, window_s: i64) -> Vec<ClusterScore> {
    let mut scores: Vec<ClusterScore> = clusters
        .iter()
        .map(|(cluster, sites)| {
            let best = sites
                .iter()
                .filter_map(|s| site_headroom_kw(s, now_s, window_s).map(|h| (h, &s.name)))
                .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)));
            ClusterScore {
                cluster: cluster.clone(),
                headroom_kw: best.map(|b| b.0),
                site: best.map(|b| b.1.clone()),
            }
        })
        .collect();
    scores.sort_by(|a, b| match (a.headroom_kw, b.headroom_kw) {
        (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.cluster.cmp(&b.cluster)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cluster.cmp(&b.cluster),
    });
    scores
}

/// The clusters to nominate and why: the best-ranked cluster alone, so that the job runs
/// there and nowhere else. With no score at all (no worker's EnergySites readable), every
/// cluster is nominated, as Kueue's all-at-once dispatcher would, so that a job is never
/// held back by missing energy data. None without clusters.
pub fn nominate(ranking: &[ClusterScore]) -> Option<(Vec<String>, String)> {
    let best = ranking.first()?;
    Some(match (best.headroom_kw, &best.site) {
        (Some(kw), Some(site)) => {
            let others: Vec<String> = ranking[1..]
                .iter()
                .map(|s| match s.headroom_kw {
                    Some(h) => format!("{} {h:.0} kW", s.cluster),
                    None => format!("{} unknown", s.cluster),
                })
                .collect();
            let reason = if others.is_empty() {
                format!(
                    "{}: site {site} has {kw:.0} kW renewable headroom over the window",
                    best.cluster
                )
            } else {
                format!(
                    "{}: site {site} has {kw:.0} kW renewable headroom over the window (others: {})",
                    best.cluster,
                    others.join(", ")
                )
            };
            (vec![best.cluster.clone()], reason)
        }
        _ => (
            ranking.iter().map(|s| s.cluster.clone()).collect(),
            "no worker's EnergySite status readable: all clusters nominated".to_string(),
        ),
    })
}

/// Whether a manager Workload waits for Verdant's nomination, as Kueue's own dispatchers
/// decide: it holds a quota reservation, is not finished, its MultiKueue admission check
/// (`check`) is Pending, no cluster is assigned (`status.clusterName`), and none is
/// nominated yet. A nomination once written is kept: changing it would delete the remote
/// Workloads MultiKueue created for it.
pub fn needs_nomination(wl: &Value, check: &str) -> bool {
    let status = &wl["status"];
    let pending = status["admissionChecks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == check && c["state"] == "Pending");
    let nominated = status["nominatedClusterNames"]
        .as_array()
        .is_some_and(|n| !n.is_empty());
    pending
        && workload::has_quota_reservation(wl)
        && !workload::is_finished(wl)
        && status["clusterName"].as_str().is_none()
        && !nominated
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const H: i64 = 3_600;

    fn site(name: &str, now_kw: f64, load: f64, forecast: &[(i64, f64)]) -> Site {
        Site {
            name: name.into(),
            ready: true,
            headroom_now_kw: Some(now_kw),
            load_kw: load,
            forecast: forecast.to_vec(),
        }
    }

    #[test]
    fn headroom_is_the_forecast_minus_load_averaged_over_the_window() {
        // Hours 0 and 1: 500 and 100 kW renewable, load 200 kW.
        let s = site("a", 300.0, 200.0, &[(0, 500.0), (H, 100.0)]);
        assert_eq!(site_headroom_kw(&s, 0, H), Some(300.0));
        assert_eq!(site_headroom_kw(&s, 0, 2 * H), Some(100.0));
        // Half of hour 0 and half of hour 1.
        assert_eq!(site_headroom_kw(&s, H / 2, H), Some(100.0));
        // Past the forecast: the headroom now fills the rest.
        assert_eq!(site_headroom_kw(&s, H, 2 * H), Some((-100.0 + 300.0) / 2.0));
    }

    #[test]
    fn a_site_without_data_or_not_ready_has_no_score() {
        let mut s = site("a", 50.0, 0.0, &[]);
        assert_eq!(site_headroom_kw(&s, 0, H), Some(50.0), "headroom now only");
        s.headroom_now_kw = None;
        assert_eq!(site_headroom_kw(&s, 0, H), None);
        let mut r = site("b", 50.0, 0.0, &[(0, 80.0)]);
        r.ready = false;
        assert_eq!(site_headroom_kw(&r, 0, H), None);
    }

    #[test]
    fn the_sunny_cluster_ranks_first_and_flips_with_the_supply() {
        let sunny = |kw| vec![site("solar", kw, 100.0, &[(0, kw + 100.0)])];
        let clusters = vec![
            ("worker-a".to_string(), sunny(900.0)),
            ("worker-b".to_string(), sunny(100.0)),
        ];
        let ranking = rank(&clusters, 0, H);
        assert_eq!(ranking[0].cluster, "worker-a");
        assert_eq!(ranking[0].headroom_kw, Some(900.0));
        assert_eq!(ranking[0].site.as_deref(), Some("solar"));
        let (names, reason) = nominate(&ranking).unwrap();
        assert_eq!(names, vec!["worker-a"]);
        assert!(
            reason.contains("worker-a: site solar has 900 kW"),
            "{reason}"
        );
        assert!(reason.contains("worker-b 100 kW"), "{reason}");

        let flipped = vec![
            ("worker-a".to_string(), sunny(-50.0)),
            ("worker-b".to_string(), sunny(700.0)),
        ];
        assert_eq!(nominate(&rank(&flipped, 0, H)).unwrap().0, vec!["worker-b"]);
    }

    #[test]
    fn a_cluster_scores_its_best_site_and_unknown_clusters_come_last() {
        let clusters = vec![
            ("c".to_string(), vec![]),
            (
                "b".to_string(),
                vec![site("x", 10.0, 0.0, &[]), site("y", 40.0, 0.0, &[])],
            ),
            ("a".to_string(), vec![site("z", 40.0, 0.0, &[])]),
        ];
        let ranking = rank(&clusters, 0, H);
        let order: Vec<_> = ranking.iter().map(|s| s.cluster.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"], "tie by name, unknown last");
        assert_eq!(ranking[1].site.as_deref(), Some("y"));
        assert_eq!(ranking[2].headroom_kw, None);
    }

    #[test]
    fn without_any_score_every_cluster_is_nominated() {
        let ranking = rank(&[("b".into(), vec![]), ("a".into(), vec![])], 0, H);
        let (names, reason) = nominate(&ranking).unwrap();
        assert_eq!(names, vec!["a", "b"]);
        assert!(reason.contains("all clusters"));
        assert_eq!(nominate(&[]), None);
    }

    #[test]
    fn a_site_is_read_from_its_status() {
        let es: EnergySite = serde_json::from_value(json!({
            "apiVersion": "verdant.dev/v1alpha1", "kind": "EnergySite",
            "metadata": {"name": "solar"},
            "spec": {"nodeSelector": {}, "location": {"latitude": 36.1, "longitude": -79.9}},
            "status": {
                "headroomKw": 60.0, "loadKw": 40.0,
                "forecast": [{"time": "1970-01-01T01:00:00Z", "solarKw": 90.0, "windKw": 10.0}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ok", "message": "",
                                "lastTransitionTime": "1970-01-01T00:00:00Z"}],
            },
        }))
        .unwrap();
        let s = Site::from_energy_site(&es);
        assert_eq!(s, site("solar", 60.0, 40.0, &[(H, 100.0)]));
    }

    #[test]
    fn a_job_window_is_its_estimated_duration_or_an_hour() {
        let job = |energy: serde_json::Value| -> TrainingJob {
            serde_json::from_value(json!({
                "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": "a", "namespace": "ns"},
                "spec": {"replicas": 1, "gpusPerReplica": 8, "template": {}, "energy": energy},
            }))
            .unwrap()
        };
        assert_eq!(window_s(&job(json!({}))), DEFAULT_WINDOW_S);
        assert_eq!(window_s(&job(json!({"estimatedDuration": "6h"}))), 6 * H);
    }

    #[test]
    fn a_workload_needs_a_nomination_once_its_quota_is_reserved() {
        let wl = |extra: serde_json::Value| {
            let mut status = json!({
                "admission": {"clusterQueue": "gpus"},
                "conditions": [{"type": "QuotaReserved", "status": "True"}],
                "admissionChecks": [{"name": "multikueue", "state": "Pending"}],
            });
            for (k, v) in extra.as_object().unwrap() {
                status[k] = v.clone();
            }
            json!({"status": status})
        };
        assert!(needs_nomination(&wl(json!({})), "multikueue"));
        assert!(!needs_nomination(&wl(json!({})), "other-check"));
        assert!(!needs_nomination(
            &wl(json!({"nominatedClusterNames": ["worker-a"]})),
            "multikueue"
        ));
        assert!(!needs_nomination(
            &wl(json!({"clusterName": "worker-a"})),
            "multikueue"
        ));
        assert!(!needs_nomination(
            &wl(json!({"admissionChecks": [{"name": "multikueue", "state": "Ready"}]})),
            "multikueue"
        ));
        assert!(!needs_nomination(
            &wl(json!({"admission": null})),
            "multikueue"
        ));
    }
}
