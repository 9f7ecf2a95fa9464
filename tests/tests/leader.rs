//! Leader election (`verdant_operator::leader`) against a real kube-apiserver: electors
//! in this process, each with its own client, on a Lease in a test namespace.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use verdant_operator::leader::{Elector, Leadership, LeaseConfig, LeaseError};
use verdant_tests::proxy::CuttableProxy;
use verdant_tests::{ControlPlane, TestNamespace, wait};

const LEASE: &str = "verdant-operator-leader";

fn config(ns: &str, identity: &str, lease_s: u64) -> LeaseConfig {
    LeaseConfig {
        name: LEASE.to_owned(),
        namespace: ns.to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(lease_s),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(250),
    }
}

/// A running elector: its handle, and its task (aborted as a SIGKILL would end it).
struct Candidate {
    identity: String,
    leadership: Leadership,
    task: tokio::task::JoinHandle<Result<(), LeaseError>>,
}

fn campaign(client: kube::Client, config: LeaseConfig) -> Candidate {
    let identity = config.identity.clone();
    let (elector, leadership) = Elector::new(client, config);
    Candidate {
        identity,
        leadership,
        task: tokio::spawn(elector.run()),
    }
}

async fn holder(leases: &Api<Lease>) -> anyhow::Result<Option<String>> {
    Ok(leases
        .get_opt(LEASE)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

/// Waits until exactly one of `candidates` leads, and returns its index.
async fn one_leader(candidates: &[&Candidate]) -> anyhow::Result<usize> {
    wait::until("exactly one leader", Duration::from_secs(20), || async {
        let leading: Vec<usize> = (0..candidates.len())
            .filter(|&i| candidates[i].leadership.is_leading())
            .collect();
        Ok(match leading[..] {
            [one] => Ok(one),
            _ => Err(format!("leading: {leading:?}")),
        })
    })
    .await
}

#[tokio::test]
async fn two_candidates_elect_one_leader_and_the_other_takes_over_after_expiry()
-> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "leader-takeover").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    let lease_s = 3;
    let a = campaign(
        plane.client().await?,
        config(ns.name(), "replica-a", lease_s),
    );
    let b = campaign(
        plane.client().await?,
        config(ns.name(), "replica-b", lease_s),
    );

    let first = one_leader(&[&a, &b]).await?;
    let (leader, follower) = if first == 0 { (&a, &b) } else { (&b, &a) };
    assert_eq!(
        holder(&leases).await?.as_deref(),
        Some(leader.identity.as_str())
    );
    // The follower knows the leader, and stays a follower over several renewals.
    wait::until(
        "the follower to know the leader",
        Duration::from_secs(10),
        || async {
            let view = follower.leadership.view();
            Ok(match view.holder {
                Some(h) if h == leader.identity && !view.leading => Ok(()),
                _ => Err(format!("{view:?}")),
            })
        },
    )
    .await?;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(lease_s + 1) {
        assert!(leader.leadership.is_leading(), "the leader keeps renewing");
        assert!(!follower.leadership.is_leading(), "never two leaders");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let transitions_before = leases
        .get(LEASE)
        .await?
        .spec
        .and_then(|s| s.lease_transitions);

    // SIGKILL-like: the leader stops without handing the Lease back.
    leader.task.abort();
    let killed = Instant::now();
    wait::until(
        "the follower to take over",
        Duration::from_secs(15),
        || async {
            Ok(if follower.leadership.is_leading() {
                Ok(())
            } else {
                Err(format!("{:?}", follower.leadership.view()))
            })
        },
    )
    .await?;
    let takeover = killed.elapsed();
    println!("takeover after {takeover:?} (lease {lease_s} s)");
    // It waited for the Lease to expire on its own clock, and not much longer.
    assert!(
        takeover >= Duration::from_millis(lease_s * 1000 - 500),
        "took over after {takeover:?}, before the {lease_s} s lease expired"
    );
    assert!(takeover <= Duration::from_secs(lease_s + 3), "{takeover:?}");
    let lease = leases.get(LEASE).await?.spec.unwrap_or_default();
    assert_eq!(
        lease.holder_identity.as_deref(),
        Some(follower.identity.as_str())
    );
    assert_eq!(
        lease.lease_transitions,
        transitions_before.map(|t| t + 1),
        "a change of holder counts as a transition"
    );
    follower.task.abort();
    Ok(())
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_before_another_takes_over() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "leader-partition").await?;
    let lease_s = 3;

    // The first candidate reaches the API server through a proxy that the test cuts.
    let mut via_proxy = plane.config().await?;
    let server = via_proxy
        .cluster_url
        .authority()
        .map(|a| a.to_string())
        .expect("the kubeconfig names a server");
    let proxy = CuttableProxy::start(server).await?;
    via_proxy.cluster_url = format!("https://127.0.0.1:{}", proxy.port).parse()?;
    let a = campaign(
        kube::Client::try_from(via_proxy)?,
        config(ns.name(), "partitioned", lease_s),
    );
    one_leader(&[&a]).await?;
    let b = campaign(plane.client().await?, config(ns.name(), "healthy", lease_s));
    wait::until(
        "the second candidate to follow",
        Duration::from_secs(10),
        || async {
            let view = b.leadership.view();
            Ok(match view.holder.as_deref() {
                Some("partitioned") => Ok(()),
                _ => Err(format!("{view:?}")),
            })
        },
    )
    .await?;

    proxy.cut();
    let cut = Instant::now();
    // Watch both: the partitioned leader must stop (fail-stop) before the other leads.
    let mut stopped = None;
    let mut taken = None;
    while taken.is_none() && cut.elapsed() < Duration::from_secs(20) {
        if stopped.is_none() && !a.leadership.is_leading() {
            stopped = Some(cut.elapsed());
        }
        if taken.is_none() && b.leadership.is_leading() {
            taken = Some(cut.elapsed());
            assert!(
                stopped.is_some(),
                "the new leader leads while the partitioned one still believes it does"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stopped, taken) = (
        stopped.expect("the partitioned leader stopped"),
        taken.expect("the healthy candidate took over"),
    );
    println!("partitioned leader stopped after {stopped:?}, takeover after {taken:?}");
    assert!(stopped <= Duration::from_millis(1500 + 1000), "{stopped:?}");
    let result = tokio::time::timeout(Duration::from_secs(5), a.task).await??;
    match result {
        Err(LeaseError::Lost { reason, .. }) => {
            assert!(reason.contains("no successful renewal"), "{reason}")
        }
        other => panic!("the partitioned elector should report a lost Lease: {other:?}"),
    }
    b.task.abort();
    Ok(())
}

#[tokio::test]
async fn a_resigning_leader_hands_over_without_waiting_for_expiry() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "leader-resign").await?;
    // A long lease: a handover faster than it can only come from the release.
    let lease_s = 30;
    // Renewing all the time, so that the resignation may cut a renewal short.
    let mut busy = config(ns.name(), "old", lease_s);
    busy.retry_period = Duration::from_millis(20);
    let a = campaign(plane.client().await?, busy);
    one_leader(&[&a]).await?;
    let b = campaign(plane.client().await?, config(ns.name(), "new", lease_s));
    wait::until(
        "the second candidate to follow",
        Duration::from_secs(10),
        || async {
            Ok(match b.leadership.view().holder.as_deref() {
                Some("old") => Ok(()),
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await?;

    a.leadership.resign();
    let resigned = Instant::now();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), a.task).await??,
        Ok(())
    ));
    assert!(!a.leadership.is_leading());
    one_leader(&[&b]).await?;
    let handover = resigned.elapsed();
    println!("handover after {handover:?}");
    assert!(handover < Duration::from_secs(5), "{handover:?}");
    b.task.abort();
    Ok(())
}

#[tokio::test]
async fn a_leader_that_finds_another_holder_stops_at_once() -> anyhow::Result<()> {
    let plane = ControlPlane::shared();
    let client = plane.client().await?;
    let ns = TestNamespace::create(plane, &client, "leader-usurped").await?;
    let a = campaign(plane.client().await?, config(ns.name(), "leader", 30));
    one_leader(&[&a]).await?;
    // Someone (an operator by hand, a replica with a skewed view) writes the Lease.
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    let mut lease = leases.get(LEASE).await?;
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("someone-else".to_owned());
    }
    leases.replace(LEASE, &Default::default(), &lease).await?;
    let result = tokio::time::timeout(Duration::from_secs(5), a.task).await??;
    match result {
        Err(LeaseError::Lost { reason, .. }) => {
            assert!(reason.contains("someone-else"), "{reason}")
        }
        other => panic!("expected a lost Lease: {other:?}"),
    }
    assert!(!a.leadership.is_leading());
    Ok(())
}
