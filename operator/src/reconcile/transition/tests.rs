//! Every phase change of the state machine, one row each: the observed world as YAML, the
//! phase, reason, effects and requeue that must follow.

use serde::Deserialize;
use serde_json::Value;

use super::*;

/// "now" in every case.
const NOW: &str = "2026-01-01T12:00:00Z";

/// The job every case starts from; a case's `job` is merged over it.
const BASE_JOB: &str = "
apiVersion: verdant.dev/v1alpha1
kind: TrainingJob
metadata: {name: j, namespace: ns, uid: u1, generation: 1, creationTimestamp: '2026-01-01T11:00:00Z'}
spec:
  replicas: 2
  gpusPerReplica: 1
  template: {spec: {containers: [{name: c, image: x}]}}
";

/// What a case observes.
#[derive(Deserialize)]
struct World {
    #[serde(default)]
    job: Value,
    #[serde(default)]
    gang: Gang,
    #[serde(default)]
    nodes: BTreeSet<String>,
    #[serde(default)]
    decision: Option<Decision>,
    #[serde(default)]
    placement: Option<Placement>,
    #[serde(default)]
    namespace_terminating: bool,
}

/// An assumed placement, as the cycle leaves it.
#[derive(Deserialize)]
struct Placement {
    site: String,
    nodes: Vec<String>,
    reason: EngineReason,
    message: String,
}

struct Case {
    name: &'static str,
    world: &'static str,
    phase: JobPhase,
    reason: &'static str,
    /// The effects, by kind; an Event as `Event <reason> <action>`.
    effects: &'static [&'static str],
    /// Seconds until the next look; None: on change only.
    requeue: Option<u64>,
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        // Nothing said: the base stays.
        (_, Value::Null) => {}
        (base, over) => *base = over,
    }
}

fn job_of(world: &World) -> TrainingJob {
    let mut job: Value = serde_yaml_ng::from_str(BASE_JOB).unwrap();
    merge(&mut job, world.job.clone());
    serde_json::from_value(job).unwrap()
}

fn world(yaml: &str) -> World {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"))
}

fn now() -> jiff::Timestamp {
    NOW.parse().unwrap()
}

fn run(world: &World) -> Outcome {
    let job = job_of(world);
    let plan = JobPlan {
        decision: world.decision.clone(),
        assumed: world.placement.as_ref().map(|p| Assumed {
            site: p.site.clone(),
            nodes: p.nodes.clone(),
            at_s: 0,
            reason: p.reason,
            message: p.message.clone(),
        }),
    };
    let observed = Observed {
        job: &job,
        gang: &world.gang,
        nodes: &world.nodes,
        namespace_terminating: world.namespace_terminating,
    };
    transition(&observed, &plan, now())
}

fn kinds(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .map(|e| match e {
            Effect::DeletePods { .. } => "DeletePods".to_owned(),
            Effect::ForgetAssumed => "ForgetAssumed".to_owned(),
            Effect::DeleteReplicas { .. } => "DeleteReplicas".to_owned(),
            Effect::EnsureGang { .. } => "EnsureGang".to_owned(),
            Effect::DeleteJob { .. } => "DeleteJob".to_owned(),
            Effect::WakeScheduler => "WakeScheduler".to_owned(),
            Effect::Event { reason, action, .. } => format!("Event {reason} {action}"),
        })
        .collect()
}

const RUNNING_GANG: &str = "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], startTime: '2026-01-01T11:30:00Z'}
gang:
  replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]
nodes: [n1, n2]
";

/// A running elastic job (1 to 4 replicas) of 3 replicas.
const ELASTIC_GANG: &str = "
job:
  spec: {elastic: {minReplicas: 1, maxReplicas: 4}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2, n3], replicas: 3, startTime: '2026-01-01T11:30:00Z'}
gang:
  replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}, {name: j-2, node: n3, phase: Running}]
nodes: [n1, n2, n3, n4]
";

