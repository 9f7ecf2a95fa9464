//! Every reason Verdant writes on a TrainingJob, in `status.reason`, in its conditions and
//! in its Events: the code, the Event type and what it means, in one place.
//!
//! The placement engine's codes ([`EngineReason`]) are documented in
//! `docs/scheduling.md#reason-codes`; the operator's own lifecycle codes are documented
//! by [`Reason::meaning`], and `docs/api.md` carries [`reasons_markdown`] verbatim (a test
//! checks both documents against this enum).

use kube::runtime::events::EventType;
pub use verdant_core::placement::Reason as EngineReason;

/// Why a TrainingJob is where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A decision of the placement engine.
    Engine(EngineReason),
    /// Accepted, waiting for the first scheduling cycle.
    Queued,
    /// `runPolicy.suspend` is true: the pods were deleted.
    SuspendedByUser,
    /// `runPolicy.suspend` is false again: the job waits, still suspended, for a cycle to
    /// place it (then `Resumed`).
    Resuming,
    /// The job is queued in Kueue (`kueue.x-k8s.io/queue-name`) and its Workload is not
    /// admitted (or was evicted): no pods until Kueue admits it.
    WaitingForKueue,
    /// Every replica of the gang runs (an Event only: the status keeps the placement's
    /// reason).
    Started,
    /// Every replica completed successfully.
    Completed,
    /// A replica failed or lost its node: the whole gang was torn down to start again.
    GangRestart,
    /// The gang failed more often than `runPolicy.backoffLimit` allows.
    BackoffLimitExceeded,
    /// The job ran longer than `runPolicy.activeDeadlineSeconds`.
    DeadlineExceeded,
    /// The API server rejected the job's pods or Service.
    FailedCreate,
    /// `spec.energy.deadline` was already past when the job was created.
    DeadlineInPast,
}

impl Reason {
    /// The operator's own codes, in the order the docs list them.
    pub const LIFECYCLE: [Reason; 11] = [
        Reason::Queued,
        Reason::SuspendedByUser,
        Reason::Resuming,
        Reason::WaitingForKueue,
        Reason::Started,
        Reason::Completed,
        Reason::GangRestart,
        Reason::BackoffLimitExceeded,
        Reason::DeadlineExceeded,
        Reason::FailedCreate,
        Reason::DeadlineInPast,
    ];

    /// Every code: the engine's, then the operator's.
    pub fn all() -> impl Iterator<Item = Reason> {
        EngineReason::ALL
            .into_iter()
            .map(Reason::Engine)
            .chain(Self::LIFECYCLE)
    }

    /// The CamelCase code, as written to `status.reason`, conditions and Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Engine(reason) => reason.as_str(),
            Reason::Queued => "Queued",
            Reason::SuspendedByUser => "SuspendedByUser",
            Reason::Resuming => "Resuming",
            Reason::WaitingForKueue => "WaitingForKueue",
            Reason::Started => "Started",
            Reason::Completed => "Completed",
            Reason::GangRestart => "GangRestart",
            Reason::BackoffLimitExceeded => "BackoffLimitExceeded",
            Reason::DeadlineExceeded => "DeadlineExceeded",
            Reason::FailedCreate => "FailedCreate",
            Reason::DeadlineInPast => "DeadlineInPast",
        }
    }

    /// The code's reason, if it is one of Verdant's.
    pub fn from_code(code: &str) -> Option<Reason> {
        Self::all().find(|r| r.as_str() == code)
    }

    /// Warning for what a user should look at: the job cannot run as specified, lost work,
    /// or ended badly; Normal for the rest.
    pub fn event_type(self) -> EventType {
        let warning = matches!(
            self,
            Reason::Engine(
                EngineReason::Unschedulable
                    | EngineReason::Suspended
                    | EngineReason::SuspendedForRenewables
            ) | Reason::GangRestart
                | Reason::BackoffLimitExceeded
                | Reason::DeadlineExceeded
                | Reason::FailedCreate
                | Reason::DeadlineInPast
        );
        if warning {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }

    /// What a lifecycle code means, for `docs/api.md`; the engine's codes point to
    /// `docs/scheduling.md`.
    pub fn meaning(self) -> &'static str {
        match self {
            Reason::Engine(_) => {
                "A placement engine decision: see [scheduling.md](scheduling.md#reason-codes)."
            }
            Reason::Queued => {
                "Still undecided 5 s after its creation: waiting for the first scheduling cycle."
            }
            Reason::SuspendedByUser => {
                "`runPolicy.suspend` is true: the pods were deleted gracefully; the job is `Suspended`."
            }
            Reason::Resuming => {
                "`runPolicy.suspend` is false again: the job stays `Suspended` until a cycle places it, with the reason `Resumed`."
            }
            Reason::WaitingForKueue => {
                "The job is submitted to a Kueue queue (`kueue.x-k8s.io/queue-name`) and its Workload is not admitted, or was evicted: no pods, `Pending` (`Suspended` once it ran). Verdant places it once Kueue admits it; see [kueue.md](kueue.md)."
            }
            Reason::Started => {
                "Every replica runs. An Event only: `status.reason` keeps the placement's code."
            }
            Reason::Completed => "Every replica completed successfully: the job `Succeeded`.",
            Reason::GangRestart => {
                "A replica failed, lost its node or disappeared: the whole gang was torn down and will be placed again. Not when the job's namespace is being deleted: its pods may go before the job, which is then deleted without a restart."
            }
            Reason::BackoffLimitExceeded => {
                "The gang failed again after `runPolicy.backoffLimit` restarts: the job `Failed`."
            }
            Reason::DeadlineExceeded => {
                "The job ran longer than `runPolicy.activeDeadlineSeconds`: pods deleted, the job `Failed`."
            }
            Reason::FailedCreate => {
                "The API server rejected the job's pods or headless Service (for instance an invalid container name in `spec.template`): pods deleted, capacity released, the job `Failed`. Fix the template and create the job again."
            }
            Reason::DeadlineInPast => {
                "`spec.energy.deadline` was already past when the job was created. Also the condition `DeadlineInPast`. The job is overdue: its latest start is now."
            }
        }
    }
}

