//! The three energy policies, given what fits now (`Survey`).

use super::brownout::suspendable;
use super::decision::{Action, Decision};
use super::headroom::EPS;
use super::outcome::{decision, defer, place, reserved_for_head, wait_for_capacity};
use super::preempt::make_room;
use super::reason::Reason;
use super::state::{Cycle, JobView, Protect};
use super::survey::{SiteOption, Survey, best_by};
use super::timefmt::{format_utc, kw};

/// Immediate: start now at the fitting site with the most renewable headroom.
pub(super) fn immediate(cy: &mut Cycle<'_>, view: &JobView<'_>, mut survey: Survey) -> Decision {
    let fitting = survey.options.len();
    if let Some(i) = best_by(cy, &survey.options, |o| (o.headroom_kw, o.fraction)) {
        let option = survey.options.swap_remove(i);
        let why = format!(
            "Immediate; {} kW of renewable headroom, the most of {fitting} fitting site(s)",
            kw(option.headroom_kw)
        );
        return place(cy, view, &option, Reason::PlacedImmediate, &why);
    }
    if let Some(blocked) = survey.blocked.first() {
        return reserved_for_head(cy, view, blocked);
    }
    if view.job.latest_start_s.is_some_and(|t| t <= cy.now_s)
        && let Some(message) = make_room(cy, view)
    {
        return decision(view.job, Action::Wait, Reason::WaitingForCapacity, message);
    }
    let sites = view.feasible.clone();
    wait_for_capacity(
        cy,
        view,
        &survey,
        Reason::WaitingForCapacity,
        &sites,
        Protect::GpusOnly,
        "not enough free GPUs",
    )
}

/// GreenPreferred: start now if green enough, else defer to the earliest green window,
/// else (with a latest start) to the best window, and start at the latest start regardless.
pub(super) fn green_preferred(
    cy: &mut Cycle<'_>,
    view: &JobView<'_>,
    mut survey: Survey,
) -> Decision {
    let job = view.job;
    let now_s = cy.now_s;
    // An interruptible job whose latest start is still well ahead would be suspended by
    // the next brown-out at its site (brownout.rs). Until then it starts only where
    // current headroom covers it, as a GreenOnly job, so it never starts just to be
    // stopped; once its latest start nears, the rules below apply.
    if suspendable(job, now_s, cy.config) {
        return green_only(cy, view, survey);
    }
    let min = job.min_renewable_fraction.clamp(0.0, 1.0);
    let best_now = best_by(cy, &survey.options, |o| (o.fraction, o.headroom_kw));
    if let Some(i) = best_now.filter(|&i| at_least(survey.options[i].fraction, min)) {
        let option = survey.options.swap_remove(i);
        let why = format!(
            "renewables cover {:.2} ≥ {min:.2} required (headroom {} kW, job {} kW)",
            option.fraction,
            kw(option.headroom_kw),
            kw(option.power_kw)
        );
        return place(cy, view, &option, Reason::PlacedGreen, &why);
    }
    if let Some(blocked) = survey.blocked.iter().find(|b| at_least(b.fraction, min)) {
        return reserved_for_head(cy, view, blocked);
    }
    if let Some(latest_s) = job.latest_start_s.filter(|&t| t <= now_s) {
        if let Some(i) = best_now {
            let option = survey.options.swap_remove(i);
            let why = format!(
                "latest start {} has come; best renewable fraction {:.2} < {min:.2} required, deadline first",
                format_utc(latest_s, now_s),
                option.fraction
            );
            return place(cy, view, &option, Reason::PlacedAtLatestStart, &why);
        }
        if let Some(blocked) = survey.blocked.first() {
            return reserved_for_head(cy, view, blocked);
        }
        if let Some(message) = make_room(cy, view) {
            return decision(job, Action::Wait, Reason::WaitingForCapacity, message);
        }
        let sites = view.feasible.clone();
        let why = format!(
            "latest start {} has come but GPUs are busy",
            format_utc(latest_s, now_s)
        );
        return wait_for_capacity(
            cy,
            view,
            &survey,
            Reason::WaitingForCapacity,
            &sites,
            Protect::GpusOnly,
            &why,
        );
    }

    let now = NowView::new(cy, view, &survey);
    let green_full: Vec<usize> = view
        .feasible
        .iter()
        .copied()
        .filter(|&s| {
            !survey.options.iter().any(|o| o.site == s) && at_least(now.fraction_at[s], min)
        })
        .collect();
    if !green_full.is_empty() {
        let names: Vec<&str> = green_full.iter().map(|&s| cy.site_name(s)).collect();
        let why = format!(
            "renewables would cover ≥ {min:.2} now at {} but its GPUs are busy",
            names.join(", ")
        );
        return wait_for_capacity(
            cy,
            view,
            &survey,
            Reason::WaitingForGreenCapacity,
            &green_full,
            Protect::MinFraction(min),
            &why,
        );
    }

    // Walk the forecast: the earliest step (≤ latest start) at which a site reaches the
    // threshold wins; otherwise remember the best fraction seen (earliest on ties).
    let horizon_s = job.latest_start_s.unwrap_or(i64::MAX);
    let mut best_future: Option<(i64, usize, f64)> = None;
    for t in candidate_starts(cy, view, horizon_s, job.latest_start_s) {
        let mut reached: Option<(usize, f64)> = None;
        for &s in &view.feasible {
            let f =
                cy.sites[s]
                    .timeline
                    .renewable_fraction(t, view.duration_s, view.planning_kw[s]);
            if at_least(f, min) && reached.is_none_or(|(_, rf)| f > rf + 1e-9) {
                reached = Some((s, f));
            }
            if best_future.is_none_or(|(_, _, bf)| f > bf + 1e-9) {
                best_future = Some((t, s, f));
            }
        }
        if let Some((s, f)) = reached {
            let why = format!(
                "deferred: {}; forecast reaches {f:.2} ≥ {min:.2} at {} from {}",
                now.describe(cy, view),
                cy.site_name(s),
                format_utc(t, now_s)
            );
            return defer(
                cy,
                view,
                Some((t, s)),
                f,
                Reason::DeferredForRenewables,
                Protect::MinFraction(min),
                why,
            );
        }
    }

    let Some(latest_s) = job.latest_start_s else {
        let best = best_future.map_or(String::new(), |(t, s, f)| {
            format!(
                " (best {f:.2} at {} from {})",
                cy.site_name(s),
                format_utc(t, now_s)
            )
        });
        let why = format!(
            "deferred: {}; no forecast window reaches {min:.2}{best}, and without a latest start nothing \
             forces a start, so the job waits for the forecast to change",
            now.describe(cy, view)
        );
        return defer(
            cy,
            view,
            None,
            now.best_fraction(),
            Reason::NoGreenWindowInForecast,
            Protect::GpusOnly,
            why,
        );
    };
    let now_fraction = best_now.map_or(now.best_fraction(), |i| survey.options[i].fraction);
    match (best_now, best_future) {
        (_, Some((t, s, f))) if f > now_fraction + 1e-9 => {
            let why = format!(
                "deferred: no window before the latest start {} reaches {min:.2}; the best is {f:.2} at {} from {}; {}",
                format_utc(latest_s, now_s),
                cy.site_name(s),
                format_utc(t, now_s),
                now.describe(cy, view)
            );
            defer(
                cy,
                view,
                Some((t, s)),
                f,
                Reason::DeferredForBetterWindow,
                Protect::GpusOnly,
                why,
            )
        }
        (Some(i), _) => {
            let option = survey.options.swap_remove(i);
            let why = format!(
                "no window before the latest start {} reaches {min:.2}; now gives {:.2}, the best available",
                format_utc(latest_s, now_s),
                option.fraction
            );
            place(cy, view, &option, Reason::PlacedBestAvailable, &why)
        }
        (None, _) => match survey.blocked.first() {
            Some(blocked) => reserved_for_head(cy, view, blocked),
            None => {
                let sites = view.feasible.clone();
                let why = "no greener window before the latest start, and GPUs are busy";
                wait_for_capacity(
                    cy,
                    view,
                    &survey,
                    Reason::WaitingForCapacity,
                    &sites,
                    Protect::GpusOnly,
                    why,
                )
            }
        },
    }
}

