//! EnergySite objects the tests create, and what their status says.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use verdant_crds::{EnergySite, EnergySiteStatus};

/// An EnergySite named `name` that feeds the nodes labelled `verdant.dev/site=<name>`
/// (as `create_gpu_nodes` labels them) with a constant `constant_kw` of renewable power,
/// at Greensboro with a PUE of 1.2.
pub fn static_site(name: &str, constant_kw: f64) -> Value {
    static_forecast_site(name, json!({"constantKw": constant_kw}))
}

/// [`static_site`] with any `spec.forecast.static` (a constant, a profile, …).
pub fn static_forecast_site(name: &str, forecast_static: Value) -> Value {
    json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "EnergySite",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": name}},
            "location": {"latitude": 36.1, "longitude": -79.9},
            "pue": 1.2,
            "forecast": {"provider": "Static", "static": forecast_static}
        }
    })
}

/// Creates the EnergySite `site` (JSON, as a user writes it).
pub async fn create(client: &kube::Client, site: Value) -> anyhow::Result<()> {
    let site: EnergySite = serde_json::from_value(site)?;
    Api::<EnergySite>::all(client.clone())
        .create(&PostParams::default(), &site)
        .await?;
    Ok(())
}

/// The condition `type_` of a site's status.
pub fn condition<'a>(status: &'a EnergySiteStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` has status `value`; otherwise what it has.
pub fn condition_is(status: &EnergySiteStatus, type_: &str, value: &str) -> Result<(), String> {
    match condition(status, type_) {
        Some(c) if c.status == value => Ok(()),
        Some(c) => Err(format!(
            "{type_}={} ({}: {})",
            c.status, c.reason, c.message
        )),
        None => Err(format!("no {type_} condition yet; status: {status:?}")),
    }
}

/// The renewable power the site has now, kW (0 before the first forecast).
pub fn renewable_kw_now(status: &EnergySiteStatus) -> f64 {
    status.renewable_kw.as_ref().map_or(0.0, |r| r.total)
}
