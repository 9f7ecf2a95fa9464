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
use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::GPU_RESOURCE;

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
    pub resources: Option<CachedResources>,
}

/// A container's resources as cached: of each list, the GPU entry (`nvidia.com/gpu`)
/// alone, the one resource the operator counts. The two maps of everything a container
/// asks for took about 1 KiB a pod on the heap.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CachedResources {
    pub limits: GpuEntry,
    pub requests: GpuEntry,
}

/// Of a resource list (`{"cpu": "2", "nvidia.com/gpu": "8"}`), the GPU quantity alone; it
/// reads any list, and writes one of at most that entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuEntry(pub Option<Quantity>);

impl<'de> Deserialize<'de> for GpuEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GpuOf;
        impl<'de> Visitor<'de> for GpuOf {
            type Value = Option<Quantity>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of resource names to quantities")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut gpus = None;
                while let Some(name) = map.next_key::<Cow<'de, str>>()? {
                    if name == GPU_RESOURCE {
                        gpus = Some(map.next_value::<Quantity>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(gpus)
            }
        }
        struct List(Option<Quantity>);
        impl<'de> Deserialize<'de> for List {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_map(GpuOf).map(List)
            }
        }
        // `null` reads as no list.
        Ok(GpuEntry(
            Option::<List>::deserialize(deserializer)?.and_then(|list| list.0),
        ))
    }
}

impl Serialize for GpuEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(usize::from(self.0.is_some())))?;
        if let Some(quantity) = &self.0 {
            map.serialize_entry(GPU_RESOURCE, quantity)?;
        }
        map.end()
    }
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

    #[test]
    fn a_resource_list_keeps_its_gpu_entry_alone() {
        let container: CachedContainer = serde_json::from_value(serde_json::json!({
            "name": "c",
            "resources": {
                "limits": {"cpu": "2", "nvidia.com/gpu": "8", "memory": "1Gi"},
                "requests": {"cpu": "1"},
                "claims": [{"name": "x"}],
            },
        }))
        .unwrap();
        let resources = container.resources.as_ref().unwrap();
        assert_eq!(resources.limits, GpuEntry(Some(Quantity("8".into()))));
        assert_eq!(resources.requests, GpuEntry(None));
        // Written back as the lists it kept, and read again the same.
        let written = serde_json::to_value(&container).unwrap();
        assert_eq!(
            written["resources"],
            serde_json::json!({"limits": {"nvidia.com/gpu": "8"}, "requests": {}})
        );
        assert_eq!(
            serde_json::from_value::<CachedContainer>(written).unwrap(),
            container
        );
        for absent in [
            serde_json::json!({"name": "c", "resources": {"limits": null}}),
            serde_json::json!({"name": "c", "resources": {}}),
        ] {
            let read: CachedContainer = serde_json::from_value(absent).unwrap();
            assert_eq!(read.resources.unwrap(), CachedResources::default());
        }
        let wrong = serde_json::json!({"name": "c", "resources": {"limits": ["8"]}});
        let error = serde_json::from_value::<CachedContainer>(wrong).unwrap_err();
        assert!(
            error.to_string().contains("map of resource names"),
            "{error}"
        );
    }
}
