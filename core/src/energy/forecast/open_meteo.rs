//! An Open-Meteo hourly forecast (`GET /v1/forecast`, `timeformat=unixtime`, `wind_speed_unit=ms`)
//! into weather records.
//!
//! Open-Meteo's radiation values are means over the hour *preceding* their time stamp;
//! temperature, pressure and wind are instantaneous at the stamp. Each hour becomes one
//! [`WeatherRecord`] at its midpoint (stamp − 30 min): the radiation as given, the
//! instantaneous variables averaged over the two stamps around it, the way pvlib handles
//! hour-ending data. A model that lacks a wind height answers `null` there; heights with
//! no value are simply not used.
//!
//! Rejected as [`ForecastParseError::Malformed`], naming the variable, the index and the
//! time: a body that is not Open-Meteo JSON, arrays of the wrong length or type, times
//! that do not increase, negative or implausible values, and a forecast without what the
//! plant needs (irradiance for PV arrays, a wind speed for turbines) within the horizon.
//! An error envelope (`"error": true`) is [`ForecastParseError::Rejected`].

use serde_json::Value;

use super::{ForecastParseError, HORIZON_HOURS, excerpt, utc};
use crate::energy::{Plant, WeatherRecord};

const RADIATION: [&str; 3] = [
    "shortwave_radiation",
    "direct_normal_irradiance",
    "diffuse_radiation",
];
const WIND_HEIGHTS_M: [u32; 4] = [10, 80, 100, 120];
const TEMPERATURE: &str = "temperature_2m";
const PRESSURE: &str = "surface_pressure";
/// Extraterrestrial irradiance is 1361 W/m²; anything far above is a unit or data error.
const MAX_IRRADIANCE_W_M2: f64 = 1500.0;

/// The `hourly` variables to ask for: those [`parse`] reads.
pub fn hourly_variables() -> Vec<String> {
    RADIATION
        .iter()
        .map(|v| (*v).to_owned())
        .chain([TEMPERATURE.to_owned(), PRESSURE.to_owned()])
        .chain(WIND_HEIGHTS_M.iter().map(|h| format!("wind_speed_{h}m")))
        .collect()
}

/// What the plant needs from a forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// Irradiance, for PV arrays.
    pub irradiance: bool,
    /// A wind speed, for turbines.
    pub wind: bool,
}

impl Needs {
    /// What `plant` needs.
    pub fn of(plant: &Plant) -> Self {
        Self {
            irradiance: !plant.arrays().is_empty(),
            wind: !plant.turbine_groups().is_empty(),
        }
    }
}

struct Column {
    name: String,
    values: Vec<Option<f64>>,
}

