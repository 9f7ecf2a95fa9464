//! Running jobs: close negative headroom (power caps first, then shrinking elastic jobs
//! (`elastic.rs`), then suspensions of interruptible jobs after the grace period), and
//! lift caps again when headroom returns with margin.
//!
//! Jobs are shed lowest-ordered first (the reverse of the queue order), and only as far
//! as needed: capping is immediate and reversible, suspension costs a checkpoint restart,
//! so a job is suspended only if capping everything cappable would not close the gap, and
//! only until what remains can be closed by capping. Suspendable are resumable
//! ([`Job::resumable`]: interruptible, or elastic) GreenOnly jobs, and resumable
//! GreenPreferred jobs whose latest start is still at least
//! [`EngineConfig::suspend_min_slack_s`] ahead (an hour by default): they can wait for the
//! next green window and still make their deadline, since the queue resumes them at their
//! latest start at the latest. Elastic jobs shrink first; one is suspended only in a later
//! cycle, when shrinking (not below its minimum) did not close the gap.

use std::collections::BTreeSet;

use super::decision::Action;
use super::elastic;
use super::headroom::EPS;
use super::outcome::decision;
use super::power::{job_kw_on, running_end_s, site_pue};
use super::queue::ordered_indices;
use super::reason::Reason;
use super::snapshot::{EngineConfig, Job, JobState, Policy};
use super::state::Cycle;
use super::timefmt::{format_duration, format_utc, kw};

/// Whether a brown-out may suspend `job` at `now_s` (see the module docs).
pub(super) fn suspendable(job: &Job, now_s: i64, config: &EngineConfig) -> bool {
    job.resumable()
        && match job.policy {
            Policy::GreenOnly => true,
            Policy::GreenPreferred => job
                .latest_start_s
                .is_some_and(|latest| latest - now_s >= config.suspend_min_slack_s),
            Policy::Immediate => false,
        }
}

struct RunningJob<'a> {
    index: usize,
    job: &'a Job,
    uncapped_kw: f64,
    cap_percent: u32,
    end_s: i64,
}

impl RunningJob<'_> {
    fn effective_kw(&self) -> f64 {
        self.uncapped_kw * f64::from(self.cap_percent) / 100.0
    }

    /// kW capping could still save, down to the job's minimum.
    fn cap_room_kw(&self) -> f64 {
        match self.job.power_cap_min_percent {
            Some(min) if min < self.cap_percent => {
                self.uncapped_kw * f64::from(self.cap_percent - min) / 100.0
            }
            _ => 0.0,
        }
    }
}

/// Decides for every running job; they are then `Keep` unless shed or uncapped.
pub(super) fn decide_running(cy: &mut Cycle<'_>) {
    let snap = cy.snap;
    let now_s = cy.now_s;
    let mut by_site: Vec<Vec<RunningJob<'_>>> = (0..cy.sites.len()).map(|_| Vec::new()).collect();
    for index in ordered_indices(&snap.jobs, now_s, |j| {
        matches!(j.state, JobState::Running { .. })
    }) {
        let job = &snap.jobs[index];
        let JobState::Running {
            site,
            nodes,
            started_s,
        } = &job.state
        else {
            continue;
        };
        let Some(&s) = cy.site_index.get(site.as_str()) else {
            let message =
                format!("running at {site}, a site the engine has no forecast for; left alone");
            cy.decisions[index] = Some(decision(job, Action::Keep, Reason::Running, message));
            continue;
        };
        by_site[s].push(RunningJob {
            index,
            job,
            uncapped_kw: job_kw_on(
                job,
                nodes.iter().copied(),
                &cy.node_watts,
                site_pue(&snap.sites[s]),
            ),
            cap_percent: job.power_cap_percent.unwrap_or(100).min(100),
            end_s: running_end_s(job, *started_s, now_s, cy.config),
        });
    }
    for (s, mut jobs) in by_site.into_iter().enumerate() {
        raise_to_floor(cy, s, &mut jobs);
        let headroom_kw = cy.sites[s].timeline.at(now_s);
        if headroom_kw < -EPS {
            shed(cy, s, &jobs, headroom_kw);
        } else {
            lift_caps(cy, s, &jobs, headroom_kw);
        }
        for j in &jobs {
            if cy.decisions[j.index].is_none() {
                let message = keep_message(cy, s, j);
                cy.decisions[j.index] =
                    Some(decision(j.job, Action::Keep, Reason::Running, message));
            }
        }
    }
}

