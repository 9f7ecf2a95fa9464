//! The pods and the headless Service of a TrainingJob (pure builders).
//!
//! Each replica is one pod `<job>-<index>`, one torchrun node. The pods get the
//! torch.distributed environment that Kubeflow's PyTorchJob sets, so scripts written for
//! it run unchanged, and Verdant's own variables. A job of one replica that is not
//! elastic gets no Service ([`needs_service`]): its only node is its own master.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, Pod, PodSpec, ResourceRequirements, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use verdant_crds::TrainingJob;

use crate::labels::*;
use crate::watches::CachedPod;
use crate::watches::cached_pod::GpuEntry;

/// The pod name of a replica.
pub fn pod_name(job: &str, index: u32) -> String {
    format!("{job}-{index}")
}

/// Whether the job needs its headless Service: several replicas must find replica 0 by
/// a stable name, and an elastic job may grow to several at any time. A single replica
/// of a job that is not elastic is its own master (`localhost`): nobody resolves its
/// name, and without a Service neither it nor its endpoints are written (the endpoints
/// and EndpointSlice controllers write 4 objects per Service).
pub fn needs_service(job: &TrainingJob) -> bool {
    job.spec.elastic.is_some() || job.spec.replicas > 1
}

/// The address of replica 0: through the job's headless Service, or `localhost` for a job
/// that has none ([`needs_service`]; torchrun with one node binds its store there).
pub fn master_addr(job: &TrainingJob) -> String {
    if !needs_service(job) {
        return "localhost".to_owned();
    }
    let name = job.name_any();
    let namespace = job.namespace().unwrap_or_default();
    format!("{}.{name}.{namespace}.svc", pod_name(&name, 0))
}

fn owner_reference(job: &TrainingJob) -> Option<OwnerReference> {
    job.controller_owner_ref(&())
}

/// Labels selecting all pods of a job.
pub fn job_selector(job_name: &str) -> BTreeMap<String, String> {
    [(JOB_NAME_LABEL.to_owned(), job_name.to_owned())].into()
}

/// The pod of replica `index`, planned for `node` at `site`, for gang attempt `restart`.
///
/// The pod is created unbound (`schedulerName: verdant`, no `nodeName`); Verdant binds the
/// whole gang once every pod exists.
pub fn build_pod(job: &TrainingJob, index: u32, site: &str, node: &str, restart: i32) -> Pod {
    let name = job.name_any();
    let template = &job.spec.template;
    let mut metadata = template.metadata.clone().unwrap_or_default();
    let mut labels = metadata.labels.take().unwrap_or_default();
    labels.extend(job_selector(&name));
    labels.insert(REPLICA_INDEX_LABEL.to_owned(), index.to_string());
    labels.insert(RESTART_LABEL.to_owned(), restart.to_string());
    labels.insert(MANAGED_BY_LABEL.to_owned(), "verdant".to_owned());
    let mut annotations = metadata.annotations.take().unwrap_or_default();
    annotations.insert(PLANNED_NODE_ANNOTATION.to_owned(), node.to_owned());
    annotations.insert(SITE_ANNOTATION.to_owned(), site.to_owned());

    let mut spec: PodSpec = template.spec.clone().unwrap_or_default();
    spec.scheduler_name = Some(SCHEDULER_NAME.to_owned());
    spec.node_name = None;
    spec.hostname = Some(pod_name(&name, index));
    spec.subdomain = Some(name.clone());
    spec.restart_policy = Some("Never".to_owned());
    let env = torch_env(job, index, site, restart);
    for (position, container) in spec.containers.iter_mut().enumerate() {
        add_env(container, &env, job.spec.elastic.is_some());
        if position == 0 {
            set_gpu_limit(container, job.spec.gpus_per_replica);
        }
    }

    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(&name, index)),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner_reference(job).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The environment torchrun and Kubeflow-style scripts read, plus Verdant's own.
