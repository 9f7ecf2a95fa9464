//! The Open Energy Database turbine library bundled with windpowerlib: 67 manufacturer
//! power curves, looked up by type name such as `E-82/2350` (see `core/data/turbines/`).

use std::sync::OnceLock;

use super::power_curve::PowerCurve;
use crate::energy::error::PlantConfigError;

const OEDB_POWER_CURVES_CSV: &str =
    include_str!("../../../data/turbines/windpowerlib_oedb_power_curves.csv");
const MAX_SUGGESTIONS: usize = 5;

struct LibraryTurbine {
    turbine_type: &'static str,
    power_curve: PowerCurve,
}

fn library() -> &'static [LibraryTurbine] {
    static LIBRARY: OnceLock<Vec<LibraryTurbine>> = OnceLock::new();
    LIBRARY.get_or_init(|| parse_library(OEDB_POWER_CURVES_CSV))
}

/// The bundled file is fixed at build time and checked by tests, so a row that does not
/// parse is dropped rather than reported.
fn parse_library(csv: &'static str) -> Vec<LibraryTurbine> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let speeds: Vec<Option<f64>> = header
        .split(',')
        .skip(1)
        .map(|s| s.trim().parse().ok())
        .collect();
    lines
        .filter_map(|line| {
            let mut fields = line.split(',');
            let turbine_type = fields.next()?.trim();
            let points: Vec<(f64, f64)> = speeds
                .iter()
                .zip(fields)
                .filter_map(|(speed, watts)| {
                    Some(((*speed)?, watts.trim().parse::<f64>().ok()? / 1000.0))
                })
                .collect();
            let power_curve = PowerCurve::new(&points).ok()?;
            (!turbine_type.is_empty()).then_some(LibraryTurbine {
                turbine_type,
                power_curve,
            })
        })
        .collect()
}

/// Every turbine type in the bundled library, in file order.
pub fn library_turbine_types() -> impl Iterator<Item = &'static str> {
    library().iter().map(|t| t.turbine_type)
}

/// The power curve (kW) of a library turbine. Names match exactly; an unknown name fails
/// with the closest names by edit distance.
pub fn library_power_curve(turbine_type: &str) -> Result<PowerCurve, PlantConfigError> {
    library()
        .iter()
        .find(|t| t.turbine_type == turbine_type)
        .map(|t| t.power_curve.clone())
        .ok_or_else(|| PlantConfigError::UnknownTurbineType {
            requested: turbine_type.to_string(),
            suggestions: suggestions(turbine_type),
        })
}

/// Case-insensitive Levenshtein neighbours, closest first; names sharing the requested
/// text as a substring (e.g. "E-82") count as close.
fn suggestions(requested: &str) -> Vec<String> {
    let wanted = requested.to_lowercase();
    let limit = (wanted.chars().count() / 2).max(2);
    let mut scored: Vec<(usize, &str)> = library_turbine_types()
        .filter_map(|name| {
            let candidate = name.to_lowercase();
            let distance = if !wanted.is_empty() && candidate.contains(&wanted) {
                0
            } else {
                levenshtein(&wanted, &candidate)
            };
            (distance <= limit).then_some((distance, name))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, name)| name.to_string())
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_curve_parses() {
        assert_eq!(library_turbine_types().count(), 67);
        let e126 = library_power_curve("E-126/4200").unwrap();
        assert_eq!(e126.rated_power_kw(), 4200.0);
        assert_eq!(e126.power_kw(3.0), 58.0);
        assert_eq!(e126.power_kw(25.5), 0.0);
        assert!(library_power_curve("V100/1800/GS").is_ok());
    }

    #[test]
    fn unknown_names_suggest_neighbours() {
        let err = library_power_curve("E-82/2300x").unwrap_err();
        let PlantConfigError::UnknownTurbineType { suggestions, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(suggestions.first().map(String::as_str), Some("E-82/2300"));
        assert!(err.to_string().contains("did you mean E-82/2300"), "{err}");

        let PlantConfigError::UnknownTurbineType { suggestions, .. } =
            library_power_curve("e-82").unwrap_err()
        else {
            unreachable!()
        };
        assert!(
            suggestions.iter().all(|s| s.starts_with("E-82/")) && suggestions.len() == 4,
            "{suggestions:?}"
        );

        let PlantConfigError::UnknownTurbineType { suggestions, .. } =
            library_power_curve("Zephyr 9000").unwrap_err()
        else {
            unreachable!()
        };
        assert!(suggestions.is_empty());
    }

    #[test]
    fn levenshtein_basics() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("v90/2000", "v90/2000"), 0);
    }
}
