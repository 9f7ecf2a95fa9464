//! The state of charge of a site's batteries (`status.storage`), estimated by stepping
//! the battery model (`verdant_core::energy::storage`) over the time since the last
//! estimate with the site's renewable output and facility load now; its metrics; and the
//! batteries as the scheduling cycle sees them. Pure but for the metrics.
//!
//! # Assumptions
//! - The net power (renewable output − facility load) measured now held since the last
//!   estimate, one status period (`--site-status-seconds`) ago: the error is that of a
//!   one-period rectangle rule.
//! - A battery seen for the first time (or after its spec changed its name) holds its
//!   floor, `minStateOfChargePercent`: the conservative guess, as nothing tells Verdant
//!   more without a meter.
//! - The state of charge is rounded to 0.001 kWh; an estimate whose rounded value does
//!   not change keeps the previous one, time included, so that small flows add up
//!   instead of being rounded away at every period.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use verdant_core::energy::{BatteryState, Storage};
use verdant_crds::{EnergySite, StorageSpec, StorageStatus};

use crate::metrics::{Labels, Metrics};

/// The new `status.storage`: each battery of `spec` stepped from its previous estimate to
/// `now` with `net_kw` (renewable output − facility load). `model_s_per_wall_s` is
/// `--time-scale` (forecast hours pass that many times faster than the wall clock).
pub fn estimate(
    spec: &[StorageSpec],
    previous: &[StorageStatus],
    net_kw: f64,
    now: jiff::Timestamp,
    model_s_per_wall_s: f64,
) -> Vec<StorageStatus> {
    let mut storage = Storage::new(Vec::new());
    let mut rest_kw = net_kw;
    spec.iter()
        .map(|b| {
            let battery = b.battery();
            let before = previous.iter().find(|p| p.name == b.name);
            let (soc_kwh, elapsed_s) = match before {
                Some(p) => (
                    p.state_of_charge_kwh.clamp(0.0, battery.capacity()),
                    (now.as_second() - p.time.0.as_second()).max(0) as f64,
                ),
                None => (battery.min_soc_kwh(), 0.0),
            };
            let dt_s = elapsed_s * model_s_per_wall_s.max(0.0);
            // In the spec's order, as `Storage::step`: this battery sees what the ones
            // before it left of the surplus or deficit.
            storage.batteries = vec![BatteryState { battery, soc_kwh }];
            let flow = storage.step(rest_kw, dt_s);
            if dt_s > 0.0 {
                rest_kw -= (flow.charged_kwh - flow.discharged_kwh) * 3600.0 / dt_s;
            }
            let state = &storage.batteries[0];
            let kwh = round3(state.soc_kwh);
            match before {
                Some(p) if round3(p.state_of_charge_kwh) == kwh => p.clone(),
                _ => StorageStatus {
                    name: b.name.clone(),
                    state_of_charge_kwh: kwh,
                    state_of_charge_percent: (state.soc_fraction() * 1000.0).round() / 10.0,
                    time: Time(now),
                },
            }
        })
        .collect()
}

/// The site's batteries for the scheduling cycle: the spec with the status's estimate
/// (the floor where there is none yet).
pub fn engine_storage(site: &EnergySite) -> Vec<BatteryState> {
    let status = site.status.as_ref().map_or(&[][..], |s| &s.storage[..]);
    site.spec
        .storage
        .iter()
        .map(|b| {
            let battery = b.battery();
            let soc_kwh = status
                .iter()
                .find(|s| s.name == b.name)
                .map_or(battery.min_soc_kwh(), |s| s.state_of_charge_kwh)
                .clamp(0.0, battery.capacity());
            BatteryState { battery, soc_kwh }
        })
        .collect()
}

/// The power, in W, the site's batteries with energy above their floor could deliver
/// now: what the accounting may bill as renewable into a deficit (it never counts more
/// than the deficit). The batteries charge from surplus renewables only (`estimate`), so
/// what they deliver is renewable and was not billed when it was stored.
pub fn discharge_available_w(site: &EnergySite) -> f64 {
    Storage::new(engine_storage(site)).available_discharge_kw() * 1000.0
}

/// `verdant_site_battery_state_of_charge_ratio` and `_kwh` for each battery now; the
/// batteries named in `gone` (no longer in the spec) are removed.
pub fn record_metrics(metrics: &Metrics, site: &str, storage: &[StorageStatus], gone: &[String]) {
    for s in storage {
        let labels = battery_labels(site, &s.name);
        metrics
            .site_battery_soc_ratio
            .get_or_create(&labels)
            .set(s.state_of_charge_percent / 100.0);
        metrics
            .site_battery_soc_kwh
            .get_or_create(&labels)
            .set(s.state_of_charge_kwh);
    }
    for name in gone {
        forget_battery(metrics, site, name);
    }
}

