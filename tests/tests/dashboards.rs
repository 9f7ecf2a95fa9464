//! The Grafana dashboards and the alert rules of the Helm chart against a real Prometheus
//! (Debian's `prometheus` package) scraping a running fleet: the operator and one
//! simulated agent per KWOK node (see `verdant_tests::fleet`).
//!
//! - Every dashboard is well-formed: a recent schema, the datasource as the
//!   `${datasource}` variable in every panel, target and variable, unique ids and uids.
//! - Every PromQL expression (panel targets and variable queries, with Grafana's
//!   variables filled in as Grafana would) parses and returns data, and every metric it
//!   names is exported by the operator or the agents.
//! - `promtool check rules` accepts the alert file, and the same Prometheus loads and
//!   evaluates it: every rule is healthy, and the late job of the fleet raises
//!   `VerdantJobDeadlineAtRisk`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use verdant_tests::fleet::{Binaries, Fleet};
use verdant_tests::prometheus::{self, Prometheus, ScrapeJob};
use verdant_tests::{repo_root, wait};

fn chart() -> PathBuf {
    repo_root().join("helm/verdant")
}

fn dashboards() -> anyhow::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(chart().join("dashboards"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{name} is not valid JSON: {e}"))?;
            out.push((name, value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    anyhow::ensure!(
        out.len() >= 3,
        "expected the three dashboards, found {}",
        out.len()
    );
    Ok(out)
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// A PromQL expression of a dashboard and where it comes from.
struct Expr {
    origin: String,
    promql: String,
}

/// Grafana's variables as Grafana fills them in: `All` for the template variables (their
/// `allValue` is `.*`), and ranges that span a few 1-second scrapes.
fn fill_variables(expr: &str) -> String {
    let filled = expr
        .replace("$__rate_interval", "5s")
        .replace("$__range", "10m")
        .replace("$__interval", "1s")
        .replace("$site", ".*")
        .replace("$namespace", ".*")
        .replace("$node", ".*");
    assert!(
        !filled.contains('$'),
        "an unknown variable is left in {filled}"
    );
    filled
}

/// `label_values(metric, label)` → a query that returns one series per value.
fn variable_query(query: &str) -> String {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable queries are label_values(metric, label): {query}"));
    let (metric, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("label_values needs a metric and a label: {query}"));
    format!("count by ({}) ({})", label.trim(), metric.trim())
}

fn check_shape_and_collect(
    name: &str,
    dashboard: &Value,
    uids: &mut BTreeSet<String>,
) -> Vec<Expr> {
    let datasource = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    assert!(
        dashboard["schemaVersion"].as_i64().unwrap_or(0) >= 39,
        "{name}: schemaVersion"
    );
    let uid = dashboard["uid"].as_str().unwrap_or_default().to_owned();
    assert!(
        !uid.is_empty() && uids.insert(uid.clone()),
        "{name}: uid {uid} missing or not unique"
    );
    assert!(
        dashboard["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Verdant / "))
    );

    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ds = variables.iter().find(|v| v["name"] == "datasource");
    assert!(
        ds.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "{name}: a `datasource` variable of type datasource (prometheus)"
    );
    let mut exprs = Vec::new();
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            variable["datasource"], datasource,
            "{name}: variable {}",
            variable["name"]
        );
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["definition"].as_str());
        exprs.push(Expr {
            origin: format!("{name}: variable {}", variable["name"]),
            promql: variable_query(query.expect("a variable query")),
        });
    }

    let mut ids = BTreeSet::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(panel["id"].as_i64()),
            "{name}: duplicate panel id in {title}"
        );
        let grid = &panel["gridPos"];
        assert!(
            grid["x"].as_i64().unwrap() + grid["w"].as_i64().unwrap() <= 24,
            "{name}: {title} is wider than the grid"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert!(!title.is_empty(), "{name}: a panel without a title");
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: {title} has no description"
        );
        assert_eq!(panel["datasource"], datasource, "{name}: {title}");
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "{name}: {title} has no query");
        for target in targets {
            assert_eq!(target["datasource"], datasource, "{name}: {title}");
            exprs.push(Expr {
                origin: format!(
                    "{name}: {title} ({})",
                    target["refId"].as_str().unwrap_or("?")
                ),
                promql: fill_variables(target["expr"].as_str().expect("a PromQL target")),
            });
        }
    }
    exprs
}

/// The metric names an expression uses (Verdant's, DCGM's and `up`).
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut current = String::new();
    for c in promql.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
            continue;
        }
        if current.starts_with("verdant_") || current.starts_with("DCGM_") || current == "up" {
            // Histogram series are exported under their family's name.
            let family = current
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            // A label name inside braces would start lowercase without the prefixes above.
            names.insert(family.to_owned());
        }
        current.clear();
    }
    names
}

/// The sample names of the metric families of an OpenMetrics text (from its
/// `# TYPE name type` lines, so families without a sample yet count too): counters under
/// `<name>_total`, the others under their name.
fn exported_metrics(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(name), Some("counter")) => Some(format!("{name}_total")),
                (Some(name), Some(_)) => Some(name.to_owned()),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn promtool_accepts_the_alert_rules() -> anyhow::Result<()> {
    let file = chart().join("files/alerts.yaml");
    let output = std::process::Command::new(prometheus::binary("promtool")?)
        .args(["check", "rules"])
        .arg(&file)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{text}"
    );
    assert!(text.contains("SUCCESS"), "{text}");
    Ok(())
}

