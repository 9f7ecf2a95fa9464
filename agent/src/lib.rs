//! `verdant-agent`: Verdant's GPU node agent.
//!
//! On every GPU node it samples each GPU (NVML, or a simulation for machines without
//! GPUs), aggregates the samples into report windows, attributes GPUs to the pods holding
//! them (kubelet PodResources API, else cgroups), exports DCGM-compatible Prometheus
//! metrics, reports each window to the operator through a disk buffer, and applies the
//! power limits the operator asks for. See `docs/agent.md`.
//!
//! Threads: one sampling thread owns the backend (NVML calls block) and the power
//! capping; everything else (HTTP server, attribution, reporting, the Kubernetes watch)
//! runs on a single-threaded tokio runtime, each long-running task under one
//! supervisor ([`tasks`]): when any of them ends, or the sampling thread does, the agent
//! stops and exits non-zero.

pub mod app;
pub mod attribution;
pub mod backend;
pub mod cap_record;
pub mod capping;
pub mod cli;
pub mod metrics;
pub mod report;
pub mod run;
pub mod sample;
pub mod sampler;
pub mod server;
pub mod tasks;
pub mod window;

/// The kubelet PodResources API (`k8s.io/kubelet/pkg/apis/podresources/v1`), generated
/// from the vendored `proto/podresources/v1/api.proto` (client and server; the server is
/// used by tests).
pub mod podresources_proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("v1");
}

/// The agent's version, sent with every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
