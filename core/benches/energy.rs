//! The placement engine's energy question at fleet scale: a 48-hour hourly forecast for
//! 100 sites, each with 3 PV arrays and 2 turbine groups. Target: under 50 ms in all.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use verdant_core::energy::{
    Location, Plant, PlantOutput, PvArray, Turbine, TurbineGroup, WeatherRecord,
    fleet_power_series_kw,
};

const SITES: usize = 100;
const HOURS: i64 = 48;
/// 2025-06-20T00:00:00Z: long days, so most hours run the full PV chain.
const START_S: i64 = 1_750_377_600;

fn site(index: usize) -> Plant {
    let latitude = -45.0 + 90.0 * (index as f64 / SITES as f64);
    let longitude = -170.0 + 3.4 * index as f64;
    let arrays = vec![
        PvArray::new(5000.0, 25.0, if latitude >= 0.0 { 180.0 } else { 0.0 }),
        PvArray::new(2000.0, 10.0, 90.0),
        PvArray {
            dc_ac_ratio: 1.35,
            ..PvArray::new(3000.0, 35.0, 270.0)
        },
    ];
    let turbines = ["E-126/4200", "V90/2000", "E-82/2350", "N131/3600"];
    let turbine_groups = vec![
        TurbineGroup::new(
            Turbine::from_library(turbines[index % 4]).unwrap(),
            8,
            120.0,
        ),
        TurbineGroup::new(
            Turbine::from_library(turbines[(index + 1) % 4]).unwrap(),
            4,
            80.0,
        )
        .with_loss_percent(5.0),
    ];
    Plant::new(
        Location::new(latitude, longitude, (index * 10) as f64),
        arrays,
        turbine_groups,
    )
    .unwrap()
}

/// A plausible forecast: clear-ish days scaled by a per-site cloudiness, a diurnal
/// temperature swing, wind at 10 m and 100 m.
fn forecast(index: usize) -> Vec<WeatherRecord> {
    let longitude = -170.0 + 3.4 * index as f64;
    (0..HOURS)
        .map(|hour| {
            let time_s = START_S + hour * 3600;
            let solar_hour = (hour as f64 + longitude / 15.0).rem_euclid(24.0);
            let daylight = (std::f64::consts::PI * (solar_hour - 6.0) / 12.0)
                .sin()
                .max(0.0);
            let cloudiness = 0.3 + 0.6 * ((index * 7 + hour as usize) % 10) as f64 / 10.0;
            let ghi = 1000.0 * daylight * cloudiness;
            let wind_10m = 3.0 + 4.0 * ((index + hour as usize) % 6) as f64 / 6.0;
            WeatherRecord {
                ghi: Some(ghi),
                dni: Some(900.0 * daylight * cloudiness.powi(2)),
                dhi: Some(ghi * (1.0 - 0.6 * cloudiness)),
                temp_air_c: Some(15.0 + 10.0 * daylight),
                wind_speeds: vec![(10.0, wind_10m), (100.0, wind_10m * 1.4)],
                pressure_pa: Some(100_000.0 - index as f64 * 100.0),
                roughness_length_m: Some(0.1),
                albedo: None,
                ..WeatherRecord::new(time_s)
            }
        })
        .collect()
}

/// The fleet helper: one SPA time-dependent computation per hour, shared by all sites.
fn fleet_forecast(plants: &[Plant], forecasts: &[Vec<WeatherRecord>]) -> Vec<Vec<PlantOutput>> {
    fleet_power_series_kw(plants.iter().zip(forecasts).map(|(p, w)| (p, w.as_slice())))
}

/// Site by site, each computing its own sun position every hour.
fn site_by_site_forecast(
    plants: &[Plant],
    forecasts: &[Vec<WeatherRecord>],
) -> Vec<Vec<PlantOutput>> {
    plants
        .iter()
        .zip(forecasts)
        .map(|(plant, weather)| plant.power_series_kw(weather))
        .collect()
}

fn bench(c: &mut Criterion) {
    let plants: Vec<Plant> = (0..SITES).map(site).collect();
    let forecasts: Vec<Vec<WeatherRecord>> = (0..SITES).map(forecast).collect();
    let total_kw: f64 = fleet_forecast(&plants, &forecasts)
        .iter()
        .flatten()
        .map(PlantOutput::total_kw)
        .sum();
    assert!(total_kw > 0.0);

    assert_eq!(
        fleet_forecast(&plants, &forecasts),
        site_by_site_forecast(&plants, &forecasts)
    );

    c.bench_function(
        "energy/forecast_48h_100_sites_3_arrays_2_turbine_groups",
        |b| b.iter(|| fleet_forecast(black_box(&plants), black_box(&forecasts))),
    );
    c.bench_function(
        "energy/forecast_48h_100_sites_3_arrays_2_turbine_groups/site_by_site",
        |b| b.iter(|| site_by_site_forecast(black_box(&plants), black_box(&forecasts))),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
