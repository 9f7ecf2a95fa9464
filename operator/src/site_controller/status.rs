//! The EnergySite status, computed from the forecast, the load and the overlaps. Pure.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use verdant_core::placement::EngineConfig;
use verdant_crds::{EnergySite, EnergySiteStatus, ForecastPoint, PlantMappingError, RenewableKw};

use crate::energy::forecast::SiteForecast;
use crate::labels::GPU_PRODUCT_LABEL;
use crate::status::set_condition;
use crate::telemetry::Telemetry;
use crate::topology::Overlap;

/// Condition: the status is usable.
pub const READY: &str = "Ready";
/// Condition: the provider failed, or the forecast is stale or incomplete.
pub const FORECAST_DEGRADED: &str = "ForecastDegraded";
/// Condition: a node this site selects is also selected by another site.
pub const NODE_SELECTOR_OVERLAP: &str = "NodeSelectorOverlap";
/// Condition: the load exceeds the renewable output; its `lastTransitionTime` says since
/// when, and drives the GreenOnly grace period of the scheduling cycle.
pub const RENEWABLE_DEFICIT: &str = "RenewableDeficit";

/// A site's facility load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SiteLoad {
    /// (IT load) × PUE, kW.
    pub load_kw: f64,
    /// Nodes whose GPU power was measured by an agent.
    pub measured_nodes: usize,
    /// Nodes whose GPU power was estimated from their running pods.
    pub estimated_nodes: usize,
}

/// What a site's load is computed from.
pub struct LoadInputs<'a> {
    /// The nodes the site powers.
    pub nodes: &'a [&'a Node],
    /// GPUs of running pods per node.
    pub running_gpus: &'a HashMap<String, u32>,
    /// Measured power.
    pub telemetry: &'a Telemetry,
    /// Per-GPU watts by model, and the default.
    pub engine: &'a EngineConfig,
    /// Base power of a node besides its GPUs, W.
    pub node_base_w: f64,
    /// The site's PUE.
    pub pue: f64,
    /// Now.
    pub now_s: i64,
}

/// The facility load: per node, the agent's measured GPU power if fresh, else the GPUs of
/// its running pods × per-GPU watts (by the node's GPU model, else the default); plus the
/// node's base power; all × PUE.
pub fn site_load(inputs: &LoadInputs<'_>) -> SiteLoad {
    let mut load = SiteLoad::default();
    let mut it_w = 0.0;
    for node in inputs.nodes {
        let name = node.name_any();
        let gpu_w = match inputs.telemetry.node_gpu_power_w(&name, inputs.now_s) {
            Some(measured) => {
                load.measured_nodes += 1;
                measured
            }
            None => {
                load.estimated_nodes += 1;
                let per_gpu = node
                    .labels()
                    .get(GPU_PRODUCT_LABEL)
                    .and_then(|model| inputs.engine.gpu_watts_by_model.get(model))
                    .copied()
                    .unwrap_or(inputs.engine.default_gpu_watts);
                per_gpu * f64::from(inputs.running_gpus.get(&name).copied().unwrap_or(0))
            }
        };
        it_w += gpu_w + inputs.node_base_w.max(0.0);
    }
    let pue = if inputs.pue.is_finite() && inputs.pue >= 1.0 {
        inputs.pue
    } else {
        1.0
    };
    load.load_kw = it_w * pue / 1000.0;
    load
}

/// What goes into a site's status.
pub struct StatusInputs<'a> {
    /// The status as it is.
    pub previous: &'a EnergySiteStatus,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The forecast, or why the plant cannot be modelled.
    pub forecast: Result<&'a SiteForecast, &'a PlantMappingError>,
    /// A problem with `spec.nodeSelector` itself.
    pub selector_error: Option<String>,
    /// The load.
    pub load: &'a SiteLoad,
    /// Overlaps with other sites, described.
    pub overlap: Option<String>,
    /// Now.
    pub now: jiff::Timestamp,
}

