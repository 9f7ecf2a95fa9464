//! A short run of the scale bench (`make bench-scale`): 50 KWOK nodes, 20 1×1 jobs and
//! 4 8×8 gangs per run, every run of the full bench, and a 5-second rest phase. It checks
//! that the bench measures what it claims, not how fast anything is.

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_scale_runs_every_run_at_50_nodes_and_writes_its_result() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let status = Command::new(env!("CARGO_BIN_EXE_bench-scale"))
        .args(["--nodes", "50", "--small-jobs", "20", "--gangs", "4"])
        .args([
            "--rest-seconds",
            "5",
            "--rest-pending",
            "2",
            "--settle-s",
            "1",
        ])
        .args(["--timeout-s", "300"])
        .args(["--operator", env!("CARGO_BIN_EXE_e2e-operator")])
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("bench-scale starts");
    assert!(status.success(), "bench-scale failed: {status}");
    let text = std::fs::read_to_string(out.path().join("result.json")).expect("result.json");
    let result: Value = serde_json::from_str(&text).expect("result.json is JSON");
    let runs = result["runs"].as_array().expect("runs is an array");
    let f = |run: &Value, key: &str| {
        run[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number in {run}"))
    };
    let mut seen = Vec::new();
    for run in runs {
        let workload = run["workload"].as_str().expect("workload");
        let replicas: f64 = match workload {
            "1x1" => 1.0,
            "8x8" => 8.0,
            other => panic!("unexpected workload {other}"),
        };
        let jobs = if replicas == 1.0 { 20.0 } else { 4.0 };
        assert_eq!(f(run, "jobs"), jobs, "{run}");
        assert_eq!(f(run, "pods"), jobs * replicas, "{run}");
        assert!(f(run, "pods_per_s") > 0.0, "{run}");
        assert!(
            f(run, "job_latency_p50_s") <= f(run, "job_latency_p99_s"),
            "{run}"
        );
        assert!(f(run, "api_requests_per_pod") > 0.0, "{run}");
        let verdant = run["scheduler"] == "verdant";
        assert_eq!(run["operator_cpu_s"].is_number(), verdant, "{run}");
        assert_eq!(run["operator_peak_rss_mib"].is_number(), verdant, "{run}");
        seen.push(format!(
            "{} {workload}",
            run["submitted_as"].as_str().unwrap_or("")
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "Pod 1x1",
            "Pod 8x8",
            "TrainingJob GreenPreferred 1x1",
            "TrainingJob GreenPreferred 8x8",
            "TrainingJob Immediate 1x1",
            "TrainingJob Immediate 8x8",
            "batch/v1 Job 1x1",
            "batch/v1 Job 8x8",
        ]
    );
    let rest = &result["rest"];
    assert_eq!(
        rest["pods"], 400,
        "the rest phase fills all 400 GPUs: {rest}"
    );
    assert!(
        rest["operator_cpu_percent"]
            .as_f64()
            .is_some_and(|c| c >= 0.0),
        "{rest}"
    );
    assert!(
        rest["operator_peak_rss_mib"]
            .as_f64()
            .is_some_and(|m| m > 0.0),
        "{rest}"
    );
    let table = std::fs::read_to_string(out.path().join("result.md")).expect("result.md");
    assert!(
        table.contains("| verdant | TrainingJob Immediate | 8x8 | 4 | 32 |"),
        "{table}"
    );
}
