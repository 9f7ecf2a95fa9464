//! What the operator's cache holds of a pod: the fields some task reads, deserialized
//! straight from the API server's answers into a type of their own.
//!
//! k8s-openapi's `Pod` is 2.4 KiB before anything is on the heap (its spec and status
//! are structs of every field the API has), and each container another 2.1 KiB, however
//! much of them pruning empties. This type has the same field names
//! and nesting as `Pod` for what it keeps (`pod.spec.node_name`, `pod.status.phase`, …),
//! so readers are written as for a `Pod`, and it is a [`kube::Resource`] of kind `Pod`,
//! so watches, reflectors and `Api::get` produce it directly. What it keeps is listed in
//! [`super::prune`].

use std::borrow::Cow;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// A pod as the operator caches it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedPod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<CachedPodSpec>,
    #[serde(default)]
    pub status: Option<CachedPodStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CachedPodSpec {
    pub node_name: Option<String>,
    pub scheduler_name: Option<String>,
    pub containers: Vec<CachedContainer>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CachedContainer {
    pub name: String,
    pub resources: Option<ResourceRequirements>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CachedPodStatus {
    pub phase: Option<String>,
    pub container_statuses: Option<Vec<CachedContainerStatus>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CachedContainerStatus {
    pub name: String,
    pub state: Option<CachedContainerState>,
}

/// A container's state, of which only `terminated` is read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CachedContainerState {
    pub terminated: Option<CachedTerminated>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CachedTerminated {
    pub exit_code: i32,
    pub finished_at: Option<Time>,
}

impl kube::Resource for CachedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn is_a_pod_for_the_api_and_much_smaller_than_one() {
        assert_eq!(
            CachedPod::url_path(&(), Some("ns")),
            "/api/v1/namespaces/ns/pods"
        );
        assert_eq!(CachedPod::api_version(&()), "v1");
        // The inline sizes the cache pays per pod and per container.
        assert!(size_of::<CachedPod>() * 4 < size_of::<k8s_openapi::api::core::v1::Pod>());
        assert!(
            size_of::<CachedContainer>() * 10 < size_of::<k8s_openapi::api::core::v1::Container>()
        );
    }
}
