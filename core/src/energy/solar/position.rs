//! Where the sun is: NREL's Solar Position Algorithm (Reda & Andreas 2004).
//!
//! The SPA itself comes from the `solar-positioning` crate (±0.0003°, validated against
//! NREL's reference data); this module only adapts Unix seconds and refraction inputs.

use solar_positioning::{RefractionCorrection, SolarPositions, delta_t, time::JulianDate};

use crate::energy::location::Location;

const UNIX_EPOCH_JULIAN_DAY: f64 = 2_440_587.5;
/// pvlib's default when no temperature is known.
const DEFAULT_REFRACTION_TEMP_C: f64 = 12.0;
/// ΔT (TT − UT1) in 2000; used only if the estimate is unavailable for the year.
const FALLBACK_DELTA_T_S: f64 = 64.0;

/// The sun's apparent (refraction-corrected) position seen from a site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolarPosition {
    /// Angle from the local vertical, after atmospheric refraction. Above 90° the sun is down.
    pub apparent_zenith_deg: f64,
    /// Clockwise from north: 90 east, 180 south.
    pub azimuth_deg: f64,
}

impl SolarPosition {
    pub fn is_above_horizon(&self) -> bool {
        self.apparent_zenith_deg < 90.0
    }
}

/// The time-dependent half of the SPA (the expensive part), reusable for any site.
#[derive(Debug, Clone, Copy)]
pub struct SunAtTime {
    prepared: solar_positioning::PreparedPositions,
}

impl SunAtTime {
    /// `None` only for instants outside the SPA's validity (years −2000 to 6000).
    pub fn new(time_s: i64) -> Option<Self> {
        let julian_day = time_s as f64 / 86_400.0 + UNIX_EPOCH_JULIAN_DAY;
        let delta_t_s = delta_t::estimate(crate::energy::calendar::decimal_year(time_s))
            .unwrap_or(FALLBACK_DELTA_T_S);
        let time = JulianDate::new(julian_day, delta_t_s).ok()?;
        let prepared = SolarPositions::new().for_time_from_julian(time).ok()?;
        Some(Self { prepared })
    }

    /// The position at a site. Pressure and temperature only shape refraction near the
    /// horizon; pass `None` for the standard atmosphere at the site's elevation and 12 °C.
    pub fn position_at(
        &self,
        location: &Location,
        pressure_pa: Option<f64>,
        temp_air_c: Option<f64>,
    ) -> Option<SolarPosition> {
        let site = solar_positioning::Location {
            latitude: location.latitude_deg,
            longitude: location.longitude_deg,
        };
        let pressure_hpa = pressure_pa
            .filter(|p| *p > 10_000.0 && *p < 120_000.0)
            .unwrap_or_else(|| standard_pressure_pa(location.elevation_m))
            / 100.0;
        let temp_c = temp_air_c
            .filter(|t| *t > -90.0 && *t < 70.0)
            .unwrap_or(DEFAULT_REFRACTION_TEMP_C);
        let refraction = RefractionCorrection::new(pressure_hpa, temp_c).ok();
        let position = self
            .prepared
            .at(site, location.elevation_m, refraction)
            .ok()?;
        Some(SolarPosition {
            apparent_zenith_deg: position.zenith_angle(),
            azimuth_deg: position.azimuth(),
        })
    }
}

/// Position of the sun at `time_s` seen from `location` (see [`SunAtTime::position_at`]).
pub fn solar_position(
    location: &Location,
    time_s: i64,
    pressure_pa: Option<f64>,
    temp_air_c: Option<f64>,
) -> Option<SolarPosition> {
    SunAtTime::new(time_s)?.position_at(location, pressure_pa, temp_air_c)
}

/// Standard-atmosphere surface pressure at an elevation (pvlib's `alt2pres`).
pub fn standard_pressure_pa(elevation_m: f64) -> f64 {
    100.0 * ((44_331.514 - elevation_m) / 11_880.516).powf(1.0 / 0.190_263_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NREL SPA report, Table A5.1: 2003-10-17 12:30:30 local (UTC−7), Golden CO,
    /// 1830.14 m, 820 mbar, 11 °C → topocentric zenith 50.11162°, azimuth 194.34024°.
    /// The report's ΔT is 67 s; ours is the estimate for 2003 (≈64.5 s), hence 0.001°.
    #[test]
    fn matches_the_spa_report_example() {
        let golden = Location::new(39.742476, -105.1786, 1830.14);
        let time_s = 1_066_419_030; // 2003-10-17T19:30:30Z
        let sun = solar_position(&golden, time_s, Some(82_000.0), Some(11.0)).unwrap();
        assert!(
            (sun.apparent_zenith_deg - 50.11162).abs() < 0.002,
            "{sun:?}"
        );
        assert!((sun.azimuth_deg - 194.34024).abs() < 0.002, "{sun:?}");
    }

    #[test]
    fn standard_pressure_matches_pvlib() {
        assert!((standard_pressure_pa(0.0) - 101_325.0).abs() < 1.0);
        // pvlib.atmosphere.alt2pres(273) = 98 088.16 Pa
        assert!((standard_pressure_pa(273.0) - 98_088.16).abs() < 0.05);
    }
}
