//! The three energy policies, given what fits now (`Survey`). The green ones climb the
//! same ladder (`green.rs`), each with its own [`Green`] test.

use super::brownout::suspendable;
use super::decision::{Action, Decision};
use super::green::{Green, NowView, ladder};
use super::headroom::EPS;
use super::outcome::{decision, defer, place, reserved_for_head, wait_for_capacity};
use super::preempt::make_room;
use super::reason::Reason;
use super::state::{Cycle, JobView, Protect};
use super::survey::{SiteOption, Survey, best_by};
use super::timefmt::{format_utc, kw};

/// Immediate: start now at the fitting site with the most renewable headroom.
pub(super) fn immediate(cy: &mut Cycle<'_>, view: &JobView<'_>, survey: Survey) -> Decision {
    let fitting = survey.options.len();
    if let Some(i) = best_by(cy, &survey.options, |o| (o.headroom_kw, o.fraction)) {
        let option = &survey.options[i];
        let why = format!(
            "Immediate; {} kW of renewable headroom, the most of {fitting} fitting site(s)",
            kw(option.headroom_kw)
        );
        return place(cy, view, option, Reason::PlacedImmediate, &why);
    }
    no_free_gpus(cy, view, &survey, "not enough free GPUs")
}

/// GreenPreferred: start now if green enough, else defer to the earliest green window,
/// else (with a latest start) to the best window, and start at the latest start regardless.
pub(super) fn green_preferred(cy: &mut Cycle<'_>, view: &JobView<'_>, survey: Survey) -> Decision {
    // An interruptible job whose latest start is still well ahead would be suspended by
    // the next brown-out at its site (brownout.rs). Until then it starts only where
    // current headroom covers it, as a GreenOnly job, so it never starts just to be
    // stopped; once its latest start nears, the rules below apply.
    if suspendable(view.job, cy.now_s, cy.config) {
        return green_only(cy, view, survey);
    }
    let green = GreenPreferred {
        min: view.job.min_renewable_fraction.clamp(0.0, 1.0),
        latest_s: view.job.latest_start_s,
        best_future: None,
    };
    ladder(cy, view, survey, green)
}

/// GreenOnly: start only where current headroom covers the whole job.
pub(super) fn green_only(cy: &mut Cycle<'_>, view: &JobView<'_>, survey: Survey) -> Decision {
    ladder(cy, view, survey, GreenOnly)
}

/// No fitting site is free now (or free only by taking the head's reservation): wait
/// for the head, make room if the job's latest start has come, else wait for capacity
/// anywhere (`WaitingForCapacity`, perhaps as the head of the queue).
fn no_free_gpus(cy: &mut Cycle<'_>, view: &JobView<'_>, survey: &Survey, why: &str) -> Decision {
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
        survey,
        Reason::WaitingForCapacity,
        &sites,
        Protect::GpusOnly,
        why,
    )
}

/// GreenPreferred's test: a renewable fraction of at least `min` over the run.
struct GreenPreferred {
    min: f64,
    latest_s: Option<i64>,
    /// The best (time, site, fraction) seen walking the forecast, earliest on ties.
    best_future: Option<(i64, usize, f64)>,
}

impl Green for GreenPreferred {
    fn rank(&self, o: &SiteOption) -> (f64, f64) {
        (o.fraction, o.headroom_kw)
    }

    fn covers(&self, o: &SiteOption) -> bool {
        at_least(o.fraction, self.min)
    }

    fn placed(&self, o: &SiteOption) -> String {
        format!(
            "renewables cover {:.2} ≥ {:.2} required (headroom {} kW, job {} kW)",
            o.fraction,
            self.min,
            kw(o.headroom_kw),
            kw(o.power_kw)
        )
    }

    /// Deadline first: the best option now, else whatever frees GPUs.
    fn at_latest_start(
        &self,
        cy: &mut Cycle<'_>,
        view: &JobView<'_>,
        survey: &Survey,
        best_now: Option<usize>,
    ) -> Option<Decision> {
        let now_s = cy.now_s;
        let latest_s = self.latest_s.filter(|&t| t <= now_s)?;
        if let Some(i) = best_now {
            let option = &survey.options[i];
            let why = format!(
                "latest start {} has come; best renewable fraction {:.2} < {:.2} required, deadline first",
                format_utc(latest_s, now_s),
                option.fraction,
                self.min
            );
            return Some(place(cy, view, option, Reason::PlacedAtLatestStart, &why));
        }
        let why = format!(
            "latest start {} has come but GPUs are busy",
            format_utc(latest_s, now_s)
        );
        Some(no_free_gpus(cy, view, survey, &why))
    }

    fn green_now(&self, _cy: &Cycle<'_>, _view: &JobView<'_>, now: &NowView, s: usize) -> bool {
        at_least(now.fraction_at[s], self.min)
    }

    fn busy(&self, names: &str) -> String {
        format!(
            "renewables would cover ≥ {:.2} now at {names} but its GPUs are busy",
            self.min
        )
    }

    fn protect(&self) -> Protect {
        Protect::MinFraction(self.min)
    }

    fn latest_start(&self) -> Option<i64> {
        self.latest_s
    }

