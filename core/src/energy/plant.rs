//! A site's generation: its PV arrays and wind turbines under one weather record.

use serde::{Deserialize, Serialize};

use super::calendar::utc_day_of_year;
use super::error::PlantConfigError;
use super::location::Location;
use super::solar::array::{PvArray, SolarConditions};
use super::solar::irradiance::{BeamDiffuse, erbs, extraterrestrial_normal_w_m2};
use super::solar::position::{SolarPosition, SunAtTime, standard_pressure_pa};
use super::weather::WeatherRecord;
use super::wind::profile::hub_height_wind_speed_ms;
use super::wind::turbine::{TurbineGroup, WindConditions};

/// pvlib's ModelChain assumptions when a record lacks them.
const DEFAULT_PV_TEMP_AIR_C: f64 = 20.0;
const DEFAULT_PV_WIND_SPEED_MS: f64 = 0.0;
/// ISO standard atmosphere at sea level, for air density when no temperature is known.
const DEFAULT_WIND_TEMP_AIR_C: f64 = 15.0;
/// Beyond this zenith a beam reading says more about the sensor than the sun (pvlib's
/// Erbs cut-off); closure then assigns everything to diffuse.
const MAX_BEAM_ZENITH_DEG: f64 = 87.0;

/// A generation site. Built through [`Plant::new`], which validates every part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PlantSpec", into = "PlantSpec")]
pub struct Plant {
    location: Location,
    arrays: Vec<PvArray>,
    turbine_groups: Vec<TurbineGroup>,
}

/// A plant as written in configuration (camelCase, validated on the way in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlantSpec {
    pub location: Location,
    #[serde(default)]
    pub arrays: Vec<PvArray>,
    #[serde(default)]
    pub turbine_groups: Vec<TurbineGroup>,
}

/// AC output of a plant at one instant.
///
/// A part with no usable inputs (no irradiance; no wind speed) reports 0 kW and sets its
/// `*_inputs_missing` flag, so callers can tell "no power" from "no data".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PlantOutput {
    pub solar_kw: f64,
    pub wind_kw: f64,
    pub solar_inputs_missing: bool,
    pub wind_inputs_missing: bool,
}

impl PlantOutput {
    pub fn total_kw(&self) -> f64 {
        self.solar_kw + self.wind_kw
    }
}

