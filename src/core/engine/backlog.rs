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
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::worker::{Stage, Taken, REFILL_WORKER};
use super::{Engine, Inner, Sink};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::ring::LANES;
use crate::core::shm::sync::{fence, AtomicU32};

/// The sink index (`Taken::sink`) of a delivery bound for the backlog.
pub(super) const BACKLOG: usize = usize::MAX;

/// One queue per lane, so a critical delivery waiting for an isolate leaves
/// before a low one that waited longer, as it would from the ring.
#[derive(Default)]
pub(super) struct Backlog {
    lanes: Mutex<[VecDeque<Taken>; LANES]>,
    signal: Signal,
}

/// How many deliveries wait, published so an isolate that has drained can
/// look without the lock. The worker that stashes and the isolate that
/// drains each write one word and then read the other's (the backlog's
/// length; the isolate's hand-off head): with a `SeqCst` fence between the
/// write and the read on both sides, at least one of them sees the other's
/// write, so a delivery is never left waiting beside an idle isolate
/// (`loom_a_stashed_delivery_reaches_an_isolate_that_drained`).
pub(crate) struct Signal {
    len: AtomicU32,
}

impl Default for Signal {
    fn default() -> Self {
        Signal {
            len: AtomicU32::new(0),
        }
    }
}

impl Signal {
    /// The stashing side: publishes the new length, then (the caller) looks
    /// at the isolates' queues again.
    pub(crate) fn publish(&self, len: usize) {
        self.len.store(len as u32, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The isolate's side, after it has stored its hand-off head.
    pub(crate) fn looks_empty(&self) -> bool {
        fence(Ordering::SeqCst);
        self.len.load(Ordering::SeqCst) == 0
    }
}

impl Backlog {
    pub(super) fn looks_empty(&self) -> bool {
        self.signal.looks_empty()
    }

    /// Deliveries waiting per lane (they count as queued in the metrics),
    /// and the permits they hold (not in flight yet).
    pub(super) fn held(&self) -> ([u32; LANES], u32) {
        let lanes = self.lanes.lock();
        let mut depth = [0; LANES];
        let mut permits = 0;
        for (d, lane) in depth.iter_mut().zip(lanes.iter()) {
            *d = lane.len() as u32;
            permits += lane.iter().map(|t| t.permits).sum::<u32>();
        }
        (depth, permits)
    }

    /// Takes out the deliveries `which` selects, in priority order, and the
    /// permits they held.
    pub(super) fn remove(&self, which: impl Fn(&Taken) -> bool) -> (Vec<Redelivery>, u32) {
        let mut lanes = self.lanes.lock();
        let mut out = Vec::new();
        let mut permits = 0;
        for lane in lanes.iter_mut() {
            let (gone, kept): (VecDeque<Taken>, VecDeque<Taken>) =
                lane.drain(..).partition(|t| which(t));
            *lane = kept;
            permits += gone.iter().map(|t| t.permits).sum::<u32>();
            out.extend(gone.into_iter().map(|t| t.delivery));
        }
        self.signal.publish(lanes.iter().map(VecDeque::len).sum());
        (out, permits)
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
    /// Moves backlogged deliveries into `batch`, highest lane first and
    /// oldest first within a lane, each to a free isolate (only to `only`'s
    /// sink when given), or to the main thread when its type is no longer
    /// handled in isolates. Stops when no isolate is free.
    pub(super) fn offer_backlog(
        &self,
        batch: &mut Vec<Taken>,
        sinks: &[Arc<Sink>],
        free: &mut Free,
        only: Option<usize>,
    ) {
        if self.backlog.looks_empty() {
            return;
        }
        let mut lanes = self.backlog.lanes.lock();
        self.types.read(|types| {
            'lanes: for lane in lanes.iter_mut() {
                while let Some(front) = lane.front() {
                    let isolated = types
                        .get(front.delivery.record.type_id as usize)
                        .is_some_and(|t| t.isolated.load(Ordering::Relaxed));
                    let sink = if isolated {
                        match free.peek(sinks, only) {
                            Some(i) => {
                                free.mark(i);
                                i
                            }
                            None => break 'lanes,
                        }
                    } else {
                        0
                    };
                    if let Some(mut t) = lane.pop_front() {
                        t.sink = sink;
                        batch.push(t);
                    }
                }
            }
        });
        self.backlog
            .signal
            .publish(lanes.iter().map(VecDeque::len).sum());
    }

    /// Moves the deliveries of `batch` bound for the backlog into it;
    /// returns how many.
    pub(super) fn stash(&self, batch: &mut Vec<Taken>) -> usize {
        if batch.iter().all(|t| t.sink != BACKLOG) {
            return 0;
        }
        let mut lanes = self.backlog.lanes.lock();
        let mut stashed = 0;
        let mut kept = Vec::with_capacity(batch.len());
        for t in batch.drain(..) {
            if t.sink != BACKLOG {
                kept.push(t);
            } else if let Some(lane) = lanes.get_mut(t.delivery.record.lane as usize) {
                lane.push_back(t);
                stashed += 1;
            } else {
                // A lane the ring does not have cannot come from it; keep
                // the delivery where something still runs it.
                kept.push(Taken { sink: 0, ..t });
            }
        }
        *batch = kept;
        self.backlog
            .signal
            .publish(lanes.iter().map(VecDeque::len).sum());
        stashed
    }
}

impl Engine {
    /// Isolate `sink_id` has taken everything handed to it: it gets the
    /// first backlogged delivery, published without a notification (it
    /// drains again when this returns more than 0). Returns how many.
    pub fn pull(&self, sink_id: u32) -> u32 {
        let inner = &*self.inner;
        if inner.backlog.looks_empty() || inner.stopping.load(Ordering::Relaxed) {
            return 0;
        }
        let _dispatch = inner.dispatch.lock();
        let sinks = inner.sinks.read();
        let Some(me) = sinks.iter().position(|s| s.id == sink_id && s.id != 0) else {
            return 0;
        };
        let stats = &inner.pull_stats;
        let mut batch = Vec::new();
        let mut stage = Stage::Taken;
        // As in a worker: a panic must not lose what it had taken.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut free = Free::new(&sinks, 0);
            inner.offer_backlog(&mut batch, &sinks, &mut free, Some(me));
            if batch.is_empty() {
                return 0;
            }
            inner.deliver_pulled(&mut batch, &mut stage, &sinks, stats, sink_id)
        }));
        outcome.unwrap_or_else(|panic| {
            inner.recover(REFILL_WORKER, &mut batch, stage, panic, stats);
            0
        })
    }

    /// Deliveries isolates took from the backlog themselves (`pull`).
    pub fn pulled(&self) -> u64 {
        self.inner.pull_stats.deliveries.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, bootify_loom))]
