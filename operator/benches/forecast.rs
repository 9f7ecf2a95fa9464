//! The forecast providers' cost at fleet scale, beyond the models themselves
//! (`core/benches/energy.rs`): 100 sites, each with 3 PV arrays and 2 turbine groups.
//!
//! - `open_meteo_parse`: parse and check a 96-hour Open-Meteo answer, per site;
//! - `open_meteo_refresh`: parse a 96-hour Open-Meteo answer and model the plant over it,
//!   per site (what a refresh costs, without the HTTP round trip);
//! - `compose_open_meteo`: the 48 hourly points from a cached forecast (what every status
//!   update costs);
//! - `compose_replay`: the 48 hourly points of a TMY3 replay, modelled from the file's
//!   records on the fly (what every status update of a Replay site costs).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use verdant_core::energy::Plant;
use verdant_core::energy::forecast::open_meteo::{self, Needs};
use verdant_crds::{EnergySite, plant_from_site};
use verdant_operator::energy::forecast::ForecastSettings;
use verdant_operator::energy::forecast::replay::ReplayFile;
use verdant_operator::energy::forecast::samples::open_meteo_answer;
use verdant_operator::energy::forecast::site::{ForecastState, WeatherData, compose};
use verdant_operator::energy::forecast::timeline::PowerTimeline;

const SITES: usize = 100;
/// 2026-06-21T00:00:00Z.
const MIDNIGHT_S: i64 = 1_781_913_600;
const NOW_S: i64 = MIDNIGHT_S + 10 * 3600 + 1200;

fn site(index: usize, forecast: &str) -> (EnergySite, Plant) {
    let latitude = -45.0 + 90.0 * (index as f64 / SITES as f64);
    let longitude = -170.0 + 3.4 * index as f64;
    let turbines = ["E-126/4200", "V90/2000", "E-82/2350", "N131/3600"];
    let yaml = format!(
        "location: {{latitude: {latitude}, longitude: {longitude}, elevationM: {}}}
solar:
- {{name: a, capacityKw: 5000, tiltDegrees: 25, azimuthDegrees: {}}}
- {{name: b, capacityKw: 2000, tiltDegrees: 10, azimuthDegrees: 90}}
- {{name: c, capacityKw: 3000, tiltDegrees: 35, azimuthDegrees: 270}}
wind:
- {{name: big, turbineType: {}, count: 8, hubHeightM: 120}}
- {{name: small, turbineType: {}, count: 4, hubHeightM: 80}}
forecast: {forecast}",
        index * 10,
        if latitude >= 0.0 { 180 } else { 0 },
        turbines[index % 4],
        turbines[(index + 1) % 4],
    );
    let mut site = EnergySite::new(
        &format!("site-{index}"),
        serde_yaml_ng::from_str(&yaml).unwrap(),
    );
    site.metadata.generation = Some(1);
    site.metadata.creation_timestamp =
        Some(Time(jiff::Timestamp::from_second(NOW_S - 3600).unwrap()));
    let plant = plant_from_site(&site.spec).unwrap();
    (site, plant)
}

fn bench(c: &mut Criterion) {
    let settings = ForecastSettings::default();
    let open_meteo: Vec<(EnergySite, Plant, String)> = (0..SITES)
        .map(|i| {
            let (site, plant) = site(i, "{provider: OpenMeteo, openMeteo: {}}");
            let location = *plant.location();
            let body = open_meteo_answer(
                location.latitude_deg,
                location.longitude_deg,
                MIDNIGHT_S,
                96,
                0.3,
                6.0,
            )
            .to_string();
            (site, plant, body)
        })
        .collect();
    c.bench_function("open_meteo_parse (100 sites, 96 h answers)", |b| {
        b.iter(|| {
            for (_, plant, body) in &open_meteo {
                black_box(open_meteo::parse(body, "bench", Needs::of(plant), NOW_S).unwrap());
            }
        })
    });
    c.bench_function("open_meteo_refresh (100 sites, 96 h answers)", |b| {
        b.iter(|| {
            for (_, plant, body) in &open_meteo {
                let records = open_meteo::parse(body, "bench", Needs::of(plant), NOW_S).unwrap();
                black_box(PowerTimeline::from_weather(plant, &records));
            }
        })
    });

    let cached: Vec<(EnergySite, Plant, ForecastState)> = open_meteo
        .iter()
        .map(|(site, plant, body)| {
            let records = open_meteo::parse(body, "bench", Needs::of(plant), NOW_S).unwrap();
            let mut state = ForecastState::default();
            state.generation = Some(1);
            state.weather = Some(WeatherData::Forecast(Arc::new(
                PowerTimeline::from_weather(plant, &records),
            )));
            state.weather_fetched_s = Some(NOW_S - 600);
            (site.clone(), plant.clone(), state)
        })
        .collect();
    c.bench_function("compose_open_meteo (100 sites, 48 h)", |b| {
        b.iter(|| {
            for (site, plant, state) in &cached {
                black_box(compose(state, site, plant, &settings, NOW_S));
            }
        })
    });

    let tmy3 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/data/weather/pvlib_723170TYA_greensboro_nc_tmy3.csv"
    ))
    .unwrap();
    let file = Arc::new(ReplayFile::parse(&tmy3, None, "greensboro").unwrap());
    let replays: Vec<(EnergySite, Plant, ForecastState)> = (0..SITES)
        .map(|i| {
            let (site, plant) = site(
                i,
                "{provider: Replay, replay: {path: x.csv, startOffset: 4000h}}",
            );
            let mut state = ForecastState::default();
            state.generation = Some(1);
            state.weather = Some(WeatherData::Replay(file.clone()));
            state.weather_fetched_s = Some(NOW_S - 600);
            (site, plant, state)
        })
        .collect();
    c.bench_function("compose_replay (100 sites, 48 h of TMY3)", |b| {
        b.iter(|| {
            for (site, plant, state) in &replays {
                black_box(compose(state, site, plant, &settings, NOW_S));
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