/// Removes one battery's metrics.
pub fn forget_battery(metrics: &Metrics, site: &str, battery: &str) {
    let labels = battery_labels(site, battery);
    metrics.site_battery_soc_ratio.remove(&labels);
    metrics.site_battery_soc_kwh.remove(&labels);
}

fn battery_labels(site: &str, battery: &str) -> Labels {
    vec![
        ("site".to_owned(), site.to_owned()),
        ("battery".to_owned(), battery.to_owned()),
    ]
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> StorageSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "capacityKwh": 100.0, "maxChargeKw": 50.0, "maxDischargeKw": 40.0,
            "roundTripEfficiencyPercent": 81.0, "minStateOfChargePercent": 10.0
        }))
        .unwrap()
    }

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_767_268_800 + s).unwrap()
    }

    #[test]
    fn a_new_battery_starts_at_its_floor_then_charges_from_the_surplus() {
        let first = estimate(&[spec("a")], &[], 80.0, at(0), 1.0);
        assert_eq!(first[0].state_of_charge_kwh, 10.0);
        assert_eq!(first[0].state_of_charge_percent, 10.0);
        // Half an hour of 80 kW surplus: 25 kWh taken at the 50 kW limit, 22.5 stored.
        let later = estimate(&[spec("a")], &first, 80.0, at(1800), 1.0);
        assert_eq!(later[0].state_of_charge_kwh, 32.5);
        assert_eq!(later[0].state_of_charge_percent, 32.5);
        assert_eq!(later[0].time, Time(at(1800)));
        // A deficit of 20 kW for an hour with --time-scale 120 in 30 s: 20 kWh delivered,
        // 20 / 0.9 drawn.
        let evening = estimate(&[spec("a")], &later, -20.0, at(1830), 120.0);
        assert!((evening[0].state_of_charge_kwh - (32.5 - 20.0 / 0.9)).abs() < 1e-3);
    }

    #[test]
    fn an_unchanged_estimate_keeps_its_time_so_small_flows_add_up() {
        let first = estimate(&[spec("a")], &[], 0.0, at(0), 1.0);
        let same = estimate(&[spec("a")], &first, 0.0, at(60), 1.0);
        assert_eq!(same, first);
        // 0.05 kW for a second is below the rounding; over 100 s it is not.
        let tiny = estimate(&[spec("a")], &first, 0.05, at(1), 1.0);
        assert_eq!(tiny, first);
        let more = estimate(&[spec("a")], &first, 0.05, at(100), 1.0);
        assert!(more[0].state_of_charge_kwh > 10.0);
    }

    #[test]
    fn only_batteries_above_their_floor_can_be_billed_as_discharging() {
        let site = |socs: &[f64]| -> EnergySite {
            let mut site: EnergySite = serde_json::from_value(serde_json::json!({
                "apiVersion": "verdant.dev/v1alpha1", "kind": "EnergySite",
                "metadata": {"name": "s"},
                "spec": {"nodeSelector": {}, "location": {"latitude": 0.0, "longitude": 0.0},
                         "forecast": {"provider": "Static", "static": {"constantKw": 0.0}}}
            }))
            .unwrap();
            site.spec.storage = vec![spec("a"), spec("b")];
            site.status = Some(verdant_crds::EnergySiteStatus {
                storage: ["a", "b"]
                    .iter()
                    .zip(socs)
                    .map(|(name, &kwh)| StorageStatus {
                        name: (*name).to_owned(),
                        state_of_charge_kwh: kwh,
                        state_of_charge_percent: kwh,
                        time: Time(at(0)),
                    })
                    .collect(),
                ..Default::default()
            });
            site
        };
        // Both above the 10 kWh floor: 2 × 40 kW; one at its floor: 40 kW; none: 0.
        assert_eq!(discharge_available_w(&site(&[50.0, 11.0])), 80_000.0);
        assert_eq!(discharge_available_w(&site(&[50.0, 10.0])), 40_000.0);
        assert_eq!(discharge_available_w(&site(&[10.0, 10.0])), 0.0);
        // No estimate yet: at the floor, nothing billed.
        let mut fresh = site(&[50.0, 50.0]);
        fresh.status = None;
        assert_eq!(discharge_available_w(&fresh), 0.0);
    }

    #[test]
    fn batteries_share_a_deficit_in_order() {
        let full = |name: &str| StorageStatus {
            name: name.to_owned(),
            state_of_charge_kwh: 100.0,
            state_of_charge_percent: 100.0,
            time: Time(at(0)),
        };
        let next = estimate(
            &[spec("a"), spec("b")],
            &[full("a"), full("b")],
            -60.0,
            at(3600),
            1.0,
        );
        // a gives its 40 kW, b the other 20.
        assert!((next[0].state_of_charge_kwh - (100.0 - 40.0 / 0.9)).abs() < 1e-3);
        assert!((next[1].state_of_charge_kwh - (100.0 - 20.0 / 0.9)).abs() < 1e-3);
    }
}
