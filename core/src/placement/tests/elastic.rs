//! Elastic jobs grow on headroom and free GPUs, and shrink before anything is suspended.

use super::*;

/// `job` made elastic between `min` and `max`, last resized at `last_s`.
fn elastic(mut job: Job, min: u32, max: u32, last_s: Option<i64>) -> Job {
    job.elastic = Some(Elastic {
        min_replicas: min,
        max_replicas: max,
        last_resize_s: last_s,
    });
    job
}

fn resized(d: &Decision) -> &[u32] {
    match &d.action {
        Action::Resize { site, nodes } => {
            assert_eq!(site, "solar", "the job stays at its site");
            nodes
        }
        other => panic!("expected a resize, got {other:?}: {}", d.message),
    }
}

/// Four 4-GPU nodes at `solar`; the first `busy` are taken by the running job.
fn four_nodes(busy: usize) -> Vec<Node> {
    (0..4)
        .map(|i| {
            let mut n = node("solar", 4, if i < busy { 4 } else { 0 });
            n.name = format!("solar-{i}");
            n
        })
        .collect()
}

#[test]
fn grows_to_max_when_headroom_and_gpus_allow() {
    // 20 kW, the 1×4 job draws 4: 16 kW left, 3 more replicas need 3 × 4.4 with margin.
    let j = elastic(
        running(
            job("ns/e", 1, 4, Policy::GreenPreferred),
            "solar",
            vec![0],
            NOW - 600,
        ),
        1,
        4,
        None,
    );
    let d = run(&snapshot(
        vec![site("solar", &[20.0; 4])],
        four_nodes(1),
        vec![j],
    ));
    let nodes = resized(&d[0]);
    assert_eq!(nodes.len(), 4);
    assert_eq!(nodes[0], 0, "replica 0 keeps its node");
    assert_eq!(d[0].reason, Reason::ScaledUp);
    assert!(
        d[0].message.contains("from 1 to 4 replicas"),
        "{}",
        d[0].message
    );
    assert!(d[0].message.contains("16.0 kW"), "{}", d[0].message);
}

#[test]
fn grows_only_as_far_as_the_headroom_covers_with_margin() {
    // 10 kW − 4 = 6 kW: one more replica (4.4 kW with margin), not two (8.8).
    let j = elastic(
        running(
            job("ns/e", 1, 4, Policy::GreenPreferred),
            "solar",
            vec![0],
            NOW - 600,
        ),
        1,
        4,
        None,
    );
    let d = run(&snapshot(
        vec![site("solar", &[10.0; 4])],
        four_nodes(1),
        vec![j],
    ));
    assert_eq!(resized(&d[0]), &[0, resized(&d[0])[1]]);
    assert!(
        d[0].message.contains("from 1 to 2 replicas"),
        "{}",
        d[0].message
    );
}

#[test]
fn does_not_grow_into_a_drop_within_the_hold() {
    // Plenty now, nothing after 1 h; grown, the 10-hour job still runs past the drop
    // within the 2 h hold.
    let mut long = job("ns/e", 1, 4, Policy::GreenPreferred);
    long.estimated_duration_s = Some(10 * HOUR);
    let j = elastic(running(long, "solar", vec![0], NOW - 600), 1, 4, None);
    let snap = snapshot(
        vec![site("solar", &[40.0, 0.0, 0.0])],
        four_nodes(1),
        vec![j],
    );
    let config = EngineConfig {
        elastic_grow_hold_s: 2 * HOUR,
        ..config()
    };
    let d = run_cycle(&snap, &config);
    assert_eq!(d[0].action, Action::Keep, "{}", d[0].message);
}

#[test]
fn pending_jobs_get_gpus_before_elastic_growth() {
    let j = elastic(
        running(
            job("ns/e", 1, 4, Policy::GreenPreferred),
            "solar",
            vec![0],
            NOW - 600,
        ),
        1,
        4,
        None,
    );
    let waiting = job("ns/p", 2, 4, Policy::GreenOnly);
    let d = run(&snapshot(
        vec![site("solar", &[40.0; 4])],
        four_nodes(1),
        vec![j, waiting],
    ));
    assert_eq!(placed(find(&d, "ns/p")).1.len(), 2);
    let grown = resized(find(&d, "ns/e"));
    assert_eq!(grown.len(), 2, "one node was left for growth");
}

#[test]
fn shrinks_as_far_as_the_gap_needs_keeping_replica_zero() {
    // 3×4 on nodes 0-2 draw 12 kW of 6: 6 kW short; one replica frees 4, two free 8.
    let j = elastic(
        running(
            job("ns/e", 3, 4, Policy::GreenPreferred),
            "solar",
            vec![0, 1, 2],
            NOW - 600,
        ),
        1,
        4,
        None,
    );
    let d = run(&snapshot(
        vec![site("solar", &[6.0; 4])],
        four_nodes(3),
        vec![j],
    ));
    assert_eq!(resized(&d[0]), &[0]);
    assert_eq!(d[0].reason, Reason::ScaledDown);
    assert!(
        d[0].message.contains("from 3 to 1 replicas"),
        "{}",
        d[0].message
    );
    assert!(d[0].message.contains("-6.0 kW"), "{}", d[0].message);
}

