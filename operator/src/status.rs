//! Status bookkeeping: phase transitions, standard conditions, the run clock of
//! `activeDeadlineSeconds`, and the server-side apply. Everything but [`write`] is pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use verdant_core::placement::{Action, Decision};
use verdant_crds::{JobPhase, TrainingJob, TrainingJobStatus};

use crate::error::{Error, Result};
use crate::labels::FIELD_MANAGER;
use crate::reason::Reason;

/// Sets the phase with its reason and message, and the standard conditions that follow:
/// `Scheduled` carries the last scheduling decision; the condition named after the phase
/// (`Running`, `Suspended`, `Succeeded`, `Failed`) carries it when true.
pub fn set_phase(
    status: &mut TrainingJobStatus,
    phase: JobPhase,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let reason = reason.as_str();
    status.phase = phase;
    status.reason = Some(reason.to_owned());
    status.message = Some(message.clone());
    let scheduled = matches!(
        phase,
        JobPhase::Starting | JobPhase::Running | JobPhase::Succeeded
    );
    set_condition(
        &mut status.conditions,
        "Scheduled",
        scheduled,
        reason,
        &message,
        generation,
        now,
    );
    let phase_conditions = [
        JobPhase::Running,
        JobPhase::Suspended,
        JobPhase::Succeeded,
        JobPhase::Failed,
    ];
    for when in phase_conditions {
        let type_ = when.as_str();
        if phase == when {
            set_condition(
                &mut status.conditions,
                type_,
                true,
                reason,
                &message,
                generation,
                now,
            );
        } else {
            let not = format!("Not{type_}");
            let phase_text = format!("the job is {phase}");
            set_condition(
                &mut status.conditions,
                type_,
                false,
                &not,
                &phase_text,
                generation,
                now,
            );
        }
    }
}

/// Upserts a condition, keeping its transition time while its status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let status = if value { "True" } else { "False" }.to_owned();
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.clone(),
        reason: reason.to_owned(),
        message: message.chars().take(32_000).collect(),
        observed_generation: generation,
        last_transition_time: Time(now),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let transition = if existing.status == status {
                existing.last_transition_time.clone()
            } else {
                Time(now)
            };
            *existing = Condition {
                last_transition_time: transition,
                ..condition
            };
        }
        None => conditions.push(condition),
    }
}

/// A gang torn down to start again: its nodes and power cap go. `site` stays (the site
/// the job ran at) and the run clock keeps running, as a Kubernetes Job's does through
/// pod failures.
pub fn clear_placement(status: &mut TrainingJobStatus) {
    status.nodes.clear();
    status.power_cap_percent = None;
}

/// A suspension (by the user, for renewables, or to make room): the nodes and the power
/// cap go, `site` stays, and the run clock of `activeDeadlineSeconds` stops. It starts
/// from zero when every replica runs again, as a Kubernetes Job's clock restarts on
/// resume, so time suspended never counts.
pub fn suspend(status: &mut TrainingJobStatus) {
    clear_placement(status);
    status.start_time = None;
}

/// Every replica runs: the run clock starts, unless it already runs (a gang restart or
/// an operator restart keeps it).
pub fn mark_running(status: &mut TrainingJobStatus, now: jiff::Timestamp) {
    if status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }
}

/// When `activeDeadlineSeconds` (`limit_s`) runs out: `limit_s` after the run clock
/// started. None while the clock does not run (never started, or suspended).
pub fn active_deadline_at(
    limit_s: Option<i64>,
    status: &TrainingJobStatus,
) -> Option<jiff::Timestamp> {
    let started = status.start_time.as_ref()?.0;
    started
        .checked_add(jiff::SignedDuration::from_secs(limit_s?))
        .ok()
}

/// The longest a running job's reconcile sleeps with nothing due: a safety net only. Its
/// pods' changes, a new decision of the scheduling cycle (which also wakes the jobs placed
/// on a node that left the cache) and its active deadline wake it sooner. Every running
/// job is reconciled once per period at rest: 5,000 jobs are 17 reconciles a second.
pub const RUNNING_RESYNC_S: i64 = 300;

