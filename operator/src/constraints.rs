//! Which nodes a job's pods may use: the template's nodeSelector, required node affinity,
//! and tolerations against the node's taints, as kube-scheduler reads them. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// Whether a pod with `spec` may run on `node` (cordoning is checked separately).
pub fn node_fits(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    selector_matches(spec.node_selector.as_ref(), labels)
        && affinity_matches(spec, labels, name)
        && taints_tolerated(
            node.spec
                .as_ref()
                .and_then(|s| s.taints.as_deref())
                .unwrap_or_default(),
            spec.tolerations.as_deref().unwrap_or_default(),
        )
}

/// Whether the node is cordoned (`spec.unschedulable`).
pub fn node_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

fn selector_matches(
    selector: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn affinity_matches(spec: &PodSpec, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let Some(required) = required else {
        return true;
    };
    // Terms are ORed; an empty list matches nothing, as in kube-scheduler.
    required
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, labels, node_name))
}

fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(node_name);
            requirement_matches(r, value)
        })
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let as_int = |s: &str| s.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(as_int), values.first().and_then(|x| as_int(x))), (Some(v), Some(x)) if v > x)
        }
        "Lt" => {
            matches!((value.and_then(as_int), values.first().and_then(|x| as_int(x))), (Some(v), Some(x)) if v < x)
        }
        _ => false,
    }
}

fn taints_tolerated(taints: &[Taint], tolerations: &[Toleration]) -> bool {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = toleration.key.as_deref().unwrap_or_default();
    let exists = toleration.operator.as_deref() == Some("Exists");
    let key_ok = (key.is_empty() && exists) || key == taint.key;
    let value_ok = exists
        || toleration.value.as_deref().unwrap_or_default()
            == taint.value.as_deref().unwrap_or_default();
    effect_ok && key_ok && value_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(yaml: &str) -> Node {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn spec(yaml: &str) -> PodSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const NODE: &str = r#"
metadata: {name: gpu-1, labels: {zone: a, gen: "5", verdant.dev/site: solar-a}}
spec:
  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}, {key: soft, effect: PreferNoSchedule}]
"#;

    #[test]
    fn taints_need_a_matching_toleration() {
        let n = node(NODE);
        assert!(!node_fits(&spec("containers: []"), &n));
        assert!(node_fits(
            &spec("containers: []\ntolerations: [{key: nvidia.com/gpu, operator: Exists}]"),
            &n
        ));
        assert!(node_fits(
            &spec(
                "containers: []\ntolerations: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]"
            ),
            &n
        ));
        assert!(!node_fits(
            &spec("containers: []\ntolerations: [{key: nvidia.com/gpu, value: absent}]"),
            &n
        ));
        assert!(
            node_fits(
                &spec("containers: []\ntolerations: [{operator: Exists}]"),
                &n
            ),
            "empty key + Exists tolerates all"
        );
    }

    #[test]
    fn node_selector_and_required_affinity_filter_nodes() {
        let n = node(NODE);
        let tolerate = "tolerations: [{operator: Exists}]\ncontainers: []\n";
        assert!(node_fits(
            &spec(&format!("{tolerate}nodeSelector: {{zone: a}}")),
            &n
        ));
        assert!(!node_fits(
            &spec(&format!("{tolerate}nodeSelector: {{zone: b}}")),
            &n
        ));
        let affinity = |expr: &str| {
            spec(&format!(
                "{tolerate}affinity: {{nodeAffinity: {{requiredDuringSchedulingIgnoredDuringExecution: {{nodeSelectorTerms: [{expr}]}}}}}}"
            ))
        };
        assert!(node_fits(
            &affinity("{matchExpressions: [{key: zone, operator: In, values: [a, c]}]}"),
            &n
        ));
        assert!(!node_fits(
            &affinity("{matchExpressions: [{key: zone, operator: NotIn, values: [a]}]}"),
            &n
        ));
        assert!(node_fits(
            &affinity("{matchExpressions: [{key: gen, operator: Gt, values: ['4']}]}"),
            &n
        ));
        assert!(!node_fits(
            &affinity("{matchExpressions: [{key: gen, operator: Lt, values: ['4']}]}"),
            &n
        ));
        assert!(node_fits(
            &affinity("{matchExpressions: [{key: missing, operator: DoesNotExist}]}"),
            &n
        ));
        assert!(node_fits(
            &affinity("{matchFields: [{key: metadata.name, operator: In, values: [gpu-1]}]}"),
            &n
        ));
        assert!(
            node_fits(
                &affinity(
                    "{matchExpressions: [{key: zone, operator: In, values: [b]}]}, {matchExpressions: [{key: gen, operator: Exists}]}"
                ),
                &n
            ),
            "terms are ORed"
        );
    }

    #[test]
    fn cordoned_nodes_are_seen() {
        assert!(node_cordoned(&node(
            "metadata: {name: x}\nspec: {unschedulable: true}"
        )));
        assert!(!node_cordoned(&node("metadata: {name: x}")));
    }
}
