//! Who sent a report: the token through the TokenReview API, then the pod it is bound to.
//!
//! # Guarantees
//! - Only tokens the API server accepts for the audience `verdant` pass, and only those of
//!   the agent's ServiceAccount.
//! - The token must be bound to a pod (a projected token is); that pod must still exist
//!   with the same uid and run on the node the report claims. A valid token from node A
//!   can never write data for node B.
//!
//! # Caveats
//! TokenReview answers are cached (60 s by default, keyed by a SHA-256 of the token) to
//! keep the API server out of the hot path. The pod checks run on every report, against
//! the pods cache, so a deleted agent pod stops writing at once even while its token's
//! review is cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use sha2::{Digest, Sha256};

use super::rejection::Rejection;
use crate::watches::CachedPod;

/// The audience agent tokens must carry.
pub const AUDIENCE: &str = "verdant";
/// Extra keys kube-apiserver sets for tokens bound to a pod (v1.32+ adds the node).
pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
/// The bound pod's uid.
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
/// The node the bound pod ran on when the token was issued.
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";

const MAX_CACHED: usize = 20_000;

/// What the API server says about a token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenIdentity {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub username: String,
    /// The pod the token is bound to.
    pub pod_name: Option<String>,
    /// Its uid.
    pub pod_uid: Option<String>,
    /// The node it ran on at issuance.
    pub node_name: Option<String>,
}

struct Cached {
    at: Instant,
    result: Result<TokenIdentity, Rejection>,
}

/// Checks agents' tokens.
pub struct Authenticator {
    client: kube::Client,
    pods: Store<CachedPod>,
    /// The agent's ServiceAccount: (namespace, name).
    service_account: (String, String),
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl Authenticator {
    /// An authenticator for tokens of `service_account` (namespace, name).
    pub fn new(
        client: kube::Client,
        pods: Store<CachedPod>,
        service_account: (String, String),
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            pods,
            service_account,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Who the `Authorization` header's token belongs to, per the API server (cached).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<TokenIdentity, Rejection> {
        let token = bearer_token(authorization)?;
        self.review(token).await
    }

    /// The TokenReview answer for a token, cached.
    async fn review(&self, token: &str) -> Result<TokenIdentity, Rejection> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self
            .lock()
            .get(&key)
            .filter(|c| c.at.elapsed() < self.ttl)
            .map(|c| c.result.clone())
        {
            return hit;
        }
        let result = self.token_review(token).await;
        // An unreachable API server says nothing about the token: ask again next time.
        if result
            .as_ref()
            .err()
            .is_none_or(|r| r.reason != "auth_unavailable")
        {
            let mut cache = self.lock();
            if cache.len() >= MAX_CACHED {
                let ttl = self.ttl;
                cache.retain(|_, c| c.at.elapsed() < ttl);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                Cached {
                    at: Instant::now(),
                    result: result.clone(),
                },
            );
        }
        result
    }

    async fn token_review(&self, token: &str) -> Result<TokenIdentity, Rejection> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                Rejection::auth_unavailable(format!(
                    "cannot verify the token: the TokenReview call failed ({e}); retry later. The operator's ServiceAccount needs create on tokenreviews.authentication.k8s.io"
                ))
            })?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(Rejection::unauthenticated(format!(
                "the API server rejected the token: {}. Use the pod's projected ServiceAccount token with audience \"{AUDIENCE}\"; it is invalid once expired or once its pod is deleted",
                status
                    .error
                    .unwrap_or_else(|| "not authenticated".to_owned())
            )));
        }
        if let Some(audiences) = &status.audiences
            && !audiences.iter().any(|a| a == AUDIENCE)
        {
            return Err(Rejection::unauthenticated(format!(
                "the token is not for the audience \"{AUDIENCE}\" (it is for {audiences:?})"
            )));
        }
        let user = status.user.unwrap_or_default();
        let extra = user.extra.unwrap_or_default();
        let first = |key: &str| extra.get(key).and_then(|v| v.first()).cloned();
        Ok(TokenIdentity {
            username: user.username.unwrap_or_default(),
            pod_name: first(POD_NAME_KEY),
            pod_uid: first(POD_UID_KEY),
            node_name: first(NODE_NAME_KEY),
        })
    }

    /// Whether the identity may write reports of `node`: the agent's ServiceAccount, a
    /// bound pod that still exists and runs on `node`.
    pub async fn check(&self, identity: &TokenIdentity, node: &str) -> Result<(), Rejection> {
        let (namespace, name) = &self.service_account;
        let expected = format!("system:serviceaccount:{namespace}:{name}");
        if identity.username != expected {
            return Err(Rejection::forbidden(format!(
                "the token belongs to {:?}, not to the agent's ServiceAccount {expected:?}",
                identity.username
            )));
        }
        let Some(pod_name) = &identity.pod_name else {
            return Err(Rejection::forbidden(
                "the token is not bound to a pod: send the agent pod's projected ServiceAccount token",
            ));
        };
        if let Some(token_node) = &identity.node_name
            && token_node != node
        {
            return Err(Rejection::node_mismatch(format!(
                "the token was issued to pod {namespace}/{pod_name} on node {token_node}; it cannot write reports for node {node}"
            )));
        }
        let pod = match self.pods.get(&ObjectRef::new(pod_name).within(namespace)) {
            Some(pod) => Some(pod),
            // The cache may not have seen a pod that just started: ask the API server.
            None => Api::<CachedPod>::namespaced(self.client.clone(), namespace)
                .get_opt(pod_name)
                .await
                .map_err(|e| {
                    Rejection::auth_unavailable(format!(
                        "cannot look up the agent pod {namespace}/{pod_name}: {e}; retry later"
                    ))
                })?
                .map(std::sync::Arc::new),
        };
        let Some(pod) = pod else {
            return Err(Rejection::unauthenticated(format!(
                "the token's pod {namespace}/{pod_name} no longer exists"
            )));
        };
        if let Some(uid) = &identity.pod_uid
            && pod.metadata.uid.as_ref() != Some(uid)
        {
            return Err(Rejection::unauthenticated(format!(
                "the token's pod {namespace}/{pod_name} was replaced by another pod of that name"
            )));
        }
        let pod_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if pod_node != Some(node) {
            return Err(Rejection::node_mismatch(format!(
                "the token's pod {namespace}/{pod_name} runs on node {}; it cannot write reports for node {node}",
                pod_node.unwrap_or("(none)")
            )));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, Rejection> {
    let header = authorization.ok_or_else(|| {
        Rejection::unauthenticated(
            "no Authorization header: send \"Authorization: Bearer <projected ServiceAccount token>\"",
        )
    })?;
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Rejection::unauthenticated(
            "the Authorization header must be \"Bearer <token>\"",
        ));
    }
    Ok(token)
}

/// Parses `namespace:name`.
pub fn parse_service_account(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!(
            "{text:?}: expected NAMESPACE:NAME, e.g. verdant-system:verdant-agent"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_parse() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), "abc");
        assert_eq!(bearer_token(None).unwrap_err().reason, "unauthenticated");
        assert_eq!(
            bearer_token(Some("Basic dXNlcg==")).unwrap_err().reason,
            "unauthenticated"
        );
        assert_eq!(
            bearer_token(Some("Bearer")).unwrap_err().reason,
            "unauthenticated"
        );
    }

    #[test]
    fn service_accounts_parse() {
        assert_eq!(
            parse_service_account("verdant-system:verdant-agent").unwrap(),
            ("verdant-system".into(), "verdant-agent".into())
        );
        assert!(parse_service_account("verdant-agent").is_err());
        assert!(parse_service_account(":x").is_err());
    }
}
