//! Status reason codes. The controller copies `Reason::as_str()` verbatim into
//! `TrainingJob.status.reason`, so a code, once published, keeps its meaning.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why the engine decided what it did for a job in this cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Immediate job placed now, at the fitting site with the most current renewable
    /// headroom (which may be negative: Immediate jobs run on grid power too).
    PlacedImmediate,
    /// Placed now on green power. GreenPreferred: the expected renewable fraction at the
    /// chosen site reaches `min_renewable_fraction`. GreenOnly: the site's current headroom
    /// covers the job's whole power.
    PlacedGreen,
    /// GreenPreferred job placed now because its latest start has come, although no site
    /// reaches `min_renewable_fraction`; deadlines come before green energy.
    PlacedAtLatestStart,
    /// GreenPreferred job with a latest start for which no window before that start
    /// reaches `min_renewable_fraction`, and starting now gives the best fraction of all
    /// windows, so waiting would gain nothing.
    PlacedBestAvailable,
    /// A suspended job (for renewables, to make room, or by the user and since resumed)
    /// was placed again: its policy's start condition holds.
    Resumed,
    /// Deferred to `until_s`, the earliest forecast step at which the job's start condition
    /// holds: the renewable fraction reaches `min_renewable_fraction` (GreenPreferred), or
    /// headroom covers the job's power (GreenOnly).
    DeferredForRenewables,
    /// GreenPreferred job whose threshold is reached by no window before its latest start:
    /// deferred to `until_s`, the window with the best fraction, which beats starting now.
    DeferredForBetterWindow,
    /// No forecast step reaches the job's start condition, and no latest start forces a
    /// start, so the job waits for the forecast to change (`until_s` is `None`).
    NoGreenWindowInForecast,
    /// No allowed site has enough free GPUs for the whole gang now.
    WaitingForCapacity,
    /// Some allowed site has the renewable power the job needs now, but not enough free GPUs.
    WaitingForGreenCapacity,
    /// The job would fit now, but only on GPUs or renewable headroom reserved for the head
    /// of the queue, whose start it would delay (see "Backfilling" in docs/scheduling.md).
    ReservedForHeadOfQueue,
    /// The job can never be placed as specified: it requests no GPUs, or no allowed site
    /// has enough allocatable GPUs on allowed schedulable nodes even when idle.
    Unschedulable,
    /// Running job left as it is.
    Running,
    /// Interruptible job with slack suspended to make room for a job whose latest start
    /// has come and that fits nowhere else.
    Suspended,
    /// Interruptible job suspended for renewables (GreenOnly, or GreenPreferred with its
    /// latest start at least an hour ahead): its site's headroom has been negative for
    /// longer than the grace period and capping could not close the gap.
    SuspendedForRenewables,
    /// Running job's GPU power cap set or changed to `percent` of the default limit.
    PowerCapped,
    /// Running job's GPU power cap lifted: the site has headroom again, with margin.
    PowerUncapped,
    /// Elastic job grown (up to its `maxReplicas`): its site has renewable headroom for
    /// the added replicas, with margin, for the next `elastic_grow_hold_s`, and free GPUs.
    ScaledUp,
    /// Elastic job shrunk (not below its `minReplicas`, replica 0 kept) because its site's
    /// headroom turned negative and capping could not close the gap; shrinking comes
    /// before any suspension.
    ScaledDown,
}

impl Reason {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [Reason; 19] = [
        Reason::PlacedImmediate,
        Reason::PlacedGreen,
        Reason::PlacedAtLatestStart,
        Reason::PlacedBestAvailable,
        Reason::Resumed,
        Reason::DeferredForRenewables,
        Reason::DeferredForBetterWindow,
        Reason::NoGreenWindowInForecast,
        Reason::WaitingForCapacity,
        Reason::WaitingForGreenCapacity,
        Reason::ReservedForHeadOfQueue,
        Reason::Unschedulable,
        Reason::Running,
        Reason::Suspended,
        Reason::SuspendedForRenewables,
        Reason::PowerCapped,
        Reason::PowerUncapped,
        Reason::ScaledUp,
        Reason::ScaledDown,
    ];

    /// The CamelCase code written to `status.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PlacedImmediate => "PlacedImmediate",
            Reason::PlacedGreen => "PlacedGreen",
            Reason::PlacedAtLatestStart => "PlacedAtLatestStart",
            Reason::PlacedBestAvailable => "PlacedBestAvailable",
            Reason::Resumed => "Resumed",
            Reason::DeferredForRenewables => "DeferredForRenewables",
            Reason::DeferredForBetterWindow => "DeferredForBetterWindow",
            Reason::NoGreenWindowInForecast => "NoGreenWindowInForecast",
            Reason::WaitingForCapacity => "WaitingForCapacity",
            Reason::WaitingForGreenCapacity => "WaitingForGreenCapacity",
            Reason::ReservedForHeadOfQueue => "ReservedForHeadOfQueue",
            Reason::Unschedulable => "Unschedulable",
            Reason::Running => "Running",
            Reason::Suspended => "Suspended",
            Reason::SuspendedForRenewables => "SuspendedForRenewables",
            Reason::PowerCapped => "PowerCapped",
            Reason::PowerUncapped => "PowerUncapped",
            Reason::ScaledUp => "ScaledUp",
            Reason::ScaledDown => "ScaledDown",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
