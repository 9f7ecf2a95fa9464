//! The Helm chart (`helm/verdant`): it lints and renders with the value sets users pick,
//! installs into a real API server, and its RBAC is enough for the operator to run a
//! TrainingJob from start to deletion, and no more than the agent needs.
//!
//! RBAC is proven rather than read: the operator process runs with a token of the
//! chart's ServiceAccount against the RBAC-enforcing test API server, with the very flags
//! and environment the chart's Deployment gives it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use verdant_crds::{EnergySite, JobPhase, TrainingJob};
use verdant_tests::agents::{AgentProcess, report_token};
use verdant_tests::helm::{NAMESPACE, RELEASE, chart_dir, helm, install, output, parse_manifests};
use verdant_tests::service_account::{client_from, request_token, write_token_kubeconfig};
use verdant_tests::{ControlPlane, OperatorProcess, TestNamespace, create_gpu_nodes, wait};

const OPERATOR_SA: &str = "verdant-operator";
const AGENT_SA: &str = "verdant-agent";
const CRDS: [&str; 2] = ["trainingjobs.verdant.dev", "energysites.verdant.dev"];

/// `helm template` of the chart with `values` (a values file's content).
fn render(home: &Path, name: &str, values: &str) -> anyhow::Result<Vec<Value>> {
    let file = home.join(format!("{name}.yaml"));
    std::fs::write(&file, values)?;
    let mut lint = helm(home, None)?;
    lint.args(["lint", "--strict", "--namespace", NAMESPACE])
        .arg(chart_dir())
        .arg("-f")
        .arg(&file);
    let linted = output(lint)?;
    assert!(
        linted.contains("0 chart(s) failed") && !linted.contains("[WARNING]"),
        "helm lint of value set {name}:\n{linted}"
    );
    let mut template = helm(home, None)?;
    template
        .args(["template", RELEASE, "--namespace", NAMESPACE])
        .arg(chart_dir())
        .arg("-f")
        .arg(&file);
    parse_manifests(&output(template)?)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn count(objects: &[Value], kind: &str) -> usize {
    objects.iter().filter(|o| o["kind"] == kind).count()
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_var<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no env {name} in {}", container["name"]))
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The rules of a ClusterRole as (group, resource) -> verbs.
fn rules(role: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                out.entry((group.clone(), resource))
                    .or_default()
                    .extend(strings(&rule["verbs"]));
            }
        }
    }
    out
}

