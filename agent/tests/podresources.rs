//! Pod attribution through the kubelet PodResources API, against a real gRPC server
//! (tonic, serving the vendored upstream proto) on a unix socket in a temporary folder.

use std::path::Path;
use std::time::Duration;

use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use verdant_agent::attribution::podresources::{PodResourcesError, list_gpu_holders};
use verdant_agent::attribution::{Attributor, PodLookup, Source};
use verdant_agent::podresources_proto::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use verdant_agent::podresources_proto::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, CdiDevice, ClaimResource,
    ContainerDevices, ContainerResources, DynamicResource, GetPodResourcesRequest,
    GetPodResourcesResponse, ListPodResourcesRequest, ListPodResourcesResponse, PodResources,
};
use verdant_agent::sample::GpuSample;
use verdant_agent::window::WindowAggregator;
use verdant_crds::wire::PodRef;

/// A kubelet's view: two training pods holding GPUs by UUID and by index, a time-sliced
/// GPU, a DRA claim, and a pod holding only another vendor's devices.
struct FakeKubelet {
    fail: bool,
}

fn devices(resource: &str, ids: &[&str]) -> ContainerDevices {
    ContainerDevices {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| s.to_string()).collect(),
        topology: None,
    }
}

fn container(name: &str, devs: Vec<ContainerDevices>) -> ContainerResources {
    ContainerResources {
        name: name.into(),
        devices: devs,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        if self.fail {
            return Err(Status::unavailable("kubelet is restarting"));
        }
        let dra = ContainerResources {
            name: "dra-trainer".into(),
            dynamic_resources: vec![DynamicResource {
                claim_name: "gpus".into(),
                claim_namespace: "research".into(),
                claim_resources: vec![ClaimResource {
                    cdi_devices: vec![CdiDevice {
                        name: "k8s.gpu.nvidia.com/device=GPU-dra-5".into(),
                    }],
                    driver_name: "gpu.nvidia.com".into(),
                    pool_name: "node-1".into(),
                    device_name: "gpu-5".into(),
                    share_id: None,
                }],
            }],
            ..Default::default()
        };
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: vec![
                PodResources {
                    name: "llm-0".into(),
                    namespace: "ml".into(),
                    containers: vec![
                        container("sidecar", vec![]),
                        container(
                            "trainer",
                            vec![devices("nvidia.com/gpu", &["GPU-aaa", "GPU-bbb"])],
                        ),
                    ],
                },
                PodResources {
                    name: "bert-3".into(),
                    namespace: "nlp".into(),
                    containers: vec![container("main", vec![devices("nvidia.com/gpu", &["2"])])],
                },
                PodResources {
                    name: "notebook".into(),
                    namespace: "users".into(),
                    containers: vec![container(
                        "jupyter",
                        vec![devices("nvidia.com/gpu.shared", &["GPU-ddd::3"])],
                    )],
                },
                PodResources {
                    name: "dra-job".into(),
                    namespace: "research".into(),
                    containers: vec![dra],
                },
                PodResources {
                    name: "fpga".into(),
                    namespace: "hw".into(),
                    containers: vec![container(
                        "x",
                        vec![devices("xilinx.com/fpga", &["GPU-eee"])],
                    )],
                },
            ],
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }

    async fn get(
        &self,
        _: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }
}

fn serve(socket: &Path, fail: bool) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(FakeKubelet { fail }))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    })
}

fn pod(ns: &str, name: &str, container: &str) -> PodRef {
    PodRef {
        namespace: ns.into(),
        name: name.into(),
        container: container.into(),
    }
}

#[tokio::test]
async fn lists_gpu_holders_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let server = serve(&socket, false);

    let holders = list_gpu_holders(&socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        holders.holder("GPU-aaa", 0),
        Some(&pod("ml", "llm-0", "trainer"))
    );
    assert_eq!(
        holders.holder("GPU-bbb", 1),
        Some(&pod("ml", "llm-0", "trainer"))
    );
    // By index (DEVICE_ID_STRATEGY=index).
    assert_eq!(
        holders.holder("GPU-ccc", 2),
        Some(&pod("nlp", "bert-3", "main"))
    );
    // A time-sliced replica of a GPU.
    assert_eq!(
        holders.holder("GPU-ddd", 3),
        Some(&pod("users", "notebook", "jupyter"))
    );
    // DRA: by device name (index) and by CDI UUID.
    assert_eq!(
        holders.holder("GPU-x", 5),
        Some(&pod("research", "dra-job", "dra-trainer"))
    );
    assert_eq!(
        holders.holder("GPU-dra-5", 9),
        Some(&pod("research", "dra-job", "dra-trainer"))
    );
    // Other vendors' devices and free GPUs.
    assert_eq!(holders.holder("GPU-eee", 7), None);
    assert_eq!(holders.holder("GPU-fff", 6), None);
    server.abort();
}

#[tokio::test]
async fn the_attributor_fills_the_window_from_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let server = serve(&socket, false);

    let mut aggregator = WindowAggregator::new("node-1", 10_000);
    let sample = |uuid: &str, index: u32| GpuSample {
        uuid: uuid.into(),
        index,
        model: "NVIDIA H100 80GB HBM3".into(),
        timestamp_ms: 1_000,
        power_w: 100.0,
        power_instant: false,
        energy_mj: Some(0),
        gpu_util_percent: 0.0,
        mem_util_percent: 0.0,
        memory_used_bytes: 0,
        memory_total_bytes: 0,
        temperature_c: 0.0,
        sm_clock_mhz: 0,
        power_limit_w: 700.0,
        default_power_limit_w: 700.0,
        min_power_limit_w: 200.0,
        max_power_limit_w: 700.0,
        pids: vec![],
        pod: None,
    };
    aggregator.push(1_000, &[sample("GPU-aaa", 0), sample("GPU-zzz", 4)]);
    let mut window = aggregator.flush(2_000).unwrap();
    let attributor = Attributor::new(socket.clone(), dir.path().join("proc"), PodLookup::Disabled);
    assert_eq!(
        attributor.attribute(&mut window).await,
        Source::PodResources
    );
    assert_eq!(
        window.report.gpus[0].pod,
        Some(pod("ml", "llm-0", "trainer"))
    );
    assert_eq!(window.report.gpus[1].pod, None);

    // Without the socket (and without API access) nothing is attributed, and nothing fails.
    server.abort();
    std::fs::remove_file(&socket).unwrap();
    window.report.gpus[0].pod = None;
    assert_eq!(attributor.attribute(&mut window).await, Source::None);
    assert_eq!(window.report.gpus[0].pod, None);
}

#[tokio::test]
async fn a_missing_socket_or_a_failing_kubelet_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.sock");
    let error = list_gpu_holders(&missing, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(error, PodResourcesError::Connect { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("absent.sock"), "{error}");

    let socket = dir.path().join("kubelet.sock");
    let server = serve(&socket, true);
    let error = list_gpu_holders(&socket, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("kubelet is restarting"),
        "{error}"
    );
    server.abort();
}
