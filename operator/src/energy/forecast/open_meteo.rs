//! The Open-Meteo provider: `GET {baseUrl}/v1/forecast` for the site's coordinates.
//!
//! Request: `hourly=shortwave_radiation,direct_normal_irradiance,diffuse_radiation,
//! temperature_2m,surface_pressure,wind_speed_10m,wind_speed_80m,wind_speed_100m,
//! wind_speed_120m`, `wind_speed_unit=ms`, `timeformat=unixtime`, `timezone=GMT`,
//! `forecast_days=4` (hourly data start at 00:00 UTC today, so 4 days always cover now
//! and the next 48 hours).
//!
//! The answer is read by [`verdant_core::energy::forecast::open_meteo::parse`] (pure, with
//! what it accepts and refuses); a refusal is a [`ForecastError::Malformed`] naming the
//! variable, the index and the time.

use reqwest::Url;
use serde_json::Value;
use verdant_core::energy::forecast::excerpt;
use verdant_core::energy::forecast::open_meteo::{self, Needs};
use verdant_core::energy::{Plant, WeatherRecord};
use verdant_crds::OpenMeteoForecast;

use super::http::{self, redacted};
use super::{ForecastError, ForecastSettings};

/// The forecast URL for a site.
pub fn request_url(base_url: &str, latitude: f64, longitude: f64) -> Result<Url, ForecastError> {
    let trimmed = base_url.trim_end_matches('/');
    let endpoint = if trimmed.ends_with("/v1/forecast") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/forecast")
    };
    let mut url = Url::parse(&endpoint).map_err(|e| {
        ForecastError::Config(format!(
            "spec.forecast.openMeteo.baseUrl {base_url:?} is not a URL: {e}"
        ))
    })?;
    url.query_pairs_mut()
        .append_pair("latitude", &format!("{latitude:.4}"))
        .append_pair("longitude", &format!("{longitude:.4}"))
        .append_pair("hourly", &open_meteo::hourly_variables().join(","))
        .append_pair("wind_speed_unit", "ms")
        .append_pair("timeformat", "unixtime")
        .append_pair("timezone", "GMT")
        .append_pair("forecast_days", "4");
    Ok(url)
}

/// Fetches and checks the forecast for `plant`'s location.
pub async fn fetch(
    client: &reqwest::Client,
    settings: &ForecastSettings,
    spec: &OpenMeteoForecast,
    plant: &Plant,
    now_s: i64,
) -> Result<Vec<WeatherRecord>, ForecastError> {
    let location = plant.location();
    let url = request_url(
        &spec.base_url,
        location.latitude_deg,
        location.longitude_deg,
    )?;
    let reply = http::get(client, &url, "Open-Meteo", settings).await?;
    let source = format!("Open-Meteo {}", redacted(&url));
    if !reply.status.is_success() {
        let reason = serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| excerpt(&reply.body));
        return Err(ForecastError::Rejected(format!(
            "{source}: HTTP {}: {reason}",
            reply.status
        )));
    }
    open_meteo::parse(&reply.body, &source, Needs::of(plant), now_s).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_has_every_variable_and_keeps_a_path_prefix() {
        let url = request_url("http://meteo.internal:8080/om/", 36.1, -79.95).unwrap();
        assert_eq!(url.path(), "/om/v1/forecast");
        let query = url.query().unwrap();
        for part in [
            "latitude=36.1000",
            "longitude=-79.9500",
            "shortwave_radiation%2Cdirect_normal_irradiance%2Cdiffuse_radiation",
            "wind_speed_120m",
            "wind_speed_unit=ms",
            "timeformat=unixtime",
            "forecast_days=4",
        ] {
            assert!(query.contains(part), "{query} lacks {part}");
        }
        assert!(matches!(
            request_url("not a url", 0.0, 0.0),
            Err(ForecastError::Config(_))
        ));
    }
}
