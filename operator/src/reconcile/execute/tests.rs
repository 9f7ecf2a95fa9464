//! The executor's pure parts: which pods a job owns, what a pass must create and bind.

use super::*;

#[test]
fn pods_are_found_by_their_controller_owner() {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "x-0", "ownerReferences": [
            {"apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob", "name": "x", "uid": "u1", "controller": true}
        ]}
    }))
    .unwrap();
    assert!(owned_by(&pod, Some("u1")));
    assert!(!owned_by(&pod, Some("u2")));
    assert!(!owned_by(&pod, None));
}

fn gang(yaml: &str) -> Gang {
    serde_yaml_ng::from_str(yaml).unwrap()
}

#[test]
fn a_pass_creates_the_missing_pods_and_binds_the_unbound_ones() {
    let nodes = ["n1".to_owned(), "n2".to_owned(), "n3".to_owned()];
    let none = Bindings::default();
    let new = gang_work("j", &Gang::default(), &nodes, &none);
    assert_eq!(new.to_create.len(), 3, "a new gang: every pod");
    assert!(new.to_bind.is_empty());
    let starting = gang("replicas: [{name: j-0, node: n1}, {name: j-1, uid: u1}, null]");
    assert_eq!(
        gang_work("j", &starting, &nodes, &none),
        GangWork {
            to_bind: vec![ToBind {
                name: "j-1".into(),
                node: "n2".into(),
                uid: Some("u1".into()),
            }],
            to_create: vec![(2, "j-2".into(), "n3".into())],
        }
    );
    // Every pod exists: nothing to create, so the pass applies no Service either.
    let created =
        gang("replicas: [{name: j-0, node: n1}, {name: j-1, node: n2}, {name: j-2, uid: u2}]");
    let work = gang_work("j", &created, &nodes, &none);
    assert!(work.to_create.is_empty());
    assert_eq!(work.to_bind.len(), 1);
    assert_eq!(work.to_bind[0].name, "j-2");
}

#[test]
fn a_pod_bound_by_an_earlier_pass_is_not_bound_again_while_the_cache_lags() {
    let nodes = ["n1".to_owned()];
    let bindings = Bindings::default();
    bindings.remember("u1");
    // The cache shows the pod, not yet its binding.
    let lagging = gang("replicas: [{name: j-0, uid: u1}]");
    assert_eq!(
        gang_work("j", &lagging, &nodes, &bindings),
        GangWork::default()
    );
    // The same name, created again: another pod, bound anew.
    let recreated = gang("replicas: [{name: j-0, uid: u2}]");
    assert_eq!(
        gang_work("j", &recreated, &nodes, &bindings).to_bind.len(),
        1
    );
    // The cache caught up: the binding is forgotten.
    let bound = gang("replicas: [{name: j-0, node: n1, uid: u1}]");
    assert_eq!(
        gang_work("j", &bound, &nodes, &bindings),
        GangWork::default()
    );
    assert!(bindings.is_empty());
}

#[test]
fn a_deleted_jobs_pods_are_listed_by_its_name_unless_no_label_can_hold_it() {
    assert_eq!(
        owned_pods_selector("llama"),
        "app.kubernetes.io/managed-by=verdant,verdant.dev/job-name=llama"
    );
    let long = "a".repeat(64);
    assert_eq!(
        owned_pods_selector(&long),
        "app.kubernetes.io/managed-by=verdant"
    );
}
