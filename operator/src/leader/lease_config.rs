//! The leader election's flags, and the settings they make once checked.

use std::time::Duration;

use clap::Args;

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

    pub(super) fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_millis().div_ceil(1000)).unwrap_or(i32::MAX)
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
