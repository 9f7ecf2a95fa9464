//! What fits now: for one pending job, the sites where its whole gang fits at once, with
//! the power, renewable fraction and headroom of starting there now ([`Survey`]).

use super::packing::Plan;
use super::power::{replicas_kw, site_pue};
use super::reservation::head_power_allows;
use super::snapshot::Job;
use super::state::{Cycle, JobView};

/// A site where the whole gang fits now, with what starting there now would mean.
pub(super) struct SiteOption {
    pub site: usize,
    pub plan: Plan,
    pub power_kw: f64,
    pub fraction: f64,
    pub headroom_kw: f64,
}

/// What fits now.
pub(super) struct Survey {
    /// Sites where the gang fits now without touching the head's reservation.
    pub options: Vec<SiteOption>,
    /// Sites where it would fit only by using the head's reserved GPUs or headroom.
    pub blocked: Vec<SiteOption>,
    /// Per site: how many of the gang's replicas fit now (for messages).
    pub fitting: Vec<u32>,
}

pub(super) fn survey(cy: &Cycle<'_>, view: &JobView<'_>) -> Survey {
    let mut survey = Survey {
        options: Vec::new(),
        blocked: Vec::new(),
        fitting: vec![0; cy.sites.len()],
    };
    let head_site = cy.head.as_ref().map(|h| h.site);
    for &s in &view.feasible {
        let req = view.request(s, view.end_now_s);
        let option = |plan: Plan| {
            let power_kw = plan_kw(cy, view.job, &plan);
            let timeline = &cy.sites[s].timeline;
            SiteOption {
                site: s,
                power_kw,
                fraction: timeline.renewable_fraction(cy.now_s, view.duration_s, power_kw),
                headroom_kw: timeline.at(cy.now_s),
                plan,
            }
        };
        match cy.pool.plan(s, &req, true) {
            Ok(plan) => {
                survey.fitting[s] = view.job.replicas;
                let opt = option(plan);
                if head_power_allows(cy, s, view.end_now_s, opt.power_kw) {
                    survey.options.push(opt);
                } else {
                    survey.blocked.push(opt);
                }
            }
            Err(fitting) => {
                survey.fitting[s] = fitting;
                if head_site == Some(s)
                    && let Ok(plan) = cy.pool.plan(s, &req, false)
                {
                    survey.blocked.push(option(plan));
                }
            }
        }
    }
    survey
}

/// Uncapped power of `job` on the nodes of `plan`, in kW.
pub(super) fn plan_kw(cy: &Cycle<'_>, job: &Job, plan: &Plan) -> f64 {
    let pue = site_pue(cy.sites[plan.site].site);
    plan.picks
        .iter()
        .map(|&(n, k)| replicas_kw(job, k, cy.node_watts[n as usize], pue))
        .sum()
}

/// Index of the best option by `key` (larger is better), ties to the lower site name.
pub(super) fn best_by(
    cy: &Cycle<'_>,
    options: &[SiteOption],
    key: impl Fn(&SiteOption) -> (f64, f64),
) -> Option<usize> {
    (0..options.len()).reduce(|a, b| {
        let (ka, kb) = (key(&options[a]), key(&options[b]));
        let better = kb.0.total_cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).then(
            cy.site_name(options[a].site)
                .cmp(cy.site_name(options[b].site)),
        );
        if better.is_gt() { b } else { a }
    })
}
