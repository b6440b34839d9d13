//! Where deliveries go: the main thread's hand-off queue (sink 0) and
//! one per worker isolate. Isolates attach and detach while the engine
//! runs; a dead isolate's deliveries are charged or requeued here.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Engine, Failure, Notifier};
use crate::core::error::BusError;
use crate::core::observe::metrics::Outcome;
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::handoff::Handoff;
use crate::core::shm::layout::{HandoffRegion, ACK_WORDS};
use crate::core::shm::ring::Record;
use crate::core::shm::words::SharedWords;

/// Where deliveries go: the main thread (id 0) or a worker isolate, each
/// with its own hand-off queue and notifier.
pub struct Sink {
    pub id: u32,
    pub(super) handoff: Arc<Handoff>,
    pub(super) notifier: Arc<dyn Notifier>,
    /// Deliveries published to it.
    pub deliveries: AtomicU64,
}

/// The main thread's notifier once the engine stopped: JavaScript drains
/// what is left itself.
pub(super) struct Stopped;

impl Notifier for Stopped {
    fn notify(&self) -> bool {
        true
    }
}

/// What became of a dead isolate's unfinished deliveries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Detached {
    /// Counted as failed attempts (it died running them).
    pub charged: u32,
    /// Finished before it died: counted as handled.
    pub succeeded: u32,
    /// Put back in front of their lanes for another isolate.
    pub requeued: u32,
}

impl Engine {
    /// Routes `type_id` to worker isolates (or back to the main thread).
    pub fn set_type_isolated(&self, type_id: u32, isolated: bool) {
        let inner = &*self.inner;
        // Under the dispatch lock no batch is half assembled: one taken
        // while the type was isolated has been stashed, one taken after
        // sees it is not.
        let _dispatch = inner.dispatch.lock();
        inner.types.set_isolated(type_id, isolated);
        if isolated {
            return;
        }
        // Its backlogged deliveries would wait for an isolate to pull them;
        // they go back in front of their lanes, for the main thread.
        let (back, permits) = inner
            .backlog
            .remove(|t| t.delivery.record.type_id == type_id);
        if !back.is_empty() {
            inner.queue.put_back(back);
            inner.release_permits(permits);
            inner.notify_all();
        }
    }

