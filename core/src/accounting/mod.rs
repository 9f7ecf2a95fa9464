//! Energy accounting: who used how much energy, and how much of it was renewable.
//!
//! The same code bills live jobs (from agent reports) and simulated ones, so the operator
//! and the simulator can never disagree. Pure: windows and energies in, ledgers out.
//!
//! # The rules, per site and per window
//! - IT load (W) = measured GPU power + per-node base power; facility load = IT load × PUE.
//! - Renewable share of the window = min(1, (renewable supply + battery discharge) /
//!   facility load); 1 when the load is zero. Batteries charge only from renewable surplus
//!   (`energy::storage`), so what they deliver is renewable; they discharge only into a
//!   deficit (supply below load), so supply + discharge never exceeds the load and no
//!   energy is counted twice. (A battery charged from the grid would have to be billed as
//!   grid; Verdant's model never charges from the grid.)
//! - Per job: energy = the energy of its GPUs over the window (from the energy counters),
//!   renewable energy = energy × share, grid energy = the rest, CO₂ = grid energy × the
//!   site's grid carbon intensity.
//!
//! Energies are carried in joules (watt-seconds) so sums stay exact to the watt-second.
//! A node's report window is billed to its jobs by [`bill_jobs`].

mod jobs;

pub use jobs::{GpuDraw, JobBill, JobRef, WindowBill, bill_jobs};

use serde::{Deserialize, Serialize};

/// Joules in a kWh.
pub const J_PER_KWH: f64 = 3.6e6;

/// One accounting window at one site.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteWindow {
    /// Mean measured GPU power of all GPUs at the site over the window, in W.
    pub gpu_power_w: f64,
    /// Base power of the site's nodes (CPUs, fans, NICs…), in W.
    pub base_power_w: f64,
    /// Power usage effectiveness (facility / IT), at least 1.
    pub pue: f64,
    /// Mean renewable supply over the window, in W.
    pub renewable_supply_w: f64,
    /// Mean power the site's batteries delivered over the window, in W (renewable: they
    /// charge from renewable surplus only). Counted only up to the deficit.
    #[serde(default)]
    pub storage_discharge_w: f64,
    /// Grid carbon intensity, gCO₂/kWh.
    pub grid_carbon_g_per_kwh: f64,
}

impl SiteWindow {
    /// Facility load in W: (GPU + base) × PUE.
    pub fn facility_load_w(&self) -> f64 {
        sanitize(self.gpu_power_w + self.base_power_w) * self.pue.max(1.0)
    }

    /// The renewable share of every joule drawn in this window: min(1, supply / load).
    pub fn renewable_share(&self) -> f64 {
        let load = self.facility_load_w();
        if load <= 0.0 {
            return 1.0;
        }
        (self.renewable_w() / load).clamp(0.0, 1.0)
    }

    /// Renewable power serving the load: the supply, plus the batteries' discharge up to
    /// what the supply leaves uncovered.
    pub fn renewable_w(&self) -> f64 {
        let supply = sanitize(self.renewable_supply_w).max(0.0);
        let deficit = (self.facility_load_w() - supply).max(0.0);
        supply + sanitize(self.storage_discharge_w).clamp(0.0, deficit)
    }

    /// Renewable supply minus facility load, in kW (negative: the grid fills the gap).
    pub fn headroom_kw(&self) -> f64 {
        (sanitize(self.renewable_supply_w) - self.facility_load_w()) / 1000.0
    }

    /// Bills `energy_j` joules drawn during this window.
    pub fn bill(&self, energy_j: f64) -> Ledger {
        let energy_j = sanitize(energy_j);
        let renewable_j = energy_j * self.renewable_share();
        let grid_j = energy_j - renewable_j;
        Ledger {
            energy_j,
            renewable_j,
            grid_j,
            co2_g: grid_j / J_PER_KWH * sanitize(self.grid_carbon_g_per_kwh),
        }
    }
}

/// Energy billed to a job (or a namespace, or a site), summed over windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Energy drawn, J.
    pub energy_j: f64,
    /// Of it, covered by renewables, J.
    pub renewable_j: f64,
    /// Of it, drawn from the grid, J.
    pub grid_j: f64,
    /// CO₂ emitted for the grid part, g.
    pub co2_g: f64,
}

impl Ledger {
    /// Adds another ledger.
    pub fn add(&mut self, other: &Ledger) {
        self.energy_j += other.energy_j;
        self.renewable_j += other.renewable_j;
        self.grid_j += other.grid_j;
        self.co2_g += other.co2_g;
    }

    /// Energy in kWh.
    pub fn energy_kwh(&self) -> f64 {
        self.energy_j / J_PER_KWH
    }

    /// Renewable energy in kWh.
    pub fn renewable_kwh(&self) -> f64 {
        self.renewable_j / J_PER_KWH
    }

    /// Grid energy in kWh.
    pub fn grid_kwh(&self) -> f64 {
        self.grid_j / J_PER_KWH
    }

