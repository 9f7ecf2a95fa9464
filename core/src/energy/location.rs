//! Where a plant stands.

use serde::{Deserialize, Serialize};

use super::error::PlantConfigError;

/// A site on the ground: WGS84 degrees (north and east positive) and metres above sea level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Latitude, −90 (south pole) to 90.
    pub latitude_deg: f64,
    /// Longitude, −180 to 180, east positive.
    pub longitude_deg: f64,
    /// Ground elevation above mean sea level.
    #[serde(default)]
    pub elevation_m: f64,
}

impl Location {
    pub fn new(latitude_deg: f64, longitude_deg: f64, elevation_m: f64) -> Self {
        Self {
            latitude_deg,
            longitude_deg,
            elevation_m,
        }
    }

    pub fn validate(&self) -> Result<(), PlantConfigError> {
        PlantConfigError::check_range("location.latitudeDeg", self.latitude_deg, -90.0, 90.0)?;
        PlantConfigError::check_range("location.longitudeDeg", self.longitude_deg, -180.0, 180.0)?;
        // Dead Sea shore to Everest, with margin.
        PlantConfigError::check_range("location.elevationM", self.elevation_m, -500.0, 9000.0)
    }
}
