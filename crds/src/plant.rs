//! An `EnergySite` spec as the energy models see it: its location, PV arrays and turbine
//! groups mapped onto `verdant_core::energy::Plant`, and a Replay file's format onto the
//! weather parsers'. Pure.
//!
//! The one mapping the operator's EnergySite controller, `verdant-operator energy` and
//! the simulator use, so that a site's simulated supply is the one the operator forecasts.
//!
//! The API server validates ranges and the turbineType/powerCurve choice, but a manifest
//! read from disk (`verdant-operator energy`) has not been through it, and a library
//! turbine name can only be checked here. Every error names the field, with its path in
//! the manifest (`spec.wind[1].turbineType`), and an unknown turbine lists close matches.

use crate::{EnergySiteSpec, WeatherFormat};
use verdant_core::energy::{
    Location, Plant, PlantConfigError, PvArray, Turbine, TurbineGroup, library_turbine_types,
};

/// Why a site's plant cannot be modelled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlantMappingError {
    /// `turbineType` names no turbine of the bundled library.
    #[error(
        "{field}: unknown turbine type `{requested}`{}; the bundled windpowerlib/OEDB library has {library_size} types (`verdant-operator energy --list-turbines` prints them)",
        if suggestions.is_empty() { String::new() } else { format!(", did you mean {}?", suggestions.join(", ")) }
    )]
    UnknownTurbineType {
        /// Path of the field, e.g. `spec.wind[0].turbineType`.
        field: String,
        /// The name asked for.
        requested: String,
        /// Library names close to it, closest first.
        suggestions: Vec<String>,
        /// How many turbine types the library has.
        library_size: usize,
    },
    /// A field holds a value the models cannot use.
    #[error("{field}: {reason}")]
    Invalid {
        /// Path of the field, e.g. `spec.solar[2].tiltDegrees`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

impl PlantMappingError {
    /// The path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            Self::UnknownTurbineType { field, .. } | Self::Invalid { field, .. } => field,
        }
    }

    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The plant of a site: its location, solar arrays and wind turbine groups. `forecast`,
/// `nodeSelector`, `grid` and `pue` play no part.
pub fn plant_from_site(spec: &EnergySiteSpec) -> Result<Plant, PlantMappingError> {
    let location = Location::new(
        spec.location.latitude,
        spec.location.longitude,
        spec.location.elevation_m,
    );
    location
        .validate()
        .map_err(|e| from_core(e, "spec.location.", location_field))?;

    let mut arrays = Vec::with_capacity(spec.solar.len());
    for (index, array) in spec.solar.iter().enumerate() {
        let prefix = format!("spec.solar[{index}].");
        check_unique_name(&spec.solar[..index], &array.name, |a| &a.name, &prefix)?;
        let pv = PvArray::new(array.capacity_kw, array.tilt_degrees, array.azimuth_degrees)
            .with_losses_percent(array.losses_percent);
        pv.validate()
            .map_err(|e| from_core(e, &prefix, array_field))?;
        if array.azimuth_degrees >= 360.0 {
            return Err(PlantMappingError::invalid(
                format!("{prefix}azimuthDegrees"),
                format!(
                    "{} is out of range: expected 0 ..< 360",
                    array.azimuth_degrees
                ),
            ));
        }
        arrays.push(pv);
    }

    let mut groups = Vec::with_capacity(spec.wind.len());
    for (index, group) in spec.wind.iter().enumerate() {
        let prefix = format!("spec.wind[{index}].");
        check_unique_name(&spec.wind[..index], &group.name, |g| &g.name, &prefix)?;
        let turbine = match (&group.turbine_type, &group.power_curve) {
            (Some(turbine_type), None) => {
                Turbine::from_library(turbine_type).map_err(|e| match e {
                    PlantConfigError::UnknownTurbineType {
                        requested,
                        suggestions,
                    } => PlantMappingError::UnknownTurbineType {
                        field: format!("{prefix}turbineType"),
                        requested,
                        suggestions,
                        library_size: library_turbine_types().count(),
                    },
                    other => PlantMappingError::invalid(
                        format!("{prefix}turbineType"),
                        other.to_string(),
                    ),
                })?
            }
            (None, Some(curve)) => {
                let points: Vec<(f64, f64)> =
                    curve.iter().map(|p| (p.speed_ms, p.power_kw)).collect();
                Turbine::custom(&format!("custom:{}", group.name), &points).map_err(|e| {
                    PlantMappingError::invalid(format!("{prefix}powerCurve"), e.to_string())
                })?
            }
            _ => {
                return Err(PlantMappingError::invalid(
                    prefix.trim_end_matches('.'),
                    "set exactly one of turbineType (a library turbine such as E-82/2350) and powerCurve",
                ));
            }
        };
        let count = u32::try_from(group.count)
            .ok()
            .filter(|&c| c >= 1)
            .ok_or_else(|| {
                PlantMappingError::invalid(
                    format!("{prefix}count"),
                    format!("{} is out of range: expected at least 1", group.count),
                )
            })?;
        let turbines = TurbineGroup::new(turbine, count, group.hub_height_m);
        turbines
            .validate()
            .map_err(|e| from_core(e, &prefix, |f| f.to_owned()))?;
        groups.push(turbines);
    }

    Plant::new(location, arrays, groups).map_err(|e| from_core(e, "spec.", |f| f.to_owned()))
}

/// A Replay forecast's `format` as the weather parsers name it.
impl From<WeatherFormat> for verdant_core::energy::WeatherFormat {
    fn from(format: WeatherFormat) -> Self {
        match format {
            WeatherFormat::Csv => Self::Generic,
            WeatherFormat::Tmy3 => Self::Tmy3,
            WeatherFormat::Pvgis => Self::PvgisTmy,
        }
    }
}

