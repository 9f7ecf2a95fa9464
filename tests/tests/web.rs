//! The operator's built-in dashboard, end to end: the JSON API over a real socket and the
//! page in real headless Chromium, on a running fleet (a real kube-apiserver, KWOK GPU
//! nodes, three EnergySites and TrainingJobs in several phases; see
//! `verdant_tests::fleet`).
//!
//! The screenshot goes to `$CARGO_TARGET_TMPDIR/web-ui.png`; with
//! `VERDANT_UPDATE_SCREENSHOT=1` it also replaces `docs/web-ui.png`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use verdant_tests::fleet::{Binaries, Fleet, JOBS, SITES};
use verdant_tests::{chromium, repo_root};

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
    Ok(())
}
