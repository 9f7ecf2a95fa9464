//! The image tooling of `make images`: the OCI assembler's unit tests (Python), and a
//! round trip through a real containerd: `hack/images.sh` builds the pause image, loads
//! it into a private containerd (its own socket, root and namespace, so it never meets
//! the local node's), and runc runs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use verdant_tests::{repo_root, unique_suffix, wait};

const NAMESPACE: &str = "verdant-images-test";

fn run(command: &mut Command) -> anyhow::Result<Output> {
    let output = command
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {command:?}: {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// A containerd of this test's own, stopped (SIGTERM) when dropped.
struct PrivateContainerd {
    child: Child,
    socket: PathBuf,
}

impl PrivateContainerd {
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display(),
            ),
        )?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start containerd (make prereqs): {e}"))?;
        let containerd = Self { child, socket };
        wait::until(
            "the private containerd to serve",
            Duration::from_secs(30),
            || {
                let ready = containerd.ctr().arg("version").output();
                async move {
                    Ok(match ready {
                        Ok(out) if out.status.success() => Ok(()),
                        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                        Err(e) => Err(e.to_string()),
                    })
                }
            },
        )
        .await?;
        Ok(containerd)
    }

    fn ctr(&self) -> Command {
        let mut ctr = Command::new("ctr");
        ctr.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(NAMESPACE);
        ctr
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn images_sh(images_dir: &Path) -> Command {
    let mut command = Command::new(repo_root().join("hack/images.sh"));
    command.env("VERDANT_IMAGES_DIR", images_dir);
    command
}

#[test]
fn oci_assembler_unit_tests_pass() -> anyhow::Result<()> {
    let output = run(Command::new("python3")
        .args(["-m", "unittest", "-v", "hack/oci_image_test.py"])
        .current_dir(repo_root()))?;
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(report.contains("\nOK"), "unittest report:\n{report}");
    Ok(())
}

#[tokio::test]
async fn pause_image_builds_loads_into_containerd_and_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let images = dir.path().join("images");
    run(images_sh(&images).args(["build", "pause"]))?;
    assert!(images.join("pause.tar").is_file());
    assert!(images.join("pause.inputs").is_file());

    let containerd = PrivateContainerd::start(&dir.path().join("containerd")).await?;
    let load = |command: &mut Command| {
        command
            .args(["load", "--address"])
            .arg(&containerd.socket)
            .args(["--namespace", NAMESPACE, "pause"]);
        run(command)
    };
    let first = load(&mut images_sh(&images))?;
    let first_log = String::from_utf8_lossy(&first.stderr);
    assert!(
        first_log.contains("loaded registry.k8s.io/pause:3.10"),
        "{first_log}"
    );
    // Loading again finds the same digest in containerd and imports nothing.
    let second = load(&mut images_sh(&images))?;
    let second_log = String::from_utf8_lossy(&second.stderr);
    assert!(!second_log.contains("loaded"), "{second_log}");

    let listed = run(containerd.ctr().args(["images", "ls", "-q"]))?;
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "registry.k8s.io/pause:3.10"
    );
    let id = format!("pause-{}", unique_suffix());
    let ran = run(containerd.ctr().args([
        "run",
        "--rm",
        "registry.k8s.io/pause:3.10",
        &id,
        "/pause",
        "-v",
    ]))?;
    assert!(
        String::from_utf8_lossy(&ran.stdout).starts_with("pause.c v3.10"),
        "pause -v printed: {}",
        String::from_utf8_lossy(&ran.stdout)
    );
    Ok(())
}
