//! Leader election on a `coordination.k8s.io/v1` Lease, for `verdant-operator run
//! --leader-elect`: of several replicas, one acts (controllers, scheduling cycle, site
//! status, agents' reports) and the others wait with warm caches.
//!
//! # Expected flow
//! Every replica runs an [`Elector`]. Every `retry_period` a candidate reads the Lease;
//! it creates the Lease when there is none, takes it when it has no holder, or when the
//! candidate has seen the same record (same `resourceVersion`) unchanged for the record's
//! `leaseDurationSeconds` on its own clock. Once it leads, it renews every `retry_period`.
//! Each write is an update with the `resourceVersion` it read (optimistic concurrency):
//! of two candidates that race, the API server lets exactly one write succeed, the other
//! gets `409 Conflict` and stays a follower.
//!
//! # Guarantees
//! - At most one replica believes it leads at any moment, given clocks that run at the
//!   same rate (they need not agree on the time: expiry is judged on each replica's own
//!   monotonic clock, never by comparing `renewTime` with the local time).
//! - A leader that has not renewed for `renew_deadline` (measured from the start of its
//!   last successful renewal) stops: [`Elector::run`] returns [`LeaseError::Lost`] and the
//!   operator exits (fail-stop; Kubernetes restarts it as a candidate). Since
//!   `renew_deadline < lease_duration`, it stops before any other replica may take over.
//!   A leader that reads the Lease held by someone else stops at once.
//! - [`Leadership::resign`] on a graceful shutdown hands the Lease back (no holder), so
//!   that a follower takes over within one `retry_period` instead of a lease duration.
//!
//! # Assumptions
//! - Identities are unique among live replicas: the chart uses the pod name. A replica
//!   that restarts under the same identity (a container restart in the same pod) takes
//!   back the Lease at once, which is safe because its previous process is gone.
//! - A stopped leader's last in-flight request reaches the API server within
//!   `lease_duration - renew_deadline` (3 s with the defaults).
//!
//! # Caveats
//! A follower needs up to `lease_duration + retry_period` after a leader's SIGKILL to
//! take over (9 s with the defaults), and then its jobs cache to sync.
//!
//! # Layout
//! - `lease_config`: the `--leader-elect-*` flags and the checked [`LeaseConfig`];
//! - `leadership`: the read-only [`Leadership`] handle the acting tasks wait on;
//! - `elector`: the [`Elector`] that campaigns for the Lease and renews it.

mod elector;
mod leadership;
mod lease_config;

pub use elector::Elector;
pub use leadership::{LeaderView, Leadership, LeaseError};
pub use lease_config::{LeaderArgs, LeaseConfig};