const CASES: &[Case] = &[
    Case {
        name: "a job still undecided 5 s after its creation is queued and wakes the scheduler",
        world: "{}",
        phase: JobPhase::Pending,
        reason: "Queued",
        effects: &["Event Queued Pending", "WakeScheduler"],
        requeue: Some(5),
    },
    Case {
        name: "a pending job without free GPUs waits",
        world: "
job: {status: {phase: Pending, reason: Queued}}
decision: {job: ns/j, action: Wait, reason: WaitingForCapacity, message: 'no 2 free GPUs'}
",
        phase: JobPhase::Pending,
        reason: "WaitingForCapacity",
        effects: &["Event WaitingForCapacity Pending"],
        requeue: Some(60),
    },
    Case {
        name: "a pending job is deferred for renewables",
        world: "
job: {status: {phase: Pending, reason: Queued}}
decision: {job: ns/j, action: !Defer {until_s: 1767276000, expected_renewable_fraction: 0.9}, reason: DeferredForRenewables, message: 'greener at 14:00'}
",
        phase: JobPhase::Deferred,
        reason: "DeferredForRenewables",
        effects: &["Event DeferredForRenewables Deferred"],
        requeue: Some(60),
    },
    Case {
        name: "a job suspended for renewables stays Suspended while deferred",
        world: "
job: {status: {phase: Suspended, reason: SuspendedForRenewables, site: solar-a}}
decision: {job: ns/j, action: !Defer {until_s: null, expected_renewable_fraction: 0.2}, reason: NoGreenWindowInForecast, message: 'no window'}
",
        phase: JobPhase::Suspended,
        reason: "NoGreenWindowInForecast",
        effects: &["Event NoGreenWindowInForecast Suspended"],
        requeue: Some(60),
    },
    Case {
        name: "a placed job starts: placement in the status, then the gang",
        world: "
job: {status: {phase: Deferred, reason: DeferredForRenewables, expectedStartTime: '2026-01-01T14:00:00Z'}}
placement: {site: solar-a, nodes: [n1, n2], reason: PlacedGreen, message: 'renewables cover 0.9'}
nodes: [n1, n2]
",
        phase: JobPhase::Starting,
        reason: "PlacedGreen",
        effects: &["Event PlacedGreen Starting", "EnsureGang"],
        requeue: Some(1),
    },
    Case {
        name: "a suspended job placed again starts with Resumed",
        world: "
job: {status: {phase: Suspended, reason: SuspendedForRenewables, site: solar-a, restarts: 1}}
placement: {site: wind-b, nodes: [n3, n4], reason: Resumed, message: 'resumed at wind-b'}
",
        phase: JobPhase::Starting,
        reason: "Resumed",
        effects: &["Event Resumed Starting", "EnsureGang"],
        requeue: Some(1),
    },
    Case {
        name: "a starting gang with a replica still pending keeps ensuring the gang",
        world: "
job: {status: {phase: Starting, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Pending}]}
nodes: [n1, n2]
",
        phase: JobPhase::Starting,
        reason: "PlacedGreen",
        effects: &["EnsureGang"],
        requeue: Some(2),
    },
    Case {
        name: "a starting gang whose replicas all run is Running, keeping the placement's reason",
        world: "
job: {status: {phase: Starting, reason: PlacedGreen, message: 'renewables cover 0.9', site: solar-a, nodes: [n1, n2]}}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
",
        phase: JobPhase::Running,
        reason: "PlacedGreen",
        effects: &["Event Started Running", "EnsureGang"],
        requeue: Some(300),
    },
    Case {
        name: "a running gang that is fine stays as it is",
        world: RUNNING_GANG,
        phase: JobPhase::Running,
        reason: "PlacedGreen",
        effects: &[],
        requeue: Some(300),
    },
    Case {
        name: "a failed replica restarts the whole gang",
        world: "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], restarts: 0}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Failed}]}
nodes: [n1, n2]
",
        phase: JobPhase::Pending,
        reason: "GangRestart",
        effects: &[
            "DeletePods",
            "ForgetAssumed",
            "Event GangRestart Pending",
            "WakeScheduler",
        ],
        requeue: Some(2),
    },
    Case {
        name: "a lost node restarts the whole gang",
        world: "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1]
",
        phase: JobPhase::Pending,
        reason: "GangRestart",
        effects: &[
            "DeletePods",
            "ForgetAssumed",
            "Event GangRestart Pending",
            "WakeScheduler",
        ],
        requeue: Some(2),
    },
    Case {
        name: "a gang whose pods vanish while its namespace is deleted is not restarted",
        world: "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], restarts: 0}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, null], stale: [j-1]}
nodes: [n1, n2]
namespace_terminating: true
",
        phase: JobPhase::Running,
        reason: "PlacedGreen",
        effects: &[],
        requeue: None,
    },
    Case {
        name: "a planned node that disappeared before its pod existed restarts the gang",
        world: "
job:
  status: {phase: Starting, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}
gang: {replicas: [{name: j-0, node: n1, phase: Pending}, null]}
nodes: [n1]
",
        phase: JobPhase::Pending,
        reason: "GangRestart",
        effects: &[
            "DeletePods",
            "ForgetAssumed",
            "Event GangRestart Pending",
            "WakeScheduler",
        ],
        requeue: Some(2),
    },
    Case {
        name: "a gang that failed past backoffLimit fails the job",
        world: "
job:
  spec: {runPolicy: {backoffLimit: 1}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], restarts: 1}