fn check_unique_name<T>(
    earlier: &[T],
    name: &str,
    name_of: impl Fn(&T) -> &String,
    prefix: &str,
) -> Result<(), PlantMappingError> {
    if name.is_empty() {
        return Err(PlantMappingError::invalid(
            format!("{prefix}name"),
            "must not be empty",
        ));
    }
    if earlier.iter().any(|e| name_of(e) == name) {
        return Err(PlantMappingError::invalid(
            format!("{prefix}name"),
            format!("`{name}` is used twice; names must be unique within the site"),
        ));
    }
    Ok(())
}

/// Core errors name the models' fields (`tiltDeg`); the manifest's names differ a little.
fn from_core(
    error: PlantConfigError,
    prefix: &str,
    rename: impl Fn(&str) -> String,
) -> PlantMappingError {
    match error {
        PlantConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        } => PlantMappingError::invalid(
            format!("{prefix}{}", rename(&field)),
            format!("{value} is out of range: expected {min} ..= {max}"),
        ),
        other => PlantMappingError::invalid(prefix.trim_end_matches('.'), other.to_string()),
    }
}

fn location_field(core: &str) -> String {
    match core {
        "location.latitudeDeg" => "latitude",
        "location.longitudeDeg" => "longitude",
        "location.elevationM" => "elevationM",
        other => other,
    }
    .to_owned()
}

fn array_field(core: &str) -> String {
    match core {
        "tiltDeg" => "tiltDegrees",
        "azimuthDeg" => "azimuthDegrees",
        other => other,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> EnergySiteSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn maps_arrays_and_turbines_with_their_settings() {
        let plant = plant_from_site(&spec(
            r"
location: {latitude: 36.1, longitude: -79.95, elevationM: 273}
solar:
- {name: roof, capacityKw: 400, tiltDegrees: 20, azimuthDegrees: 180, lossesPercent: 10}
- {name: field, capacityKw: 600, tiltDegrees: 30}
wind:
- {name: e82, turbineType: E-82/2350, count: 3, hubHeightM: 108}
- name: yard
  count: 2
  hubHeightM: 30
  powerCurve: [{speedMs: 3, powerKw: 0}, {speedMs: 10, powerKw: 180}, {speedMs: 25, powerKw: 250}]
",
        ))
        .unwrap();
        assert_eq!(plant.location().latitude_deg, 36.1);
        assert_eq!(plant.location().elevation_m, 273.0);
        assert_eq!(plant.arrays().len(), 2);
        assert_eq!(plant.arrays()[0].losses_percent, 10.0);
        assert_eq!(plant.arrays()[1].azimuth_deg, 180.0, "the CRD default");
        assert_eq!(plant.arrays()[1].losses_percent, 14.0, "the CRD default");
        let groups = plant.turbine_groups();
        assert_eq!(groups[0].turbine.turbine_type(), "E-82/2350");
        assert_eq!(groups[0].count, 3);
        assert_eq!(groups[0].rated_power_kw(), 3.0 * 2350.0);
        assert_eq!(groups[1].rated_power_kw(), 500.0);
        assert_eq!(groups[1].hub_height_m, 30.0);
    }

    #[test]
    fn unknown_turbine_names_the_field_and_close_matches() {
        let err = plant_from_site(&spec(
            r"
location: {latitude: 53.5, longitude: 8.6}
wind:
- {name: a, turbineType: V90/2000, count: 1, hubHeightM: 80}
- {name: b, turbineType: E-82/2300x, count: 1, hubHeightM: 108}
",
        ))
        .unwrap_err();
        assert_eq!(err.field(), "spec.wind[1].turbineType");
        let PlantMappingError::UnknownTurbineType { suggestions, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(suggestions.first().map(String::as_str), Some("E-82/2300"));
        let text = err.to_string();
        assert!(
            text.starts_with("spec.wind[1].turbineType: unknown turbine type `E-82/2300x`"),
            "{text}"
        );
        assert!(text.contains("did you mean E-82/2300"), "{text}");
    }

    #[test]
    fn out_of_range_values_name_the_manifest_field() {
        let cases = [
            (
                "location: {latitude: 95, longitude: 0}",
                "spec.location.latitude",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nsolar: [{name: a, capacityKw: 10, tiltDegrees: 120}]",
                "spec.solar[0].tiltDegrees",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nsolar: [{name: a, capacityKw: 10, azimuthDegrees: 360}]",
                "spec.solar[0].azimuthDegrees",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nsolar: [{name: a, capacityKw: -1}]",
                "spec.solar[0].capacityKw",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nsolar: [{name: a, capacityKw: 1}, {name: a, capacityKw: 2}]",
                "spec.solar[1].name",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nwind: [{name: w, turbineType: V90/2000, count: 0, hubHeightM: 80}]",
                "spec.wind[0].count",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nwind: [{name: w, turbineType: V90/2000, count: 1, hubHeightM: 0}]",
                "spec.wind[0].hubHeightM",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nwind: [{name: w, count: 1, hubHeightM: 80}]",
                "spec.wind[0]",
            ),
            (
                "location: {latitude: 0, longitude: 0}\nwind: [{name: w, count: 1, hubHeightM: 80, powerCurve: [{speedMs: 5, powerKw: 1}, {speedMs: 4, powerKw: 2}]}]",
                "spec.wind[0].powerCurve",
            ),
        ];
        for (yaml, field) in cases {
            let err = plant_from_site(&spec(yaml)).unwrap_err();
            assert_eq!(err.field(), field, "{yaml}: {err}");
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn a_site_without_plant_is_a_valid_empty_plant() {
        let plant = plant_from_site(&spec("location: {latitude: 0, longitude: 0}")).unwrap();
        assert_eq!(plant.nameplate_kw(), 0.0);
    }
}
