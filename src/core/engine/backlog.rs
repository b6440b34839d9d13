//! Deliveries for worker isolates wait here until an isolate is free.
//!
//! Handing isolates their deliveries round robin as they are taken gives a
//! busy isolate (a 200 ms handler) as much as an idle one, so alternating
//! long and short events take about twice the ideal time. Instead a
//! delivery goes straight to an isolate only when that isolate has taken
//! everything handed to it (its hand-off queue is empty) and got nothing
//! else in this batch; otherwise it is taken from the queue into this
//! backlog, holding its permits, and the first isolate to come free pulls
//! it (`Engine::pull`, called by an isolate each time it has drained its
//! queue). Taking it out of the queue, instead of leaving it there until an
//! isolate is free, keeps it from blocking the main thread's events behind
//! it in its lane. An isolate running async handlers drains at once and so
//! keeps pulling; one stuck in a synchronous handler pulls nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::worker::Taken;
use super::{Engine, Inner, Sink};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::ring::LANES;

/// The sink index (`Taken::sink`) of a delivery bound for the backlog.
pub(super) const BACKLOG: usize = usize::MAX;

#[derive(Default)]
pub(super) struct Backlog {
    items: Mutex<VecDeque<Taken>>,
    /// `items.len()`, read without the lock by `Engine::pull`'s fast path.
    len: AtomicUsize,
}

impl Backlog {
    pub(super) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Deliveries waiting, per lane (they count as queued in the metrics).
    pub(super) fn depth(&self) -> [u32; LANES] {
        let mut depth = [0; LANES];
        for t in self.items.lock().iter() {
            if let Some(n) = depth.get_mut(t.delivery.record.lane as usize) {
                *n += 1;
            }
        }
        depth
    }

    /// Empties it (the engine stopped): what never ran.
    pub(super) fn drain(&self) -> Vec<Redelivery> {
        let mut items = self.items.lock();
        self.len.store(0, Ordering::Release);
        items.drain(..).map(|t| t.delivery).collect()
    }
}

/// Which isolates got a delivery in the batch being assembled: an isolate
/// is free when its hand-off queue is empty and it got nothing here yet.
pub(super) struct Free {
    given: Vec<bool>,
    /// Rotates the first isolate looked at, so free ones share the work.
    start: usize,
}

impl Free {
    pub(super) fn new(sinks: &[Arc<Sink>], start: usize) -> Self {
        Free {
            given: vec![false; sinks.len()],
            start,
        }
    }

    /// A free isolate (a sink index from 1; only `only` when given).
    pub(super) fn peek(&self, sinks: &[Arc<Sink>], only: Option<usize>) -> Option<usize> {
        let isolates = sinks.len().saturating_sub(1);
        (0..isolates)
            .map(|k| 1 + (self.start + k) % isolates)
            .filter(|&i| only.is_none_or(|o| o == i))
            .find(|&i| !self.given[i] && sinks[i].handoff.pending() == 0)
    }

    /// Isolate `i` got a delivery in this batch.
    pub(super) fn mark(&mut self, i: usize) {
        if let Some(g) = self.given.get_mut(i) {
            *g = true;
        }
    }
}

impl Inner {
    /// Moves backlogged deliveries into `batch`, oldest first, each to a
    /// free isolate (only to `only`'s sink when given), or to the main
    /// thread when its type is no longer handled in isolates. Stops at the
    /// first that has nowhere to go, so they leave in the order they came.
    pub(super) fn offer_backlog(
        &self,
        batch: &mut Vec<Taken>,
        sinks: &[Arc<Sink>],
        free: &mut Free,
        only: Option<usize>,
    ) {
        if self.backlog.is_empty() {
            return;
        }
        let mut items = self.backlog.items.lock();
        self.types.read(|types| {
            while let Some(front) = items.front() {
                let isolated = types
                    .get(front.delivery.record.type_id as usize)
                    .is_some_and(|t| t.isolated.load(Ordering::Relaxed));
                let sink = if isolated {
                    match free.peek(sinks, only) {
                        Some(i) => {
                            free.mark(i);
                            i
                        }
                        None => break,
                    }
                } else {
                    0
                };
                if let Some(mut t) = items.pop_front() {
                    t.sink = sink;
                    batch.push(t);
                }
            }
        });
        self.backlog.len.store(items.len(), Ordering::Release);
    }

    /// Moves the deliveries of `batch` bound for the backlog into it;
    /// returns how many.
    pub(super) fn stash(&self, batch: &mut Vec<Taken>) -> usize {
        if batch.iter().all(|t| t.sink != BACKLOG) {
            return 0;
        }
        let mut items = self.backlog.items.lock();
        let before = items.len();
        let mut kept = Vec::with_capacity(batch.len());
        for t in batch.drain(..) {
            if t.sink == BACKLOG {
                items.push_back(t);
            } else {
                kept.push(t);
            }
        }
        *batch = kept;
        self.backlog.len.store(items.len(), Ordering::Release);
        items.len() - before
    }
}

impl Engine {
    /// Isolate `sink_id` has taken everything handed to it: it gets the
    /// oldest backlogged delivery, published without a notification (it
    /// drains again when this returns more than 0). Returns how many.
    pub fn pull(&self, sink_id: u32) -> u32 {
        let inner = &*self.inner;
        if inner.backlog.is_empty() || inner.stopping.load(Ordering::Relaxed) {
            return 0;
        }
        let _dispatch = inner.dispatch.lock();
        let sinks = inner.sinks.read();
        let Some(me) = sinks.iter().position(|s| s.id == sink_id && s.id != 0) else {
            return 0;
        };
        let mut batch = Vec::new();
        let mut free = Free::new(&sinks, 0);
        inner.offer_backlog(&mut batch, &sinks, &mut free, Some(me));
        if batch.is_empty() {
            return 0;
        }
        inner.deliver_pulled(&mut batch, &sinks, sink_id)
    }
}