gang: {replicas: [{name: j-0, node: n1, phase: Failed}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
",
        phase: JobPhase::Failed,
        reason: "BackoffLimitExceeded",
        effects: &[
            "DeletePods",
            "ForgetAssumed",
            "Event BackoffLimitExceeded Failed",
            "WakeScheduler",
        ],
        requeue: None,
    },
    Case {
        name: "a gang whose replicas all succeeded completes the job",
        world: "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}
gang: {replicas: [{name: j-0, node: n1, phase: Succeeded}, {name: j-1, node: n2, phase: Succeeded}]}
nodes: [n1, n2]
",
        phase: JobPhase::Succeeded,
        reason: "Completed",
        effects: &["Event Completed Succeeded", "WakeScheduler"],
        requeue: None,
    },
    Case {
        name: "a job that succeeded with ttlSecondsAfterFinished 0 is deleted at once",
        world: "
job:
  spec: {runPolicy: {ttlSecondsAfterFinished: 0}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}
gang: {replicas: [{name: j-0, node: n1, phase: Succeeded}, {name: j-1, node: n2, phase: Succeeded}]}
nodes: [n1, n2]
",
        phase: JobPhase::Succeeded,
        reason: "Completed",
        effects: &["Event Completed Succeeded", "WakeScheduler", "DeleteJob"],
        requeue: None,
    },
    Case {
        name: "a finished job waits for its TTL",
        world: "
job:
  spec: {runPolicy: {ttlSecondsAfterFinished: 3600}}
  status: {phase: Succeeded, reason: Completed, completionTime: '2026-01-01T11:50:00Z', observedGeneration: 1}
",
        phase: JobPhase::Succeeded,
        reason: "Completed",
        effects: &[],
        requeue: Some(3000),
    },
    Case {
        name: "a failed job's pods that still run are deleted",
        world: "
job: {status: {phase: Failed, reason: BackoffLimitExceeded, completionTime: '2026-01-01T11:50:00Z'}}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, null]}
",
        phase: JobPhase::Failed,
        reason: "BackoffLimitExceeded",
        effects: &["DeletePods"],
        requeue: None,
    },
    Case {
        name: "the engine suspends an interruptible running job for renewables",
        world: "
job:
  spec: {energy: {policy: GreenOnly, interruptible: true}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], startTime: '2026-01-01T11:30:00Z'}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
decision: {job: ns/j, action: Suspend, reason: SuspendedForRenewables, message: 'headroom negative for 10 min'}
",
        phase: JobPhase::Suspended,
        reason: "SuspendedForRenewables",
        effects: &[
            "DeletePods",
            "Event SuspendedForRenewables Suspended",
            "WakeScheduler",
        ],
        requeue: Some(30),
    },
    Case {
        name: "an elastic job is resumable: the engine may suspend it without interruptible",
        world: "
job:
  spec: {replicas: 2, energy: {policy: GreenPreferred}, elastic: {minReplicas: 1, maxReplicas: 4}}
  status: {phase: Running, reason: ScaledDown, site: solar-a, nodes: [n1, n2], startTime: '2026-01-01T11:30:00Z'}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
decision: {job: ns/j, action: Suspend, reason: SuspendedForRenewables, message: 'elastic, at its minimum'}
",
        phase: JobPhase::Suspended,
        reason: "SuspendedForRenewables",
        effects: &[
            "DeletePods",
            "Event SuspendedForRenewables Suspended",
            "WakeScheduler",
        ],
        requeue: Some(30),
    },
    Case {
        name: "a job that is not interruptible is never suspended by the engine",
        world: "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
decision: {job: ns/j, action: Suspend, reason: SuspendedForRenewables, message: 'headroom negative'}
",
        phase: JobPhase::Running,
        reason: "PlacedGreen",
        effects: &[],
        requeue: Some(300),
    },
    Case {
        name: "a power cap on a running job is an Event of the same phase",
        world: "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
decision: {job: ns/j, action: !PowerCap {percent: 70}, reason: PowerCapped, message: 'capped to 70%'}
",
        phase: JobPhase::Running,
        reason: "PowerCapped",
        effects: &["Event PowerCapped Running"],
        requeue: Some(300),
    },
    Case {
        name: "runPolicy.suspend deletes the pods and suspends the job",
        world: "
job:
  spec: {runPolicy: {suspend: true}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], startTime: '2026-01-01T11:30:00Z'}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
