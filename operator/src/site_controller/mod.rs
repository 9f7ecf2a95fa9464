//! The EnergySite controller: keeps each site's `status` current.
//!
//! # Expected flow
//! For each EnergySite, on creation, on every spec change, and then every
//! `--site-status-seconds` (or sooner when a forecast refresh is due):
//! 1. map the spec to a [`Plant`](verdant_core::energy::Plant) (an invalid plant, such as
//!    an unknown `turbineType`, sets `Ready=False` with the field and close matches, and a
//!    Warning Event);
//! 2. refresh the forecast from its provider if `spec.forecast.refreshInterval` has
//!    passed since the last attempt ([`crate::energy::forecast::site::refresh`]);
//! 3. compose the 48-hour forecast, the output now, the load (measured node power from
//!    the agents, else the running pods' GPUs × per-GPU watts, plus node base power,
//!    × PUE) and the headroom; set the conditions `Ready`, `ForecastDegraded`,
//!    `NodeSelectorOverlap` and `RenewableDeficit`;
//! 4. write the status with server-side apply under the field manager
//!    [`FIELD_MANAGER`] when it changed; publish Warning Events when an overlap, an
//!    invalid plant or a degraded forecast appears; export the site metrics.
//!
//! # Guarantees
//! - A failing provider never erases a good forecast: the last good one is kept and
//!   ages, then turns into a conservative estimate (see `energy::forecast::build`).
//! - `RenewableDeficit.lastTransitionTime` is when the headroom last turned negative;
//!   the scheduling cycle reads it (`headroom_negative_since`), so the GreenOnly grace
//!   period survives operator restarts.
//! - This controller owns the `verdant_site_*` metrics.
//!
//! # Caveats
//! - The cached forecasts live in memory: after a restart each site fetches again at
//!   once, and until then its status keeps what the previous process wrote.
//! - Only spec changes trigger a reconcile (its own status writes do not); node and pod
//!   changes are seen at the next periodic update.

pub mod status;
pub mod storage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};
use verdant_crds::{EnergySite, EnergySiteStatus, plant_from_site};

use crate::context::Context;
use crate::energy::forecast::build::DECAY_TIME_S;
use crate::energy::forecast::site::{Deps, ForecastState, compose, next_refresh_s, refresh};
use crate::energy::forecast::{ForecastSettings, SiteForecast, http};
use crate::events::{Event, EventType, Recorder, Reporter};
use crate::metrics::label;
use crate::time_scale::TimeScale;
use status::{LoadInputs, StatusInputs, build_status, describe_overlap, site_load};

/// The field manager of the EnergySite status.
pub const FIELD_MANAGER: &str = "verdant-energysite";
/// Forecast horizons exported as `verdant_site_forecast_kw{horizon}`, hours ahead.
pub const METRIC_HORIZONS_H: [usize; 4] = [1, 6, 24, 48];

/// `verdant-operator run` settings of the EnergySite controller.
#[derive(clap::Args, Clone, Debug)]
pub struct SiteArgs {
    /// Seconds between updates of each EnergySite's status (output now, load, headroom).
    /// Forecasts themselves are fetched every spec.forecast.refreshInterval.
    #[arg(long, env = "VERDANT_SITE_STATUS_SECONDS", default_value_t = 30)]
    pub site_status_seconds: u64,
    /// Timeout of each request to a forecast service (Open-Meteo, Prometheus), seconds.
    #[arg(long, env = "VERDANT_FORECAST_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub forecast_timeout_seconds: f64,
    /// Attempts per forecast refresh when a service fails transiently (5xx, timeout).
    #[arg(long, env = "VERDANT_FORECAST_ATTEMPTS", default_value_t = 3)]
    pub forecast_attempts: u32,
    /// Wait before retrying a failed forecast request, milliseconds; doubled per attempt.
    #[arg(long, env = "VERDANT_FORECAST_BACKOFF_MS", default_value_t = 1000)]
    pub forecast_backoff_ms: u64,
    /// Age beyond which a forecast that could not be refreshed is replaced by a
    /// conservative persistence estimate, seconds (divided by --time-scale).
    #[arg(
        long,
        env = "VERDANT_FORECAST_MAX_AGE_SECONDS",
        default_value_t = 21600
    )]
    pub forecast_max_age_seconds: i64,
    /// Folder that relative spec.forecast.replay.path values are resolved against.
    #[arg(long, env = "VERDANT_WEATHER_DIR", default_value = ".")]
    pub weather_dir: std::path::PathBuf,
}

