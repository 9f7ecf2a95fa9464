//! Sun-side irradiance: what arrives at the top of the atmosphere, and splitting a
//! global horizontal measurement into its beam and diffuse parts.

use std::f64::consts::PI;

/// pvlib's solar constant (W/m²), the one its Spencer model scales.
pub const SOLAR_CONSTANT_W_M2: f64 = 1366.1;

/// Extraterrestrial normal irradiance on a UTC day of the year (Spencer 1971, as in
/// pvlib's `get_extra_radiation(method="spencer")`).
pub fn extraterrestrial_normal_w_m2(day_of_year: u32) -> f64 {
    let day_angle = 2.0 * PI / 365.0 * (f64::from(day_of_year) - 1.0);
    let distance_factor = 1.00011
        + 0.034221 * day_angle.cos()
        + 0.00128 * day_angle.sin()
        + 0.000719 * (2.0 * day_angle).cos()
        + 0.000077 * (2.0 * day_angle).sin();
    SOLAR_CONSTANT_W_M2 * distance_factor
}

/// Beam and diffuse parts of global horizontal irradiance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamDiffuse {
    pub dni: f64,
    pub dhi: f64,
}

/// Erbs, Klein & Duffie (1982) diffuse fraction from the clearness index, with pvlib's
/// guards (`irradiance.erbs`, min cos zenith 0.065, max zenith 87°): outside them all
/// of GHI is diffuse.
pub fn erbs(ghi: f64, zenith_deg: f64, dni_extra_w_m2: f64) -> BeamDiffuse {
    const MIN_COS_ZENITH: f64 = 0.065;
    const MAX_ZENITH_DEG: f64 = 87.0;
    let cos_zenith = zenith_deg.to_radians().cos();
    let kt = (ghi / (dni_extra_w_m2 * cos_zenith.max(MIN_COS_ZENITH))).clamp(0.0, 1.0);
    let diffuse_fraction = if kt <= 0.22 {
        1.0 - 0.09 * kt
    } else if kt <= 0.8 {
        0.9511 - 0.1604 * kt + 4.388 * kt.powi(2) - 16.638 * kt.powi(3) + 12.336 * kt.powi(4)
    } else {
        0.165
    };
    let dhi = diffuse_fraction * ghi;
    let dni = (ghi - dhi) / cos_zenith;
    // NaN beam (0/0) counts as bad too.
    if zenith_deg > MAX_ZENITH_DEG || ghi < 0.0 || dni.is_nan() || dni < 0.0 {
        BeamDiffuse { dni: 0.0, dhi: ghi }
    } else {
        BeamDiffuse { dni, dhi }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spencer_matches_pvlib() {
        // pvlib.irradiance.get_extra_radiation(1) and (182)
        assert!((extraterrestrial_normal_w_m2(1) - 1_413.981_805).abs() < 1e-3);
        assert!((extraterrestrial_normal_w_m2(182) - 1_320.537_180).abs() < 1e-3);
    }

    #[test]
    fn erbs_matches_pvlib() {
        // pvlib.irradiance.erbs(ghi, zenith, doy) for three clearness regimes.
        for (ghi, zenith, doy, dni, dhi) in [
            (800.0, 30.0, 172, 696.885_129, 196.479_775),
            (300.0, 60.0, 10, 118.976_929, 240.511_535),
            (50.0, 80.0, 200, 5.645_295, 49.019_705),
            (20.0, 88.0, 200, 0.0, 20.0),
        ] {
            let got = erbs(ghi, zenith, extraterrestrial_normal_w_m2(doy));
            assert!(
                (got.dni - dni).abs() < 1e-3 && (got.dhi - dhi).abs() < 1e-3,
                "{ghi} {zenith}: {got:?}"
            );
        }
    }
}
