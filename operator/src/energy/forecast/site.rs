//! One site's forecast over time: refresh from the provider when due (I/O), keep the
//! last good data, and compose the forecast the status shows (pure).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use verdant_core::energy::{Plant, solar_position};
use verdant_crds::{EnergySite, ForecastProvider, ForecastSpec, OpenMeteoForecast, ReplayForecast};

use super::build::{self, BuiltForecast, ForecastBasis, Inputs, Measured, Weather};
use super::replay::{Playback, ReplayClock, ReplayFile};
use super::timeline::PowerTimeline;
use super::{ForecastError, ForecastSettings, HORIZON_HOURS, open_meteo, prometheus, replay};
use crate::supply::static_supply;

/// The last good weather of a site.
#[derive(Clone, Debug)]
pub enum WeatherData {
    /// An Open-Meteo forecast, already turned into the plant's output (the plant only
    /// changes with the spec, and a new spec starts afresh).
    Forecast(Arc<PowerTimeline>),
    /// A weather file to replay.
    Replay(Arc<ReplayFile>),
}

/// What the controller keeps for a site between reconciles.
#[derive(Clone, Debug, Default)]
pub struct ForecastState {
    /// The `metadata.generation` the data belong to; a new spec starts afresh.
    pub generation: Option<i64>,
    /// The last good weather.
    pub weather: Option<WeatherData>,
    /// When it was fetched.
    pub weather_fetched_s: Option<i64>,
    /// Why the latest weather refresh failed, if it did.
    pub weather_error: Option<ForecastError>,
    /// The latest measurement (Prometheus).
    pub measured: Option<Measured>,
    /// Why the latest measurement failed, if it did.
    pub measured_error: Option<ForecastError>,
    /// When the provider was last asked.
    pub last_attempt_s: Option<i64>,
    /// When this process first saw the spec of `generation`.
    pub spec_seen_s: Option<i64>,
    replay_text_hash: Option<u64>,
}

/// Where a provider's weather comes from.
enum WeatherSpec<'a> {
    OpenMeteo(&'a OpenMeteoForecast),
    Replay(&'a ReplayForecast),
}

fn weather_spec(forecast: &ForecastSpec) -> Result<Option<WeatherSpec<'_>>, ForecastError> {
    let missing = |field: &str| {
        ForecastError::Config(format!(
            "provider {:?} needs spec.forecast.{field}",
            forecast.provider
        ))
    };
    Ok(match forecast.provider {
        ForecastProvider::Static => None,
        ForecastProvider::OpenMeteo => Some(WeatherSpec::OpenMeteo(
            forecast
                .open_meteo
                .as_ref()
                .ok_or_else(|| missing("openMeteo"))?,
        )),
        ForecastProvider::Replay => Some(WeatherSpec::Replay(
            forecast.replay.as_ref().ok_or_else(|| missing("replay"))?,
        )),
        ForecastProvider::Prometheus => {
            let prometheus = forecast
                .prometheus
                .as_ref()
                .ok_or_else(|| missing("prometheus"))?;
            match prometheus.weather.as_deref() {
                Some(w) => match (&w.open_meteo, &w.replay) {
                    (Some(o), None) => Some(WeatherSpec::OpenMeteo(o)),
                    (None, Some(r)) => Some(WeatherSpec::Replay(r)),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        return Err(ForecastError::Config(
                            "spec.forecast.prometheus.weather: set one of openMeteo and replay, not both"
                                .to_owned(),
                        ));
                    }
                },
                None => None,
            }
        }
    })
}

/// Seconds between refreshes.
pub fn refresh_interval_s(forecast: &ForecastSpec) -> i64 {
    (std::time::Duration::from(forecast.refresh_interval).as_secs() as i64).max(1)
}

/// When the next refresh is due (Unix s); `None` for Static sites.
pub fn next_refresh_s(state: &ForecastState, forecast: &ForecastSpec) -> Option<i64> {
    if forecast.provider == ForecastProvider::Static {
        return None;
    }
    Some(
        state
            .last_attempt_s
            .map_or(0, |t| t + refresh_interval_s(forecast)),
    )
}

/// What refreshing needs.
pub struct Deps<'a> {
    /// HTTP client for Open-Meteo and Prometheus.
    pub http: &'a reqwest::Client,
    /// Kubernetes client for ConfigMaps.
    pub kube: Option<&'a kube::Client>,
    /// Timeouts, retries, bounds.
    pub settings: &'a ForecastSettings,
}