impl SiteArgs {
    /// The providers' settings; the forecast's step, age bound and decay run `scale`
    /// times faster than the wall clock.
    pub fn forecast_settings(&self, scale: TimeScale) -> ForecastSettings {
        ForecastSettings {
            timeout: Duration::from_secs_f64(self.forecast_timeout_seconds.clamp(0.1, 600.0)),
            attempts: self.forecast_attempts.clamp(1, 10),
            backoff: Duration::from_millis(self.forecast_backoff_ms),
            max_age_s: scale.wall_s(self.forecast_max_age_seconds.max(0)),
            step_s: scale.wall_s(3600),
            decay_s: DECAY_TIME_S / scale.factor(),
            weather_dir: self.weather_dir.clone(),
        }
    }
}

/// The controller's shared state.
pub struct SiteContext {
    /// The operator's context (client, caches, telemetry, metrics).
    pub ctx: Arc<Context>,
    recorder: Recorder,
    http: reqwest::Client,
    settings: ForecastSettings,
    status_period: Duration,
    sites: Mutex<HashMap<String, SiteMemory>>,
}

#[derive(Clone, Default)]
struct SiteMemory {
    /// The object the memory belongs to: a site deleted and created again under the same
    /// name starts afresh.
    uid: Option<String>,
    forecast: ForecastState,
    /// The batteries whose metrics were last recorded, to remove them with the site.
    batteries: Vec<String>,
}

/// What can fail in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// Writing the status failed.
    #[error("writing the status of EnergySite {site}: {source}")]
    WriteStatus {
        /// The site.
        site: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Runs the EnergySite controller until the process ends, on the `sites` the shared
/// watch hands it; `scale` is `--time-scale`.
pub async fn run(
    ctx: Arc<Context>,
    sites: impl Stream<Item = Arc<EnergySite>> + Send + 'static,
    args: SiteArgs,
    scale: TimeScale,
) {
    // Loads are computed from nodes and pods: wait for their caches.
    ctx.synced.wait().await;
    let settings = args.forecast_settings(scale);
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let client = ctx.client.clone();
    let reader = ctx.stores.sites.clone();
    let site_ctx = Arc::new(SiteContext {
        recorder: Recorder::new(client.clone(), reporter),
        http: http::client(&settings),
        settings,
        status_period: Duration::from_secs(args.site_status_seconds.max(1)),
        sites: Mutex::default(),
        ctx,
    });
    // Only spec changes (generation) trigger: the controller's own status writes must not.
    let changes = sites.filter(spec_changed());
    info!(
        period_s = args.site_status_seconds,
        "EnergySite controller started"
    );
    Controller::for_shared_stream(changes, reader)
        .with_config(ControllerConfig::default().concurrency(8))
        .run(reconcile, error_policy, site_ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "EnergySite reconcile error");
            }
        })
        .await;
}

/// A filter that lets a site through when it is new or its spec changed (its
/// `metadata.generation`), like `predicates::generation` on a watch.
fn spec_changed() -> impl FnMut(&Arc<EnergySite>) -> std::future::Ready<bool> {
    let mut seen: HashMap<(String, Option<String>), Option<i64>> = HashMap::new();
    move |site| {
        let key = (site.name_any(), site.metadata.uid.clone());
        let generation = site.metadata.generation;
        std::future::ready(seen.insert(key, generation) != Some(generation))
    }
}

