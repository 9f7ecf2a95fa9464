//! What the scale bench measures besides time: the API server's request counters, the CPU
//! time and peak RSS of a process, and percentiles.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use crate::ControlPlane;

/// `apiserver_request_total` summed by (verb, resource[/subresource]).
#[derive(Clone, Debug, Default)]
pub struct ApiCounts(pub BTreeMap<(String, String), f64>);

impl ApiCounts {
    /// Scrapes the API server's `/metrics` (through `kubectl get --raw`, one GET).
    pub fn scrape(plane: &ControlPlane) -> anyhow::Result<Self> {
        let text = plane.kubectl_output(&["get", "--raw", "/metrics"])?;
        Ok(Self::parse(&text))
    }

    /// Parses the `apiserver_request_total` series of Prometheus text.
    pub fn parse(text: &str) -> Self {
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\""))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            let (resource, subresource) = (label("resource"), label("subresource"));
            let resource = if subresource.is_empty() {
                resource
            } else {
                format!("{resource}/{subresource}")
            };
            *counts.entry((label("verb"), resource)).or_insert(0.0) += value;
        }
        Self(counts)
    }

    /// The requests made between `before` and `self`, without the nodes' heartbeats (see
    /// [`is_heartbeat`]).
    pub fn since(&self, before: &ApiCounts) -> ApiCounts {
        let mut diff = BTreeMap::new();
        for (key, after) in &self.0 {
            if is_heartbeat(&key.0, &key.1) {
                continue;
            }
            let delta = after - before.0.get(key).copied().unwrap_or(0.0);
            if delta > 0.0 {
                diff.insert(key.clone(), delta);
            }
        }
        ApiCounts(diff)
    }

    /// All requests.
    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }

    /// Requests by verb.
    pub fn by_verb(&self) -> BTreeMap<String, f64> {
        let mut by = BTreeMap::new();
        for ((verb, _), n) in &self.0 {
            *by.entry(verb.clone()).or_insert(0.0) += n;
        }
        by
    }

    /// Requests by `VERB resource[/subresource]`.
    pub fn by_verb_and_resource(&self) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .map(|((verb, resource), n)| (format!("{verb} {resource}"), *n))
            .collect()
    }
}

/// Whether requests of `verb` on `resource` are the KWOK nodes' heartbeats: kwok's
/// status writes to nodes, and its list of a node's pods after each. Their rate depends
/// on the node count and the run's length, not on the pods placed, and no scheduler
/// under test makes them (neither writes nodes; the operator lists pods only to delete
/// a job's).
pub fn is_heartbeat(verb: &str, resource: &str) -> bool {
    let node_write = matches!(verb, "PATCH" | "PUT") && resource.starts_with("nodes");
    node_write || (verb == "LIST" && resource == "pods")
}

/// Recomputes a run's `api_requests_per_pod` and `api_requests_per_pod_by_verb` from its
/// `api_requests_by_verb_and_resource` without [`is_heartbeat`] requests (for a
/// `result.json` written before a request was known to be a heartbeat).
pub fn recount(row: &mut serde_json::Value) {
    let Some(pods) = row.get("pods").and_then(serde_json::Value::as_f64) else {
        return;
    };
    let Some(counts) = row
        .get_mut("api_requests_by_verb_and_resource")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    counts.retain(|key, _| {
        let (verb, resource) = key.split_once(' ').unwrap_or((key, ""));
        !is_heartbeat(verb, resource)
    });
    let mut by_verb: BTreeMap<String, f64> = BTreeMap::new();
    for (key, n) in counts.iter() {
        let verb = key.split_once(' ').map_or(key.as_str(), |(v, _)| v);
        *by_verb.entry(verb.to_owned()).or_insert(0.0) += n.as_f64().unwrap_or(0.0);
    }
    let per_pod = |n: f64| (n / pods.max(1.0) * 100.0).round() / 100.0;
    row["api_requests_per_pod"] = serde_json::json!(per_pod(by_verb.values().sum()));
    row["api_requests_per_pod_by_verb"] = by_verb
        .into_iter()
        .map(|(v, n)| (v, serde_json::json!(per_pod(n))))
        .collect::<serde_json::Map<_, _>>()
        .into();
}

/// A process's CPU time and memory, from `/proc`.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    /// utime + stime, in seconds.
    pub cpu_s: f64,
    /// VmHWM: the peak resident set since start or since [`reset_peak_rss`], in MiB.
    pub peak_rss_mib: f64,
    /// VmRSS now, in MiB.
    pub rss_mib: f64,
}

/// Samples process `pid`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces, end at the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("/proc/{pid}/stat has no field {}", i + 3))?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15; `fields` starts at field 3 (state).
    let cpu_s = (ticks(11)? + ticks(12)?) / clock_ticks_per_s();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(ProcSample {
        cpu_s,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
    })
}

/// Resets VmHWM of `pid` to its current RSS (`echo 5 > /proc/PID/clear_refs`), so the
/// next [`sample`] gives the peak of the interval.
pub fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of {pid}"))
}

fn clock_ticks_per_s() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The pid in a control plane component's pid file (`kube-scheduler`, `kube-apiserver`...).
pub fn component_pid(plane_dir: &Path, component: &str) -> Option<u32> {
    std::fs::read_to_string(plane_dir.join(format!("{component}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The `p` quantile (0..=1) of sorted `values`, nearest rank; 0 when empty.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The machine and its load, for the report.
pub fn conditions() -> serde_json::Value {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or_default();
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu_model,
        "memory_gib": (mem_gib * 10.0).round() / 10.0,
        "loadavg": load_average(),
    })
}

/// `/proc/loadavg`'s 1, 5 and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counts_sum_by_verb_and_resource_and_drop_heartbeats() {
        let before = ApiCounts::parse(
            "apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"binding\",verb=\"POST\",version=\"v1\"} 10\n\
             apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"nodes\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 5\n",
        );
        let after = ApiCounts::parse(
            "# HELP apiserver_request_total x\n\
             apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"binding\",verb=\"POST\",version=\"v1\"} 30\n\
             apiserver_request_total{code=\"409\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"binding\",verb=\"POST\",version=\"v1\"} 2\n\
             apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 20\n\
             apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"nodes\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 50\n",
        );
        let diff = after.since(&before);
        assert_eq!(diff.total(), 42.0);
        assert_eq!(diff.by_verb()["POST"], 42.0);
        assert_eq!(diff.by_verb_and_resource()["POST pods/binding"], 22.0);
        assert!(!diff.by_verb().contains_key("PATCH"));
    }

    #[test]
    fn recount_drops_heartbeats_from_a_stored_row() {
        let mut row = serde_json::json!({"pods": 10, "api_requests_per_pod": 9.0,
            "api_requests_by_verb_and_resource": {"PATCH nodes": 50.0, "LIST pods": 20.0,
                "POST pods": 10.0, "POST pods/binding": 10.0, "PATCH pods/status": 10.0}});
        recount(&mut row);
        assert_eq!(row["api_requests_per_pod"], 3.0);
        assert_eq!(row["api_requests_per_pod_by_verb"]["POST"], 2.0);
        assert_eq!(row["api_requests_per_pod_by_verb"]["PATCH"], 1.0);
        assert!(row["api_requests_per_pod_by_verb"].get("LIST").is_none());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.0);
        assert_eq!(quantile(&v, 0.99), 4.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn own_process_is_sampled() {
        let s = sample(std::process::id()).expect("own /proc");
        assert!(s.peak_rss_mib > 0.0 && s.peak_rss_mib >= s.rss_mib);
        assert!(s.cpu_s >= 0.0);
    }
}
