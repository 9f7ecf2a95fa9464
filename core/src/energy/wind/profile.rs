//! Wind speed at hub height from measurements at other heights.

/// Hellmann exponent for neutral stability over open land, used when no roughness is known.
pub const HELLMANN_EXPONENT: f64 = 1.0 / 7.0;

/// The measurement whose height is closest to `target_height_m` (the first on a tie, as
/// windpowerlib). Non-positive heights and non-finite speeds are skipped.
pub fn closest_measurement(wind_speeds: &[(f64, f64)], target_height_m: f64) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    for &(height_m, speed_ms) in wind_speeds {
        if height_m.is_nan() || height_m <= 0.0 || !speed_ms.is_finite() {
            continue;
        }
        let closer = best.is_none_or(|(best_height, _)| {
            (height_m - target_height_m).abs() < (best_height - target_height_m).abs()
        });
        if closer {
            best = Some((height_m, speed_ms));
        }
    }
    best
}

/// Wind speed at `hub_height_m`, from the measurement closest to it.
///
/// At a measured height the measurement is used as is. Otherwise the logarithmic
/// profile v·ln(h_hub/z0)/ln(h/z0) (windpowerlib's `logarithmic_profile`, no obstacle)
/// when the roughness length is known and below both heights, else the Hellmann power
/// law with exponent 1/7. Negative speeds count as calm.
pub fn hub_height_wind_speed_ms(
    wind_speeds: &[(f64, f64)],
    hub_height_m: f64,
    roughness_length_m: Option<f64>,
) -> Option<f64> {
    let (height_m, speed_ms) = closest_measurement(wind_speeds, hub_height_m)?;
    let speed_ms = speed_ms.max(0.0);
    if height_m == hub_height_m {
        return Some(speed_ms);
    }
    let roughness = roughness_length_m.filter(|z0| *z0 > 0.0 && *z0 < height_m.min(hub_height_m));
    Some(match roughness {
        Some(z0) => speed_ms * (hub_height_m / z0).ln() / (height_m / z0).ln(),
        None => speed_ms * (hub_height_m / height_m).powf(HELLMANN_EXPONENT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_closest_height_and_applies_the_log_profile() {
        let speeds = [(10.0, 5.0), (80.0, 8.0)];
        let v = hub_height_wind_speed_ms(&speeds, 135.0, Some(0.15)).unwrap();
        assert!((v - 8.0 * (135.0f64 / 0.15).ln() / (80.0f64 / 0.15).ln()).abs() < 1e-12);
        assert_eq!(
            hub_height_wind_speed_ms(&speeds, 80.0, Some(0.15)),
            Some(8.0)
        );
        // 40 m is nearer 10 m than 80 m.
        let low = hub_height_wind_speed_ms(&speeds, 40.0, Some(0.15)).unwrap();
        assert!((low - 5.0 * (40.0f64 / 0.15).ln() / (10.0f64 / 0.15).ln()).abs() < 1e-12);
    }

    #[test]
    fn falls_back_to_hellmann_without_roughness() {
        let v = hub_height_wind_speed_ms(&[(10.0, 5.0)], 100.0, None).unwrap();
        assert!((v - 5.0 * 10f64.powf(1.0 / 7.0)).abs() < 1e-12);
        assert_eq!(hub_height_wind_speed_ms(&[], 100.0, None), None);
        assert_eq!(
            hub_height_wind_speed_ms(&[(0.0, 5.0), (10.0, f64::NAN)], 100.0, None),
            None
        );
    }
}
