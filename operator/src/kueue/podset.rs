//! An admission's flavors into the job's pod template, and back (jobframework's
//! `RunWithPodSetsInfo` and `RestorePodSetsInfo` for the node selector and tolerations).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, Toleration};
use serde_json::{Value, json};

/// What the admitted flavors ask of the pods.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSetInfo {
    /// The flavors' `spec.nodeLabels`.
    pub node_selector: BTreeMap<String, String>,
    /// The flavors' `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
}

/// The node labels and tolerations of the admitted ResourceFlavors (`flavors`, the
/// objects as JSON). Two flavors asking different values of one label cannot both hold:
/// an error, as in jobframework.
pub fn from_flavors(flavors: &[Value]) -> Result<PodSetInfo, String> {
    let mut info = PodSetInfo::default();
    for flavor in flavors {
        let name = flavor
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        if let Some(labels) = flavor
            .pointer("/spec/nodeLabels")
            .and_then(Value::as_object)
        {
            for (key, value) in labels {
                let value = value.as_str().unwrap_or_default().to_owned();
                match info.node_selector.get(key) {
                    Some(old) if *old != value => {
                        return Err(format!(
                            "flavor {name} asks {key}={value}, another flavor {key}={old}"
                        ));
                    }
                    _ => info.node_selector.insert(key.clone(), value),
                };
            }
        }
        let tolerations: Vec<Toleration> = flavor
            .pointer("/spec/tolerations")
            .map(|t| serde_json::from_value(t.clone()))
            .transpose()
            .map_err(|e| format!("flavor {name}: tolerations: {e}"))?
            .unwrap_or_default();
        for toleration in tolerations {
            if !info.tolerations.contains(&toleration) {
                info.tolerations.push(toleration);
            }
        }
    }
    Ok(info)
}

/// The template's node selector and tolerations with `info` merged in: the flavors' labels
/// must not contradict the template's own.
pub fn merged(spec: &PodSpec, info: &PodSetInfo) -> Result<PodSetInfo, String> {
    let mut node_selector = spec.node_selector.clone().unwrap_or_default();
    for (key, value) in &info.node_selector {
        match node_selector.get(key) {
            Some(old) if old != value => {
                return Err(format!(
                    "the admitted flavor's node label {key}={value} conflicts with the template's {key}={old}"
                ));
            }
            _ => node_selector.insert(key.clone(), value.clone()),
        };
    }
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    for toleration in &info.tolerations {
        if !tolerations.contains(toleration) {
            tolerations.push(toleration.clone());
        }
    }
    Ok(PodSetInfo {
        node_selector,
        tolerations,
    })
}

/// A JSON merge patch of the job that sets its template's node selector and tolerations
/// to exactly `target`, from `current` (labels no longer wanted are removed).
pub fn template_patch(current: &PodSpec, target: &PodSetInfo) -> Value {
    let mut selector = serde_json::Map::new();
    for key in current.node_selector.iter().flatten().map(|(k, _)| k) {
        if !target.node_selector.contains_key(key) {
            selector.insert(key.clone(), Value::Null);
        }
    }
    for (key, value) in &target.node_selector {
        selector.insert(key.clone(), json!(value));
    }
    let tolerations = match target.tolerations.is_empty() {
        true => Value::Null,
        false => json!(target.tolerations),
    };
    json!({"spec": {"template": {"spec": {
        "nodeSelector": if selector.is_empty() { Value::Null } else { Value::Object(selector) },
        "tolerations": tolerations,
    }}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn flavors_add_their_node_labels_and_tolerations_to_the_template() {
        let flavors = [
            flavor(
                "green",
                json!({"nodeLabels": {"pool": "green"}, "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}),
            ),
            flavor("plain", json!({})),
        ];
        let info = from_flavors(&flavors).unwrap();
        assert_eq!(
            info.node_selector,
            BTreeMap::from([("pool".into(), "green".into())])
        );
        assert_eq!(info.tolerations.len(), 1);
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [], "nodeSelector": {"zone": "a"},
        }))
        .unwrap();
        let target = merged(&spec, &info).unwrap();
        assert_eq!(target.node_selector.len(), 2);
        let patch = template_patch(&spec, &target);
        assert_eq!(
            patch["spec"]["template"]["spec"]["nodeSelector"],
            json!({"pool": "green", "zone": "a"})
        );
        assert_eq!(
            patch["spec"]["template"]["spec"]["tolerations"][0]["key"],
            "gpu"
        );
    }

    #[test]
    fn contradicting_labels_are_an_error_and_a_restore_removes_what_was_added() {
        let flavors = [
            flavor("a", json!({"nodeLabels": {"pool": "a"}})),
            flavor("b", json!({"nodeLabels": {"pool": "b"}})),
        ];
        assert!(from_flavors(&flavors).is_err());
        let spec: PodSpec =
            serde_json::from_value(json!({"containers": [], "nodeSelector": {"pool": "x"}}))
                .unwrap();
        assert!(merged(&spec, &from_flavors(&flavors[..1]).unwrap()).is_err());
        // Restoring the original (no selector) removes the flavor's label.
        let started: PodSpec =
            serde_json::from_value(json!({"containers": [], "nodeSelector": {"pool": "a"}}))
                .unwrap();
        let patch = template_patch(&started, &PodSetInfo::default());
        assert_eq!(
            patch["spec"]["template"]["spec"]["nodeSelector"],
            json!({"pool": null})
        );
        assert_eq!(
            patch["spec"]["template"]["spec"]["tolerations"],
            Value::Null
        );
    }
}
