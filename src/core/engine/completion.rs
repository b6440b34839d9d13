//! What happens when handlers settle: acknowledgements release the window
//! and feed the metrics; failures become retries (with backoff) or dead
//! letters; dead letters can be inspected, replayed or removed.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{unix_ms, Engine};
use crate::core::error::BusError;
use crate::core::observe::metrics::{Outcome, OutcomeTally};
use crate::core::observe::type_stats::{bump, TypeStats, TypeTally};
use crate::core::schedule::dead_letters::{AttemptError, DeadLetter};
use crate::core::schedule::in_flight::{InFlight, InFlightTable};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::handoff::Delivery as HandoffDelivery;
use crate::core::shm::layout::ACK_WORDS;

/// Marks a main-thread delivery as a notice: an isolate finished delivery
/// `handler & !NOTICE` of the slot; `attempt` carries the outcome and the
/// arena words the retries and dead letters it led to.
pub const NOTICE: u32 = 1 << 31;
/// The outcome the main thread acknowledges a notice with.
pub const REMOTE_OUTCOME: u32 = 3;

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

/// Outcomes of one batch of acknowledgements, added to the shared counters
/// once per batch (the type counters on drop).
struct BatchTally<'a> {
    /// The engine's clock (µs) when the batch is applied.
    now_us: u64,
    outcomes: OutcomeTally,
    succeeded: TypeTally<'a>,
    failed: TypeTally<'a>,
}

impl<'a> BatchTally<'a> {
    fn new(types: &'a [TypeStats], now_us: u64) -> Self {
        BatchTally {
            now_us,
            outcomes: OutcomeTally::default(),
            succeeded: TypeTally::new(types, |s| &s.succeeded),
            failed: TypeTally::new(types, |s| &s.failed),
        }
    }

    /// Tallies a finished delivery: processing time, outcome, per-type counts.
    fn count(&mut self, outcome: Outcome, entry: &InFlight) {
        let elapsed = self.now_us.saturating_sub(entry.since_us);
        self.outcomes.add(outcome, entry.record.lane, elapsed);
        match outcome {
            Outcome::Ok => self.succeeded.add(entry.record.type_id),
            Outcome::Failed => self.failed.add(entry.record.type_id),
            Outcome::NoHandler => {}
        }
    }
}

impl Engine {
    /// Applies `count` acknowledgements JavaScript wrote into the ack area,
    /// after `failures` that happened in those deliveries.
    /// With `refill`, the freed room in the window is filled on this thread
    /// (see `Inner::refill`): the caller is the JavaScript thread, between
    /// two of its own deliveries, and drains its hand-off queue right after.
    pub fn complete_shared(
        &self,
        count: u32,
        failures: Vec<Failure>,
        refill: bool,
    ) -> Result<Completion, BusError> {
        let acks = self.inner.handoff.read_acks(count).ok_or_else(|| {
            BusError::InvalidArgument(format!(
                "ack count {count} exceeds the ack area ({})",
                self.inner.handoff.capacity()
            ))
        })?;
        self.complete_with(&acks, failures, refill)
    }

    /// Handles `failures`, then acknowledgements (`ACK_WORDS` words each:
    /// slot, delivery, outcome). Unknown deliveries are reported, not
    /// ignored: they would mean the two sides disagree.
    pub fn complete(&self, acks: &[u32], failures: Vec<Failure>) -> Result<Completion, BusError> {
        self.complete_with(acks, failures, false)
    }

