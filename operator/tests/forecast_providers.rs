//! Every forecast provider against a real HTTP server on a local socket, answering in the
//! service's own format (Open-Meteo JSON, Prometheus JSON), healthy and broken; the
//! Replay provider against the real weather files in `core/data/weather`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use verdant_core::energy::{Plant, parse_weather};
use verdant_crds::{EnergySite, plant_from_site};
use verdant_operator::energy::forecast::build::hour_start;
use verdant_operator::energy::forecast::samples::{
    open_meteo_answer, open_meteo_error, prometheus_error, prometheus_vector,
};
use verdant_operator::energy::forecast::site::{Deps, ForecastState, compose, refresh};
use verdant_operator::energy::forecast::{
    ForecastBasis, ForecastError, ForecastSettings, SiteForecast,
};

/// What one endpoint answers.
#[derive(Clone)]
enum Answer {
    Json(StatusCode, Value),
    Text(StatusCode, &'static str),
    Slow(Duration),
}

/// A local HTTP server standing in for Open-Meteo and Prometheus.
#[derive(Clone)]
struct Service {
    forecast: Arc<Mutex<Answer>>,
    query: Arc<Mutex<Answer>>,
    forecast_hits: Arc<AtomicUsize>,
    query_hits: Arc<AtomicUsize>,
    last_forecast_query: Arc<Mutex<String>>,
    url: String,
}

impl Service {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = Self {
            forecast: Arc::new(Mutex::new(Answer::Text(StatusCode::NOT_FOUND, "unset"))),
            query: Arc::new(Mutex::new(Answer::Text(StatusCode::NOT_FOUND, "unset"))),
            forecast_hits: Arc::default(),
            query_hits: Arc::default(),
            last_forecast_query: Arc::default(),
            url: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = axum::Router::new()
            .route("/v1/forecast", get(forecast))
            .route("/api/v1/query", get(query))
            .with_state(service.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        service
    }

    fn answer_forecast(&self, answer: Answer) {
        *self.forecast.lock().unwrap() = answer;
    }

    fn answer_query(&self, answer: Answer) {
        *self.query.lock().unwrap() = answer;
    }
}

async fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Json(status, body) => (status, axum::Json(body)).into_response(),
        Answer::Text(status, body) => (status, body).into_response(),
        Answer::Slow(wait) => {
            tokio::time::sleep(wait).await;
            (StatusCode::OK, "{}").into_response()
        }
    }
}

async fn forecast(State(s): State<Service>, RawQuery(q): RawQuery) -> Response {
    s.forecast_hits.fetch_add(1, Ordering::SeqCst);
    *s.last_forecast_query.lock().unwrap() = q.unwrap_or_default();
    let answer = s.forecast.lock().unwrap().clone();
    respond(answer).await
}

async fn query(State(s): State<Service>) -> Response {
    s.query_hits.fetch_add(1, Ordering::SeqCst);
    let answer = s.query.lock().unwrap().clone();
    respond(answer).await
}

fn site(yaml: &str, now_s: i64) -> EnergySite {
    let mut site = EnergySite::new("site-a", serde_yaml_ng::from_str(yaml).unwrap());
    site.metadata.generation = Some(1);
    site.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(now_s).unwrap()));
    site
}

fn hybrid_site(forecast: &str, now_s: i64) -> (EnergySite, Plant) {
    let site = site(
        &format!(
            "location: {{latitude: 36.1, longitude: -79.95, elevationM: 273}}
solar:
- {{name: roof, capacityKw: 400, tiltDegrees: 20}}
- {{name: field, capacityKw: 600, tiltDegrees: 30, azimuthDegrees: 200}}
wind:
- {{name: e82, turbineType: E-82/2350, count: 2, hubHeightM: 108}}
forecast: {forecast}"
        ),
        now_s,
    );
    let plant = plant_from_site(&site.spec).unwrap();
    (site, plant)
}

