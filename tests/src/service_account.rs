//! Acting as a ServiceAccount: a token from the TokenRequest API and a kubeconfig that
//! holds it, so that a process or a client has exactly that account's rights on the
//! RBAC-enforcing test API server.

use std::path::{Path, PathBuf};

use anyhow::Context;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Mints a token for `namespace/name` with `audiences` (empty: the API server's own) that
/// lives `expiration_s`, optionally bound to a pod (name, uid) as a projected token is.
pub async fn request_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    audiences: &[&str],
    expiration_s: i64,
    bound_pod: Option<(&str, &str)>,
) -> anyhow::Result<String> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audiences.is_empty())
                .then(|| audiences.iter().map(|a| a.to_string()).collect()),
            expiration_seconds: Some(expiration_s),
            bound_object_ref: bound_pod.map(|(pod, uid)| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                uid: Some(uid.into()),
            }),
        }),
        ..Default::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
    answer
        .status
        .and_then(|s| s.token)
        .with_context(|| format!("the TokenRequest for {namespace}/{name} returned no token"))
}

/// Writes a kubeconfig at `path` for the cluster of `admin_kubeconfig` (same server and
/// CA) that authenticates with `token`.
pub fn write_token_kubeconfig(
    admin_kubeconfig: &Path,
    token: &str,
    path: &Path,
) -> anyhow::Result<PathBuf> {
    let admin = Kubeconfig::read_from(admin_kubeconfig)
        .with_context(|| format!("reading {}", admin_kubeconfig.display()))?;
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .context("the admin kubeconfig has no cluster")?;
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
            "certificate-authority": cluster.certificate_authority,
        }}],
        "users": [{"name": "service-account", "user": {"token": token}}],
        "contexts": [{"name": "service-account", "context": {"cluster": "test", "user": "service-account"}}],
        "current-context": "service-account",
    });
    std::fs::write(path, serde_yaml_ng::to_string(&document)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// A client that authenticates with the kubeconfig at `path`.
pub async fn client_from(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}