/// The status to write.
pub fn build_status(inputs: &StatusInputs<'_>) -> EnergySiteStatus {
    let now = inputs.now;
    let generation = inputs.generation;
    let mut status = inputs.previous.clone();
    status.observed_generation = generation;
    let renewable = inputs
        .forecast
        .ok()
        .map(|f| f.built.now)
        .unwrap_or_default();
    let renewable_kw = round(renewable.total_kw());
    let load_kw = round(inputs.load.load_kw);
    let headroom_kw = round(renewable_kw - load_kw);
    status.renewable_kw = Some(RenewableKw {
        solar: round(renewable.solar_kw),
        wind: round(renewable.wind_kw),
        total: renewable_kw,
    });
    status.load_kw = Some(load_kw);
    status.headroom_kw = Some(headroom_kw);
    status.forecast = inputs
        .forecast
        .ok()
        .map(|f| {
            f.built
                .hours
                .iter()
                .filter_map(|h| {
                    Some(ForecastPoint {
                        time: Time(jiff::Timestamp::from_second(h.start_s).ok()?),
                        solar_kw: round(h.kw.solar_kw),
                        wind_kw: round(h.kw.wind_kw),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    status.last_forecast_time = inputs
        .forecast
        .ok()
        .and_then(|f| f.last_forecast_s)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(Time);

    let mut set = |type_: &str, value: bool, reason: &str, message: &str| {
        set_condition(
            &mut status.conditions,
            type_,
            value,
            reason,
            message,
            generation,
            now,
        );
    };
    match (&inputs.forecast, &inputs.selector_error) {
        (Err(error), _) => set(
            READY,
            false,
            "InvalidPlant",
            &format!(
                "{error}; the site counts as having no renewable supply until the spec is fixed"
            ),
        ),
        (Ok(_), Some(error)) => set(READY, false, "InvalidNodeSelector", error),
        (Ok(f), None) => set(READY, f.ready.0, f.ready.1, &f.ready.2),
    }
    match inputs.forecast.ok().and_then(|f| f.degraded.as_ref()) {
        Some((reason, message)) => set(FORECAST_DEGRADED, true, reason, message),
        None => set(
            FORECAST_DEGRADED,
            false,
            "ForecastCurrent",
            "the forecast provider answers as expected",
        ),
    }
    match &inputs.overlap {
        Some(message) => set(NODE_SELECTOR_OVERLAP, true, "NodeSelectorOverlap", message),
        None => set(
            NODE_SELECTOR_OVERLAP,
            false,
            "NoOverlap",
            "no node this site selects is selected by another EnergySite",
        ),
    }
    if headroom_kw < 0.0 {
        set(
            RENEWABLE_DEFICIT,
            true,
            "LoadExceedsRenewables",
            &format!(
                "load {load_kw} kW exceeds renewable output {renewable_kw} kW: {} kW comes from the grid",
                round(-headroom_kw)
            ),
        );
    } else {
        set(
            RENEWABLE_DEFICIT,
            false,
            "RenewablesCoverLoad",
            &format!("renewable output {renewable_kw} kW covers the load {load_kw} kW"),
        );
    }
    status
}

/// Since when each site's headroom has been negative (Unix s), from the
/// `RenewableDeficit` conditions the EnergySite controller keeps, so that the GreenOnly
/// grace period survives an operator restart.
pub fn headroom_negative_since(sites: &[Arc<EnergySite>]) -> HashMap<String, i64> {
    sites
        .iter()
        .filter_map(|site| {
            let deficit = site
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == RENEWABLE_DEFICIT && c.status == "True")?;
            Some((site.name_any(), deficit.last_transition_time.0.as_second()))
        })
        .collect()
}

/// What this site's overlaps with others say, if any.
pub fn describe_overlap(site: &str, overlaps: &[Overlap]) -> Option<String> {
    let mut others: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    let mut counts_here = true;
    for overlap in overlaps {
        if overlap.site == site {
            others
                .entry(&overlap.other_site)
                .or_default()
                .push(&overlap.node);
        } else if overlap.other_site == site {
            others.entry(&overlap.site).or_default().push(&overlap.node);
            counts_here = false;
        }
    }
    if others.is_empty() {
        return None;
    }
    let parts: Vec<String> = others
        .iter()
        .map(|(other, nodes)| {
            let shown: Vec<&str> = nodes.iter().take(5).copied().collect();
            let more = nodes.len().saturating_sub(shown.len());
            format!(
                "{} node(s) ({}{}) also selected by EnergySite {other}",
                nodes.len(),
                shown.join(", "),
                if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                }
            )
        })
        .collect();
    Some(format!(
        "{}; a node must be powered by exactly one site. Such nodes count for the site first by name{}. Make the nodeSelectors disjoint",
        parts.join("; "),
        if counts_here {
            " (this one)"
        } else {
            " (not this one)"
        }
    ))
}

fn round(kw: f64) -> f64 {
    if kw.is_finite() {
        (kw * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::energy::forecast::{BuiltForecast, ForecastBasis, HourKw, PlantKw};

    fn node(name: &str, model: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(GPU_PRODUCT_LABEL.to_owned(), model.to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn load_prefers_measurements_and_adds_base_power_and_pue() {
        let (a, b, c) = (node("a", "H100"), node("b", "A100"), node("c", "H100"));
        let nodes = [&a, &b, &c];
        let running: HashMap<String, u32> = [("a".to_owned(), 8), ("b".to_owned(), 4)].into();
        let telemetry = Telemetry::default();
        telemetry.record_node("a", 4000.0, 100);
        let engine = EngineConfig {
            default_gpu_watts: 700.0,
            gpu_watts_by_model: [("A100".to_owned(), 400.0)].into(),
            ..EngineConfig::default()
        };
        let load = site_load(&LoadInputs {
            nodes: &nodes,
            running_gpus: &running,
            telemetry: &telemetry,
            engine: &engine,
            node_base_w: 500.0,
            pue: 1.25,
            now_s: 110,
        });
        // a: measured 4000 + 500; b: 4 × 400 + 500; c: idle, 0 + 500.
        assert!((load.load_kw - (4500.0 + 2100.0 + 500.0) * 1.25 / 1000.0).abs() < 1e-9);
        assert_eq!((load.measured_nodes, load.estimated_nodes), (1, 2));
    }

    fn forecast(now_kw: f64) -> SiteForecast {
        SiteForecast {
            built: BuiltForecast {
                now: PlantKw::new(now_kw, 0.0),
                hours: vec![HourKw {
                    start_s: 1_795_910_400,
                    kw: PlantKw::new(now_kw, 0.0),
                }],
                basis: ForecastBasis::Weather { age_s: 0 },
                measured_now: false,
                uncovered_hours: 0,
            },
            last_forecast_s: Some(1_795_910_400),
            degraded: None,
            ready: (true, "ForecastAvailable", "ok".into()),
        }
    }

    #[test]
    fn the_deficit_condition_keeps_its_start_while_it_lasts() {
        let t0: jiff::Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-11-29T10:05:00Z".parse().unwrap();
        let t2: jiff::Timestamp = "2026-11-29T10:10:00Z".parse().unwrap();
        let load = SiteLoad {
            load_kw: 10.0,
            ..SiteLoad::default()
        };
        let (short, plenty) = (forecast(4.0), forecast(40.0));
        let inputs = |previous, f, now| StatusInputs {
            previous,
            generation: Some(1),
            forecast: Ok(f),
            selector_error: None,
            load: &load,
            overlap: None,
            now,
        };
        let empty = EnergySiteStatus::default();
        let s0 = build_status(&inputs(&empty, &short, t0));
        assert_eq!(s0.headroom_kw, Some(-6.0));
        let s1 = build_status(&inputs(&s0, &short, t1));
        let site = |status: EnergySiteStatus| {
            let mut site = EnergySite::new(
                "a",
                serde_yaml_ng::from_str("location: {latitude: 0, longitude: 0}").unwrap(),
            );
            site.status = Some(status);
            Arc::new(site)
        };
        assert_eq!(
            headroom_negative_since(&[site(s1.clone())]).get("a"),
            Some(&t0.as_second()),
            "negative since the first status that saw it"
        );
        let s2 = build_status(&inputs(&s1, &plenty, t2));
        assert!(headroom_negative_since(&[site(s2.clone())]).is_empty());
        let deficit = s2
            .conditions
            .iter()
            .find(|c| c.type_ == RENEWABLE_DEFICIT)
            .unwrap();
        assert_eq!(deficit.status, "False");
        assert_eq!(s2.conditions.len(), 4);
        assert_eq!(s2.forecast.len(), 1);
        assert_eq!(s2.renewable_kw.unwrap().total, 40.0);
    }

    #[test]
    fn overlaps_are_described_from_both_sides() {
        let overlap = |node: &str| Overlap {
            site: "a".into(),
            other_site: "b".into(),
            node: node.into(),
        };
        let overlaps = vec![overlap("n1"), overlap("n2")];
        let a = describe_overlap("a", &overlaps).unwrap();
        assert!(
            a.starts_with("2 node(s) (n1, n2) also selected by EnergySite b"),
            "{a}"
        );
        assert!(a.contains("(this one)"));
        let b = describe_overlap("b", &overlaps).unwrap();
        assert!(b.contains("also selected by EnergySite a") && b.contains("(not this one)"));
        assert_eq!(describe_overlap("c", &overlaps), None);
    }
}
