//! The Verdant API against a real kube-apiserver: the CRDs install and become
//! Established, the documented examples apply, malformed objects are rejected with a
//! message naming the field, and `kubectl explain` shows the doc comments.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::time::Duration;
use verdant_crds::{EnergySite, GreenPolicy, TrainingJob};
use verdant_tests::{ControlPlane, TestNamespace, repo_root};

#[tokio::test]
async fn both_crds_become_established() -> anyhow::Result<()> {
    let client = ControlPlane::shared().client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for name in ["trainingjobs.verdant.dev", "energysites.verdant.dev"] {
        let crd = crds.get(name).await?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        let established = conditions.iter().find(|c| c.type_ == "Established");
        assert_eq!(
            established.map(|c| c.status.as_str()),
            Some("True"),
            "{name} is not Established: {conditions:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_documented_example_applies_and_round_trips() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "examples").await?;
    let mut examples: Vec<_> = std::fs::read_dir(repo_root().join("docs/examples"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    examples.sort();
    let kinds = |kind: &str| {
        examples
            .iter()
            .filter(|p| {
                std::fs::read_to_string(p).is_ok_and(|t| t.contains(&format!("kind: {kind}")))
            })
            .count()
    };
    assert!(
        kinds("TrainingJob") >= 3,
        "expected at least 3 TrainingJob examples"
    );
    assert!(
        kinds("EnergySite") >= 2,
        "expected at least 2 EnergySite examples"
    );
    for example in &examples {
        let path = example.to_string_lossy();
        plane
            .kubectl_output(&["apply", "-n", ns.name(), "-f", &path])
            .map_err(|e| anyhow::anyhow!("{path} does not apply: {e}"))?;
    }

    // What the API server stored deserializes into the Rust types, with defaults applied.
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    let job = jobs.get("llama-finetune").await?;
    assert_eq!(job.spec.replicas, 2);
    assert_eq!(job.spec.gpus_per_replica, 8);
    assert_eq!(
        job.spec.energy.policy,
        GreenPolicy::GreenPreferred,
        "policy defaults to GreenPreferred"
    );
    assert_eq!(
        job.spec.energy.min_renewable_fraction, 0.8,
        "minRenewableFraction defaults to 0.8"
    );
    assert_eq!(
        job.spec.run_policy.backoff_limit, 3,
        "backoffLimit defaults to 3"
    );
    assert_eq!(
        job.spec.energy.max_delay.map(std::time::Duration::from),
        Some(std::time::Duration::from_secs(6 * 3600))
    );
    let green_only = jobs.get("pretrain-small").await?;
    assert_eq!(green_only.spec.energy.policy, GreenPolicy::GreenOnly);
    assert_eq!(
        green_only.spec.energy.power_capping.map(|p| p.min_percent),
        Some(50)
    );

    let sites: Api<EnergySite> = Api::all(client);
    let solar = sites.get("solar-a").await?;
    assert_eq!(solar.spec.solar.len(), 2);
    assert_eq!(
        solar.spec.solar[1].losses_percent, 14.0,
        "lossesPercent defaults to 14"
    );
    let wind = sites.get("wind-b").await?;
    assert_eq!(wind.spec.pue, 1.2, "pue defaults to 1.2");
    assert_eq!(wind.spec.wind[0].turbine_type.as_deref(), Some("E-82/2350"));
    Ok(())
}

/// `kubectl explain`, retried: a new CRD reaches the API server's OpenAPI document a
/// moment after it is Established, and explain reads that document.
async fn explain(plane: &ControlPlane, path: &str) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match plane.kubectl_output(&["explain", path]) {
            Ok(text) => return Ok(text),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_docs() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let energy = explain(plane, "trainingjob.spec.energy").await?;
    assert!(
        energy.contains("When and how green the job must run"),
        "{energy}"
    );
    assert!(energy.contains("minRenewableFraction"), "{energy}");
    assert!(energy.contains("deadline − estimatedDuration"), "{energy}");
    let deadline = explain(plane, "trainingjob.spec.runPolicy.activeDeadlineSeconds").await?;
    assert!(deadline.contains("Only running time counts"), "{deadline}");
    let site = explain(plane, "energysite.spec.forecast.static").await?;
    assert!(site.contains("exactly 24 values"), "{site}");
    Ok(())
}

fn training_job() -> Value {
    json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "probe"},
        "spec": {
            "replicas": 2,
            "gpusPerReplica": 8,
            "energy": {"policy": "GreenPreferred", "maxDelay": "6h", "estimatedDuration": "2h"},
            "template": {"spec": {"containers": [{"name": "trainer", "image": "busybox"}]}}
        }
    })
}

fn energy_site() -> Value {
    json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "EnergySite",
        "metadata": {"name": "probe"},
        "spec": {
            "nodeSelector": {"matchLabels": {"verdant.dev/site": "probe"}},
            "location": {"latitude": 36.1, "longitude": -79.9},
            "solar": [{"name": "roof", "capacityKw": 100, "tiltDegrees": 20, "azimuthDegrees": 180}],
            "wind": [{"name": "t", "turbineType": "E-82/2350", "count": 1, "hubHeightM": 100}],
            "forecast": {"provider": "Static", "static": {"constantKw": 50}}
        }
    })
}

