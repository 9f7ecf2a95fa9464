//! The agent's long-running tasks, under one supervisor.
//!
//! # Expected flow
//! The daemon spawns every task that should live as long as the agent (the HTTP server,
//! the pod watch, the window handler, the reporter, the end of the sampling thread) into
//! one [`Supervisor`], and waits on [`Supervisor::next_ended`]. Code that starts a task
//! later and cannot hold the supervisor (the pod watch the cgroup fallback starts on first
//! need) hands it over through a [`Spawner`]; the supervisor spawns it while it waits.
//!
//! # Guarantees
//! - No task is detached: each one's end, return value or panic reaches `next_ended`,
//!   named. The daemon treats any end while it runs as fatal and exits non-zero, so that
//!   Kubernetes restarts the agent rather than keeping a pod that looks alive and has
//!   stopped doing its job (linkerd lost its policy controller to a detached task once).
//! - Dropping the supervisor aborts every task still running.
//!
//! # Caveats
//! - A task handed to a [`Spawner`] starts only while someone awaits `next_ended` (or
//!   `shut_down`); after the supervisor is dropped, it is dropped unstarted.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};

/// What a supervised task returns when it ends.
pub type TaskResult = anyhow::Result<()>;

type BoxedTask = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

/// A handle that starts tasks under the supervisor from anywhere.
#[derive(Clone)]
pub struct Spawner(mpsc::UnboundedSender<(&'static str, BoxedTask)>);

impl Spawner {
    /// Hands `task` to the supervisor, which starts it at once if it is waiting.
    pub fn spawn(
        &self,
        name: &'static str,
        task: impl Future<Output = TaskResult> + Send + 'static,
    ) {
        if self.0.send((name, Box::pin(task))).is_err() {
            tracing::debug!(task = name, "the agent is stopping: task not started");
        }
    }
}

/// A task that ended, and how.
#[derive(Debug)]
pub struct Ended {
    /// The name it was spawned under.
    pub name: &'static str,
    /// What it returned; a panic or an abort is an error.
    pub outcome: TaskResult,
}

impl Ended {
    /// The error this end is while the agent runs: every supervised task is meant to run
    /// until the agent stops.
    pub fn into_error(self) -> anyhow::Error {
        match self.outcome {
            Ok(()) => anyhow::anyhow!("the task '{}' ended", self.name),
            Err(error) => error.context(format!("the task '{}' failed", self.name)),
        }
    }
}

/// Every long-running task of the agent, in one `JoinSet`.
pub struct Supervisor {
    set: JoinSet<TaskResult>,
    names: HashMap<Id, &'static str>,
    handed_over: mpsc::UnboundedReceiver<(&'static str, BoxedTask)>,
    spawner: Spawner,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// No tasks yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            set: JoinSet::new(),
            names: HashMap::new(),
            handed_over: rx,
            spawner: Spawner(tx),
        }
    }

    /// A handle for code that starts tasks later.
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// Starts `task` now.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = TaskResult> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Waits until a task ends, starting the tasks spawners hand over meanwhile. With no
    /// task running, waits for one to be handed over.
    pub async fn next_ended(&mut self) -> Ended {
        loop {
            tokio::select! {
                Some(joined) = self.set.join_next_with_id() => {
                    let (id, outcome) = match joined {
                        Ok((id, outcome)) => (id, outcome),
                        Err(error) => {
                            let what = if error.is_panic() { "panicked" } else { "was aborted" };
                            (error.id(), Err(anyhow::anyhow!("it {what}: {error}")))
                        }
                    };
                    let name = self.names.remove(&id).unwrap_or("unnamed");
                    return Ended { name, outcome };
                }
                Some((name, task)) = self.handed_over.recv() => self.spawn(name, task),
            }
        }
    }

    /// Waits up to `deadline` for the tasks named in `wait_for` to end (they finish their
    /// work once their input closes), logging how each ends, then aborts the rest.
    pub async fn shut_down(mut self, wait_for: &[&str], deadline: Duration) {
        let mut left: Vec<&str> = wait_for
            .iter()
            .copied()
            .filter(|name| self.names.values().any(|n| n == name))
            .collect();
        let drained = async {
            while !left.is_empty() {
                let ended = self.next_ended().await;
                left.retain(|name| *name != ended.name);
                match ended.outcome {
                    Ok(()) => tracing::debug!(task = ended.name, "stopped"),
                    Err(error) => {
                        tracing::warn!(
                            task = ended.name,
                            error = format!("{error:#}"),
                            "stopped with an error"
                        );
                    }
                }
            }
        };
        if tokio::time::timeout(deadline, drained).await.is_err() {
            tracing::warn!(
                ?deadline,
                "tasks still running at the shutdown deadline; aborting them"
            );
        }
        self.set.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_returns_is_reported_by_name() {
        let mut tasks = Supervisor::new();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("short", async { Ok(()) });
        let ended = tasks.next_ended().await;
        assert_eq!(ended.name, "short");
        assert_eq!(ended.into_error().to_string(), "the task 'short' ended");
    }

    #[tokio::test]
    async fn a_panic_is_an_error_naming_the_task() {
        let mut tasks = Supervisor::new();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("watch", async {
            tokio::task::yield_now().await;
            panic!("boom")
        });
        let error = tasks.next_ended().await.into_error();
        let text = format!("{error:#}");
        assert!(
            text.starts_with("the task 'watch' failed: it panicked"),
            "{text}"
        );
        assert!(text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn a_task_handed_over_later_is_supervised_too() {
        let mut tasks = Supervisor::new();
        let spawner = tasks.spawner();
        let hand_over = async move {
            tokio::task::yield_now().await;
            spawner.spawn("late", async {
                Err(anyhow::anyhow!("the API server went away"))
            });
            std::future::pending::<()>().await;
        };
        let ended = tokio::select! {
            ended = tasks.next_ended() => ended,
            () = hand_over => unreachable!(),
        };
        assert_eq!(
            format!("{:#}", ended.into_error()),
            "the task 'late' failed: the API server went away"
        );
    }

    #[tokio::test]
    async fn shutting_down_waits_for_the_named_tasks_and_aborts_the_rest() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (aborted_tx, aborted_rx) = tokio::sync::oneshot::channel::<()>();
        let mut tasks = Supervisor::new();
        tasks.spawn("drain", async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = done_tx.send(());
            Ok(())
        });
        tasks.spawn("server", async move {
            let _dropped_on_abort = aborted_tx;
            std::future::pending().await
        });
        tasks
            .shut_down(&["drain", "not running"], Duration::from_secs(10))
            .await;
        assert!(done_rx.await.is_ok(), "the drained task finished its work");
        assert!(aborted_rx.await.is_err(), "the other task was aborted");
    }
}
