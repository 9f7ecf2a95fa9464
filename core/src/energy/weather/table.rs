//! Line and field plumbing shared by the weather parsers.

use super::error::{WeatherParseError, WeatherProblem};

/// Lines numbered from 1, without line terminators (LF or CRLF) or a leading BOM.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.strip_suffix('\r').unwrap_or(line)))
}

/// Comma-separated fields, trimmed; a field wrapped in double quotes loses them (weather
/// files quote names, never embed quotes, so `""` escapes are not interpreted).
pub(crate) fn split_fields(line: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start();
        if let Some(quoted) = trimmed.strip_prefix('"') {
            let (inside, after) = quoted.split_once('"').unwrap_or((quoted, ""));
            fields.push(inside);
            match after.split_once(',') {
                Some((_, next)) => rest = next,
                None => return fields,
            }
        } else {
            match rest.split_once(',') {
                Some((field, next)) => {
                    fields.push(field.trim());
                    rest = next;
                }
                None => {
                    fields.push(rest.trim());
                    return fields;
                }
            }
        }
    }
}

/// What a column measures, with the range a correct file stays inside. The ranges are
/// wide; they exist to catch unit mix-ups (mbar for Pa, K for °C) and garbage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Quantity {
    IrradianceWm2,
    TemperatureC,
    WindSpeedMs,
    PressurePa,
    RoughnessLengthM,
    Albedo,
    UtcOffsetHours,
    /// Anything merely required to be finite (metadata, values converted later).
    Finite,
}

impl Quantity {
    fn range(self) -> (f64, f64) {
        match self {
            Self::IrradianceWm2 => (-50.0, 2000.0),
            Self::TemperatureC => (-100.0, 70.0),
            Self::WindSpeedMs => (0.0, 120.0),
            Self::PressurePa => (30_000.0, 120_000.0),
            Self::RoughnessLengthM => (0.0, 10.0),
            Self::Albedo => (0.0, 1.0),
            Self::UtcOffsetHours => (-14.0, 14.0),
            Self::Finite => (f64::MIN, f64::MAX),
        }
    }
}

/// A number, or `None` for an empty cell or `NaN`/`nan`/`NA` (pandas writes those).
pub(crate) fn optional_number(
    line: usize,
    field: &str,
    raw: &str,
    quantity: Quantity,
) -> Result<Option<f64>, WeatherParseError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("nan") || raw == "NA" {
        return Ok(None);
    }
    let value: f64 = raw
        .parse()
        .map_err(|_| WeatherParseError::new(line, field, WeatherProblem::NotANumber(clip(raw))))?;
    in_range(line, field, value, quantity).map(Some)
}

/// `value` if `quantity` can take it, else an out-of-range error.
pub(crate) fn in_range(
    line: usize,
    field: &str,
    value: f64,
    quantity: Quantity,
) -> Result<f64, WeatherParseError> {
    let (min, max) = quantity.range();
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(WeatherParseError::new(
            line,
            field,
            WeatherProblem::OutOfRange {
                value: value.to_string(),
                min: min.to_string(),
                max: max.to_string(),
            },
        ))
    }
}

/// Like [`optional_number`], but an empty cell is an error.
pub(crate) fn required_number(
    line: usize,
    field: &str,
    raw: &str,
    quantity: Quantity,
) -> Result<f64, WeatherParseError> {
    optional_number(line, field, raw, quantity)?
        .ok_or_else(|| WeatherParseError::new(line, field, WeatherProblem::MissingValue))
}

/// The cell of `column` in a row, or a "missing value" error naming the column.
pub(crate) fn cell<'a>(
    fields: &[&'a str],
    column: usize,
    line: usize,
    name: &str,
) -> Result<&'a str, WeatherParseError> {
    fields
        .get(column)
        .copied()
        .ok_or_else(|| WeatherParseError::new(line, name, WeatherProblem::MissingValue))
}

/// Keeps echoed input short in messages (a garbage file can have megabyte-long lines).
pub(crate) fn clip(raw: &str) -> String {
    const MAX_CHARS: usize = 40;
    if raw.chars().count() <= MAX_CHARS {
        raw.to_string()
    } else {
        format!("{}…", raw.chars().take(MAX_CHARS).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_and_plain_fields() {
        assert_eq!(
            split_fields(r#"723170,"GREENSBORO, NC",NC,-5.0"#),
            ["723170", "GREENSBORO, NC", "NC", "-5.0"]
        );
        assert_eq!(split_fields(" a , b ,"), ["a", "b", ""]);
        assert_eq!(split_fields(r#""unterminated"#), ["unterminated"]);
    }

    #[test]
    fn numbers_name_the_field() {
        assert_eq!(
            optional_number(3, "ghi", " NaN ", Quantity::IrradianceWm2),
            Ok(None)
        );
        let err = optional_number(3, "ghi", "12x", Quantity::IrradianceWm2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3, field `ghi`: `12x` is not a number"
        );
        assert!(optional_number(4, "pressure", "1013", Quantity::PressurePa).is_err());
        assert!(optional_number(4, "x", "inf", Quantity::Finite).is_err());
    }
}
