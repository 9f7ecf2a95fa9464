//! Kueue (`sigs.k8s.io/kueue`, built from its Go module by `hack/tools.sh kueue`, cached
//! like the control plane) as a process against a test control plane. See docs/kueue.md.
//!
//! Kueue's manager normally runs in its cluster, its webhooks behind a Service. Here the
//! API server runs on this machine without kube-proxy, so [`KueueProcess::start`]:
//! - makes a CA and a serving certificate valid for `127.0.0.1` and for the name Kueue's
//!   certificate rotator checks (`kueue-webhook-service.kueue-system.svc`), stores them in
//!   the rotator's Secret (which it then keeps, as it is valid) and in the webhook server's
//!   certificate folder (in a cluster, the kubelet mounts the Secret there);
//! - installs Kueue's CRDs from its module, their conversion webhooks (which the rotator
//!   requires) pointing at `https://127.0.0.1:<port>/convert`;
//! - registers the webhooks of Kueue's own API and of its enabled frameworks (batch/job)
//!   from the module's `config/components/webhook/manifests.yaml`, with
//!   `url: https://127.0.0.1:<port>/<path>` and the CA;
//! - runs the manager with a `--config` file: leader election off, health and metrics on
//!   free loopback ports, jobs without a queue name not managed, the visibility API server
//!   off (it would be an aggregated API server behind a Service), and TrainingJob as an
//!   external framework.
//!
//! Kueue's objects are cluster-wide (CRDs, webhooks, Kueue's namespace): one Kueue per
//! control plane, so tests that run Kueue take an owned one
//! ([`ControlPlane::start_owned`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::ControlPlane;

/// The namespace Kueue runs in (its rotator's Secret lives there).
pub const NAMESPACE: &str = "kueue-system";
/// The group of Kueue's API.
pub const GROUP: &str = "kueue.x-k8s.io";
/// The version Kueue stores (v1beta1 is served too, converted by Kueue's webhook).
pub const VERSION: &str = "v1beta2";
/// The job types Kueue manages through an external controller (`Kind.version.group`).
pub const EXTERNAL_FRAMEWORKS: &[&str] = &["TrainingJob.v1alpha1.verdant.dev"];
/// The built-in integrations enabled (their webhooks are registered).
pub const FRAMEWORKS: &[&str] = &["batch/job"];

/// The names Kueue's certificate rotator derives from its configuration's defaults: the
/// Service in the certificate's name, its Secret, and the webhook configurations and CRDs
/// it injects the CA into (it fails if one of those CRDs has no conversion webhook).
const SERVICE: &str = "kueue-webhook-service";
const SECRET: &str = "kueue-webhook-server-cert";
const MUTATING: &str = "kueue-mutating-webhook-configuration";
const VALIDATING: &str = "kueue-validating-webhook-configuration";
const CONVERTED_CRDS: [&str; 5] = [
    "localqueues.kueue.x-k8s.io",
    "clusterqueues.kueue.x-k8s.io",
    "workloads.kueue.x-k8s.io",
    "cohorts.kueue.x-k8s.io",
    "multikueueclusters.kueue.x-k8s.io",
];
/// The API groups whose webhooks are registered: Kueue's own and [`FRAMEWORKS`]'.
const WEBHOOK_GROUPS: [&str; 2] = [GROUP, "batch"];
const FIELD_MANAGER: &str = "verdant-tests";

/// The pinned Kueue manager, built on first use (many minutes the first time on a
/// machine, then cached in the tools cache); its CRDs are in `crds/` and its webhook
/// manifests in `webhooks.yaml` beside it.
pub fn kueue_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| crate::helm::on_demand_tool("kueue"))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The [`ApiResource`] of a Kueue kind at [`VERSION`] (e.g. `"Workload"`, `"workloads"`).
pub fn resource(kind: &str, plural: &str) -> ApiResource {
    resource_at(kind, plural, VERSION)
}

/// The [`ApiResource`] of a Kueue kind at `version`.
pub fn resource_at(kind: &str, plural: &str, version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, version, kind), plural)
}

/// The condition `type` of an object's `status.conditions`: its status, reason and
/// message.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let conditions = object.pointer("/status/conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == kind)?;
    let text = |key: &str| c[key].as_str().unwrap_or_default();
    Some((text("status"), text("reason"), text("message")))
}