mod loom_models {
    use std::sync::Arc;

    use loom::sync::Mutex;
    use loom::thread;

    use super::Signal;
    use crate::core::shm::handoff::{Delivery, Handoff, HandoffReader};
    use crate::core::shm::layout::Layout;
    use crate::core::shm::words::SharedWords;

    /// A worker finds the isolate busy and stashes a delivery while the
    /// isolate drains and looks at the backlog without its lock: the
    /// delivery reaches the isolate, from the worker's second look or from
    /// the isolate's pull, and from exactly one of them.
    #[test]
    fn loom_a_stashed_delivery_reaches_an_isolate_that_drained() {
        loom::model(|| {
            let layout = Layout::new(2, 4);
            let mem = Arc::new(SharedWords::owned(layout.words));
            layout.format_header(&mem);
            let handoff = Arc::new(Handoff::new(mem.clone(), layout.handoff_region()));
            let mut reader = HandoffReader::new(mem, layout.handoff_region());
            // What the isolate is running now.
            assert!(handoff.push(Delivery {
                slot: 0,
                handler: 0,
                attempt: 0,
                arena: 64,
                len: 1,
            }));
            handoff.publish();
            let backlog = Arc::new((Mutex::new(Vec::<u32>::new()), Signal::default()));
            let take = |backlog: &(Mutex<Vec<u32>>, Signal)| {
                let mut items = backlog.0.lock().expect("backlog");
                let got = items.pop();
                backlog.1.publish(items.len());
                got
            };
            let worker = {
                let (handoff, backlog) = (handoff.clone(), backlog.clone());
                thread::spawn(move || {
                    if handoff.pending() == 0 {
                        return Some(1); // free: handed over directly
                    }
                    {
                        let mut items = backlog.0.lock().expect("backlog");
                        items.push(1);
                        backlog.1.publish(items.len());
                    }
                    (handoff.pending() == 0).then(|| take(&backlog)).flatten()
                })
            };
            assert_eq!(reader.drain_full().len(), 1);
            let pulled = if backlog.1.looks_empty() {
                None
            } else {
                take(&backlog)
            };
            let given = worker.join().expect("worker");
            assert!(
                given.is_some() != pulled.is_some(),
                "given {given:?}, pulled {pulled:?}: stranded or twice"
            );
        });
    }
}