",
        phase: JobPhase::Suspended,
        reason: "SuspendedByUser",
        effects: &["DeletePods", "ForgetAssumed", "Event SuspendedByUser Suspended"],
        requeue: None,
    },
    Case {
        name: "a job suspended by the user whose pods are gone waits for a change",
        world: "
job:
  spec: {runPolicy: {suspend: true}}
  status: {phase: Suspended, reason: SuspendedByUser, site: solar-a, observedGeneration: 1}
",
        phase: JobPhase::Suspended,
        reason: "SuspendedByUser",
        effects: &[],
        requeue: None,
    },
    Case {
        name: "runPolicy.suspend false again: Resuming, still Suspended, until a cycle places it",
        world: "
job: {status: {phase: Suspended, reason: SuspendedByUser, site: solar-a}}
",
        phase: JobPhase::Suspended,
        reason: "Resuming",
        effects: &["Event Resuming Suspended", "WakeScheduler"],
        requeue: Some(2),
    },
    Case {
        name: "a job queued in Kueue and not yet admitted waits for Kueue, not the engine",
        world: "
job:
  metadata: {labels: {kueue.x-k8s.io/queue-name: team}}
  status: {phase: Pending, reason: Queued}
decision: {job: ns/j, action: Wait, reason: WaitingForCapacity, message: 'no 2 free GPUs'}
",
        phase: JobPhase::Pending,
        reason: "WaitingForKueue",
        effects: &["ForgetAssumed", "Event WaitingForKueue Pending"],
        requeue: None,
    },
    Case {
        name: "a running job whose Workload Kueue evicted (suspended) loses its pods",
        world: "
job:
  metadata: {labels: {kueue.x-k8s.io/queue-name: team}, annotations: {kueue.verdant.dev/started: w}}
  spec: {runPolicy: {suspend: true}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], startTime: '2026-01-01T11:30:00Z'}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
",
        phase: JobPhase::Suspended,
        reason: "WaitingForKueue",
        effects: &["DeletePods", "ForgetAssumed", "Event WaitingForKueue Suspended"],
        requeue: None,
    },
    Case {
        name: "a job running past activeDeadlineSeconds fails",
        world: "
job:
  spec: {runPolicy: {activeDeadlineSeconds: 600}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], startTime: '2026-01-01T11:30:00Z'}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
",
        phase: JobPhase::Failed,
        reason: "DeadlineExceeded",
        effects: &["DeletePods", "Event DeadlineExceeded Failed", "WakeScheduler"],
        requeue: None,
    },
    Case {
        name: "a running job is looked at again just after its active deadline",
        world: "
job:
  spec: {runPolicy: {activeDeadlineSeconds: 1810}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2], startTime: '2026-01-01T11:30:00Z', observedGeneration: 1}
gang: {replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]}
nodes: [n1, n2]
",
        phase: JobPhase::Running,
        reason: "PlacedGreen",
        effects: &[],
        requeue: Some(11),
    },
    Case {
        name: "a deadline already past at creation is warned once, on acceptance",
        world: "
job:
  spec: {energy: {deadline: '2026-01-01T10:00:00Z', estimatedDuration: 1h}}
",
        phase: JobPhase::Pending,
        reason: "Queued",
        effects: &[
            "Event Queued Pending",
            "Event DeadlineInPast Accepted",
            "WakeScheduler",
        ],
        requeue: Some(5),
    },
    Case {
        name: "a waiting job the engine suspends loses the pods it still has",
        world: "
job: {status: {phase: Pending, reason: GangRestart, restarts: 1}}
gang: {stale: [j-0]}
decision: {job: ns/j, action: Suspend, reason: Suspended, message: 'making room'}
",
        phase: JobPhase::Suspended,
        reason: "Suspended",
        effects: &["DeletePods", "Event Suspended Suspended"],
        requeue: Some(60),
    },
    Case {
        name: "a running elastic job grows: the added replicas start as a gang",
        world: "
job:
  spec: {elastic: {minReplicas: 1, maxReplicas: 4}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2, n3], replicas: 3}
