//! The green placement engine: a pure function from a [`Snapshot`] to [`Decision`]s.
//!
//! The live controller and the trace simulator gather the same kind of snapshot (sites
//! with their renewable forecast, GPU nodes, TrainingJobs) and call [`run_cycle`]; the
//! engine never reads a clock or talks to the API server, so both see identical decisions.
//!
//! # Expected flow
//! 1. Build the cycle's state (`state.rs`): per-site headroom timelines (forecast − base
//!    load − running jobs) and per-site buckets of nodes by free GPUs (`headroom.rs`,
//!    `packing.rs`).
//! 2. Settle running jobs: power caps, GreenOnly suspensions after the grace period,
//!    cap lifts (`brownout.rs`).
//! 3. Walk pending and suspended jobs in queue order (`queue.rs`, `pending.rs`): what fits
//!    now (`survey.rs`), then each gets `Place`, `Defer` or `Wait` according to its policy
//!    (`policy.rs`; both green policies climb one ladder, `green.rs`), made and worded by
//!    `outcome.rs`; placements update the buckets and timelines at once, so later jobs
//!    see them.
//! 4. The first job that cannot start now becomes the head of the queue and reserves GPUs
//!    (and, if it waits for green power, headroom) for its future start; later jobs only
//!    backfill around it (`reservation.rs`).
//! 5. A job whose latest start has come and that finds no GPUs has interruptible jobs with
//!    slack suspended to make room for it (`preempt.rs`).
//!
//! # Guarantees
//! Gangs are all-or-nothing on one site, no node is over-committed, every job gets exactly
//! one decision, and the output is a deterministic function of the input. The
//! property tests in `tests/` check the first three over random snapshots.
//!
//! # Assumptions
//! - `Node::gpus_used` counts every GPU already bound, including running Verdant jobs.
//! - Running jobs end at start + estimate (overrunning ones `overrun_extension_s` from now).
//! - `measured_gpu_watts` is an uncapped draw; caps scale a job's power linearly.
//!
//! # Caveats
//! A reservation protects the head against this cycle's placements only; the next cycle
//! recomputes it from fresh facts. Forecast errors are not hedged: the engine trusts the
//! forecast it is given and re-decides every cycle. See docs/scheduling.md.

mod brownout;
mod cycle;
mod decision;
mod elastic;
mod green;
mod headroom;
mod outcome;
mod packing;
mod pending;
mod policy;
mod power;
mod preempt;
mod queue;
mod reason;
mod reservation;
mod snapshot;
mod state;
mod survey;
mod timefmt;

#[cfg(test)]
mod tests;

pub use cycle::run_cycle;
pub use decision::{Action, Decision};
pub use queue::queue_cmp;
pub use reason::Reason;
pub use snapshot::{
    Elastic, EngineConfig, Job, JobState, Node, Policy, Site, Snapshot, SupplyPoint,
};
pub use timefmt::{format_duration, format_utc};
