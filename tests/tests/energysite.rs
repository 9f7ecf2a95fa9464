//! The EnergySite controller end to end: a real kube-apiserver, KWOK nodes, the operator
//! as a process, and forecast services on local sockets answering in their own formats.
//!
//! Each scenario has its own control plane: an operator reconciles every EnergySite of
//! its cluster.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use verdant_crds::{EnergySiteStatus, JobPhase, TrainingJob};
use verdant_operator::energy::forecast::samples::open_meteo_answer;
use verdant_tests::operator::metric_value;
use verdant_tests::sites::{condition, condition_is, renewable_kw_now};
use verdant_tests::{Scenario, create_gpu_nodes, examples_dir, repo_root, wait};

/// A scenario with the operator as these tests run it: site status every second, the
/// documented weather files, and quick forecast retries.
async fn scenario(name: &str) -> anyhow::Result<Scenario> {
    let weather_dir = examples_dir().to_string_lossy().into_owned();
    Ok(Scenario::start(name, env!("CARGO_BIN_EXE_e2e-operator"))
        .await?
        .with_operator_flags(&[
            "--site-status-seconds",
            "1",
            "--weather-dir",
            &weather_dir,
            "--forecast-attempts",
            "2",
            "--forecast-backoff-ms",
            "50",
            "--forecast-timeout-seconds",
            "2",
        ]))
}

#[tokio::test]
async fn replayed_weather_files_give_48_hour_forecasts() -> anyhow::Result<()> {
    let mut s = scenario("replay").await?;
    // The documented examples, as a user applies them; their relative paths resolve
    // against --weather-dir.
    for example in [
        "energysite-greensboro-replay.yaml",
        "energysite-wind-replay.yaml",
    ] {
        s.plane.kubectl_output(&[
            "apply",
            "-f",
            &examples_dir().join(example).to_string_lossy(),
        ])?;
    }
    // The same wind weather from a ConfigMap.
    let weather = std::fs::read_to_string(
        repo_root().join("core/data/weather/windpowerlib_example_weather_2010.csv"),
    )?;
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("weather-2010".into()),
            ..Default::default()
        },
        data: Some([("weather.csv".to_owned(), weather)].into()),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(s.client.clone(), s.ns.name())
        .create(&PostParams::default(), &config_map)
        .await?;
    let from_config_map = format!("{}-cm", s.ns.name());
    s.create_site(json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "EnergySite",
        "metadata": {"name": from_config_map},
        "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": from_config_map}},
            "location": {"latitude": 53.55, "longitude": 8.58},
            "wind": [{"name": "e82", "turbineType": "E-82/2350", "count": 3, "hubHeightM": 108}],
            "forecast": {"provider": "Replay", "refreshInterval": "10m",
                "replay": {"configMapRef": {"namespace": s.ns.name(), "name": "weather-2010", "key": "weather.csv"}, "startOffset": "2h"}}
        }
    }))
    .await?;
    s.start_operator(&[])?;

    let forecast_ready = |status: &EnergySiteStatus| {
        condition_is(status, "Ready", "True")?;
        condition_is(status, "ForecastDegraded", "False")?;
        if status.forecast.len() != 48 {
            return Err(format!("{} forecast points", status.forecast.len()));
        }
        if renewable_kw_now(status) <= 0.0 {
            return Err(format!("renewableKw {:?}", status.renewable_kw));
        }
        Ok(())
    };
    let solar = s
        .wait_site(
            "greensboro",
            "a 48-hour forecast and output now",
            90,
            forecast_ready,
        )
        .await?;
    let renewable = solar.renewable_kw.clone().unwrap();
    assert!(
        renewable.solar > 100.0 && renewable.wind == 0.0,
        "30 June, 12:30 local: {renewable:?}"
    );
    // The first point covers the moment the forecast was made (compared with that
    // moment, not with the test's clock, which may have crossed an hour since).
    let made = solar
        .last_forecast_time
        .as_ref()
        .expect("a forecast time")
        .0;
    let first = solar.forecast[0].time.0;
    assert!(
        first <= made && made.as_second() - first.as_second() < 3600,
        "the first point {first} covers the forecast's time {made}"
    );
    assert!(first <= jiff::Timestamp::now());
    let dark_hours = solar.forecast.iter().filter(|p| p.solar_kw == 0.0).count();
    assert!(
        (14..=26).contains(&dark_hours),
        "two summer nights in 48 h: {dark_hours}"
    );
    assert_eq!(
        solar.headroom_kw,
        solar
            .renewable_kw
            .as_ref()
            .map(|r| r.total - solar.load_kw.unwrap())
    );

    let wind = s
        .wait_site(
            "windpark-2010",
            "a 48-hour forecast and output now",
            60,
            forecast_ready,
        )
        .await?;
    let renewable = wind.renewable_kw.clone().unwrap();
    assert!(
        renewable.wind > 0.0 && renewable.solar == 0.0,
        "{renewable:?}"
    );
    assert!(
        wind.forecast
            .iter()
            .all(|p| p.wind_kw <= 2.0 * 4200.0 + 3.0 * 2350.0 + 4.0 * 2000.0)
    );
    let cm = s
        .wait_site(
            &from_config_map,
            "a forecast from the ConfigMap",
            60,
            forecast_ready,
        )
        .await?;
    assert!(cm.renewable_kw.unwrap().wind > 0.0);

    let text = s.operator().metrics().await?;
    let wind_now = metric_value(
        &text,
        "verdant_site_renewable_kw{site=\"windpark-2010\",source=\"wind\"}",
    );
    assert!(wind_now.is_some_and(|kw| kw > 0.0), "{wind_now:?}");
    for horizon in ["1h", "6h", "24h", "48h"] {
        let series =
            format!("verdant_site_forecast_kw{{site=\"greensboro\",horizon=\"{horizon}\"}}");
        assert!(metric_value(&text, &series).is_some(), "{series} missing");
    }
    assert!(metric_value(&text, "verdant_site_load_kw{site=\"greensboro\"}").is_some());
    Ok(())
}

