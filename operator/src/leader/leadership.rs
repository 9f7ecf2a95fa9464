//! What the acting tasks and `/readyz` know of the election: a read-only handle.

use tokio::sync::{Notify, watch};

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
    pub(super) view: watch::Receiver<LeaderView>,
    pub(super) resign: std::sync::Arc<Notify>,
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
