//! GET with timeouts and retries, for the HTTP providers.
//!
//! Transient failures (connection refused or reset, timeouts, HTTP 5xx and 429) are retried
//! with exponential backoff, up to `attempts` tries; a 4xx answer is returned at once (the
//! same request would fail again). Bodies are capped at [`MAX_BODY_BYTES`].

use std::time::Duration;

use reqwest::{StatusCode, Url};
use tracing::debug;
use verdant_core::energy::forecast::excerpt;

use super::{ForecastError, ForecastSettings};

/// The largest response body read (a 4-day hourly forecast is ~20 kB).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A completed HTTP exchange.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body, as text (lossy UTF-8).
    pub body: String,
}

/// The client the providers share: a User-Agent, rustls, no proxy surprises.
pub fn client(settings: &ForecastSettings) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("verdant-operator/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(settings.timeout)
        .timeout(settings.timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The URL without credentials, for messages and logs.
pub fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// GETs `url`, retrying transient failures. `what` names the service in messages
/// ("Open-Meteo", "Prometheus"). Returns the final reply for 2xx and 4xx answers; an
/// [`ForecastError::Unavailable`] when every attempt failed transiently.
pub async fn get(
    client: &reqwest::Client,
    url: &Url,
    what: &str,
    settings: &ForecastSettings,
) -> Result<Reply, ForecastError> {
    let attempts = settings.attempts.max(1);
    let mut last_failure = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            let wait = backoff(settings.backoff, attempt);
            debug!(service = what, url = %redacted(url), attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
        match once(client, url).await {
            Ok(reply)
                if reply.status.is_server_error()
                    || reply.status == StatusCode::TOO_MANY_REQUESTS =>
            {
                last_failure = format!("HTTP {}: {}", reply.status, excerpt(&reply.body));
            }
            Ok(reply) => return Ok(reply),
            Err(e) => last_failure = describe(&e, settings.timeout),
        }
    }
    Err(ForecastError::Unavailable(format!(
        "{what} {}: {last_failure} (after {attempts} attempt{})",
        redacted(url),
        if attempts == 1 { "" } else { "s" }
    )))
}

async fn once(client: &reqwest::Client, url: &Url) -> Result<Reply, reqwest::Error> {
    let mut response = client.get(url.clone()).send().await?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << (attempt.saturating_sub(2)).min(10))
}

fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!("no answer within {:.1} s (timeout)", timeout.as_secs_f64())
    } else if error.is_connect() {
        format!("cannot connect: {}", root_cause(error))
    } else {
        format!("request failed: {}", root_cause(error))
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_second_attempt() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 2), Duration::from_millis(100));
        assert_eq!(backoff(base, 3), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(400));
    }

    #[test]
    fn redacts_credentials() {
        let url = Url::parse("http://user:secret@prom:9090/api/v1/query?query=up").unwrap();
        assert_eq!(redacted(&url), "http://prom:9090/api/v1/query?query=up");
    }
}
