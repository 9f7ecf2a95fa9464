//! The kubelet PodResources API (`podresources/v1`, gRPC over a unix socket): which
//! container holds which device.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};
use verdant_crds::wire::PodRef;

use crate::podresources_proto::ListPodResourcesRequest;
use crate::podresources_proto::pod_resources_lister_client::PodResourcesListerClient;

/// The kubelet's socket.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// The NVIDIA DRA driver's name.
const NVIDIA_DRA_DRIVER: &str = "gpu.nvidia.com";

/// Talking to the PodResources API failed.
#[derive(Debug, thiserror::Error)]
pub enum PodResourcesError {
    /// Could not connect to the socket.
    #[error("cannot connect to the kubelet PodResources socket {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The call failed.
    #[error("PodResources List on {path} failed: {status}")]
    List {
        /// The socket.
        path: PathBuf,
        /// gRPC status.
        status: Box<tonic::Status>,
    },
}

/// Device ID → the container holding it, for NVIDIA devices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceHolders {
    by_device: HashMap<String, PodRef>,
}

impl DeviceHolders {
    /// The container holding the GPU with this UUID or index. The NVIDIA device plugin
    /// names devices by UUID (by index with `DEVICE_ID_STRATEGY=index`); time-sliced
    /// replicas carry a `::N` suffix, which is ignored.
    pub fn holder(&self, uuid: &str, index: u32) -> Option<&PodRef> {
        self.by_device
            .get(uuid)
            .or_else(|| self.by_device.get(&index.to_string()))
    }

    /// Number of devices with a holder.
    pub fn len(&self) -> usize {
        self.by_device.len()
    }

    /// Whether no device has a holder.
    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }

    fn insert(&mut self, device_id: &str, pod: &PodRef) {
        let id = device_id.split("::").next().unwrap_or(device_id);
        // A time-sliced GPU shared by several containers goes to the first one listed.
        self.by_device
            .entry(id.to_owned())
            .or_insert_with(|| pod.clone());
    }
}

/// Lists the containers holding NVIDIA devices through the socket at `path`.
pub async fn list_gpu_holders(
    path: &Path,
    timeout: Duration,
) -> Result<DeviceHolders, PodResourcesError> {
    let socket = path.to_path_buf();
    // The URI is a placeholder: the connector below always dials the unix socket.
    let channel = Endpoint::from_static("http://kubelet.invalid")
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|source| PodResourcesError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
    let mut client = PodResourcesListerClient::new(channel).max_decoding_message_size(16 << 20);
    let response = client
        .list(ListPodResourcesRequest {})
        .await
        .map_err(|status| PodResourcesError::List {
            path: path.to_path_buf(),
            status: Box::new(status),
        })?
        .into_inner();

    let mut holders = DeviceHolders::default();
    for pod in response.pod_resources {
        for container in pod.containers {
            let holder = PodRef {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                container: container.name.clone(),
            };
            for devices in &container.devices {
                if devices.resource_name.starts_with("nvidia.com/") {
                    for id in &devices.device_ids {
                        holders.insert(id, &holder);
                    }
                }
            }
            for dynamic in &container.dynamic_resources {
                for claimed in &dynamic.claim_resources {
                    if claimed.driver_name != NVIDIA_DRA_DRIVER {
                        continue;
                    }
                    // The NVIDIA DRA driver names whole GPUs `gpu-<index>`.
                    if let Some(index) = claimed.device_name.strip_prefix("gpu-") {
                        holders.insert(index, &holder);
                    }
                    // CDI names such as `k8s.gpu.nvidia.com/device=GPU-…` carry a UUID.
                    for cdi in &claimed.cdi_devices {
                        if let Some((_, device)) = cdi.name.split_once('=')
                            && device.starts_with("GPU-")
                        {
                            holders.insert(device, &holder);
                        }
                    }
                }
            }
        }
    }
    Ok(holders)
}
