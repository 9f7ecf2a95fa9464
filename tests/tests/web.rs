//! The operator's built-in dashboard, end to end: the JSON API over a real socket and the
//! page in real headless Chromium, on a running fleet (a real kube-apiserver, KWOK GPU
//! nodes, three EnergySites and TrainingJobs in several phases; see
//! `verdant_tests::fleet`).
//!
//! The screenshot goes to `$CARGO_TARGET_TMPDIR/web-ui.png`; with
//! `VERDANT_UPDATE_SCREENSHOT=1` it also replaces `docs/web-ui.png`.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::Api;
use serde_json::{Value, json};
use verdant_crds::EnergySite;
use verdant_tests::fleet::{Binaries, Fleet, JOBS, SITES};
use verdant_tests::{chromium, repo_root, wait};

async fn get_json(url: &str) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::get(url).await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

fn by_name<'a>(list: &'a Value, key: &str) -> BTreeMap<String, &'a Value> {
    list[key]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| (item["name"].as_str().unwrap_or_default().to_owned(), item))
        .collect()
}

#[tokio::test]
async fn the_dashboard_shows_the_sites_jobs_and_nodes_of_a_running_cluster() -> anyhow::Result<()> {
    let fleet = Fleet::start(
        "web",
        Binaries {
            operator: env!("CARGO_BIN_EXE_e2e-operator"),
            agent: env!("CARGO_BIN_EXE_e2e-agent"),
        },
    )
    .await?;
    let base = fleet.operator.http_url.clone();

    // The JSON API.
    let (status, sites) = get_json(&format!("{base}/api/v1/sites")).await?;
    assert_eq!(status, 200, "{sites}");
    let sites = by_name(&sites, "sites");
    assert_eq!(
        sites.keys().map(String::as_str).collect::<Vec<_>>(),
        ["greensboro", "grid-only", "windpark-2010"]
    );
    for (name, nodes) in SITES {
        let site = sites[name];
        assert_eq!(site["nodes"], nodes, "{name}: {site}");
        assert_eq!(site["gpus"], nodes * 8, "{name}");
        assert_eq!(
            site["forecast"].as_array().map(Vec::len),
            Some(48),
            "{name}"
        );
        assert!(site["loadKw"].as_f64().unwrap() > 0.0, "{name}: {site}");
    }
    assert_eq!(sites["greensboro"]["provider"], "Replay");
    assert!(sites["greensboro"]["solarKw"].as_f64().unwrap() >= 0.0);
    assert_eq!(sites["grid-only"]["renewableKw"], 0.0);
    assert_eq!(sites["grid-only"]["renewableSharePercent"], 0.0);
    // llama (16 GPUs) runs at greensboro, bert (4) at the wind park.
    assert_eq!(sites["greensboro"]["gpusInUse"], 16);
    assert_eq!(sites["windpark-2010"]["gpusInUse"], 4);

    let (status, jobs) = get_json(&format!("{base}/api/v1/jobs")).await?;
    assert_eq!(status, 200, "{jobs}");
    let jobs = by_name(&jobs, "jobs");
    for (name, phase) in JOBS {
        assert_eq!(
            jobs[name]["phase"],
            format!("{phase:?}"),
            "{name}: {}",
            jobs[name]
        );
        assert_eq!(jobs[name]["namespace"], fleet.ns.name());
    }
    let llama = jobs["llama-7b-pretrain"];
    assert_eq!(llama["site"], "greensboro");
    assert_eq!(llama["nodes"].as_array().map(Vec::len), Some(2));
    let sweep = jobs["resnet-sweep"];
    assert_eq!(sweep["site"], Value::Null);
    let reason = sweep["reason"].as_str().unwrap_or_default();
    assert!(
        ["DeferredForRenewables", "NoGreenWindowInForecast"].contains(&reason),
        "the deferred job says why: {sweep}"
    );
    assert!(!sweep["message"].as_str().unwrap_or_default().is_empty());
    assert_eq!(sweep["decision"]["action"], "Defer", "{sweep}");

    let (status, running) = get_json(&format!(
        "{base}/api/v1/jobs?phase=Running&namespace={}",
        fleet.ns.name()
    ))
    .await?;
    assert_eq!(status, 200);
    assert_eq!(by_name(&running, "jobs").len(), 2, "{running}");

    let (status, nodes) = get_json(&format!("{base}/api/v1/nodes")).await?;
    assert_eq!(status, 200, "{nodes}");
    let nodes = by_name(&nodes, "nodes");
    assert_eq!(nodes.len(), fleet.node_names().len());
    let llama_nodes: Vec<&str> = llama["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for node in &llama_nodes {
        assert_eq!(nodes[*node]["gpusInUse"], 8, "{}", nodes[*node]);
        assert!(nodes[*node]["gpuPowerW"].as_f64().unwrap() > 0.0);
        assert_eq!(nodes[*node]["site"], "greensboro");
    }

    let (status, error) = get_json(&format!("{base}/api/v1/pods")).await?;
    assert_eq!((status, &error["reason"]), (404, &Value::from("NotFound")));
    assert!(error["message"].as_str().unwrap().contains("/api/v1/sites"));
    let (status, error) = get_json(&format!("{base}/api/v1/nodes?zone=a")).await?;
    assert_eq!(
        (status, &error["reason"]),
        (400, &Value::from("UnknownParameter"))
    );

    // The page, in a real browser: its script fetched the API and drew everything.
    let dom = tokio::task::spawn_blocking({
        let url = format!("{base}/");
        move || chromium::dump_dom(&url, Duration::from_secs(5))
    })
    .await??;
    for (site, _) in SITES {
        assert!(
            dom.contains(&format!("data-site=\"{site}\"")),
            "site {site} not rendered:\n{dom}"
        );
    }
    for (job, phase) in JOBS {
        let row = format!("data-job=\"{}/{job}\"", fleet.ns.name());
        assert!(dom.contains(&row), "job {job} not rendered:\n{dom}");
        assert!(dom.contains(&format!("phase-{}", format!("{phase:?}").to_lowercase())));
    }
    for node in fleet.node_names() {
        assert!(
            dom.contains(&format!("data-node=\"{node}\"")),
            "node {node} missing"
        );
    }
    assert!(dom.contains(reason), "the deferral's reason is shown");
    // 48 hourly bars per site with a forecast; greensboro and the wind park have some.
    assert!(
        dom.matches("class=\"solar\"").count() + dom.matches("class=\"wind\"").count() > 10,
        "forecast bars drawn"
    );
    assert!(
        dom.contains("id=\"error\" class=\"error\" hidden"),
        "no error banner: the API answered the page"
    );

    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-ui.png");
    tokio::task::spawn_blocking({
        let (url, png) = (format!("{base}/"), png.clone());
        move || chromium::screenshot(&url, &png, (1400, 900), Duration::from_secs(5))
    })
    .await??;
    let bytes = std::fs::read(&png)?;
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 30_000,
        "a page, not a blank: {} bytes",
        bytes.len()
    );
    if std::env::var_os("VERDANT_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&png, repo_root().join("docs/web-ui.png"))?;
    }

    // Sites whose supply feeds no node, and whose errors carry a long path and a long URL.
    let long = "a-folder-whose-name-goes-on-and-on-without-a-place-to-break-a-line";
    for site in [
        json!({"metadata": {"name": "unfed"}, "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": "unfed"}},
            "location": {"latitude": 53.55, "longitude": 8.58},
            "forecast": {"provider": "Static", "static": {"constantKw": 2500}}}}),
        json!({"metadata": {"name": "lost-weather"}, "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": "lost-weather"}},
            "location": {"latitude": 36.1, "longitude": -79.95},
            "solar": [{"name": "roof", "capacityKw": 400}],
            "forecast": {"provider": "Replay", "replay": {"path": format!("{long}/{long}/weather.csv")}}}}),
        json!({"metadata": {"name": "unreachable"}, "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": "unreachable"}},
            "location": {"latitude": 45.0, "longitude": 8.0},
            "solar": [{"name": "roof", "capacityKw": 400}],
            "forecast": {"provider": "OpenMeteo", "openMeteo": {"baseUrl": format!("http://127.0.0.1:9/{long}/{long}")}}}}),
    ] {
        let mut site = site;
        site["apiVersion"] = "verdant.dev/v1alpha1".into();
        site["kind"] = "EnergySite".into();
        let site: EnergySite = serde_json::from_value(site)?;
        Api::<EnergySite>::all(fleet.client.clone())
            .create(&Default::default(), &site)
            .await?;
    }
    wait::until(
        "the new sites' status: 2,500 kW unfed, two errors",
        Duration::from_secs(60),
        || async {
            let (_, sites) = get_json(&format!("{base}/api/v1/sites")).await?;
            let sites = by_name(&sites, "sites");
            let warned = |name: &str| {
                sites.get(name).is_some_and(|s| {
                    s["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["message"].as_str().is_some_and(|m| m.contains(long)))
                })
            };
            let unfed = sites.get("unfed").map(|s| s["renewableKw"].clone());
            Ok(
                if unfed == Some(Value::from(2500.0))
                    && warned("lost-weather")
                    && warned("unreachable")
                {
                    Ok(())
                } else {
                    Err(format!(
                        "unfed {unfed:?}, lost-weather and unreachable warned: {}, {}",
                        warned("lost-weather"),
                        warned("unreachable")
                    ))
                },
            )
        },
    )
    .await?;
    // A job whose last decision quotes a name with no place to break a line.
    let unbroken = "renewables".repeat(24);
    fleet
        .submit(
            "lost-site",
            (1, 1),
            json!({"policy": "Immediate"}),
            &[&unbroken],
        )
        .await?;
    wait::until(
        "lost-site to be Unschedulable, naming its site",
        Duration::from_secs(60),
        || async {
            let (_, jobs) = get_json(&format!("{base}/api/v1/jobs")).await?;
            let jobs = by_name(&jobs, "jobs");
            let message = jobs.get("lost-site").and_then(|j| j["message"].as_str());
            Ok(match message {
                Some(m) if m.contains(&unbroken) => Ok(()),
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await?;

    // The page at 1400 px, measured by a script served with it from the same origin.
    let probed = serve_with_probe(base.clone()).await?;
    let dom = tokio::task::spawn_blocking(move || {
        chromium::dump_dom_at(&format!("{probed}/"), (1400, 900), Duration::from_secs(5))
    })
    .await??;
    let report = layout_report(&dom)?;
    // The header adds up: renewable now is the sum of the cards of sites with nodes.
    let cards = report["cards"].as_array().cloned().unwrap_or_default();
    let fed_kw: f64 = cards
        .iter()
        .filter(|c| c["nodes"].as_u64() > Some(0))
        .map(|c| c["kw"].as_f64().unwrap_or(0.0))
        .sum();
    let header_kw = report["headerKw"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (header_kw - fed_kw).abs() < 1e-6,
        "header {header_kw} kW, cards with nodes {fed_kw} kW: {report}"
    );
    assert!(
        cards
            .iter()
            .any(|c| c["site"] == "unfed" && c["nodes"] == 0)
    );
    assert!(
        report["headerNote"]
            .as_str()
            .is_some_and(|n| n.contains("2,500 kW at sites without nodes")),
        "the unfed supply is shown apart: {report}"
    );
    // Nothing is wider than its box: no card, no table and not the page scroll sideways.
    let boxes = report["boxes"].as_array().cloned().unwrap_or_default();
    assert!(boxes.len() >= SITES.len() + 3 + 2, "{report}");
    for b in &boxes {
        assert!(
            b["scroll"].as_f64() <= b["client"].as_f64(),
            "{} overflows at 1400 px: {b}",
            b["name"]
        );
    }
    assert!(
        report["page"].as_f64() <= report["viewport"].as_f64(),
        "the page scrolls sideways: {report}"
    );
    // Every last decision is readable in full: none is cut off.
    assert_eq!(
        report["clippedDecisions"],
        json!([]),
        "decisions cut off at 1400 px"
    );
    Ok(())
}

/// Measures the page once it has drawn: each site card's and table's scroll and client
/// widths, the jobs whose last decision does not fit its box, the header's renewable kW
/// and the cards' kW and node counts.
const LAYOUT_PROBE: &str = r##"
setTimeout(() => {
  const box = el => ({ name: el.dataset.site || el.querySelector("table")?.id, scroll: el.scrollWidth, client: el.clientWidth });
  const header = document.querySelector("#summary [data-kw]");
  const report = {
    viewport: document.documentElement.clientWidth,
    page: document.documentElement.scrollWidth,
    boxes: [...document.querySelectorAll(".site, .table-wrap")].map(box),
    clippedDecisions: [...document.querySelectorAll("#jobs .message")]
      .filter(m => m.scrollHeight > m.clientHeight + 1 || m.scrollWidth > m.clientWidth + 1)
      .map(m => m.closest("tr").dataset.job),
    headerKw: header ? Number(header.dataset.kw) : null,
    headerNote: header?.querySelector(".metric-note")?.textContent,
    cards: [...document.querySelectorAll(".site")].map(c => ({
      site: c.dataset.site, nodes: Number(c.dataset.nodes), kw: Number(c.dataset.renewableKw || 0) })),
  };
  const pre = document.createElement("pre");
  pre.id = "layout-report";
  pre.textContent = JSON.stringify(report);
  document.body.append(pre);
}, 3000);
"##;

/// Serves the operator's page with [`LAYOUT_PROBE`] appended, on a port of its own;
/// every other path (assets, API) is fetched from the operator, so the page's script
/// sees the same origin for both.
async fn serve_with_probe(operator: String) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let operator = operator.clone();
        async move {
            let Ok(response) = reqwest::get(format!("{operator}{uri}")).await else {
                return (
                    axum::http::StatusCode::BAD_GATEWAY,
                    [("content-type", "text/plain".to_owned())],
                    String::new(),
                );
            };
            let status = axum::http::StatusCode::from_u16(response.status().as_u16())
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_owned();
            let mut body = response.text().await.unwrap_or_default();
            if uri.path() == "/" {
                body = body.replace(
                    "</body>",
                    &format!("<script>{LAYOUT_PROBE}</script></body>"),
                );
            }
            (status, [("content-type", content_type)], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// The probe's report in a dumped DOM.
fn layout_report(dom: &str) -> anyhow::Result<Value> {
    let start = dom
        .find("<pre id=\"layout-report\">")
        .ok_or_else(|| anyhow::anyhow!("the layout probe did not report:\n{dom}"))?;
    let rest = &dom[start..];
    let text = &rest[rest.find('>').unwrap_or(0) + 1..rest.find("</pre>").unwrap_or(rest.len())];
    let json = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Ok(serde_json::from_str(&json)?)
}
