//! NREL TMY3 CSV (Wilcox & Marion 2008), as pvlib's `read_tmy3` reads it.
//!
//! Line 1: `USAF,name,state,TZ,latitude,longitude,elevation`. Line 2: column names.
//! Rows are stamped `MM/DD/YYYY,HH:MM` at the END of the hour they average, in local
//! standard time (`24:00` is midnight of the next day). pvlib keeps those hour-ending
//! stamps; we convert to UTC and move each record to its hour's midpoint, where the sun
//! position best represents the hour (pvlib users shift by −30 min for the same reason;
//! `tests/reference/make_reference.py` does).

use super::WeatherSeries;
use super::error::{WeatherParseError, WeatherProblem};
use super::record::{SiteMetadata, WeatherRecord};
use super::table::{
    Quantity, cell, clip, in_range, numbered_lines, optional_number, required_number, split_fields,
};
use crate::energy::calendar::{CivilTime, SECONDS_PER_DAY, civil_from_days, parse_digits};

const HALF_HOUR_S: i64 = 1800;
/// TMY3 writes this where a value is missing.
const MISSING: f64 = -9900.0;
/// Anemometer height of the `Wspd` column.
const WIND_HEIGHT_M: f64 = 10.0;

pub(crate) fn looks_like_tmy3(first_line: &str, second_line: &str) -> bool {
    let meta = split_fields(first_line);
    meta.len() >= 7
        && meta[0].bytes().all(|b| b.is_ascii_digit())
        && second_line.starts_with("Date (MM/DD/YYYY)")
}

struct Columns {
    date: usize,
    time: usize,
    ghi: Option<usize>,
    dni: Option<usize>,
    dhi: Option<usize>,
    temp_air: Option<usize>,
    wind_speed: Option<usize>,
    pressure: Option<usize>,
    albedo: Option<usize>,
}

pub(crate) fn parse(text: &str) -> Result<WeatherSeries, WeatherParseError> {
    let mut lines = numbered_lines(text);
    let (meta_line, meta_text) = lines
        .next()
        .ok_or_else(|| WeatherParseError::new(1, "USAF", WeatherProblem::NoData))?;
    let meta = split_fields(meta_text);
    let meta_field = |index: usize, name: &str| -> Result<f64, WeatherParseError> {
        required_number(
            meta_line,
            name,
            cell(&meta, index, meta_line, name)?,
            Quantity::Finite,
        )
    };
    let utc_offset_hours = meta_field(3, "TZ")?;
    in_range(meta_line, "TZ", utc_offset_hours, Quantity::UtcOffsetHours)?;
    let site = SiteMetadata {
        name: meta.get(1).map(|name| name.to_string()),
        latitude_deg: Some(meta_field(4, "latitude")?),
        longitude_deg: Some(meta_field(5, "longitude")?),
        elevation_m: Some(meta_field(6, "elevation")?),
        utc_offset_hours: Some(utc_offset_hours),
    };
    // Whole minutes: TZ is an hour count, possibly fractional (e.g. 5.5).
    let utc_offset_s = (utc_offset_hours * 60.0).round() as i64 * 60;

    let (header_line, header_text) = lines.next().ok_or_else(|| {
        WeatherParseError::new(2, "Date (MM/DD/YYYY)", WeatherProblem::MissingColumn)
    })?;
    let columns = columns(header_line, &split_fields(header_text))?;

    let mut records = Vec::new();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let fields = split_fields(text);
        let end_of_hour_s = row_time_s(line, &fields, &columns, utc_offset_s)?;
        let value = |column: Option<usize>,
                     name: &str,
                     quantity: Quantity|
         -> Result<Option<f64>, WeatherParseError> {
            let Some(column) = column else {
                return Ok(None);
            };
            let raw = cell(&fields, column, line, name)?;
            if raw.trim().parse::<f64>().is_ok_and(|v| v <= MISSING) {
                return Ok(None);
            }
            optional_number(line, name, raw, quantity)
        };
        let wind_speed = value(columns.wind_speed, "Wspd (m/s)", Quantity::WindSpeedMs)?;
        let pressure_mbar = value(columns.pressure, "Pressure (mbar)", Quantity::Finite)?;
        let pressure_pa = pressure_mbar
            .map(|mbar| in_range(line, "Pressure (mbar)", mbar * 100.0, Quantity::PressurePa))
            .transpose()?;
        records.push(WeatherRecord {
            time_s: end_of_hour_s - HALF_HOUR_S,
            ghi: value(columns.ghi, "GHI (W/m^2)", Quantity::IrradianceWm2)?,
            dni: value(columns.dni, "DNI (W/m^2)", Quantity::IrradianceWm2)?,
            dhi: value(columns.dhi, "DHI (W/m^2)", Quantity::IrradianceWm2)?,
            temp_air_c: value(columns.temp_air, "Dry-bulb (C)", Quantity::TemperatureC)?,
            wind_speeds: wind_speed
                .map(|v| vec![(WIND_HEIGHT_M, v)])
                .unwrap_or_default(),
            pressure_pa,
            roughness_length_m: None,
            // TMY3 files often fill this with 0.0 (source flag '?'): not a measurement.
            albedo: value(columns.albedo, "Alb (unitless)", Quantity::Albedo)?.filter(|a| *a > 0.0),
        });
    }
    Ok(WeatherSeries {
        format: super::WeatherFormat::Tmy3,
        site: Some(site),
        records,
    })
}

