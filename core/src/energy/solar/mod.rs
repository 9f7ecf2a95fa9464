//! Solar PV: sun position, plane-of-array irradiance and the PVWatts chain.

pub mod array;
pub mod cell_temperature;
pub mod iam;
pub mod irradiance;
pub mod position;
pub mod pvwatts;
pub mod transposition;
