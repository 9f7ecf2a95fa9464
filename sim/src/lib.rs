//! Verdant's trace simulator: how green is the schedule, and what does it cost in delay?
//!
//! It replays a GPU job trace (Microsoft ITP or Alibaba) on EnergySites whose weather
//! files are replayed through `verdant_core::energy`, drives **the same placement
//! engine** the operator runs (`verdant_core::placement::run_cycle`) in simulated time,
//! and bills every window with **the same accounting** the operator uses for live jobs
//! (`verdant_core::accounting::SiteWindow::bill`), so that simulator and operator cannot
//! disagree. It compares four policies:
//!
//! - `verdant`: the engine with each job's own energy policy, as the operator runs it;
//! - `fifo`: carbon-agnostic first-come-first-served gang scheduling;
//! - `threshold-wait`: defer while the renewable share is below a threshold, up to the
//!   latest start (Wiesner et al., "Let's Wait Awhile", 2021);
//! - `oracle`: the optimum of a linear relaxation with perfect knowledge of the future
//!   ([`oracle`]), an upper bound.
//!
//! Pure and deterministic: no clock, no network, no randomness but a seeded generator;
//! the same inputs and seed give the same `report.json`, byte for byte.
//!
//! ```text
//! verdant-sim --sites DIR --trace FILE [--trace-format itp|alibaba] \
//!   --from 2019-06-01 --days 14 [--nodes-per-site 16 --gpus-per-node 8] \
//!   --policies verdant,fifo,threshold-wait,oracle --seed 1 --out DIR
//! ```
//!
//! See `docs/simulator.md` for the model and `docs/evaluation.md` for the standing
//! experiment.

pub mod civil;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod experiment;
pub mod metrics;
pub mod oracle;
pub mod outcome;
pub mod plots;
pub mod report;
pub mod simulate;
pub mod sites;
pub mod trace;
pub mod workload;

pub use cluster::{ClusterShape, PolicyKind};
pub use error::SimError;
pub use experiment::{Comparison, Experiment};
pub use simulate::{SimConfig, simulate};
pub use sites::SimSite;
pub use verdant_crds::{PlantMappingError, plant_from_site};
pub use workload::SimJob;