impl Plant {
    pub fn new(
        location: Location,
        arrays: Vec<PvArray>,
        turbine_groups: Vec<TurbineGroup>,
    ) -> Result<Self, PlantConfigError> {
        location.validate()?;
        for (index, array) in arrays.iter().enumerate() {
            array
                .validate()
                .map_err(|e| e.within(&format!("arrays[{index}].")))?;
        }
        for (index, group) in turbine_groups.iter().enumerate() {
            group
                .validate()
                .map_err(|e| e.within(&format!("turbineGroups[{index}].")))?;
        }
        Ok(Self {
            location,
            arrays,
            turbine_groups,
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn arrays(&self) -> &[PvArray] {
        &self.arrays
    }

    pub fn turbine_groups(&self) -> &[TurbineGroup] {
        &self.turbine_groups
    }

    /// Sum of the arrays' inverter AC nameplates plus the turbines' rated power.
    pub fn nameplate_kw(&self) -> f64 {
        self.arrays
            .iter()
            .map(PvArray::ac_nameplate_kw)
            .sum::<f64>()
            + self
                .turbine_groups
                .iter()
                .map(TurbineGroup::rated_power_kw)
                .sum::<f64>()
    }

    /// Output under one weather record.
    ///
    /// Missing inputs: GHI alone is split by Erbs; any two of GHI/DNI/DHI give the third
    /// by closure (GHI = DHI + DNI·cos z); fewer means no solar data. Air temperature
    /// defaults to 20 °C and wind to 0 m/s for the cells (pvlib's ModelChain), pressure
    /// to the standard atmosphere at the site's elevation and temperature to 15 °C for
    /// air density. A missing roughness length switches the wind profile to Hellmann 1/7.
    pub fn power_kw(&self, weather: &WeatherRecord) -> PlantOutput {
        self.power_kw_with_sun(weather, None)
    }

    /// [`Plant::power_kw`] reusing the time-dependent half of the solar position, which
    /// is most of its cost, across plants that share `weather.time_s`.
    pub fn power_kw_with_sun(
        &self,
        weather: &WeatherRecord,
        sun_at_time: Option<&SunAtTime>,
    ) -> PlantOutput {
        let mut output = PlantOutput::default();
        if !self.arrays.is_empty() {
            match self.solar_conditions(weather, sun_at_time) {
                Some(conditions) => {
                    output.solar_kw = self
                        .arrays
                        .iter()
                        .map(|a| a.output(&conditions).ac_kw)
                        .sum()
                }
                None => output.solar_inputs_missing = true,
            }
        }
        if !self.turbine_groups.is_empty() {
            let air = self.wind_conditions(weather);
            for group in &self.turbine_groups {
                match group.power_kw(&air) {
                    Some(kw) => output.wind_kw += kw,
                    None => output.wind_inputs_missing = true,
                }
            }
        }
        output
    }

    /// Output for each record of a series, in order.
    pub fn power_series_kw(&self, weather: &[WeatherRecord]) -> Vec<PlantOutput> {
        weather.iter().map(|record| self.power_kw(record)).collect()
    }

    /// Sun and sky for the arrays; `None` when the record lacks the irradiance.
    pub fn solar_conditions(
        &self,
        weather: &WeatherRecord,
        sun_at_time: Option<&SunAtTime>,
    ) -> Option<SolarConditions> {
        let finite = |value: Option<f64>| value.filter(|v| v.is_finite());
        let (ghi, dni, dhi) = (
            finite(weather.ghi),
            finite(weather.dni),
            finite(weather.dhi),
        );
        if ghi.is_none() && (dni.is_none() || dhi.is_none()) {
            return None;
        }
        let temp_air_c = finite(weather.temp_air_c);
        let sun = match sun_at_time {
            Some(prepared) => {
                prepared.position_at(&self.location, weather.pressure_pa, temp_air_c)?
            }
            None => SunAtTime::new(weather.time_s)?.position_at(
                &self.location,
                weather.pressure_pa,
                temp_air_c,
            )?,
        };
        let dni_extra_w_m2 = extraterrestrial_normal_w_m2(utc_day_of_year(weather.time_s));
        let BeamDiffuse { dni, dhi } = complete_irradiance(&sun, ghi, dni, dhi, dni_extra_w_m2);
        let ghi =
            ghi.unwrap_or_else(|| dhi + dni * sun.apparent_zenith_deg.to_radians().cos().max(0.0));
        let wind_speed_10m_ms =
            hub_height_wind_speed_ms(&weather.wind_speeds, 10.0, weather.roughness_length_m)
                .unwrap_or(DEFAULT_PV_WIND_SPEED_MS);
        Some(SolarConditions {
            sun,
            ghi,
            dni,
            dhi,
            dni_extra_w_m2,
            temp_air_c: temp_air_c.unwrap_or(DEFAULT_PV_TEMP_AIR_C),
            wind_speed_10m_ms,
            albedo: weather.albedo.filter(|a| (0.0..=1.0).contains(a)),
        })
    }

    /// The air the turbines see, with standard-atmosphere defaults.
    pub fn wind_conditions<'a>(&self, weather: &'a WeatherRecord) -> WindConditions<'a> {
        WindConditions {
            wind_speeds: &weather.wind_speeds,
            roughness_length_m: weather.roughness_length_m,
            pressure_pa: weather
                .pressure_pa
                .filter(|p| p.is_finite() && *p > 0.0)
                .unwrap_or_else(|| standard_pressure_pa(self.location.elevation_m)),
            temp_air_c: weather
                .temp_air_c
                .filter(|t| t.is_finite())
                .unwrap_or(DEFAULT_WIND_TEMP_AIR_C),
        }
    }
}

/// Beam and diffuse from whichever of GHI, DNI and DHI are known (at least GHI, or DNI
/// and DHI).
fn complete_irradiance(
    sun: &SolarPosition,
    ghi: Option<f64>,
    dni: Option<f64>,
    dhi: Option<f64>,
    dni_extra_w_m2: f64,
) -> BeamDiffuse {
    let cos_zenith = sun.apparent_zenith_deg.to_radians().cos();
    let beam_ok = sun.apparent_zenith_deg <= MAX_BEAM_ZENITH_DEG;
    match (ghi, dni, dhi) {
        (_, Some(dni), Some(dhi)) => BeamDiffuse { dni, dhi },
        (Some(ghi), Some(dni), None) => BeamDiffuse {
            dni,
            dhi: (ghi - dni * cos_zenith.max(0.0)).max(0.0),
        },
        (Some(ghi), None, Some(dhi)) if beam_ok => BeamDiffuse {
            dni: ((ghi - dhi) / cos_zenith).max(0.0),
            dhi,
        },
        (Some(ghi), None, Some(_)) => BeamDiffuse { dni: 0.0, dhi: ghi },
        (Some(ghi), None, None) => erbs(ghi, sun.apparent_zenith_deg, dni_extra_w_m2),
        (None, _, _) => BeamDiffuse { dni: 0.0, dhi: 0.0 },
    }
}

impl TryFrom<PlantSpec> for Plant {
    type Error = PlantConfigError;

