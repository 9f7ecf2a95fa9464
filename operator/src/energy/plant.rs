//! An `EnergySite` spec as the energy models see it. The mapping lives in
//! `verdant_sim::plant`, pure (no kube, no tokio), so that the simulator models a site
//! exactly as the EnergySite controller does.

pub use verdant_sim::plant::{PlantMappingError, plant_from_site};
