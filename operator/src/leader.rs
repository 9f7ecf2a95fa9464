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

use std::time::Duration;

use clap::Args;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Leader election flags of `verdant-operator run`.
#[derive(Args, Clone, Debug)]
pub struct LeaderArgs {
    /// Elect a leader on a coordination.k8s.io Lease, so that several replicas can run:
    /// only the leader runs the controllers, the scheduling cycle, the EnergySite status
    /// and the agents' ingest. Followers keep their caches warm, serve /metrics and
    /// /livez, are ready once they know the leader, and answer agents' reports with 503
    /// (the agents keep them and retry, so the leader gets them). A leader that cannot
    /// renew the Lease exits.
    #[arg(long, env = "VERDANT_LEADER_ELECT")]
    pub leader_elect: bool,

    /// Name of the Lease.
    #[arg(
        long,
        env = "VERDANT_LEADER_ELECT_LEASE_NAME",
        default_value = "verdant-operator-leader"
    )]
    pub leader_elect_lease_name: String,

    /// Namespace of the Lease (the chart sets POD_NAMESPACE from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "verdant-system")]
    pub leader_elect_namespace: String,

    /// This replica's identity in the Lease (default: POD_NAME, else the hostname and a
    /// random suffix, so that plain processes on one machine differ).
    #[arg(long, env = "POD_NAME")]
    pub leader_elect_identity: Option<String>,

    /// How long a Lease stays valid after its last renewal; a follower takes over a
    /// SIGKILLed leader after this (whole seconds, like leaseDurationSeconds).
    #[arg(long, env = "VERDANT_LEADER_ELECT_LEASE_DURATION", default_value = "8s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,

    /// A leader that has not renewed for this long stops (exits); must be shorter than the
    /// lease duration.
    #[arg(long, env = "VERDANT_LEADER_ELECT_RENEW_DEADLINE", default_value = "5s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,

    /// How often the leader renews and followers look at the Lease; shorter than the
    /// renew deadline.
    #[arg(long, env = "VERDANT_LEADER_ELECT_RETRY_PERIOD", default_value = "1s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 5s or 1m: {e}"))?;
    if d.is_negative() || d.is_zero() {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok(d.unsigned_abs())
}

impl LeaderArgs {
    /// The election's settings, or what is wrong with the flags.
    pub fn config(&self) -> Result<LeaseConfig, String> {
        let config = LeaseConfig {
            name: self.leader_elect_lease_name.clone(),
            namespace: self.leader_elect_namespace.clone(),
            identity: self
                .leader_elect_identity
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(default_identity),
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        };
        config.validate()?;
        Ok(config)
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "verdant-operator".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{:08x}", nanos ^ std::process::id().rotate_left(16))
}

/// Where the Lease is, who this replica is, and the timings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's holder identity.
    pub identity: String,
    /// Validity of a renewal (rounded up to whole seconds in the Lease).
    pub lease_duration: Duration,
    /// A leader stops when it has not renewed for this long.
    pub renew_deadline: Duration,
    /// Between renewals, and between a follower's looks at the Lease.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Checks `retry_period < renew_deadline < lease_duration`, the order the guarantee
    /// of a single leader needs.
    pub fn validate(&self) -> Result<(), String> {
        if self.identity.is_empty() {
            return Err("--leader-elect-identity must not be empty".into());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err("--leader-elect-lease-duration must be at least 1s".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--leader-elect-renew-deadline ({:?}) must be shorter than --leader-elect-lease-duration ({:?}): a leader must stop before others may take over",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--leader-elect-retry-period ({:?}) must be shorter than --leader-elect-renew-deadline ({:?}), or a leader gets no second try",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_millis().div_ceil(1000)).unwrap_or(i32::MAX)
    }
}

/// What a replica knows of the election.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// This replica leads and may act.
    pub leading: bool,
    /// The current holder of a live Lease, as last seen (this replica when leading).
    pub holder: Option<String>,
}

/// A read-only handle on the election, for the tasks that may act only as leader and for
/// `/readyz`.
#[derive(Clone)]
pub struct Leadership {
    view: watch::Receiver<LeaderView>,
    resign: std::sync::Arc<Notify>,
}

impl Leadership {
    /// No election (a single replica): leads from the start.
    pub fn sole(identity: &str) -> Self {
        let (_, view) = watch::channel(LeaderView {
            leading: true,
            holder: Some(identity.to_owned()),
        });
        Self {
            view,
            resign: Default::default(),
        }
    }

    /// The current view.
    pub fn view(&self) -> LeaderView {
        self.view.borrow().clone()
    }

