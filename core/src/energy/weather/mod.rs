//! Weather records and the file formats they are read from.
//!
//! [`parse_weather`] recognises the format from the content; [`parse_weather_as`]
//! skips the guess. Parsers take text, never paths, and never panic: anything wrong is
//! a [`WeatherParseError`] naming the line and the field.

mod error;
#[cfg(test)]
mod fuzz;
mod generic;
mod pvgis;
mod record;
mod table;
mod tmy3;
mod windpowerlib;

pub use error::{WeatherParseError, WeatherProblem};
pub use record::{SiteMetadata, WeatherRecord};

/// The weather file formats Verdant reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeatherFormat {
    /// NREL TMY3 CSV (hour-ending local standard time; records moved to UTC midpoints).
    Tmy3,
    /// PVGIS TMY CSV (UTC).
    PvgisTmy,
    /// windpowerlib's CSV with `variable_name` and `height` header rows.
    Windpowerlib,
    /// CSV with a `time` column and pvlib's column names.
    Generic,
}

/// A parsed file: its records in file order, and the site when the header gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeatherSeries {
    pub format: WeatherFormat,
    pub site: Option<SiteMetadata>,
    pub records: Vec<WeatherRecord>,
}

/// The format of a weather file, judged from its first lines.
pub fn detect_format(text: &str) -> Option<WeatherFormat> {
    let mut lines = table::numbered_lines(text).map(|(_, line)| line);
    let first = lines.next().unwrap_or("");
    let second = lines.next().unwrap_or("");
    if pvgis::looks_like_pvgis(text) {
        Some(WeatherFormat::PvgisTmy)
    } else if tmy3::looks_like_tmy3(first, second) {
        Some(WeatherFormat::Tmy3)
    } else if windpowerlib::looks_like_windpowerlib(first, second) {
        Some(WeatherFormat::Windpowerlib)
    } else if generic::looks_like_generic(first) {
        Some(WeatherFormat::Generic)
    } else {
        None
    }
}

/// Parses a weather file of any supported format.
pub fn parse_weather(text: &str) -> Result<WeatherSeries, WeatherParseError> {
    let format = detect_format(text)
        .ok_or_else(|| WeatherParseError::new(1, "", WeatherProblem::UnknownFormat))?;
    parse_weather_as(text, format)
}

/// Parses a weather file known to be in `format`.
pub fn parse_weather_as(
    text: &str,
    format: WeatherFormat,
) -> Result<WeatherSeries, WeatherParseError> {
    match format {
        WeatherFormat::Tmy3 => tmy3::parse(text),
        WeatherFormat::PvgisTmy => pvgis::parse(text),
        WeatherFormat::Windpowerlib => windpowerlib::parse(text),
        WeatherFormat::Generic => generic::parse(text),
    }
}