fn settings() -> ForecastSettings {
    ForecastSettings {
        timeout: Duration::from_millis(500),
        attempts: 3,
        backoff: Duration::from_millis(20),
        max_age_s: 6 * 3600,
        weather_dir: repo().join("core/data/weather"),
        ..ForecastSettings::default()
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// 96 hours of forecast from 00:00 UTC of `now_s`'s day, as Open-Meteo answers.
fn four_days(now_s: i64, cloudiness: f64) -> Value {
    open_meteo_answer(
        36.1,
        -79.95,
        now_s - now_s.rem_euclid(86_400),
        96,
        cloudiness,
        6.0,
    )
}

struct Run<'a> {
    state: ForecastState,
    site: &'a EnergySite,
    plant: &'a Plant,
    settings: ForecastSettings,
    http: reqwest::Client,
}

impl<'a> Run<'a> {
    fn new(site: &'a EnergySite, plant: &'a Plant) -> Self {
        let settings = settings();
        Self {
            state: ForecastState::default(),
            site,
            plant,
            http: verdant_operator::energy::forecast::http::client(&settings),
            settings,
        }
    }

    async fn refresh(&mut self, now_s: i64) -> bool {
        let deps = Deps {
            http: &self.http,
            kube: None,
            settings: &self.settings,
        };
        refresh(
            &mut self.state,
            self.site.spec.forecast.as_ref().unwrap(),
            self.plant,
            self.site.metadata.generation,
            &deps,
            now_s,
        )
        .await
    }

    fn compose(&self, now_s: i64) -> SiteForecast {
        compose(&self.state, self.site, self.plant, &self.settings, now_s)
    }
}

fn total_at(f: &SiteForecast, start_s: i64) -> Option<f64> {
    f.built
        .hours
        .iter()
        .find(|h| h.start_s == start_s)
        .map(|h| h.kw.total_kw())
}

#[tokio::test]
async fn open_meteo_forecast_becomes_48_hourly_points() {
    let service = Service::start().await;
    let now_s = jiff::Timestamp::now().as_second();
    service.answer_forecast(Answer::Json(StatusCode::OK, four_days(now_s, 0.2)));
    let (site, plant) = hybrid_site(
        &format!(
            "{{provider: OpenMeteo, refreshInterval: 15m, openMeteo: {{baseUrl: '{}'}}}}",
            service.url
        ),
        now_s,
    );
    let mut run = Run::new(&site, &plant);
    assert!(run.refresh(now_s).await);
    assert!(
        run.state.weather_error.is_none(),
        "{:?}",
        run.state.weather_error
    );

    let query = service.last_forecast_query.lock().unwrap().clone();
    for part in [
        "latitude=36.1000",
        "longitude=-79.9500",
        "shortwave_radiation",
        "wind_speed_80m",
        "wind_speed_unit=ms",
        "timeformat=unixtime",
    ] {
        assert!(query.contains(part), "request {query} lacks {part}");
    }
    let f = run.compose(now_s);
    assert_eq!(f.built.hours.len(), 48);
    assert_eq!(
        f.built.hours[0].start_s,
        hour_start(now_s),
        "the first point covers now"
    );
    assert_eq!(f.built.hours[0].kw, f.built.now);
    for pair in f.built.hours.windows(2) {
        assert_eq!(pair[1].start_s - pair[0].start_s, 3600);
    }
    let solar: Vec<f64> = f.built.hours.iter().map(|h| h.kw.solar_kw).collect();
    assert!(
        solar.iter().any(|&kw| kw > 300.0),
        "a sunny day in 48 h: {solar:?}"
    );
    assert!(
        solar.iter().filter(|&&kw| kw == 0.0).count() >= 14,
        "nights: {solar:?}"
    );
    assert!(
        f.built.hours.iter().all(|h| h.kw.wind_kw > 0.0),
        "6 m/s at 10 m turns the E-82s"
    );
    assert!(
        f.built
            .hours
            .iter()
            .all(|h| h.kw.total_kw() <= plant.nameplate_kw())
    );
    assert_eq!(f.degraded, None);
    assert!(f.ready.0, "{:?}", f.ready);
    assert_eq!(f.last_forecast_s, Some(now_s));
}

#[tokio::test]
async fn failures_keep_the_last_good_forecast_and_name_the_problem() {
    let service = Service::start().await;
    let t0 = jiff::Timestamp::now().as_second();
    let good = four_days(t0, 0.0);
    service.answer_forecast(Answer::Json(StatusCode::OK, good.clone()));
    let (site, plant) = hybrid_site(
        &format!(
            "{{provider: OpenMeteo, refreshInterval: 1m, openMeteo: {{baseUrl: '{}/'}}}}",
            service.url
        ),
        t0,
    );
    let mut run = Run::new(&site, &plant);
    run.refresh(t0).await;
    let fresh = run.compose(t0);
    assert_eq!(fresh.degraded, None);

    let mut without_ghi = good.clone();
    without_ghi["hourly"]
        .as_object_mut()
        .unwrap()
        .remove("shortwave_radiation");
    let mut negative = good.clone();
    let index = ((t0.rem_euclid(86_400)) / 3600 + 2) as usize;
    negative["hourly"]["shortwave_radiation"][index] = (-80.0).into();
    let failures = [
        (
            Answer::Text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "upstream weather model unavailable",
            ),
            3,
            "HTTP 500 Internal Server Error: upstream weather model unavailable (after 3 attempts)",
            "ProviderUnavailable",
        ),
        (
            Answer::Text(StatusCode::BAD_GATEWAY, ""),
            3,
            "HTTP 502 Bad Gateway",
            "ProviderUnavailable",
        ),
        (
            Answer::Slow(Duration::from_secs(3)),
            3,
            "no answer within 0.5 s (timeout)",
            "ProviderUnavailable",
        ),
        (
            Answer::Text(StatusCode::OK, "{\"hourly\": {\"time\": [1, 2"),
            1,
            "the answer is not JSON",
            "MalformedForecast",
        ),
        (
            Answer::Text(
                StatusCode::OK,
                "{\"hourly\": {\"time\": [1], \"shortwave_radiation\": [NaN]}}",
            ),
            1,
            "the answer is not JSON",
            "MalformedForecast",
        ),
        (
            Answer::Json(StatusCode::OK, without_ghi),
            1,
            "no hourly.shortwave_radiation",
            "MalformedForecast",
        ),
        (
            Answer::Json(StatusCode::OK, negative),
            1,
            "W/m² cannot be negative",
            "MalformedForecast",
        ),
        (
            Answer::Json(
                StatusCode::BAD_REQUEST,
                open_meteo_error(
                    "Cannot initialize WeatherVariable from invalid String value wind_speed_100m",
                ),
            ),
            1,
            "HTTP 400 Bad Request: Cannot initialize WeatherVariable",
            "ProviderRejected",
        ),
    ];
    let mut now_s = t0;
    for (answer, requests, expected, reason) in failures {
        now_s += 60;
        service.answer_forecast(answer);
        let before = service.forecast_hits.load(Ordering::SeqCst);
        assert!(run.refresh(now_s).await);
        assert_eq!(
            service.forecast_hits.load(Ordering::SeqCst) - before,
            requests,
            "requests for {expected}"
        );
        let f = run.compose(now_s);
        let (degraded_reason, message) = f.degraded.clone().expect("degraded");
        assert_eq!(degraded_reason, reason, "{message}");
        assert!(message.contains(expected), "{message} lacks {expected}");
        assert!(
            message.contains(&service.url),
            "names the server: {message}"
        );
        assert!(
            message.contains("keeping the last good forecast"),
            "{message}"
        );
        assert_eq!(run.state.weather_fetched_s, Some(t0), "the last good stays");
        assert!(f.ready.0);
        assert_eq!(f.last_forecast_s, Some(t0));
        // The same hours, forecast from the same (aged) weather.
        for hour in f.built.hours.iter().skip(1) {
            if let Some(before) = total_at(&fresh, hour.start_s)
                && hour.start_s > hour_start(now_s)
            {
                assert!(
                    (hour.kw.total_kw() - before).abs() < 1e-9,
                    "hour {} changed",
                    hour.start_s
                );
            }
        }
    }

    // Beyond the age bound: a conservative estimate, never above the stale forecast.
    let late_s = t0 + 6 * 3600 + 2 * 3600;
    let stale = run.compose(late_s);
    assert!(matches!(
        stale.built.basis,
        ForecastBasis::Persistence { .. }
    ));
    assert!(!stale.ready.0);
    let (reason, message) = stale.degraded.clone().unwrap();
    assert_eq!(
        reason, "ProviderRejected",
        "the provider's failure comes first: {message}"
    );
    assert!(message.contains("conservative estimate"), "{message}");
    let stale_forecast = compose(
        &run.state,
        &site,
        &plant,
        &ForecastSettings {
            max_age_s: i64::MAX,
            ..settings()
        },
        late_s,
    );
    for (conservative, aged) in stale.built.hours.iter().zip(&stale_forecast.built.hours) {
        assert!(conservative.kw.solar_kw <= aged.kw.solar_kw + 1e-9);
        assert!(conservative.kw.wind_kw <= aged.kw.wind_kw + 1e-9);
    }
    let last = stale.built.hours.last().unwrap().kw.total_kw();
    assert!(
        last < 0.01 * plant.nameplate_kw(),
        "decays toward zero: {last}"
    );

    // Recovery.
    service.answer_forecast(Answer::Json(StatusCode::OK, four_days(late_s, 0.0)));
    run.refresh(late_s).await;
    let recovered = run.compose(late_s);
    assert_eq!(recovered.degraded, None);
    assert!(matches!(
        recovered.built.basis,
        ForecastBasis::Weather { age_s: 0 }
    ));
}