    /// Renewable share of the energy, 0..=1 (0 when nothing was drawn).
    pub fn renewable_fraction(&self) -> f64 {
        if self.energy_j > 0.0 {
            (self.renewable_j / self.energy_j).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

impl std::ops::AddAssign<&Ledger> for Ledger {
    fn add_assign(&mut self, other: &Ledger) {
        self.add(other);
    }
}

/// Energy in joules of a constant power over a duration.
pub fn energy_j(power_w: f64, duration_s: f64) -> f64 {
    sanitize(power_w) * sanitize(duration_s)
}

/// Energy from two readings of a GPU's total-energy counter (mJ). A counter that went
/// backwards (driver reload, GPU reset) restarted from zero: the window's energy is then
/// the new reading, and `reset` is reported so callers can log it.
pub fn counter_delta_j(previous_mj: u64, current_mj: u64) -> CounterDelta {
    if current_mj >= previous_mj {
        CounterDelta {
            energy_j: (current_mj - previous_mj) as f64 / 1000.0,
            reset: false,
        }
    } else {
        CounterDelta {
            energy_j: current_mj as f64 / 1000.0,
            reset: true,
        }
    }
}

/// The result of [`counter_delta_j`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CounterDelta {
    /// Energy since the previous reading, J.
    pub energy_j: f64,
    /// Whether the counter went backwards.
    pub reset: bool,
}

fn sanitize(value: f64) -> f64 {
    if value.is_finite() {
        value.max(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(gpu_w: f64, supply_w: f64) -> SiteWindow {
        SiteWindow {
            gpu_power_w: gpu_w,
            base_power_w: 500.0,
            pue: 1.2,
            renewable_supply_w: supply_w,
            storage_discharge_w: 0.0,
            grid_carbon_g_per_kwh: 400.0,
        }
    }

    #[test]
    fn share_is_supply_over_facility_load_capped_at_one() {
        // IT 4,500 W × 1.2 = 5,400 W facility; 2,700 W of sun covers half.
        let w = window(4000.0, 2700.0);
        assert_eq!(w.facility_load_w(), 5400.0);
        assert_eq!(w.renewable_share(), 0.5);
        assert_eq!(w.headroom_kw(), -2.7);
        assert_eq!(window(4000.0, 10_000.0).renewable_share(), 1.0);
        assert_eq!(
            window(0.0, 0.0).renewable_share(),
            0.0,
            "base load alone, no sun"
        );
        let idle = SiteWindow {
            base_power_w: 0.0,
            ..window(0.0, 0.0)
        };
        assert_eq!(
            idle.renewable_share(),
            1.0,
            "nothing drawn: nothing from the grid"
        );
    }

    #[test]
    fn battery_discharge_is_renewable_up_to_the_deficit_only() {
        // 5,400 W facility load, 2,700 W of sun: 1,350 W from the battery covers 3/4.
        let w = SiteWindow {
            storage_discharge_w: 1350.0,
            ..window(4000.0, 2700.0)
        };
        assert_eq!(w.renewable_share(), 0.75);
        // More discharge than the deficit is not counted twice.
        let w = SiteWindow {
            storage_discharge_w: 9000.0,
            ..window(4000.0, 2700.0)
        };
        assert_eq!(w.renewable_w(), 5400.0);
        assert_eq!(w.renewable_share(), 1.0);
        // With a surplus the battery charges and delivers nothing to bill.
        let w = SiteWindow {
            storage_discharge_w: 1000.0,
            ..window(4000.0, 6000.0)
        };
        assert_eq!(w.renewable_w(), 6000.0);
    }

    #[test]
    fn bill_splits_to_the_watt_second() {
        // A job drew 700 W for 10 s on a site half covered by renewables.
        let ledger = window(4000.0, 2700.0).bill(energy_j(700.0, 10.0));
        assert_eq!(ledger.energy_j, 7000.0);
        assert_eq!(ledger.renewable_j, 3500.0);
        assert_eq!(ledger.grid_j, 3500.0);
        // 3,500 J = 0.000972… kWh × 400 g/kWh
        assert!((ledger.co2_g - 3500.0 / 3.6e6 * 400.0).abs() < 1e-12);
        let mut total = Ledger::default();
        total += &ledger;
        total += &window(4000.0, 10_000.0).bill(7000.0);
        assert_eq!(total.energy_j, 14_000.0);
        assert_eq!(total.renewable_j, 10_500.0);
        assert_eq!(total.renewable_fraction(), 0.75);
    }

    #[test]
    fn nonsense_inputs_bill_nothing_rather_than_negative_energy() {
        let ledger = window(f64::NAN, -5.0).bill(-100.0);
        assert_eq!(ledger, Ledger::default());
    }

    #[test]
    fn counter_going_backwards_is_a_reset() {
        assert_eq!(
            counter_delta_j(1_000, 11_000),
            CounterDelta {
                energy_j: 10.0,
                reset: false
            }
        );
        assert_eq!(
            counter_delta_j(50_000, 2_000),
            CounterDelta {
                energy_j: 2.0,
                reset: true
            }
        );
    }
}
