//! The head-of-queue reservation (EASY backfilling).
//!
//! Walking the queue in order, the first job that cannot start now — for lack of GPUs, or
//! because it waits for a green window — and for which a future start can be computed
//! becomes the head. It reserves:
//! - GPUs: the best-fit nodes that will be free at its shadow start (the earliest time ≥
//!   its wanted start at which running jobs' expected ends free enough GPUs);
//! - power: its load is added to the site's headroom from the shadow start, and, when it
//!   waits for green power, later jobs may not eat the headroom its start condition needs.
//!
//! Every later job may still start now (backfill) if it ends before the reserved start, or
//! if it leaves the head's GPUs and green headroom alone. One head per cycle keeps the cost
//! linear and makes starvation impossible: the head's start can only move earlier as
//! estimates hold, and each cycle re-elects the highest-ordered blocked job.

use super::headroom::{Adjustment, EPS};
use super::packing::GangRequest;
use super::power::{replicas_kw, site_pue};
use super::state::{Cycle, HeadReservation, Protect};
use super::timefmt::{format_utc, kw};

/// Makes the job the head of the queue if there is none yet and one of `sites` can host
/// it at a computable time ≥ `earliest_s`. Returns a phrase for the decision message.
pub(super) fn try_reserve(
    cy: &mut Cycle<'_>,
    job_index: usize,
    allowed: &[Option<Vec<u32>>],
    sites: &[usize],
    earliest_s: i64,
    protect: Protect,
) -> Option<String> {
    if cy.head.is_some() {
        return None;
    }
    let snap = cy.snap;
    let job = &snap.jobs[job_index];
    let duration_s = job.planned_duration_s(cy.config);
    let best = sites
        .iter()
        .filter_map(|&s| {
            let req = GangRequest {
                replicas: job.replicas,
                gpus_per_replica: job.gpus_per_replica,
                end_s: earliest_s + duration_s,
                allowed: allowed[s].as_deref(),
            };
            cy.pool.shadow_plan(s, &req, &cy.releases[s], earliest_s)
        })
        .min_by(|a, b| {
            let headroom = |s: usize| cy.sites[s].timeline.at(cy.now_s);
            a.start_s
                .cmp(&b.start_s)
                .then(headroom(b.site).total_cmp(&headroom(a.site)))
                .then(cy.site_name(a.site).cmp(cy.site_name(b.site)))
        })?;
    let (site, start_s) = (best.site, best.start_s);
    let pue = site_pue(cy.sites[site].site);
    let power_kw: f64 = best
        .nodes
        .iter()
        .map(|&(n, r)| {
            let replicas = r.reserved_gpus / job.gpus_per_replica;
            replicas_kw(job, replicas, cy.node_watts[n as usize], pue)
        })
        .sum();
    let timeline = &mut cy.sites[site].timeline;
    let protect = match protect {
        Protect::MinFraction(f)
            if timeline.renewable_fraction(start_s, duration_s, power_kw) < f - EPS =>
        {
            Protect::GpusOnly
        }
        Protect::HeadroomAtStart if timeline.at(start_s) < power_kw - EPS => Protect::GpusOnly,
        p => p,
    };
    cy.pool.reserve(&best);
    timeline.add_load(start_s, start_s + duration_s, power_kw);
    let gpus = best.nodes.iter().map(|(_, r)| r.reserved_gpus).sum();
    let phrase = format!(
        "head of queue: holds {gpus} GPUs on {} node(s) at {} from {}{}",
        best.nodes.len(),
        cy.site_name(site),
        format_utc(start_s, cy.now_s),
        match protect {
            Protect::GpusOnly => String::new(),
            _ => format!(" and {} kW of renewable headroom", kw(power_kw)),
        }
    );
    cy.head = Some(HeadReservation {
        job_id: job.id.clone(),
        site,
        start_s,
        end_s: start_s + duration_s,
        power_kw,
        gpus,
        protect,
    });
    Some(phrase)
}

/// Whether placing `power_kw` at `site` now until `end_s` leaves the head's power alone.
pub(super) fn head_power_allows(cy: &Cycle<'_>, site: usize, end_s: i64, power_kw: f64) -> bool {
    let Some(head) = &cy.head else { return true };
    if head.site != site || end_s <= head.start_s {
        return true;
    }
    let timeline = &cy.sites[site].timeline;
    match head.protect {
        Protect::GpusOnly => true,
        Protect::MinFraction(f) => {
            // The timeline already carries the head's load: add it back to see the
            // headroom the head itself can use, minus the candidate's load.
            let kws = timeline.covered_kws(
                head.start_s,
                head.end_s,
                head.power_kw,
                head.power_kw,
                Some(Adjustment {
                    until_s: end_s,
                    kw: -power_kw,
                }),
            );
            let energy = head.power_kw * (head.end_s - head.start_s) as f64;
            energy <= 0.0 || kws / energy >= f - EPS
        }
        Protect::HeadroomAtStart => timeline.at(head.start_s) - power_kw >= -EPS,
    }
}
