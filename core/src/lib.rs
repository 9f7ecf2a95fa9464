//! Verdant's domain logic, free of Kubernetes, tokio and clocks.
//!
//! The operator (live) and the simulator (offline) both drive these modules, so what
//! Verdant decides and how it bills energy can never differ between the two. Inputs are
//! plain snapshots; time is passed in as seconds since the Unix epoch.

pub mod accounting;
pub mod energy;
pub mod placement;