/// GreenOnly: start only where current headroom covers the whole job.
pub(super) fn green_only(cy: &mut Cycle<'_>, view: &JobView<'_>, mut survey: Survey) -> Decision {
    let now_s = cy.now_s;
    let covered = |o: &SiteOption| at_least(o.headroom_kw, o.power_kw);
    let best = best_by(cy, &survey.options, |o| {
        (
            if covered(o) {
                o.headroom_kw
            } else {
                f64::NEG_INFINITY
            },
            o.fraction,
        )
    });
    if let Some(i) = best.filter(|&i| covered(&survey.options[i])) {
        let option = survey.options.swap_remove(i);
        let why = format!(
            "current renewable headroom {} kW covers the job's {} kW",
            kw(option.headroom_kw),
            kw(option.power_kw)
        );
        return place(cy, view, &option, Reason::PlacedGreen, &why);
    }
    if let Some(blocked) = survey.blocked.iter().find(|b| covered(b)) {
        return reserved_for_head(cy, view, blocked);
    }
    let green_full: Vec<usize> = view
        .feasible
        .iter()
        .copied()
        .filter(|&s| {
            !survey.options.iter().any(|o| o.site == s)
                && at_least(cy.sites[s].timeline.at(now_s), view.planning_kw[s])
        })
        .collect();
    if !green_full.is_empty() {
        let names: Vec<&str> = green_full.iter().map(|&s| cy.site_name(s)).collect();
        let why = format!(
            "renewable headroom covers the job now at {} but its GPUs are busy",
            names.join(", ")
        );
        return wait_for_capacity(
            cy,
            view,
            &survey,
            Reason::WaitingForGreenCapacity,
            &green_full,
            Protect::HeadroomAtStart,
            &why,
        );
    }

    let now = NowView::new(cy, view, &survey);
    let deadline_note = match view.job.latest_start_s {
        Some(t) if t <= now_s => format!(
            " (latest start {} passed; GreenOnly never starts on grid power)",
            format_utc(t, now_s)
        ),
        _ => String::new(),
    };
    for t in candidate_starts(cy, view, i64::MAX, None) {
        let window = view
            .feasible
            .iter()
            .map(|&s| (s, cy.sites[s].timeline.at(t)))
            .filter(|&(s, h)| at_least(h, view.planning_kw[s]))
            .reduce(|a, b| if b.1 > a.1 + 1e-9 { b } else { a });
        if let Some((s, headroom_kw)) = window {
            let f =
                cy.sites[s]
                    .timeline
                    .renewable_fraction(t, view.duration_s, view.planning_kw[s]);
            let why = format!(
                "deferred: {}; forecast headroom at {} reaches {} kW ≥ {} kW needed from {}{deadline_note}",
                now.describe_headroom(cy, view),
                cy.site_name(s),
                kw(headroom_kw),
                kw(view.planning_kw[s]),
                format_utc(t, now_s)
            );
            return defer(
                cy,
                view,
                Some((t, s)),
                f,
                Reason::DeferredForRenewables,
                Protect::HeadroomAtStart,
                why,
            );
        }
    }
    let why = format!(
        "deferred: {}; no forecast step has that much headroom at an allowed site, so the job waits for \
         the forecast to change{deadline_note}",
        now.describe_headroom(cy, view)
    );
    defer(
        cy,
        view,
        None,
        now.best_fraction(),
        Reason::NoGreenWindowInForecast,
        Protect::GpusOnly,
        why,
    )
}

