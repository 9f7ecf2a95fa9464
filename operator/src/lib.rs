//! The Verdant operator: Kubernetes controllers around the pure engine in `verdant-core`.
//!
//! Layout, one job per module:
//! - [`watches`]: each kind watched once into a cache all tasks share, subscriptions for
//!   the controllers, and the caches' readiness;
//! - [`topology`]: one picture of the cluster (node → site, overlaps, ready nodes, GPUs in
//!   use), built once per change and read by the scheduler, the site controller, the
//!   ingest billing and the web view;
//! - [`snapshot`]: the topology and the jobs → the placement engine's snapshot (pure);
//! - [`scheduler`]: the scheduling cycle (snapshot, engine, plan, wake-ups);
//! - [`reconcile`]: per-job lifecycle: the pure `transition` decides the status and the
//!   effects, the executor applies them (pods, binding, the status once, Events);
//! - [`workload`], [`constraints`], [`lifecycle`], [`supply`], [`status`]: pure helpers;
//! - [`kueue`]: TrainingJobs queued in Kueue (their Workloads, admission, eviction,
//!   finish), Kueue's jobframework re-implemented;
//! - [`site_controller`]: each EnergySite's status (forecast, load, headroom, conditions);
//! - [`energy`]: a site's plant, the forecast providers, `verdant-operator energy`;
//! - [`ingest`]: the agents' reports (`POST /v1/reports`), billed into the store;
//! - [`energy_status`]: `TrainingJob.status.energy` from the ledgers, and retention;
//! - [`store_writer`]: the energy store's writer (group commit);
//! - [`run`], [`server`], [`metrics`], [`config`], [`time_scale`]: the process around it
//!   ([`run`] supervises every task in one JoinSet);
//! - [`leader`], [`standby`]: leader election on a Lease, and what followers answer;
//! - [`web`]: the dashboard at `/` and its JSON API.
//!
//! The placement engine, the energy models and the accounting live in `verdant-core`,
//! re-exported here as [`core`].

pub use verdant_core as core;

pub mod cli;
pub mod config;
pub mod constraints;
pub mod context;
pub mod energy;
pub mod energy_status;
pub mod error;
pub mod events;
pub mod ingest;
pub mod kueue;
pub mod labels;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod plan;
pub mod reason;
pub mod reconcile;
pub mod run;
pub mod scheduler;
pub mod server;
pub mod site_controller;
pub mod snapshot;
pub mod standby;
pub mod status;
pub mod store_writer;
pub mod supply;
pub mod telemetry;
pub mod time_scale;
pub mod topology;
pub mod watches;
pub mod web;
pub mod workload;