gang:
  replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}, {name: j-2, node: n3, phase: Running}]
nodes: [n1, n2, n3, n4]
placement: {site: solar-a, nodes: [n1, n2, n3, n4], reason: ScaledUp, message: 'grown from 3 to 4 replicas'}
",
        phase: JobPhase::Starting,
        reason: "ScaledUp",
        effects: &["Event ScaledUp Starting", "EnsureGang"],
        requeue: Some(1),
    },
    Case {
        name: "a running elastic job shrinks: its highest replicas go, replica 0 stays",
        world: "
job:
  spec: {elastic: {minReplicas: 1, maxReplicas: 4}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2, n3], replicas: 3}
gang:
  replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}, {name: j-2, node: n3, phase: Running}]
nodes: [n1, n2, n3, n4]
placement: {site: solar-a, nodes: [n1], reason: ScaledDown, message: 'shrunk from 3 to 1 replicas'}
",
        phase: JobPhase::Running,
        reason: "ScaledDown",
        effects: &["DeleteReplicas", "Event ScaledDown Running", "WakeScheduler"],
        requeue: Some(5),
    },
    Case {
        name: "a second shrink in a row is announced too",
        world: "
job:
  spec: {elastic: {minReplicas: 1, maxReplicas: 4}}
  status: {phase: Running, reason: ScaledDown, site: solar-a, nodes: [n1, n2, n3], replicas: 3}
gang:
  replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}, {name: j-2, node: n3, phase: Running}]
nodes: [n1, n2, n3]
placement: {site: solar-a, nodes: [n1, n2], reason: ScaledDown, message: 'shrunk from 3 to 2 replicas'}
",
        phase: JobPhase::Running,
        reason: "ScaledDown",
        effects: &["DeleteReplicas", "Event ScaledDown Running", "WakeScheduler"],
        requeue: Some(5),
    },
    Case {
        name: "a resize that would move replica 0 or change sites is not carried out",
        world: "
job:
  spec: {elastic: {minReplicas: 1, maxReplicas: 4}}
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2, n3], replicas: 3}
gang:
  replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}, {name: j-2, node: n3, phase: Running}]
nodes: [n1, n2, n3, n4]
placement: {site: solar-a, nodes: [n4], reason: ScaledDown, message: 'replica 0 elsewhere'}
",
        phase: JobPhase::Running,
        reason: "PlacedGreen",
        effects: &[],
        requeue: Some(300),
    },
    Case {
        name: "a job that is not elastic is never resized",
        world: "
job:
  status: {phase: Running, reason: PlacedGreen, site: solar-a, nodes: [n1, n2]}
gang:
  replicas: [{name: j-0, node: n1, phase: Running}, {name: j-1, node: n2, phase: Running}]
nodes: [n1, n2, n3]
placement: {site: solar-a, nodes: [n1, n2, n3], reason: ScaledUp, message: 'grown'}
",
        phase: JobPhase::Running,
        reason: "PlacedGreen",
        effects: &[],
        requeue: Some(300),
    },
];

