//! What happens when handlers settle: acknowledgements release the window
//! and feed the metrics; failures become retries (with backoff) or dead
//! letters; dead letters can be inspected, replayed or removed.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::Level;

use super::worker::Refill;
use super::{unix_ms, Engine};
use crate::core::error::BusError;
use crate::core::observe::metrics::{Outcome, OutcomeTally};
use crate::core::observe::type_stats::{bump, TypeStats, TypeTally};
use crate::core::schedule::books::{EventBooks, Report};
use crate::core::schedule::dead_letters::{AttemptError, DeadLetter};
use crate::core::schedule::in_flight::{InFlight, InFlightTable};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::layout::ACK_WORDS;

const LETTER_TARGET: &str = "events::dead_letter";
/// How often a kind of record that can repeat per event is logged at warn.
const LOG_EVERY_MS: u64 = 10_000;

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

/// The result of `complete`: the fate of each failure, in order, the
/// slots whose dead letters were evicted to make room, and what the books
/// now say of events (every report not yet taken, whichever thread caused
/// it).
#[derive(Debug, Default)]
pub struct Completion {
    pub fates: Vec<Fate>,
    pub evicted: Vec<u32>,
    pub reports: Vec<Report>,
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
        self.inner.nudge_timer();
        if !acks.len().is_multiple_of(ACK_WORDS) {
            return Err(BusError::InvalidArgument(format!(
                "acknowledgements must come in groups of {ACK_WORDS} words, got {}",
                acks.len()
            )));
        }
        let inner = &self.inner;
        let (mut completion, released, unknown) = self.settle(0, acks, failures);
        completion.reports = inner.take_reports();
        inner.permits.release(released);
        // Unless a refill filled the window, a worker waiting for permits
        // may now take something (or must park for records instead).
        if !(refill && inner.refill() == Refill::Full) {
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

    /// Settles acknowledged deliveries (`[slot, delivery, outcome]` each)
    /// after the `failures` that happened in them, all under one in-flight
    /// lock: fates decided, deliveries out of flight, outcomes tallied once,
    /// the books told, the retry timer re-armed when a retry was
    /// scheduled. Only deliveries handed to `sink` match.
    /// Returns the permits freed and the acknowledgements that matched
    /// nothing in flight (`slot/delivery/outcome`).
    fn settle(
        &self,
        sink: u32,
        acks: &[u32],
        failures: Vec<Failure>,
    ) -> (Completion, u32, Vec<String>) {
        let inner = &self.inner;
        let now = Instant::now();
        let mut completion = Completion::default();
        let mut unknown = Vec::new();
        let mut released = 0;
        let rearm = inner.types.read(|types| {
            let mut tally = BatchTally::new(types, inner.started.elapsed().as_micros() as u64);
            let mut in_flight = inner.in_flight.lock();
            let mut books = inner.books.lock();
            let rearm = self.handle_failures(
                &mut in_flight,
                &mut books,
                types,
                failures,
                now,
                &mut completion,
            );
            for words in acks.chunks_exact(ACK_WORDS) {
                let [slot, delivery, code] = [words[0], words[1], words[2]];
                let outcome = Outcome::from_code(code);
                let mine = in_flight
                    .get(slot, delivery)
                    .is_some_and(|e| e.sink == sink);
                let entry = match (outcome, mine) {
                    (Some(_), true) => in_flight.remove(slot, delivery),
                    _ => None,
                };
                let (Some(outcome), Some(entry)) = (outcome, entry) else {
                    unknown.push(format!("{slot}/{delivery}/{code}"));
                    continue;
                };
                inner.queue.acknowledged(&entry.record, delivery);
                released += entry.permits;
                tally.count(outcome, &entry);
                // A first delivery that found no handler: the event reached
                // nobody. (A retry whose handler was removed is just done.)
                books.work_done(slot, outcome == Outcome::NoHandler && delivery == 0);
            }
            drop(books);
            drop(in_flight);
            inner.metrics.record(&mut tally.outcomes);
            rearm
        });
        if rearm {
            let _guard = inner.park.lock();
            inner.timer_cv.notify_one();
        }
        (completion, released, unknown)
    }

    /// Decides each failure's fate: a retry after its backoff, or a dead
    /// letter. Returns whether the retry timer must re-arm.
    fn handle_failures(
        &self,
        in_flight: &mut InFlightTable,
        books: &mut EventBooks,
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
            // After stop nothing here would run a retry: dead-letter
            // instead, unless the Redis group takes it.
            let stopped = inner.stopping.load(Ordering::SeqCst);
            let delay = (failure.retryable && policy.should_retry(attempt))
                .then(|| policy.delay(attempt, inner.jitter.lock().next_unit()));
            // A Redis bus's retry goes to the group's retry set: whichever
            // process is free runs it when due, this one included.
            let handed = delay.is_some_and(|delay| {
                inner.streams.get().is_some_and(|s| {
                    s.retry(record.slot, failure.handler, attempt + 1, delay, &errors)
                })
            });
            if let Some(delay) = delay.filter(|_| handed || !stopped) {
                if !handed {
                    books.add_work(record.slot);
                    let retry = Redelivery {
                        record,
                        handler: failure.handler,
                        attempt: attempt + 1,
                        errors,
                    };
                    rearm |= inner.queue.retry(now + delay, retry);
                }
                inner.logs.emit(|| {
                    tracing::debug!(
                        target: "events::retry",
                        r#type = inner.types.name(record.type_id),
                        handler = failure.handler_name,
                        attempt = attempt + 1,
                        delay_ms = delay.as_secs_f64() * 1000.0,
                        "retry scheduled"
                    )
                });
                inner.metrics.retries.fetch_add(1, Ordering::Relaxed);
                bump(types, record.type_id, |s| &s.retries);
                completion.fates.push(Fate::Retry);
            } else {
                books.lettered(record.slot);
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
                let cause = if !failure.retryable {
                    "non-retryable error"
                } else if stopped {
                    "the bus is stopping"
                } else {
                    "retries exhausted"
                };
                // At most one warning per interval (an outage can dead-letter
                // every event); each letter is a debug record.
                let warn = inner.letter_log.pass(unix_ms(), LOG_EVERY_MS);
                let detail = (warn.is_some() || inner.logs.enabled(&Level::DEBUG, LETTER_TARGET))
                    .then(|| {
                        let error = letter.errors.last().map(|e| e.message.clone());
                        (letter.handler.clone(), error)
                    });
                let (id, evicted) = inner.queue.dead_letter(letter);
                if let Some((handler, error)) = detail {
                    let ty = inner.types.name(record.type_id);
                    // One record, at warn or debug: tracing's levels are static.
                    macro_rules! letter {
                        ($macro:ident $(, $more:ident = $value:expr)?) => {
                            tracing::$macro!(
                                target: LETTER_TARGET,
                                r#type = ty,
                                handler,
                                attempts = attempt + 1,
                                cause,
                                error,
                                dead_letter_id = id,
                                $($more = $value,)?
                                "handler gave up; event dead-lettered"
                            )
                        };
                    }
                    inner.logs.emit(|| match warn {
                        Some(held) => letter!(warn, more_since_last = held),
                        None => letter!(debug),
                    });
                }
                if let Some(evicted) = evicted {
                    if let Some(held) = inner.evict_log.pass(unix_ms(), LOG_EVERY_MS) {
                        inner.logs.emit(|| {
                            tracing::warn!(
                                target: LETTER_TARGET,
                                evicted_id = evicted.id,
                                r#type = inner.types.name(evicted.type_id),
                                more_since_last = held,
                                "dead-letter queue full; its oldest letter was dropped"
                            )
                        });
                    }
                    books.unlettered(evicted.slot);
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
    /// failures, settled like the main thread's; the main thread learns
    /// what became of the events from the books' reports.
    pub fn complete_remote(
        &self,
        sink_id: u32,
        count: u32,
        failures: Vec<Failure>,
    ) -> Result<Completion, BusError> {
        self.inner.nudge_timer();
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
    /// charged for its death by `detach_sink`): like the main thread's, and
    /// then the main thread is told the books have news for it. Returns the
    /// acknowledgements that matched nothing in flight there.
    pub(super) fn settle_remote(
        &self,
        sink_id: u32,
        acks: &[u32],
        failures: Vec<Failure>,
    ) -> (Completion, Vec<String>) {
        let inner = &self.inner;
        let (completion, released, unknown) = self.settle(sink_id, acks, failures);
        inner.permits.release(released);
        inner.wake_permit_waiters();
        if inner.books.lock().has_reports() {
            inner.announce_reports();
        }
        (completion, unknown)
    }

    /// What the books say of events since the last call (see
    /// `schedule::books`).
    pub fn take_reports(&self) -> Vec<Report> {
        self.inner.take_reports()
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
        {
            let mut books = self.inner.books.lock();
            for letter in &letters {
                books.add_work(letter.slot);
                books.unlettered(letter.slot);
            }
        }
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
        let letters = self.inner.queue.take_dead_letters(id);
        let mut books = self.inner.books.lock();
        for letter in &letters {
            books.unlettered(letter.slot);
        }
        letters
    }
}