/// How long a running job's reconcile may sleep: until just after its active deadline,
/// and at most [`RUNNING_RESYNC_S`].
pub fn next_check(deadline: Option<jiff::Timestamp>, now: jiff::Timestamp) -> std::time::Duration {
    let left_s = deadline.map_or(RUNNING_RESYNC_S, |d| d.as_second() + 1 - now.as_second());
    std::time::Duration::from_secs(left_s.clamp(1, RUNNING_RESYNC_S) as u64)
}

/// The warning for a `spec.energy.deadline` that was already past when the job was
/// created. Such a job is accepted and overdue: its latest start (deadline −
/// estimatedDuration) is in the past, so the engine places it as soon as GPUs are free.
pub fn deadline_in_past(job: &TrainingJob) -> Option<String> {
    let deadline = job.spec.energy.deadline.as_ref()?.0;
    let created = job.metadata.creation_timestamp.as_ref()?.0;
    (deadline < created).then(|| {
        format!(
            "spec.energy.deadline {deadline} was already past when the job was created ({created}): \
             the job is overdue and starts as soon as GPUs are free"
        )
    })
}

/// Sets the `DeadlineInPast` condition when the job's deadline was past at creation.
/// Returns its message when the condition is new (for the Warning Event).
pub fn warn_deadline_in_past(
    status: &mut TrainingJobStatus,
    job: &TrainingJob,
    now: jiff::Timestamp,
) -> Option<String> {
    let message = deadline_in_past(job)?;
    // The condition is named after its reason.
    let type_ = Reason::DeadlineInPast.as_str();
    if status.conditions.iter().any(|c| c.type_ == type_) {
        return None;
    }
    set_condition(
        &mut status.conditions,
        type_,
        true,
        type_,
        &message,
        job.metadata.generation,
        now,
    );
    Some(message)
}

/// Applies the engine's power decision for a running job. The engine decides `PowerCap`
/// or `Uncap` when the cap changes and `Keep` while it stays: a `Keep` of a capped job
/// refreshes the message, so the headroom it states is the current one, not the one of
/// the cycle that set the cap.
pub fn apply_power_decision(status: &mut TrainingJobStatus, decision: &Decision) {
    let cap = match &decision.action {
        Action::PowerCap { percent } => Some(*percent as i32),
        Action::Uncap => None,
        Action::Keep if status.power_cap_percent.is_some() => {
            status.message = Some(decision.message.clone());
            return;
        }
        _ => return,
    };
    status.power_cap_percent = cap;
    status.reason = Some(decision.reason.as_str().to_owned());
    status.message = Some(decision.message.clone());
}

/// The replicas of the job's current gang: one per placed node (an elastic job's size
/// changes), else `spec.replicas`.
pub fn gang_size(job: &TrainingJob) -> u32 {
    match job.status.as_ref().map(|s| s.nodes.len()) {
        Some(placed) if placed > 0 => placed as u32,
        _ => job.spec.replicas.max(0) as u32,
    }
}

/// The size fields, from the nodes placed and the job's elastic bounds: `replicas`,
/// `minReplicas`/`maxReplicas` and `size` (`3/1-4`, or `2` for a job that is not
/// elastic); the size is absent while no replica is placed.
pub fn set_size(status: &mut TrainingJobStatus, job: &TrainingJob) {
    let placed = (!status.nodes.is_empty()).then_some(status.nodes.len() as i32);
    let elastic = job.spec.elastic.as_ref();
    status.replicas = placed;
    status.min_replicas = elastic.map(|e| e.min_replicas);
    status.max_replicas = elastic.map(|e| e.max_replicas);
    status.size = placed.map(|n| match elastic {
        Some(e) => format!("{n}/{}-{}", e.min_replicas, e.max_replicas),
        None => n.to_string(),
    });
}