#[test]
fn shrinking_comes_before_suspension_and_stops_at_min() {
    // 4 kW of supply for two jobs of 8 kW each: 12 kW short. The elastic 2×4 (min 1)
    // gives 4 kW; the interruptible GreenOnly job, past the grace, is suspended for the rest.
    let e = elastic(
        running(
            job("ns/e", 2, 4, Policy::GreenPreferred),
            "solar",
            vec![0, 1],
            NOW - 600,
        ),
        1,
        2,
        None,
    );
    let mut g = running(
        job("ns/g", 2, 4, Policy::GreenOnly),
        "solar",
        vec![2, 3],
        NOW - 600,
    );
    g.interruptible = true;
    let mut solar = site("solar", &[4.0; 4]);
    solar.headroom_negative_since_s = Some(NOW - HOUR);
    let d = run(&snapshot(
        vec![solar.clone()],
        four_nodes(4),
        vec![e.clone(), g.clone()],
    ));
    assert_eq!(resized(find(&d, "ns/e")), &[0]);
    assert_eq!(find(&d, "ns/g").action, Action::Suspend);

    // When shrinking closes the gap, nothing is suspended.
    solar.supply = site("solar", &[13.0; 4]).supply;
    let d = run(&snapshot(vec![solar], four_nodes(4), vec![e, g]));
    assert_eq!(resized(find(&d, "ns/e")), &[0]);
    assert_eq!(
        find(&d, "ns/g").action,
        Action::Keep,
        "{}",
        find(&d, "ns/g").message
    );
}

#[test]
fn the_oldest_decision_shrinks_first() {
    let old = elastic(
        running(
            job("ns/old", 2, 4, Policy::GreenPreferred),
            "solar",
            vec![0, 1],
            NOW - 600,
        ),
        1,
        2,
        Some(NOW - 3 * HOUR),
    );
    let new = elastic(
        running(
            job("ns/new", 2, 4, Policy::GreenPreferred),
            "solar",
            vec![2, 3],
            NOW - 600,
        ),
        1,
        2,
        Some(NOW - HOUR),
    );
    // 14 kW for 16: one replica of one job is enough.
    let d = run(&snapshot(
        vec![site("solar", &[14.0; 4])],
        four_nodes(4),
        vec![new, old],
    ));
    assert_eq!(resized(find(&d, "ns/old")), &[0]);
    assert_eq!(find(&d, "ns/new").action, Action::Keep);
}

#[test]
fn a_job_is_not_shrunk_past_its_due_time() {
    // Half of its hour left at 2 replicas; due in 40 minutes: at 1 replica it would take 60.
    let mut j = elastic(
        running(
            job("ns/e", 2, 4, Policy::GreenPreferred),
            "solar",
            vec![0, 1],
            NOW - 1800,
        ),
        1,
        2,
        None,
    );
    j.latest_start_s = Some(NOW + 40 * 60 - HOUR);
    let d = run(&snapshot(
        vec![site("solar", &[2.0; 4])],
        four_nodes(2),
        vec![j.clone()],
    ));
    assert_eq!(d[0].action, Action::Keep, "{}", d[0].message);
    // Due in 2 hours: it may shrink.
    j.latest_start_s = Some(NOW + HOUR);
    let d = run(&snapshot(
        vec![site("solar", &[2.0; 4])],
        four_nodes(2),
        vec![j],
    ));
    assert_eq!(resized(&d[0]), &[0]);
}

/// A 1×4 elastic job (1 to 4) on 20 kW: it grows (for the reason-code census).
pub fn growth() -> Snapshot {
    let j = running(
        job("ns/e", 1, 4, Policy::GreenPreferred),
        "solar",
        vec![0],
        NOW,
    );
    snapshot(
        vec![site("solar", &[20.0; 4])],
        four_nodes(1),
        vec![elastic(j, 1, 4, None)],
    )
}

/// A 3×4 elastic job (1 to 4) drawing 12 kW of 6: it shrinks.
pub fn shrinking() -> Snapshot {
    let j = running(
        job("ns/e", 3, 4, Policy::GreenPreferred),
        "solar",
        vec![0, 1, 2],
        NOW,
    );
    snapshot(
        vec![site("solar", &[6.0; 4])],
        four_nodes(3),
        vec![elastic(j, 1, 4, None)],
    )
}

#[test]
fn an_elastic_job_at_its_minimum_is_suspended_like_an_interruptible_one() {
    // 8 kW drawn on 2 kW, past the grace period. Both jobs are elastic and at their
    // minimum, neither says it checkpoints: the GreenPreferred one with three hours of
    // slack is resumable (torchrun restarts elastic workers from their checkpoint) and is
    // suspended; the Immediate one never is.
    let mut green = elastic(
        running(
            job("ns/green", 1, 4, Policy::GreenPreferred),
            "solar",
            vec![0],
            NOW - 600,
        ),
        1,
        2,
        Some(NOW - HOUR),
    );
    green.latest_start_s = Some(NOW + 3 * HOUR);
    let now = elastic(
        running(
            job("ns/now", 1, 4, Policy::Immediate),
            "solar",
            vec![1],
            NOW - 600,
        ),
        1,
        2,
        Some(NOW - HOUR),
    );
    let mut solar = site("solar", &[2.0; 4]);
    solar.headroom_negative_since_s = Some(NOW - HOUR);
    let snap = snapshot(vec![solar], four_nodes(2), vec![green, now]);
    let d = run(&snap);
    let suspended = find(&d, "ns/green");
    assert_eq!(
        (&suspended.action, suspended.reason),
        (&Action::Suspend, Reason::SuspendedForRenewables),
        "{}",
        suspended.message
    );
    assert!(
        suspended
            .message
            .contains("elastic, at 1 replica(s) (min 1): it resumes from its checkpoint"),
        "{}",
        suspended.message
    );
    assert_eq!(find(&d, "ns/now").action, Action::Keep);

    // Without slack it keeps running, as an interruptible job would.
    let mut tight = snap.clone();
    tight.jobs[0].latest_start_s = Some(NOW + HOUR / 2);
    assert_eq!(find(&run(&tight), "ns/green").action, Action::Keep);
}
