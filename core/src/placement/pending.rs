//! Deciding for one pending (or suspended) job: what fits where now (`survey.rs`), then
//! the job's policy picks between placing, deferring and waiting (`policy.rs`).

use super::decision::{Action, Decision};
use super::outcome::decision;
use super::policy;
use super::reason::Reason;
use super::snapshot::Policy;
use super::state::{Cycle, JobView};
use super::survey::survey;

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