/// Forecast step starts after now and ≤ `horizon_s` at the job's feasible sites, plus its
/// latest start: where a deferral may end.
fn candidate_starts(
    cy: &Cycle<'_>,
    view: &JobView<'_>,
    horizon_s: i64,
    latest_s: Option<i64>,
) -> Vec<i64> {
    let mut starts: Vec<i64> = view
        .feasible
        .iter()
        .flat_map(|&s| cy.sites[s].step_starts_s.iter().copied())
        .filter(|&t| t <= horizon_s)
        .chain(latest_s.filter(|&t| t > cy.now_s))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// How the job would fare if it started now at each feasible site, for comparisons and messages.
struct NowView {
    /// Per site (indexed like `cy.sites`); meaningful for feasible sites only.
    fraction_at: Vec<f64>,
    best_site: usize,
}

impl NowView {
    fn new(cy: &Cycle<'_>, view: &JobView<'_>, survey: &Survey) -> Self {
        let mut fraction_at = vec![0.0; cy.sites.len()];
        for &s in &view.feasible {
            fraction_at[s] = match survey
                .options
                .iter()
                .chain(&survey.blocked)
                .find(|o| o.site == s)
            {
                Some(o) => o.fraction,
                None => cy.sites[s].timeline.renewable_fraction(
                    cy.now_s,
                    view.duration_s,
                    view.planning_kw[s],
                ),
            };
        }
        let best_site = view
            .feasible
            .iter()
            .copied()
            .reduce(|a, b| {
                if fraction_at[b] > fraction_at[a] + 1e-9 {
                    b
                } else {
                    a
                }
            })
            .unwrap_or(0);
        Self {
            fraction_at,
            best_site,
        }
    }

    fn best_fraction(&self) -> f64 {
        self.fraction_at.get(self.best_site).copied().unwrap_or(0.0)
    }

    /// "best renewable fraction now is 0.42 at solar-a (headroom 12.4 kW, job 38.0 kW)"
    fn describe(&self, cy: &Cycle<'_>, view: &JobView<'_>) -> String {
        let s = self.best_site;
        format!(
            "best renewable fraction now is {:.2} at {} (headroom {} kW, job {} kW)",
            self.best_fraction(),
            cy.site_name(s),
            kw(cy.sites[s].timeline.at(cy.now_s)),
            kw(view.planning_kw[s])
        )
    }

    /// "headroom at solar-a is 12.4 kW < 38.0 kW needed" for the site with the most headroom.
    fn describe_headroom(&self, cy: &Cycle<'_>, view: &JobView<'_>) -> String {
        let s = view
            .feasible
            .iter()
            .copied()
            .reduce(|a, b| {
                let (ha, hb) = (
                    cy.sites[a].timeline.at(cy.now_s),
                    cy.sites[b].timeline.at(cy.now_s),
                );
                if hb > ha + 1e-9 { b } else { a }
            })
            .unwrap_or(self.best_site);
        format!(
            "headroom at {} is {} kW < {} kW needed",
            cy.site_name(s),
            kw(cy.sites[s].timeline.at(cy.now_s)),
            kw(view.planning_kw[s])
        )
    }
}

/// True if `a` ≥ `b` up to rounding.
fn at_least(a: f64, b: f64) -> bool {
    a >= b - EPS
}
