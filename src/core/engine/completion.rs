//! What happens when handlers settle: acknowledgements release the window
//! and feed the metrics; failures become retries (with backoff) or dead
//! letters; dead letters can be inspected, replayed or removed.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{unix_ms, Engine};
use crate::core::dead_letter::{AttemptError, DeadLetter};
use crate::core::error::BusError;
use crate::core::layout::ACK_WORDS;
use crate::core::metrics::{Outcome, OutcomeTally};
use crate::core::retry_queue::Redelivery;
use crate::core::types::bump;

/// One handler's failure in a delivery.
#[derive(Debug, Clone)]
pub struct Failure {
    pub slot: u32,
    /// The delivery it happened in: 0 for a fan-out, else a handler id.
    pub delivery: u32,
    /// The handler that failed.
    pub handler: u32,
    pub handler_name: String,
    pub error: AttemptError,
    /// False for errors marked not retryable: straight to the dead letters.
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Scheduled to run again after its backoff.
    Retry = 0,
    /// Moved to the dead-letter queue.
    DeadLetter = 1,
    /// Its delivery was not in flight (already acknowledged): ignored.
    Unknown = 2,
}

/// The result of `complete`: the fate of each failure, in order, and the
/// slots whose dead letters were evicted to make room.
#[derive(Debug, Default)]
pub struct Completion {
    pub fates: Vec<Fate>,
    pub evicted: Vec<u32>,
}

impl Engine {
    /// Applies `count` acknowledgements JavaScript wrote into the ack area,
    /// after `failures` that happened in those deliveries.
    pub fn complete_shared(
        &self,
        count: u32,
        failures: Vec<Failure>,
    ) -> Result<Completion, BusError> {
        let acks = self.inner.handoff.read_acks(count).ok_or_else(|| {
            BusError::InvalidArgument(format!(
                "ack count {count} exceeds the ack area ({})",
                self.inner.handoff.capacity()
            ))
        })?;
        self.complete(&acks, failures)
    }

    /// Handles `failures`, then acknowledgements (`ACK_WORDS` words each:
    /// slot, delivery, outcome). Unknown deliveries are reported, not
    /// ignored: they would mean the two sides disagree.
    pub fn complete(&self, acks: &[u32], failures: Vec<Failure>) -> Result<Completion, BusError> {
        if !acks.len().is_multiple_of(ACK_WORDS) {
            return Err(BusError::InvalidArgument(format!(
                "acknowledgements must come in groups of {ACK_WORDS} words, got {}",
                acks.len()
            )));
        }
        let inner = &self.inner;
        let now = Instant::now();
        let mut completion = Completion::default();
        let mut released = 0;
        let mut unknown = Vec::new();
        let mut tally = OutcomeTally::default();
        let mut rearm = false;
        inner.types.read(|types| {
            let mut in_flight = inner.in_flight.lock();
            for failure in failures {
                let Some(entry) = in_flight.get(failure.slot, failure.delivery) else {
                    completion.fates.push(Fate::Unknown);
                    continue;
                };
                let (record, attempt) = (entry.record, entry.attempt);
                let mut errors = entry.errors.clone();
                errors.push(failure.error);
                // After stop nothing would run a retry: dead-letter instead.
                let stopped = inner.stopping.load(Ordering::SeqCst);
                if failure.retryable && !stopped && inner.policy.should_retry(attempt) {
                    let delay = inner.policy.delay(attempt, inner.jitter.lock().next_unit());
                    let retry = Redelivery {
                        record,
                        handler: failure.handler,
                        attempt: attempt + 1,
                        errors,
                    };
                    rearm |= inner.retries.lock().schedule(now + delay, retry);
                    inner.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    bump(types, record.type_id, |s| &s.retries);
                    completion.fates.push(Fate::Retry);
                } else {
                    if !failure.retryable {
                        inner.metrics.non_retryable.fetch_add(1, Ordering::Relaxed);
                    }
                    let letter = DeadLetter {
                        id: 0,
                        slot: record.slot,
                        handler_id: failure.handler,
                        handler: failure.handler_name,
                        type_id: record.type_id,
                        lane: record.lane,
                        size: record.size,
                        attempts: attempt + 1,
                        errors,
                        timestamp: unix_ms(),
                    };
                    if let Some(evicted) = inner.dead_letters.lock().push(letter) {
                        completion.evicted.push(evicted.slot);
                    }
                    inner.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    bump(types, record.type_id, |s| &s.dead_lettered);
                    completion.fates.push(Fate::DeadLetter);
                }
            }
            for ack in acks.chunks_exact(ACK_WORDS) {
                let (slot, delivery, code) = (ack[0], ack[1], ack[2]);
                let (Some(outcome), Some(entry)) =
                    (Outcome::from_code(code), in_flight.remove(slot, delivery))
                else {
                    unknown.push(format!("{slot}/{delivery}/{code}"));
                    continue;
                };
                released += entry.permits;
                let elapsed = now.saturating_duration_since(entry.since).as_micros() as u64;
                tally.add(outcome, entry.record.lane, elapsed);
                match outcome {
                    Outcome::Ok => bump(types, entry.record.type_id, |s| &s.succeeded),
                    Outcome::Failed => bump(types, entry.record.type_id, |s| &s.failed),
                    Outcome::NoHandler => {}
                }
            }
        });
        inner.metrics.record(&mut tally);
        inner.release_permits(released);
        if rearm {
            let _guard = inner.park.lock();
            inner.timer_cv.notify_one();
        }
        if unknown.is_empty() {
            Ok(completion)
        } else {
            Err(BusError::InvalidArgument(format!(
                "acknowledged deliveries that were not in flight: {}",
                unknown.join(", ")
            )))
        }
    }

    /// Counts `n` individual handler failures (an event may have several).
    pub fn record_handler_failures(&self, n: u64) {
        self.inner
            .metrics
            .handler_failures
            .fetch_add(n, Ordering::Relaxed);
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.dead_letters.lock().entries().cloned().collect()
    }

    /// Puts dead letters (one, or all with `None`) back in front of their
    /// lanes with fresh attempts. Returns the replayed entries.
    pub fn replay_dead_letters(&self, id: Option<u64>) -> Vec<DeadLetter> {
        let letters = {
            let mut dlq = self.inner.dead_letters.lock();
            match id {
                Some(id) => dlq.remove(id).into_iter().collect(),
                None => dlq.drain_all(),
            }
        };
        {
            let mut retries = self.inner.retries.lock();
            for letter in &letters {
                retries.push_ready(
                    Redelivery {
                        record: crate::core::ring::Record {
                            slot: letter.slot,
                            type_id: letter.type_id,
                            size: letter.size,
                            enqueued_us: 0,
                            lane: letter.lane,
                        },
                        handler: letter.handler_id,
                        attempt: 0,
                        errors: Vec::new(),
                    },
                    false,
                );
            }
        }
        self.inner
            .metrics
            .replayed
            .fetch_add(letters.len() as u64, Ordering::Relaxed);
        let _guard = self.inner.park.lock();
        self.inner.records_cv.notify_one();
        self.inner.permits_cv.notify_one();
        letters
    }

    /// Removes dead letters (one, or all with `None`); returns them.
    pub fn remove_dead_letters(&self, id: Option<u64>) -> Vec<DeadLetter> {
        let mut dlq = self.inner.dead_letters.lock();
        match id {
            Some(id) => dlq.remove(id).into_iter().collect(),
            None => dlq.drain_all(),
        }
    }
}