    pub(super) fn complete_with(
        &self,
        acks: &[u32],
        failures: Vec<Failure>,
        refill: bool,
    ) -> Result<Completion, BusError> {
        if !acks.len().is_multiple_of(ACK_WORDS) {
            return Err(BusError::InvalidArgument(format!(
                "acknowledgements must come in groups of {ACK_WORDS} words, got {}",
                acks.len()
            )));
        }
        let inner = &self.inner;
        let mut completion = Completion::default();
        let mut released = 0;
        let unknown = self.apply_acks(acks, failures, &mut completion, |in_flight, tally, ack| {
            let [slot, delivery, code] = ack;
            if code == REMOTE_OUTCOME {
                // An isolate's delivery the main thread has now accounted
                // for: its outcome was tallied when the isolate finished.
                return match in_flight.remove(slot, delivery) {
                    Some(entry) if entry.remote_done => {
                        released += entry.permits;
                        true
                    }
                    _ => false,
                };
            }
            let (Some(outcome), Some(entry)) =
                (Outcome::from_code(code), in_flight.remove(slot, delivery))
            else {
                return false;
            };
            inner.queue.acknowledged(&entry.record, delivery);
            released += entry.permits;
            tally.count(outcome, &entry);
            true
        });
        inner.permits.release(released);
        // Unless a refill filled the window, a worker waiting for permits
        // may now take something (or must park for records instead).
        if !(refill && inner.refill()) {
            inner.wake_permit_waiters();
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

    /// What both kinds of completion share: the failures first, then each
    /// acknowledgement (`[slot, delivery, outcome]`) through `ack`, all
    /// under one in-flight lock; outcomes added to the metrics once; the
    /// retry timer re-armed when a retry was scheduled. `ack` returns false
    /// for an acknowledgement that matches nothing in flight; those come
    /// back as `slot/delivery/outcome`.
    fn apply_acks(
        &self,
        acks: &[u32],
        failures: Vec<Failure>,
        completion: &mut Completion,
        mut ack: impl FnMut(&mut InFlightTable, &mut BatchTally, [u32; ACK_WORDS]) -> bool,
    ) -> Vec<String> {
        let inner = &self.inner;
        let now = Instant::now();
        let mut unknown = Vec::new();
        let rearm = inner.types.read(|types| {
            let mut tally = BatchTally::new(types, inner.started.elapsed().as_micros() as u64);
            let mut in_flight = inner.in_flight.lock();
            let rearm = self.handle_failures(&mut in_flight, types, failures, now, completion);
            for words in acks.chunks_exact(ACK_WORDS) {
                let words = [words[0], words[1], words[2]];
                if !ack(&mut in_flight, &mut tally, words) {
                    unknown.push(format!("{}/{}/{}", words[0], words[1], words[2]));
                }
            }
            drop(in_flight);
            inner.metrics.record(&mut tally.outcomes);
            rearm
        });
        if rearm {
            let _guard = inner.park.lock();
            inner.timer_cv.notify_one();
        }
        unknown
    }

    /// Decides each failure's fate: a retry after its backoff, or a dead
    /// letter. Returns whether the retry timer must re-arm.
    fn handle_failures(
        &self,
        in_flight: &mut InFlightTable,
        types: &[TypeStats],
        failures: Vec<Failure>,
        now: Instant,
        completion: &mut Completion,
    ) -> bool {
        let inner = &self.inner;
        let mut rearm = false;
        // A copy, so an update of the policy never waits for this loop.
        let policy = inner.policy.read().clone();
        for failure in failures {
            let Some(entry) = in_flight.get_mut(failure.slot, failure.delivery) else {
                completion.fates.push(Fate::Unknown);
                continue;
            };
            let (record, attempt) = (entry.record, entry.attempt);
            let mut errors = entry.errors.clone();
            errors.push(failure.error);
            // After stop nothing would run a retry: dead-letter instead.
            let stopped = inner.stopping.load(Ordering::SeqCst);
            if failure.retryable && !stopped && policy.should_retry(attempt) {
                entry.retries = entry.retries.saturating_add(1);
                let delay = policy.delay(attempt, inner.jitter.lock().next_unit());
                let retry = Redelivery {
                    record,
                    handler: failure.handler,
                    attempt: attempt + 1,
                    errors,
                };
                rearm |= inner.queue.retry(now + delay, retry);
                inner.metrics.retries.fetch_add(1, Ordering::Relaxed);
                bump(types, record.type_id, |s| &s.retries);
                completion.fates.push(Fate::Retry);
            } else {
                entry.letters = entry.letters.saturating_add(1);
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
                    arena: record.arena,
                    attempts: attempt + 1,
                    errors,
                    timestamp: unix_ms(),
                };
                if let Some(evicted) = inner.queue.dead_letter(letter) {
                    completion.evicted.push(evicted.slot);
                }
                inner.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
                bump(types, record.type_id, |s| &s.dead_lettered);
                completion.fates.push(Fate::DeadLetter);
            }
        }
        rearm
    }

    /// An isolate's acknowledgements (`count` in its sink's ack area) and
    /// failures. Outcomes are tallied here; each finished delivery becomes a
    /// notice to the main thread, which keeps the event's books and
    /// acknowledges the notice (the delivery keeps its permits until then).
    pub fn complete_remote(
        &self,
        sink_id: u32,
        count: u32,
        failures: Vec<Failure>,
    ) -> Result<Completion, BusError> {
        let sink = self
            .inner
            .sinks
            .read()
            .iter()
            .find(|s| s.id == sink_id)
            .cloned()
            .ok_or_else(|| BusError::InvalidState(format!("no isolate sink {sink_id}")))?;
        let acks = sink.handoff.read_acks(count).ok_or_else(|| {
            BusError::InvalidArgument(format!("ack count {count} exceeds the ack area"))
        })?;
        let (completion, unknown) = self.settle_remote(sink_id, &acks, failures);
        if unknown.is_empty() {
            Ok(completion)
        } else {
            Err(BusError::InvalidArgument(format!(
                "acknowledged deliveries that were not in flight here: {}",
                unknown.join(", ")
            )))
        }
    }

    /// Settles deliveries of isolate `sink_id` (acknowledged by it, or
    /// charged for its death by `detach_sink`) and tells the main thread.
    /// Returns the acknowledgements that matched nothing in flight there.
    pub(super) fn settle_remote(
        &self,
        sink_id: u32,
        acks: &[u32],
        failures: Vec<Failure>,
    ) -> (Completion, Vec<String>) {
        let inner = &self.inner;
        let mut completion = Completion::default();
        let mut notices = Vec::new();
        let unknown = self.apply_acks(acks, failures, &mut completion, |in_flight, tally, ack| {
            let [slot, delivery, code] = ack;
            match (Outcome::from_code(code), in_flight.get_mut(slot, delivery)) {
                (Some(outcome), Some(entry)) if entry.sink == sink_id && !entry.remote_done => {
                    entry.remote_done = true;
                    inner.queue.acknowledged(&entry.record, delivery);
                    tally.count(outcome, entry);
                    notices.push(HandoffDelivery {
                        slot,
                        handler: delivery | NOTICE,
                        attempt: code,
                        arena: entry.retries,
                        len: entry.letters,
                    });
                    true
                }
                _ => false,
            }
        });
        if !notices.is_empty() {
            // The main hand-off queue has one producer at a time.
            let _dispatch = inner.dispatch.lock();
            if let Some(main) = inner.sinks.read().first().filter(|s| s.id == 0).cloned() {
                for n in &notices {
                    let pushed = main.handoff.push(*n);
                    debug_assert!(
                        pushed,
                        "a notice always has the cell its delivery's permit keeps"
                    );
                }
                inner.publish(&main, 0);
            }
        }
        (completion, unknown)
    }

    /// Counts `n` individual handler failures (an event may have several).
    pub fn record_handler_failures(&self, n: u64) {
        self.inner
            .metrics
            .handler_failures
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Up to `limit` dead letters from the `offset`-th, oldest first.
    pub fn dead_letters(&self, offset: usize, limit: usize) -> Vec<DeadLetter> {
        self.inner.queue.dead_letters(offset, limit)
    }

    /// Puts dead letters (one, or all with `None`) back in front of their
    /// lanes with fresh attempts. Returns the replayed entries.
    pub fn replay_dead_letters(&self, id: Option<u64>) -> Vec<DeadLetter> {
        let letters = self.inner.queue.take_dead_letters(id);
        self.inner.queue.enqueue(
            letters
                .iter()
                .map(|letter| Redelivery {
                    record: crate::core::shm::ring::Record {
                        slot: letter.slot,
                        type_id: letter.type_id,
                        size: letter.size,
                        enqueued_us: 0,
                        arena: letter.arena,
                        lane: letter.lane,
                    },
                    handler: letter.handler_id,
                    attempt: 0,
                    errors: Vec::new(),
                })
                .collect(),
        );
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
        self.inner.queue.take_dead_letters(id)
    }
}