/// The replicas of a gang in words: "the 1 replica", "all 4 replicas".
pub fn all_replicas(count: usize) -> String {
    if count == 1 {
        "the 1 replica".to_owned()
    } else {
        format!("all {count} replicas")
    }
}

/// Writes the whole status, except `energy`, with server-side apply under Verdant's field
/// manager.
pub async fn write(
    api: &Api<TrainingJob>,
    job: &TrainingJob,
    status: &TrainingJobStatus,
) -> Result<()> {
    // status.energy belongs to the accounting (field manager `verdant-accounting`): left
    // out here, this apply neither owns nor removes it.
    let status = TrainingJobStatus {
        energy: None,
        ..status.clone()
    };
    let patch = serde_json::json!({
        "apiVersion": "verdant.dev/v1alpha1",
        "kind": "TrainingJob",
        "status": status,
    });
    api.patch_status(
        &job.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!(
        "writing the status ({}) of TrainingJob {}",
        status.phase,
        job.name_any()
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use verdant_core::placement::Decision;

    use super::*;
    use crate::reason::EngineReason;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn suspended_time_does_not_count_toward_the_active_deadline() {
        let limit = Some(600);
        let mut status = TrainingJobStatus {
            site: Some("solar-a".into()),
            nodes: vec!["n1".into()],
            power_cap_percent: Some(70),
            ..Default::default()
        };
        assert_eq!(active_deadline_at(limit, &status), None, "never ran");
        mark_running(&mut status, at("2026-01-01T10:00:00Z"));
        assert_eq!(
            active_deadline_at(limit, &status),
            Some(at("2026-01-01T10:10:00Z"))
        );
        // Ran 5 minutes, then suspended (by the user or for renewables) for two hours.
        suspend(&mut status);
        assert_eq!(active_deadline_at(limit, &status), None, "the clock stops");
        assert_eq!(
            status.site.as_deref(),
            Some("solar-a"),
            "the site it ran at"
        );
        assert!(status.nodes.is_empty() && status.power_cap_percent.is_none());
        mark_running(&mut status, at("2026-01-01T12:05:00Z"));
        assert_eq!(
            active_deadline_at(limit, &status),
            Some(at("2026-01-01T12:15:00Z")),
            "starts again from zero on resume, as a Kubernetes Job's"
        );
        // A gang restart is not a suspension: the clock keeps running.
        clear_placement(&mut status);
        mark_running(&mut status, at("2026-01-01T12:09:00Z"));
        assert_eq!(
            active_deadline_at(limit, &status),
            Some(at("2026-01-01T12:15:00Z"))
        );
        assert_eq!(active_deadline_at(None, &status), None, "no limit");
    }

    #[test]
    fn the_next_check_is_just_after_the_deadline_and_at_most_five_minutes_away() {
        let now = at("2026-01-01T10:00:00Z");
        let secs = |d: Option<&str>| next_check(d.map(at), now).as_secs();
        assert_eq!(secs(None), 300);
        assert_eq!(secs(Some("2026-01-01T10:00:10Z")), 11);
        assert_eq!(secs(Some("2026-01-01T10:04:00Z")), 241);
        assert_eq!(secs(Some("2026-01-01T11:00:00Z")), 300);
        assert_eq!(secs(Some("2026-01-01T09:00:00Z")), 1);
    }

    fn job_with_deadline(deadline: &str, created: &str) -> TrainingJob {
        serde_yaml_ng::from_str(&format!(
            "apiVersion: verdant.dev/v1alpha1\nkind: TrainingJob\nmetadata: {{name: j, namespace: ns, creationTimestamp: '{created}', generation: 1}}\nspec:\n  replicas: 1\n  gpusPerReplica: 1\n  energy: {{deadline: '{deadline}', estimatedDuration: 1h}}\n  template: {{spec: {{containers: [{{name: c, image: x}}]}}}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_deadline_past_at_creation_is_warned_once_with_a_condition() {
        let now = at("2026-01-01T10:00:05Z");
        let future = job_with_deadline("2026-01-02T00:00:00Z", "2026-01-01T10:00:00Z");
        let mut status = TrainingJobStatus::default();
        assert_eq!(warn_deadline_in_past(&mut status, &future, now), None);
        assert!(status.conditions.is_empty());

        let past = job_with_deadline("2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z");
        let message = warn_deadline_in_past(&mut status, &past, now).expect("warned");
        assert!(message.contains("2026-01-01T09:00:00Z"), "{message}");
        assert!(message.contains("overdue"), "{message}");
        let condition = &status.conditions[0];
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("DeadlineInPast", "True")
        );
        assert_eq!(condition.reason, "DeadlineInPast");
        assert_eq!(
            warn_deadline_in_past(&mut status, &past, now),
            None,
            "one Event, not one per reconcile"
        );
        // Phase changes keep the condition.
        set_phase(
            &mut status,
            JobPhase::Starting,
            EngineReason::PlacedAtLatestStart.into(),
            "placed".into(),
            Some(1),
            now,
        );
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "DeadlineInPast")
        );
    }

    fn decision(action: Action, reason: EngineReason, message: &str) -> Decision {
        Decision {
            job: "ns/j".into(),
            action,
            reason,
            message: message.into(),
        }
    }

    #[test]
    fn a_capped_jobs_message_follows_the_current_headroom() {
        let mut status = TrainingJobStatus::default();
        apply_power_decision(
            &mut status,
            &decision(
                Action::PowerCap { percent: 70 },
                EngineReason::PowerCapped,
                "power capped to 70% (min 60%): headroom at s is -3.0 kW",
            ),
        );
        assert_eq!(status.power_cap_percent, Some(70));
        assert_eq!(status.reason.as_deref(), Some("PowerCapped"));
        // The next cycles keep the cap: the message must not keep the old headroom.
        apply_power_decision(
            &mut status,
            &decision(
                Action::Keep,
                EngineReason::Running,
                "running at s, 5.0 kW (capped at 70%), expected to end 12:00 UTC; site headroom -0.5 kW",
            ),
        );
        assert_eq!(status.power_cap_percent, Some(70));
        assert_eq!(status.reason.as_deref(), Some("PowerCapped"));
        assert!(status.message.as_deref().unwrap().contains("-0.5 kW"));
        apply_power_decision(
            &mut status,
            &decision(Action::Uncap, EngineReason::PowerUncapped, "uncapped"),
        );
        assert_eq!(status.power_cap_percent, None);
        // An uncapped job's Keep leaves its status alone.
        let before = status.clone();
        apply_power_decision(
            &mut status,
            &decision(Action::Keep, EngineReason::Running, "running"),
        );
        assert_eq!(status, before);
    }

    #[test]
    fn replicas_are_counted_in_words() {
        assert_eq!(all_replicas(1), "the 1 replica");
        assert_eq!(all_replicas(4), "all 4 replicas");
    }

    #[test]
    fn conditions_follow_the_phase_and_keep_transition_times() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let mut status = TrainingJobStatus::default();
        set_phase(
            &mut status,
            JobPhase::Deferred,
            EngineReason::DeferredForRenewables.into(),
            "waiting".into(),
            Some(1),
            t0,
        );
        set_phase(
            &mut status,
            JobPhase::Starting,
            EngineReason::PlacedGreen.into(),
            "placed".into(),
            Some(1),
            t1,
        );
        let get = |t: &str| status.conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(get("Scheduled").status, "True");
        assert_eq!(get("Scheduled").last_transition_time.0, t1);
        assert_eq!(get("Failed").status, "False");
        assert_eq!(
            get("Failed").last_transition_time.0,
            t0,
            "unchanged status keeps its transition time"
        );
        assert_eq!(status.reason.as_deref(), Some("PlacedGreen"));
        assert_eq!(status.conditions.len(), 5);
    }
}
