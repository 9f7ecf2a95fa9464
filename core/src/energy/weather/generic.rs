//! CSV with pvlib's column names: `time` (RFC 3339; no offset means UTC) and any of
//! `ghi`, `dni`, `dhi` (W/m²), `temp_air` (°C), `wind_speed` (m/s at 10 m),
//! `wind_speed_<h>m` (m/s at h metres, e.g. `wind_speed_100m`), `pressure` (Pa),
//! `roughness_length` (m), `albedo`. Other columns are ignored; empty cells and `NaN`
//! are missing values.

use super::error::{WeatherParseError, WeatherProblem};
use super::record::WeatherRecord;
use super::table::{Quantity, cell, clip, numbered_lines, optional_number, split_fields};
use super::{WeatherFormat, WeatherSeries};
use crate::energy::calendar::parse_timestamp;

pub(crate) fn looks_like_generic(first_line: &str) -> bool {
    split_fields(first_line).contains(&"time")
}

#[derive(Clone, Copy, PartialEq)]
enum Field {
    Ghi,
    Dni,
    Dhi,
    TempAir,
    WindSpeed(f64),
    Pressure,
    RoughnessLength,
    Albedo,
}

impl Field {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "ghi" => Self::Ghi,
            "dni" => Self::Dni,
            "dhi" => Self::Dhi,
            "temp_air" => Self::TempAir,
            "wind_speed" => Self::WindSpeed(10.0),
            "pressure" => Self::Pressure,
            "roughness_length" => Self::RoughnessLength,
            "albedo" => Self::Albedo,
            _ => {
                let height: f64 = name
                    .strip_prefix("wind_speed_")?
                    .strip_suffix('m')?
                    .parse()
                    .ok()?;
                if !(height > 0.0 && height <= 1000.0) {
                    return None;
                }
                Self::WindSpeed(height)
            }
        })
    }

    fn quantity(self) -> Quantity {
        match self {
            Self::Ghi | Self::Dni | Self::Dhi => Quantity::IrradianceWm2,
            Self::TempAir => Quantity::TemperatureC,
            Self::WindSpeed(_) => Quantity::WindSpeedMs,
            Self::Pressure => Quantity::PressurePa,
            Self::RoughnessLength => Quantity::RoughnessLengthM,
            Self::Albedo => Quantity::Albedo,
        }
    }
}

pub(crate) fn parse(text: &str) -> Result<WeatherSeries, WeatherParseError> {
    let mut lines = numbered_lines(text);
    let (header_line, header) = lines
        .next()
        .ok_or_else(|| WeatherParseError::new(1, "time", WeatherProblem::NoData))?;
    let header = split_fields(header);
    let time_column = header.iter().position(|h| *h == "time").ok_or_else(|| {
        WeatherParseError::new(header_line, "time", WeatherProblem::MissingColumn)
    })?;
    let mut columns: Vec<(usize, &str, Field)> = Vec::new();
    for (index, name) in header.iter().enumerate() {
        let Some(field) = Field::from_name(name) else {
            continue;
        };
        if columns.iter().any(|(_, _, f)| *f == field) {
            return Err(WeatherParseError::new(
                header_line,
                *name,
                WeatherProblem::Malformed("duplicate column".into()),
            ));
        }
        columns.push((index, name, field));
    }

    let mut records = Vec::new();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let fields = split_fields(text);
        let stamp = cell(&fields, time_column, line, "time")?;
        let time_s = parse_timestamp(stamp).ok_or_else(|| {
            WeatherParseError::new(line, "time", WeatherProblem::BadTimestamp(clip(stamp)))
        })?;
        let mut record = WeatherRecord::new(time_s);
        for &(index, name, field) in &columns {
            // A short row leaves its trailing columns missing, as pandas reads it.
            let Some(value) = optional_number(
                line,
                name,
                fields.get(index).copied().unwrap_or(""),
                field.quantity(),
            )?
            else {
                continue;
            };
            match field {
                Field::Ghi => record.ghi = Some(value),
                Field::Dni => record.dni = Some(value),
                Field::Dhi => record.dhi = Some(value),
                Field::TempAir => record.temp_air_c = Some(value),
                Field::WindSpeed(height_m) => record.wind_speeds.push((height_m, value)),
                Field::Pressure => record.pressure_pa = Some(value),
                Field::RoughnessLength => record.roughness_length_m = Some(value),
                Field::Albedo => record.albedo = Some(value),
            }
        }
        records.push(record);
    }
    if records.is_empty() {
        return Err(WeatherParseError::new(
            header_line + 1,
            "time",
            WeatherProblem::NoData,
        ));
    }
    Ok(WeatherSeries {
        format: WeatherFormat::Generic,
        site: None,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_subset_of_pvlib_columns() {
        let text = "time,ghi,wind_speed,wind_speed_100m,note\n2024-06-01T12:00:00+02:00,800,3.5,7.25,sunny\n2024-06-01T11:00:00Z,,NaN,8,\n";
        let series = parse(text).unwrap();
        let [first, second] = &series.records[..] else {
            panic!()
        };
        assert_eq!(first.time_s, 1_717_236_000);
        assert_eq!((first.ghi, first.dni), (Some(800.0), None));
        assert_eq!(first.wind_speeds, vec![(10.0, 3.5), (100.0, 7.25)]);
        assert_eq!(
            (second.ghi, second.wind_speeds.clone()),
            (None, vec![(100.0, 8.0)])
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = parse("time,ghi,temp_air\n2024-06-01T12:00Z,800,20\n2024-06-01T13:00Z,700,300\n")
            .unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (3, "temp_air"));
        let err = parse("time,ghi\nyesterday,800\n").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (2, "time"));
        let err = parse("time,ghi,ghi\n").unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (1, "ghi"));
    }
}