#[test]
fn a_resize_shows_in_the_size_and_deletes_the_highest_replicas() {
    let running = run(&world(ELASTIC_GANG));
    assert_eq!(running.status.size.as_deref(), Some("3/1-4"));
    assert_eq!(
        (running.status.min_replicas, running.status.max_replicas),
        (Some(1), Some(4))
    );
    let shrunk = run(&world(case("a running elastic job shrinks")));
    assert_eq!(shrunk.status.nodes, ["n1"]);
    assert_eq!(shrunk.status.replicas, Some(1));
    assert_eq!(shrunk.status.size.as_deref(), Some("1/1-4"));
    assert_eq!(
        shrunk.status.last_resize_time.as_ref().map(|t| t.0),
        Some(now())
    );
    assert_eq!(
        shrunk.effects[0],
        Effect::DeleteReplicas {
            pods: vec!["j-1".into(), "j-2".into()],
            why: "shrunk from 3 to 1 replicas".into()
        }
    );
    let grown = run(&world(case("a running elastic job grows")));
    assert_eq!(grown.status.size.as_deref(), Some("4/1-4"));
    assert_eq!(
        grown.effects.last().unwrap(),
        &Effect::EnsureGang {
            site: "solar-a".into(),
            nodes: vec!["n1".into(), "n2".into(), "n3".into(), "n4".into()],
            restart: 0
        }
    );
    let plain = run(&world(RUNNING_GANG));
    assert_eq!(plain.status.size.as_deref(), Some("2"), "not elastic");
    assert_eq!(plain.status.min_replicas, None);
}

/// The world of the case whose name starts so.
fn case(name: &str) -> &'static str {
    CASES
        .iter()
        .find(|c| c.name.starts_with(name))
        .unwrap_or_else(|| panic!("no case {name}"))
        .world
}

#[test]
fn every_phase_change_has_its_status_effects_and_requeue() {
    for case in CASES {
        let outcome = run(&world(case.world));
        let name = case.name;
        assert_eq!(outcome.status.phase, case.phase, "{name}");
        assert_eq!(
            outcome.status.reason.as_deref(),
            Some(case.reason),
            "{name}"
        );
        assert_eq!(kinds(&outcome.effects), case.effects, "{name}");
        let requeue = case.requeue.map_or(Requeue::AwaitChange, Requeue::secs);
        assert_eq!(outcome.requeue, requeue, "{name}");
        assert_eq!(outcome.status.observed_generation, Some(1), "{name}");
    }
}

#[test]
fn every_phase_is_reached_by_some_case() {
    for phase in JobPhase::ALL {
        assert!(
            CASES.iter().any(|c| c.phase == phase),
            "no case ends in {phase}"
        );
    }
}

#[test]
fn a_second_pass_over_the_written_status_publishes_nothing_again() {
    for case in CASES {
        let mut world = world(case.world);
        let first = run(&world);
        merge(
            &mut world.job,
            serde_json::json!({"status": serde_json::to_value(&first.status).unwrap()}),
        );
        // The placement is in the status now; the cycle prunes what it assumed.
        world.placement = None;
        let again = run(&world);
        let events: Vec<&Effect> = again
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::Event { .. }))
            .collect();
        // Only a change the second pass makes itself may be published.
        if again.status.phase == first.status.phase && again.status.reason == first.status.reason {
            assert!(events.is_empty(), "{}: {events:?}", case.name);
        }
    }
}

#[test]
fn placement_and_failures_carry_the_details_the_status_promises() {
    let started = run(&world(case("a placed job starts")));
    assert_eq!(started.status.site.as_deref(), Some("solar-a"));
    assert_eq!(started.status.nodes, ["n1", "n2"]);
    assert_eq!(started.status.expected_start_time, None);
    assert_eq!(
        started.effects.last().unwrap(),
        &Effect::EnsureGang {
            site: "solar-a".into(),
            nodes: vec!["n1".into(), "n2".into()],
            restart: 0
        }
    );

    let deferred = run(&world(case("a pending job is deferred")));
    assert_eq!(
        deferred.status.expected_start_time.map(|t| t.0.to_string()),
        Some("2026-01-01T14:00:00Z".to_owned())
    );

    let running = run(&world(case("a starting gang whose replicas all run")));
    assert_eq!(running.status.start_time.map(|t| t.0), Some(now()));
    let message = running.status.message.unwrap();
    assert!(
        message.starts_with("all 2 replicas running at solar-a"),
        "{message}"
    );

    let restarted = run(&world(case("a failed replica restarts")));
    assert_eq!(restarted.status.restarts, 1);
    assert!(restarted.status.nodes.is_empty());
    assert_eq!(restarted.status.site.as_deref(), Some("solar-a"), "kept");
    let message = restarted.status.message.unwrap();
    assert!(
        message.starts_with("replica pod j-1 failed on node n2;"),
        "{message}"
    );
    assert!(message.contains("(restart 1 of at most 3)"), "{message}");

    let failed = run(&world(case("a gang that failed past backoffLimit")));
    assert_eq!(failed.status.completion_time.map(|t| t.0), Some(now()));

    let suspended = run(&world(case("the engine suspends an interruptible")));
    assert_eq!(suspended.status.start_time, None, "the run clock stops");
    assert!(suspended.status.nodes.is_empty());
}