/// A cap below the job's minimum (the minimum was raised since) is brought up to it
/// first, whatever the headroom: the minimum is the job owner's limit, not a preference.
/// Later steps may still suspend the job or lift its cap further.
fn raise_to_floor(cy: &mut Cycle<'_>, site: usize, jobs: &mut [RunningJob<'_>]) {
    let now_s = cy.now_s;
    for j in jobs.iter_mut() {
        let floor = match j.job.power_cap_min_percent {
            Some(min) if min.min(100) > j.cap_percent => min.min(100),
            _ => continue,
        };
        let added_kw = j.uncapped_kw * f64::from(floor - j.cap_percent) / 100.0;
        cy.sites[site].timeline.add_load(now_s, j.end_s, added_kw);
        let message = format!(
            "power cap raised from {}% to the job's minimum {floor}% (+{} kW)",
            j.cap_percent,
            kw(added_kw)
        );
        let (action, reason) = if floor >= 100 {
            (Action::Uncap, Reason::PowerUncapped)
        } else {
            (Action::PowerCap { percent: floor }, Reason::PowerCapped)
        };
        cy.decisions[j.index] = Some(decision(j.job, action, reason, message));
        j.cap_percent = floor;
    }
}

/// Headroom at `site` is `headroom_kw` < 0: cap and, past the grace period, suspend.
fn shed(cy: &mut Cycle<'_>, site: usize, jobs: &[RunningJob<'_>], headroom_kw: f64) {
    let now_s = cy.now_s;
    let name = cy.site_name(site);
    let lowest_first: Vec<&RunningJob<'_>> = jobs.iter().rev().collect();
    let mut gap_kw = -headroom_kw;
    let mut room_kw: f64 = lowest_first.iter().map(|j| j.cap_room_kw()).sum();
    let negative_since_s = cy.sites[site].site.headroom_negative_since_s;
    let grace_s = cy.config.green_only_grace_s;
    // Elastic jobs shrink first, without a grace period: they keep running.
    let mut suspended = BTreeSet::new();
    if gap_kw > room_kw + EPS {
        let running: Vec<elastic::Running> = jobs
            .iter()
            .map(|j| elastic::Running {
                index: j.index,
                end_s: j.end_s,
            })
            .collect();
        let (resized, freed_kw) =
            elastic::shrink(cy, site, &running, gap_kw - room_kw, headroom_kw);
        gap_kw -= freed_kw;
        for j in jobs.iter().filter(|j| resized.contains(&j.index)) {
            room_kw -= j.cap_room_kw();
        }
        // A resized job has its decision: neither suspended nor capped this cycle.
        suspended = resized;
    }
    if let Some(since_s) = negative_since_s.filter(|&t| now_s - t >= grace_s)
        && gap_kw > room_kw + EPS
    {
        let room_before_kw = room_kw;
        for j in &lowest_first {
            if gap_kw <= room_kw + EPS {
                break;
            }
            if suspended.contains(&j.index) || !suspendable(j.job, now_s, cy.config) {
                continue;
            }
            let freed_kw = j.effective_kw();
            gap_kw -= freed_kw;
            room_kw -= j.cap_room_kw();
            cy.sites[site].timeline.add_load(now_s, j.end_s, -freed_kw);
            suspended.insert(j.index);
            let mut message = format!(
                "suspended: headroom at {name} has been negative since {} ({} ≥ {} grace), {} kW short; \
                 capping could save {} kW; suspending frees {} kW, {} kW left to close by capping",
                format_utc(since_s, now_s),
                format_duration(now_s - since_s),
                format_duration(grace_s),
                kw(-headroom_kw),
                kw(room_before_kw),
                kw(freed_kw),
                kw(gap_kw.max(0.0)),
            );
            if let (Some(elastic), JobState::Running { nodes, .. }) = (j.job.elastic, &j.job.state)
            {
                message.push_str(&format!(
                    "; elastic, at {} replica(s) (min {}): it resumes from its checkpoint, \
                     as after a resize",
                    nodes.len(),
                    elastic.min_replicas
                ));
            }
            cy.decisions[j.index] = Some(decision(
                j.job,
                Action::Suspend,
                Reason::SuspendedForRenewables,
                message,
            ));
        }
    }
    for j in &lowest_first {
        if gap_kw <= EPS {
            break;
        }
        let Some(min) = j.job.power_cap_min_percent else {
            continue;
        };
        if suspended.contains(&j.index) || j.cap_room_kw() <= 0.0 {
            continue;
        }
        let want_kw = gap_kw.min(j.cap_room_kw());
        // Round the percent down (more saving), but forgive float dust on exact fits.
        let target = (f64::from(j.cap_percent) - 100.0 * want_kw / j.uncapped_kw + 1e-9).floor();
        let percent = (target.max(f64::from(min)) as u32).min(j.cap_percent);
        if percent >= j.cap_percent {
            continue;
        }
        let saved_kw = j.uncapped_kw * f64::from(j.cap_percent - percent) / 100.0;
        gap_kw -= saved_kw;
        cy.sites[site].timeline.add_load(now_s, j.end_s, -saved_kw);
        let outcome = if gap_kw <= EPS {
            "which closes the gap".to_string()
        } else {
            format!("{} kW still short", kw(gap_kw))
        };
        let message = format!(
            "power capped to {percent}% (min {min}%): headroom at {name} is {} kW; the cap saves {} kW of \
             the job's {} kW, {outcome}",
            kw(headroom_kw),
            kw(saved_kw),
            kw(j.uncapped_kw),
        );
        let action = Action::PowerCap { percent };
        cy.decisions[j.index] = Some(decision(j.job, action, Reason::PowerCapped, message));
    }
}

