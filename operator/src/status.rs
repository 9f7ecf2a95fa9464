//! Status bookkeeping: phase transitions, standard conditions, and the server-side apply.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use verdant_crds::{JobPhase, TrainingJob, TrainingJobStatus};

use crate::error::{Error, Result};
use crate::labels::FIELD_MANAGER;
use crate::scheduler::phase_name;

/// Sets the phase with its reason and message, and the standard conditions that follow:
/// `Scheduled` carries the last scheduling decision; the condition named after the phase
/// (`Running`, `Suspended`, `Succeeded`, `Failed`) carries it when true.
pub fn set_phase(
    status: &mut TrainingJobStatus,
    phase: JobPhase,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
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
        ("Running", JobPhase::Running),
        ("Suspended", JobPhase::Suspended),
        ("Succeeded", JobPhase::Succeeded),
        ("Failed", JobPhase::Failed),
    ];
    for (type_, when) in phase_conditions {
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
            let phase_text = format!("the job is {}", phase_name(phase));
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
        phase_name(status.phase),
        job.name_any()
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_the_phase_and_keep_transition_times() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let mut status = TrainingJobStatus::default();
        set_phase(
            &mut status,
            JobPhase::Deferred,
            "DeferredForRenewables",
            "waiting".into(),
            Some(1),
            t0,
        );
        set_phase(
            &mut status,
            JobPhase::Starting,
            "PlacedGreen",
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
