//! The checks every weather target makes: no panic; an error names a line of the text;
//! a parsed record holds only values its column's range allows.

use verdant_core::energy::{WeatherFormat, parse_weather, parse_weather_as};

/// Parses `data` as `format` (and by guessing the format) and checks the outcome.
pub fn check(data: &[u8], format: WeatherFormat) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_outcome(text, parse_weather_as(text, format));
    check_outcome(text, parse_weather(text));
}

fn check_outcome(
    text: &str,
    outcome: Result<verdant_core::energy::WeatherSeries, verdant_core::energy::WeatherParseError>,
) {
    match outcome {
        Err(error) => {
            let lines = text.lines().count().max(1);
            assert!(
                (1..=lines + 1).contains(&error.line),
                "the error names line {} of {lines}: {error}",
                error.line
            );
        }
        Ok(series) => {
            for r in &series.records {
                let within = |what: &str, v: Option<f64>, min: f64, max: f64| {
                    if let Some(v) = v {
                        assert!((min..=max).contains(&v), "{what} = {v} at {}", r.time_s);
                    }
                };
                for (what, v) in [("ghi", r.ghi), ("dni", r.dni), ("dhi", r.dhi)] {
                    within(what, v, -50.0, 2000.0);
                }
                within("temp_air_c", r.temp_air_c, -100.0, 70.0);
                within("pressure_pa", r.pressure_pa, 30_000.0, 120_000.0);
                within("roughness_length_m", r.roughness_length_m, 0.0, 10.0);
                within("albedo", r.albedo, 0.0, 1.0);
                for &(height_m, speed) in &r.wind_speeds {
                    assert!(height_m.is_finite(), "wind height {height_m}");
                    within("wind speed", Some(speed), 0.0, 120.0);
                }
            }
        }
    }
}
