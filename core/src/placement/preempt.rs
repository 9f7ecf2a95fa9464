//! Making room for a job whose latest start has come: suspending interruptible jobs that
//! still have slack.
//!
//! Interruptible jobs with slack start on green power only and fill green capacity (see
//! `policy.rs`); when a job that may wait no longer then finds no GPUs anywhere, waiting
//! for a running job to end would miss its deadline. The engine then suspends, at one
//! site, the fewest GPUs' worth of suspendable jobs (lowest-ordered first) whose nodes let
//! the gang fit. Their pods terminate during this cycle, so the job is placed in the
//! next one, first in the queue (it has the least slack).

use super::brownout::suspendable;
use super::decision::Action;
use super::outcome::decision;
use super::power::{cap_factor, job_kw_on, running_end_s, site_pue};
use super::queue::ordered_indices;
use super::reason::Reason;
use super::snapshot::JobState;
use super::state::{Cycle, JobView};
use super::timefmt::{format_duration, kw};

/// Suspends what the job needs and returns the message for its `Wait`, or `None` if no
/// site can make room.
pub(super) fn make_room(cy: &mut Cycle<'_>, view: &JobView<'_>) -> Option<String> {
    let snap = cy.snap;
    let (now_s, config) = (cy.now_s, cy.config);
    // Running suspendable jobs not yet stopped this cycle, lowest-ordered first.
    let mut candidates: Vec<usize> = ordered_indices(&snap.jobs, now_s, |j| {
        matches!(j.state, JobState::Running { .. }) && suspendable(j, now_s, config)
    });
    candidates.reverse();
    candidates.retain(|&i| {
        !matches!(
            cy.decisions[i].as_ref().map(|d| &d.action),
            Some(Action::Suspend)
        )
    });
    let mut best: Option<(u64, usize, Vec<usize>)> = None;
    for &s in &view.feasible {
        let site_name = cy.site_name(s);
        let mut pool = cy.pool.clone();
        let mut victims = Vec::new();
        let req = view.request(s, view.end_now_s);
        let mut fitted = None;
        for &i in &candidates {
            let job = &snap.jobs[i];
            let JobState::Running { site, nodes, .. } = &job.state else {
                continue;
            };
            if site != site_name {
                continue;
            }
            for &n in nodes {
                pool.free_up(n, job.gpus_per_replica);
            }
            victims.push(i);
            if let Ok(plan) = pool.plan(s, &req, true) {
                fitted = Some(plan);
                break;
            }
        }
        let Some(plan) = fitted else {
            continue;
        };
        // Keep only the victims whose nodes the gang takes.
        victims.retain(|&i| match &snap.jobs[i].state {
            JobState::Running { nodes, .. } => {
                nodes.iter().any(|n| plan.picks.iter().any(|(p, _)| p == n))
            }
            _ => false,
        });
        let gpus: u64 = victims.iter().map(|&i| snap.jobs[i].total_gpus()).sum();
        if best.as_ref().is_none_or(|(g, _, _)| gpus < *g) {
            best = Some((gpus, s, victims));
        }
    }
    let (gpus, s, victims) = best?;
    let site_name = cy.site_name(s);
    let mut names = Vec::with_capacity(victims.len());
    for &i in &victims {
        let job = &snap.jobs[i];
        let JobState::Running {
            nodes, started_s, ..
        } = &job.state
        else {
            continue;
        };
        let end_s = running_end_s(job, *started_s, now_s, cy.config);
        let power_kw = job_kw_on(
            job,
            nodes.iter().copied(),
            &cy.node_watts,
            site_pue(&snap.sites[s]),
        ) * cap_factor(job);
        cy.sites[s].timeline.add_load(now_s, end_s, -power_kw);
        let slack = match job.latest_start_s {
            Some(t) => format!(
                "its own latest start is {} away",
                format_duration(t - now_s)
            ),
            None => "it has no latest start".to_owned(),
        };
        let message = format!(
            "suspended to make room for {}, whose latest start has come: {} GPUs at {site_name} \
             ({} kW); {slack}, so it can wait",
            view.job.id,
            job.total_gpus(),
            kw(power_kw),
        );
        cy.decisions[i] = Some(decision(job, Action::Suspend, Reason::Suspended, message));
        names.push(job.id.as_str());
    }
    Some(format!(
        "waiting: latest start has come and no site has {} free; suspending {} ({gpus} GPUs of \
         interruptible jobs with slack) at {site_name} to make room, placed next cycle",
        view.shape(),
        names.join(", ")
    ))
}
