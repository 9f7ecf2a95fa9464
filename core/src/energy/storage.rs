//! Site batteries: what they take from a surplus, give into a deficit, and hold.
//!
//! # Expected flow
//! A site's batteries are stepped over intervals of constant net power (renewable supply
//! minus facility load, in kW): a surplus charges them, a deficit discharges them.
//! [`Storage::step`] is the one step function; the operator's EnergySite controller (state
//! of charge in status), the placement engine (what the batteries can deliver over a
//! job's window) and the simulator all call it.
//!
//! # Conventions
//! - The state of charge is the energy stored, in kWh, on the battery side of the
//!   converter.
//! - The round-trip efficiency η is split evenly: charging stores √η of the kWh taken
//!   from the surplus, discharging delivers √η of the kWh taken from the store. A full
//!   round trip returns η.
//! - Charging is limited by `max_charge_kw` (taken from the surplus) and the capacity;
//!   discharging by `max_discharge_kw` (delivered) and the floor `min_soc_fraction ×
//!   capacity`. Within an interval power is constant until a limit is reached, then the
//!   battery stops: the step is exact, not sampled.
//! - Several batteries: a surplus charges them, and a deficit draws on them, in their
//!   order (the spec's order).
//! - Batteries charge only from renewable surplus, never from the grid.
//!
//! # Guarantees
//! Energy is conserved: taken from the surplus = stored + charge loss; taken from the
//! store = delivered + discharge loss. The state of charge stays within
//! `[min_soc_fraction × capacity, capacity]` once it is inside it; a state given below
//! the floor is only raised (by charging), one above the capacity is clamped.

use serde::{Deserialize, Serialize};

/// One battery as the models see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Battery {
    pub name: String,
    /// Usable capacity, kWh (> 0).
    pub capacity_kwh: f64,
    /// Most power taken from a surplus, kW.
    pub max_charge_kw: f64,
    /// Most power delivered into a deficit, kW.
    pub max_discharge_kw: f64,
    /// Round-trip efficiency, a fraction in (0, 1].
    pub round_trip_efficiency: f64,
    /// The floor of the state of charge, a fraction of the capacity in [0, 1).
    pub min_soc_fraction: f64,
}

impl Battery {
    /// The share of charging power that is stored: √η.
    pub fn charge_efficiency(&self) -> f64 {
        sane(self.round_trip_efficiency).clamp(1e-6, 1.0).sqrt()
    }

    /// The share of the energy taken from the store that is delivered: √η.
    pub fn discharge_efficiency(&self) -> f64 {
        self.charge_efficiency()
    }

    pub fn capacity(&self) -> f64 {
        sane(self.capacity_kwh).max(0.0)
    }

    /// The floor of the state of charge, kWh.
    pub fn min_soc_kwh(&self) -> f64 {
        self.capacity() * sane(self.min_soc_fraction).clamp(0.0, 1.0)
    }

    /// Energy it could deliver from `soc_kwh` down to the floor, kWh.
    pub fn deliverable_kwh(&self, soc_kwh: f64) -> f64 {
        (sane(soc_kwh).min(self.capacity()) - self.min_soc_kwh()).max(0.0)
            * self.discharge_efficiency()
    }

    /// One interval of `dt_s` seconds with `net_kw` (surplus > 0, deficit < 0) offered to
    /// this battery. Returns the flow; `soc_kwh` is updated.
    pub fn step(&self, soc_kwh: &mut f64, net_kw: f64, dt_s: f64) -> Flow {
        let hours = sane(dt_s).max(0.0) / 3600.0;
        let net_kw = sane(net_kw);
        let cap = self.capacity();
        let soc = sane(*soc_kwh).min(cap);
        let mut flow = Flow::default();
        if net_kw > 0.0 {
            let eta = self.charge_efficiency();
            let room_kwh = (cap - soc).max(0.0);
            let taken = (net_kw.min(sane(self.max_charge_kw).max(0.0)) * hours).min(room_kwh / eta);
            flow.charged_kwh = taken;
            flow.stored_kwh = taken * eta;
            *soc_kwh = (soc + flow.stored_kwh).min(cap);
        } else if net_kw < 0.0 {
            let eta = self.discharge_efficiency();
            let want = (-net_kw).min(sane(self.max_discharge_kw).max(0.0)) * hours;
            let delivered = want.min(self.deliverable_kwh(soc));
            flow.discharged_kwh = delivered;
            flow.drawn_kwh = delivered / eta;
            *soc_kwh = (soc - flow.drawn_kwh).max(self.min_soc_kwh().min(soc));
        } else {
            *soc_kwh = soc;
        }
        flow
    }
}

