//! `helm`, built from its Go module by `hack/tools.sh helm` (cached), run against the
//! chart in `helm/verdant`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::Context;
use serde_json::Value;

/// The release name the tests install the chart under.
pub const RELEASE: &str = "verdant";
/// The namespace they install it into.
pub const NAMESPACE: &str = "verdant-system";

/// The chart's folder.
pub fn chart_dir() -> PathBuf {
    crate::repo_root().join("helm/verdant")
}

/// The pinned helm binary, built on first use (a few minutes the first time on a machine,
/// then cached in the tools cache like kube-apiserver and kwok).
pub fn helm_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| on_demand_tool("helm"))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Builds the tool `name` with `hack/tools.sh NAME` (cached there) and returns its path
/// (`hack/tools.sh --path NAME`); for tools that `make tools` does not build.
pub(crate) fn on_demand_tool(name: &str) -> Result<PathBuf, String> {
    let script = crate::repo_root().join("hack/tools.sh");
    let built = Command::new(&script)
        .arg(name)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !built.status.success() {
        return Err(format!(
            "`hack/tools.sh {name}` failed (Go is needed to build {name}):\n{}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    let path = Command::new(&script)
        .args(["--path", name])
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&path.stdout).trim().to_owned(),
    ))
}

/// A helm command with its state (cache, config, plugins) in `home`, so that tests
/// neither read nor write the user's helm settings, and with `kubeconfig` when given.
pub fn helm(home: &Path, kubeconfig: Option<&Path>) -> anyhow::Result<Command> {
    let mut command = Command::new(helm_binary()?);
    command
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("HELM_NAMESPACE")
        .env_remove("HELM_KUBECONTEXT");
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env("KUBECONFIG", home.join("no-cluster")),
    };
    Ok(command)
}

/// `helm install` of the chart as [`RELEASE`] into [`NAMESPACE`] (created) of the
/// cluster of `kubeconfig`, with the `--set` values `sets` and the further arguments
/// `extra` (e.g. `--wait`); returns helm's output (the release notes).
pub fn install(
    home: &Path,
    kubeconfig: &Path,
    sets: &[&str],
    extra: &[&str],
) -> anyhow::Result<String> {
    let mut install = helm(home, Some(kubeconfig))?;
    install
        .args([
            "install",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
        ])
        .arg(chart_dir())
        .args(extra);
    for set in sets {
        install.args(["--set", set]);
    }
    output(install)
}

/// Runs a command (helm, or any other) and returns stdout; an error with stdout and
/// stderr when it fails.
pub fn output(mut command: Command) -> anyhow::Result<String> {
    let described = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("running {described}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        anyhow::bail!(
            "{described} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

/// Splits a multi-document YAML stream (`helm template` output, documents separated by
/// `---` lines) into objects, skipping empty documents.
pub fn parse_manifests(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    let mut document = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            let blank = document
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
            if blank {
                document.clear();
                continue;
            }
            let value: Value = serde_yaml_ng::from_str(&document)
                .with_context(|| format!("parsing rendered YAML:\n{document}"))?;
            if !value.is_null() {
                objects.push(value);
            }
            document.clear();
        } else {
            document.push_str(line);
            document.push('\n');
        }
    }
    Ok(objects)
}