/// Asks the provider again if the spec changed or `refreshInterval` has passed since the
/// last attempt. Failures are recorded in `state`; good data are never dropped for them.
/// Returns whether the provider was asked.
pub async fn refresh(
    state: &mut ForecastState,
    forecast: &ForecastSpec,
    plant: &Plant,
    generation: Option<i64>,
    deps: &Deps<'_>,
    now_s: i64,
) -> bool {
    if state.generation != generation {
        *state = ForecastState {
            generation,
            spec_seen_s: Some(now_s),
            ..ForecastState::default()
        };
    }
    if next_refresh_s(state, forecast).is_none_or(|due| now_s < due) {
        return false;
    }
    state.last_attempt_s = Some(now_s);
    let fetched = match weather_spec(forecast) {
        Err(e) => Some(Err(e)),
        Ok(None) => None,
        Ok(Some(WeatherSpec::OpenMeteo(spec))) => Some(
            open_meteo::fetch(deps.http, deps.settings, spec, plant, now_s)
                .await
                .map(|records| {
                    WeatherData::Forecast(Arc::new(PowerTimeline::from_weather(plant, &records)))
                }),
        ),
        Ok(Some(WeatherSpec::Replay(spec))) => Some(read_replay(state, spec, plant, deps).await),
    };
    match fetched {
        Some(Ok(weather)) => {
            state.weather = Some(weather);
            state.weather_fetched_s = Some(now_s);
            state.weather_error = None;
        }
        Some(Err(e)) => state.weather_error = Some(e),
        None => {}
    }
    if let Some(spec) = forecast
        .prometheus
        .as_ref()
        .filter(|_| forecast.provider == ForecastProvider::Prometheus)
    {
        match prometheus::measure(deps.http, deps.settings, spec, now_s).await {
            Ok(measured) => {
                state.measured = Some(measured);
                state.measured_error = None;
            }
            Err(e) => state.measured_error = Some(e),
        }
    }
    true
}

async fn read_replay(
    state: &mut ForecastState,
    spec: &ReplayForecast,
    plant: &Plant,
    deps: &Deps<'_>,
) -> Result<WeatherData, ForecastError> {
    let (text, source) = replay::read_source(spec, deps.kube, &deps.settings.weather_dir).await?;
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let hash = hasher.finish();
    if let (Some(WeatherData::Replay(file)), Some(previous)) =
        (&state.weather, state.replay_text_hash)
        && previous == hash
    {
        return Ok(WeatherData::Replay(file.clone()));
    }
    let format = spec.format.map(Into::into);
    let file = tokio::task::spawn_blocking(move || ReplayFile::parse(&text, format, &source))
        .await
        .map_err(|e| ForecastError::Source(format!("parsing the weather file failed: {e}")))??;
    file.check_covers(plant)?;
    state.replay_text_hash = Some(hash);
    Ok(WeatherData::Replay(Arc::new(file)))
}