    /// Whether this replica leads now.
    pub fn is_leading(&self) -> bool {
        self.view.borrow().leading
    }

    /// Waits until this replica leads. Never returns once the elector has stopped without
    /// leading (the process is exiting then).
    pub async fn acquired(&self) {
        let mut view = self.view.clone();
        if view.wait_for(|v| v.leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Asks the elector to hand the Lease back and stop (graceful shutdown).
    pub fn resign(&self) {
        self.resign.notify_one();
    }
}

/// Why the elector stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Leadership ended: act no more.
    #[error(
        "lost the leader Lease {namespace}/{name}: {reason}; exiting so that no two replicas act"
    )]
    Lost {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What happened.
        reason: String,
    },
}

/// The result of one look at the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease, just written.
    Holding,
    /// Another replica holds a live Lease.
    HeldBy(String),
    /// Someone else wrote the Lease between our read and our write.
    Conflict,
}

/// The last distinct Lease record seen, and when (on this replica's clock).
struct Observed {
    resource_version: Option<String>,
    seen_at: Instant,
    lease_duration: Duration,
}

/// Campaigns for the Lease and keeps it; see the module documentation.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    view: watch::Sender<LeaderView>,
    resign: std::sync::Arc<Notify>,
    observed: Option<Observed>,
    /// The Lease as this replica last wrote it, to renew without reading first.
    written: Option<Lease>,
}