    fn try_from(spec: PlantSpec) -> Result<Self, Self::Error> {
        Self::new(spec.location, spec.arrays, spec.turbine_groups)
    }
}

impl From<Plant> for PlantSpec {
    fn from(plant: Plant) -> Self {
        Self {
            location: plant.location,
            arrays: plant.arrays,
            turbine_groups: plant.turbine_groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::energy::{Turbine, TurbineGroup};

    /// 2024-06-21T17:00:00Z: early afternoon in Greensboro.
    const SUMMER_AFTERNOON_S: i64 = 1_718_989_200;

    fn hybrid() -> Plant {
        Plant::new(
            Location::new(36.1, -79.95, 273.0),
            vec![
                PvArray::new(1000.0, 25.0, 180.0),
                PvArray::new(400.0, 10.0, 270.0),
            ],
            vec![TurbineGroup::new(
                Turbine::from_library("V90/2000").unwrap(),
                3,
                105.0,
            )],
        )
        .unwrap()
    }

    fn sunny() -> WeatherRecord {
        WeatherRecord {
            ghi: Some(850.0),
            dni: Some(800.0),
            dhi: Some(120.0),
            temp_air_c: Some(28.0),
            wind_speeds: vec![(10.0, 5.0)],
            ..WeatherRecord::new(SUMMER_AFTERNOON_S)
        }
    }

    #[test]
    fn missing_inputs_are_flagged_not_guessed() {
        let plant = hybrid();
        let full = plant.power_kw(&sunny());
        assert!(full.solar_kw > 500.0 && full.wind_kw > 100.0, "{full:?}");
        assert!(!full.solar_inputs_missing && !full.wind_inputs_missing);

        let dark = plant.power_kw(&WeatherRecord {
            ghi: None,
            dni: None,
            ..sunny()
        });
        assert!(dark.solar_inputs_missing && dark.solar_kw == 0.0);
        let calm = plant.power_kw(&WeatherRecord {
            wind_speeds: vec![],
            ..sunny()
        });
        assert!(calm.wind_inputs_missing && calm.wind_kw == 0.0);

        let pv_only = Plant::new(*plant.location(), plant.arrays().to_vec(), vec![]).unwrap();
        assert!(!pv_only.power_kw(&WeatherRecord::new(0)).wind_inputs_missing);
    }

    #[test]
    fn any_two_irradiance_components_give_the_third() {
        let plant = hybrid();
        let full = plant.power_kw(&sunny()).solar_kw;
        let sun = plant.solar_conditions(&sunny(), None).unwrap().sun;
        let ghi = 120.0 + 800.0 * sun.apparent_zenith_deg.to_radians().cos();
        let closure = WeatherRecord {
            ghi: Some(ghi),
            ..sunny()
        };
        for record in [
            WeatherRecord {
                ghi: None,
                ..closure.clone()
            },
            WeatherRecord {
                dni: None,
                ..closure.clone()
            },
            WeatherRecord {
                dhi: None,
                ..closure.clone()
            },
        ] {
            let kw = plant.power_kw(&record).solar_kw;
            assert!(
                (kw - plant.power_kw(&closure).solar_kw).abs() < 1e-6,
                "{record:?}"
            );
        }
        let erbs_only = plant
            .power_kw(&WeatherRecord {
                dni: None,
                dhi: None,
                ..sunny()
            })
            .solar_kw;
        assert!(
            (erbs_only / full - 1.0).abs() < 0.15,
            "{erbs_only} vs {full}"
        );
    }

    #[test]
    fn rejects_bad_parts_by_path() {
        let err = Plant::new(
            Location::new(0.0, 0.0, 0.0),
            vec![PvArray::new(10.0, 95.0, 180.0)],
            vec![],
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("arrays[0].tiltDeg = 95"),
            "{err}"
        );
        let group = TurbineGroup::new(Turbine::from_library("V90/2000").unwrap(), 1, -3.0);
        let err = Plant::new(Location::new(0.0, 0.0, 0.0), vec![], vec![group]).unwrap_err();
        assert!(
            err.to_string().starts_with("turbineGroups[0].hubHeightM"),
            "{err}"
        );
        assert!(Plant::new(Location::new(91.0, 0.0, 0.0), vec![], vec![]).is_err());
    }

    #[test]
    fn plant_specs_deserialize_with_defaults() {
        let plant: Plant = serde_json::from_str(
            r#"{"location":{"latitudeDeg":45,"longitudeDeg":8},
                "arrays":[{"capacityKw":1000,"tiltDeg":25,"azimuthDeg":180}],
                "turbineGroups":[{"turbineType":"E-82/2350","count":2,"hubHeightM":108}]}"#,
        )
        .unwrap();
        assert_eq!(plant.arrays()[0], PvArray::new(1000.0, 25.0, 180.0));
        assert!((plant.nameplate_kw() - (1000.0 / 1.2 + 4700.0)).abs() < 1e-9);
        let round_trip: Plant =
            serde_json::from_str(&serde_json::to_string(&plant).unwrap()).unwrap();
        assert_eq!(round_trip, plant);
    }

    fn any_value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            Just(Some(f64::NAN)),
            Just(Some(f64::INFINITY)),
            Just(Some(f64::NEG_INFINITY)),
            Just(Some(1e308)),
            Just(Some(-1e308)),
            (-2000.0..2000.0f64).prop_map(Some),
        ]
    }