    /// Adds a worker isolate's hand-off queue; its region must hold at least
    /// the in-flight window. Returns the sink id.
    pub fn attach_sink(
        &self,
        mem: Arc<SharedWords>,
        region: HandoffRegion,
        notifier: Arc<dyn Notifier>,
    ) -> Result<u32, BusError> {
        if region.capacity < self.inner.permits.limit() {
            return Err(BusError::InvalidArgument(format!(
                "an isolate's hand-off queue needs room for the window ({}), got {}",
                self.inner.permits.limit(),
                region.capacity
            )));
        }
        if mem.words().len() < region.words() {
            return Err(BusError::InvalidArgument(
                "an isolate's hand-off buffer is smaller than its region".into(),
            ));
        }
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(BusError::ShuttingDown("the bus is shutting down".into()));
        }
        let id = self.inner.next_sink_id.fetch_add(1, Ordering::Relaxed);
        self.inner.sinks.write().push(Arc::new(Sink {
            id,
            handoff: Arc::new(Handoff::new(mem, region)),
            notifier,
            deliveries: AtomicU64::new(0),
        }));
        self.inner.attach_generation.fetch_add(1, Ordering::SeqCst);
        self.inner.notify_all();
        Ok(id)
    }

    /// Stops handing deliveries to an isolate whose environment is ending
    /// (its notifier would reach nobody). What it was running stays in
    /// flight until `detach_sink` decides what to charge.
    pub fn close_sink(&self, id: u32) {
        if id != 0 {
            self.inner.sinks.write().retain(|s| s.id != id);
        }
    }

    /// An isolate died. The deliveries `culprits` names (one failure each,
    /// keyed by slot and delivery) count as failed attempts: retried or
    /// dead-lettered like any failure. Those in `succeeded` finished before
    /// it died, though their acknowledgements did not arrive: they count as
    /// handled and never run again. Its other unfinished deliveries go back
    /// in front of their lanes, uncharged, for another isolate.
    pub fn detach_sink(
        &self,
        id: u32,
        culprits: Vec<Failure>,
        succeeded: &[(u32, u32)],
    ) -> Detached {
        if id == 0 {
            return Detached::default();
        }
        self.close_sink(id);
        // Only what it still had is settled here: a delivery that had been
        // acknowledged after all (or is named twice) is not.
        let (culprits, acks) = {
            let in_flight = self.inner.in_flight.lock();
            let mut seen = HashSet::new();
            let mut mine = |slot: u32, delivery: u32| {
                in_flight.get(slot, delivery).is_some_and(|e| e.sink == id)
                    && seen.insert((slot, delivery))
            };
            let culprits: Vec<Failure> = culprits
                .into_iter()
                .filter(|c| mine(c.slot, c.delivery))
                .collect();
            let mut acks: Vec<u32> = culprits
                .iter()
                .flat_map(|c| [c.slot, c.delivery, Outcome::Failed as u32])
                .collect();
            for &(slot, delivery) in succeeded {
                if mine(slot, delivery) {
                    acks.extend([slot, delivery, Outcome::Ok as u32]);
                }
            }
            (culprits, acks)
        };
        let charged = culprits.len() as u32;
        let settled = (acks.len() / ACK_WORDS) as u32;
        if settled > 0 {
            self.record_handler_failures(u64::from(charged));
            self.settle_remote(id, &acks, culprits);
        }
        let taken = self.inner.in_flight.lock().take_where(|e| e.sink == id);
        let permits = taken.iter().map(|(_, e)| e.permits).sum();
        let requeued = taken.len() as u32;
        self.inner.queue.put_back(
            taken
                .into_iter()
                .map(|((_, handler), e)| Redelivery {
                    record: e.record,
                    handler,
                    attempt: e.attempt,
                    errors: e.errors,
                })
                .collect(),
        );
        self.inner.release_permits(permits);
        self.inner
            .metrics
            .requeued
            .fetch_add(u64::from(requeued), Ordering::Relaxed);
        self.inner.notify_all();
        Detached {
            charged,
            succeeded: settled - charged,
            requeued,
        }
    }

    /// The main thread got delivery `delivery` of `slot`, of a type handled
    /// in isolates since the event was emitted (so it had no serialised
    /// bytes), and stored them at `arena` (`size` bytes, never offset 0).
    /// It goes back in front of its lane, attempt unchanged, for an isolate.
    pub fn reroute(&self, slot: u32, delivery: u32, arena: u32, size: u32) -> Result<(), BusError> {
        if arena == 0 {
            return Err(BusError::InvalidArgument(
                "arena offset 0 holds no event".into(),
            ));
        }
        let entry = {
            let mut in_flight = self.inner.in_flight.lock();
            match in_flight.get(slot, delivery) {
                Some(e) if e.sink == 0 => in_flight.remove(slot, delivery),
                _ => None,
            }
        }
        .ok_or_else(|| {
            BusError::InvalidArgument(format!(
                "delivery {slot}/{delivery} is not in flight on the main thread"
            ))
        })?;
        let record = Record {
            arena,
            size,
            ..entry.record
        };
        self.inner.queue.put_back(vec![Redelivery {
            record,
            handler: delivery,
            attempt: entry.attempt,
            errors: entry.errors,
        }]);
        self.inner.release_permits(entry.permits);
        self.inner.notify_all();
        Ok(())
    }

    /// `(sink id, deliveries published)` for every sink.
    pub fn sink_stats(&self) -> Vec<(u32, u64)> {
        self.inner
            .sinks
            .read()
            .iter()
            .map(|s| (s.id, s.deliveries.load(Ordering::Relaxed)))
            .collect()
    }
}
