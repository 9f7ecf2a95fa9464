//! Turbine power curves and their air-density correction.

use serde::{Deserialize, Serialize};

use super::density::STANDARD_AIR_DENSITY_KG_M3;
use crate::energy::error::PlantConfigError;

/// Electrical output against hub-height wind speed at standard air density, linearly
/// interpolated between points. Below the first point and above the last the turbine
/// produces nothing (the last point is the cut-out speed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(f64, f64)>", into = "Vec<(f64, f64)>")]
pub struct PowerCurve {
    speeds_ms: Vec<f64>,
    power_kw: Vec<f64>,
}

impl PowerCurve {
    /// Points are `(wind speed m/s, power kW)`; speeds strictly increasing and
    /// non-negative, powers non-negative, at least two points.
    pub fn new(points: &[(f64, f64)]) -> Result<Self, PlantConfigError> {
        let invalid = |reason: String| Err(PlantConfigError::InvalidPowerCurve(reason));
        if points.len() < 2 {
            return invalid(format!("needs at least 2 points, got {}", points.len()));
        }
        for (index, &(speed, power)) in points.iter().enumerate() {
            if !(0.0..=100.0).contains(&speed) {
                return invalid(format!(
                    "point {index}: wind speed {speed} m/s is not within 0 ..= 100"
                ));
            }
            if !(power >= 0.0 && power.is_finite()) {
                return invalid(format!(
                    "point {index}: power {power} kW is negative or not finite"
                ));
            }
            if index > 0 && speed <= points[index - 1].0 {
                return invalid(format!(
                    "point {index}: wind speeds must increase, {speed} follows {}",
                    points[index - 1].0
                ));
            }
        }
        Ok(Self {
            speeds_ms: points.iter().map(|p| p.0).collect(),
            power_kw: points.iter().map(|p| p.1).collect(),
        })
    }

    pub fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.speeds_ms
            .iter()
            .copied()
            .zip(self.power_kw.iter().copied())
    }

    pub fn rated_power_kw(&self) -> f64 {
        self.power_kw.iter().copied().fold(0.0, f64::max)
    }

    /// Output at standard air density.
    pub fn power_kw(&self, wind_speed_ms: f64) -> f64 {
        self.interpolate(wind_speed_ms, |index| self.speeds_ms[index])
    }

    /// Output at air density `density_kg_m3`, the IEC 61400-12 / windpowerlib correction:
    /// each curve speed v is moved to v·(1.225/ρ)^p(v), with p = 1/3 up to 7.5 m/s,
    /// 2/3 from 12.5 m/s and linear between.
    pub fn power_kw_at_density(&self, wind_speed_ms: f64, density_kg_m3: f64) -> f64 {
        // Keeps the moved speeds increasing (true for |ln ratio| < 1.2); real air is 0.7..1.6.
        let log_ratio = (STANDARD_AIR_DENSITY_KG_M3 / density_kg_m3.clamp(0.5, 2.5)).ln();
        let low_factor = (log_ratio / 3.0).exp();
        let high_factor = (log_ratio * 2.0 / 3.0).exp();
        self.interpolate(wind_speed_ms, |index| {
            let speed = self.speeds_ms[index];
            let factor = if speed <= 7.5 {
                low_factor
            } else if speed >= 12.5 {
                high_factor
            } else {
                let exponent = 1.0 / 3.0 + (speed - 7.5) / 5.0 * (1.0 / 3.0);
                (log_ratio * exponent).exp()
            };
            speed * factor
        })
    }

    /// `numpy.interp(x, speeds, powers, left=0, right=0)` over speeds computed on demand
    /// (binary search, so only the few probed points pay for a density correction).
    fn interpolate(&self, wind_speed_ms: f64, speed_at: impl Fn(usize) -> f64) -> f64 {
        let last = self.speeds_ms.len() - 1;
        if wind_speed_ms.is_nan() || wind_speed_ms < speed_at(0) {
            return 0.0;
        }
        let last_speed = speed_at(last);
        if wind_speed_ms >= last_speed {
            return if wind_speed_ms == last_speed {
                self.power_kw[last]
            } else {
                0.0
            };
        }
        // Invariant: speed_at(low) <= v < speed_at(high).
        let (mut low, mut high) = (0, last);
        let mut low_speed = speed_at(0);
        let mut high_speed = last_speed;
        while high - low > 1 {
            let middle = (low + high) / 2;
            let middle_speed = speed_at(middle);
            if middle_speed <= wind_speed_ms {
                low = middle;
                low_speed = middle_speed;
            } else {
                high = middle;
                high_speed = middle_speed;
            }
        }
        let fraction = (wind_speed_ms - low_speed) / (high_speed - low_speed);
        self.power_kw[low] + fraction * (self.power_kw[high] - self.power_kw[low])
    }
}

impl TryFrom<Vec<(f64, f64)>> for PowerCurve {
    type Error = PlantConfigError;

    fn try_from(points: Vec<(f64, f64)>) -> Result<Self, Self::Error> {
        Self::new(&points)
    }
}

impl From<PowerCurve> for Vec<(f64, f64)> {
    fn from(curve: PowerCurve) -> Self {
        curve.points().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e82_2350() -> PowerCurve {
        let kw = [
            0.0, 3.0, 25.0, 82.0, 174.0, 321.0, 532.0, 815.0, 1180.0, 1580.0, 1890.0, 2100.0,
            2250.0,
        ];
        let mut points: Vec<(f64, f64)> = kw
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64 + 1.0, *p))
            .collect();
        points.extend((14..=25).map(|v| (f64::from(v), 2350.0)));
        PowerCurve::new(&points).unwrap()
    }

    #[test]
    fn density_correction_matches_windpowerlib() {
        // windpowerlib.power_output.power_curve_density_correction with the E-82/2350
        // curve, in kW.
        let curve = e82_2350();
        for (speed, density, expected_kw) in [
            (0.0, 1.30, 0.0),
            (2.5, 1.1, 12.061_748),
            (3.0, 1.35, 30.628_997),
            (7.5, 1.2, 658.267_356),
            (10.0, 1.25, 1_611.945_858),
            (12.7, 1.18, 2_159.411_852),
            (25.0, 1.3, 0.0),
            (25.01, 1.1, 2350.0),
            (26.0, 1.225, 0.0),
        ] {
            let got = curve.power_kw_at_density(speed, density);
            assert!(
                (got - expected_kw).abs() < 1e-5,
                "{speed} m/s at {density}: {got}"
            );
        }
    }

    #[test]
    fn plain_interpolation_and_edges() {
        let curve = e82_2350();
        assert_eq!(curve.power_kw(0.5), 0.0);
        assert_eq!(curve.power_kw(1.0), 0.0);
        assert!((curve.power_kw(2.5) - 14.0).abs() < 1e-12);
        assert_eq!(curve.power_kw(25.0), 2350.0);
        assert_eq!(curve.power_kw(25.5), 0.0);
        assert_eq!(curve.power_kw(f64::NAN), 0.0);
        assert_eq!(curve.rated_power_kw(), 2350.0);
    }

    #[test]
    fn rejects_bad_curves() {
        assert!(PowerCurve::new(&[(1.0, 0.0)]).is_err());
        assert!(PowerCurve::new(&[(1.0, 0.0), (1.0, 5.0)]).is_err());
        assert!(PowerCurve::new(&[(1.0, 0.0), (2.0, -5.0)]).is_err());
        assert!(PowerCurve::new(&[(f64::NAN, 0.0), (2.0, 5.0)]).is_err());
    }
}