/// Waits until the object `name` of `api` has the condition `kind` with `status`;
/// returns the object.
pub async fn wait_condition(
    api: &Api<DynamicObject>,
    name: &str,
    kind: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let what = api.resource_url();
    crate::wait::until(
        &format!("{what} {name} to have {kind}={status}"),
        timeout,
        || async {
            let object = serde_json::to_value(api.get(name).await?)?;
            Ok(match condition(&object, kind) {
                Some((s, _, _)) if s == status => Ok(object),
                other => Err(format!("{kind}: {other:?}")),
            })
        },
    )
    .await
}

/// A running Kueue manager, killed when dropped; its webhook configurations are removed
/// then too (they would fail every Job and Kueue object once nothing answers them).
pub struct KueueProcess {
    child: Child,
    log: PathBuf,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    /// Base URL of its health probes (`/healthz`, `/readyz`).
    pub health_url: String,
    /// The loopback port of its webhook server.
    pub webhook_port: u16,
}

impl KueueProcess {
    /// Installs Kueue's CRDs, certificates and webhooks on `plane`, starts the manager and
    /// waits until it is ready and its webhooks answer the API server.
    pub async fn start(plane: &ControlPlane) -> anyhow::Result<Self> {
        Self::start_with(plane, "").await
    }

    /// [`Self::start`] with `extra`, top-level keys of Kueue's configuration appended to
    /// the fixture's (e.g. a `multiKueue:` section, see [`multikueue_manager_config`]).
    pub async fn start_with(plane: &ControlPlane, extra: &str) -> anyhow::Result<Self> {
        let binary = kueue_binary()?;
        let manifests = binary.parent().context("the Kueue binary's folder")?;
        let free_port = crate::free_port;
        let (webhook_port, health_port, metrics_port) = (free_port()?, free_port()?, free_port()?);
        let dir = plane.dir().join(format!("kueue-{webhook_port}"));
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs)?;
        let pki = make_pki(&dir, &certs)?;

        let client = plane.client().await?;
        install(&client, manifests, &pki, webhook_port).await?;

        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            configuration(&certs, webhook_port, health_port, metrics_port) + extra,
        )?;
        let log = dir.join("kueue.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .env("KUBECONFIG", plane.kubeconfig())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut kueue = Self {
            child,
            log,
            kubectl: plane.tools_bin().join("kubectl"),
            kubeconfig: plane.kubeconfig().to_path_buf(),
            health_url: format!("http://127.0.0.1:{health_port}"),
            webhook_port,
        };
        kueue.wait_ready(&client).await?;
        Ok(kueue)
    }

    async fn wait_ready(&mut self, client: &kube::Client) -> anyhow::Result<()> {
        let child = Mutex::new(&mut self.child);
        let readyz = format!("{}/readyz", self.health_url);
        let log = self.log.clone();
        crate::wait::until("Kueue to be ready", Duration::from_secs(120), || {
            let exited = child.lock().expect("not poisoned").try_wait();
            let (readyz, log) = (readyz.clone(), log.clone());
            async move {
                if let Some(status) = exited? {
                    anyhow::bail!("Kueue exited ({status}):\n{}", tail(&log, 40));
                }
                Ok(match reqwest::get(&readyz).await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("readyz: {}", r.status())),
                    Err(e) => Err(format!("readyz: {e}")),
                })
            }
        })
        .await?;
        // Through the API server: a dry-run ResourceFlavor passes Kueue's mutating and
        // validating webhooks only if the API server reaches and trusts them.
        let flavors: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &resource("ResourceFlavor", "resourceflavors"),
        );
        let probe: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "ResourceFlavor",
            "metadata": {"name": "webhook-probe"},
            "spec": {},
        }))?;
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        crate::wait::until(
            "Kueue's webhooks to answer the API server",
            Duration::from_secs(60),
            || async {
                Ok(match flavors.create(&dry_run, &probe).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.to_string()),
                })
            },
        )
        .await
    }

    /// Whether the manager is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The manager's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for KueueProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== Kueue log (last 60 lines) =====\n{}",
                tail(&self.log, 60)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["delete", "--ignore-not-found", "--wait=false"])
            .args([
                format!("mutatingwebhookconfiguration/{MUTATING}"),
                format!("validatingwebhookconfiguration/{VALIDATING}"),
            ])
            .output();
    }
}

fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last: Vec<&str> = text.lines().rev().take(lines).collect();
    last.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The PEM files the rotator's Secret holds.