fn expected_rules(
    entries: &[(&str, &str, &[&str])],
) -> BTreeMap<(String, String), BTreeSet<String>> {
    entries
        .iter()
        .map(|(group, resource, verbs)| {
            (
                (group.to_string(), resource.to_string()),
                verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn chart_lints_and_renders_with_every_value_set() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let home = home.path();

    // Defaults: SQLite on a PVC, agents on labelled GPU nodes, dashboards on.
    let objects = render(home, "defaults", "{}\n")?;
    let operator = find(&objects, "Deployment", "verdant-operator");
    let c = container(operator, "operator");
    let pod = &operator["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], OPERATOR_SA);
    // Leader election on, but one replica on SQLite (one ReadWriteOnce volume, one
    // store), replaced by Recreate, and no PodDisruptionBudget that would block drains.
    assert!(args(c).contains(&"--leader-elect".to_owned()));
    assert!(args(c).contains(&"--leader-elect-lease-duration=8s".to_owned()));
    assert_eq!(operator["spec"]["replicas"], 1);
    assert_eq!(operator["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(count(&objects, "PodDisruptionBudget"), 0);
    let lease_role = find(&objects, "Role", "verdant-operator-leader-election");
    assert_eq!(
        rules(lease_role),
        expected_rules(&[(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update"]
        )])
    );
    // The "restricted" Pod Security Standard.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let security = &c["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        env_var(c, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env_var(c, "VERDANT_DATABASE_URL")["value"],
        "/var/lib/verdant/energy.db"
    );
    assert_eq!(
        env_var(c, "VERDANT_AGENT_SERVICE_ACCOUNT")["value"],
        format!("{NAMESPACE}:{AGENT_SA}")
    );
    let claim = find(&objects, "PersistentVolumeClaim", "verdant-operator-data");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "verdant-operator-data")
    );
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/var/lib/verdant")
    );

    let agent = find(&objects, "DaemonSet", "verdant-agent");
    let a = container(agent, "agent");
    let agent_pod = &agent["spec"]["template"]["spec"];
    assert_eq!(agent_pod["serviceAccountName"], AGENT_SA);
    assert_eq!(
        agent_pod["nodeSelector"],
        json!({"nvidia.com/gpu.present": "true"})
    );
    assert!(
        agent_pod["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "nvidia.com/gpu" && t["operator"] == "Exists")
    );
    assert_eq!(agent_pod["runtimeClassName"], "nvidia");
    assert_eq!(a["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(a["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(a["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(env_var(a, "NVIDIA_VISIBLE_DEVICES")["value"], "all");
    assert_eq!(
        env_var(a, "NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    let volumes = agent_pod["volumes"].as_array().unwrap();
    let mounts = a["volumeMounts"].as_array().unwrap();
    let mount = |volume: &str| {
        mounts
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap_or_else(|| panic!("volume {volume} not mounted"))
    };
    let pod_resources = volumes
        .iter()
        .find(|v| v["name"] == "pod-resources")
        .unwrap();
    assert_eq!(
        pod_resources["hostPath"]["path"],
        "/var/lib/kubelet/pod-resources"
    );
    assert_eq!(mount("pod-resources")["readOnly"], true);
    let token = volumes
        .iter()
        .find(|v| v["name"] == "verdant-token")
        .unwrap();
    let source = &token["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(source["audience"], "verdant");
    let token_file = format!(
        "{}/{}",
        mount("verdant-token")["mountPath"].as_str().unwrap(),
        source["path"].as_str().unwrap()
    );
    // The agent's default --token-file, and the flag the chart passes.
    assert_eq!(token_file, "/var/run/secrets/verdant/token");
    // Power capping needs CAP_SYS_ADMIN, and nothing else is added.
    assert_eq!(
        a["securityContext"]["capabilities"]["add"],
        json!(["SYS_ADMIN"])
    );
    assert_eq!(a["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(a["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(args(a).contains(&format!("--token-file={token_file}")));
    assert!(
        args(a)
            .contains(&"--operator-url=http://verdant-operator.verdant-system.svc:9090".to_owned())
    );

    let service = find(&objects, "Service", "verdant-operator");
    let ports: BTreeSet<i64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, BTreeSet::from([8080, 9090]));
    let agent_service = find(&objects, "Service", "verdant-agent");
    assert_eq!(agent_service["spec"]["ports"][0]["port"], 9400);

    // Least privilege, rule by rule.
    let operator_role = find(&objects, "ClusterRole", "verdant-operator");
    assert_eq!(
        rules(operator_role),
        expected_rules(&[
            (
                "verdant.dev",
                "trainingjobs",
                &["get", "list", "watch", "patch", "delete"]
            ),
            ("verdant.dev", "trainingjobs/status", &["patch"]),
            ("verdant.dev", "trainingjobs/finalizers", &["update"]),
            ("verdant.dev", "energysites", &["get", "list", "watch"]),
            ("verdant.dev", "energysites/status", &["patch"]),
            ("", "pods", &["get", "list", "watch", "create", "delete"]),
            ("", "pods/binding", &["create"]),
            (
                "",
                "services",
                &["get", "list", "watch", "create", "patch", "delete"]
            ),
            ("", "namespaces", &["get"]),
            ("", "nodes", &["get", "list", "watch"]),
            ("", "configmaps", &["get"]),
            ("events.k8s.io", "events", &["create", "patch"]),
            (
                "kueue.x-k8s.io",
                "workloads",
                &["get", "list", "watch", "create", "patch"]
            ),
            ("kueue.x-k8s.io", "workloads/status", &["patch"]),
            ("kueue.x-k8s.io", "resourceflavors", &["get"]),
            ("kueue.x-k8s.io", "workloadpriorityclasses", &["get"]),
            ("authentication.k8s.io", "tokenreviews", &["create"]),
        ])
    );
    let agent_role = find(&objects, "ClusterRole", "verdant-agent");
    assert_eq!(
        rules(agent_role),
        expected_rules(&[("", "pods", &["list", "watch"])])
    );

    // One ConfigMap per dashboard file, labelled for the Grafana sidecar, holding JSON.
    let dashboards: Vec<_> = std::fs::read_dir(chart_dir().join("dashboards"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    let config_maps: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert!(!dashboards.is_empty(), "the chart ships dashboards");
    assert_eq!(config_maps.len(), dashboards.len());
    for config_map in config_maps {
        for (file, text) in config_map["data"].as_object().unwrap() {
            let parsed: Value = serde_json::from_str(text.as_str().unwrap())
                .unwrap_or_else(|e| panic!("dashboard {file} is not JSON: {e}"));
            assert!(parsed.is_object());
        }
    }

    // External PostgreSQL: the URL comes from a Secret, and there is no claim.
    let objects = render(
        home,
        "postgres",
        "database:\n  type: postgres\n  postgres:\n    existingSecret: verdant-db\n    key: url\n",
    )?;
    let c = container(find(&objects, "Deployment", "verdant-operator"), "operator");
    assert_eq!(
        env_var(c, "VERDANT_DATABASE_URL")["valueFrom"]["secretKeyRef"],
        json!({"name": "verdant-db", "key": "url"})
    );
    assert_eq!(count(&objects, "PersistentVolumeClaim"), 0);
    // Two replicas on the shared database: one leads, a rolling update keeps one up, and
    // a PodDisruptionBudget keeps one through drains.
    let operator = find(&objects, "Deployment", "verdant-operator");
    assert_eq!(operator["spec"]["replicas"], 2);
    assert_eq!(operator["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        operator["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let pdb = find(&objects, "PodDisruptionBudget", "verdant-operator");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        operator["spec"]["selector"]["matchLabels"]
    );

    // Monitoring with the Prometheus Operator: scrape objects, and the alerting rules of
    // files/alerts.yaml as a PrometheusRule, unchanged (Prometheus templates included).
    let objects = render(
        home,
        "monitoring",
        "monitoring:\n  serviceMonitor:\n    enabled: true\n    labels: {release: kube-prometheus-stack}\n  podMonitor:\n    enabled: true\nprometheusRule:\n  enabled: true\n  labels: {release: kube-prometheus-stack}\n",
    )?;
    assert_eq!(count(&objects, "ServiceMonitor"), 2);
    assert_eq!(count(&objects, "PodMonitor"), 2);
    assert_eq!(
        find(&objects, "ServiceMonitor", "verdant-operator")["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let rule = find(&objects, "PrometheusRule", "verdant");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let alerts_file: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        chart_dir().join("files/alerts.yaml"),
    )?)?;
    assert_eq!(rule["spec"]["groups"], alerts_file["groups"]);
    assert!(
        !rule["spec"]["groups"].as_array().unwrap().is_empty(),
        "the chart ships alerts"
    );

    // Custom GPU node selection (helm merges maps: the default key is removed with null),
    // no RuntimeClass, the simulated backend.
    let objects = render(
        home,
        "custom-nodes",
        "agent:\n  backend: simulated\n  nodeSelector: {nvidia.com/gpu.present: null, verdant.dev/gpu-node: \"yes\"}\n  tolerations: []\n  nvidia:\n    runtimeClassName: \"\"\n  extraArgs: [\"--sim-gpus=4\"]\n  readOnly: true\n",
    )?;
    let agent = find(&objects, "DaemonSet", "verdant-agent");
    let agent_pod = &agent["spec"]["template"]["spec"];
    assert_eq!(
        agent_pod["nodeSelector"],
        json!({"verdant.dev/gpu-node": "yes"})
    );
    assert!(agent_pod.get("runtimeClassName").is_none());
    assert!(agent_pod.get("tolerations").is_none());
    let agent_args = args(container(agent, "agent"));
    assert!(agent_args.contains(&"--backend=simulated".to_owned()));
    assert!(agent_args.contains(&"--sim-gpus=4".to_owned()));
    assert!(agent_args.contains(&"--read-only".to_owned()));
    let security = &container(agent, "agent")["securityContext"];
    assert!(security["capabilities"].get("add").is_none(), "{security}");

    // MultiKueue's dispatcher on a manager cluster: its flags, read access to Kueue's
    // MultiKueue objects, and the Secrets of Kueue's namespace alone.
    let objects = render(
        home,
        "multikueue",
        "operator:\n  multiKueueDispatcher:\n    enabled: true\n    kueueNamespace: kueue\n",
    )?;
    let operator_args = args(container(
        find(&objects, "Deployment", "verdant-operator"),
        "operator",
    ));
    assert!(operator_args.contains(&"--multikueue-dispatcher".to_owned()));
    assert!(operator_args.contains(&"--kueue-namespace=kueue".to_owned()));
    let granted = rules(find(&objects, "ClusterRole", "verdant-operator"));
    for resource in ["admissionchecks", "multikueueconfigs", "multikueueclusters"] {
        let key = ("kueue.x-k8s.io".to_owned(), resource.to_owned());
        let get: BTreeSet<String> = ["get".to_owned()].into();
        assert_eq!(granted.get(&key), Some(&get), "{resource}");
    }
    let role = find(&objects, "Role", "verdant-operator-multikueue");
    assert_eq!(role["metadata"]["namespace"], "kueue");
    assert_eq!(rules(role), expected_rules(&[("", "secrets", &["get"])]));
    let binding = find(&objects, "RoleBinding", "verdant-operator-multikueue");
    assert_eq!(binding["subjects"][0]["name"], OPERATOR_SA);
    assert!(
        !args(container(
            find(
                &render(home, "no-multikueue", "{}\n")?,
                "Deployment",
                "verdant-operator"
            ),
            "operator",
        ))
        .iter()
        .any(|a| a.starts_with("--multikueue"))
    );

    // No agent, SQLite without persistence.
    let objects = render(
        home,
        "minimal",
        "agent:\n  enabled: false\ndatabase:\n  sqlite:\n    persistence:\n      enabled: false\n",
    )?;
    assert_eq!(count(&objects, "DaemonSet"), 0);
    assert_eq!(count(&objects, "PersistentVolumeClaim"), 0);
    Ok(())
}

#[test]
fn schema_rejects_bad_values_with_the_reason() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let cases = [
        ("database.type=mysql", "/database/type"),
        ("database.type=postgres", "existingSecret"),
        ("operator.replicas=11", "/operator/replicas"),
        (
            "operator.leaderElection.leaseDuration=soon",
            "/operator/leaderElection/leaseDuration",
        ),
        (
            "operator.leaderElection.enabled=false,database.type=postgres,database.postgres.existingSecret=db",
            "leaderElection.enabled",
        ),
        ("agent.backend=cuda", "/agent/backend"),
        ("agent.sampleInterval=often", "/agent/sampleInterval"),
        ("operater.replicas=1", "operater"),
    ];
    for (set, expected) in cases {
        let mut template = helm(home.path(), None)?;
        template
            .args(["template", RELEASE])
            .arg(chart_dir())
            .args(["--set", set]);
        let error = output(template).expect_err(set).to_string();
        assert!(
            error.contains(expected),
            "--set {set}: the error should name {expected}:\n{error}"
        );
    }
    Ok(())
}

fn manifest(plane: &ControlPlane, home: &Path) -> anyhow::Result<String> {
    let mut get = helm(home, Some(plane.kubeconfig()))?;
    get.args(["get", "manifest", RELEASE, "--namespace", NAMESPACE]);
    output(get)
}

async fn wait_established(client: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRDS {
        wait::until(
            &format!("CRD {name} to be Established"),
            Duration::from_secs(30),
            || {
                let crds = crds.clone();
                async move {
                    let Some(crd) = crds.get_opt(name).await? else {
                        return Ok(Err("not there".into()));
                    };
                    let established = crd
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    Ok(if established {
                        Ok(())
                    } else {
                        Err("not Established".into())
                    })
                }
            },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn helm_install_creates_every_object_and_establishes_the_crds() -> anyhow::Result<()> {
    let plane = ControlPlane::start_owned();
    let client = plane.client().await?;
    let home = tempfile::tempdir()?;
    let home = home.path();

    // The harness applies crds/ when it starts; take them away so that helm installs its own.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRDS {
        crds.delete(name, &DeleteParams::default()).await?;
    }
    wait::until(
        "the harness's CRDs to be gone",
        Duration::from_secs(60),
        || {
            let crds = crds.clone();
            async move {
                let mut left = Vec::new();
                for name in CRDS {
                    if crds.get_opt(name).await?.is_some() {
                        left.push(name);
                    }
                }
                Ok(if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?} left"))
                })
            }
        },
    )
    .await?;

    let notes = install(home, plane.kubeconfig(), &[], &[])?;
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(
        notes.contains("kubectl apply --server-side"),
        "NOTES say how to upgrade CRDs:\n{notes}"
    );
    wait_established(&client).await?;
    let crd = crds.get("trainingjobs.verdant.dev").await?;
    let labels = crd.labels();
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "CRDs come from crds/, unmanaged by the release (helm never deletes them)"
    );

    // Every object of the release exists in the API server.
    let manifest_text = manifest(&plane, home)?;
    let objects = parse_manifests(&manifest_text)?;
    let kinds: BTreeSet<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
        "DaemonSet",
        "PersistentVolumeClaim",
    ] {
        assert!(kinds.contains(kind), "the release has no {kind}: {kinds:?}");
    }
    let file = home.join("manifest.yaml");
    std::fs::write(&file, &manifest_text)?;
    let live: Value = serde_json::from_str(&plane.kubectl_output(&[
        "get",
        "-f",
        file.to_str().unwrap(),
        "-o",
        "json",
    ])?)?;
    let live_names: BTreeSet<String> = live["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    let rendered_names: BTreeSet<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(live_names, rendered_names);

    // Upgrades change settings in place.
    let mut upgrade = helm(home, Some(plane.kubeconfig()))?;
    upgrade
        .args(["upgrade", RELEASE, "--namespace", NAMESPACE])
        .arg(chart_dir())
        .args(["--set", "operator.scheduling.cycleSeconds=5"]);
    output(upgrade)?;
    let deployment = plane.kubectl_output(&[
        "get",
        "deployment",
        "verdant-operator",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ])?;
    assert!(deployment.contains("--cycle-seconds=5"), "{deployment}");

    // Uninstall removes the release but keeps the energy data and the CRDs (and with them
    // every TrainingJob and EnergySite).
    let mut uninstall = helm(home, Some(plane.kubeconfig()))?;
    uninstall.args(["uninstall", RELEASE, "--namespace", NAMESPACE]);
    let said = output(uninstall)?;
    assert!(
        said.contains("verdant-operator-data"),
        "helm names what it kept: {said}"
    );
    let left = plane.kubectl_output(&[
        "get",
        "deployments,daemonsets,serviceaccounts,persistentvolumeclaims",
        "-n",
        NAMESPACE,
        "-o",
        "name",
    ])?;
    let left: BTreeSet<&str> = left
        .lines()
        // The namespace's own, made by kube-controller-manager, not by the release.
        .filter(|name| *name != "serviceaccount/default")
        .collect();
    assert_eq!(
        left,
        BTreeSet::from(["persistentvolumeclaim/verdant-operator-data"]),
        "only the kept claim is left"
    );
    for name in CRDS {
        assert!(crds.get_opt(name).await?.is_some(), "CRD {name} kept");
    }
    Ok(())
}

/// The agent, run as the chart's DaemonSet runs it on `node`: the rendered flags and
/// environment, the agent ServiceAccount's rights for the Kubernetes API, and for its
/// reports a token of audience `verdant` bound to an agent pod on the node, as the
/// projected volume holds it.
async fn start_chart_agent(
    plane: &ControlPlane,
    client: &kube::Client,
    daemonset: &Value,
    node: &str,
    operator: &OperatorProcess,
    home: &Path,
) -> anyhow::Result<AgentProcess> {
    let pod_name = format!("verdant-agent-{}", verdant_tests::unique_suffix());
    let report_token = report_token(client, NAMESPACE, AGENT_SA, &pod_name, node).await?;
    let token_file = home.join("agent-report.token");
    std::fs::write(&token_file, report_token)?;
    let api_token = request_token(client, NAMESPACE, AGENT_SA, &[], 3600, None).await?;
    let kubeconfig = write_token_kubeconfig(
        plane.kubeconfig(),
        &api_token,
        &home.join("agent-run.kubeconfig"),
    )?;

    let c = container(daemonset, "agent");
    let metrics_port = verdant_tests::free_port()?;
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let replaced = [
        ("--operator-url", operator.ingest_url.clone()),
        ("--token-file", token_file.display().to_string()),
        ("--metrics-addr", metrics_addr.clone()),
        (
            "--buffer-dir",
            home.join("agent-buffer").display().to_string(),
        ),
        ("--sample-interval", "250ms".to_owned()),
        ("--report-window", "2s".to_owned()),
    ];
    let flags: Vec<String> = args(c)
        .into_iter()
        .map(|arg| {
            replaced
                .iter()
                .find(|(flag, _)| arg.starts_with(&format!("{flag}=")))
                .map_or(arg, |(flag, value)| format!("{flag}={value}"))
        })
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_e2e-agent"));
    command.args(&flags).env("KUBECONFIG", &kubeconfig);
    for var in c["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        match name {
            "NODE_NAME" => command.env(name, node),
            _ => command.env(name, var["value"].as_str().unwrap()),
        };
    }
    AgentProcess::spawn(command, node, metrics_addr, home.join("agent.log"))
}

/// The operator's flags and environment from the installed Deployment, made to fit a
/// process on this machine: its HTTP and ingest addresses on free local ports, its
/// database in `data_dir`, and a short cycle.
fn operator_command_line(
    deployment: &Value,
    data_dir: &Path,
) -> (Vec<String>, Vec<(String, String)>) {
    let c = container(deployment, "operator");
    let mut flags: Vec<String> = args(c)
        .into_iter()
        .filter(|a| {
            a != "run" && !a.starts_with("--http-addr") && !a.starts_with("--cycle-seconds")
        })
        .collect();
    flags.extend([
        "--cycle-seconds=2".to_owned(),
        "--debounce-ms=100".to_owned(),
    ]);
    let ingest_port = verdant_tests::free_port().unwrap();
    let mut env = Vec::new();
    for var in c["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = match name.as_str() {
            "POD_NAME" => "verdant-operator-7d9f8-x2x4q".to_owned(),
            "POD_NAMESPACE" => NAMESPACE.to_owned(),
            "VERDANT_INGEST_ADDR" => format!("127.0.0.1:{ingest_port}"),
            "VERDANT_DATABASE_URL" => data_dir.join("energy.db").display().to_string(),
            "VERDANT_ENERGY_STATUS_SECONDS" => "2".to_owned(),
            _ => var["value"]
                .as_str()
                .unwrap_or_else(|| panic!("env {name} has no literal value"))
                .to_owned(),
        };
        env.push((name, value));
    }
    (flags, env)
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn operator_with_the_chart_service_account_runs_a_job_lifecycle() -> anyhow::Result<()> {
    let plane = ControlPlane::start_owned();
    let client = plane.client().await?;
    let home = tempfile::tempdir()?;
    let home = home.path();
    // Simulated GPUs: KWOK nodes have none.
    install(home, plane.kubeconfig(), &["agent.backend=simulated"], &[])?;
    let objects = parse_manifests(&manifest(&plane, home)?)?;
    let deployment = find(&objects, "Deployment", "verdant-operator");
    let daemonset = find(&objects, "DaemonSet", "verdant-agent");

    // The operator, as the chart runs it, with nothing but its ServiceAccount's rights.
    let token = request_token(&client, NAMESPACE, OPERATOR_SA, &[], 3600, None).await?;
    let kubeconfig = write_token_kubeconfig(
        plane.kubeconfig(),
        &token,
        &home.join("operator.kubeconfig"),
    )?;
    let (flags, env) = operator_command_line(deployment, home);
    let mut operator = OperatorProcess::start_with_kubeconfig(
        plane.dir(),
        &kubeconfig,
        env!("CARGO_BIN_EXE_e2e-operator"),
        &flags,
        &env,
    )?;
    let http = reqwest::Client::new();
    let readyz = format!("{}/readyz", operator.http_url);
    wait::until(
        "the operator to be ready (its caches synced with the ServiceAccount's rights)",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let readyz = readyz.clone();
            let running = operator.is_running();
            async move {
                if !running {
                    anyhow::bail!("the operator exited");
                }
                Ok(match http.get(&readyz).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("/readyz {}", r.status())),
                    Err(e) => Err(e.to_string()),
                })
            }
        },
    )
    .await?;

    // A site with plenty of sun and one 8-GPU node.
    let ns = TestNamespace::create(&plane, &client, "helm-rbac").await?;
    let site_name = format!("{}-site", ns.name());
    create_gpu_nodes(&client, &format!("{}-gpu", ns.name()), &site_name, 1, 8).await?;
    let site: EnergySite =
        serde_json::from_value(verdant_tests::sites::static_site(&site_name, 1000.0))?;
    let sites: Api<EnergySite> = Api::all(client.clone());
    sites.create(&PostParams::default(), &site).await?;

    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), ns.name());
    let job: TrainingJob = serde_json::from_value(json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "rbac"},
        "spec": {
            "replicas": 2,
            "gpusPerReplica": 4,
            "energy": {"policy": "Immediate"},
            "template": {
                "metadata": {"annotations": {"verdant.dev/kwok-succeed-after": "20s"}},
                "spec": {"containers": [{"name": "trainer", "image": "pytorch/pytorch"}]}
            }
        }
    }))?;
    jobs.create(&PostParams::default(), &job).await?;

    let phase_is = |phase: JobPhase| {
        let jobs = jobs.clone();
        move || {
            let jobs = jobs.clone();
            async move {
                let job = jobs.get("rbac").await?;
                let status = job.status.clone().unwrap_or_default();
                Ok(if status.phase == phase {
                    Ok(job)
                } else {
                    Err(format!(
                        "phase {:?}, reason {:?}, message {:?}",
                        status.phase, status.reason, status.message
                    ))
                })
            }
        }
    };
    let running = wait::until(
        "the job to be Running",
        Duration::from_secs(60),
        phase_is(JobPhase::Running),
    )
    .await?;
    assert!(
        running
            .finalizers()
            .iter()
            .any(|f| f.starts_with("verdant.dev")),
        "the operator added its finalizer: {:?}",
        running.finalizers()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let gang = pods
        .list(&ListParams::default().labels("verdant.dev/job-name=rbac"))
        .await?;
    assert_eq!(gang.items.len(), 2);
    assert!(
        gang.items
            .iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()).is_some()),
        "bound through pods/binding"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), ns.name());
    assert!(
        services.get_opt("rbac").await?.is_some(),
        "headless Service"
    );

    // The agent on the job's node, as the DaemonSet runs it, reports what the GPUs draw;
    // the operator checks its token (TokenReview, the token's pod) and bills the job.
    let node = format!("{}-gpu-0", ns.name());
    let agent = start_chart_agent(&plane, &client, daemonset, &node, &operator, home).await?;
    let energy = wait::until(
        "the job's status.energy from the agent's reports",
        Duration::from_secs(60),
        || {
            let jobs = jobs.clone();
            async move {
                let job = jobs.get("rbac").await?;
                let energy = job.status.and_then(|s| s.energy);
                Ok(match energy {
                    Some(e) if e.gpu_energy_kwh > 0.0 => Ok(e),
                    other => Err(format!("status.energy {other:?}")),
                })
            }
        },
    )
    .await?;
    assert!(energy.gpu_energy_kwh < 1.0, "{energy:?}");
    wait::until(
        "the job to be Succeeded",
        Duration::from_secs(60),
        phase_is(JobPhase::Succeeded),
    )
    .await?;

    // Events (events.k8s.io, through the operator's Recorder) and site status.
    let events: Api<Event> = Api::namespaced(client.clone(), ns.name());
    let recorded = events.list(&ListParams::default()).await?;
    assert!(
        recorded
            .items
            .iter()
            .any(
                |e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("rbac")
                    && e.reporting_controller.as_deref() == Some("verdant-operator")
            ),
        "the operator recorded events about the job: {:?}",
        recorded
            .items
            .iter()
            .map(|e| (e.reason.clone(), e.note.clone()))
            .collect::<Vec<_>>()
    );
    let site_name_ref = site_name.as_str();
    wait::until("the site's status", Duration::from_secs(60), || {
        let sites = sites.clone();
        async move {
            let site = sites.get(site_name_ref).await?;
            Ok(match site.status.and_then(|s| s.observed_generation) {
                Some(_) => Ok(()),
                None => Err("no status yet".to_owned()),
            })
        }
    })
    .await?;

    // Deletion: the finalizer removes pods and Service, then lets the job go.
    jobs.delete("rbac", &DeleteParams::default()).await?;
    wait::until("the job to be deleted", Duration::from_secs(60), || {
        let jobs = jobs.clone();
        async move {
            Ok(match jobs.get_opt("rbac").await? {
                None => Ok(()),
                Some(j) => Err(format!("still there, finalizers {:?}", j.finalizers())),
            })
        }
    })
    .await?;
    assert!(
        pods.list(&ListParams::default().labels("verdant.dev/job-name=rbac"))
            .await?
            .items
            .is_empty(),
        "the finalizer deleted the pods"
    );
    assert!(services.get_opt("rbac").await?.is_none(), "and the Service");

    assert!(operator.is_running(), "the operator is still running");
    let log = operator.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something its ClusterRole should allow:\n{log}"
    );
    let agent_log = agent.log();
    assert!(
        !agent_log.to_lowercase().contains("forbidden"),
        "the agent was refused something its ClusterRole should allow:\n{agent_log}"
    );

    // The operator's token reads no Secrets.
    let operator_client = client_from(&kubeconfig).await?;
    assert_forbidden(
        Api::<Secret>::all(operator_client)
            .list(&ListParams::default())
            .await,
        "operator listing Secrets",
    );

    // The agent's token reads pods, and nothing else.
    let agent_token = request_token(&client, NAMESPACE, AGENT_SA, &[], 3600, None).await?;
    let agent_kubeconfig = write_token_kubeconfig(
        plane.kubeconfig(),
        &agent_token,
        &home.join("agent.kubeconfig"),
    )?;
    let agent = client_from(&agent_kubeconfig).await?;
    let node = format!("{}-gpu-0", ns.name());
    Api::<Pod>::all(agent.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .expect("the agent lists the pods of its node");
    assert_forbidden(
        Api::<Secret>::all(agent.clone())
            .list(&ListParams::default())
            .await,
        "agent listing Secrets",
    );
    assert_forbidden(
        Api::<Secret>::namespaced(agent.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await,
        "agent listing Secrets of its own namespace",
    );
    jobs.create(&PostParams::default(), &job).await?;
    assert_forbidden(
        Api::<TrainingJob>::namespaced(agent.clone(), ns.name())
            .patch(
                "rbac",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"suspend": true}})),
            )
            .await,
        "agent patching a TrainingJob",
    );
    assert_forbidden(
        Api::<Pod>::namespaced(agent.clone(), ns.name())
            .delete("rbac-0", &DeleteParams::default())
            .await,
        "agent deleting a pod",
    );
    operator.kill();
    Ok(())
}