#[tokio::test]
async fn refresh_interval_is_respected() {
    let service = Service::start().await;
    let t0 = jiff::Timestamp::now().as_second();
    service.answer_forecast(Answer::Json(StatusCode::OK, four_days(t0, 0.5)));
    let (site, plant) = hybrid_site(
        &format!(
            "{{provider: OpenMeteo, refreshInterval: 15m, openMeteo: {{baseUrl: '{}'}}}}",
            service.url
        ),
        t0,
    );
    let mut run = Run::new(&site, &plant);
    assert!(run.refresh(t0).await);
    assert!(!run.refresh(t0 + 60).await);
    assert!(!run.refresh(t0 + 899).await);
    assert_eq!(service.forecast_hits.load(Ordering::SeqCst), 1);
    assert!(run.refresh(t0 + 900).await);
    assert_eq!(service.forecast_hits.load(Ordering::SeqCst), 2);
    // A failure does not make it ask more often.
    service.answer_forecast(Answer::Text(StatusCode::SERVICE_UNAVAILABLE, "maintenance"));
    assert!(run.refresh(t0 + 1800).await);
    assert!(!run.refresh(t0 + 1830).await);
    assert_eq!(service.forecast_hits.load(Ordering::SeqCst), 2 + 3);
}

#[tokio::test]
async fn prometheus_measurement_overrides_now_and_weather_shapes_the_rest() {
    let service = Service::start().await;
    let now_s = jiff::Timestamp::now().as_second();
    service.answer_forecast(Answer::Json(StatusCode::OK, four_days(now_s, 0.3)));
    service.answer_query(Answer::Json(
        StatusCode::OK,
        prometheus_vector("812.5", now_s as f64 - 10.0, "site-a"),
    ));
    let (site, plant) = hybrid_site(
        &format!(
            "{{provider: Prometheus, refreshInterval: 1m, prometheus: {{url: '{0}', query: 'sum(site_renewable_output_kw{{site=\"site-a\"}})', weather: {{openMeteo: {{baseUrl: '{0}'}}}}}}}}",
            service.url
        ),
        now_s,
    );
    let mut run = Run::new(&site, &plant);
    run.refresh(now_s).await;
    assert_eq!(service.query_hits.load(Ordering::SeqCst), 1);
    let f = run.compose(now_s);
    assert!(f.built.measured_now);
    assert!(
        (f.built.now.total_kw() - 812.5).abs() < 1e-6,
        "{:?}",
        f.built.now
    );
    assert_eq!(
        f.built.hours[0].kw, f.built.now,
        "the current hour is the measurement"
    );
    assert_eq!(f.degraded, None);
    assert!(
        f.ready.2.contains("measured by Prometheus"),
        "{:?}",
        f.ready
    );

    let (weather_only, _) = hybrid_site(
        &format!(
            "{{provider: OpenMeteo, openMeteo: {{baseUrl: '{}'}}}}",
            service.url
        ),
        now_s,
    );
    let mut weather_run = Run::new(&weather_only, &plant);
    weather_run.refresh(now_s).await;
    let modelled = weather_run.compose(now_s);
    assert_eq!(
        f.built.hours[1..],
        modelled.built.hours[1..],
        "later hours from the weather"
    );

    // A broken exporter: the model takes over for now, and the condition says why.
    for (answer, expected) in [
        (
            Answer::Json(
                StatusCode::OK,
                prometheus_vector("NaN", now_s as f64, "site-a"),
            ),
            "the measured output is NaN",
        ),
        (
            Answer::Json(
                StatusCode::BAD_REQUEST,
                prometheus_error("bad_data", "1:11: parse error: unexpected \"}\""),
            ),
            "bad_data: 1:11: parse error",
        ),
        (
            Answer::Text(StatusCode::SERVICE_UNAVAILABLE, "prometheus is starting"),
            "HTTP 503 Service Unavailable",
        ),
    ] {
        service.answer_query(answer);
        let later_s = run.state.last_attempt_s.unwrap() + 60;
        run.refresh(later_s).await;
        let f = run.compose(later_s);
        assert!(!f.built.measured_now);
        let (_, message) = f.degraded.clone().expect("degraded");
        assert!(message.contains("Prometheus"), "{message}");
        assert!(message.contains(expected), "{message} lacks {expected}");
    }

    // Without weather the measurement is held and decays.
    let (measured_only, _) = hybrid_site(
        &format!(
            "{{provider: Prometheus, prometheus: {{url: '{}', query: 'site_kw'}}}}",
            service.url
        ),
        now_s,
    );
    service.answer_query(Answer::Json(
        StatusCode::OK,
        prometheus_vector("500", now_s as f64, "site-a"),
    ));
    let mut measured_run = Run::new(&measured_only, &plant);
    measured_run.refresh(now_s).await;
    let f = measured_run.compose(now_s);
    assert_eq!(f.built.basis, ForecastBasis::MeasuredPersistence);
    assert!((f.built.now.total_kw() - 500.0).abs() < 1e-6);
    let totals: Vec<f64> = f.built.hours.iter().map(|h| h.kw.total_kw()).collect();
    assert!(
        totals.windows(2).all(|w| w[1] <= w[0] + 1e-9),
        "decays: {totals:?}"
    );
    assert!(totals[47] < 5.0, "{totals:?}");
}