///
/// An elastic job gets what PyTorchJob's `elasticPolicy` sets: `PET_NNODES=MIN:MAX`, the
/// c10d rendezvous on replica 0's stable name (never removed, so the store outlives
/// every resize), the job's UID as the rendezvous id and `PET_MAX_RESTARTS`; torchrun
/// assigns ranks and world size itself, so `WORLD_SIZE`, `RANK` and `PET_NODE_RANK`
/// (which a resize would make wrong) are left out. `PET_RDZV_CONF` says which agent hosts
/// the c10d store: `is_host=true` on replica 0, `is_host=false` on the others. Left to
/// itself, torchrun hosts it where the endpoint's host matches the machine's hostname or
/// FQDN, and a pod's (`<job>-0`, `<job>-0.<job>.<ns>.svc.<cluster domain>`) never equals
/// `<job>-0.<job>.<ns>.svc`, so no agent would host it and the rendezvous would time out.
pub fn torch_env(job: &TrainingJob, index: u32, site: &str, restart: i32) -> Vec<EnvVar> {
    let replicas = job.spec.replicas;
    let gpus = job.spec.gpus_per_replica;
    let master = master_addr(job);
    let mut vars = vec![
        ("MASTER_ADDR", master.clone()),
        ("MASTER_PORT", MASTER_PORT.to_string()),
    ];
    match &job.spec.elastic {
        None => vars.extend([
            (
                "WORLD_SIZE",
                (i64::from(replicas) * i64::from(gpus)).to_string(),
            ),
            ("RANK", index.to_string()),
            ("PET_NNODES", replicas.to_string()),
            ("PET_NODE_RANK", index.to_string()),
        ]),
        Some(elastic) => vars.extend([
            (
                "PET_NNODES",
                format!("{}:{}", elastic.min_replicas, elastic.max_replicas),
            ),
            ("PET_RDZV_BACKEND", "c10d".to_owned()),
            ("PET_RDZV_ENDPOINT", format!("{master}:{MASTER_PORT}")),
            ("PET_RDZV_ID", job.uid().unwrap_or_else(|| job.name_any())),
            ("PET_MAX_RESTARTS", elastic.max_restarts.to_string()),
            (RDZV_CONF, format!("is_host={}", index == 0)),
        ]),
    }
    vars.extend([
        ("PET_NPROC_PER_NODE", gpus.to_string()),
        ("PET_MASTER_ADDR", master),
        ("PET_MASTER_PORT", MASTER_PORT.to_string()),
        ("VERDANT_JOB", job.name_any()),
        ("VERDANT_SITE", site.to_owned()),
        ("VERDANT_RESTART", restart.to_string()),
    ]);
    vars.into_iter()
        .map(|(name, value)| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            value_from: None,
        })
        .collect()
}

/// Variables a fixed rank implies: wrong for an elastic job after a resize, so not even
/// the template's stay.
const FIXED_RANK_VARS: [&str; 3] = ["WORLD_SIZE", "RANK", "PET_NODE_RANK"];

/// torchrun's `--rdzv_conf` (`key=value,...`).
const RDZV_CONF: &str = "PET_RDZV_CONF";

fn add_env(container: &mut Container, vars: &[EnvVar], elastic: bool) {
    let env = container.env.get_or_insert_with(Vec::new);
    let own_rdzv_conf = env
        .iter()
        .find(|e| e.name == RDZV_CONF && e.value_from.is_none())
        .and_then(|e| e.value.clone());
    // Verdant's values win over the template's: a stale RANK would break the rendezvous.
    env.retain(|existing| {
        let replaced = vars.iter().any(|v| v.name == existing.name);
        let fixed_rank = elastic && FIXED_RANK_VARS.contains(&existing.name.as_str());
        !(replaced || fixed_rank)
    });
    env.extend(vars.iter().cloned().map(|mut var| {
        if var.name == RDZV_CONF
            && let (Some(own), Some(ours)) = (&own_rdzv_conf, &var.value)
        {
            var.value = Some(merged_rdzv_conf(own, ours));
        }
        var
    }));
}

