//! Counters the workers and the completion path update with relaxed atomics;
//! a snapshot reads them without stopping anything.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ring::LANES;

#[derive(Default)]
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
    pub processing_ns: AtomicU64,
    pub processing_max_ns: AtomicU64,
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
    ns: u64,
    max_ns: u64,
}

impl OutcomeTally {
    pub fn add(&mut self, outcome: Outcome, lane: u8, elapsed_ns: u64) {
        if let Some(c) = self.by_lane.get_mut(lane as usize) {
            *c += 1;
        }
        self.by_outcome[outcome as usize] += 1;
        self.ns += elapsed_ns;
        self.max_ns = self.max_ns.max(elapsed_ns);
    }
}

impl Metrics {
    pub fn record(&self, tally: &OutcomeTally) {
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
        self.processing_ns.fetch_add(tally.ns, Ordering::Relaxed);
        self.processing_max_ns
            .fetch_max(tally.max_ns, Ordering::Relaxed);
    }

    pub fn completed(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.unhandled.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let completed = self.completed();
        let ns = self.processing_ns.load(Ordering::Relaxed);
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
            average_processing_ms: if completed == 0 {
                0.0
            } else {
                ns as f64 / completed as f64 / 1e6
            },
            max_processing_ms: self.processing_max_ns.load(Ordering::Relaxed) as f64 / 1e6,
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
    pub max_processing_ms: f64,
}
