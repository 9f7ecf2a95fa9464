//! `spec.storage` and `status.storage`: the site's batteries, and what Verdant estimates
//! they hold.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use verdant_core::energy::Battery;

/// A battery at the site. It charges only from renewable surplus (supply above the
/// facility load) and discharges into deficits; Verdant counts what it can deliver as
/// renewable headroom.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.capacityKwh > 0.0").message("spec.storage[].capacityKwh must be greater than 0").field_path(".capacityKwh"),
    validation = Rule::new("self.roundTripEfficiencyPercent > 0.0 && self.roundTripEfficiencyPercent <= 100.0").message("spec.storage[].roundTripEfficiencyPercent must be greater than 0 and at most 100").field_path(".roundTripEfficiencyPercent"),
    validation = Rule::new("self.minStateOfChargePercent >= 0.0 && self.minStateOfChargePercent < 100.0").message("spec.storage[].minStateOfChargePercent must be at least 0 and less than 100").field_path(".minStateOfChargePercent")
)]
pub struct StorageSpec {
    /// A name for the battery, unique within the site.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Usable energy capacity in kWh. Greater than 0.
    #[schemars(range(min = 0.0, max = 1.0e9))]
    pub capacity_kwh: f64,
    /// Most power the battery takes from a renewable surplus, in kW. At least 0.
    #[schemars(range(min = 0.0, max = 1.0e9))]
    pub max_charge_kw: f64,
    /// Most power the battery delivers into a deficit, in kW. At least 0.
    #[schemars(range(min = 0.0, max = 1.0e9))]
    pub max_discharge_kw: f64,
    /// Round-trip efficiency in percent: of 100 kWh taken from the surplus, this many come
    /// back out (losses split evenly between charging and discharging). Greater than 0 and
    /// at most 100; default 90.
    #[serde(default = "default_round_trip_efficiency_percent")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub round_trip_efficiency_percent: f64,
    /// The battery is never discharged below this share of its capacity, in percent. At
    /// least 0 and less than 100; default 10. Verdant also assumes it holds this much when
    /// it first sees the battery.
    #[serde(default = "default_min_state_of_charge_percent")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub min_state_of_charge_percent: f64,
}

fn default_round_trip_efficiency_percent() -> f64 {
    90.0
}

fn default_min_state_of_charge_percent() -> f64 {
    10.0
}

impl StorageSpec {
    /// The battery as the models see it.
    pub fn battery(&self) -> Battery {
        Battery {
            name: self.name.clone(),
            capacity_kwh: self.capacity_kwh,
            max_charge_kw: self.max_charge_kw,
            max_discharge_kw: self.max_discharge_kw,
            round_trip_efficiency: self.round_trip_efficiency_percent / 100.0,
            min_soc_fraction: self.min_state_of_charge_percent / 100.0,
        }
    }
}

/// What Verdant estimates a battery holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// The battery's name (`spec.storage[].name`).
    pub name: String,
    /// Energy stored, in kWh.
    pub state_of_charge_kwh: f64,
    /// Energy stored, in percent of the capacity.
    pub state_of_charge_percent: f64,
    /// When the estimate was made: the operator integrates the battery model over the
    /// site's renewable supply and facility load from this instant to the next estimate.
    pub time: Time,
}
