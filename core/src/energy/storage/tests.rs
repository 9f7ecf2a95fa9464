use proptest::prelude::*;

use super::*;

/// 100 kWh, 50 kW in, 40 kW out, η = 0.81 (0.9 each way), floor 10 %.
fn battery() -> Battery {
    Battery {
        name: "b".to_owned(),
        capacity_kwh: 100.0,
        max_charge_kw: 50.0,
        max_discharge_kw: 40.0,
        round_trip_efficiency: 0.81,
        min_soc_fraction: 0.1,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn charging_is_limited_by_power_then_by_capacity() {
    let b = battery();
    let mut soc = 20.0;
    // 80 kW surplus for an hour: 50 kW taken (the charge limit), 45 kWh stored.
    let f = b.step(&mut soc, 80.0, 3600.0);
    assert!(
        close(f.charged_kwh, 50.0) && close(f.stored_kwh, 45.0),
        "{f:?}"
    );
    assert!(close(soc, 65.0));
    // Another hour: 35 kWh of room takes 35 / 0.9 = 38.889 kWh of surplus.
    let f = b.step(&mut soc, 80.0, 3600.0);
    assert!(
        close(f.charged_kwh, 35.0 / 0.9) && close(f.stored_kwh, 35.0),
        "{f:?}"
    );
    assert!(close(soc, 100.0));
    // Full: nothing more.
    let f = b.step(&mut soc, 80.0, 3600.0);
    assert_eq!(f, Flow::default());
}

#[test]
fn discharging_is_limited_by_the_deficit_power_and_the_floor() {
    let b = battery();
    let mut soc = 100.0;
    // 30 kW deficit for 2 h: 60 kWh delivered, 66.667 kWh drawn.
    let f = b.step(&mut soc, -30.0, 7200.0);
    assert!(
        close(f.discharged_kwh, 60.0) && close(f.drawn_kwh, 60.0 / 0.9),
        "{f:?}"
    );
    assert!(close(soc, 100.0 - 60.0 / 0.9));
    // 100 kW deficit for an hour: at most 40 kW, but only (33.333 − 10) × 0.9 = 21 kWh
    // are above the floor.
    let f = b.step(&mut soc, -100.0, 3600.0);
    assert!(close(f.discharged_kwh, 21.0), "{f:?}");
    assert!(close(soc, 10.0));
    assert_eq!(b.step(&mut soc, -100.0, 3600.0).discharged_kwh, 0.0);
    // A round trip returns η: 10 kWh in, 8.1 kWh out.
    let mut soc = 50.0;
    let stored = b.step(&mut soc, 10.0, 3600.0).stored_kwh;
    assert!(close(stored, 9.0));
    assert!(close(
        b.step(&mut soc, -40.0, 3600.0 * 9.0 * 0.9 / 40.0).drawn_kwh,
        9.0
    ));
}

#[test]
fn several_batteries_charge_and_discharge_in_order() {
    let mut second = battery();
    second.name = "c".to_owned();
    let mut storage = Storage::new(vec![
        BatteryState {
            battery: battery(),
            soc_kwh: 95.0,
        },
        BatteryState {
            battery: second,
            soc_kwh: 10.0,
        },
    ]);
    // 60 kW for an hour: the first fills (5 / 0.9 kWh taken), the second gets the rest
    // up to its 50 kW limit.
    let f = storage.step(60.0, 3600.0);
    assert!(close(storage.batteries[0].soc_kwh, 100.0));
    assert!(close(storage.batteries[1].soc_kwh, 10.0 + 50.0 * 0.9));
    assert!(close(f.charged_kwh, 5.0 / 0.9 + 50.0));
    // 70 kW deficit for an hour: 40 from the first, 30 from the second.
    let f = storage.step(-70.0, 3600.0);
    assert!(close(f.discharged_kwh, 70.0));
    assert!(close(storage.batteries[0].soc_kwh, 100.0 - 40.0 / 0.9));
    assert!(close(storage.batteries[1].soc_kwh, 55.0 - 30.0 / 0.9));
    assert!(close(storage.available_discharge_kw(), 80.0));
}

proptest! {
    #[test]
    fn energy_is_conserved_and_the_state_stays_within_bounds(
        capacity in 1.0..1000.0f64,
        charge in 0.0..500.0f64,
        discharge in 0.0..500.0f64,
        eta in 0.05..=1.0f64,
        floor in 0.0..0.99f64,
        start in 0.0..=1.0f64,
        steps in proptest::collection::vec((-800.0..800.0f64, 1.0..7200.0f64), 1..40),
    ) {
        let b = Battery {
            name: "p".to_owned(),
            capacity_kwh: capacity,
            max_charge_kw: charge,
            max_discharge_kw: discharge,
            round_trip_efficiency: eta,
            min_soc_fraction: floor,
        };
        let min = capacity * floor;
        let mut soc = min + (capacity - min) * start;
        for (net_kw, dt_s) in steps {
            let before = soc;
            let f = b.step(&mut soc, net_kw, dt_s);
            let hours = dt_s / 3600.0;
            prop_assert!(soc >= min - 1e-9 && soc <= capacity + 1e-9, "soc {soc} outside [{min}, {capacity}]");
            prop_assert!((soc - before - f.stored_kwh + f.drawn_kwh).abs() < 1e-9 * capacity.max(1.0));
            prop_assert!((f.stored_kwh - f.charged_kwh * eta.sqrt()).abs() < 1e-9 * capacity.max(1.0));
            prop_assert!((f.discharged_kwh - f.drawn_kwh * eta.sqrt()).abs() < 1e-9 * capacity.max(1.0));
            prop_assert!(f.charged_kwh <= charge.min(net_kw.max(0.0)) * hours + 1e-9);
            prop_assert!(f.discharged_kwh <= discharge.min((-net_kw).max(0.0)) * hours + 1e-9);
        }
    }
}
