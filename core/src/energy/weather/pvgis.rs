//! PVGIS TMY CSV (EU JRC): a `Label: value` header block, a month→year table, the data
//! table headed `time(UTC),T2m,RH,G(h),Gb(n),Gd(h),IR(h),WS10m,WD10m,SP`, then a legend.
//! Stamps are UTC, `YYYYMMDD:HHMM`, used as they are (as pvlib's `read_pvgis_tmy`).

use super::error::{WeatherParseError, WeatherProblem};
use super::record::{SiteMetadata, WeatherRecord};
use super::table::{Quantity, cell, clip, numbered_lines, optional_number, split_fields};
use super::{WeatherFormat, WeatherSeries};
use crate::energy::calendar::{CivilTime, parse_digits};

const TIME_COLUMN: &str = "time(UTC)";
const WIND_HEIGHT_M: f64 = 10.0;

pub(crate) fn looks_like_pvgis(text: &str) -> bool {
    numbered_lines(text).take(40).any(|(_, line)| {
        line.starts_with("time(UTC),") || line.starts_with("Latitude (decimal degrees):")
    })
}

pub(crate) fn parse(text: &str) -> Result<WeatherSeries, WeatherParseError> {
    let mut site = SiteMetadata {
        utc_offset_hours: Some(0.0),
        ..SiteMetadata::default()
    };
    let mut lines = numbered_lines(text);
    let (header_line, header) = loop {
        let Some((line, text)) = lines.next() else {
            return Err(WeatherParseError::new(
                1,
                TIME_COLUMN,
                WeatherProblem::MissingColumn,
            ));
        };
        if text.starts_with(TIME_COLUMN) {
            break (line, split_fields(text));
        }
        if let Some((label, value)) = text.split_once(':') {
            let target = match label.trim() {
                "Latitude (decimal degrees)" => &mut site.latitude_deg,
                "Longitude (decimal degrees)" => &mut site.longitude_deg,
                "Elevation (m)" => &mut site.elevation_m,
                _ => continue,
            };
            *target = optional_number(line, label.trim(), value, Quantity::Finite)?;
        }
    };
    let find = |name: &str| header.iter().position(|h| *h == name);
    let [ghi, dni, dhi, temp_air, wind_speed, pressure] =
        ["G(h)", "Gb(n)", "Gd(h)", "T2m", "WS10m", "SP"].map(find);

    let mut records = Vec::new();
    for (line, text) in lines {
        // The table ends at the first blank line; the legend follows.
        if text.trim().is_empty() {
            break;
        }
        let fields = split_fields(text);
        let value = |column: Option<usize>,
                     name: &str,
                     quantity: Quantity|
         -> Result<Option<f64>, WeatherParseError> {
            column
                .map(|c| optional_number(line, name, cell(&fields, c, line, name)?, quantity))
                .transpose()
                .map(Option::flatten)
        };
        records.push(WeatherRecord {
            time_s: parse_pvgis_time(line, cell(&fields, 0, line, TIME_COLUMN)?)?,
            ghi: value(ghi, "G(h)", Quantity::IrradianceWm2)?,
            dni: value(dni, "Gb(n)", Quantity::IrradianceWm2)?,
            dhi: value(dhi, "Gd(h)", Quantity::IrradianceWm2)?,
            temp_air_c: value(temp_air, "T2m", Quantity::TemperatureC)?,
            wind_speeds: value(wind_speed, "WS10m", Quantity::WindSpeedMs)?
                .map(|v| vec![(WIND_HEIGHT_M, v)])
                .unwrap_or_default(),
            pressure_pa: value(pressure, "SP", Quantity::PressurePa)?,
            roughness_length_m: None,
            albedo: None,
        });
    }
    if records.is_empty() {
        return Err(WeatherParseError::new(
            header_line + 1,
            TIME_COLUMN,
            WeatherProblem::NoData,
        ));
    }
    Ok(WeatherSeries {
        format: WeatherFormat::PvgisTmy,
        site: Some(site),
        records,
    })
}

fn parse_pvgis_time(line: usize, raw: &str) -> Result<i64, WeatherParseError> {
    let bad = || WeatherParseError::new(line, TIME_COLUMN, WeatherProblem::BadTimestamp(clip(raw)));
    let (date, clock) = raw.split_once(':').ok_or_else(bad)?;
    if date.len() != 8 || clock.len() != 4 || !date.is_ascii() || !clock.is_ascii() {
        return Err(bad());
    }
    let number = |text: &str| parse_digits(text).ok_or_else(bad);
    let civil = CivilTime::new(
        i64::from(number(&date[0..4])?),
        number(&date[4..6])?,
        number(&date[6..8])?,
        number(&clock[0..2])?,
        number(&clock[2..4])?,
        0,
    )
    .filter(|c| c.hour < 24)
    .ok_or_else(bad)?;
    Ok(civil.to_unix_s(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::calendar::format_utc;

    const SAMPLE: &str = "Latitude (decimal degrees): 45.000\r\nLongitude (decimal degrees): 8.000\r\n\
Elevation (m): 250.0\r\nmonth,year\r\n1,2009\r\n\
time(UTC),T2m,RH,G(h),Gb(n),Gd(h),IR(h),WS10m,WD10m,SP\r\n\
20090101:0800,2.68,89.76,117.0,599.45,33.0,337.75,3.7,10.0,99537.0\r\n\
20090101:0900,3.65,83.23,207.0,-0.0,99.0,328.88,3.58,9.0,99488.0\r\n\r\nT2m: 2-m air temperature (degree Celsius)\r\n";

    #[test]
    fn reads_header_and_table() {
        let series = parse(SAMPLE).unwrap();
        let site = series.site.unwrap();
        assert_eq!(
            (site.latitude_deg, site.longitude_deg, site.elevation_m),
            (Some(45.0), Some(8.0), Some(250.0))
        );
        assert_eq!(series.records.len(), 2);
        let first = &series.records[0];
        assert_eq!(format_utc(first.time_s), "2009-01-01T08:00:00Z");
        assert_eq!(
            (first.ghi, first.dni, first.dhi, first.temp_air_c),
            (Some(117.0), Some(599.45), Some(33.0), Some(2.68))
        );
        assert_eq!(
            (first.pressure_pa, first.wind_speeds.clone()),
            (Some(99_537.0), vec![(10.0, 3.7)])
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = parse(&SAMPLE.replace("20090101:0900", "20090101:9900")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (8, "time(UTC)"));
        let err = parse(&SAMPLE.replace("99488.0", "994.88")).unwrap_err();
        assert_eq!((err.line, err.field.as_str()), (8, "SP"));
    }
}
