//! Why a plant description was rejected.

use thiserror::Error;

/// A plant, array or turbine description that cannot be modelled.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlantConfigError {
    #[error("{field} = {value} is out of range: expected {min} ..= {max}")]
    OutOfRange {
        field: String,
        value: f64,
        min: f64,
        max: f64,
    },

    #[error(
        "unknown turbine type `{requested}`{}",
        if suggestions.is_empty() { String::new() } else { format!("; did you mean {}?", suggestions.join(", ")) }
    )]
    UnknownTurbineType {
        requested: String,
        suggestions: Vec<String>,
    },

    #[error("invalid power curve: {0}")]
    InvalidPowerCurve(String),
}

impl PlantConfigError {
    /// Rejects NaN and values outside `min ..= max`.
    pub(crate) fn check_range(
        field: impl Into<String>,
        value: f64,
        min: f64,
        max: f64,
    ) -> Result<(), Self> {
        if value >= min && value <= max {
            Ok(())
        } else {
            Err(Self::OutOfRange {
                field: field.into(),
                value,
                min,
                max,
            })
        }
    }

    /// Prefixes the field name, e.g. `arrays[2].` or `turbineGroups[0].`.
    pub(crate) fn within(self, prefix: &str) -> Self {
        match self {
            Self::OutOfRange {
                field,
                value,
                min,
                max,
            } => Self::OutOfRange {
                field: format!("{prefix}{field}"),
                value,
                min,
                max,
            },
            other => other,
        }
    }
}