/// RFC 7386 merge: objects merge, `null` removes, anything else replaces.
fn merged(mut base: Value, patch: Value) -> Value {
    fn merge(target: &mut Value, patch: Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(&k);
                    } else {
                        merge(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
            (t, p) => *t = p,
        }
    }
    merge(&mut base, patch);
    base
}

#[tokio::test]
async fn malformed_objects_are_rejected_naming_the_field() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "invalid").await?;
    let tj_resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "verdant.dev",
        "v1alpha1",
        "TrainingJob",
    ));
    let site_resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "verdant.dev",
        "v1alpha1",
        "EnergySite",
    ));
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &tj_resource);
    let sites: Api<DynamicObject> = Api::all_with(client.clone(), &site_resource);

    let tj = |patch: Value| merged(training_job(), json!({"spec": patch}));
    let site = |patch: Value| merged(energy_site(), json!({"spec": patch}));
    // (what is wrong, object, text the API server's message must contain)
    let cases: Vec<(&str, Value, &str)> = vec![
        ("zero replicas", tj(json!({"replicas": 0})), "spec.replicas"),
        (
            "1025 replicas",
            tj(json!({"replicas": 1025})),
            "spec.replicas",
        ),
        (
            "17 GPUs per replica",
            tj(json!({"gpusPerReplica": 17})),
            "spec.gpusPerReplica",
        ),
        (
            "zero GPUs per replica",
            tj(json!({"gpusPerReplica": 0})),
            "spec.gpusPerReplica",
        ),
        (
            "no template",
            tj(json!({"template": null})),
            "spec.template",
        ),
        (
            "template without containers",
            tj(json!({"template": {"spec": {"containers": []}}})),
            "spec.template",
        ),
        (
            "unknown policy",
            tj(json!({"energy": {"policy": "Whenever"}})),
            "spec.energy.policy",
        ),
        (
            "fraction 1.5",
            tj(json!({"energy": {"minRenewableFraction": 1.5}})),
            "spec.energy.minRenewableFraction",
        ),
        (
            "negative fraction",
            tj(json!({"energy": {"minRenewableFraction": -0.1}})),
            "spec.energy.minRenewableFraction",
        ),
        (
            "deadline without estimatedDuration",
            tj(
                json!({"energy": {"maxDelay": null, "estimatedDuration": null, "deadline": "2030-01-01T00:00:00Z"}}),
            ),
            "spec.energy.deadline requires spec.energy.estimatedDuration",
        ),
        (
            "deadline and maxDelay together",
            tj(json!({"energy": {"deadline": "2030-01-01T00:00:00Z"}})),
            "mutually exclusive",
        ),
        (
            "maxDelay in words",
            tj(json!({"energy": {"maxDelay": "6 hours"}})),
            "spec.energy.maxDelay",
        ),
        (
            "zero maxDelay",
            tj(json!({"energy": {"maxDelay": "0s"}})),
            "spec.energy.maxDelay must be a positive duration",
        ),
        (
            "negative estimatedDuration",
            tj(json!({"energy": {"estimatedDuration": "-2h"}})),
            "spec.energy.estimatedDuration",
        ),
        (
            "deadline not RFC 3339",
            tj(json!({"energy": {"maxDelay": null, "deadline": "next tuesday"}})),
            "spec.energy.deadline",
        ),
        (
            "power cap below 30 %",
            tj(json!({"energy": {"powerCapping": {"enabled": true, "minPercent": 20}}})),
            "spec.energy.powerCapping.minPercent",
        ),
        (
            "negative backoffLimit",
            tj(json!({"runPolicy": {"backoffLimit": -1}})),
            "spec.runPolicy.backoffLimit",
        ),
        (
            "zero activeDeadlineSeconds",
            tj(json!({"runPolicy": {"activeDeadlineSeconds": 0}})),
            "spec.runPolicy.activeDeadlineSeconds",
        ),
        (
            "negative TTL",
            tj(json!({"runPolicy": {"ttlSecondsAfterFinished": -5}})),
            "spec.runPolicy.ttlSecondsAfterFinished",
        ),
        (
            "replicas as text",
            tj(json!({"replicas": "two"})),
            "spec.replicas",
        ),
        (
            "latitude 91",
            site(json!({"location": {"latitude": 91}})),
            "spec.location.latitude",
        ),
        (
            "longitude -181",
            site(json!({"location": {"longitude": -181}})),
            "spec.location.longitude",
        ),
        (
            "negative capacity",
            site(json!({"solar": [{"name": "roof", "capacityKw": -5}]})),
            "spec.solar[0].capacityKw",
        ),
        (
            "tilt 95",
            site(json!({"solar": [{"name": "roof", "capacityKw": 5, "tiltDegrees": 95}]})),
            "spec.solar[0].tiltDegrees",
        ),
        (
            "azimuth 360",
            site(json!({"solar": [{"name": "roof", "capacityKw": 5, "azimuthDegrees": 360}]})),
            "spec.solar[0].azimuthDegrees",
        ),
        (
            "losses 120 %",
            site(json!({"solar": [{"name": "roof", "capacityKw": 5, "lossesPercent": 120}]})),
            "spec.solar[0].lossesPercent",
        ),
        (
            "zero turbines",
            site(
                json!({"wind": [{"name": "t", "turbineType": "E-82/2350", "count": 0, "hubHeightM": 100}]}),
            ),
            "spec.wind[0].count",
        ),
        (
            "zero hub height",
            site(
                json!({"wind": [{"name": "t", "turbineType": "E-82/2350", "count": 1, "hubHeightM": 0}]}),
            ),
            "spec.wind[0].hubHeightM",
        ),
        (
            "turbine without type or curve",
            site(json!({"wind": [{"name": "t", "count": 1, "hubHeightM": 100}]})),
            "spec.wind[0]",
        ),
        ("PUE below 1", site(json!({"pue": 0.9})), "spec.pue"),
        (
            "negative grid carbon",
            site(json!({"grid": {"carbonIntensityGPerKwh": -1}})),
            "spec.grid.carbonIntensityGPerKwh",
        ),
        (
            "unknown forecast provider",
            site(json!({"forecast": {"provider": "Sunshine"}})),
            "spec.forecast.provider",
        ),
        (
            "Static provider without static",
            site(json!({"forecast": {"provider": "Static", "static": null}})),
            "spec.forecast.static",
        ),
        (
            "23 hourly values",
            site(json!({"forecast": {"static": {"constantKw": null, "hourlyKw": vec![1.0; 23]}}})),
            "spec.forecast.static.hourlyKw",
        ),
        (
            "constant and hourly together",
            site(json!({"forecast": {"static": {"hourlyKw": vec![1.0; 24]}}})),
            "spec.forecast.static",
        ),
        (
            "refresh interval zero",
            site(json!({"forecast": {"refreshInterval": "0s"}})),
            "spec.forecast.refreshInterval",
        ),
    ];
    assert!(cases.len() >= 20);

    // The unmodified objects are valid, so each rejection below is caused by its change.
    jobs.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &serde_json::from_value(training_job())?,
    )
    .await?;
    sites
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &serde_json::from_value(energy_site())?,
        )
        .await?;

    let mut failures = Vec::new();
    for (what, object, expected) in cases {
        let api = if object["kind"] == "TrainingJob" {
            &jobs
        } else {
            &sites
        };
        let object: DynamicObject = serde_json::from_value(object)?;
        match api
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &object,
            )
            .await
        {
            Ok(_) => failures.push(format!(
                "{what}: accepted, expected a rejection naming {expected}"
            )),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expected) => {}
            Err(other) => failures.push(format!(
                "{what}: expected a 422 naming {expected:?}, got {other}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn names_that_cannot_form_pod_hostnames_or_the_service_are_rejected() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "names").await?;
    let tj_resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "verdant.dev",
        "v1alpha1",
        "TrainingJob",
    ));
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &tj_resource);
    let named = |name: &str| -> anyhow::Result<DynamicObject> {
        Ok(serde_json::from_value(merged(
            training_job(),
            json!({"metadata": {"name": name}}),
        ))?)
    };
    let longest = "a".repeat(verdant_crds::MAX_NAME_LENGTH);
    let too_long = "a".repeat(verdant_crds::MAX_NAME_LENGTH + 1);
    let length_rule = "metadata.name must be at most 58 characters";
    let label_rule = "metadata.name must be a DNS-1035 label";
    let cases = [
        ("one character too long", too_long.as_str(), length_rule),
        ("a dot", "bad.dot", label_rule),
        ("a leading digit", "1st-run", label_rule),
        ("a trailing dash", "run-", label_rule),
    ];
    let mut failures = Vec::new();
    for (what, name, expected) in cases {
        match jobs.create(&PostParams::default(), &named(name)?).await {
            Ok(_) => failures.push(format!("{what} ({name}): accepted")),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expected) => {}
            Err(other) => failures.push(format!(
                "{what} ({name}): expected a 422 naming {expected:?}, got {other}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The longest name that leaves room for `-1023` is accepted, and stays updatable.
    jobs.create(&PostParams::default(), &named(&longest)?)
        .await?;
    jobs.patch(
        &longest,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"team": "nlp"}}})),
    )
    .await?;
    // `kubectl get` shows the REASON column.
    let table = plane.kubectl_output(&["get", "trainingjobs", "-n", ns.name()])?;
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.split_whitespace().collect::<Vec<_>>()[..3] == ["NAME", "PHASE", "REASON"],
        "{table}"
    );
    Ok(())
}
