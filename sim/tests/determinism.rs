//! The same inputs and seed give the same report, byte for byte, through the command's
//! whole path (manifests, weather, trace, four policies, files).

mod common;

use verdant_sim::PolicyKind;
use verdant_sim::cli::{SimulateArgs, run};

fn args(dir: &std::path::Path, out: &str, seed: u64) -> SimulateArgs {
    let mut args = SimulateArgs::new(
        &dir.join("sites"),
        &dir.join("trace.csv"),
        "2019-06-10",
        &dir.join(out),
    );
    args.days = 2;
    args.drain_days = 1;
    args.nodes_per_site = 2;
    args.seed = seed;
    args.quiet = true;
    args
}

#[test]
fn same_seed_same_report_other_seed_other_jobs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sites")).unwrap();
    common::write_sites(&dir.path().join("sites"));
    common::write_trace(&dir.path().join("trace.csv"), 40, 2, 3);

    let first = run(&args(dir.path(), "a", 1)).unwrap();
    let second = run(&args(dir.path(), "b", 1)).unwrap();
    let read = |out: &str, file: &str| std::fs::read(dir.path().join(out).join(file)).unwrap();
    assert_eq!(read("a", "report.json"), read("b", "report.json"));
    assert_eq!(read("a", "report.md"), read("b", "report.md"));
    assert_eq!(
        read("a", "renewable-share.svg"),
        read("b", "renewable-share.svg")
    );
    assert_eq!(first.report, second.report);

    // Every policy ran and the report has the documented fields.
    let json: serde_json::Value = serde_json::from_slice(&read("a", "report.json")).unwrap();
    for policy in PolicyKind::ALL {
        let p = &json["policies"][policy.name()];
        for field in [
            "renewable_kwh",
            "grid_kwh",
            "total_kwh",
            "renewable_share",
            "co2_kg",
            "deadline_misses",
            "feasible_deadline_misses",
            "delay_p50_s",
            "delay_p95_s",
            "delay_p99_s",
            "gpu_utilization",
            "suspensions",
            "restarts",
            "fraction_of_oracle",
        ] {
            assert!(p.get(field).is_some(), "{policy}: no {field} in {p}");
        }
        assert!(p["total_kwh"].as_f64().unwrap() > 0.0, "{policy} ran jobs");
    }
    assert_eq!(json["policies"]["oracle"]["fraction_of_oracle"], 1.0);
    for file in ["supply-load-solar.svg", "supply-load-wind.svg", "report.md"] {
        assert!(dir.path().join("a").join(file).is_file(), "{file} written");
    }

    run(&args(dir.path(), "c", 2)).unwrap();
    assert_ne!(
        read("a", "report.json"),
        std::fs::read(dir.path().join("c/report.json")).unwrap(),
        "another seed draws another mix of policies and slack"
    );
}

#[test]
fn bad_inputs_are_errors_that_name_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sites")).unwrap();
    common::write_sites(&dir.path().join("sites"));
    common::write_trace(&dir.path().join("trace.csv"), 5, 1, 3);

    let mut bad_date = args(dir.path(), "x", 1);
    bad_date.from = "June 1st".into();
    let err = run(&bad_date).unwrap_err().to_string();
    assert!(err.contains("--from") && err.contains("June 1st"), "{err}");

    let mut bad_step = args(dir.path(), "x", 1);
    bad_step.step_seconds = 7;
    let err = run(&bad_step).unwrap_err().to_string();
    assert!(err.contains("--step-seconds"), "{err}");

    let mut no_trace = args(dir.path(), "x", 1);
    no_trace.trace = dir.path().join("missing.csv");
    let err = run(&no_trace).unwrap_err().to_string();
    assert!(err.contains("missing.csv"), "{err}");

    let mut wrong_format = args(dir.path(), "x", 1);
    wrong_format.trace_format = verdant_sim::trace::TraceFormat::Alibaba;
    let err = run(&wrong_format).unwrap_err().to_string();
    assert!(err.contains("trace.csv") && err.contains("line 1"), "{err}");

    let mut late = args(dir.path(), "x", 1);
    late.trace_offset_days = 30.0;
    late.days = 1;
    let err = run(&late).unwrap_err().to_string();
    assert!(err.contains("--trace-offset-days"), "{err}");
}