impl From<EngineReason> for Reason {
    fn from(reason: EngineReason) -> Self {
        Reason::Engine(reason)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn event_type_name(reason: Reason) -> &'static str {
    match reason.event_type() {
        EventType::Warning => "Warning",
        EventType::Normal => "Normal",
    }
}

/// The table of the operator's codes and the Event types of the engine's, as
/// `docs/api.md` shows them.
pub fn reasons_markdown() -> String {
    let mut out = String::from("| Reason | Event | Meaning |\n|---|---|---|\n");
    for reason in Reason::LIFECYCLE {
        out.push_str(&format!(
            "| `{reason}` | {} | {} |\n",
            event_type_name(reason),
            reason.meaning()
        ));
    }
    let warnings: Vec<String> = EngineReason::ALL
        .into_iter()
        .map(Reason::Engine)
        .filter(|r| r.event_type() == EventType::Warning)
        .map(|r| format!("`{r}`"))
        .collect();
    out.push_str(&format!(
        "\nEvents of the engine's codes are Normal, except {}: Warning.\n",
        warnings.join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Codes in the first column of the markdown table that follows `heading`.
    fn table_codes(doc: &str, heading: &str) -> BTreeSet<String> {
        let after = doc
            .split_once(heading)
            .unwrap_or_else(|| panic!("{heading} missing"))
            .1;
        after
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cell = l.split('|').nth(1)?.trim();
                cell.strip_prefix('`')?.strip_suffix('`').map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn codes_are_unique_and_parse_back() {
        let codes: BTreeSet<&str> = Reason::all().map(Reason::as_str).collect();
        assert_eq!(codes.len(), Reason::all().count());
        for reason in Reason::all() {
            assert_eq!(Reason::from_code(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::from_code("Whatever"), None);
    }

    #[test]
    fn api_docs_carry_the_generated_reason_table() {
        let api = include_str!("../../docs/api.md");
        assert!(
            api.contains(&reasons_markdown()),
            "docs/api.md must contain, verbatim:\n{}",
            reasons_markdown()
        );
    }

    #[test]
    fn scheduling_docs_list_exactly_the_engine_codes() {
        let scheduling = include_str!("../../docs/scheduling.md");
        let documented = table_codes(scheduling, "## Reason codes");
        let produced: BTreeSet<String> = EngineReason::ALL
            .into_iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        assert_eq!(documented, produced);
    }

    #[test]
    fn what_needs_a_look_is_a_warning() {
        assert_eq!(
            Reason::from(EngineReason::SuspendedForRenewables).event_type(),
            EventType::Warning
        );
        assert_eq!(
            Reason::from(EngineReason::Unschedulable).event_type(),
            EventType::Warning
        );
        assert_eq!(Reason::FailedCreate.event_type(), EventType::Warning);
        assert_eq!(
            Reason::from(EngineReason::PlacedGreen).event_type(),
            EventType::Normal
        );
        assert_eq!(Reason::Resuming.event_type(), EventType::Normal);
    }
}
