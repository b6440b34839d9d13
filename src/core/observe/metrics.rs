//! Counters and histograms the workers and the completion path update with
//! relaxed atomics; snapshots read them without stopping anything.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::core::observe::histogram::{Histogram, LocalHistogram, Summary};
use crate::core::shm::ring::LANES;

/// How long the JavaScript thread takes to run a delivery notification
/// after a worker sent it: the event-loop lag as the workers see it.
pub struct LoopLag {
    epoch: Instant,
    /// µs since `epoch` (+1) of the pending notification; 0 = none.
    notified_at: AtomicU64,
    pub histogram: Histogram,
    /// Largest lag since the last `take_recent_max`.
    recent_max: AtomicU64,
}

impl LoopLag {
    pub fn new(epoch: Instant) -> Self {
        LoopLag {
            epoch,
            notified_at: AtomicU64::new(0),
            histogram: Histogram::default(),
            recent_max: AtomicU64::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    /// A worker is about to notify the JavaScript thread.
    pub fn notified(&self) {
        let _ = self.notified_at.compare_exchange(
            0,
            self.now_us(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// The JavaScript thread is running the notification (called on it).
    pub fn arrived(&self) {
        let at = self.notified_at.swap(0, Ordering::AcqRel);
        if at != 0 {
            self.record(self.now_us().saturating_sub(at));
        }
    }

    /// Work waited `lag_us` for the JavaScript thread, measured elsewhere.
    pub fn record(&self, lag_us: u64) {
        self.histogram.record(lag_us);
        self.recent_max.fetch_max(lag_us, Ordering::Relaxed);
    }

    pub fn take_recent_max(&self) -> u64 {
        self.recent_max.swap(0, Ordering::Relaxed)
    }
}

pub struct Metrics {
    pub dispatched: [AtomicU64; LANES],
    pub completed_by_lane: [AtomicU64; LANES],
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub handler_failures: AtomicU64,
    pub unhandled: AtomicU64,
    pub undeliverable: AtomicU64,
    pub batches: AtomicU64,
    /// Retries scheduled after a failure.
    pub retries: AtomicU64,
    /// Deliveries moved to the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// Failures marked not retryable (straight to the dead-letter queue).
    pub non_retryable: AtomicU64,
    /// Dead letters put back by `replay`.
    pub replayed: AtomicU64,
    /// Worker panics caught.
    pub worker_restarts: AtomicU64,
    /// Deliveries a panicking worker held, put back in front of their lanes.
    pub requeued: AtomicU64,
    /// Dispatch to acknowledgement, µs.
    pub processing: Histogram,
    /// Emission to dispatch, µs.
    pub queue_wait: Histogram,
    /// Largest queue wait since the last `take_recent_queue_wait_max`.
    recent_queue_wait_max: AtomicU64,
    pub lag: Arc<LoopLag>,
}

/// Outcome of one delivery, as JavaScript reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every handler settled without error.
    Ok = 0,
    /// At least one handler threw or rejected.
    Failed = 1,
    /// No handler was registered for the type when the event arrived.
    NoHandler = 2,
}

impl Outcome {
    pub fn from_code(code: u32) -> Option<Outcome> {
        match code {
            0 => Some(Outcome::Ok),
            1 => Some(Outcome::Failed),
            2 => Some(Outcome::NoHandler),
            _ => None,
        }
    }
}

/// Outcomes of one batch of acknowledgements, summed locally and applied
/// with one atomic operation per counter instead of several per event.
#[derive(Default)]
pub struct OutcomeTally {
    by_lane: [u64; LANES],
    by_outcome: [u64; 3],
    processing: LocalHistogram,
}

impl OutcomeTally {
    pub fn add(&mut self, outcome: Outcome, lane: u8, elapsed_us: u64) {
        if let Some(c) = self.by_lane.get_mut(lane as usize) {
            *c += 1;
        }
        self.by_outcome[outcome as usize] += 1;
        self.processing.add(elapsed_us);
    }
}

impl Metrics {
    pub fn new(epoch: Instant) -> Self {
        Metrics {
            dispatched: Default::default(),
            completed_by_lane: Default::default(),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            handler_failures: AtomicU64::new(0),
            unhandled: AtomicU64::new(0),
            undeliverable: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            non_retryable: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            worker_restarts: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            processing: Histogram::default(),
            queue_wait: Histogram::default(),
            recent_queue_wait_max: AtomicU64::new(0),
            lag: Arc::new(LoopLag::new(epoch)),
        }
    }

    /// Queue waits of a dispatched batch.
    pub fn record_queue_waits(&self, waits: &mut LocalHistogram) {
        self.recent_queue_wait_max
            .fetch_max(waits.max(), Ordering::Relaxed);
        self.queue_wait.merge(waits);
    }

    pub fn take_recent_queue_wait_max(&self) -> u64 {
        self.recent_queue_wait_max.swap(0, Ordering::Relaxed)
    }

    pub fn record(&self, tally: &mut OutcomeTally) {
        for (counter, n) in self.completed_by_lane.iter().zip(tally.by_lane) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        let counters = [&self.succeeded, &self.failed, &self.unhandled];
        for (counter, n) in counters.into_iter().zip(tally.by_outcome) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.processing.merge(&mut tally.processing);
    }

    pub fn completed(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.unhandled.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let completed = self.completed();
        let processing = self.processing.summary();
        CounterSnapshot {
            dispatched: std::array::from_fn(|i| self.dispatched[i].load(Ordering::Relaxed)),
            completed_by_lane: std::array::from_fn(|i| {
                self.completed_by_lane[i].load(Ordering::Relaxed)
            }),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            handler_failures: self.handler_failures.load(Ordering::Relaxed),
            unhandled: self.unhandled.load(Ordering::Relaxed),
            undeliverable: self.undeliverable.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            non_retryable: self.non_retryable.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            worker_restarts: self.worker_restarts.load(Ordering::Relaxed),
            requeued: self.requeued.load(Ordering::Relaxed),
            completed,
            average_processing_ms: if processing.count == 0 {
                0.0
            } else {
                processing.sum_us as f64 / processing.count as f64 / 1e3
            },
            processing: processing.into(),
            queue_wait: self.queue_wait.summary().into(),
            event_loop_lag: self.lag.histogram.summary().into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterSnapshot {
    /// Deliveries handed to JavaScript, per lane.
    pub dispatched: [u64; LANES],
    /// Deliveries whose handlers all settled, per lane.
    pub completed_by_lane: [u64; LANES],
    pub succeeded: u64,
    pub failed: u64,
    pub handler_failures: u64,
    pub unhandled: u64,
    pub undeliverable: u64,
    pub batches: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub non_retryable: u64,
    pub replayed: u64,
    pub worker_restarts: u64,
    pub requeued: u64,
    pub completed: u64,
    pub average_processing_ms: f64,
    pub processing: Percentiles,
    pub queue_wait: Percentiles,
    pub event_loop_lag: Percentiles,
}

/// A histogram's summary in milliseconds, as the JavaScript API reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl From<Summary> for Percentiles {
    fn from(s: Summary) -> Self {
        let ms = |us: u64| us as f64 / 1e3;
        Percentiles {
            count: s.count,
            p50: ms(s.p50_us),
            p95: ms(s.p95_us),
            p99: ms(s.p99_us),
            max: ms(s.max_us),
            mean: if s.count == 0 {
                0.0
            } else {
                s.sum_us as f64 / s.count as f64 / 1e3
            },
        }
    }
}
