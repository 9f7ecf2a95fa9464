//! Waiting for the cluster to reach a state, with a message that says what never came.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout` naming
/// `what` and the last observation.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(observed)) => observed,
            Err(e) => format!("error: {e:#}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last observed: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the TrainingJob `name` to reach `phase`; returns it then. A job without a
/// status is in no phase yet (not `Pending`): the operator has not looked at it.
pub async fn job_in_phase(
    jobs: &kube::Api<verdant_crds::TrainingJob>,
    name: &str,
    phase: verdant_crds::JobPhase,
    timeout: Duration,
) -> anyhow::Result<verdant_crds::TrainingJob> {
    until(
        &format!("TrainingJob {name} to be {phase:?}"),
        timeout,
        || async move {
            let job = jobs.get(name).await?;
            let Some(status) = job.status.clone() else {
                return Ok(Err("no status yet".to_owned()));
            };
            Ok(if status.phase == phase {
                Ok(job)
            } else {
                Err(format!(
                    "phase {:?}, reason {:?}, message {:?}",
                    status.phase, status.reason, status.message
                ))
            })
        },
    )
    .await
}