struct Pki {
    ca_crt: Vec<u8>,
    ca_key: Vec<u8>,
    tls_crt: Vec<u8>,
    tls_key: Vec<u8>,
}

/// A CA as Kueue's rotator makes one (its name as a DNS name, an RSA key in PKCS#1,
/// which the rotator parses) and a serving certificate for `127.0.0.1` and the Service
/// name the rotator verifies; the serving pair is written to `certs` as `tls.crt` and
/// `tls.key`.
fn make_pki(dir: &Path, certs: &Path) -> anyhow::Result<Pki> {
    // Arguments without spaces, split on whitespace.
    let run = |args: &str| -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .context("running openssl")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "openssl {args} failed: {stderr}");
        Ok(())
    };
    let service = format!("{SERVICE}.{NAMESPACE}.svc");
    run("genrsa -traditional -out ca.key 2048")?;
    run(
        "req -x509 -new -key ca.key -days 3650 -subj /O=kueue/CN=kueue-ca -out ca.crt \
         -addext subjectAltName=DNS:kueue-ca -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
    )?;
    run("genrsa -traditional -out tls.key 2048")?;
    run(&format!(
        "req -new -key tls.key -subj /CN={service} -out tls.csr"
    ))?;
    std::fs::write(
        dir.join("tls.ext"),
        format!(
            "subjectAltName=DNS:{service},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n"
        ),
    )?;
    run(
        "x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
         -extfile tls.ext -out tls.crt",
    )?;
    let read =
        |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("reading {name}"));
    let pki = Pki {
        ca_crt: read("ca.crt")?,
        ca_key: read("ca.key")?,
        tls_crt: read("tls.crt")?,
        tls_key: read("tls.key")?,
    };
    std::fs::write(certs.join("tls.crt"), &pki.tls_crt)?;
    std::fs::write(certs.join("tls.key"), &pki.tls_key)?;
    Ok(pki)
}

/// Kueue's namespace, the rotator's Secret, the CRDs and the webhook configurations.
async fn install(
    client: &kube::Client,
    manifests: &Path,
    pki: &Pki,
    port: u16,
) -> anyhow::Result<()> {
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let ca_bundle = serde_json::to_value(ByteString(pki.ca_crt.clone()))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    namespaces
        .patch(NAMESPACE, &apply, &Patch::Apply(&namespace))
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let bytes = |b: &[u8]| serde_json::to_value(ByteString(b.to_vec()));
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "data": {
            "ca.crt": bytes(&pki.ca_crt)?, "ca.key": bytes(&pki.ca_key)?,
            "tls.crt": bytes(&pki.tls_crt)?, "tls.key": bytes(&pki.tls_key)?,
        },
    });
    secrets
        .patch(SECRET, &apply, &Patch::Apply(&secret))
        .await?;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(manifests.join("crds"))
        .with_context(|| format!("reading {}", manifests.join("crds").display()))?
        .collect::<Result<_, _>>()?;
    files.sort_by_key(|f| f.path());
    for file in files {
        let mut crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(file.path())?)?;
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if CONVERTED_CRDS.contains(&name.as_str()) {
            crd["spec"]["conversion"] = json!({
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": format!("https://127.0.0.1:{port}/convert"), "caBundle": ca_bundle},
                    "conversionReviewVersions": ["v1"],
                },
            });
        }
        crds.patch(&name, &apply, &Patch::Apply(&crd)).await?;
        names.push(name);
    }
    for name in &names {
        crate::wait::until(
            &format!("CRD {name} to be established"),
            Duration::from_secs(60),
            || async {
                let crd = serde_json::to_value(crds.get(name).await?)?;
                Ok(match condition(&crd, "Established") {
                    Some(("True", _, _)) => Ok(()),
                    other => Err(format!("Established: {other:?}")),
                })
            },
        )
        .await?;
    }

    let text = std::fs::read_to_string(manifests.join("webhooks.yaml"))?;
    for mut config in crate::helm::parse_manifests(&text)? {
        let wanted = |hook: &Value| {
            hook["rules"].as_array().into_iter().flatten().any(|rule| {
                rule["apiGroups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|g| WEBHOOK_GROUPS.iter().any(|w| g == w))
            })
        };
        let hooks: Vec<Value> = config["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|hook| wanted(hook))
            .map(|hook| {
                let mut hook = hook.clone();
                let path = hook["clientConfig"]["service"]["path"].clone();
                let path = path.as_str().unwrap_or_default();
                hook["clientConfig"] = json!({
                    "url": format!("https://127.0.0.1:{port}{path}"),
                    "caBundle": ca_bundle,
                });
                hook
            })
            .collect();
        config["webhooks"] = Value::Array(hooks);
        match config["kind"].as_str() {
            Some("MutatingWebhookConfiguration") => {
                config["metadata"] = json!({"name": MUTATING});
                let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
                api.patch(MUTATING, &apply, &Patch::Apply(&config)).await?;
            }
            Some("ValidatingWebhookConfiguration") => {
                config["metadata"] = json!({"name": VALIDATING});
                let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
                api.patch(VALIDATING, &apply, &Patch::Apply(&config))
                    .await?;
            }
            other => anyhow::bail!("unexpected {other:?} in {}", manifests.display()),
        }
    }
    Ok(())
}

/// The configuration a MultiKueue manager adds to the fixture's: Verdant as the External
/// dispatcher (`dispatcher`), and the generic adapter for TrainingJobs.
pub fn multikueue_manager_config(dispatcher: &str) -> String {
    format!(
        "multiKueue:\n  dispatcherName: {dispatcher}\n  externalFrameworks:{}\n",
        EXTERNAL_FRAMEWORKS
            .iter()
            .map(|f| format!("\n  - name: {f}"))
            .collect::<String>()
    )
}

/// Kueue's `--config` file (`config.kueue.x-k8s.io/v1beta2` Configuration).
fn configuration(certs: &Path, webhook: u16, health: u16, metrics: u16) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("\n  - {i}"))
            .collect::<String>()
    };
    format!(
        "apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: {NAMESPACE}
manageJobsWithoutQueueName: false
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: true
  webhookServiceName: {SERVICE}
  webhookSecretName: {SECRET}
webhook:
  host: 127.0.0.1
  port: {webhook}
  certDir: {certs}
health:
  healthProbeBindAddress: 127.0.0.1:{health}
metrics:
  bindAddress: 127.0.0.1:{metrics}
featureGates:
  VisibilityOnDemand: false
integrations:
  frameworks:{frameworks}
  externalFrameworks:{external}
",
        certs = certs.display(),
        frameworks = list(FRAMEWORKS),
        external = list(EXTERNAL_FRAMEWORKS),
    )
}

