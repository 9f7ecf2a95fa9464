//! Turbines and groups of identical turbines: hub-height weather in, kW out.

use serde::{Deserialize, Serialize};

use super::density::{
    STANDARD_AIR_DENSITY_KG_M3, barometric_density_kg_m3, temperature_at_height_c,
};
use super::library::library_power_curve;
use super::power_curve::PowerCurve;
use super::profile::hub_height_wind_speed_ms;
use crate::energy::error::PlantConfigError;

/// A turbine model: a library type or a custom curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TurbineSpec", into = "TurbineSpec")]
pub struct Turbine {
    turbine_type: String,
    power_curve: PowerCurve,
    from_library: bool,
}

/// How a turbine is written in configuration: `{turbineType}` names a library curve;
/// adding `powerCurve: [[m/s, kW], ...]` defines a custom one under that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurbineSpec {
    pub turbine_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_curve: Option<Vec<(f64, f64)>>,
}

impl Turbine {
    /// A type from the bundled OEDB library, e.g. `"E-82/2350"`.
    pub fn from_library(turbine_type: &str) -> Result<Self, PlantConfigError> {
        Ok(Self {
            turbine_type: turbine_type.to_string(),
            power_curve: library_power_curve(turbine_type)?,
            from_library: true,
        })
    }

    /// A turbine with its own power curve, `(wind speed m/s, power kW)` points.
    pub fn custom(
        turbine_type: &str,
        power_curve_points: &[(f64, f64)],
    ) -> Result<Self, PlantConfigError> {
        Ok(Self {
            turbine_type: turbine_type.to_string(),
            power_curve: PowerCurve::new(power_curve_points)?,
            from_library: false,
        })
    }

    pub fn turbine_type(&self) -> &str {
        &self.turbine_type
    }

    pub fn power_curve(&self) -> &PowerCurve {
        &self.power_curve
    }
}

impl TryFrom<TurbineSpec> for Turbine {
    type Error = PlantConfigError;

    fn try_from(spec: TurbineSpec) -> Result<Self, Self::Error> {
        match spec.power_curve {
            Some(points) => Self::custom(&spec.turbine_type, &points),
            None => Self::from_library(&spec.turbine_type),
        }
    }
}

impl From<Turbine> for TurbineSpec {
    fn from(turbine: Turbine) -> Self {
        let power_curve = (!turbine.from_library).then(|| turbine.power_curve.points().collect());
        Self {
            turbine_type: turbine.turbine_type,
            power_curve,
        }
    }
}

/// Identical turbines at one hub height.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurbineGroup {
    #[serde(flatten)]
    pub turbine: Turbine,
    pub count: u32,
    pub hub_height_m: f64,
    /// Wake and availability losses, percent of the group's ideal output.
    #[serde(default)]
    pub loss_percent: f64,
}

/// The near-ground air a wind farm sees at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindConditions<'a> {
    /// `(height above ground m, speed m/s)` measurements.
    pub wind_speeds: &'a [(f64, f64)],
    pub roughness_length_m: Option<f64>,
    /// Surface pressure (at ground level).
    pub pressure_pa: f64,
    /// Air temperature at 2 m.
    pub temp_air_c: f64,
}

/// Height above ground the air temperature is measured at (screen height).
const TEMPERATURE_HEIGHT_M: f64 = 2.0;

impl TurbineGroup {
    pub fn new(turbine: Turbine, count: u32, hub_height_m: f64) -> Self {
        Self {
            turbine,
            count,
            hub_height_m,
            loss_percent: 0.0,
        }
    }

    pub fn with_loss_percent(mut self, loss_percent: f64) -> Self {
        self.loss_percent = loss_percent;
        self
    }

    pub fn rated_power_kw(&self) -> f64 {
        self.turbine.power_curve.rated_power_kw() * f64::from(self.count)
    }

    pub fn validate(&self) -> Result<(), PlantConfigError> {
        PlantConfigError::check_range("hubHeightM", self.hub_height_m, 1.0, 500.0)?;
        PlantConfigError::check_range("lossPercent", self.loss_percent, 0.0, 100.0)
    }

    /// Wind speed and air density at hub height, `None` without any wind measurement.
    pub fn hub_conditions(&self, air: &WindConditions<'_>) -> Option<(f64, f64)> {
        let speed_ms =
            hub_height_wind_speed_ms(air.wind_speeds, self.hub_height_m, air.roughness_length_m)?;
        let temp_hub_c =
            temperature_at_height_c(air.temp_air_c, TEMPERATURE_HEIGHT_M, self.hub_height_m);
        let density = barometric_density_kg_m3(air.pressure_pa, 0.0, self.hub_height_m, temp_hub_c);
        let density = if density.is_finite() && density > 0.0 {
            density
        } else {
            STANDARD_AIR_DENSITY_KG_M3
        };
        Some((speed_ms, density))
    }

    /// Group output in kW; `None` without any wind measurement.
    pub fn power_kw(&self, air: &WindConditions<'_>) -> Option<f64> {
        let (speed_ms, density) = self.hub_conditions(air)?;
        let per_turbine_kw = self
            .turbine
            .power_curve
            .power_kw_at_density(speed_ms, density);
        Some(per_turbine_kw * f64::from(self.count) * (1.0 - self.loss_percent / 100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_scales_and_derates() {
        let group = TurbineGroup::new(Turbine::from_library("E-82/2350").unwrap(), 10, 108.0)
            .with_loss_percent(10.0);
        let air = WindConditions {
            wind_speeds: &[(108.0, 30.0)],
            roughness_length_m: None,
            pressure_pa: 101_325.0,
            temp_air_c: 15.0,
        };
        assert_eq!(group.power_kw(&air), Some(0.0), "beyond cut-out");
        let air = WindConditions {
            wind_speeds: &[(108.0, 16.0)],
            ..air
        };
        assert!((group.power_kw(&air).unwrap() - 2350.0 * 10.0 * 0.9).abs() < 1e-9);
        assert_eq!(
            group.power_kw(&WindConditions {
                wind_speeds: &[],
                ..air
            }),
            None
        );
        assert_eq!(group.rated_power_kw(), 23_500.0);
    }

    #[test]
    fn specs_round_trip_through_serde() {
        let library: TurbineGroup =
            serde_json::from_str(r#"{"turbineType":"V90/2000","count":3,"hubHeightM":105}"#)
                .unwrap();
        assert_eq!(library.turbine.power_curve().rated_power_kw(), 2007.7);
        let custom: TurbineGroup = serde_json::from_str(
            r#"{"turbineType":"tiny","powerCurve":[[3,0],[10,50],[20,50]],"count":1,"hubHeightM":30,"lossPercent":5}"#,
        )
        .unwrap();
        assert_eq!(custom.turbine.power_curve().power_kw(6.5), 25.0);
        let json = serde_json::to_string(&custom).unwrap();
        assert!(json.contains("powerCurve"), "{json}");
        let unknown = serde_json::from_str::<TurbineGroup>(
            r#"{"turbineType":"E-82/235","count":1,"hubHeightM":100}"#,
        );
        assert!(unknown.unwrap_err().to_string().contains("E-82/2350"));
    }
}
