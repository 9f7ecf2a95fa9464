//! The Verdant operator: Kubernetes controllers around the pure engine in `verdant-core`.
//!
//! The placement engine, the energy models and the accounting are re-exported here so
//! users of the operator crate find them where the operator uses them.

pub use verdant_core as core;