#[tokio::test]
async fn replay_plays_a_tmy3_file_from_a_path_relative_to_the_weather_dir() {
    let now_s = jiff::Timestamp::now().as_second();
    // Record 4332 of the Greensboro TMY3 is 30 June, 12:30 local standard time.
    let (site, plant) = hybrid_site(
        "{provider: Replay, refreshInterval: 1h, replay: {path: pvlib_723170TYA_greensboro_nc_tmy3.csv, startOffset: 4332h}}",
        now_s,
    );
    let mut run = Run::new(&site, &plant);
    run.refresh(now_s).await;
    assert!(
        run.state.weather_error.is_none(),
        "{:?}",
        run.state.weather_error
    );
    let f = run.compose(now_s);
    let text = std::fs::read_to_string(
        repo().join("core/data/weather/pvlib_723170TYA_greensboro_nc_tmy3.csv"),
    )
    .unwrap();
    let records = parse_weather(&text).unwrap().records;
    let expected = plant.power_kw(&records[4332]);
    assert!(
        (f.built.now.solar_kw - expected.solar_kw).abs() < 1e-6,
        "{:?} vs {expected:?}",
        f.built.now
    );
    assert!(f.built.now.solar_kw > 100.0, "July noon: {:?}", f.built.now);
    assert_eq!(f.built.hours.len(), 48);
    let dark = f
        .built
        .hours
        .iter()
        .filter(|h| h.kw.solar_kw == 0.0)
        .count();
    assert!(
        (14..=26).contains(&dark),
        "two summer nights: {dark} dark hours"
    );
    assert_eq!(f.degraded, None);

    // A file that is not there: nothing to play, and the condition says where it looked.
    let (missing, _) = hybrid_site(
        "{provider: Replay, refreshInterval: 1s, replay: {path: no-such-file.csv}}",
        now_s,
    );
    let mut run = Run::new(&missing, &plant);
    run.refresh(now_s).await;
    let err = run.state.weather_error.clone().unwrap();
    assert!(matches!(err, ForecastError::Source(_)));
    let message = err.to_string();
    assert!(
        message.contains("core/data/weather/no-such-file.csv") && message.contains("--weather-dir"),
        "{message}"
    );
    let f = run.compose(now_s);
    assert_eq!(f.built.basis, ForecastBasis::Nothing);
    assert!(!f.ready.0 && f.degraded.is_some());
}