/// A Kueue object of `kind` named `name` with `spec` (cluster-scoped unless the caller's
/// `Api` is namespaced).
pub fn object(kind: &str, name: &str, spec: Value) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

/// The queues of a GPU cluster: a ResourceFlavor `flavor` with `node_labels`, a
/// ClusterQueue `gpus` of `quota` `nvidia.com/gpu` in it, with the spec fields of
/// `cluster_queue` besides (preemption, admission checks), and the LocalQueue `team` in
/// `namespace`. Waits until the ClusterQueue is active.
pub async fn gpu_queues(
    client: &kube::Client,
    namespace: &str,
    flavor: &str,
    node_labels: Value,
    quota: u32,
    cluster_queue: Value,
) -> anyhow::Result<()> {
    let post = PostParams::default();
    let flavors: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("ResourceFlavor", "resourceflavors"),
    );
    flavors
        .create(
            &post,
            &object("ResourceFlavor", flavor, json!({"nodeLabels": node_labels}))?,
        )
        .await?;
    let cluster_queues: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource("ClusterQueue", "clusterqueues"));
    let mut spec = json!({
        "namespaceSelector": {},
        "resourceGroups": [{
            "coveredResources": ["nvidia.com/gpu"],
            "flavors": [{"name": flavor, "resources": [{"name": "nvidia.com/gpu", "nominalQuota": quota}]}],
        }],
    });
    for (key, value) in cluster_queue.as_object().into_iter().flatten() {
        spec[key] = value.clone();
    }
    cluster_queues
        .create(&post, &object("ClusterQueue", "gpus", spec)?)
        .await?;
    wait_condition(
        &cluster_queues,
        "gpus",
        "Active",
        "True",
        Duration::from_secs(90),
    )
    .await?;
    let local_queues: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("LocalQueue", "localqueues"),
    );
    local_queues
        .create(
            &post,
            &object("LocalQueue", "team", json!({"clusterQueue": "gpus"}))?,
        )
        .await?;
    Ok(())
}
