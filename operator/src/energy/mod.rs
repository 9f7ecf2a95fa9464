//! Energy in the operator: a site's plant from its spec, forecast providers, and the
//! `verdant-operator energy` command. The physical models live in
//! `verdant_core::energy`.

pub mod cli;
pub mod forecast;
pub mod plant;

pub use plant::{PlantMappingError, plant_from_site};
