//! Headless Chromium (Debian's `chromium` package, installed by `hack/prereqs.sh`) to load
//! a page the way a browser does: run its scripts, fetch its API, lay it out.
//!
//! Each run gets a new, empty profile folder, and every background feature that would
//! reach the network (component updates, sync, QUIC probes) is off: the test machine has
//! no internet and the page must not need it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

/// Where Chromium is: `$VERDANT_CHROMIUM`, else `/usr/bin/chromium`.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("VERDANT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    anyhow::ensure!(
        path.is_file(),
        "{} not found: install Debian's chromium package with `make prereqs` (hack/prereqs.sh), or set VERDANT_CHROMIUM",
        path.display()
    );
    Ok(path)
}

fn run(args: &[String], timeout: Duration) -> anyhow::Result<std::process::Output> {
    let profile = tempfile::Builder::new()
        .prefix("verdant-chromium-")
        .tempdir()?;
    let mut command = Command::new(binary()?);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args);
    // `timeout` ends a browser that hangs, rather than the test.
    let output = Command::new("timeout")
        .arg(format!("{}", timeout.as_secs().max(1)))
        .arg(command.get_program())
        .args(command.get_args())
        .output()
        .context("running chromium")?;
    anyhow::ensure!(
        output.status.success(),
        "chromium {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// Loads `url`, lets the page run for `budget` of virtual time (timers and fetches
/// complete), and returns the DOM as HTML.
pub fn dump_dom(url: &str, budget: Duration) -> anyhow::Result<String> {
    dump(url, None, budget)
}

/// [`dump_dom`] in a `width`×`height` window, for pages whose scripts measure their layout.
pub fn dump_dom_at(url: &str, size: (u32, u32), budget: Duration) -> anyhow::Result<String> {
    dump(url, Some(size), budget)
}

fn dump(url: &str, size: Option<(u32, u32)>, budget: Duration) -> anyhow::Result<String> {
    let mut args = vec![format!("--virtual-time-budget={}", budget.as_millis())];
    if let Some((width, height)) = size {
        args.push(format!("--window-size={width},{height}"));
    }
    args.extend(["--dump-dom".to_owned(), url.to_owned()]);
    let output = run(&args, budget + Duration::from_secs(60))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Loads `url` in a `width`×`height` window, lets it run for `budget` of virtual time,
/// and saves a PNG screenshot at `path`.
pub fn screenshot(
    url: &str,
    path: &Path,
    (width, height): (u32, u32),
    budget: Duration,
) -> anyhow::Result<()> {
    run(
        &[
            format!("--virtual-time-budget={}", budget.as_millis()),
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", path.display()),
            url.to_owned(),
        ],
        budget + Duration::from_secs(60),
    )?;
    anyhow::ensure!(path.is_file(), "chromium did not write {}", path.display());
    Ok(())
}