/// Parses an Open-Meteo forecast body into records at hour midpoints. `source` names
/// the request in messages.
pub fn parse(
    body: &str,
    source: &str,
    needs: Needs,
    now_s: i64,
) -> Result<Vec<WeatherRecord>, ForecastParseError> {
    let bad = |detail: String| ForecastParseError::Malformed(format!("{source}: {detail}"));
    let json: Value = serde_json::from_str(body)
        .map_err(|e| bad(format!("the answer is not JSON ({e}): {}", excerpt(body))))?;
    if json.get("error").and_then(Value::as_bool) == Some(true) {
        let reason = json
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(ForecastParseError::Rejected(format!("{source}: {reason}")));
    }
    let hourly = json
        .get("hourly")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the answer has no `hourly` object".to_owned()))?;
    let utc_offset_s = json
        .get("utc_offset_seconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let times = parse_times(hourly.get("time"), utc_offset_s).map_err(bad)?;
    if times.is_empty() {
        return Err(bad("hourly.time is empty".to_owned()));
    }
    let column = |name: &str| -> Result<Option<Column>, ForecastParseError> {
        let Some(raw) = hourly.get(name) else {
            return Ok(None);
        };
        let values = raw
            .as_array()
            .ok_or_else(|| bad(format!("hourly.{name} is not an array")))?;
        if values.len() != times.len() {
            return Err(bad(format!(
                "hourly.{name} has {} values for {} times",
                values.len(),
                times.len()
            )));
        }
        let values = values
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Null => Ok(None),
                Value::Number(n) => n
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| bad(format!("hourly.{name}[{i}] = {n} is not a number"))),
                other => Err(bad(format!(
                    "hourly.{name}[{i}] ({}) is {other}, not a number",
                    utc(times[i])
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Column {
            name: name.to_owned(),
            values,
        }))
    };
    let radiation: Vec<Option<Column>> = RADIATION
        .iter()
        .map(|n| column(n))
        .collect::<Result<_, _>>()?;
    let temperature = column(TEMPERATURE)?;
    let pressure = column(PRESSURE)?;
    let winds: Vec<(f64, Column)> = WIND_HEIGHTS_M
        .iter()
        .map(|h| Ok(column(&format!("wind_speed_{h}m"))?.map(|c| (f64::from(*h), c))))
        .collect::<Result<Vec<_>, ForecastParseError>>()?
        .into_iter()
        .flatten()
        // A height the model lacks is all null: not a height the forecast has.
        .filter(|(_, c)| c.values.iter().any(Option::is_some))
        .collect();

    for column in radiation.iter().flatten() {
        check_range(column, &times, 0.0, MAX_IRRADIANCE_W_M2, "W/m²", source)?;
    }
    for (_, column) in &winds {
        check_range(column, &times, 0.0, 120.0, "m/s", source)?;
    }
    if let Some(column) = &temperature {
        check_range(column, &times, -100.0, 70.0, "°C", source)?;
    }
    if let Some(column) = &pressure {
        check_range(column, &times, 300.0, 1100.0, "hPa", source)?;
    }

    let horizon = (now_s - 3600)..=(now_s + (HORIZON_HOURS as i64 + 1) * 3600);
    let in_horizon: Vec<usize> = (0..times.len())
        .filter(|&i| horizon.contains(&times[i]))
        .collect();
    if needs.irradiance {
        let ghi = radiation[0].as_ref().ok_or_else(|| {
            bad(
                "the answer has no hourly.shortwave_radiation, which the site's PV arrays need"
                    .to_owned(),
            )
        })?;
        if let Some(&i) = in_horizon.iter().find(|&&i| ghi.values[i].is_none()) {
            return Err(bad(format!(
                "hourly.shortwave_radiation has no value for {}, which the site's PV arrays need",
                utc(times[i])
            )));
        }
    }
    if needs.wind {
        if winds.is_empty() {
            return Err(bad(
                "the answer has no hourly.wind_speed_10m/80m/100m/120m, which the site's turbines need"
                    .to_owned(),
            ));
        }
        if let Some(&i) = in_horizon
            .iter()
            .find(|&&i| winds.iter().all(|(_, c)| c.values[i].is_none()))
        {
            return Err(bad(format!(
                "no wind speed at any height for {}, which the site's turbines need",
                utc(times[i])
            )));
        }
    }

    let records = (0..times.len())
        .map(|i| {
            let step_s = if i > 0 {
                times[i] - times[i - 1]
            } else {
                times.get(1).map_or(3600, |t1| t1 - times[0])
            };
            let instant = |c: &Column| -> Option<f64> {
                let here = c.values[i];
                let before = i.checked_sub(1).and_then(|j| c.values[j]);
                match (before, here) {
                    (Some(a), Some(b)) => Some((a + b) / 2.0),
                    (a, b) => b.or(a),
                }
            };
            let value = |c: &Option<Column>| c.as_ref().and_then(|c| c.values[i]);
            WeatherRecord {
                ghi: value(&radiation[0]),
                dni: value(&radiation[1]),
                dhi: value(&radiation[2]),
                temp_air_c: temperature.as_ref().and_then(instant),
                pressure_pa: pressure.as_ref().and_then(instant).map(|hpa| hpa * 100.0),
                wind_speeds: winds
                    .iter()
                    .filter_map(|(h, c)| instant(c).map(|v| (*h, v)))
                    .collect(),
                ..WeatherRecord::new(times[i] - step_s / 2)
            }
        })
        .collect();
    Ok(records)
}

fn parse_times(raw: Option<&Value>, utc_offset_s: i64) -> Result<Vec<i64>, String> {
    let raw = raw
        .and_then(Value::as_array)
        .ok_or_else(|| "the answer has no hourly.time array".to_owned())?;
    let mut times = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let t = match value {
            Value::Number(n) => n.as_i64(),
            // timeformat=iso8601 gives local times without offset, e.g. 2026-11-29T13:00.
            Value::String(s) => s
                .parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .and_then(|z| z.timestamp().as_second().checked_sub(utc_offset_s)),
            _ => None,
        }
        // Within the years jiff knows (−9999 to 9999), so that steps cannot overflow.
        .filter(|t| jiff::Timestamp::from_second(*t).is_ok())
        .ok_or_else(|| format!("hourly.time[{i}] = {value} is not a Unix time or ISO 8601 time"))?;
        if let Some(&previous) = times.last()
            && t <= previous
        {
            return Err(format!(
                "hourly.time[{i}] = {} does not follow {}",
                utc(t),
                utc(previous)
            ));
        }
        times.push(t);
    }
    Ok(times)
}

