//! windpowerlib's weather CSV: two header rows, `variable_name` then `height` (m above
//! ground), then `timestamp,values...`. Temperatures are in kelvin, pressure in Pa.
//! Recognised variables: `wind_speed` (any number of heights), `temperature`,
//! `pressure`, `roughness_length`; others are ignored.

use super::error::{WeatherParseError, WeatherProblem};
use super::record::WeatherRecord;
use super::table::{Quantity, cell, clip, in_range, numbered_lines, optional_number, split_fields};
use super::{WeatherFormat, WeatherSeries};
use crate::energy::calendar::parse_timestamp;
use crate::energy::wind::density::temperature_at_height_c;

const ZERO_CELSIUS_K: f64 = 273.15;
/// `WeatherRecord::temp_air_c` is the 2 m temperature.
const TEMPERATURE_HEIGHT_M: f64 = 2.0;

pub(crate) fn looks_like_windpowerlib(first_line: &str, second_line: &str) -> bool {
    let first = split_fields(first_line);
    let second = split_fields(second_line);
    matches!(first.first(), Some(&"variable_name") | Some(&""))
        && second.first() == Some(&"height")
        && first.contains(&"wind_speed")
}

#[derive(Clone, Copy)]
enum Variable {
    WindSpeed,
    Temperature,
    Pressure,
    RoughnessLength,
}

struct Column {
    index: usize,
    variable: Variable,
    height_m: f64,
    name: String,
}

pub(crate) fn parse(text: &str) -> Result<WeatherSeries, WeatherParseError> {
    let mut lines = numbered_lines(text);
    let (_, names) = lines
        .next()
        .ok_or_else(|| WeatherParseError::new(1, "variable_name", WeatherProblem::NoData))?;
    let (height_line, heights) = lines
        .next()
        .ok_or_else(|| WeatherParseError::new(2, "height", WeatherProblem::MissingValue))?;
    let names = split_fields(names);
    let heights = split_fields(heights);

    let mut columns = Vec::new();
    for (index, name) in names.iter().enumerate().skip(1) {
        let variable = match *name {
            "wind_speed" => Variable::WindSpeed,
            "temperature" => Variable::Temperature,
            "pressure" => Variable::Pressure,
            "roughness_length" => Variable::RoughnessLength,
            _ => continue,
        };
        let field = format!("height of {name}");
        let height_m = optional_number(
            height_line,
            &field,
            cell(&heights, index, height_line, &field)?,
            Quantity::Finite,
        )?
        .ok_or_else(|| WeatherParseError::new(height_line, &field, WeatherProblem::MissingValue))?;
        if !(0.0..=1000.0).contains(&height_m)
            || (matches!(variable, Variable::WindSpeed) && height_m == 0.0)
        {
            return Err(WeatherParseError::new(
                height_line,
                field,
                WeatherProblem::OutOfRange {
                    value: height_m.to_string(),
                    min: "0 (exclusive for wind)".into(),
                    max: "1000".into(),
                },
            ));
        }
        columns.push(Column {
            index,
            variable,
            height_m,
            name: format!("{name} @ {height_m} m"),
        });
    }
    // Use the temperature nearest the 2 m the record wants (the first on a tie).
    let temperature_column = columns
        .iter()
        .filter(|c| matches!(c.variable, Variable::Temperature))
        .min_by(|a, b| {
            (a.height_m - TEMPERATURE_HEIGHT_M)
                .abs()
                .total_cmp(&(b.height_m - TEMPERATURE_HEIGHT_M).abs())
        })
        .map(|c| c.index);
    let pressure_column = columns
        .iter()
        .filter(|c| matches!(c.variable, Variable::Pressure))
        .min_by(|a, b| a.height_m.total_cmp(&b.height_m))
        .map(|c| c.index);

    let mut records = Vec::new();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let fields = split_fields(text);
        let stamp = cell(&fields, 0, line, "timestamp")?;
        let time_s = parse_timestamp(stamp).ok_or_else(|| {
            WeatherParseError::new(line, "timestamp", WeatherProblem::BadTimestamp(clip(stamp)))
        })?;
        let mut record = WeatherRecord::new(time_s);
        for column in &columns {
            let raw = cell(&fields, column.index, line, &column.name)?;
            match column.variable {
                Variable::WindSpeed => {
                    if let Some(v) =
                        optional_number(line, &column.name, raw, Quantity::WindSpeedMs)?
                    {
                        record.wind_speeds.push((column.height_m, v));
                    }
                }
                Variable::Temperature if Some(column.index) == temperature_column => {
                    record.temp_air_c = optional_number(line, &column.name, raw, Quantity::Finite)?
                        .map(|kelvin| {
                            let celsius = temperature_at_height_c(
                                kelvin - ZERO_CELSIUS_K,
                                column.height_m,
                                TEMPERATURE_HEIGHT_M,
                            );
                            in_range(line, &column.name, celsius, Quantity::TemperatureC)
                        })
                        .transpose()?;
                }
                Variable::Pressure if Some(column.index) == pressure_column => {
                    // Back to ground level at 1 hPa per 8 m, windpowerlib's barometric rule.
                    record.pressure_pa =
                        optional_number(line, &column.name, raw, Quantity::Finite)?
                            .map(|pa| {
                                in_range(
                                    line,
                                    &column.name,
                                    pa + column.height_m / 8.0 * 100.0,
                                    Quantity::PressurePa,
                                )
                            })
                            .transpose()?;
                }
                Variable::RoughnessLength => {
                    record.roughness_length_m =
                        optional_number(line, &column.name, raw, Quantity::RoughnessLengthM)?;
                }
                Variable::Temperature | Variable::Pressure => {}
            }
        }
        records.push(record);
    }
    if records.is_empty() {
        return Err(WeatherParseError::new(
            height_line + 1,
            "timestamp",
            WeatherProblem::NoData,
        ));
    }
    Ok(WeatherSeries {
        format: WeatherFormat::Windpowerlib,
        site: None,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::calendar::format_utc;

    const SAMPLE: &str = "variable_name,pressure,temperature,wind_speed,roughness_length,temperature,wind_speed\n\
height,0,2,10,0,10,80\n\
2010-01-01 00:00:00+01:00,98405.7,267.6,5.32697,0.15,267.57,7.80697\n";

    #[test]
    fn reads_heights_and_kelvin() {
        let series = parse(SAMPLE).unwrap();
        let record = &series.records[0];
        assert_eq!(format_utc(record.time_s), "2009-12-31T23:00:00Z");
        assert_eq!(record.wind_speeds, vec![(10.0, 5.32697), (80.0, 7.80697)]);
        assert!((record.temp_air_c.unwrap() - (267.6 - 273.15)).abs() < 1e-9);
        assert_eq!(
            (record.pressure_pa, record.roughness_length_m),
            (Some(98_405.7), Some(0.15))
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = parse(&SAMPLE.replace("7.80697", "fast")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (3, "wind_speed @ 80 m"));
        let err = parse(&SAMPLE.replace("+01:00", "+1h")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (3, "timestamp"));
        let err = parse(&SAMPLE.replace("height,0,2,10", "height,0,2,-10")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (2, "height of wind_speed"));
    }
}
