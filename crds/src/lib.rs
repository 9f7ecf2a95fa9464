//! The Verdant API: group `verdant.dev`, version `v1alpha1`.
//!
//! This crate holds the API types and their pure meaning: the custom resources
//! ([`TrainingJob`], [`EnergySite`]), the agents' wire format ([`wire`]), helpers that
//! interpret their fields (durations, quantities), the mapping from API objects to the
//! domain values of `verdant_core` (an EnergySite's [`plant`]), and the CRD manifests
//! generated from them. No client calls live here, so every other crate can depend on it
//! cheaply.

// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeated keys
// inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod energy_site;
pub mod manifests;
pub mod plant;
pub mod quantity;
pub mod training_job;
pub mod wire;

pub use energy_site::*;
pub use plant::{PlantMappingError, plant_from_site};
pub use quantity::gpu_count;
pub use training_job::*;

/// The API group of every Verdant resource.
pub const GROUP: &str = "verdant.dev";
/// The API version of every Verdant resource.
pub const VERSION: &str = "v1alpha1";

/// Regular expression that a Go-style duration (`90m`, `6h`, `1h30m`) must match.
///
/// It mirrors Go's `time.ParseDuration` without the sign: negative durations make no
/// sense for any Verdant field.
pub const GO_DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
