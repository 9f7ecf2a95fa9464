//! Elastic jobs: a running elastic gang follows its site's renewable headroom between its
//! `min_replicas` and `max_replicas`, at the site it was placed at.
//!
//! # Expected flow
//! - **Shrink** (from `brownout.rs`, when the site's headroom is negative now and capping
//!   alone cannot close the gap): elastic jobs give up their highest-index replicas, the
//!   job whose last decision (placement or resize) is oldest first, only as many as close
//!   the gap, never below `min_replicas` and never so far that the job would miss its due
//!   time. This comes before any suspension, and does not wait for the grace period: the
//!   job keeps running, and grows back when headroom returns.
//! - **Grow** (after the queue walk, so that pending jobs get GPUs and headroom first):
//!   an elastic job that is otherwise left alone (`Keep`, uncapped) adds replicas on free
//!   GPUs of its site, as many as the headroom covers, with the `uncap_margin_fraction`
//!   margin, for the next `elastic_grow_hold_s`, up to `max_replicas`, without taking GPUs
//!   or power reserved for the head of the queue.
//!
//! # Assumptions
//! Work scales with the replicas: a job grown from `n` to `m` replicas ends after
//! `n / m` of its remaining time, and draws `m / n` of the power meanwhile (and the
//! reverse for a shrink).
//!
//! # Caveats
//! A resize restarts torchrun's workers from their last in-memory or on-disk state (c10d
//! rendezvous), a cost the engine does not price beyond the hysteresis above.

use std::collections::BTreeSet;

use super::decision::Action;
use super::headroom::EPS;
use super::outcome::decision;
use super::packing::{GangRequest, Release};
use super::power::{cap_factor, job_kw_on, running_end_s, site_pue};
use super::queue::ordered_indices;
use super::reason::Reason;
use super::reservation::head_power_allows;
use super::snapshot::{Job, JobState};
use super::state::Cycle;
use super::timefmt::{format_utc, kw};

/// A running job at `site`, with when it is expected to end.
pub(super) struct Running {
    pub index: usize,
    pub end_s: i64,
}

/// When a job of `remaining_s` left at `from` replicas ends with `to` replicas.
fn resized_end_s(now_s: i64, end_s: i64, from: u32, to: u32) -> i64 {
    let remaining_s = (end_s - now_s).max(0) as f64;
    now_s + (remaining_s * f64::from(from) / f64::from(to.max(1))).ceil() as i64
}

/// The running elastic job at `index`: its bounds, site nodes and start.
fn running_elastic(job: &Job) -> Option<(u32, u32, &[u32], i64)> {
    let elastic = job.elastic?;
    let JobState::Running {
        nodes, started_s, ..
    } = &job.state
    else {
        return None;
    };
    let min = elastic.min_replicas.max(1);
    Some((min, elastic.max_replicas.max(min), nodes, *started_s))
}

/// Shrinks elastic jobs among `jobs` (running at `site`, in queue order) until `gap_kw`
/// is closed or none can give more. Returns the jobs resized and the kW they freed.
pub(super) fn shrink(
    cy: &mut Cycle<'_>,
    site: usize,
    jobs: &[Running],
    gap_kw: f64,
    headroom_kw: f64,
) -> (BTreeSet<usize>, f64) {
    let snap = cy.snap;
    let now_s = cy.now_s;
    let pue = site_pue(&snap.sites[site]);
    let name = cy.site_name(site);
    // Oldest decision first; among equals, the lowest-ordered job first.
    let mut order: Vec<(i64, usize, &Running)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(position, r)| {
            let job = &snap.jobs[r.index];
            let (_, _, _, started_s) = running_elastic(job)?;
            let last_s = job
                .elastic
                .and_then(|e| e.last_resize_s)
                .unwrap_or(started_s);
            Some((last_s, usize::MAX - position, r))
        })
        .collect();
    order.sort_by_key(|&(last_s, reverse_position, _)| (last_s, reverse_position));
    let mut resized = BTreeSet::new();
    let mut freed_total_kw = 0.0;
    let mut gap_kw = gap_kw;
    for (_, _, r) in order {
        if gap_kw <= EPS {
            break;
        }
        let job = &snap.jobs[r.index];
        let Some((min, max, nodes, _)) = running_elastic(job) else {
            continue;
        };
        let from = nodes.len() as u32;
        let due_s = job.due_s(cy.config);
        let cap = cap_factor(job);
        let kw_of =
            |nodes: &[u32]| job_kw_on(job, nodes.iter().copied(), &cy.node_watts, pue) * cap;
        // The fewest replicas removed that close the gap, as far as min and the due time allow.
        let mut chosen = None;
        for to in (min..from).rev() {
            let end_s = resized_end_s(now_s, r.end_s, from, to);
            if due_s.is_some_and(|due| end_s > due) {
                break;
            }
            let freed_kw = kw_of(&nodes[to as usize..]);
            chosen = Some((to, end_s, freed_kw));
            if freed_kw >= gap_kw - EPS {
                break;
            }
        }
        let Some((to, new_end_s, freed_kw)) = chosen else {
            continue;
        };
        let kept_kw = kw_of(&nodes[..to as usize]);
        let timeline = &mut cy.sites[site].timeline;
        timeline.add_load(now_s, r.end_s, -freed_kw);
        timeline.add_load(r.end_s, new_end_s, kept_kw);
        gap_kw -= freed_kw;
        freed_total_kw += freed_kw;
        resized.insert(r.index);
        let due = match due_s {
            Some(due) => format!(", due {}", format_utc(due, now_s)),
            None => String::new(),
        };
        let message = format!(
            "shrunk from {from} to {to} replicas (min {min}, max {max}): headroom at {name} is {} kW \
             and capping cannot close the gap; removing {} replica(s) ({} GPUs) frees {} kW, {}; \
             expected to end {}{due}",
            kw(headroom_kw),
            from - to,
            (from - to) * job.gpus_per_replica,
            kw(freed_kw),
            if gap_kw <= EPS {
                "which closes the gap".to_owned()
            } else {
                format!("{} kW still short", kw(gap_kw))
            },
            format_utc(new_end_s, now_s),
        );
        let action = Action::Resize {
            site: name.to_owned(),
            nodes: nodes[..to as usize].to_vec(),
        };
        cy.decisions[r.index] = Some(decision(job, action, Reason::ScaledDown, message));
    }
    (resized, freed_total_kw)
}

