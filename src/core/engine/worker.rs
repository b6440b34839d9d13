//! The worker loop: take what fits in the window, in priority order, from
//! the ring and the ready retries; publish it to the hand-off queue; park
//! when there is nothing to take. A panic inside the loop is caught, the
//! batch the worker held is put back, and the worker carries on after
//! `workerRestartDelay`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::backlog::{Free, BACKLOG};
use super::{Inner, Sink, WorkerStats, MAX_BATCH};
use crate::core::observe::histogram::LocalHistogram;
use crate::core::observe::type_stats::TypeTally;
use crate::core::schedule::in_flight::InFlight;
use crate::core::schedule::queue::{Admit, Next};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::handoff::Delivery as HandoffDelivery;
use crate::core::shm::ring::{Record, LANES};

/// How far a batch got before a panic, which decides how to put it back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Taken from the ring or the retry lanes only.
    Taken,
    /// Also registered as in flight.
    Registered,
    /// Visible to JavaScript: nothing to undo.
    Published,
}

pub(super) enum Collected {
    Delivered,
    Empty,
    /// What waits first cannot run until a sink attaches; the attach
    /// generation seen before looking.
    Blocked(u64),
    NoPermits(u32),
}

/// One delivery being assembled, with the permits it holds and the index
/// (in this batch's sink list) of the sink it goes to.
pub(super) struct Taken {
    pub(super) delivery: Redelivery,
    pub(super) permits: u32,
    /// `backlog::BACKLOG` while it waits for a free isolate.
    pub(super) sink: usize,
}

/// How a refill on the JavaScript thread ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refill {
    /// The window is full: a worker waiting for permits could take nothing.
    Full,
    /// Nothing that can run now is left: the ring is empty, or what waits
    /// needs an isolate that is not up (what waits in the backlog for a
    /// busy isolate is the isolates' to pull).
    Drained,
    /// It did not look (a worker held the dispatch lock, the bus is
    /// stopping, or it panicked and put its batch back): the workers must.
    Skipped,
}

/// The worker id a panic during `Inner::refill` is reported under.
pub const REFILL_WORKER: u32 = 0;