#[test]
fn a_rejected_workload_fails_the_job_and_frees_its_capacity() {
    let world = world(case("a placed job starts"));
    let job = job_of(&world);
    let observed = Observed {
        job: &job,
        gang: &world.gang,
        nodes: &world.nodes,
        namespace_terminating: world.namespace_terminating,
    };
    let attempted = run(&world).status;
    let failed = rejected(
        &observed,
        &attempted,
        "pod j-0",
        "spec.containers[0].name: Invalid value",
        now(),
    );
    assert_eq!(failed.status.phase, JobPhase::Failed);
    assert_eq!(failed.status.reason.as_deref(), Some("FailedCreate"));
    assert!(failed.status.nodes.is_empty());
    assert_eq!(failed.status.completion_time.map(|t| t.0), Some(now()));
    assert!(
        failed
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("pod j-0"),
        "{:?}",
        failed.status.message
    );
    assert_eq!(
        kinds(&failed.effects),
        [
            "DeletePods",
            "ForgetAssumed",
            "Event FailedCreate Failed",
            "WakeScheduler",
        ]
    );
    assert_eq!(failed.requeue, Requeue::AwaitChange);
}

#[test]
fn every_lifecycle_reason_is_produced_by_some_case() {
    let mut outcomes: Vec<Outcome> = CASES.iter().map(|c| run(&world(c.world))).collect();
    let world = world(case("a placed job starts"));
    let job = job_of(&world);
    let observed = Observed {
        job: &job,
        gang: &world.gang,
        nodes: &world.nodes,
        namespace_terminating: world.namespace_terminating,
    };
    outcomes.push(rejected(
        &observed,
        &run(&world).status,
        "pod j-0",
        "invalid",
        now(),
    ));
    let produced: Vec<Reason> = outcomes
        .iter()
        .flat_map(|o| {
            let status = o.status.reason.as_deref().and_then(Reason::from_code);
            let events = o.effects.iter().filter_map(|e| match e {
                Effect::Event { reason, .. } => Some(*reason),
                _ => None,
            });
            status.into_iter().chain(events)
        })
        .collect();
    for reason in Reason::LIFECYCLE {
        assert!(produced.contains(&reason), "no case produces {reason}");
    }
}

#[test]
fn only_a_lost_replica_or_node_marks_the_gang_lost() {
    for case in CASES {
        let world = world(case.world);
        let outcome = run(&world);
        let was_placed = job_of(&world)
            .status
            .is_some_and(|s| matches!(s.phase, JobPhase::Starting | JobPhase::Running));
        let lost = was_placed
            && matches!(case.reason, "GangRestart" | "BackoffLimitExceeded")
            && kinds(&outcome.effects).contains(&"DeletePods".to_owned());
        assert_eq!(outcome.gang_lost, lost, "{}", case.name);
    }
}

#[test]
fn a_job_just_created_writes_nothing_until_the_first_cycle_decides_it() {
    for (created, spec, writes) in [
        ("2026-01-01T11:59:59Z", "{}", false),
        ("2026-01-01T11:59:56Z", "{}", false),
        // An elastic job's size bounds are no reason to write either.
        (
            "2026-01-01T11:59:56Z",
            "{elastic: {minReplicas: 1, maxReplicas: 4}}",
            false,
        ),
        ("2026-01-01T11:59:55Z", "{}", true),
    ] {
        let world = world(&format!(
            "job: {{metadata: {{creationTimestamp: '{created}'}}, spec: {spec}}}"
        ));
        let outcome = run(&world);
        let (reason, effects) = (outcome.status.reason.as_deref(), kinds(&outcome.effects));
        match writes {
            false => {
                assert_eq!(outcome.status, TrainingJobStatus::default(), "no write");
                assert_eq!(effects, ["WakeScheduler"], "created {created}");
                assert_eq!(outcome.requeue, Requeue::secs(5), "created {created}");
            }
            true => {
                assert_eq!(reason, Some("Queued"), "created {created}");
                assert_eq!(effects, ["Event Queued Pending", "WakeScheduler"]);
            }
        }
    }
}
