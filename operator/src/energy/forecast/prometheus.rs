//! The Prometheus provider's measurement: an instant query over the HTTP API
//! (`GET {url}/api/v1/query?query=…`) returning the site's renewable output now, in kW.
//!
//! The answer is read by [`verdant_core::energy::forecast::prometheus::parse`] (pure: one
//! finite, non-negative number, or a message that says what is wrong).

use reqwest::Url;
use verdant_core::energy::forecast::excerpt;
use verdant_core::energy::forecast::prometheus::{Measured, parse};
use verdant_crds::PrometheusForecast;

use super::http::{self, redacted};
use super::{ForecastError, ForecastSettings};

/// The query URL.
pub fn request_url(spec: &PrometheusForecast) -> Result<Url, ForecastError> {
    let base = spec.url.trim_end_matches('/');
    let mut url = Url::parse(&format!("{base}/api/v1/query")).map_err(|e| {
        ForecastError::Config(format!(
            "spec.forecast.prometheus.url {:?} is not a URL: {e}",
            spec.url
        ))
    })?;
    url.query_pairs_mut().append_pair("query", &spec.query);
    Ok(url)
}

/// Runs the query.
pub async fn measure(
    client: &reqwest::Client,
    settings: &ForecastSettings,
    spec: &PrometheusForecast,
    now_s: i64,
) -> Result<Measured, ForecastError> {
    let url = request_url(spec)?;
    let reply = http::get(client, &url, "Prometheus", settings).await?;
    let source = format!("Prometheus query {:?} at {}", spec.query, redacted(&url));
    let parsed = parse(&reply.body, &source, now_s).map_err(ForecastError::from);
    if reply.status.is_success() {
        return parsed;
    }
    // Prometheus explains 4xx answers in the same JSON envelope.
    Err(ForecastError::Rejected(match parsed {
        Err(ForecastError::Rejected(message)) => format!("{message} (HTTP {})", reply.status),
        _ => format!("{source}: HTTP {}: {}", reply.status, excerpt(&reply.body)),
    }))
}