impl Inner {
    pub(super) fn should_stop(&self, me: &AtomicBool) -> bool {
        me.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed)
    }

    /// Dispatches, on the calling thread, whatever now fits in the window,
    /// exactly as a worker would (same lock, same order). The JavaScript
    /// thread does this after its acknowledgements freed permits and after a
    /// run of emissions: it then starts the deliveries in the same turn of
    /// its event loop, where waiting for a worker to wake and notify it
    /// costs a thread hand-off each way (tens of microseconds, more when the
    /// worker was parked), and one window per turn cannot keep up with a
    /// producer that emits about a window per turn.
    pub(super) fn refill(&self) -> Refill {
        // A panic armed by the test hook is a worker's: leave the batch to one.
        if self.stopping.load(Ordering::Relaxed)
            || self.sinks.read().is_empty()
            || self.inject_panic.load(Ordering::Relaxed)
        {
            return Refill::Skipped;
        }
        let Some(_dispatch) = self.dispatch.try_lock() else {
            return Refill::Skipped;
        };
        let stats = &self.refill_stats;
        let mut batch = Vec::new();
        let mut stage = Stage::Published;
        loop {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                self.collect_and_deliver(&mut batch, &mut stage, stats, false)
            }));
            match outcome {
                Ok(Collected::Delivered) => {}
                Ok(Collected::NoPermits(_)) => return Refill::Full,
                Ok(Collected::Empty | Collected::Blocked(_)) => return Refill::Drained,
                Err(panic) => {
                    self.recover(REFILL_WORKER, &mut batch, stage, panic, stats);
                    return Refill::Skipped;
                }
            }
        }
    }

    pub(super) fn run_worker(&self, id: u32, stop: &AtomicBool, stats: &WorkerStats) {
        if self.notifier.read().is_none() {
            return;
        }
        // Owned out here so a panic inside collect_and_deliver leaves them to
        // recover.
        let mut batch: Vec<Taken> = Vec::new();
        let mut stage = Stage::Published;
        self.logs
            .emit(|| tracing::debug!(target: "events::worker", worker = id, "worker started"));
        while !self.should_stop(stop) {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                self.collect_and_deliver(&mut batch, &mut stage, stats, true)
            }));
            match outcome {
                Ok(Collected::Delivered) => {}
                Ok(Collected::Empty) => self.park_until_records(stop),
                Ok(Collected::Blocked(seen)) => self.park_until_attached(stop, seen),
                Ok(Collected::NoPermits(need)) => self.park_until_permits(stop, need),
                Err(panic) => {
                    self.recover(id, &mut batch, stage, panic, stats);
                    stage = Stage::Published;
                    self.pause(
                        stop,
                        std::time::Duration::from_millis(
                            self.restart_delay_ms.load(Ordering::Relaxed),
                        ),
                    );
                }
            }
        }
        self.logs
            .emit(|| tracing::debug!(target: "events::worker", worker = id, "worker stopped"));
    }

    /// Takes the next deliveries in priority order that fit in the window
    /// and publishes them to their sinks' hand-off queues (the main thread,
    /// or a worker isolate for types handled there). What does not fit stays
    /// where it was, so a higher-priority record arriving meanwhile still
    /// goes first. A worker (`on_worker`) takes the dispatch lock here; a
    /// refill already holds it.
    fn collect_and_deliver(
        &self,
        batch: &mut Vec<Taken>,
        stage: &mut Stage,
        stats: &WorkerStats,
        on_worker: bool,
    ) -> Collected {
        batch.clear();
        *stage = Stage::Taken;
        let dispatch = on_worker.then(|| self.dispatch.lock());
        let attached = self.attach_generation.load(Ordering::SeqCst);
        // Read-locked for the batch: attaching or detaching an isolate waits.
        let sinks = self.sinks.read();
        let start = self.next_isolate.fetch_add(1, Ordering::Relaxed) as usize;
        let mut free = Free::new(&sinks, start);
        self.offer_backlog(batch, &sinks, &mut free, None);
        let (short_of, blocked) = self.take_batch(batch, &sinks, &mut free);
        let stashed = self.stash(batch);
        if stashed > 0 {
            // An isolate seen busy above may have drained since and found
            // the backlog empty (`Engine::pull` looks without the lock):
            // with the backlog published, look at the isolates again
            // (`backlog::Signal`).
            self.offer_backlog(batch, &sinks, &mut free, None);
        }
        if batch.is_empty() {
            return if stashed > 0 {
                // Taken, for an isolate still busy: look again.
                Collected::Delivered
            } else if short_of > 0 {
                Collected::NoPermits(short_of)
            } else if blocked {
                Collected::Blocked(attached)
            } else {
                Collected::Empty
            };
        }
        if on_worker && self.inject_panic.swap(false, Ordering::SeqCst) {
            panic!("worker panic injected by the test hook");
        }
        let now_us = self.started.elapsed().as_micros() as u64;
        self.register_batch(batch, &sinks, now_us);
        *stage = Stage::Registered;
        let quiet = (!on_worker).then_some(0);
        let unpublished = self.publish_batch(batch, &sinks, stats, now_us, quiet);
        *stage = Stage::Published;
        drop(dispatch);
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .deliveries
            .fetch_add((batch.len() - unpublished) as u64, Ordering::Relaxed);
        stats.busy.store(false, Ordering::Relaxed);
        stats
            .last_active_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Collected::Delivered
    }

    /// Takes from the queue, in priority order, what fits in the window
    /// (permits) and has a sink to run on, up to `MAX_BATCH`. Returns the
    /// permits the next delivery lacked (0 if none) and whether it waits
    /// for an isolate instead.
    fn take_batch(
        &self,
        batch: &mut Vec<Taken>,
        sinks: &[Arc<Sink>],
        free: &mut Free,
    ) -> (u32, bool) {
        let mut short_of = 0;
        let mut blocked = false;
        let mut opened = Vec::new();
        let isolates = sinks.len().saturating_sub(1);
        self.types.read(|types| {
            let isolated = |type_id: u32| {
                types
                    .get(type_id as usize)
                    .is_some_and(|t| t.isolated.load(Ordering::Relaxed))
            };
            // A sink for a delivery of `rec`: a free isolate, else the
            // backlog (see `backlog.rs`), or None while no isolate is up
            // for a type handled in isolates. An event emitted before its
            // type went to isolates has no serialised bytes (arena word 0):
            // the main thread stores them and reroutes it (`Engine::reroute`).
            let sink_for = |rec: &Record, free: &Free| -> Option<usize> {
                if !isolated(rec.type_id) || rec.arena == 0 {
                    return Some(0);
                }
                (isolates > 0).then(|| free.peek(sinks, None).unwrap_or(BACKLOG))
            };
            let permits_for = |type_id: u32, handler: u32| {
                if handler != 0 {
                    return 1;
                }
                let handlers = types
                    .get(type_id as usize)
                    .map_or(0, |t| t.handlers.load(Ordering::Relaxed));
                self.permits.needed_for(handlers)
            };
            let now = self.ring.now_ns();
            // The hand-off queues are at least the window and every
            // delivery holds a permit, so a permit guarantees a cell.
            let mut admit = |rec: &Record, handler: u32| -> Admit {
                let Some(sink) = sink_for(rec, free) else {
                    return Admit::Later;
                };
                let permits = permits_for(rec.type_id, handler);
                if self.permits.try_acquire(permits) {
                    if sink != 0 && sink != BACKLOG {
                        free.mark(sink);
                    }
                    Admit::Take { permits, sink }
                } else {
                    Admit::Full(permits)
                }
            };
            while batch.len() < MAX_BATCH {
                match self.queue.take(now, &mut admit) {
                    Next::Taken {
                        delivery,
                        permits,
                        sink,
                        fresh,
                    } => {
                        if fresh {
                            opened.push(delivery.record.slot);
                        }
                        batch.push(Taken {
                            delivery,
                            permits,
                            sink,
                        })
                    }
                    Next::Full(need) => {
                        short_of = need;
                        break;
                    }
                    Next::Empty => break,
                    Next::Blocked => {
                        blocked = true;
                        break;
                    }
                }
            }
        });
        if !opened.is_empty() {
            let mut books = self.books.lock();
            for slot in opened {
                books.opened(slot);
            }
        }
        (short_of, blocked)
    }

    /// Registers and publishes deliveries an isolate pulled from the
    /// backlog (under the dispatch lock); that isolate's own queue is
    /// published quietly. Returns how many were published.
    pub(super) fn deliver_pulled(
        &self,
        batch: &mut [Taken],
        stage: &mut Stage,
        sinks: &[Arc<Sink>],
        stats: &WorkerStats,
        sink_id: u32,
    ) -> u32 {
        let now_us = self.started.elapsed().as_micros() as u64;
        self.register_batch(batch, sinks, now_us);
        *stage = Stage::Registered;
        let unpublished = self.publish_batch(batch, sinks, stats, now_us, Some(sink_id));
        *stage = Stage::Published;
        let published = batch.len() - unpublished;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .deliveries
            .fetch_add(published as u64, Ordering::Relaxed);
        stats.busy.store(false, Ordering::Relaxed);
        published as u32
    }

    /// Registers the batch as in flight before JavaScript can see it, so
    /// an acknowledgement always finds its delivery; one short lock for the
    /// whole batch, because the JavaScript thread takes the same lock to
    /// acknowledge.
    fn register_batch(&self, batch: &mut [Taken], sinks: &[Arc<Sink>], now_us: u64) {
        {
            let mut in_flight = self.in_flight.lock();
            for t in batch.iter_mut() {
                let d = &mut t.delivery;
                in_flight.insert(
                    d.record.slot,
                    d.handler,
                    InFlight {
                        record: d.record,
                        permits: t.permits,
                        since_us: now_us,
                        attempt: d.attempt,
                        errors: std::mem::take(&mut d.errors),
                        sink: sinks[t.sink].id,
                    },
                );
            }
        }
    }

    /// Pushes the batch into its sinks' hand-off queues, counts it, and
    /// notifies each sink that got deliveries. Returns how many did not fit
    /// (put back in front of their lanes).
    fn publish_batch(
        &self,
        batch: &[Taken],
        sinks: &[Arc<Sink>],
        stats: &WorkerStats,
        now_us: u64,
        quiet: Option<u32>,
    ) -> usize {
        let mut waits = LocalHistogram::default();
        // Deliveries per sink in this batch (sinks are few).
        let mut published = vec![0u64; sinks.len()];
        let mut by_lane = [0u64; LANES];
        let mut unpublished = Vec::new();
        self.types.read(|types| {
            let mut dispatched = TypeTally::new(types, |s| &s.dispatched);
            for (i, t) in batch.iter().enumerate() {
                let d = &t.delivery;
                let sink = &sinks[t.sink];
                let pushed = sink.handoff.push(HandoffDelivery {
                    slot: d.record.slot,
                    handler: d.handler,
                    attempt: d.attempt,
                    arena: d.record.arena,
                    len: d.record.size,
                });
                if !pushed {
                    // Cannot happen while the queue holds the window and
                    // every delivery holds a permit; should it, the
                    // delivery waits in front of its lane, not vanish.
                    debug_assert!(pushed, "hand-off queue smaller than the window");
                    unpublished.push(i);
                    continue;
                }
                published[t.sink] += 1;
                if let Some(n) = by_lane.get_mut(d.record.lane as usize) {
                    *n += 1;
                }
                dispatched.add(d.record.type_id);
                // Only first deliveries come from the ring with a timestamp.
                if d.handler == 0 && d.attempt == 0 && d.record.enqueued_us != 0 {
                    // The clock wraps at 2^32 µs, hence the wrapping
                    // difference; a record stamped after this batch read
                    // the clock comes out "negative" (>= 2^31): no wait.
                    let wait = (now_us as u32).wrapping_sub(d.record.enqueued_us);
                    waits.add(if wait < 1 << 31 { wait as u64 } else { 0 });
                }
            }
        });
        self.metrics.record_queue_waits(&mut waits);
        if !unpublished.is_empty() {
            self.requeue_unpublished(batch, &unpublished);
        }
        for (counter, n) in self.metrics.dispatched.iter().zip(by_lane) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        for (sink, &n) in sinks.iter().zip(&published) {
            sink.deliveries.fetch_add(n, Ordering::Relaxed);
        }
        stats.busy.store(true, Ordering::Relaxed);
        for (sink, &n) in sinks.iter().zip(&published).filter(|(_, n)| **n > 0) {
            if quiet == Some(sink.id) {
                // The thread that will drain it right after this returns
                // (a refill on the JavaScript thread, an isolate's pull): a
                // notification would only bring it back to an empty queue.
                sink.handoff.publish_quiet();
            } else {
                self.publish(sink, n);
            }
        }
        unpublished.len()
    }

    /// Publishes a sink's hand-off queue and notifies its thread unless a
    /// notification is already pending.
    pub(super) fn publish(&self, sink: &Sink, deliveries: u64) {
        if sink.handoff.publish() && !sink.notifier.notify() {
            sink.handoff.notification_failed();
            // An isolate that is gone: its deliveries come back when the
            // main thread detaches it. The main thread gone (process exit):
            // nobody will run these handlers; count them so it is visible.
            if sink.id == 0 {
                self.metrics
                    .undeliverable
                    .fetch_add(deliveries, Ordering::Relaxed);
            }
        }
    }
}