    fn at(&mut self, cy: &Cycle<'_>, view: &JobView<'_>, s: usize, t: i64) -> (f64, bool) {
        let f = cy.sites[s]
            .timeline
            .renewable_fraction(t, view.duration_s, view.planning_kw[s]);
        if self.best_future.is_none_or(|(_, _, bf)| f > bf + 1e-9) {
            self.best_future = Some((t, s, f));
        }
        (f, at_least(f, self.min))
    }

    fn window(
        &self,
        cy: &Cycle<'_>,
        view: &JobView<'_>,
        now: &NowView,
        (t, s, f): (i64, usize, f64),
    ) -> (f64, String) {
        let why = format!(
            "deferred: {}; forecast reaches {f:.2} ≥ {:.2} at {} from {}",
            now.describe(cy, view),
            self.min,
            cy.site_name(s),
            format_utc(t, cy.now_s)
        );
        (f, why)
    }

    /// Without a latest start, wait for the forecast to change; with one, defer to the
    /// best window if it beats now, else start now at the best available.
    fn no_window(
        &self,
        cy: &mut Cycle<'_>,
        view: &JobView<'_>,
        survey: &Survey,
        now: &NowView,
        best_now: Option<usize>,
    ) -> Decision {
        let (now_s, min) = (cy.now_s, self.min);
        let Some(latest_s) = self.latest_s else {
            let best = self.best_future.map_or(String::new(), |(t, s, f)| {
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
        match (best_now, self.best_future) {
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
                let option = &survey.options[i];
                let why = format!(
                    "no window before the latest start {} reaches {min:.2}; now gives {:.2}, the best available",
                    format_utc(latest_s, now_s),
                    option.fraction
                );
                place(cy, view, option, Reason::PlacedBestAvailable, &why)
            }
            (None, _) => no_free_gpus(
                cy,
                view,
                survey,
                "no greener window before the latest start, and GPUs are busy",
            ),
        }
    }
}

/// GreenOnly's test: current headroom that covers the job's whole power.
struct GreenOnly;

impl GreenOnly {
    fn deadline_note(cy: &Cycle<'_>, view: &JobView<'_>) -> String {
        match view.job.latest_start_s {
            Some(t) if t <= cy.now_s => format!(
                " (latest start {} passed; GreenOnly never starts on grid power)",
                format_utc(t, cy.now_s)
            ),
            _ => String::new(),
        }
    }
}

impl Green for GreenOnly {
    fn rank(&self, o: &SiteOption) -> (f64, f64) {
        let headroom = if self.covers(o) {
            o.headroom_kw
        } else {
            f64::NEG_INFINITY
        };
        (headroom, o.fraction)
    }

    fn covers(&self, o: &SiteOption) -> bool {
        at_least(o.headroom_kw, o.power_kw)
    }

    fn placed(&self, o: &SiteOption) -> String {
        format!(
            "current renewable headroom {} kW covers the job's {} kW",
            kw(o.headroom_kw),
            kw(o.power_kw)
        )
    }

    fn green_now(&self, cy: &Cycle<'_>, view: &JobView<'_>, _now: &NowView, s: usize) -> bool {
        at_least(cy.sites[s].timeline.at(cy.now_s), view.planning_kw[s])
    }

    fn busy(&self, names: &str) -> String {
        format!("renewable headroom covers the job now at {names} but its GPUs are busy")
    }

    fn protect(&self) -> Protect {
        Protect::HeadroomAtStart
    }

    /// GreenOnly waits as long as it takes: its windows are not bounded by a latest start.
    fn latest_start(&self) -> Option<i64> {
        None
    }

    fn at(&mut self, cy: &Cycle<'_>, view: &JobView<'_>, s: usize, t: i64) -> (f64, bool) {
        let headroom_kw = cy.sites[s].timeline.at(t);
        (headroom_kw, at_least(headroom_kw, view.planning_kw[s]))
    }

    fn window(
        &self,
        cy: &Cycle<'_>,
        view: &JobView<'_>,
        now: &NowView,
        (t, s, headroom_kw): (i64, usize, f64),
    ) -> (f64, String) {
        let f = cy.sites[s]
            .timeline
            .renewable_fraction(t, view.duration_s, view.planning_kw[s]);
        let why = format!(
            "deferred: {}; forecast headroom at {} reaches {} kW ≥ {} kW needed from {}{}",
            now.describe_headroom(cy, view),
            cy.site_name(s),
            kw(headroom_kw),
            kw(view.planning_kw[s]),
            format_utc(t, cy.now_s),
            Self::deadline_note(cy, view)
        );
        (f, why)
    }

    fn no_window(
        &self,
        cy: &mut Cycle<'_>,
        view: &JobView<'_>,
        _survey: &Survey,
        now: &NowView,
        _best_now: Option<usize>,
    ) -> Decision {
        let why = format!(
            "deferred: {}; no forecast step has that much headroom at an allowed site, so the job waits for \
             the forecast to change{}",
            now.describe_headroom(cy, view),
            Self::deadline_note(cy, view)
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
}

/// True if `a` ≥ `b` up to rounding.
fn at_least(a: f64, b: f64) -> bool {
    a >= b - EPS
}
