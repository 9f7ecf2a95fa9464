//! Air density at hub height (windpowerlib's `barometric` model with a linear
//! temperature gradient).

/// ISO standard air density, the density manufacturers' power curves are quoted at.
pub const STANDARD_AIR_DENSITY_KG_M3: f64 = 1.225;
/// Temperature lapse rate of the standard atmosphere, K per metre.
const LAPSE_RATE_K_PER_M: f64 = 0.0065;
const ZERO_CELSIUS_K: f64 = 273.15;

/// Air temperature at `target_height_m` from a reading at `measured_height_m`.
pub fn temperature_at_height_c(temp_c: f64, measured_height_m: f64, target_height_m: f64) -> f64 {
    temp_c - LAPSE_RATE_K_PER_M * (target_height_m - measured_height_m)
}

/// Density from a pressure measured `pressure_height_m` above ground, assuming pressure
/// falls 1 hPa per 8 m, and the temperature at hub height.
pub fn barometric_density_kg_m3(
    pressure_pa: f64,
    pressure_height_m: f64,
    hub_height_m: f64,
    temp_hub_c: f64,
) -> f64 {
    (pressure_pa / 100.0 - (hub_height_m - pressure_height_m) / 8.0)
        * STANDARD_AIR_DENSITY_KG_M3
        * 288.15
        * 100.0
        / (101_330.0 * (temp_hub_c + ZERO_CELSIUS_K))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_windpowerlib() {
        // windpowerlib.density.barometric(98405.7, 0, 135, linear_gradient(267.57, 10, 135))
        let temp_hub_c = temperature_at_height_c(267.57 - 273.15, 10.0, 135.0);
        let rho = barometric_density_kg_m3(98_405.7, 0.0, 135.0, temp_hub_c);
        assert!((rho - 1.263_014_210).abs() < 1e-8, "{rho}");
    }
}
