//! The bench's Markdown: one row per run, the ratios of Verdant to kube-scheduler, and
//! the operator at rest.

use std::fmt::Write as _;

use serde_json::Value;

fn num(row: &Value, key: &str, digits: usize) -> String {
    match row.get(key).and_then(Value::as_f64) {
        Some(x) => format!("{x:.digits$}"),
        None => "–".to_owned(),
    }
}

fn text<'a>(row: &'a Value, key: &str) -> &'a str {
    row.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The Markdown of `result` (`{"runs": [...], "rest": {...}}`).
pub fn markdown(result: &Value) -> String {
    let empty = Vec::new();
    let runs = result["runs"].as_array().unwrap_or(&empty);
    let mut out = String::new();
    out.push_str(
        "| scheduler | submitted as | workload | jobs | pods | pods/s | job p50 (s) | job p99 (s) | API req/pod | operator CPU (s) | operator peak RSS (MiB) | kube-scheduler CPU (s) | controller-manager CPU (s) | API server CPU (s) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in runs {
        if let Some(error) = row.get("error") {
            let _ = writeln!(
                out,
                "| {} | {} | {} | failed: {} |",
                text(row, "scheduler"),
                text(row, "submitted_as"),
                text(row, "workload"),
                error
                    .as_str()
                    .unwrap_or("")
                    .replace('|', "/")
                    .replace('\n', " ")
            );
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            text(row, "scheduler"),
            text(row, "submitted_as"),
            text(row, "workload"),
            num(row, "jobs", 0),
            num(row, "pods", 0),
            num(row, "pods_per_s", 1),
            num(row, "job_latency_p50_s", 2),
            num(row, "job_latency_p99_s", 2),
            num(row, "api_requests_per_pod", 2),
            num(row, "operator_cpu_s", 1),
            num(row, "operator_peak_rss_mib", 0),
            num(row, "kube_scheduler_cpu_s", 1),
            num(row, "kube_controller_manager_cpu_s", 1),
            num(row, "kube_apiserver_cpu_s", 1),
        );
    }
    out.push_str(&ratios(runs));
    out.push_str(&verbs(runs));
    if let Some(rest) = result.get("rest").filter(|r| r.is_object()) {
        let _ = write!(
            out,
            "\nAt rest: {} pods on {} nodes, {} gangs queued, {} s of quiet: operator {} % of a core, peak RSS {} MiB in the window ({} MiB over its life); the fleet filled at {} pods/s.\n",
            num(rest, "pods", 0),
            num(rest, "nodes", 0),
            num(rest, "pending_jobs", 0),
            num(rest, "window_s", 0),
            num(rest, "operator_cpu_percent", 2),
            num(rest, "operator_peak_rss_mib", 0),
            num(rest, "operator_lifetime_peak_rss_mib", 0),
            num(rest, "fill_pods_per_s", 1),
        );
    }
    out
}

/// Verdant's runs against the batch/v1 Job and the plain-pod runs of the same workload.
fn ratios(runs: &[Value]) -> String {
    let find = |workload: &str, submitted: &str| {
        runs.iter().find(|r| {
            text(r, "workload") == workload
                && text(r, "submitted_as") == submitted
                && r.get("error").is_none()
        })
    };
    let ratio = |a: &Value, b: &Value, key: &str| match (
        a.get(key).and_then(Value::as_f64),
        b.get(key).and_then(Value::as_f64),
    ) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
        _ => "–".to_owned(),
    };
    let mut out = String::from(
        "\n| workload | Verdant run | against | pods/s ratio (≥ 1 is faster) | p99 ratio (≤ 2 is the goal) | API req/pod ratio |\n|---|---|---|---|---|---|\n",
    );
    let mut workloads: Vec<&str> = Vec::new();
    for run in runs {
        if !workloads.contains(&text(run, "workload")) {
            workloads.push(text(run, "workload"));
        }
    }
    for workload in workloads {
        for verdant in ["TrainingJob Immediate", "TrainingJob GreenPreferred"] {
            for baseline in ["batch/v1 Job", "Pod"] {
                if let (Some(v), Some(b)) = (find(workload, verdant), find(workload, baseline)) {
                    let _ = writeln!(
                        out,
                        "| {workload} | {verdant} | {baseline} | {} | {} | {} |",
                        ratio(v, b, "pods_per_s"),
                        ratio(v, b, "job_latency_p99_s"),
                        ratio(v, b, "api_requests_per_pod"),
                    );
                }
            }
        }
    }
    out
}

/// API requests per pod by verb, one column per verb seen.
fn verbs(runs: &[Value]) -> String {
    let mut names: Vec<String> = runs
        .iter()
        .filter_map(|r| r.get("api_requests_per_pod_by_verb")?.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    let mut out = format!(
        "\nAPI requests per pod by verb:\n\n| scheduler | submitted as | workload | {} |\n|---|---|---|{}\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    for row in runs.iter().filter(|r| r.get("error").is_none()) {
        let by = &row["api_requests_per_pod_by_verb"];
        let cells: Vec<String> = names.iter().map(|v| num(by, v, 2)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            text(row, "scheduler"),
            text(row, "submitted_as"),
            text(row, "workload"),
            cells.join(" | ")
        );
    }
    out
}
