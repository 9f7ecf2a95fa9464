//! The answers of forecast services, read: an Open-Meteo hourly forecast into
//! [`WeatherRecord`](super::WeatherRecord)s ([`open_meteo`]), a Prometheus instant query
//! into a [`Measured`] site output ([`prometheus`]). Pure: text in, values out; the
//! operator fetches the text.
//!
//! A parser never panics. What it cannot use is a [`ForecastParseError`] that names the
//! request (`source`), the field, the index and the time, so a broken service never reads
//! as "0 kW" or as an optimistic number.

pub mod open_meteo;
pub mod prometheus;

pub use open_meteo::Needs;
pub use prometheus::Measured;

/// Hours of forecast a site publishes (now and the next 47), and so the hours a weather
/// forecast must cover for what the plant needs.
pub const HORIZON_HOURS: usize = 48;

/// Why an answer could not be used. Both messages start with the request's `source`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastParseError {
    /// The service said no (an error envelope): the same request will fail again.
    #[error("{0}")]
    Rejected(String),
    /// The answer is unusable: not JSON, a wrong shape, missing variables, NaN, negative
    /// or implausible values.
    #[error("{0}")]
    Malformed(String),
}

/// The start of a body, on one line, for messages.
pub fn excerpt(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut cut: String = flat.chars().take(200).collect();
    if cut.len() < flat.len() {
        cut.push('…');
    }
    cut
}

/// A Unix time as `2026-11-29T13:00Z`, for messages (the number itself when out of range).
fn utc(time_s: i64) -> String {
    jiff::Timestamp::from_second(time_s)
        .map(|t| t.strftime("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_else(|_| time_s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("  a \n b  "), "a b");
        assert!(excerpt(&"x".repeat(500)).ends_with('…'));
        assert_eq!(excerpt(" \n"), "(empty body)");
    }
}
