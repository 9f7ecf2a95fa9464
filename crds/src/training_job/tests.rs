use kube::CustomResourceExt;

use super::*;

#[test]
fn the_name_rules_leave_room_for_the_last_pod_name() {
    let crd = serde_json::to_value(TrainingJob::crd()).unwrap();
    let rules =
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"];
    let rules: Vec<&str> = rules
        .as_array()
        .expect("root rules")
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.contains(&format!("size(self.metadata.name) <= {MAX_NAME_LENGTH}"))),
        "{rules:?}"
    );
    let longest_pod = format!("{}-1023", "a".repeat(MAX_NAME_LENGTH));
    assert_eq!(longest_pod.len(), 63, "a pod hostname is a DNS label");
}

#[test]
fn elastic_bounds_are_checked_and_the_size_is_a_column() {
    let crd = serde_json::to_value(TrainingJob::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    let rules = version["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
        .as_array()
        .unwrap();
    for field in ["spec.elastic.minReplicas", "spec.elastic.maxReplicas"] {
        assert!(
            rules
                .iter()
                .any(|r| r["message"].as_str().unwrap().starts_with(field)
                    && r["fieldPath"] == format!(".{field}")),
            "a rule naming {field}: {rules:?}"
        );
    }
    let columns = version["additionalPrinterColumns"].as_array().unwrap();
    assert!(
        columns
            .iter()
            .any(|c| c["name"] == "Size" && c["jsonPath"] == ".status.size")
    );
    let elastic = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["elastic"]
        ["properties"];
    assert_eq!(elastic["minReplicas"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(elastic["maxReplicas"]["maximum"].as_f64(), Some(1024.0));
}

#[test]
fn phase_names_are_the_apis() {
    for phase in JobPhase::ALL {
        assert_eq!(
            serde_json::to_value(phase).unwrap(),
            serde_json::json!(phase.as_str())
        );
    }
}

#[test]
fn kubectl_get_shows_the_reason() {
    let crd = serde_json::to_value(TrainingJob::crd()).unwrap();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap();
    let reason = columns
        .iter()
        .find(|c| c["name"] == "Reason")
        .expect("a Reason column");
    assert_eq!(reason["jsonPath"], ".status.reason");
    assert_eq!(
        reason.get("priority").and_then(|p| p.as_i64()).unwrap_or(0),
        0
    );
}

#[test]
fn managed_by_is_immutable_and_verdant_by_default() {
    let crd = serde_json::to_value(TrainingJob::crd()).unwrap();
    let rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
        .as_array()
        .unwrap();
    let rule = rules
        .iter()
        .find(|r| r["fieldPath"] == ".spec.managedBy")
        .expect("a rule naming spec.managedBy");
    assert!(rule["rule"].as_str().unwrap().contains("oldSelf"), "{rule}");
    let mut spec: TrainingJobSpec = serde_json::from_value(serde_json::json!({
        "replicas": 1, "gpusPerReplica": 1, "template": {},
    }))
    .unwrap();
    assert!(spec.managed_by_verdant());
    spec.managed_by = Some(MANAGED_BY_VERDANT.into());
    assert!(spec.managed_by_verdant());
    spec.managed_by = Some("kueue.x-k8s.io/multikueue".into());
    assert!(!spec.managed_by_verdant());
}