#[tokio::test]
async fn every_dashboard_query_and_alert_works_against_a_real_prometheus() -> anyhow::Result<()> {
    let mut uids = BTreeSet::new();
    let mut exprs = Vec::new();
    for (name, dashboard) in dashboards()? {
        exprs.extend(check_shape_and_collect(&name, &dashboard, &mut uids));
    }

    let fleet = Fleet::start(
        "dashboards",
        Binaries {
            operator: env!("CARGO_BIN_EXE_e2e-operator"),
            agent: env!("CARGO_BIN_EXE_e2e-agent"),
        },
    )
    .await?;
    let agents = &fleet.agents;

    // Jobs named as the chart's ServiceMonitors name them; agent series get the `node`
    // label the monitors' relabeling adds.
    let operator_addr = fleet
        .operator
        .http_url
        .trim_start_matches("http://")
        .to_owned();
    let jobs = [
        ScrapeJob {
            name: "verdant-operator".into(),
            targets: vec![(operator_addr.clone(), BTreeMap::new())],
        },
        ScrapeJob {
            name: "verdant-agent".into(),
            targets: agents
                .iter()
                .map(|a| {
                    (
                        a.metrics_addr.clone(),
                        BTreeMap::from([("node".to_owned(), a.node.clone())]),
                    )
                })
                .collect(),
        },
    ];
    let alerts = chart().join("files/alerts.yaml");
    let prometheus = Prometheus::start(&jobs, &[&alerts], Duration::from_secs(1)).await?;

    wait::until(
        "every scrape target up",
        Duration::from_secs(30),
        || async {
            let targets = prometheus.targets().await?;
            let down: Vec<String> = targets
                .iter()
                .filter(|t| t["health"] != "up")
                .map(|t| format!("{} ({}: {})", t["scrapeUrl"], t["health"], t["lastError"]))
                .collect();
            Ok(if targets.len() == 1 + agents.len() && down.is_empty() {
                Ok(())
            } else {
                Err(format!("{} targets; down: {down:?}", targets.len()))
            })
        },
    )
    .await?;

    // A placement while Prometheus watches, for the placement latency panel.
    fleet
        .submit(
            "mnist-smoke",
            (1, 1),
            serde_json::json!({"policy": "Immediate"}),
            &["windpark-2010"],
        )
        .await?;

    // Every metric a dashboard names is one the operator or the agents export, and every
    // metric they export is described in docs/operations.md.
    let mut exported = exported_metrics(
        &reqwest::get(format!("{}/metrics", fleet.operator.http_url))
            .await?
            .text()
            .await?,
    );
    exported.extend(exported_metrics(
        &reqwest::get(format!("http://{}/metrics", agents[0].metrics_addr))
            .await?
            .text()
            .await?,
    ));
    let reference = std::fs::read_to_string(repo_root().join("docs/operations.md"))?;
    let undocumented: Vec<&String> = exported
        .iter()
        .filter(|name| !reference.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "metrics missing from the reference in docs/operations.md: {undocumented:?}"
    );
    exported.insert("up".to_owned());
    for expr in &exprs {
        for name in metric_names(&expr.promql) {
            assert!(
                exported.contains(&name),
                "{}: {name} is not exported by the operator or the agents\n  {}",
                expr.origin,
                expr.promql
            );
        }
    }

    // Every expression parses and returns data once a few scrapes (and the agents'
    // reports, billed as energy) are in.
    let results = wait::until(
        "every dashboard query to return data",
        Duration::from_secs(90),
        || async {
            let mut missing = Vec::new();
            for expr in &exprs {
                match prometheus.query(&expr.promql).await {
                    Err(e) => {
                        anyhow::bail!("{} does not parse: {e}\n  {}", expr.origin, expr.promql)
                    }
                    Ok(result) => {
                        let finite = result.as_array().into_iter().flatten().any(|sample| {
                            sample["value"][1]
                                .as_str()
                                .and_then(|v| v.parse::<f64>().ok())
                                .is_some_and(f64::is_finite)
                        });
                        if !finite {
                            missing.push(format!("{}: {}", expr.origin, expr.promql));
                        }
                    }
                }
            }
            Ok(if missing.is_empty() {
                Ok(exprs.len())
            } else {
                Err(format!(
                    "{} without data:\n  {}",
                    missing.len(),
                    missing.join("\n  ")
                ))
            })
        },
    )
    .await?;
    assert!(results > 40, "{results} expressions checked");

    // The alerts: loaded, evaluated, healthy; the late job raises its alert.
    wait::until(
        "every alert rule evaluated and healthy, and the late job alerted",
        Duration::from_secs(30),
        || async {
            let rules = prometheus.rules().await?;
            let mut problems = Vec::new();
            if rules.len() < 10 {
                problems.push(format!("{} rules loaded", rules.len()));
            }
            for rule in &rules {
                if rule["health"] != "ok" {
                    problems.push(format!(
                        "{}: {} {}",
                        rule["name"], rule["health"], rule["lastError"]
                    ));
                }
            }
            let late = rules
                .iter()
                .find(|r| r["name"] == "VerdantJobDeadlineAtRisk")
                .and_then(|r| r["alerts"].as_array())
                .is_some_and(|alerts| {
                    alerts.iter().any(|a| {
                        a["labels"]["trainingjob"] == "gpt-xl-eval"
                            && a["labels"]["namespace"] == fleet.ns.name()
                            && (a["state"] == "pending" || a["state"] == "firing")
                    })
                });
            if !late {
                problems.push("VerdantJobDeadlineAtRisk has no alert for gpt-xl-eval".to_owned());
            }
            Ok(if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            })
        },
    )
    .await?;
    Ok(())
}
