//! Agreement of the energy models with the tools they follow, over whole years.
//!
//! The references in `tests/reference/` come from `tests/reference/make_reference.py`
//! (pvlib's PVWatts ModelChain, windpowerlib's power-curve ModelChain) run on the same
//! bundled weather files (`core/data/weather/`). Each case must hold annual energy within
//! 2 % and an hourly Pearson correlation of at least 0.995. Run with `--nocapture` to
//! see the figures recorded in `docs/energy.md`.

use std::path::PathBuf;

use verdant_core::energy::{
    Location, Plant, PvArray, Turbine, TurbineGroup, WeatherRecord, WeatherSeries, parse_weather,
};

const MAX_ANNUAL_ENERGY_ERROR: f64 = 0.02;
const MIN_PEARSON_R: f64 = 0.995;

fn repo_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A reference CSV: the `time` column as Unix seconds and the named value columns.
struct Reference {
    times_s: Vec<i64>,
    columns: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Reference {
    fn load(name: &str) -> Self {
        let text = repo_file(&format!("tests/reference/{name}"));
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        assert_eq!(header[0], "time");
        let mut times_s = Vec::new();
        let mut rows = Vec::new();
        for line in lines {
            let mut fields = line.split(',');
            times_s.push(parse_utc(fields.next().unwrap()));
            rows.push(fields.map(|f| f.parse().unwrap()).collect());
        }
        Self {
            times_s,
            columns: header[1..].iter().map(|s| s.to_string()).collect(),
            rows,
        }
    }

    fn column(&self, name: &str) -> Vec<f64> {
        let index = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        self.rows.iter().map(|row| row[index]).collect()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` to Unix seconds.
fn parse_utc(text: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let days = era * 146_097 + year_of_era * 365 + year_of_era / 4 - year_of_era / 100
        + day_of_year
        - 719_468;
    days * 86_400 + number(11..13) * 3600 + number(14..16) * 60 + number(17..19)
}

struct Agreement {
    energy_ours: f64,
    energy_reference: f64,
    pearson_r: f64,
    worst_hour_kw: f64,
}

impl Agreement {
    fn new(ours: &[f64], reference: &[f64]) -> Self {
        assert_eq!(ours.len(), reference.len());
        Self {
            energy_ours: ours.iter().sum(),
            energy_reference: reference.iter().sum(),
            pearson_r: pearson(ours, reference),
            worst_hour_kw: ours
                .iter()
                .zip(reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max),
        }
    }

    fn energy_error(&self) -> f64 {
        self.energy_ours / self.energy_reference - 1.0
    }

    fn check(&self, case: &str) {
        eprintln!(
            "| {case} | {:.1} MWh | {:.1} MWh | {:+.4} % | {:.6} | {:.2} kW |",
            self.energy_reference / 1000.0,
            self.energy_ours / 1000.0,
            self.energy_error() * 100.0,
            self.pearson_r,
            self.worst_hour_kw
        );
        assert!(
            self.energy_error().abs() <= MAX_ANNUAL_ENERGY_ERROR,
            "{case}: annual energy off by {:.3} %",
            self.energy_error() * 100.0
        );
        assert!(
            self.pearson_r >= MIN_PEARSON_R,
            "{case}: hourly Pearson r {:.5}",
            self.pearson_r
        );
    }
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (mean_a, mean_b) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a).powi(2);
        var_b += (y - mean_b).powi(2);
    }
    cov / (var_a * var_b).sqrt()
}

fn assert_same_times(case: &str, records: &[WeatherRecord], reference: &Reference) {
    assert_eq!(records.len(), reference.times_s.len(), "{case}: row count");
    let mismatch = records
        .iter()
        .zip(&reference.times_s)
        .position(|(r, t)| r.time_s != *t);
    if let Some(row) = mismatch {
        panic!(
            "{case}: row {row} is stamped {} here, {} in the reference",
            records[row].time_s, reference.times_s[row]
        );
    }
}

fn load_weather(file: &str) -> WeatherSeries {
    parse_weather(&repo_file(&format!("core/data/weather/{file}")))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The array every PV reference was computed for.
fn reference_pv_plant(series: &WeatherSeries) -> Plant {
    let site = series.site.as_ref().expect("site metadata");
    let location = Location::new(
        site.latitude_deg.unwrap(),
        site.longitude_deg.unwrap(),
        site.elevation_m.unwrap(),
    );
    let array = PvArray {
        dc_ac_ratio: 1.2,
        ..PvArray::new(1000.0, 25.0, 180.0).with_losses_percent(14.0)
    };
    Plant::new(location, vec![array], vec![]).unwrap()
}

fn check_pv_case(
    case: &str,
    weather_file: &str,
    reference_file: &str,
    prepare: impl Fn(&mut WeatherRecord),
) {
    let mut series = load_weather(weather_file);
    series.records.iter_mut().for_each(prepare);
    let plant = reference_pv_plant(&series);
    let reference = Reference::load(reference_file);
    assert_same_times(case, &series.records, &reference);

    let ac_kw: Vec<f64> = plant
        .power_series_kw(&series.records)
        .iter()
        .map(|o| o.solar_kw)
        .collect();
    Agreement::new(&ac_kw, &reference.column("ac_kw")).check(case);

    // The sun itself: SPA against SPA, while it is up.
    let zenith = reference.column("apparent_zenith_deg");
    let worst_zenith_deg = series
        .records
        .iter()
        .zip(&zenith)
        .filter(|(_, z)| **z < 90.0)
        .map(|(record, z)| {
            let conditions = plant.solar_conditions(record, None).expect("irradiance");
            (conditions.sun.apparent_zenith_deg - z).abs()
        })
        .fold(0.0, f64::max);
    assert!(
        worst_zenith_deg < 0.01,
        "{case}: apparent zenith off by {worst_zenith_deg}°"
    );
}

#[test]
fn pv_greensboro_tmy3() {
    check_pv_case(
        "PV Greensboro TMY3",
        "pvlib_723170TYA_greensboro_nc_tmy3.csv",
        "pv_greensboro_tmy3.csv",
        |_| {},
    );
}

#[test]
fn pv_greensboro_tmy3_from_ghi_only() {
    check_pv_case(
        "PV Greensboro TMY3, GHI only (Erbs)",
        "pvlib_723170TYA_greensboro_nc_tmy3.csv",
        "pv_greensboro_tmy3_ghi_only.csv",
        |record| {
            record.dni = None;
            record.dhi = None;
        },
    );
}

#[test]
fn pv_italy_pvgis_tmy() {
    check_pv_case(
        "PV Piedmont PVGIS TMY",
        "pvlib_pvgis_tmy_45.000N_8.000E_2005_2016.csv",
        "pv_italy_pvgis_tmy.csv",
        |_| {},
    );
}

#[test]
fn wind_windpowerlib_2010() {
    let series = load_weather("windpowerlib_example_weather_2010.csv");
    let reference = Reference::load("wind_windpowerlib_2010.csv");
    assert_same_times("wind", &series.records, &reference);
    // Mirrors TURBINES in make_reference.py.
    for (turbine_type, hub_height_m, column) in [
        ("E-126/4200", 135.0, "e126_4200_kw"),
        ("E-82/2350", 108.0, "e82_2350_kw"),
        ("V90/2000", 80.0, "v90_2000_kw"),
        ("E-53/800", 40.0, "e53_800_kw"),
    ] {
        let group = TurbineGroup::new(
            Turbine::from_library(turbine_type).unwrap(),
            1,
            hub_height_m,
        );
        let plant = Plant::new(Location::new(52.0, 13.0, 0.0), vec![], vec![group]).unwrap();
        let kw: Vec<f64> = plant
            .power_series_kw(&series.records)
            .iter()
            .map(|o| o.wind_kw)
            .collect();
        Agreement::new(&kw, &reference.column(column))
            .check(&format!("Wind {turbine_type} @ {hub_height_m} m, 2010"));
    }
}
