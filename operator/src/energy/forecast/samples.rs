//! Answers in the services' own formats, computed from the sun: for tests that run the
//! providers against a real local HTTP server, and for demos without Internet access.

use serde_json::{Value, json};
use verdant_core::energy::{Location, solar_position};

/// An Open-Meteo `/v1/forecast` answer as the API gives it for Verdant's request
/// (`timeformat=unixtime`, `timezone=GMT`, `wind_speed_unit=ms`): `hours` hourly stamps
/// from `start_s` (a UTC hour). Radiation is the Haurwitz clear-sky irradiance, averaged
/// over the preceding hour (taken at its midpoint) and scaled by `1 − cloudiness`; the
/// 10 m wind blows at `wind_10m_ms` (±20 % over the day), higher up by the 1/7 power
/// law; `wind_speed_100m` is all `null`, as for the weather models that lack it.
pub fn open_meteo_answer(
    latitude: f64,
    longitude: f64,
    start_s: i64,
    hours: usize,
    cloudiness: f64,
    wind_10m_ms: f64,
) -> Value {
    let location = Location::new(latitude, longitude, 0.0);
    let times: Vec<i64> = (0..hours as i64).map(|h| start_s + h * 3600).collect();
    let mut ghi = Vec::with_capacity(hours);
    let mut dni = Vec::with_capacity(hours);
    let mut dhi = Vec::with_capacity(hours);
    for &t in &times {
        let cos_zenith = solar_position(&location, t - 1800, None, None)
            .map_or(0.0, |p| p.apparent_zenith_deg.to_radians().cos());
        let clear = if cos_zenith > 0.01 {
            1098.0 * cos_zenith * (-0.057 / cos_zenith).exp()
        } else {
            0.0
        };
        let global = (clear * (1.0 - cloudiness.clamp(0.0, 1.0))).round();
        let diffuse = (0.15 * clear + 0.6 * (clear - global)).min(global).round();
        ghi.push(global);
        dhi.push(diffuse);
        dni.push(if cos_zenith > 0.01 {
            ((global - diffuse) / cos_zenith).max(0.0).round()
        } else {
            0.0
        });
    }
    let daily = |t: i64| ((t.rem_euclid(86_400) as f64 / 86_400.0) * std::f64::consts::TAU).sin();
    let wind = |height_m: f64| -> Vec<f64> {
        times
            .iter()
            .map(|&t| {
                let at_10 = wind_10m_ms * (1.0 + 0.2 * daily(t));
                (at_10 * (height_m / 10.0).powf(1.0 / 7.0) * 100.0).round() / 100.0
            })
            .collect()
    };
    let temperature: Vec<f64> = times
        .iter()
        .map(|&t| (10.0 + 5.0 * daily(t - 6 * 3600)) * 10.0)
        .map(|v: f64| v.round() / 10.0)
        .collect();
    json!({
        "latitude": (latitude * 40.0).round() / 40.0,
        "longitude": (longitude * 40.0).round() / 40.0,
        "generationtime_ms": 0.61,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 273.0,
        "hourly_units": {
            "time": "unixtime",
            "shortwave_radiation": "W/m²",
            "direct_normal_irradiance": "W/m²",
            "diffuse_radiation": "W/m²",
            "temperature_2m": "°C",
            "surface_pressure": "hPa",
            "wind_speed_10m": "m/s",
            "wind_speed_80m": "m/s",
            "wind_speed_100m": "m/s",
            "wind_speed_120m": "m/s"
        },
        "hourly": {
            "time": times,
            "shortwave_radiation": ghi,
            "direct_normal_irradiance": dni,
            "diffuse_radiation": dhi,
            "temperature_2m": temperature,
            "surface_pressure": vec![1013.2; hours],
            "wind_speed_10m": wind(10.0),
            "wind_speed_80m": wind(80.0),
            "wind_speed_100m": vec![Value::Null; hours],
            "wind_speed_120m": wind(120.0)
        }
    })
}

/// Open-Meteo's answer to a request it cannot serve (HTTP 400).
pub fn open_meteo_error(reason: &str) -> Value {
    json!({"error": true, "reason": reason})
}

/// A Prometheus instant-query answer with one series: `value` as Prometheus writes
/// sample values (a string: `"812.5"`, `"NaN"`).
pub fn prometheus_vector(value: &str, at_s: f64, site: &str) -> Value {
    json!({
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{
                "metric": {"__name__": "site_renewable_output_kw", "site": site},
                "value": [at_s, value]
            }]
        }
    })
}

/// A Prometheus error answer (`bad_data` is HTTP 400, `execution` 422, `timeout` 503).
pub fn prometheus_error(error_type: &str, error: &str) -> Value {
    json!({"status": "error", "errorType": error_type, "error": error})
}