fn check_range(
    column: &Column,
    times: &[i64],
    min: f64,
    max: f64,
    unit: &str,
    source: &str,
) -> Result<(), ForecastParseError> {
    for (i, value) in column.values.iter().enumerate() {
        if let Some(v) = *value
            && !(v >= min && v <= max)
        {
            let why = if v < min && min == 0.0 {
                "cannot be negative".to_owned()
            } else {
                format!("is outside the plausible {min} ..= {max} {unit}")
            };
            return Err(ForecastParseError::Malformed(format!(
                "{source}: hourly.{}[{i}] ({}) = {v} {unit} {why}",
                column.name,
                utc(times[i])
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_910_400; // 2026-11-29T00:00:00Z

    fn body(hours: usize, edit: impl FnOnce(&mut Value)) -> String {
        let time: Vec<i64> = (0..hours as i64).map(|h| T0 + h * 3600).collect();
        let ghi: Vec<f64> = (0..hours).map(|h| [0.0, 100.0, 300.0][h % 3]).collect();
        let mut json = serde_json::json!({
            "latitude": 36.1, "longitude": -79.95, "generationtime_ms": 0.4,
            "utc_offset_seconds": 0, "timezone": "GMT", "timezone_abbreviation": "GMT",
            "elevation": 273.0,
            "hourly_units": {"time": "unixtime", "shortwave_radiation": "W/m²", "wind_speed_10m": "m/s"},
            "hourly": {
                "time": time,
                "shortwave_radiation": ghi,
                "temperature_2m": vec![10.0; hours],
                "wind_speed_10m": (0..hours).map(|h| h as f64 / 10.0).collect::<Vec<_>>(),
                "wind_speed_100m": vec![Value::Null; hours],
            }
        });
        edit(&mut json);
        json.to_string()
    }

    const BOTH: Needs = Needs {
        irradiance: true,
        wind: true,
    };

    #[test]
    fn records_sit_at_hour_midpoints_with_averaged_instant_values() {
        let records = parse(&body(96, |_| {}), "test", BOTH, T0 + 3600).unwrap();
        assert_eq!(records.len(), 96);
        assert_eq!(records[1].time_s, T0 + 1800);
        assert_eq!(
            records[1].ghi,
            Some(100.0),
            "radiation of the preceding hour"
        );
        assert_eq!(records[1].dni, None);
        assert_eq!(
            records[1].wind_speeds,
            vec![(10.0, 0.05)],
            "mean of 0.0 and 0.1; all-null 100 m unused"
        );
        assert_eq!(records[1].temp_air_c, Some(10.0));
    }

    /// Found while writing the `open_meteo` fuzz target (its 2-minute run had not reached
    /// them): both overflowed, a panic in debug builds.
    #[test]
    fn extreme_times_and_offsets_are_errors_not_overflows() {
        let extreme_times = body(2, |j| {
            j["hourly"]["time"] = serde_json::json!([i64::MIN, i64::MAX]);
        });
        let huge_offset = body(1, |j| {
            j["utc_offset_seconds"] = i64::MIN.into();
            j["hourly"]["time"] = serde_json::json!(["2026-11-29T13:00"]);
        });
        for answer in [extreme_times, huge_offset] {
            let error = parse(&answer, "test", BOTH, T0).unwrap_err().to_string();
            assert!(
                error.contains("is not a Unix time or ISO 8601 time"),
                "{error}"
            );
        }
    }

    #[test]
    fn iso_times_are_local_with_the_utc_offset() {
        let text = body(3, |j| {
            j["utc_offset_seconds"] = 3600.into();
            j["hourly"]["time"] =
                serde_json::json!(["2026-11-29T01:00", "2026-11-29T02:00", "2026-11-29T03:00"]);
        });
        let records = parse(&text, "test", BOTH, T0).unwrap();
        assert_eq!(records[0].time_s, T0 - 1800);
    }

    #[test]
    fn bad_answers_are_named_precisely() {
        let cases: Vec<(String, &str)> = vec![
            ("<html>502</html>".to_owned(), "not JSON"),
            (
                body(96, |j| {
                    j["hourly"]["shortwave_radiation"][5] = (-35.0).into()
                }),
                "hourly.shortwave_radiation[5] (2026-11-29T05:00Z) = -35 W/m² cannot be negative",
            ),
            (
                body(96, |j| j["hourly"]["shortwave_radiation"][7] = "NaN".into()),
                "hourly.shortwave_radiation[7] (2026-11-29T07:00Z) is \"NaN\", not a number",
            ),
            (
                body(96, |j| j["hourly"]["wind_speed_10m"][2] = 300.0.into()),
                "hourly.wind_speed_10m[2]",
            ),
            (
                body(96, |j| {
                    j["hourly"]
                        .as_object_mut()
                        .unwrap()
                        .remove("shortwave_radiation");
                }),
                "no hourly.shortwave_radiation",
            ),
            (
                body(96, |j| {
                    j["hourly"]
                        .as_object_mut()
                        .unwrap()
                        .remove("wind_speed_10m");
                }),
                "no hourly.wind_speed_10m/80m/100m/120m",
            ),
            (
                body(96, |j| j["hourly"]["shortwave_radiation"][3] = Value::Null),
                "no value for 2026-11-29T03:00Z",
            ),
            (
                body(96, |j| {
                    j["hourly"]["temperature_2m"] = serde_json::json!([1.0])
                }),
                "hourly.temperature_2m has 1 values for 96 times",
            ),
            (
                body(96, |j| j["hourly"]["time"][4] = T0.into()),
                "hourly.time[4]",
            ),
            (
                body(96, |j| {
                    j.as_object_mut().unwrap().remove("hourly");
                }),
                "no `hourly` object",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text, "Open-Meteo http://x/v1/forecast", BOTH, T0 + 3600).unwrap_err();
            assert!(matches!(err, ForecastParseError::Malformed(_)), "{err:?}");
            let message = err.to_string();
            assert!(
                message.starts_with("Open-Meteo http://x/v1/forecast: "),
                "{message}"
            );
            assert!(message.contains(expected), "{message} lacks {expected}");
        }
    }

    #[test]
    fn nulls_outside_the_horizon_and_unneeded_variables_are_fine() {
        let text = body(96, |j| {
            j["hourly"]["shortwave_radiation"][95] = Value::Null;
            j["hourly"]
                .as_object_mut()
                .unwrap()
                .remove("wind_speed_10m");
        });
        let needs = Needs {
            irradiance: true,
            wind: false,
        };
        let records = parse(&text, "test", needs, T0 + 3600).unwrap();
        assert_eq!(records[95].ghi, None);
    }
}