/// Transient failures are retried after a few seconds.
pub fn error_policy(site: Arc<EnergySite>, error: &SiteError, _ctx: Arc<SiteContext>) -> Action {
    warn!(site = %site.name_any(), %error, "EnergySite reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Reconciles one EnergySite.
pub async fn reconcile(site: Arc<EnergySite>, sc: Arc<SiteContext>) -> Result<Action, SiteError> {
    let name = site.name_any();
    let now = jiff::Timestamp::now();
    let now_s = now.as_second();
    let ctx = &sc.ctx;
    let all_sites = ctx.stores.sites.state();
    let mut memory = sc.with_sites(|sites| {
        // Forget sites that are gone, and their metrics.
        let gone: Vec<String> = sites
            .keys()
            .filter(|n| **n != name && !all_sites.iter().any(|s| s.name_any() == **n))
            .cloned()
            .collect();
        for site in gone {
            if let Some(memory) = sites.remove(&site) {
                for battery in &memory.batteries {
                    storage::forget_battery(&ctx.metrics, &site, battery);
                }
            }
            forget_metrics(ctx, &site);
        }
        sites
            .get(&name)
            .filter(|m| m.uid == site.metadata.uid)
            .cloned()
            .unwrap_or_else(|| SiteMemory {
                uid: site.metadata.uid.clone(),
                ..SiteMemory::default()
            })
    });

    let plant = plant_from_site(&site.spec);
    if let (Ok(plant), Some(forecast)) = (&plant, &site.spec.forecast) {
        let deps = Deps {
            http: &sc.http,
            kube: Some(&ctx.client),
            settings: &sc.settings,
        };
        let asked = refresh(
            &mut memory.forecast,
            forecast,
            plant,
            site.metadata.generation,
            &deps,
            now_s,
        )
        .await;
        if asked {
            debug!(site = %name, error = ?memory.forecast.weather_error, "forecast refreshed");
        }
    }
    let forecast: Result<SiteForecast, _> = plant
        .as_ref()
        .map(|plant| compose(&memory.forecast, &site, plant, &sc.settings, now_s))
        .map_err(Clone::clone);

    // The site comes from the shared cache the topology is built from, so both have
    // this spec.
    let topology = ctx.topology.current();
    let site_nodes: Vec<&k8s_openapi::api::core::v1::Node> = topology
        .nodes
        .iter()
        .filter(|n| topology.site_of(&n.name_any()) == Some(name.as_str()))
        .map(|n| n.as_ref())
        .collect();
    let load = site_load(&LoadInputs {
        nodes: &site_nodes,
        running_gpus: topology.running_gpus(),
        telemetry: &ctx.telemetry,
        engine: &ctx.engine,
        node_base_w: ctx.node_base_watts,
        pue: site.spec.pue,
        now_s,
    });
    let selector_error = Selector::try_from(site.spec.node_selector.clone())
        .err()
        .map(|e| format!("spec.nodeSelector is invalid ({e}); the site powers no node"));
    let previous = site.status.clone().unwrap_or_default();
    let status = build_status(&StatusInputs {
        previous: &previous,
        generation: site.metadata.generation,
        forecast: forecast.as_ref(),
        selector_error,
        load: &load,
        overlap: describe_overlap(&name, topology.overlaps()),
        now,
    });
    let mut status = status;
    status.storage = storage::estimate(
        &site.spec.storage,
        &previous.storage,
        status.renewable_kw.as_ref().map_or(0.0, |r| r.total) - load.load_kw,
        now,
        3600.0 / sc.settings.step_s.max(1) as f64,
    );
    let gone: Vec<String> = (previous.storage.iter())
        .filter(|p| !status.storage.iter().any(|s| s.name == p.name))
        .map(|p| p.name.clone())
        .collect();
    storage::record_metrics(&ctx.metrics, &name, &status.storage, &gone);
    memory.batteries = status.storage.iter().map(|b| b.name.clone()).collect();
    if status != previous {
        write_status(ctx, &site, &status).await?;
    }
    publish_warnings(&sc, &site, &previous, &status).await;
    record_metrics(ctx, &name, &status, now_s);

    let next_refresh = site
        .spec
        .forecast
        .as_ref()
        .and_then(|f| next_refresh_s(&memory.forecast, f));
    sc.with_sites(|sites| sites.insert(name.clone(), memory));
    let mut wait = sc.status_period;
    if let Some(due_s) = next_refresh {
        wait = wait.min(Duration::from_secs((due_s - now_s).max(1) as u64));
    }
    Ok(Action::requeue(wait))
}

impl SiteContext {
    fn with_sites<T>(&self, f: impl FnOnce(&mut HashMap<String, SiteMemory>) -> T) -> T {
        let mut guard = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

async fn write_status(
    ctx: &Context,
    site: &EnergySite,
    status: &EnergySiteStatus,
) -> Result<(), SiteError> {
    let patch = serde_json::json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "EnergySite",
        "status": status,
    });
    Api::<EnergySite>::all(ctx.client.clone())
        .patch_status(
            &site.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
        .map_err(|source| SiteError::WriteStatus {
            site: site.name_any(),
            source,
        })
}

/// A Warning Event when a problem condition turns on (or its message changes), so it
/// shows in `kubectl describe` and event pipelines without repeating every update.
async fn publish_warnings(
    sc: &SiteContext,
    site: &EnergySite,
    previous: &EnergySiteStatus,
    status: &EnergySiteStatus,
) {
    let find = |s: &EnergySiteStatus, type_: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let checks = [
        (status::NODE_SELECTOR_OVERLAP, "True", true),
        (status::READY, "False", false),
        (status::FORECAST_DEGRADED, "True", false),
    ];
    for (type_, bad, message_matters) in checks {
        let Some((value, reason, message)) = find(status, type_) else {
            continue;
        };
        if value != bad {
            continue;
        }
        let before = find(previous, type_);
        let new = match &before {
            Some((v, r, m)) => v != bad || *r != reason || (message_matters && *m != message),
            None => true,
        };
        // Nothing to warn about on a site that merely has no forecast yet.
        if !new || reason == "NoForecast" {
            continue;
        }
        let event = Event {
            type_: EventType::Warning,
            reason: reason.clone(),
            note: Some(message.chars().take(1000).collect()),
            action: "UpdateStatus".into(),
            secondary: None,
        };
        if let Err(e) = sc.recorder.publish(&event, &site.object_ref(&())).await {
            warn!(site = %site.name_any(), error = %e, "could not publish event");
        }
        warn!(site = %site.name_any(), condition = type_, %reason, %message, "EnergySite problem");
    }
}

fn record_metrics(ctx: &Context, site: &str, status: &EnergySiteStatus, now_s: i64) {
    let metrics = &ctx.metrics;
    match &status.last_forecast_time {
        Some(at) => {
            metrics
                .site_forecast_age_s
                .get_or_create(&label("site", site))
                .set((now_s - at.0.as_second()).max(0) as f64);
        }
        // Never refreshed: no age to show; the ForecastDegraded/Ready conditions say why.
        None => {
            metrics.site_forecast_age_s.remove(&label("site", site));
        }
    }
    let renewable = status.renewable_kw.clone().unwrap_or_default();
    for (source, kw) in [
        ("solar", renewable.solar),
        ("wind", renewable.wind),
        ("total", renewable.total),
    ] {
        metrics
            .site_renewable_kw
            .get_or_create(&site_source(site, source))
            .set(kw);
    }
    metrics
        .site_load_kw
        .get_or_create(&label("site", site))
        .set(status.load_kw.unwrap_or(0.0));
    metrics
        .site_headroom_kw
        .get_or_create(&label("site", site))
        .set(status.headroom_kw.unwrap_or(0.0));
    for hours in METRIC_HORIZONS_H {
        let point = status
            .forecast
            .get(hours.min(status.forecast.len().saturating_sub(1)));
        metrics
            .site_forecast_kw
            .get_or_create(&site_horizon(site, hours))
            .set(point.map_or(0.0, |p| p.solar_kw + p.wind_kw));
    }
}

fn forget_metrics(ctx: &Context, site: &str) {
    let metrics = &ctx.metrics;
    for source in ["solar", "wind", "total"] {
        metrics.site_renewable_kw.remove(&site_source(site, source));
    }
    metrics.site_load_kw.remove(&label("site", site));
    metrics.site_headroom_kw.remove(&label("site", site));
    metrics.site_forecast_age_s.remove(&label("site", site));
    for hours in METRIC_HORIZONS_H {
        metrics.site_forecast_kw.remove(&site_horizon(site, hours));
    }
}

fn site_source(site: &str, source: &str) -> Vec<(String, String)> {
    vec![
        ("site".to_owned(), site.to_owned()),
        ("source".to_owned(), source.to_owned()),
    ]
}

fn site_horizon(site: &str, hours: usize) -> Vec<(String, String)> {
    vec![
        ("site".to_owned(), site.to_owned()),
        ("horizon".to_owned(), format!("{hours}h")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(uid: &str, generation: i64) -> Arc<EnergySite> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "verdant.dev/v1alpha1", "kind": "EnergySite",
                "metadata": {"name": "solar-a", "uid": uid, "generation": generation},
                "spec": {"nodeSelector": {}, "location": {"latitude": 36.1, "longitude": -79.9}}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn only_new_sites_and_spec_changes_trigger() {
        let mut changed = spec_changed();
        let mut passes = |s| changed(&s).into_inner();
        assert!(passes(site("u1", 1)), "new");
        assert!(
            !passes(site("u1", 1)),
            "a status write keeps the generation"
        );
        assert!(passes(site("u1", 2)), "spec changed");
        assert!(passes(site("u2", 2)), "deleted and created again");
    }
}