#[tokio::test]
async fn static_supply_is_split_by_nameplate() {
    let now_s = jiff::Timestamp::now().as_second();
    let (site, plant) = hybrid_site("{provider: Static, static: {constantKw: 300}}", now_s);
    let run = Run::new(&site, &plant);
    let f = run.compose(now_s);
    assert_eq!(f.built.basis, ForecastBasis::Static);
    assert!(
        f.built
            .hours
            .iter()
            .all(|h| (h.kw.total_kw() - 300.0).abs() < 1e-9)
    );
    let solar_nameplate = 1000.0 / 1.2;
    let share = solar_nameplate / (solar_nameplate + 2.0 * 2350.0);
    assert!((f.built.now.solar_kw - 300.0 * share).abs() < 1e-9);
}

#[tokio::test]
async fn a_static_site_is_refreshed_when_its_spec_is_read_then_by_the_hour() {
    let hour_s = 1_767_268_800; // 2026-01-01T12:00:00Z
    let created_s = hour_s + 34 * 60;
    let (site, plant) = hybrid_site("{provider: Static, static: {constantKw: 300}}", created_s);
    let mut run = Run::new(&site, &plant);
    run.refresh(created_s).await;
    assert_eq!(
        run.compose(created_s + 5).last_forecast_s,
        Some(created_s),
        "a new site's profile was read when it was created, not at the start of the hour"
    );
    run.refresh(hour_s + 3600 + 60).await;
    assert_eq!(
        run.compose(hour_s + 3600 + 60).last_forecast_s,
        Some(hour_s + 3600),
        "then it moves on by the hour"
    );
}