/// What one step moved, kWh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Taken from the renewable surplus.
    pub charged_kwh: f64,
    /// Of it, stored (the rest is charge loss).
    pub stored_kwh: f64,
    /// Delivered into the deficit.
    pub discharged_kwh: f64,
    /// Taken from the store for it (the rest is discharge loss).
    pub drawn_kwh: f64,
}

impl Flow {
    fn add(&mut self, other: Flow) {
        self.charged_kwh += other.charged_kwh;
        self.stored_kwh += other.stored_kwh;
        self.discharged_kwh += other.discharged_kwh;
        self.drawn_kwh += other.drawn_kwh;
    }
}

/// A battery with its state of charge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatteryState {
    pub battery: Battery,
    /// Energy stored now, kWh.
    pub soc_kwh: f64,
}

impl BatteryState {
    /// The state of charge as a fraction of the capacity.
    pub fn soc_fraction(&self) -> f64 {
        let cap = self.battery.capacity();
        if cap > 0.0 {
            (self.soc_kwh / cap).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A site's batteries with their states of charge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    pub batteries: Vec<BatteryState>,
}

impl Storage {
    pub fn new(batteries: Vec<BatteryState>) -> Self {
        Self { batteries }
    }

    pub fn is_empty(&self) -> bool {
        self.batteries.is_empty()
    }

    /// One interval of constant `net_kw` (supply − load) for all batteries, in order: the
    /// first takes what it can of a surplus (or gives what it can into a deficit), the
    /// next one the rest.
    pub fn step(&mut self, net_kw: f64, dt_s: f64) -> Flow {
        let mut total = Flow::default();
        let mut rest_kw = sane(net_kw);
        let hours = sane(dt_s).max(0.0) / 3600.0;
        for b in &mut self.batteries {
            if rest_kw == 0.0 || hours == 0.0 {
                break;
            }
            let flow = b.battery.step(&mut b.soc_kwh, rest_kw, dt_s);
            let moved_kw = if rest_kw > 0.0 {
                flow.charged_kwh / hours
            } else {
                -flow.discharged_kwh / hours
            };
            // A battery that filled or emptied within the interval took a mean power; the
            // rest of the interval's power is what the next battery sees on average.
            rest_kw -= moved_kw;
            if rest_kw.abs() < 1e-12 {
                rest_kw = 0.0;
            }
            total.add(flow);
        }
        total
    }

    /// Energy stored, kWh.
    pub fn soc_kwh(&self) -> f64 {
        self.batteries.iter().map(|b| b.soc_kwh).sum()
    }

    /// Energy the batteries could deliver now down to their floors, kWh.
    pub fn deliverable_kwh(&self) -> f64 {
        self.batteries
            .iter()
            .map(|b| b.battery.deliverable_kwh(b.soc_kwh))
            .sum()
    }

    /// Power the batteries with energy left could deliver now, kW.
    pub fn available_discharge_kw(&self) -> f64 {
        self.batteries
            .iter()
            .filter(|b| b.battery.deliverable_kwh(b.soc_kwh) > 1e-9)
            .map(|b| sane(b.battery.max_discharge_kw).max(0.0))
            .sum()
    }
}

fn sane(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

#[cfg(test)]
mod tests;
