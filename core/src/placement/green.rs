//! The ladder both green policies climb, each with its own [`Green`] test:
//!
//! 1. green now at a fitting site → place there;
//! 2. green now, but only on GPUs or headroom reserved for the head → wait for the head;
//! 3. the policy's own rule once the job's latest start has come ([`Green::at_latest_start`]);
//! 4. green now at sites whose GPUs are busy → wait for green capacity (and perhaps
//!    become the head of the queue there);
//! 5. green later in the forecast → defer to the first such window;
//! 6. no green window → the policy's fallback ([`Green::no_window`]).
//!
//! GreenPreferred and GreenOnly differ only in what "green" means (a renewable fraction
//! ≥ the job's minimum, or current headroom that covers the whole job), what the head's
//! reservation protects, their deadline rule and their wording (`policy.rs`).

use super::decision::Decision;
use super::outcome::{defer, place, reserved_for_head, wait_for_capacity};
use super::reason::Reason;
use super::state::{Cycle, JobView, Protect};
use super::survey::{SiteOption, Survey, best_by};
use super::timefmt::kw;

/// What "green" means to a policy, and how it says so.
pub(super) trait Green {
    /// Ranks the options that fit now (larger is better; ties go to the lower site name).
    fn rank(&self, option: &SiteOption) -> (f64, f64);
    /// Whether starting now as `option` says is green.
    fn covers(&self, option: &SiteOption) -> bool;
    /// Why a green option is taken, for the message.
    fn placed(&self, option: &SiteOption) -> String;
    /// The policy's rule once the job's latest start has come, before it waits for green
    /// capacity; `best_now` is the best-ranked option. `None`: no such rule, or not due.
    fn at_latest_start(
        &self,
        _cy: &mut Cycle<'_>,
        _view: &JobView<'_>,
        _survey: &Survey,
        _best_now: Option<usize>,
    ) -> Option<Decision> {
        None
    }
    /// Whether feasible site `s`, where the gang does not fit now, would be green now.
    fn green_now(&self, cy: &Cycle<'_>, view: &JobView<'_>, now: &NowView, s: usize) -> bool;
    /// Why the job waits for the busy GPUs of the green sites `names`.
    fn busy(&self, names: &str) -> String;
    /// What a reservation for a green start protects.
    fn protect(&self) -> Protect;
    /// The last forecast step a green window may start at, itself a candidate start.
    fn latest_start(&self) -> Option<i64>;
    /// At forecast step `t`, site `s`: a score (larger is better) and whether it is green.
    fn at(&mut self, cy: &Cycle<'_>, view: &JobView<'_>, s: usize, t: i64) -> (f64, bool);
    /// The renewable fraction and the message of a deferral to the green `window`
    /// `(t, s, score)`: from step `t` at site `s`, which scored `score`.
    fn window(
        &self,
        cy: &Cycle<'_>,
        view: &JobView<'_>,
        now: &NowView,
        window: (i64, usize, f64),
    ) -> (f64, String);
    /// The decision when no forecast step is green.
    fn no_window(
        &self,
        cy: &mut Cycle<'_>,
        view: &JobView<'_>,
        survey: &Survey,
        now: &NowView,
        best_now: Option<usize>,
    ) -> Decision;
}

/// Climbs the ladder (see the module docs) with `green`'s test.
pub(super) fn ladder(
    cy: &mut Cycle<'_>,
    view: &JobView<'_>,
    survey: Survey,
    mut green: impl Green,
) -> Decision {
    let best_now = best_by(cy, &survey.options, |o| green.rank(o));
    if let Some(i) = best_now.filter(|&i| green.covers(&survey.options[i])) {
        let option = &survey.options[i];
        return place(cy, view, option, Reason::PlacedGreen, &green.placed(option));
    }
    if let Some(blocked) = survey.blocked.iter().find(|b| green.covers(b)) {
        return reserved_for_head(cy, view, blocked);
    }
    if let Some(decision) = green.at_latest_start(cy, view, &survey, best_now) {
        return decision;
    }

    let now = NowView::new(cy, view, &survey);
    let green_busy: Vec<usize> = view
        .feasible
        .iter()
        .copied()
        .filter(|&s| {
            !survey.options.iter().any(|o| o.site == s) && green.green_now(cy, view, &now, s)
        })
        .collect();
    if !green_busy.is_empty() {
        let names: Vec<&str> = green_busy.iter().map(|&s| cy.site_name(s)).collect();
        let why = green.busy(&names.join(", "));
        return wait_for_capacity(
            cy,
            view,
            &survey,
            Reason::WaitingForGreenCapacity,
            &green_busy,
            green.protect(),
            &why,
        );
    }

    // Walk the forecast: the earliest step at which a site is green wins, the
    // best-scoring such site (the first of equals in name order) at that step.
    let latest_s = green.latest_start();
    for t in candidate_starts(cy, view, latest_s.unwrap_or(i64::MAX), latest_s) {
        let mut window: Option<(usize, f64)> = None;
        for &s in &view.feasible {
            let (score, is_green) = green.at(cy, view, s, t);
            if is_green && window.is_none_or(|(_, best)| score > best + 1e-9) {
                window = Some((s, score));
            }
        }
        if let Some((s, score)) = window {
            let (fraction, why) = green.window(cy, view, &now, (t, s, score));
            let protect = green.protect();
            return defer(
                cy,
                view,
                Some((t, s)),
                fraction,
                Reason::DeferredForRenewables,
                protect,
                why,
            );
        }
    }
    green.no_window(cy, view, &survey, &now, best_now)
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
pub(super) struct NowView {
    /// Per site (indexed like `cy.sites`); meaningful for feasible sites only.
    pub fraction_at: Vec<f64>,
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

    pub fn best_fraction(&self) -> f64 {
        self.fraction_at.get(self.best_site).copied().unwrap_or(0.0)
    }

    /// "best renewable fraction now is 0.42 at solar-a (headroom 12.4 kW, job 38.0 kW)"
    pub fn describe(&self, cy: &Cycle<'_>, view: &JobView<'_>) -> String {
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
    pub fn describe_headroom(&self, cy: &Cycle<'_>, view: &JobView<'_>) -> String {
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
