//! Outcomes: how a pending job's [`Decision`] is made and worded. Placing commits the
//! gang's GPUs and power to the cycle; waiting and deferring may make the job the head of
//! the queue (`reservation.rs`). The policies choose among these; running jobs' decisions
//! (`brownout.rs`, `preempt.rs`) use [`decision`].

use super::decision::{Action, Decision};
use super::packing::Release;
use super::reason::Reason;
use super::reservation::try_reserve;
use super::snapshot::{Job, JobState};
use super::state::{Cycle, JobView, Protect};
use super::survey::{SiteOption, Survey};
use super::timefmt::{format_duration, format_utc, kw};

pub(super) fn decision(job: &Job, action: Action, reason: Reason, message: String) -> Decision {
    Decision {
        job: job.id.clone(),
        action,
        reason,
        message,
    }
}

/// Starts the job now as `option` says; `why` completes the message.
pub(super) fn place(
    cy: &mut Cycle<'_>,
    view: &JobView<'_>,
    option: &SiteOption,
    reason: Reason,
    why: &str,
) -> Decision {
    let job = view.job;
    let now_s = cy.now_s;
    let battery = battery_note(cy, option.site, view.end_now_s, option.power_kw);
    cy.pool
        .commit(&option.plan, job.gpus_per_replica, view.end_now_s);
    cy.sites[option.site]
        .timeline
        .add_load(now_s, view.end_now_s, option.power_kw);
    for &(node, k) in &option.plan.picks {
        cy.releases[option.site].push(Release {
            node,
            gpus: k * job.gpus_per_replica,
            end_s: view.end_now_s,
        });
    }
    let backfill = match &cy.head {
        Some(h) if h.site == option.site && view.end_now_s <= h.start_s => format!(
            "; backfilled: ends {} before the start reserved for {}",
            format_utc(view.end_now_s, now_s),
            h.job_id
        ),
        _ => String::new(),
    };
    let (reason, verb) = match job.state {
        JobState::Suspended => (Reason::Resumed, "resumed"),
        _ => (reason, "placed"),
    };
    let message = format!(
        "{verb} {} at {} on {} node(s), {} kW: {why}; expected renewable fraction {:.2} over {}{battery}{backfill}",
        view.shape(),
        cy.site_name(option.site),
        option.plan.picks.len(),
        kw(option.power_kw),
        option.fraction,
        format_duration(view.duration_s),
    );
    let action = Action::Place {
        site: cy.site_name(option.site).to_string(),
        nodes: option.plan.node_per_replica(),
        expected_renewable_fraction: option.fraction,
    };
    decision(job, action, reason, message)
}

/// `; 12.5 kWh of it from the site's batteries (they can deliver 40.0 kWh now)`,
/// or nothing at a site without batteries or when they add nothing to the job.
fn battery_note(cy: &Cycle<'_>, site: usize, end_s: i64, power_kw: f64) -> String {
    let timeline = &cy.sites[site].timeline;
    let battery_kwh = timeline.battery_kws(cy.now_s, end_s, power_kw) / 3600.0;
    if battery_kwh < 0.05 {
        return String::new();
    }
    format!(
        "; {battery_kwh:.1} kWh of it from the site's batteries (they can deliver {:.1} kWh now)",
        timeline.battery_deliverable_kwh(cy.now_s)
    )
}

/// Not enough GPUs now (`WaitingForCapacity`, or `WaitingForGreenCapacity` when `sites`
/// are the green ones): the job tries to become the head of the queue at `sites`.
pub(super) fn wait_for_capacity(
    cy: &mut Cycle<'_>,
    view: &JobView<'_>,
    survey: &Survey,
    reason: Reason,
    sites: &[usize],
    protect: Protect,
    why: &str,
) -> Decision {
    let most = sites
        .iter()
        .copied()
        .max_by_key(|&s| (survey.fitting[s], std::cmp::Reverse(s)));
    let mut message = match most {
        Some(s) if survey.fitting[s] > 0 => format!(
            "waiting: {why}; needs {} at one site, at most {} of {} replica(s) fit now (at {})",
            view.shape(),
            survey.fitting[s],
            view.job.replicas,
            cy.site_name(s)
        ),
        _ => format!(
            "waiting: {why}; needs {} at one site, not one replica fits there now",
            view.shape()
        ),
    };
    if let Some(held) = try_reserve(cy, view.index, &view.allowed, sites, cy.now_s, protect) {
        message.push_str("; ");
        message.push_str(&held);
    }
    decision(view.job, Action::Wait, reason, message)
}

/// The job would start now on `blocked`, but that would delay the head of the queue.
pub(super) fn reserved_for_head(
    cy: &Cycle<'_>,
    view: &JobView<'_>,
    blocked: &SiteOption,
) -> Decision {
    let head = cy.head.as_ref().expect("a blocked option implies a head");
    let message = format!(
        "waiting: fits now at {} ({} kW, until {}), but {} holds {} GPUs there from {} and this job \
         would still run then, taking GPUs or renewable headroom it needs",
        cy.site_name(blocked.site),
        kw(blocked.power_kw),
        format_utc(view.end_now_s, cy.now_s),
        head.job_id,
        head.gpus,
        format_utc(head.start_s, cy.now_s),
    );
    decision(
        view.job,
        Action::Wait,
        Reason::ReservedForHeadOfQueue,
        message,
    )
}

/// Defers the job to `until_s` (`None`: no window); `at_site` is where it would start,
/// and may become the head's reservation.
pub(super) fn defer(
    cy: &mut Cycle<'_>,
    view: &JobView<'_>,
    window: Option<(i64, usize)>,
    fraction: f64,
    reason: Reason,
    protect: Protect,
    why: String,
) -> Decision {
    let mut message = why;
    if let Some((start_s, site)) = window
        && let Some(held) = try_reserve(cy, view.index, &view.allowed, &[site], start_s, protect)
    {
        message.push_str("; ");
        message.push_str(&held);
    }
    let action = Action::Defer {
        until_s: window.map(|(t, _)| t),
        expected_renewable_fraction: fraction,
    };
    decision(view.job, action, reason, message)
}
