//! A real Prometheus server (Debian's `prometheus` package, installed by
//! `hack/prereqs.sh`) as a process of the test: its own configuration, storage folder and
//! free port, scraping the given targets and evaluating the given rule files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::wait;

/// One scrape job.
#[derive(Clone, Debug)]
pub struct ScrapeJob {
    /// The `job` label.
    pub name: String,
    /// `host:port` of each target, with extra labels for its series.
    pub targets: Vec<(String, BTreeMap<String, String>)>,
}

/// A running Prometheus, killed when dropped.
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    /// Base URL of its HTTP API.
    pub url: String,
    http: reqwest::Client,
}

/// Where a program of the `prometheus` package is: `$VERDANT_PROMETHEUS_DIR/<name>`, else
/// `/usr/bin/<name>`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("VERDANT_PROMETHEUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin"));
    let path = dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} not found: install Debian's prometheus package with `make prereqs` (hack/prereqs.sh), or point VERDANT_PROMETHEUS_DIR at a folder holding prometheus and promtool",
        path.display()
    );
    Ok(path)
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` every `interval` and evaluating `rule_files` at
    /// the same interval, and waits until it is ready.
    pub async fn start(
        jobs: &[ScrapeJob],
        rule_files: &[&Path],
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("verdant-prometheus-")
            .tempdir()?;
        let port = crate::free_port()?;
        let interval = format!("{}ms", interval.as_millis());
        // YAML is a superset of JSON: the configuration is written as JSON.
        let config = json!({
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": rule_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "scrape_configs": jobs.iter().map(|job| json!({
                "job_name": job.name,
                "static_configs": job.targets.iter().map(|(address, labels)| json!({
                    "targets": [address],
                    "labels": labels,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(binary("prometheus")?)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting prometheus")?;
        let prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let ready = format!("{}/-/ready", prometheus.url);
        let http = prometheus.http.clone();
        wait::until("Prometheus to be ready", Duration::from_secs(30), || {
            let (http, ready) = (http.clone(), ready.clone());
            async move {
                let response = http.get(&ready).send().await?;
                let status = response.status();
                Ok(if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("/-/ready answers {status}"))
                })
            }
        })
        .await
        .with_context(|| format!("Prometheus log:\n{}", prometheus.log()))?;
        Ok(prometheus)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>` with query parameters; the `data` of a success, else the
    /// server's error type and message.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(params)
            .send()
            .await?
            .json()
            .await?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => anyhow::bail!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or("no message")
            ),
        }
    }

    /// An instant query: the result vector (or scalar) as Prometheus returns it.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Value> {
        let data = self.api("query", &[("query", expr)]).await?;
        Ok(data["result"].clone())
    }

    /// The scrape targets and their health.
    pub async fn targets(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.api("targets", &[("state", "active")]).await?;
        Ok(data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every rule of every group, as `/api/v1/rules` describes them.
    pub async fn rules(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.api("rules", &[]).await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== prometheus log =====\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
