//! Why a weather file was rejected: always with the line and the field.

use thiserror::Error;

/// A weather file that could not be read. `line` is 1-based; `field` is the column
/// name (or what was expected when the whole line is at fault).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, field `{field}`: {problem}")]
pub struct WeatherParseError {
    pub line: usize,
    pub field: String,
    pub problem: WeatherProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WeatherProblem {
    #[error(
        "the content matches no known weather format (NREL TMY3, PVGIS TMY, windpowerlib CSV, or CSV with a `time` column)"
    )]
    UnknownFormat,
    #[error("no data rows")]
    NoData,
    #[error("missing column")]
    MissingColumn,
    #[error("missing value")]
    MissingValue,
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("{value} is outside {min} ..= {max}")]
    OutOfRange {
        value: String,
        min: String,
        max: String,
    },
    #[error("`{0}` is not a valid timestamp")]
    BadTimestamp(String),
    #[error("{0}")]
    Malformed(String),
}

impl WeatherParseError {
    pub(crate) fn new(line: usize, field: impl Into<String>, problem: WeatherProblem) -> Self {
        Self {
            line,
            field: field.into(),
            problem,
        }
    }
}
