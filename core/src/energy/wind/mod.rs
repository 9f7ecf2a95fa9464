//! Wind: hub-height speed, air density and density-corrected power curves, after
//! windpowerlib's `ModelChain` (logarithmic / barometric / power_curve).

pub mod density;
pub mod library;
pub mod power_curve;
pub mod profile;
pub mod turbine;