fn columns(line: usize, header: &[&str]) -> Result<Columns, WeatherParseError> {
    let find = |name: &str| header.iter().position(|h| *h == name);
    let require = |name: &str| {
        find(name).ok_or_else(|| WeatherParseError::new(line, name, WeatherProblem::MissingColumn))
    };
    Ok(Columns {
        date: require("Date (MM/DD/YYYY)")?,
        time: require("Time (HH:MM)")?,
        ghi: find("GHI (W/m^2)"),
        dni: find("DNI (W/m^2)"),
        dhi: find("DHI (W/m^2)"),
        temp_air: find("Dry-bulb (C)"),
        wind_speed: find("Wspd (m/s)"),
        pressure: find("Pressure (mbar)"),
        albedo: find("Alb (unitless)"),
    })
}

/// Unix seconds of the row's (hour-ending) stamp.
fn row_time_s(
    line: usize,
    fields: &[&str],
    columns: &Columns,
    utc_offset_s: i64,
) -> Result<i64, WeatherParseError> {
    let date = cell(fields, columns.date, line, "Date (MM/DD/YYYY)")?;
    let time = cell(fields, columns.time, line, "Time (HH:MM)")?;
    let bad_date = || {
        WeatherParseError::new(
            line,
            "Date (MM/DD/YYYY)",
            WeatherProblem::BadTimestamp(clip(date)),
        )
    };
    let bad_time = || {
        WeatherParseError::new(
            line,
            "Time (HH:MM)",
            WeatherProblem::BadTimestamp(clip(time)),
        )
    };
    let mut date_parts = date.split('/');
    let (Some(month), Some(day), Some(year), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return Err(bad_date());
    };
    let (month, day, year) = (
        parse_digits(month).ok_or_else(bad_date)?,
        parse_digits(day).ok_or_else(bad_date)?,
        parse_digits(year).ok_or_else(bad_date)?,
    );
    let (hour, minute) = time.split_once(':').ok_or_else(bad_time)?;
    let (hour, minute) = (
        parse_digits(hour).ok_or_else(bad_time)?,
        parse_digits(minute).ok_or_else(bad_time)?,
    );
    CivilTime::new(i64::from(year), month, day, 0, 0, 0).ok_or_else(bad_date)?;
    let clock =
        CivilTime::new(i64::from(year), month, day, hour, minute, 0).ok_or_else(bad_time)?;
    let mut time_s = clock.to_unix_s(utc_offset_s);
    // A TMY year has 365 days, so a stamp that lands on February 29th (`02/28 24:00` in a
    // leap year) belongs to March 1st. pvlib's read_tmy3 moves it the same way.
    let local_days = (time_s + utc_offset_s).div_euclid(SECONDS_PER_DAY);
    if matches!(civil_from_days(local_days), (_, 2, 29)) {
        time_s += SECONDS_PER_DAY;
    }
    Ok(time_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::calendar::format_utc;

    const SAMPLE: &str = "723170,\"GREENSBORO PIEDMONT TRIAD INT\",NC,-5.0,36.100,-79.950,273\n\
Date (MM/DD/YYYY),Time (HH:MM),GHI (W/m^2),DNI (W/m^2),DHI (W/m^2),Dry-bulb (C),Pressure (mbar),Wspd (m/s),Alb (unitless)\n\
02/24/1996,13:00,973,728,24,12.5,993,3.1,0.0\n\
12/31/1980,24:00,0,0,0,-2.0,1000,-9900,0.2\n\
02/28/1996,24:00,0,0,0,-2.0,1000,1.0,0.2\n";

    #[test]
    fn converts_hour_ending_local_time_to_utc_midpoints() {
        let series = parse(SAMPLE).unwrap();
        let site = series.site.unwrap();
        assert_eq!(
            (site.latitude_deg, site.longitude_deg, site.utc_offset_hours),
            (Some(36.1), Some(-79.95), Some(-5.0))
        );
        let [noon, midnight, leap] = &series.records[..] else {
            panic!()
        };
        assert_eq!(format_utc(noon.time_s), "1996-02-24T17:30:00Z");
        assert_eq!(
            (noon.ghi, noon.dni, noon.dhi),
            (Some(973.0), Some(728.0), Some(24.0))
        );
        assert_eq!(noon.pressure_pa, Some(99_300.0));
        assert_eq!(noon.wind_speeds, vec![(10.0, 3.1)]);
        assert_eq!(noon.albedo, None);
        assert_eq!(format_utc(midnight.time_s), "1981-01-01T04:30:00Z");
        assert!(midnight.wind_speeds.is_empty());
        assert_eq!(midnight.albedo, Some(0.2));
        assert_eq!(
            format_utc(leap.time_s),
            "1996-03-01T04:30:00Z",
            "no February 29th in a TMY year"
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad = SAMPLE.replace("02/24/1996,13:00,973", "02/30/1996,13:00,973");
        let err = parse(&bad).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (3, "Date (MM/DD/YYYY)"));
        let bad = SAMPLE.replace("12.5,993", "12.5,99x3");
        let err = parse(&bad).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (3, "Pressure (mbar)"));
        let bad = SAMPLE.replace(",-5.0,", ",east,");
        assert_eq!(parse(&bad).unwrap_err().field, "TZ");
    }
}