/// The template's rendezvous options (`join_timeout`, `last_call_timeout`, …) followed by
/// Verdant's `ours`, which replace the template's options of the same key.
fn merged_rdzv_conf(own: &str, ours: &str) -> String {
    let key = |option: &str| {
        option
            .split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let our_keys: Vec<String> = ours.split(',').map(key).collect();
    own.split(',')
        .filter(|option| !option.trim().is_empty() && !our_keys.contains(&key(option)))
        .chain(ours.split(','))
        .collect::<Vec<_>>()
        .join(",")
}

fn set_gpu_limit(container: &mut Container, gpus: i32) {
    let resources = container
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    let quantity = Quantity(gpus.to_string());
    resources
        .limits
        .get_or_insert_with(BTreeMap::new)
        .insert(GPU_RESOURCE.to_owned(), quantity.clone());
    resources
        .requests
        .get_or_insert_with(BTreeMap::new)
        .insert(GPU_RESOURCE.to_owned(), quantity);
}

/// The headless Service that gives replica 0 the stable name in `MASTER_ADDR` (for a job
/// that [`needs_service`]).
pub fn build_service(job: &TrainingJob) -> Service {
    let name = job.name_any();
    Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: job.namespace(),
            labels: Some(
                [
                    (JOB_NAME_LABEL.to_owned(), name.clone()),
                    (MANAGED_BY_LABEL.to_owned(), "verdant".to_owned()),
                ]
                .into(),
            ),
            owner_references: owner_reference(job).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(job_selector(&name)),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("torch-rendezvous".to_owned()),
                port: MASTER_PORT,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// GPUs a pod requests (`nvidia.com/gpu` limits, else requests, over all containers).
pub fn pod_gpus(pod: &CachedPod) -> u32 {
    let Some(spec) = &pod.spec else { return 0 };
    spec.containers
        .iter()
        .map(|c| {
            let Some(resources) = &c.resources else {
                return 0;
            };
            let count = |entry: &GpuEntry| entry.0.as_ref().and_then(|q| q.0.parse::<u32>().ok());
            count(&resources.limits)
                .or_else(|| count(&resources.requests))
                .unwrap_or(0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> TrainingJob {
        let mut job: TrainingJob = serde_yaml_ng::from_str(
            r#"
apiVersion: verdant.dev/v1alpha1
kind: TrainingJob
metadata: {name: llama, namespace: ml, uid: 1234}
spec:
  replicas: 2
  gpusPerReplica: 8
  template:
    metadata:
      labels: {team: nlp}
    spec:
      containers:
      - name: trainer
        image: pytorch
        env: [{name: RANK, value: "99"}, {name: EPOCHS, value: "3"}]
      - name: sidecar
        image: busybox
"#,
        )
        .unwrap();
        job.metadata.uid = Some("1234".into());
        job
    }

    fn env_of(pod: &Pod, container: usize) -> BTreeMap<String, String> {
        pod.spec.as_ref().unwrap().containers[container]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn pod_carries_the_pytorchjob_environment() {
        let pod = build_pod(&job(), 1, "solar-a", "node-7", 2);
        let env = env_of(&pod, 0);
        assert_eq!(env["MASTER_ADDR"], "llama-0.llama.ml.svc");
        assert_eq!(env["MASTER_PORT"], "29500");
        assert_eq!(env["WORLD_SIZE"], "16");
        assert_eq!(env["RANK"], "1", "Verdant's RANK replaces the template's");
        assert_eq!(env["PET_NNODES"], "2");
        assert_eq!(env["PET_NPROC_PER_NODE"], "8");
        assert_eq!(env["PET_NODE_RANK"], "1");
        assert_eq!(env["PET_MASTER_ADDR"], "llama-0.llama.ml.svc");
        assert_eq!(env["VERDANT_SITE"], "solar-a");
        assert_eq!(env["VERDANT_RESTART"], "2");
        assert_eq!(env["EPOCHS"], "3", "the template's own variables stay");
        assert_eq!(env_of(&pod, 1)["RANK"], "1", "sidecars see the same rank");
    }

    #[test]
    fn an_elastic_pod_gets_the_c10d_rendezvous_and_no_fixed_rank() {
        let mut job = job();
        job.spec.elastic = Some(verdant_crds::ElasticPolicy {
            min_replicas: 1,
            max_replicas: 4,
            max_restarts: 100,
        });
        let pod = build_pod(&job, 2, "solar-a", "node-7", 0);
        let env = env_of(&pod, 0);
        assert_eq!(env["PET_NNODES"], "1:4");
        assert_eq!(env["PET_RDZV_BACKEND"], "c10d");
        assert_eq!(env["PET_RDZV_ENDPOINT"], "llama-0.llama.ml.svc:29500");
        assert_eq!(env["PET_RDZV_ID"], "1234");
        assert_eq!(env["PET_MAX_RESTARTS"], "100");
        assert_eq!(env["PET_NPROC_PER_NODE"], "8");
        assert_eq!(env["PET_RDZV_CONF"], "is_host=false");
        let first = env_of(&build_pod(&job, 0, "solar-a", "node-7", 0), 0);
        assert_eq!(
            first["PET_RDZV_CONF"], "is_host=true",
            "replica 0 hosts the c10d store"
        );
        for fixed in ["WORLD_SIZE", "RANK", "PET_NODE_RANK"] {
            assert!(
                !env.contains_key(fixed),
                "{fixed} would be wrong after a resize"
            );
        }
        // Not even the template's: torchrun sets them per worker.
        assert_eq!(env_of(&pod, 1).get("RANK"), None);
    }

    #[test]
    fn the_templates_rendezvous_options_stay_before_verdants_is_host() {
        let mut job = job();
        job.spec.elastic = Some(verdant_crds::ElasticPolicy {
            min_replicas: 1,
            max_replicas: 4,
            max_restarts: 100,
        });
        let container = &mut job.spec.template.spec.as_mut().unwrap().containers[0];
        container.env.as_mut().unwrap().push(EnvVar {
            name: "PET_RDZV_CONF".into(),
            value: Some("last_call_timeout=5, is_host=true,join_timeout=60".into()),
            value_from: None,
        });
        let env = env_of(&build_pod(&job, 1, "solar-a", "node-7", 0), 0);
        assert_eq!(
            env["PET_RDZV_CONF"],
            "last_call_timeout=5,join_timeout=60,is_host=false"
        );
        // A job that is not elastic gets no rendezvous options: the template's stay as they are.
        job.spec.elastic = None;
        let env = env_of(&build_pod(&job, 1, "solar-a", "node-7", 0), 0);
        assert_eq!(
            env["PET_RDZV_CONF"],
            "last_call_timeout=5, is_host=true,join_timeout=60"
        );
    }

    #[test]
    fn pod_is_unbound_owned_labelled_and_requests_gpus_on_the_first_container() {
        let pod = build_pod(&job(), 0, "solar-a", "node-7", 0);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("llama-0"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("verdant"));
        assert_eq!(spec.node_name, None, "bound only when the gang is whole");
        assert_eq!(spec.hostname.as_deref(), Some("llama-0"));
        assert_eq!(spec.subdomain.as_deref(), Some("llama"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[JOB_NAME_LABEL], "llama");
        assert_eq!(labels["team"], "nlp");
        assert_eq!(
            pod.metadata.annotations.as_ref().unwrap()[PLANNED_NODE_ANNOTATION],
            "node-7"
        );
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("TrainingJob", Some(true))
        );
        // As the cache reads the pod back from the API server.
        let cached: CachedPod =
            serde_json::from_value(serde_json::to_value(&pod).unwrap()).unwrap();
        assert_eq!(
            pod_gpus(&cached),
            8,
            "only the first container gets the GPUs"
        );
    }

    #[test]
    fn a_single_replica_that_is_not_elastic_is_its_own_master_without_a_service() {
        let mut job = job();
        assert!(needs_service(&job), "two replicas find replica 0 by name");
        job.spec.replicas = 1;
        assert!(!needs_service(&job));
        let env = env_of(&build_pod(&job, 0, "solar-a", "node-7", 0), 0);
        assert_eq!(env["MASTER_ADDR"], "localhost");
        assert_eq!(env["PET_MASTER_ADDR"], "localhost");
        assert_eq!(env["PET_NNODES"], "1");
        assert_eq!(env["WORLD_SIZE"], "8");
        job.spec.elastic = Some(verdant_crds::ElasticPolicy {
            min_replicas: 1,
            max_replicas: 4,
            max_restarts: 100,
        });
        assert!(needs_service(&job), "an elastic job may grow");
        let env = env_of(&build_pod(&job, 0, "solar-a", "node-7", 0), 0);
        assert_eq!(env["PET_RDZV_ENDPOINT"], "llama-0.llama.ml.svc:29500");
    }

    #[test]
    fn service_is_headless_and_selects_the_job() {
        let service = build_service(&job());
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.selector.unwrap()[JOB_NAME_LABEL], "llama");
        assert_eq!(spec.ports.unwrap()[0].port, 29500);
    }
}