    proptest! {
        /// Whatever a forecast feed sends, output is finite, never negative and never
        /// above nameplate.
        #[test]
        fn output_stays_physical(
            offset_s in -4_000_000_000i64..4_000_000_000,
            ghi in any_value(), dni in any_value(), dhi in any_value(), temp in any_value(),
            pressure in any_value(), roughness in any_value(), albedo in any_value(),
            winds in prop::collection::vec((any_value(), any_value()), 0..3),
        ) {
            let plant = hybrid();
            let weather = WeatherRecord {
                time_s: SUMMER_AFTERNOON_S + offset_s,
                ghi, dni, dhi,
                temp_air_c: temp,
                wind_speeds: winds.into_iter().map(|(h, v)| (h.unwrap_or(10.0), v.unwrap_or(0.0))).collect(),
                pressure_pa: pressure,
                roughness_length_m: roughness,
                albedo,
            };
            let out = plant.power_kw(&weather);
            let solar_max = plant.arrays().iter().map(PvArray::ac_nameplate_kw).sum::<f64>();
            let wind_max = plant.turbine_groups().iter().map(TurbineGroup::rated_power_kw).sum::<f64>();
            prop_assert!(out.solar_kw.is_finite() && out.solar_kw >= 0.0 && out.solar_kw <= solar_max + 1e-9, "{out:?}");
            prop_assert!(out.wind_kw.is_finite() && out.wind_kw >= 0.0 && out.wind_kw <= wind_max + 1e-9, "{out:?}");
        }
    }
}
