//! The operator as a real process against a test control plane.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::ControlPlane;

/// A running `verdant-operator run`, killed (SIGKILL) when dropped.
pub struct OperatorProcess {
    child: Child,
    log: PathBuf,
    /// Base URL of its HTTP server (`/metrics`, `/livez`, `/readyz`).
    pub http_url: String,
    /// Base URL of its agents' ingest endpoint (`POST /v1/reports`).
    pub ingest_url: String,
}

impl OperatorProcess {
    /// Starts the operator binary (`env!("CARGO_BIN_EXE_e2e-operator")` in a test) with a
    /// 2-second cycle; `extra` flags are appended.
    pub fn start(plane: &ControlPlane, binary: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(plane, binary, extra, &[])
    }

    /// [`Self::start`] with the extra environment `env` (e.g. `POD_NAME` and
    /// `POD_NAMESPACE` of a replica under `--leader-elect`).
    pub fn start_with_env(
        plane: &ControlPlane,
        binary: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut args: Vec<String> = ["--cycle-seconds", "2", "--debounce-ms", "100"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start_with_kubeconfig(plane.dir(), plane.kubeconfig(), binary, &args, &env)
    }

    /// Starts `binary run --http-addr 127.0.0.1:<free port> <args>` with `kubeconfig`
    /// (for example one holding a ServiceAccount's token, to run the operator with exactly
    /// that account's rights) and the extra environment `env`. The log goes to `log_dir`.
    /// `args` must not contain `--http-addr`. Without `--ingest-addr` and `--database-url`
    /// in `args`, the ingest endpoint gets a free port and the store a SQLite file in
    /// `log_dir`.
    pub fn start_with_kubeconfig(
        log_dir: &Path,
        kubeconfig: &Path,
        binary: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let log = log_dir.join(format!("operator-{port}.log"));
        let file = std::fs::File::create(&log)?;
        // Operators of parallel tests must not share the ingest port or the energy store:
        // unless the caller chose them, each gets a free port and a SQLite file of its own.
        let mut args = args.to_vec();
        let given = |args: &[String], flag: &str| {
            args.iter()
                .position(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        let ingest_addr = match given(&args, "--ingest-addr") {
            Some(i) => match args[i].split_once('=') {
                Some((_, addr)) => addr.to_owned(),
                None => args.get(i + 1).cloned().unwrap_or_default(),
            },
            None => {
                let ingest_port = crate::free_port()?;
                let addr = format!("127.0.0.1:{ingest_port}");
                args.extend(["--ingest-addr".to_owned(), addr.clone()]);
                addr
            }
        };
        if given(&args, "--database-url").is_none() {
            let database = log_dir.join(format!("energy-{port}.db"));
            args.extend([
                "--database-url".to_owned(),
                format!("sqlite://{}", database.display()),
            ]);
        }
        let child = Command::new(binary)
            .arg("run")
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,verdant_operator=debug,kube=warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()?;
        Ok(Self {
            child,
            log,
            http_url: format!("http://127.0.0.1:{port}"),
            ingest_url: format!("http://{ingest_addr}"),
        })
    }

    /// The process id (for its CPU time and peak RSS in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (`false` once it exited, e.g. on a bad flag).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET /readyz`: the status code and the body, or `None` while nothing answers.
    pub async fn readyz(&self) -> Option<(u16, String)> {
        let response = reqwest::get(format!("{}/readyz", self.http_url))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    /// SIGKILLs the operator, as a node failure or an OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERMs the operator, as Kubernetes does on a rolling update or a drain, and waits
    /// up to `timeout` for it to exit; returns its exit status.
    pub fn terminate(
        &mut self,
        timeout: std::time::Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", self.child.id());
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the operator did not exit within {timeout:?} of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Its `/metrics` (OpenMetrics text).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.http_url))
            .await?
            .text()
            .await?)
    }

    /// The value of one series of its `/metrics` (`name{labels}` as exposed), if present.
    pub async fn metric(&self, series: &str) -> anyhow::Result<Option<f64>> {
        Ok(metric_value(&self.metrics().await?, series))
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("===== operator log (last 60 lines) =====");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.kill();
    }
}

/// The value of `series` (`name{labels}` as exposed) in OpenMetrics `text`, if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
