//! The campaign for the Lease and its renewal; see the module documentation of
//! [`crate::leader`].

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::leadership::{LeaderView, Leadership, LeaseError};
use super::lease_config::LeaseConfig;

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
