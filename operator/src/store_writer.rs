//! The energy store's writer. Group commit: one task writes the reports of all
//! concurrent requests in one transaction, and answers each request only after the
//! commit.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OnceCell, mpsc, oneshot};
use tracing::warn;
use verdant_store::{ReportWrite, Store, WriteOutcome};

use crate::metrics::Metrics;

/// The most reports in one transaction.
pub const MAX_BATCH: usize = 512;
const QUEUE: usize = 4096;

/// The store, once connected (the operator starts without it and connects in the
/// background, so that scheduling never waits for the database).
pub type StoreCell = Arc<OnceCell<Store>>;

type Reply = oneshot::Sender<Result<WriteOutcome, verdant_store::Error>>;

/// Sends reports to the writer task.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<(ReportWrite, Reply)>,
}

impl Writer {
    /// A writer, and its task (for the supervisor to run); the task ends when every
    /// [`Writer`] is dropped.
    pub fn new(
        store: StoreCell,
        metrics: Arc<Metrics>,
    ) -> (Writer, impl Future<Output = ()> + Send + 'static) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        (Writer { queue }, run(store, receiver, metrics))
    }

    /// Stores a report; returns after the commit.
    pub async fn write(&self, write: ReportWrite) -> Result<WriteOutcome, verdant_store::Error> {
        let (reply, answer) = oneshot::channel();
        let stopped = || verdant_store::Error::Unavailable {
            context: "queueing a report".into(),
            message: "the store writer has stopped".into(),
        };
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(
    store: StoreCell,
    mut receiver: mpsc::Receiver<(ReportWrite, Reply)>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let Some(store) = store.get() else {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(verdant_store::Error::Unavailable {
                    context: "storing a report".into(),
                    message: "the operator has not connected to the database yet".into(),
                }));
            }
            continue;
        };
        let started = Instant::now();
        let (writes, replies): (Vec<ReportWrite>, Vec<Reply>) = batch.drain(..).unzip();
        metrics.ingest.batch_reports.observe(writes.len() as f64);
        match store.write_batch(&writes).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if e.is_unavailable() || writes.len() == 1 => {
                for reply in replies {
                    let _ = reply.send(Err(clone_error(&e)));
                }
            }
            Err(e) => {
                // One report the database refuses must not fail the others: write them
                // one by one.
                warn!(error = %e, reports = writes.len(), "a batch failed; writing its reports one by one");
                for (write, reply) in writes.into_iter().zip(replies) {
                    let result = store
                        .write_batch(std::slice::from_ref(&write))
                        .await
                        .map(|o| o[0]);
                    let _ = reply.send(result);
                }
            }
        }
        metrics
            .ingest
            .write_duration
            .observe(started.elapsed().as_secs_f64());
    }
}

fn clone_error(e: &verdant_store::Error) -> verdant_store::Error {
    match e {
        verdant_store::Error::Unavailable { context, message } => {
            verdant_store::Error::Unavailable {
                context: context.clone(),
                message: message.clone(),
            }
        }
        other => verdant_store::Error::Database {
            context: "storing a report".into(),
            message: other.to_string(),
        },
    }
}