/// A local Open-Meteo: the real answer format, for the current days.
#[derive(Clone, Default)]
struct OpenMeteo {
    failing: Arc<Mutex<bool>>,
    /// Requests answered with an error.
    failed: Arc<std::sync::atomic::AtomicUsize>,
}

async fn open_meteo(
    axum::extract::State(server): axum::extract::State<OpenMeteo>,
) -> axum::response::Response {
    if *server.failing.lock().unwrap() {
        server
            .failed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "weather model run not available",
        )
            .into_response();
    }
    let now_s = jiff::Timestamp::now().as_second();
    let midnight_s = now_s - now_s.rem_euclid(86_400);
    axum::Json(open_meteo_answer(45.0, 8.0, midnight_s, 96, 0.1, 7.0)).into_response()
}

#[tokio::test]
async fn open_meteo_site_keeps_its_last_forecast_when_the_server_fails() -> anyhow::Result<()> {
    let mut s = scenario("openmeteo").await?;
    let server = OpenMeteo::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/v1/forecast", axum::routing::get(open_meteo))
        .with_state(server.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The documented example, pointed at the local server and refreshed every 2 s.
    let mut site: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        examples_dir().join("energysite-openmeteo.yaml"),
    )?)?;
    site["spec"]["forecast"]["openMeteo"]["baseUrl"] = url.clone().into();
    site["spec"]["forecast"]["refreshInterval"] = "2s".into();
    s.create_site(site).await?;
    s.start_operator(&[])?;

    let good = s
        .wait_site("piedmont", "an Open-Meteo forecast", 60, |status| {
            condition_is(status, "Ready", "True")?;
            condition_is(status, "ForecastDegraded", "False")?;
            if status.forecast.len() == 48 {
                Ok(())
            } else {
                Err(format!("{} points", status.forecast.len()))
            }
        })
        .await?;
    assert!(
        good.forecast.iter().any(|p| p.solar_kw > 200.0),
        "a day of sun in 48 h"
    );
    assert!(
        good.forecast.iter().all(|p| p.wind_kw > 0.0),
        "7 m/s at 10 m"
    );
    assert!(renewable_kw_now(&good) >= 0.0);

    *server.failing.lock().unwrap() = true;
    let degraded = s
        .wait_site(
            "piedmont",
            "ForecastDegraded after HTTP 500",
            30,
            |status| condition_is(status, "ForecastDegraded", "True"),
        )
        .await?;
    let condition = condition(&degraded, "ForecastDegraded").unwrap();
    assert_eq!(condition.reason, "ProviderUnavailable");
    assert!(
        condition.message.contains("HTTP 500") && condition.message.contains(&url),
        "{}",
        condition.message
    );
    assert!(
        condition.message.contains("keeping the last good forecast"),
        "{}",
        condition.message
    );
    assert_eq!(degraded.forecast.len(), 48, "the last good forecast stays");
    let last_good = degraded.last_forecast_time.clone().unwrap().0;
    assert!(last_good <= condition.last_transition_time.0);
    // It stays degraded through two more failed refreshes, and the last good forecast
    // does not move.
    let failed = || server.failed.load(std::sync::atomic::Ordering::SeqCst);
    let seen = failed();
    wait::until(
        "two more failed refreshes",
        Duration::from_secs(30),
        || async {
            let more = failed() - seen;
            Ok(if more >= 2 {
                Ok(())
            } else {
                Err(format!("{more} failed refreshes"))
            })
        },
    )
    .await?;
    let later = s.sites().get("piedmont").await?.status.unwrap();
    assert_eq!(
        later.last_forecast_time.as_ref().map(|t| t.0),
        Some(last_good)
    );
    condition_is(&later, "ForecastDegraded", "True").map_err(anyhow::Error::msg)?;
    condition_is(&later, "Ready", "True").map_err(anyhow::Error::msg)?;

    let events = Api::<Event>::namespaced(s.client.clone(), "default")
        .list(&ListParams::default())
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(
                |e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("piedmont")
                    && e.reason.as_deref() == Some("ProviderUnavailable")
                    && e.type_.as_deref() == Some("Warning")
            ),
        "a Warning event for the degradation"
    );

    *server.failing.lock().unwrap() = false;
    s.wait_site("piedmont", "recovery", 30, |status| {
        condition_is(status, "ForecastDegraded", "False")
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn overlapping_node_selectors_get_a_condition_and_a_warning_event() -> anyhow::Result<()> {
    let mut s = scenario("overlap").await?;
    let site = format!("{}-a", s.ns.name());
    let other = format!("{}-b", s.ns.name());
    let nodes = create_gpu_nodes(&s.client, &site, &site, 2, 8).await?;
    for (name, selector) in [
        (&site, json!({"matchLabels": {"verdant.dev/site": site}})),
        // Every H100 node: overlaps the first site's nodes.
        (
            &other,
            json!({"matchLabels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}),
        ),
    ] {
        s.create_site(json!({
            "apiVersion": "verdant.dev/v1alpha1",
            "kind": "EnergySite",
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": selector,
                "location": {"latitude": 36.1, "longitude": -79.9},
                "forecast": {"provider": "Static", "static": {"constantKw": 100.0}}
            }
        }))
        .await?;
    }
    s.start_operator(&[])?;

    for name in [&site, &other] {
        let status = s
            .wait_site(name, "NodeSelectorOverlap", 60, |status| {
                condition_is(status, "NodeSelectorOverlap", "True")
            })
            .await?;
        let message = &condition(&status, "NodeSelectorOverlap").unwrap().message;
        let counterpart = if name == &site { &other } else { &site };
        assert!(
            message.contains(&format!("also selected by EnergySite {counterpart}")),
            "{message}"
        );
        assert!(
            nodes.iter().all(|n| message.contains(n.as_str())),
            "{message}"
        );
    }
    let events = Api::<Event>::namespaced(s.client.clone(), "default");
    wait::until(
        "Warning events NodeSelectorOverlap on both sites",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            let (site, other) = (site.clone(), other.clone());
            async move {
                let list = events.list(&ListParams::default()).await?;
                let warned = |name: &str| {
                    list.items.iter().any(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                            && e.reason.as_deref() == Some("NodeSelectorOverlap")
                            && e.type_.as_deref() == Some("Warning")
                    })
                };
                Ok(if warned(&site) && warned(&other) {
                    Ok(())
                } else {
                    Err(format!("{} events", list.items.len()))
                })
            }
        },
    )
    .await?;

    // Disjoint again: the condition clears.
    s.sites()
        .patch(&other, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"nodeSelector": {"matchLabels": {"nvidia.com/gpu.product": "none"}}}})))
        .await?;
    s.wait_site(&site, "the overlap to clear", 30, |status| {
        condition_is(status, "NodeSelectorOverlap", "False")
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn load_deficit_and_the_green_only_grace_survive_an_operator_restart() -> anyhow::Result<()> {
    let mut s = scenario("deficit").await?;
    let site = format!("{}-s", s.ns.name());
    create_gpu_nodes(&s.client, &site, &site, 2, 8).await?;
    s.create_site(verdant_tests::sites::static_site(&site, 100.0))
        .await?;
    let grace = ["--green-only-grace-seconds", "20"];
    s.start_operator(&grace)?;
    let job: TrainingJob = serde_json::from_value(json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "green"},
        "spec": {
            "replicas": 1,
            "gpusPerReplica": 8,
            "energy": {"policy": "GreenOnly", "interruptible": true},
            "template": {"spec": {"containers": [{"name": "trainer", "image": "pytorch/pytorch"}]}}
        }
    }))?;
    let jobs: Api<TrainingJob> = Api::namespaced(s.client.clone(), s.ns.name());
    jobs.create(&PostParams::default(), &job).await?;
    let phase = |jobs: Api<TrainingJob>, want: JobPhase| async move {
        let job = jobs.get("green").await?;
        let phase = job.status.map(|s| s.phase).unwrap_or_default();
        Ok(if phase == want {
            Ok(())
        } else {
            Err(format!("{phase:?}"))
        })
    };
    wait::until("the job to run", Duration::from_secs(60), || {
        phase(jobs.clone(), JobPhase::Running)
    })
    .await?;

    // Load estimated from the running pod: 8 GPUs × 700 W + 2 nodes × 400 W base, × PUE 1.2.
    let expected_kw = (8.0 * 700.0 + 2.0 * 400.0) * 1.2 / 1000.0;
    let status = s
        .wait_site(&site, "the running job's load", 30, |status| {
            match status.load_kw {
                Some(kw) if (kw - expected_kw).abs() < 1e-6 => Ok(()),
                other => Err(format!("loadKw {other:?}")),
            }
        })
        .await?;
    condition_is(&status, "RenewableDeficit", "False").map_err(anyhow::Error::msg)?;

    // The sun goes: supply 2 kW < load.
    s.sites()
        .patch(
            &site,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"forecast": {"static": {"constantKw": 2.0}}}})),
        )
        .await?;
    let status = s
        .wait_site(&site, "RenewableDeficit", 30, |status| {
            condition_is(status, "RenewableDeficit", "True")
        })
        .await?;
    assert_eq!(
        status.headroom_kw,
        Some(((2.0 - expected_kw) * 1000.0_f64).round() / 1000.0)
    );
    let since = condition(&status, "RenewableDeficit")
        .unwrap()
        .last_transition_time
        .0;

    // Restart the operator 12 s into the 20 s grace. With the grace kept in memory it
    // would start again (suspension at restart + 20 s, 32 s or more after the deficit
    // began); from the condition it does not.
    let restart_at = since + jiff::SignedDuration::from_secs(12);
    if let Ok(wait) = Duration::try_from(restart_at.duration_since(jiff::Timestamp::now())) {
        tokio::time::sleep(wait).await;
    }
    s.operator.as_mut().unwrap().kill();
    let restarted = Instant::now();
    s.start_operator(&grace)?;
    // The suspension's Event is a record that cannot move on, unlike the job's status
    // (which the next cycle rewrites): its time and note are the suspension's.
    let events = Api::<Event>::namespaced(s.client.clone(), s.ns.name());
    let suspension = wait::until(
        "a SuspendedForRenewables Event on the job",
        Duration::from_secs(30),
        || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await?;
                Ok(list
                    .items
                    .into_iter()
                    .find(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("green")
                            && e.reason.as_deref() == Some("SuspendedForRenewables")
                    })
                    .ok_or_else(|| "no suspension yet".to_owned()))
            }
        },
    )
    .await?;
    assert_eq!(suspension.type_.as_deref(), Some("Warning"));
    let suspended_at = suspension
        .event_time
        .as_ref()
        .map(|t| t.0)
        .expect("the Event's time");
    let suspended_after_s = suspended_at.as_second() - since.as_second();
    assert!(
        suspended_after_s < 31,
        "suspended {suspended_after_s} s after the deficit began ({} s after the restart): the grace restarted",
        restarted.elapsed().as_secs()
    );
    assert!(
        suspended_after_s >= 19,
        "suspended before the 20 s grace: {suspended_after_s} s"
    );
    let note = suspension.note.unwrap_or_default();
    assert!(note.contains("negative since"), "{note}");
    wait::until("the job to be suspended", Duration::from_secs(30), || {
        phase(jobs.clone(), JobPhase::Suspended)
    })
    .await?;
    Ok(())
}
