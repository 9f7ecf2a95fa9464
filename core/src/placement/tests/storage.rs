//! Batteries: what they can deliver over a job's window is renewable headroom.

use super::*;
use crate::energy::{Battery, BatteryState};

/// No sun; 10 kWh above the floor, 10 kW out.
fn dark_site_with_battery(soc_kwh: f64) -> Site {
    let mut s = site("dark", &[0.0, 0.0]);
    s.storage = vec![BatteryState {
        battery: Battery {
            name: "b".to_owned(),
            capacity_kwh: 20.0,
            max_charge_kw: 10.0,
            max_discharge_kw: 10.0,
            round_trip_efficiency: 1.0,
            min_soc_fraction: 0.0,
        },
        soc_kwh,
    }];
    s
}

#[test]
fn a_charged_battery_makes_a_dark_site_green_and_the_reason_says_how_much() {
    let snap = snapshot(
        vec![dark_site_with_battery(10.0)],
        vec![node("dark", 8, 0)],
        vec![job("ns/gp", 1, 4, Policy::GreenPreferred)],
    );
    let d = run(&snap);
    let (site, _, fraction) = placed(&d[0]);
    assert_eq!(site, "dark");
    assert_close(fraction, 1.0);
    assert_eq!(d[0].reason, Reason::PlacedGreen);
    assert!(
        d[0].message
            .contains("4.0 kWh of it from the site's batteries (they can deliver 10.0 kWh now)"),
        "{}",
        d[0].message
    );
}

#[test]
fn an_empty_battery_adds_nothing() {
    let snap = snapshot(
        vec![dark_site_with_battery(0.0)],
        vec![node("dark", 8, 0)],
        vec![job("ns/gp", 1, 4, Policy::GreenPreferred)],
    );
    let d = run(&snap);
    assert_ne!(d[0].reason, Reason::PlacedGreen, "{}", d[0].message);
    assert!(!d[0].message.contains("batteries"), "{}", d[0].message);
}

#[test]
fn a_battery_holds_off_a_brownout_while_it_has_energy() {
    let mut gp = job("ns/gp", 1, 4, Policy::GreenOnly);
    gp.interruptible = true;
    let mut s = dark_site_with_battery(10.0);
    s.headroom_negative_since_s = Some(NOW - 10 * HOUR);
    let snap = snapshot(
        vec![s],
        vec![node("dark", 8, 4)],
        vec![running(gp, "dark", vec![0], NOW - 60)],
    );
    let d = run(&snap);
    assert_eq!(d[0].action, Action::Keep, "{}", d[0].message);
}
