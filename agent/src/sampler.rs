//! The sampling thread: reads the GPUs every period, updates the metrics, closes windows,
//! and applies power limits. It owns the backend, because NVML calls block.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use verdant_crds::wire::{PodRef, PowerLimitTarget};

use crate::backend::GpuBackend;
use crate::cap_record::CapRecord;
use crate::capping::PowerCapper;
use crate::metrics::Metrics;
use crate::sample::{GpuSample, now_ms};
use crate::server::Health;
use crate::window::{ClosedWindow, WindowAggregator};

/// GPU UUID → the container holding it, as attribution last found it.
pub type Holders = Arc<RwLock<HashMap<String, PodRef>>>;

/// What the sampling thread can be told.
#[derive(Debug)]
pub enum Command {
    /// The operator's latest power-limit targets for this node.
    PowerLimits(Vec<PowerLimitTarget>),
    /// Flush the open window, restore the power limits, and end.
    Stop,
}

/// How the thread samples.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    /// This node.
    pub node: String,
    /// Sampling period.
    pub interval: Duration,
    /// Report window.
    pub window: Duration,
    /// Never set power limits.
    pub read_only: bool,
    /// Where the power limits set are recorded (restored on the next start after a crash).
    pub cap_record: Option<CapRecord>,
}

/// The running thread.
pub struct SamplerHandle {
    commands: Sender<Command>,
    thread: JoinHandle<()>,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl SamplerHandle {
    /// A sender for commands.
    pub fn commands(&self) -> Sender<Command> {
        self.commands.clone()
    }

    /// Stops the thread and waits for it (blocking: call from a blocking context).
    pub fn stop(self) {
        let _ = self.commands.send(Command::Stop);
        if self.thread.join().is_err() {
            tracing::error!("the sampling thread panicked");
        }
    }

    /// A future that resolves when the thread ends, however it ends (a panic included),
    /// for the supervisor to watch. Only the first call's future resolves; later ones
    /// never do.
    pub fn ended(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let ended = self.ended.take();
        async move {
            match ended {
                // The thread drops the sender when it returns or unwinds.
                Some(ended) => {
                    let _ = ended.await;
                }
                None => std::future::pending().await,
            }
        }
    }
}

/// Starts the sampling thread. Closed windows go to `windows`.
pub fn spawn(
    backend: Box<dyn GpuBackend>,
    config: SamplerConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    holders: Holders,
    windows: tokio::sync::mpsc::UnboundedSender<ClosedWindow>,
) -> std::io::Result<SamplerHandle> {
    let (commands, inbox) = std::sync::mpsc::channel();
    let (ended_tx, ended) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            Sampler {
                _ended: ended_tx,
                backend,
                aggregator: WindowAggregator::new(
                    config.node.clone(),
                    config.window.as_millis() as i64,
                ),
                capper: PowerCapper::new(config.read_only, config.cap_record.clone()),
                config,
                metrics,
                health,
                holders,
                windows,
                latest: Vec::new(),
            }
            .run(inbox)
        })?;
    Ok(SamplerHandle {
        commands,
        thread,
        ended: Some(ended),
    })
}

struct Sampler {
    /// Dropped when the thread ends, however it ends. The first field, so that it drops
    /// before `windows` does and the supervisor learns of the thread's end before the
    /// window handler sees its input close.
    _ended: tokio::sync::oneshot::Sender<()>,
    backend: Box<dyn GpuBackend>,
    aggregator: WindowAggregator,
    capper: PowerCapper,
    config: SamplerConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    holders: Holders,
    windows: tokio::sync::mpsc::UnboundedSender<ClosedWindow>,
    latest: Vec<GpuSample>,
}

impl Sampler {
    fn run(mut self, inbox: Receiver<Command>) {
        let interval_ms = (self.config.interval.as_millis() as i64).max(1);
        // Limits an earlier run left behind go back before the first window opens.
        let first = self.backend.sample();
        self.capper
            .recover(self.backend.as_mut(), &first, &self.metrics);
        self.latest = first.gpus;
        // Ticks on multiples of the period, so that the last sample of a window falls just
        // before its end.
        let mut next_ms = now_ms();
        loop {
            let wait_ms = (next_ms - now_ms()).max(0);
            match inbox.recv_timeout(Duration::from_millis(wait_ms as u64)) {
                Ok(Command::PowerLimits(targets)) => {
                    self.capper
                        .apply(self.backend.as_mut(), &self.latest, &targets, &self.metrics);
                    continue;
                }
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.sample_once();
            let now = now_ms();
            next_ms = (now.div_euclid(interval_ms) + 1) * interval_ms;
        }
        // Take a last reading so the final window ends with the stop.
        self.sample_once();
        if let Some(window) = self.aggregator.flush(now_ms()) {
            self.emit(window);
        }
        self.capper
            .restore_all(self.backend.as_mut(), &self.latest, &self.metrics);
        tracing::info!("sampling stopped");
    }

    fn sample_once(&mut self) {
        let set = self.backend.sample();
        let at_ms = now_ms();
        for error in &set.errors {
            tracing::warn!(%error, "GPU reading failed");
            Metrics::count(&self.metrics.sample_errors, "error", error.metric_label());
        }
        {
            let holders = self.holders.read().unwrap_or_else(|e| e.into_inner());
            self.metrics
                .record_samples(&set.gpus, |s| holders.get(&s.uuid));
        }
        if !set.gpus.is_empty() {
            self.health.last_sample_ms.store(at_ms, Ordering::Release);
            self.latest = set.gpus.clone();
        }
        if let Some(window) = self.aggregator.push(at_ms, &set.gpus) {
            self.emit(window);
        }
    }

    fn emit(&self, window: ClosedWindow) {
        self.metrics.windows.inc();
        if self.windows.send(window).is_err() {
            tracing::debug!("no receiver for closed windows");
        }
    }
}