impl Elector {
    /// An elector and the handle its tasks watch.
    pub fn new(client: kube::Client, config: LeaseConfig) -> (Self, Leadership) {
        let (view_tx, view) = watch::channel(LeaderView::default());
        let resign = std::sync::Arc::new(Notify::new());
        let elector = Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            view: view_tx,
            resign: resign.clone(),
            observed: None,
            written: None,
        };
        (elector, Leadership { view, resign })
    }

    /// Campaigns until this replica leads, then renews. Returns `Ok` after a resignation
    /// ([`Leadership::resign`]), and [`LeaseError::Lost`] when leadership ended.
    pub async fn run(mut self) -> Result<(), LeaseError> {
        let resign = self.resign.clone();
        tokio::select! {
            biased;
            () = resign.notified() => {
                self.release().await;
                Ok(())
            }
            lost = self.campaign_and_lead() => Err(lost),
        }
    }

    async fn campaign_and_lead(&mut self) -> LeaseError {
        let (namespace, name) = (&self.config.namespace, &self.config.name);
        info!(identity = %self.config.identity, lease = %format!("{namespace}/{name}"), "campaigning for leadership");
        let mut last_renewal = loop {
            let started = Instant::now();
            match tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew())
                .await
            {
                Ok(Ok(Attempt::Holding)) => break started,
                Ok(Ok(Attempt::HeldBy(holder))) => self.publish(false, Some(holder)),
                Ok(Ok(Attempt::Conflict)) => debug!("the Lease changed under us; looking again"),
                Ok(Err(e)) => {
                    warn!(error = %e, "reading or taking the leader Lease failed; retrying")
                }
                Err(_) => warn!("taking the leader Lease timed out; retrying"),
            }
            if self.observed_expired() {
                self.publish(false, None);
            }
            tokio::time::sleep_until(started + self.config.retry_period).await;
        };
        info!(identity = %self.config.identity, "became the leader");
        self.publish(true, Some(self.config.identity.clone()));
        loop {
            let deadline = last_renewal + self.config.renew_deadline;
            tokio::time::sleep_until((Instant::now() + self.config.retry_period).min(deadline))
                .await;
            let started = Instant::now();
            if started >= deadline {
                return self.lost(format!(
                    "no successful renewal for {:?} (--leader-elect-renew-deadline)",
                    self.config.renew_deadline
                ));
            }
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Holding)) => last_renewal = started,
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    return self.lost(format!("the Lease is now held by {holder}"));
                }
                Ok(Ok(Attempt::Conflict)) => debug!("renewal conflicted; reading the Lease again"),
                Ok(Err(e)) => {
                    warn!(error = %e, "renewing the leader Lease failed; retrying until the renew deadline")
                }
                Err(_) => warn!("renewing the leader Lease timed out"),
            }
        }
    }

    fn lost(&self, reason: String) -> LeaseError {
        self.publish(false, None);
        LeaseError::Lost {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            reason,
        }
    }

    fn publish(&self, leading: bool, holder: Option<String>) {
        self.view.send_if_modified(|view| {
            let new = LeaderView { leading, holder };
            let changed = *view != new;
            *view = new;
            changed
        });
    }

    /// One look at the Lease: create, take over, renew, or learn who holds it.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        // Renewing what we wrote last saves a read; a conflict sends us to the read path.
        if let Some(written) = self.written.take() {
            return self.write(written).await;
        }
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.record(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    self.written = Some(created);
                    Ok(Attempt::Holding)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        if let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty())
            && holder != self.config.identity
            && !self.observed_expired()
        {
            return Ok(Attempt::HeldBy(holder.to_owned()));
        }
        self.write(lease).await
    }

    /// Writes `lease` (a full update, conditional on its `resourceVersion`).
    async fn write(&mut self, lease: Lease) -> Result<Attempt, kube::Error> {
        let mut lease = lease;
        let previous = lease.spec.take();
        lease.spec = Some(self.record(previous.as_ref()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(replaced) => {
                self.observe(&replaced);
                self.written = Some(replaced);
                Ok(Attempt::Holding)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// The record this replica writes, continuing `previous`.
    fn record(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        let ours = previous.and_then(|p| p.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration_seconds()),
            acquire_time: match previous {
                Some(p) if ours => p.acquire_time.clone(),
                _ => Some(now.clone()),
            },
            renew_time: Some(now),
            lease_transitions: Some(match previous {
                Some(_) if ours => transitions,
                Some(_) => transitions.saturating_add(1),
                None => 0,
            }),
            ..Default::default()
        }
    }

    fn observe(&mut self, lease: &Lease) {
        let resource_version = lease.metadata.resource_version.clone();
        if self
            .observed
            .as_ref()
            .is_some_and(|o| o.resource_version == resource_version)
        {
            return;
        }
        let seconds = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or_else(|| self.config.lease_duration.as_secs().max(1));
        self.observed = Some(Observed {
            resource_version,
            seen_at: Instant::now(),
            lease_duration: Duration::from_secs(seconds),
        });
    }

    fn observed_expired(&self) -> bool {
        self.observed
            .as_ref()
            .is_none_or(|o| o.seen_at.elapsed() >= o.lease_duration)
    }

    /// Hands the Lease back if this replica holds it: no holder, so that a follower takes
    /// it at its next look. A conflict means someone else already holds it.
    async fn release(&mut self) {
        let was_leading = self.view.borrow().leading;
        self.publish(false, None);
        // A renewal cut short by the resignation may have taken the cached copy: then
        // the Lease is read again.
        let written = self.written.take();
        if !was_leading {
            return;
        }
        let released = tokio::time::timeout(self.config.renew_deadline, self.hand_back(written));
        match released.await {
            Ok(Ok(true)) => info!("handed the leader Lease back"),
            Ok(Ok(false)) => info!("the leader Lease is no longer ours; nothing to hand back"),
            Ok(Err(e)) => {
                warn!(error = %e, "handing the leader Lease back failed; followers take over when it expires")
            }
            Err(_) => warn!(
                "handing the leader Lease back timed out; followers take over when it expires"
            ),
        }
    }

    /// Clears the holder of the Lease if it is still this replica, starting from
    /// `cached` when there is one; retries after a conflict with the current version.
    async fn hand_back(&self, cached: Option<Lease>) -> Result<bool, kube::Error> {
        let mut cached = cached;
        for _ in 0..3 {
            let mut lease = match cached.take() {
                Some(lease) => lease,
                None => match self.api.get_opt(&self.config.name).await? {
                    Some(lease) => lease,
                    None => return Ok(false),
                },
            };
            let spec = lease.spec.take().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            lease.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                renew_time: Some(MicroTime(jiff::Timestamp::now())),
                ..spec
            });
            match self
                .api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(8),
            renew_deadline: Duration::from_secs(5),
            retry_period: Duration::from_secs(1),
        }
    }

    #[test]
    fn timings_must_be_ordered() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.renew_deadline = Duration::from_secs(8);
        assert!(c.validate().unwrap_err().contains("renew-deadline"));
        let mut c = config();
        c.retry_period = Duration::from_secs(5);
        assert!(c.validate().unwrap_err().contains("retry-period"));
        let mut c = config();
        c.lease_duration = Duration::from_millis(500);
        assert!(c.validate().unwrap_err().contains("at least 1s"));
    }

    #[test]
    fn lease_duration_rounds_up_to_whole_seconds() {
        let mut c = config();
        c.lease_duration = Duration::from_millis(4500);
        assert_eq!(c.lease_duration_seconds(), 5);
    }

    #[test]
    fn durations_parse_and_reject_nonsense() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("8s").unwrap(), Duration::from_secs(8));
        assert!(parse_duration("0s").unwrap_err().contains("positive"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("duration like")
        );
    }
}
