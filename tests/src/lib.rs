//! The end-to-end harness: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok) per test run, a labelled namespace per
//! test, KWOK fake GPU nodes, and the machine's one real node for `tests/real_node.rs`.
//!
//! Each test binary starts its own control plane on free ports in a temporary folder the
//! first time a test asks for it, through `hack/control-plane.sh`, the same script behind
//! `make cluster-up`. A watchdog tears it down when the test process exits, also after a
//! panic or an abort. Tests share the control plane and isolate themselves by namespace;
//! cluster-scoped objects they create (nodes, EnergySites) carry the namespace's name.

pub mod agents;
pub mod bench_scale;
pub mod chromium;
pub mod control_plane;
pub mod fleet;
pub mod helm;
pub mod jobs;
pub mod kueue;
pub mod namespace;
pub mod nodes;
pub mod operator;
pub mod prometheus;
pub mod proxy;
pub mod real_node;
pub mod scenario;
pub mod service_account;
pub mod sites;
pub mod wait;

pub use control_plane::ControlPlane;
pub use namespace::TestNamespace;
pub use nodes::{FakeGpuNode, create_gpu_nodes};
pub use operator::OperatorProcess;
pub use scenario::Scenario;

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The documented examples (`docs/examples`): EnergySites, TrainingJobs, weather files.
pub fn examples_dir() -> std::path::PathBuf {
    repo_root().join("docs/examples")
}

/// A free loopback port for a process a test starts, from 20000-29999: below the kernel's
/// ephemeral range (32768 and up), where a port that `bind(0)` handed out and was closed
/// again can be taken by any outgoing connection before the process binds it, and below
/// NodePorts (30000-32767, the real node's kube-proxy). Random, so that tests picking at
/// once rarely pick the same one. `hack/control-plane.sh` picks its ports the same way.
pub fn free_port() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..200 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(unique_suffix().as_bytes());
        let port = 20_000 + (hasher.finish() % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port in 20000-29999",
    ))
}

/// A short random-enough suffix for object names (time + pid + counter).
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mixed = nanos
        ^ std::process::id().rotate_left(16)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9);
    format!("{:06x}", mixed & 0xff_ffff)
}