/// Grows every running elastic job that the cycle left alone, in queue order, on the free
/// GPUs and renewable headroom of its site.
pub(super) fn grow(cy: &mut Cycle<'_>) {
    let snap = cy.snap;
    let now_s = cy.now_s;
    for index in ordered_indices(&snap.jobs, now_s, |j| {
        j.elastic.is_some() && matches!(j.state, JobState::Running { .. })
    }) {
        let left_alone = cy.decisions[index]
            .as_ref()
            .is_none_or(|d| d.action == Action::Keep);
        let job = &snap.jobs[index];
        if !left_alone || job.power_cap_percent.is_some_and(|p| p < 100) {
            continue;
        }
        grow_one(cy, index);
    }
}

fn grow_one(cy: &mut Cycle<'_>, index: usize) {
    let snap = cy.snap;
    let (now_s, config) = (cy.now_s, cy.config);
    let job = &snap.jobs[index];
    let Some((min, max, nodes, started_s)) = running_elastic(job) else {
        return;
    };
    let JobState::Running { site, .. } = &job.state else {
        return;
    };
    let Some(&s) = cy.site_index.get(site.as_str()) else {
        return;
    };
    let from = nodes.len() as u32;
    if from == 0 || from >= max {
        return;
    }
    let end_s = running_end_s(job, started_s, now_s, config);
    let allowed: Option<Vec<u32>> = job.allowed_nodes.as_ref().map(|list| {
        let mut at_site: Vec<u32> = list
            .iter()
            .copied()
            .filter(|&n| cy.pool.site_of_node(n) == Some(s))
            .collect();
        at_site.sort_unstable();
        at_site.dedup();
        at_site
    });
    let request = |replicas: u32| GangRequest {
        replicas,
        gpus_per_replica: job.gpus_per_replica,
        end_s,
        allowed: allowed.as_deref(),
    };
    let fitting = match cy.pool.plan(s, &request(max - from), true) {
        Ok(_) => max - from,
        Err(fit) => fit,
    };
    if fitting == 0 || job.gpus_per_replica == 0 {
        return;
    }
    let pue = site_pue(&snap.sites[s]);
    let old_kw = job_kw_on(job, nodes.iter().copied(), &cy.node_watts, pue);
    let margin = 1.0 + config.uncap_margin_fraction.max(0.0);
    let hold_s = config.elastic_grow_hold_s.max(1);
    // The most replicas whose power the headroom covers, with margin, over the hold.
    let mut chosen = None;
    for added in (1..=fitting).rev() {
        let Ok(plan) = cy.pool.plan(s, &request(added), true) else {
            continue;
        };
        let new_nodes = plan.node_per_replica();
        let added_kw = job_kw_on(job, new_nodes.iter().copied(), &cy.node_watts, pue);
        let new_end_s = resized_end_s(now_s, end_s, from, from + added);
        let until_s = (now_s + hold_s).min(new_end_s).max(now_s + 1);
        let need_kw = added_kw * margin;
        let covered = cy.sites[s]
            .timeline
            .covered_kws(now_s, until_s, need_kw, 0.0, None);
        if covered >= need_kw * (until_s - now_s) as f64 * (1.0 - 1e-9)
            && head_power_allows(cy, s, new_end_s, added_kw)
        {
            chosen = Some((plan, new_nodes, added_kw, new_end_s, until_s));
            break;
        }
    }
    let Some((plan, new_nodes, added_kw, new_end_s, until_s)) = chosen else {
        return;
    };
    let headroom_kw = cy.sites[s].timeline.at(now_s);
    cy.pool.commit(&plan, job.gpus_per_replica, new_end_s);
    for &(node, k) in &plan.picks {
        cy.releases[s].push(Release {
            node,
            gpus: k * job.gpus_per_replica,
            end_s: new_end_s,
        });
    }
    let timeline = &mut cy.sites[s].timeline;
    timeline.add_load(now_s, new_end_s, added_kw);
    timeline.add_load(new_end_s, end_s, -old_kw);
    let to = from + new_nodes.len() as u32;
    let message = format!(
        "grown from {from} to {to} replicas (min {min}, max {max}): headroom at {} is {} kW and \
         covers the {} kW of {} more replica(s) plus a {:.0}% margin until {}; {} free GPUs on {} \
         node(s); expected to end {} instead of {}",
        cy.site_name(s),
        kw(headroom_kw),
        kw(added_kw),
        to - from,
        100.0 * (margin - 1.0),
        format_utc(until_s, now_s),
        (to - from) * job.gpus_per_replica,
        plan.picks.len(),
        format_utc(new_end_s, now_s),
        format_utc(end_s, now_s),
    );
    let mut all_nodes = nodes.to_vec();
    all_nodes.extend(new_nodes);
    let action = Action::Resize {
        site: cy.site_name(s).to_owned(),
        nodes: all_nodes,
    };
    cy.decisions[index] = Some(decision(job, action, Reason::ScaledUp, message));
}
