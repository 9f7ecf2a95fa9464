//! Garbage in, errors out: no parser input may panic, and every error points inside
//! the text it came from.

use proptest::prelude::*;

use super::{WeatherFormat, parse_weather, parse_weather_as};

const FORMATS: [WeatherFormat; 4] = [
    WeatherFormat::Tmy3,
    WeatherFormat::PvgisTmy,
    WeatherFormat::Windpowerlib,
    WeatherFormat::Generic,
];

const TMY3: &str = "723170,\"GREENSBORO\",NC,-5.0,36.100,-79.950,273\n\
Date (MM/DD/YYYY),Time (HH:MM),GHI (W/m^2),DNI (W/m^2),DHI (W/m^2),Dry-bulb (C),Pressure (mbar),Wspd (m/s),Alb (unitless)\n\
02/24/1996,13:00,973,728,24,12.5,993,3.1,0.0\n02/24/1996,24:00,0,0,0,10.0,993,2.0,0.2\n";
const PVGIS: &str = "Latitude (decimal degrees): 45.000\r\nLongitude (decimal degrees): 8.000\r\nElevation (m): 250.0\r\n\
time(UTC),T2m,RH,G(h),Gb(n),Gd(h),IR(h),WS10m,WD10m,SP\r\n20090101:0800,2.68,89.76,117.0,599.45,33.0,337.75,3.7,10.0,99537.0\r\n\r\nlegend\r\n";
const WINDPOWERLIB: &str = "variable_name,pressure,temperature,wind_speed,roughness_length,temperature,wind_speed\n\
height,0,2,10,0,10,80\n2010-01-01 00:00:00+01:00,98405.7,267.6,5.32697,0.15,267.57,7.80697\n";
const GENERIC: &str = "time,ghi,dni,dhi,temp_air,wind_speed,wind_speed_100m,pressure,roughness_length,albedo\n\
2024-06-01T12:00:00Z,800,700,100,25,3,6,101325,0.1,0.2\n";

/// Tokens that have broken parsers before: sentinels, overflow, odd clocks and dates,
/// separators, multi-byte characters at places where byte slicing would split them.
const TOKENS: &[&str] = &[
    "",
    "NaN",
    "nan",
    "NA",
    "-9900",
    "-0.0",
    "1e308",
    "-1e308",
    "inf",
    "1e-320",
    "24:00",
    "25:61",
    "02/29/2001",
    "13/01/2000",
    "20090230:0000",
    "2024-02-30T00:00Z",
    "2024-06-01T12:00:00+14:00",
    "\"",
    "\"\"",
    ",",
    ":",
    "é",
    "€€€€",
    "time",
    "height",
    "variable_name",
    "wind_speed_0m",
    "wind_speed_1e9m",
    "wind_speed_-5m",
    "time(UTC)",
    "\r",
    "\t",
    "Date (MM/DD/YYYY)",
    "99999999999999999999",
    "0x10",
    "+",
    "-",
];

fn assert_error_points_inside(
    text: &str,
    result: Result<super::WeatherSeries, super::WeatherParseError>,
) {
    if let Err(error) = result {
        let lines = text.lines().count().max(1);
        assert!(
            error.line >= 1 && error.line <= lines + 1,
            "line {} of {lines}: {error}",
            error.line
        );
        assert!(!error.to_string().is_empty());
    }
}

fn parse_everyway(text: &str) {
    assert_error_points_inside(text, parse_weather(text));
    for format in FORMATS {
        assert_error_points_inside(text, parse_weather_as(text, format));
    }
}

fn mutated(sample: &'static str) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0..3u8,
            prop::sample::select(TOKENS),
        ),
        1..8,
    );
    edits.prop_map(move |edits| {
        let mut text: Vec<char> = sample.chars().collect();
        for (at, kind, token) in edits {
            let at = at.index(text.len() + 1);
            let end = match kind {
                0 => at,
                1 => (at + 3).min(text.len()),
                _ => (at + 1).min(text.len()),
            };
            let insert = if kind == 2 { "" } else { token };
            text.splice(at..end, insert.chars());
        }
        text.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        parse_everyway(&text);
    }

    #[test]
    fn token_soup_under_real_headers_never_panics(
        header in prop::sample::select(&[TMY3, PVGIS, WINDPOWERLIB, GENERIC][..]),
        rows in prop::collection::vec(prop::collection::vec(prop::sample::select(TOKENS), 0..12), 0..6),
    ) {
        let mut text = header.lines().take(2).collect::<Vec<_>>().join("\n");
        for row in rows {
            text.push('\n');
            text.push_str(&row.join(","));
        }
        parse_everyway(&text);
    }

    #[test]
    fn mutated_tmy3_never_panics(text in mutated(TMY3)) { parse_everyway(&text); }

    #[test]
    fn mutated_pvgis_never_panics(text in mutated(PVGIS)) { parse_everyway(&text); }

    #[test]
    fn mutated_windpowerlib_never_panics(text in mutated(WINDPOWERLIB)) { parse_everyway(&text); }

    #[test]
    fn mutated_generic_never_panics(text in mutated(GENERIC)) { parse_everyway(&text); }
}

#[test]
fn samples_parse_and_are_recognised() {
    for (text, format) in [
        (TMY3, WeatherFormat::Tmy3),
        (PVGIS, WeatherFormat::PvgisTmy),
        (WINDPOWERLIB, WeatherFormat::Windpowerlib),
        (GENERIC, WeatherFormat::Generic),
    ] {
        let series = parse_weather(text).unwrap();
        assert_eq!(series.format, format);
        assert!(!series.records.is_empty());
    }
    let err = parse_weather("hello,world\n1,2\n").unwrap_err();
    assert_eq!(
        (err.line, err.problem.clone()),
        (1, super::WeatherProblem::UnknownFormat)
    );
}