/// The forecast a site shows now, and how much to trust it.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteForecast {
    /// Now and the 48 hourly points.
    pub built: BuiltForecast,
    /// When the forecast was last refreshed successfully.
    pub last_forecast_s: Option<i64>,
    /// `ForecastDegraded`: reason and message, when degraded.
    pub degraded: Option<(&'static str, String)>,
    /// Whether the forecast is usable as is (`Ready`), with reason and message.
    pub ready: (bool, &'static str, String),
}

/// Composes the site's forecast at `now_s` from what `state` holds. Pure.
pub fn compose(
    state: &ForecastState,
    site: &EnergySite,
    plant: &Plant,
    settings: &ForecastSettings,
    now_s: i64,
) -> SiteForecast {
    let Some(forecast) = site.spec.forecast.as_ref() else {
        return SiteForecast {
            built: build::build(&inputs(None, None, plant, settings, now_s, &|_| false)),
            last_forecast_s: None,
            degraded: None,
            ready: (
                false,
                "NoForecastProvider",
                "spec.forecast is not set: the site has no renewable supply".to_owned(),
            ),
        };
    };
    let share = solar_share(plant);
    if forecast.provider == ForecastProvider::Static {
        let hourly: Vec<(i64, f64)> = match &forecast.r#static {
            Some(s) => static_supply(s, now_s)
                .into_iter()
                .map(|p| (p.start_s, p.kw))
                .collect(),
            None => Vec::new(),
        };
        let built = build::from_static(&hourly, now_s, share);
        let ready = if hourly.is_empty() {
            (
                false,
                "InvalidForecastSettings",
                "provider Static needs spec.forecast.static".to_owned(),
            )
        } else {
            (
                true,
                "StaticSupply",
                "supply is the fixed profile of spec.forecast.static".to_owned(),
            )
        };
        return SiteForecast {
            built,
            // The profile is read again when the spec changes and moves on by the hour; a
            // per-second time would rewrite the status of an idle site at every update.
            last_forecast_s: Some(build::hour_start(now_s).max(state.spec_seen_s.unwrap_or(0))),
            degraded: None,
            ready,
        };
    }

    let playback;
    let kw_at: Option<(build::KwAt<'_>, u32)> = match &state.weather {
        Some(WeatherData::Forecast(timeline)) => Some((Box::new(|t| timeline.at(t)), 4)),
        Some(WeatherData::Replay(file)) => {
            let spec = forecast.replay.as_ref().or_else(|| {
                forecast
                    .prometheus
                    .as_ref()
                    .and_then(|p| p.weather.as_ref())
                    .and_then(|w| w.replay.as_ref())
            });
            let anchor_s = site
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(now_s, |t| t.0.as_second());
            match spec {
                Some(spec) => {
                    playback = Playback::new(file, ReplayClock::new(spec, anchor_s), plant);
                    let samples = playback.samples_per_step(settings.step_s);
                    Some((Box::new(|t| playback.kw_at(t)), samples))
                }
                None => None,
            }
        }
        None => None,
    };
    let interval_s = refresh_interval_s(forecast);
    let measured = state
        .measured
        .filter(|m| state.measured_error.is_none() && now_s - m.at_s <= 2 * interval_s + 60);
    let weather = match (&kw_at, state.weather_fetched_s) {
        (Some((kw_at, samples_per_step)), Some(fetched_s)) => Some(Weather {
            kw_at: kw_at.as_ref(),
            fetched_s,
            samples_per_step: *samples_per_step,
        }),
        _ => None,
    };
    let location = *plant.location();
    let sun_up = move |t: i64| {
        solar_position(&location, t, None, None).is_some_and(|p| p.is_above_horizon())
    };
    let built = build::build(&inputs(weather, measured, plant, settings, now_s, &sun_up));

    let mut problems: Vec<(&'static str, String)> = Vec::new();
    for error in [&state.weather_error, &state.measured_error]
        .into_iter()
        .flatten()
    {
        problems.push((error.reason(), error.to_string()));
    }
    if let ForecastBasis::Persistence { age_s } = built.basis {
        problems.push((
            "ForecastStale",
            format!(
                "the last good forecast is {} old, more than the {} bound: using a conservative estimate (its output at that time, decaying toward zero)",
                duration(age_s),
                duration(settings.max_age_s)
            ),
        ));
    }
    if built.uncovered_hours > 0 {
        problems.push((
            "ForecastIncomplete",
            format!(
                "the weather covers only {} of the next {HORIZON_HOURS} hours; the other hours count as 0 kW",
                HORIZON_HOURS - built.uncovered_hours.min(HORIZON_HOURS)
            ),
        ));
    }
    let degraded = problems.first().map(|(reason, _)| {
        let message = problems
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let aged = match (built.basis, state.weather_error.is_some()) {
            (ForecastBasis::Weather { age_s }, true) => {
                format!(" (keeping the last good forecast, {} old)", duration(age_s))
            }
            _ => String::new(),
        };
        (*reason, format!("{message}{aged}"))
    });
    let ready = match built.basis {
        ForecastBasis::Weather { .. }
        | ForecastBasis::MeasuredPersistence
        | ForecastBasis::Static => (
            true,
            "ForecastAvailable",
            ready_message(&built, forecast.provider),
        ),
        ForecastBasis::Persistence { .. } => (
            false,
            "ForecastStale",
            "no fresh forecast: supply is a conservative persistence estimate".to_owned(),
        ),
        ForecastBasis::Nothing => (
            false,
            "NoForecast",
            "no forecast yet: the site counts as having no renewable supply".to_owned(),
        ),
    };
    SiteForecast {
        built,
        last_forecast_s: state.weather_fetched_s.or(measured.map(|m| m.at_s)),
        degraded,
        ready,
    }
}

fn ready_message(built: &BuiltForecast, provider: ForecastProvider) -> String {
    let now = if built.measured_now {
        "measured by Prometheus"
    } else {
        "modelled from weather"
    };
    format!("{provider:?} forecast for the next {HORIZON_HOURS} hours; output now {now}")
}

fn inputs<'a>(
    weather: Option<Weather<'a>>,
    measured: Option<Measured>,
    plant: &Plant,
    settings: &ForecastSettings,
    now_s: i64,
    sun_up: &'a dyn Fn(i64) -> bool,
) -> Inputs<'a> {
    Inputs {
        now_s,
        weather,
        measured,
        max_age_s: settings.max_age_s,
        step_s: settings.step_s,
        decay_s: settings.decay_s,
        solar_share: solar_share(plant),
        sun_up,
    }
}

/// The solar share of a site's nameplate; all solar for a site that lists no plant.
pub fn solar_share(plant: &Plant) -> f64 {
    let solar: f64 = plant.arrays().iter().map(|a| a.ac_nameplate_kw()).sum();
    let wind: f64 = plant
        .turbine_groups()
        .iter()
        .map(|g| g.rated_power_kw())
        .sum();
    if solar + wind > 0.0 {
        solar / (solar + wind)
    } else {
        1.0
    }
}

/// `1h30m`-style duration.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}
