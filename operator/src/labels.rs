//! Names Verdant puts on the objects it manages.

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "verdant-operator";
/// The scheduler name on Verdant's pods: no other scheduler touches them.
pub const SCHEDULER_NAME: &str = "verdant";
/// The finalizer that makes the operator delete a job's pods and Service (the test control
/// plane, like any cluster without a garbage collector, would leave them).
pub const FINALIZER: &str = "verdant.dev/cleanup";

/// Label: the TrainingJob a pod or Service belongs to.
pub const JOB_NAME_LABEL: &str = "verdant.dev/job-name";
/// The longest label value Kubernetes accepts.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Label: the replica index (the node rank) of a pod.
pub const REPLICA_INDEX_LABEL: &str = "verdant.dev/replica-index";
/// Label: the gang restart count a pod was created for.
pub const RESTART_LABEL: &str = "verdant.dev/restart";
/// Label: `app.kubernetes.io/managed-by`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotation on a pod: the node Verdant planned for it (bound only when the gang is whole).
pub const PLANNED_NODE_ANNOTATION: &str = "verdant.dev/planned-node";
/// Annotation on a pod: the EnergySite it runs at.
pub const SITE_ANNOTATION: &str = "verdant.dev/site";

/// The GPU resource name.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Node label with the GPU model (set by NVIDIA GPU feature discovery).
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
/// The rendezvous port torchrun uses, as Kubeflow's PyTorchJob does.
pub const MASTER_PORT: i32 = 29500;