/// Headroom at `site` is `headroom_kw` ≥ 0: lift caps, highest-ordered job first, while
/// the site keeps a margin.
fn lift_caps(cy: &mut Cycle<'_>, site: usize, jobs: &[RunningJob<'_>], headroom_kw: f64) {
    let now_s = cy.now_s;
    let name = cy.site_name(site);
    let mut left_kw = headroom_kw;
    for j in jobs.iter().filter(|j| j.cap_percent < 100) {
        let delta_kw = j.uncapped_kw - j.effective_kw();
        let margin_kw = cy.config.uncap_margin_fraction.max(0.0) * j.uncapped_kw;
        let (action, message) = if j.job.power_cap_min_percent.is_none() {
            (
                Action::Uncap,
                "uncapped: the job no longer allows power capping".to_string(),
            )
        } else if left_kw - delta_kw >= margin_kw - EPS {
            let message = format!(
                "uncapped: headroom at {name} is {} kW, enough for the {} kW the {}% cap saved plus a {} kW margin",
                kw(left_kw),
                kw(delta_kw),
                j.cap_percent,
                kw(margin_kw)
            );
            (Action::Uncap, message)
        } else if left_kw - margin_kw > EPS && j.uncapped_kw > 0.0 {
            let raised =
                (f64::from(j.cap_percent) + 100.0 * (left_kw - margin_kw) / j.uncapped_kw + 1e-9)
                    .floor();
            let percent = (raised as u32).min(99);
            if percent <= j.cap_percent {
                continue;
            }
            let message = format!(
                "power cap raised from {}% to {percent}%: headroom at {name} is {} kW, keeping a {} kW margin",
                j.cap_percent,
                kw(left_kw),
                kw(margin_kw)
            );
            (Action::PowerCap { percent }, message)
        } else {
            continue;
        };
        let added_kw = match action {
            Action::PowerCap { percent } => {
                j.uncapped_kw * f64::from(percent - j.cap_percent) / 100.0
            }
            _ => delta_kw,
        };
        left_kw -= added_kw;
        cy.sites[site].timeline.add_load(now_s, j.end_s, added_kw);
        let reason = match action {
            Action::Uncap => Reason::PowerUncapped,
            _ => Reason::PowerCapped,
        };
        cy.decisions[j.index] = Some(decision(j.job, action, reason, message));
    }
}

fn keep_message(cy: &Cycle<'_>, site: usize, j: &RunningJob<'_>) -> String {
    let now_s = cy.now_s;
    let headroom_kw = cy.sites[site].timeline.at(now_s);
    let cap = if j.cap_percent < 100 {
        format!(" (capped at {}%)", j.cap_percent)
    } else {
        String::new()
    };
    let mut message = format!(
        "running at {}, {} kW{cap}, expected to end {}; site headroom {} kW",
        cy.site_name(site),
        kw(j.effective_kw()),
        format_utc(j.end_s, now_s),
        kw(headroom_kw)
    );
    if headroom_kw < -EPS && suspendable(j.job, now_s, cy.config) {
        match cy.sites[site].site.headroom_negative_since_s {
            Some(since_s) => message.push_str(&format!(
                "; negative since {}, suspension possible from {}",
                format_utc(since_s, now_s),
                format_utc(since_s + cy.config.green_only_grace_s, now_s)
            )),
            None => message
                .push_str("; the grace period starts once the controller records the brown-out"),
        }
    }
    message
}
