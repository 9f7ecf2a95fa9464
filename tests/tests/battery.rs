//! Site batteries (`EnergySite.spec.storage`) against a real kube-apiserver: bad storage
//! is rejected naming the field, and the EnergySite controller shows each battery's state
//! of charge in status and in its metrics, rising on a renewable surplus and falling when
//! the Static supply is patched below the load.

use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use verdant_crds::{EnergySite, EnergySiteStatus};
use verdant_tests::operator::metric_value;
use verdant_tests::{ControlPlane, Scenario, create_gpu_nodes, sites, wait};

fn site_with_storage(name: &str, constant_kw: f64, storage: Value) -> Value {
    let mut site = sites::static_site(name, constant_kw);
    site["spec"]["storage"] = storage;
    site
}

fn battery(name: &str) -> Value {
    json!({"name": name, "capacityKwh": 10.0, "maxChargeKw": 50.0, "maxDischargeKw": 50.0,
           "roundTripEfficiencyPercent": 90.0, "minStateOfChargePercent": 10.0})
}

fn with(mut b: Value, field: &str, value: Value) -> Value {
    b[field] = value;
    b
}

#[tokio::test]
async fn bad_storage_is_rejected_naming_the_field() -> anyhow::Result<()> {
    let client = ControlPlane::shared().client().await?;
    let api: Api<EnergySite> = Api::all(client);
    let cases = [
        (
            "zero capacity",
            json!([with(battery("a"), "capacityKwh", json!(0.0))]),
            "spec.storage[].capacityKwh must be greater than 0",
        ),
        (
            "zero efficiency",
            json!([with(battery("a"), "roundTripEfficiencyPercent", json!(0.0))]),
            "spec.storage[].roundTripEfficiencyPercent must be greater than 0 and at most 100",
        ),
        (
            "efficiency over 100",
            json!([with(
                battery("a"),
                "roundTripEfficiencyPercent",
                json!(101.0)
            )]),
            "roundTripEfficiencyPercent",
        ),
        (
            "floor at 100",
            json!([with(battery("a"), "minStateOfChargePercent", json!(100.0))]),
            "spec.storage[].minStateOfChargePercent must be at least 0 and less than 100",
        ),
        (
            "negative charge power",
            json!([with(battery("a"), "maxChargeKw", json!(-1.0))]),
            "maxChargeKw",
        ),
        (
            "two batteries named alike",
            json!([battery("a"), battery("a")]),
            "spec.storage[].name must be unique within the site",
        ),
    ];
    let mut failures = Vec::new();
    for (what, storage, expected) in cases {
        let site: EnergySite =
            serde_json::from_value(site_with_storage("battery-bad", 10.0, storage))?;
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        match api.create(&dry_run, &site).await {
            Ok(_) => failures.push(format!("{what}: accepted, expected {expected:?}")),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expected) => {}
            Err(other) => failures.push(format!("{what}: expected 422 {expected:?}, got {other}")),
        }
    }
    // A good one passes the same checks.
    let good: EnergySite = serde_json::from_value(site_with_storage(
        "battery-good",
        10.0,
        json!([battery("a"), battery("b")]),
    ))?;
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    if let Err(e) = api.create(&dry_run, &good).await {
        failures.push(format!("two good batteries rejected: {e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

fn soc_kwh(status: &EnergySiteStatus) -> Option<f64> {
    status.storage.first().map(|b| b.state_of_charge_kwh)
}

#[tokio::test]
async fn the_state_of_charge_rises_on_surplus_and_falls_when_the_supply_drops() -> anyhow::Result<()>
{
    let mut s = Scenario::start("battery", env!("CARGO_BIN_EXE_e2e-operator"))
        .await?
        .with_operator_flags(&["--site-status-seconds", "1"]);
    let name = "battery-site";
    s.create_site(site_with_storage(name, 100.0, json!([battery("bess")])))
        .await?;
    // One GPU node: its base load (400 W × PUE 1.2) is what the battery covers later.
    create_gpu_nodes(&s.client, "battery-gpu", name, 1, 8).await?;
    s.start_operator(&[])?;

    // 100 kW of sun and 0.48 kW of load: the battery charges at its 50 kW limit from its
    // 1 kWh floor.
    let charging = s
        .wait_site(
            name,
            "the battery charging above its floor",
            60,
            |st| match st.storage.first() {
                Some(b) if b.name == "bess" && b.state_of_charge_kwh > 1.05 => Ok(()),
                other => Err(format!("storage {other:?}")),
            },
        )
        .await?;
    let b = &charging.storage[0];
    assert!(
        (b.state_of_charge_percent - b.state_of_charge_kwh * 10.0).abs() < 0.11,
        "{b:?}"
    );
    let series =
        format!("verdant_site_battery_state_of_charge_ratio{{site=\"{name}\",battery=\"bess\"}}");
    let op = s.operator();
    wait::until(
        "the state-of-charge metric",
        std::time::Duration::from_secs(30),
        || async {
            let v = metric_value(&op.metrics().await?, &series);
            Ok(match v {
                Some(r) if r > 0.1 && r <= 1.0 => Ok(()),
                other => Err(format!("{series} = {other:?}")),
            })
        },
    )
    .await?;

    // No sun: the node's load now comes from the battery.
    s.set_site_supply(name, json!({"constantKw": 0.0})).await?;
    let peak = s
        .wait_site(name, "the supply of 0 kW seen", 30, |st| {
            match st.renewable_kw.as_ref().map(|r| r.total) {
                Some(0.0) => Ok(()),
                other => Err(format!("renewableKw {other:?}")),
            }
        })
        .await?;
    let peak_kwh = soc_kwh(&peak).unwrap_or(0.0);
    s.wait_site(name, "the battery discharging", 60, |st| {
        match soc_kwh(st) {
            Some(kwh) if kwh < peak_kwh => Ok(()),
            other => Err(format!("stateOfChargeKwh {other:?}, was {peak_kwh}")),
        }
    })
    .await?;
    Ok(())
}
