//! EnergySite objects the tests create.

use serde_json::{Value, json};

/// An EnergySite named `name` that feeds the nodes labelled `verdant.dev/site=<name>`
/// (as `create_gpu_nodes` labels them) with a constant `constant_kw` of renewable power,
/// at Greensboro with a PUE of 1.2.
pub fn static_site(name: &str, constant_kw: f64) -> Value {
    json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "EnergySite",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": name}},
            "location": {"latitude": 36.1, "longitude": -79.9},
            "pue": 1.2,
            "forecast": {"provider": "Static", "static": {"constantKw": constant_kw}}
        }
    })
}
