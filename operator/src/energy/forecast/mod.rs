//! Forecast providers: where a site's renewable kW for now and the next 48 hours come
//! from, and what happens when a source goes bad.
//!
//! - [`open_meteo`]: hourly weather forecasts from an Open-Meteo server;
//! - [`replay`]: a weather file (TMY3, PVGIS, windpowerlib or generic CSV) replayed as if
//!   it started when the site was created;
//! - `Static` (spec only, [`crate::supply::static_supply`]): a constant or hourly profile;
//! - [`prometheus`]: the MEASURED site output from a Prometheus instant query, which
//!   overrides the model for the current hour while the forecast still comes from weather.
//!
//! Weather becomes kW through the site's [`verdant_core::energy::Plant`]. The fetching
//! half ([`site::refresh`]) does I/O; reading the services' answers
//! ([`verdant_core::energy::forecast`]) and turning what was fetched into 48 hourly points
//! ([`build`]) are pure and unit-tested.
//!
//! Failure behaviour, the same for every provider: a failed refresh never replaces good
//! data. The site keeps its last good weather (the forecast ages), the failure is named
//! in the `ForecastDegraded` condition, and once the last good weather is older than
//! `--forecast-max-age-seconds` the forecast becomes a conservative persistence estimate
//! that decays toward zero and never exceeds what the stale forecast said.

pub mod build;
pub mod http;
pub mod open_meteo;
pub mod prometheus;
pub mod replay;
pub mod samples;
pub mod site;
pub mod timeline;

use std::time::Duration;

use verdant_core::energy::forecast::ForecastParseError;

pub use build::{BuiltForecast, ForecastBasis, HourKw, PlantKw};
pub use site::{ForecastState, SiteForecast};

/// Points (hours, or steps of a sped-up clock) of forecast a site publishes.
pub use verdant_core::energy::forecast::HORIZON_HOURS;

/// Why a provider could not deliver. The message names the source (URL, file or
/// ConfigMap), what failed and, where it helps, what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    /// The server answered 5xx, timed out or could not be reached (after retries).
    #[error("{0}")]
    Unavailable(String),
    /// The server refused the request (4xx): retrying the same request will not help.
    #[error("{0}")]
    Rejected(String),
    /// The answer could not be used: malformed JSON, missing variables, NaN, negative or
    /// implausible values.
    #[error("{0}")]
    Malformed(String),
    /// A weather file or ConfigMap is missing or unreadable.
    #[error("{0}")]
    Source(String),
    /// The site's forecast settings are incomplete.
    #[error("{0}")]
    Config(String),
}

impl From<ForecastParseError> for ForecastError {
    fn from(error: ForecastParseError) -> Self {
        match error {
            ForecastParseError::Rejected(message) => Self::Rejected(message),
            ForecastParseError::Malformed(message) => Self::Malformed(message),
        }
    }
}

impl ForecastError {
    /// The reason of the `ForecastDegraded` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "ProviderUnavailable",
            Self::Rejected(_) => "ProviderRejected",
            Self::Malformed(_) => "MalformedForecast",
            Self::Source(_) => "WeatherSourceUnreadable",
            Self::Config(_) => "InvalidForecastSettings",
        }
    }
}

/// How the operator talks to forecast services and how long forecasts stay trusted.
#[derive(Clone, Debug)]
pub struct ForecastSettings {
    /// Per-request timeout (connect and whole response).
    pub timeout: Duration,
    /// Attempts per refresh for transient failures (5xx, 429, timeouts, refused).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Weather older than this is no longer used as is (see [`build`]).
    pub max_age_s: i64,
    /// Seconds between forecast points: an hour divided by `--time-scale`.
    pub step_s: i64,
    /// Time constant of the persistence decay, seconds ([`build::DECAY_TIME_S`] divided by
    /// `--time-scale`).
    pub decay_s: f64,
    /// Folder that relative Replay paths in cluster objects are resolved against.
    pub weather_dir: std::path::PathBuf,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_secs(1),
            max_age_s: 6 * 3600,
            step_s: 3600,
            decay_s: build::DECAY_TIME_S,
            weather_dir: ".".into(),
        }
    }
}
