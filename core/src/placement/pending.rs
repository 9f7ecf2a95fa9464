//! Deciding for one pending (or suspended) job: what fits where now, then the job's
//! policy picks between placing, deferring and waiting (see `policy.rs`).

use super::cycle::{Cycle, kw};
use super::headroom::EPS;
use super::packing::{GangRequest, Plan, Release};
use super::power::{replicas_kw, site_pue};
use super::reservation::{Protect, head_power_allows, try_reserve};
use super::timefmt::{format_duration, format_utc};
use super::{Action, Decision, Job, JobState, Policy, Reason, policy};

/// A job with what the cycle derived about it once.
pub(super) struct JobView<'a> {
    pub job: &'a Job,
    pub index: usize,
    pub duration_s: i64,
    /// When the job would end if started now.
    pub end_now_s: i64,
    /// Per site: the job's allowed nodes there, sorted and unique; `None` = all.
    pub allowed: Vec<Option<Vec<u32>>>,
    /// Allowed sites whose allowed nodes could hold the whole gang when idle.
    pub feasible: Vec<usize>,
    /// Per site: the job's power if placed there, assuming the hungriest allowed GPU model
    /// (used for future starts, whose nodes are not chosen yet).
    pub planning_kw: Vec<f64>,
}

impl<'a> JobView<'a> {
    fn new(cy: &mut Cycle<'a>, index: usize) -> Self {
        let snap = cy.snap;
        let job = &snap.jobs[index];
        let site_count = cy.sites.len();
        let allowed: Vec<Option<Vec<u32>>> = match &job.allowed_nodes {
            None => vec![None; site_count],
            Some(list) => {
                let mut per_site = vec![Vec::new(); site_count];
                for &n in list {
                    if let Some(s) = cy.pool.site_of_node(n) {
                        per_site[s].push(n);
                    }
                }
                per_site
                    .into_iter()
                    .map(|mut nodes| {
                        nodes.sort_unstable();
                        nodes.dedup();
                        Some(nodes)
                    })
                    .collect()
            }
        };
        let site_allowed = |s: usize| {
            job.allowed_sites.is_empty()
                || job.allowed_sites.iter().any(|a| *a == snap.sites[s].name)
        };
        let feasible: Vec<usize> = (0..site_count)
            .filter(|&s| {
                site_allowed(s)
                    && cy
                        .pool
                        .static_capacity(s, job.gpus_per_replica, allowed[s].as_deref())
                        >= u64::from(job.replicas)
            })
            .collect();
        // Name order makes every "first of equals" below independent of input order.
        let mut feasible = feasible;
        feasible.sort_by(|&a, &b| snap.sites[a].name.cmp(&snap.sites[b].name));
        let mut planning_kw = vec![0.0; site_count];
        for &s in &feasible {
            let watts = match &allowed[s] {
                Some(nodes) => nodes
                    .iter()
                    .map(|&n| cy.node_watts[n as usize])
                    .fold(0.0, f64::max),
                None => cy.sites[s].max_model_watts,
            };
            planning_kw[s] = replicas_kw(job, job.replicas, watts, site_pue(&snap.sites[s]));
        }
        let duration_s = job.planned_duration_s(cy.config);
        Self {
            job,
            index,
            duration_s,
            end_now_s: cy.now_s + duration_s,
            allowed,
            feasible,
            planning_kw,
        }
    }

    pub fn request(&self, site: usize, end_s: i64) -> GangRequest<'_> {
        GangRequest {
            replicas: self.job.replicas,
            gpus_per_replica: self.job.gpus_per_replica,
            end_s,
            allowed: self.allowed[site].as_deref(),
        }
    }

    /// `4×8 GPUs`
    pub fn shape(&self) -> String {
        format!("{}×{} GPUs", self.job.replicas, self.job.gpus_per_replica)
    }
}

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

pub(super) fn decide(cy: &mut Cycle<'_>, index: usize) -> Decision {
    let job = &cy.snap.jobs[index];
    if job.replicas == 0 || job.gpus_per_replica == 0 {
        let message = format!(
            "requests {} replica(s) of {} GPU(s): a job without GPUs is not Verdant's to place",
            job.replicas, job.gpus_per_replica
        );
        return decision(job, Action::Wait, Reason::Unschedulable, message);
    }
    let view = JobView::new(cy, index);
    if view.feasible.is_empty() {
        return unschedulable(cy, &view);
    }
    let survey = survey(cy, &view);
    match job.policy {
        Policy::Immediate => policy::immediate(cy, &view, survey),
        Policy::GreenPreferred => policy::green_preferred(cy, &view, survey),
        Policy::GreenOnly => policy::green_only(cy, &view, survey),
    }
}

fn survey(cy: &Cycle<'_>, view: &JobView<'_>) -> Survey {
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

/// Starts the job now as `option` says; `why` completes the message.
pub(super) fn place(
    cy: &mut Cycle<'_>,
    view: &JobView<'_>,
    option: SiteOption,
    reason: Reason,
    why: &str,
) -> Decision {
    let job = view.job;
    let now_s = cy.now_s;
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
        "{verb} {} at {} on {} node(s), {} kW: {why}; expected renewable fraction {:.2} over {}{backfill}",
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

fn unschedulable(cy: &Cycle<'_>, view: &JobView<'_>) -> Decision {
    let job = view.job;
    let allowed_sites: Vec<usize> = (0..cy.sites.len())
        .filter(|&s| {
            job.allowed_sites.is_empty() || job.allowed_sites.iter().any(|a| a == cy.site_name(s))
        })
        .collect();
    let message = if allowed_sites.is_empty() && job.allowed_sites.is_empty() {
        "no EnergySite is known yet: create one whose nodeSelector matches GPU nodes".to_owned()
    } else if allowed_sites.is_empty() {
        format!(
            "none of the job's sites ({}) is a known EnergySite",
            job.allowed_sites.join(", ")
        )
    } else {
        let without_nodes: Vec<&str> = allowed_sites
            .iter()
            .map(|&s| cy.site_name(s))
            .filter(|&name| {
                !cy.snap
                    .nodes
                    .iter()
                    .any(|n| n.site.as_deref() == Some(name))
            })
            .collect();
        let needs = format!(
            "needs {} at one site, more than any allowed site has on allowed schedulable nodes even when idle",
            view.shape()
        );
        if without_nodes.is_empty() {
            needs
        } else if without_nodes.len() == allowed_sites.len() {
            format!(
                "no GPU node belongs to {} ({}): label nodes to match a site's spec.nodeSelector{}",
                if job.allowed_sites.is_empty() {
                    "any EnergySite"
                } else {
                    "the job's sites"
                },
                without_nodes.join(", "),
                if job.allowed_sites.is_empty() {
                    ""
                } else {
                    ", or allow other sites in spec.sites"
                }
            )
        } else {
            format!(
                "{needs}; no GPU node belongs to {}",
                without_nodes.join(", ")
            )
        }
    };
    decision(job, Action::Wait, Reason::Unschedulable, message)
}

pub(super) fn decision(job: &Job, action: Action, reason: Reason, message: String) -> Decision {
    Decision {
        job: job.id.clone(),
        action,
        reason,
        message,
    }
}

/// True if `a` ≥ `b` up to rounding.
pub(super) fn at_least(a: f64, b: f64) -> bool {
    a >= b - EPS
}
