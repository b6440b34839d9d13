//! The seam between the engine and where events wait. The engine asks an
//! [`EventQueue`] for the next delivery by priority, tells it when a
//! delivery was acknowledged, hands it retries and dead letters, and puts
//! back what it took but could not run. [`LocalQueue`] is the in-process
//! implementation: the shared-memory ring JavaScript produces into, with
//! retries and dead letters in memory. A durable journal wraps it; a
//! backend over a shared store implements the same trait; the engine does
//! not change.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::core::schedule::books::Report;
use crate::core::schedule::dead_letters::{DeadLetter, DeadLetterQueue};
use crate::core::schedule::retry_queue::{Redelivery, RetryQueue};
use crate::core::shm::ring::{PriorityRing, Record, LANES};

/// What the engine says of the delivery a queue offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Taken: it holds these permits and goes to that sink.
    Take { permits: u32, sink: usize },
    /// Not now (no sink can run it yet): it keeps its place.
    Later,
    /// The window lacks the permits it needs: it keeps its place and the
    /// engine waits for this many.
    Full(u32),
}

/// What [`EventQueue::take`] found.
#[derive(Debug, PartialEq)]
pub enum Next {
    Taken {
        delivery: Redelivery,
        permits: u32,
        sink: usize,
        /// The first time the engine takes this event (not a retry, a
        /// replay or a delivery put back): the books open it.
        fresh: bool,
    },
    /// Nothing waits.
    Empty,
    /// The next delivery cannot run anywhere yet (`Admit::Later`).
    Blocked,
    /// The next delivery needs this many permits.
    Full(u32),
}

/// Sizes, read without stopping anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSizes {
    pub depth: [u32; LANES],
    pub ready_retries: [u32; LANES],
    pub scheduled_retries: u32,
    pub dead_letters: u32,
    pub dead_letters_evicted: u64,
}

/// What still waited when the engine stopped.
pub struct Leftovers {
    /// Records never taken, in priority order.
    pub records: Vec<Record>,
    /// Retries (scheduled or ready) and requeued deliveries.
    pub redeliveries: Vec<Redelivery>,
}

/// Where events wait for the engine. Every method may be called from any
/// thread; `take` only under the engine's dispatch lock, so there is one
/// taker at a time.
pub trait EventQueue: Send + Sync {
    /// Offers the next delivery in priority order to `admit` (a ready
    /// retry before a new record of the same or a lower lane) and takes it
    /// if admitted. `now_ns` is the ring's clock, for aging.
    fn take(&self, now_ns: u64, admit: &mut dyn FnMut(&Record, u32) -> Admit) -> Next;
    /// Whether `take` may find anything (cheap; may be stale).
    fn has_work(&self) -> bool;
    /// Taken deliveries that did not run (their sink went away, a worker
    /// panicked holding them) go back in front of their lanes, in this
    /// order, at once: no taker sees some back and not the others.
    fn put_back(&self, deliveries: Vec<Redelivery>);
    /// A taken delivery's acknowledgement was applied: it will not come
    /// back unless it was handed to `retry`.
    fn acknowledged(&self, record: &Record, handler: u32);
    /// A failed delivery runs again once `due`. True when it is now the
    /// earliest retry (the timer must re-arm).
    fn retry(&self, due: Instant, delivery: Redelivery) -> bool;
    /// Makes retries due by `now` ready to take; returns how many, and when
    /// the next one is due.
    fn promote(&self, now: Instant) -> (usize, Option<Instant>);
    /// Stores a dead letter (keeping its id if it has one); returns the id
    /// and the entry evicted to make room.
    fn dead_letter(&self, letter: DeadLetter) -> (u64, Option<DeadLetter>);
    /// Up to `limit` dead letters from the `offset`-th, oldest first.
    fn dead_letters(&self, offset: usize, limit: usize) -> Vec<DeadLetter>;
    /// Removes dead letters (one by id, or all with `None`) and returns them.
    fn take_dead_letters(&self, id: Option<u64>) -> Vec<DeadLetter>;
    /// Makes these deliveries ready to take, behind what is ready already.
    fn enqueue(&self, deliveries: Vec<Redelivery>);
    fn sizes(&self) -> QueueSizes;
    /// Empties the queue (the engine stopped): what never ran.
    fn drain(&self) -> Leftovers;
    /// A dead letter that comes back from before a restart, under its id.
    fn restore_dead_letter(&self, letter: DeadLetter) -> (u64, Option<DeadLetter>) {
        self.dead_letter(letter)
    }
    /// New dead letters get ids from `next` on (ids used before a restart
    /// are not given out again).
    fn skip_dead_letter_ids(&self, _next: u64) {}
    /// What the books reported of events, before JavaScript learns it.
    fn reported(&self, _reports: &[Report]) {}
    /// Deliveries that come back from before a restart: made ready, or
    /// scheduled when due later, without being recorded again.
    fn restore(&self, deliveries: Vec<(Option<Instant>, Redelivery)>) {
        for (due, d) in deliveries {
            match due {
                Some(due) => {
                    self.retry(due, d);
                }
                None => self.enqueue(vec![d]),
            }
        }
    }
}

/// The in-process queue: the ring, plus retries and dead letters in memory.
pub struct LocalQueue {
    ring: Arc<PriorityRing>,
    order: [usize; LANES],
    retries: Mutex<RetryQueue>,
    /// Ready retries, readable without the retry lock.
    ready: Arc<AtomicUsize>,
    dead_letters: Mutex<DeadLetterQueue>,
}

impl LocalQueue {
    pub fn new(
        ring: Arc<PriorityRing>,
        order: [usize; LANES],
        dead_letter_capacity: usize,
    ) -> Self {
        let retries = RetryQueue::default();
        let ready = retries.ready_count();
        LocalQueue {
            ring,
            order,
            retries: Mutex::new(retries),
            ready,
            dead_letters: Mutex::new(DeadLetterQueue::new(dead_letter_capacity)),
        }
    }

    fn rank(&self, lane: usize) -> Option<usize> {
        self.order.iter().position(|&o| o == lane)
    }

    /// A ready retry that ranks at least as high as the ring's next record.
    fn take_retry(&self, admit: &mut dyn FnMut(&Record, u32) -> Admit) -> Option<Next> {
        if self.ready.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut retries = self.retries.lock();
        let lane = retries.ready_lane(&self.order)?;
        if let Some(ring_lane) = self.ring.next_lane() {
            if self.rank(ring_lane) < self.rank(lane) {
                return None;
            }
        }
        let delivery = retries.pop_ready(lane)?;
        match admit(&delivery.record, delivery.handler) {
            Admit::Take { permits, sink } => Some(Next::Taken {
                delivery,
                permits,
                sink,
                fresh: false,
            }),
            Admit::Later => {
                retries.push_ready(delivery, true);
                None
            }
            Admit::Full(need) => {
                retries.push_ready(delivery, true);
                Some(Next::Full(need))
            }
        }
    }
}

impl EventQueue for LocalQueue {
    fn take(&self, now_ns: u64, admit: &mut dyn FnMut(&Record, u32) -> Admit) -> Next {
        if let Some(next) = self.take_retry(admit) {
            return next;
        }
        let mut verdict = Admit::Later;
        let taken = self.ring.pop_next_if(now_ns, |rec| {
            verdict = admit(rec, 0);
            matches!(verdict, Admit::Take { .. })
        });
        match (taken, verdict) {
            (Some(record), Admit::Take { permits, sink }) => Next::Taken {
                delivery: Redelivery {
                    record,
                    handler: 0,
                    attempt: 0,
                    errors: Vec::new(),
                },
                permits,
                sink,
                fresh: true,
            },
            (_, Admit::Full(need)) => Next::Full(need),
            (None, Admit::Later) if !self.ring.is_empty() => Next::Blocked,
            _ => Next::Empty,
        }
    }

    fn has_work(&self) -> bool {
        !self.ring.is_empty() || self.ready.load(Ordering::Acquire) > 0
    }

    fn put_back(&self, deliveries: Vec<Redelivery>) {
        let mut retries = self.retries.lock();
        // Reversed, so pushing each to the front keeps their order.
        for d in deliveries.into_iter().rev() {
            retries.push_ready(d, true);
        }
    }

    fn acknowledged(&self, _record: &Record, _handler: u32) {
        // The record left the ring when it was taken: nothing to release.
    }

    fn retry(&self, due: Instant, delivery: Redelivery) -> bool {
        self.retries.lock().schedule(due, delivery)
    }

    fn promote(&self, now: Instant) -> (usize, Option<Instant>) {
        let mut retries = self.retries.lock();
        (retries.promote(now), retries.next_due())
    }

    fn dead_letter(&self, letter: DeadLetter) -> (u64, Option<DeadLetter>) {
        let mut dlq = self.dead_letters.lock();
        let evicted = dlq.push(letter);
        (dlq.last_id(), evicted)
    }

    fn dead_letters(&self, offset: usize, limit: usize) -> Vec<DeadLetter> {
        self.dead_letters
            .lock()
            .page(offset, limit)
            .cloned()
            .collect()
    }

    fn take_dead_letters(&self, id: Option<u64>) -> Vec<DeadLetter> {
        let mut dlq = self.dead_letters.lock();
        match id {
            Some(id) => dlq.remove(id).into_iter().collect(),
            None => dlq.drain_all(),
        }
    }

    fn enqueue(&self, deliveries: Vec<Redelivery>) {
        let mut retries = self.retries.lock();
        for d in deliveries {
            retries.push_ready(d, false);
        }
    }

    fn sizes(&self) -> QueueSizes {
        let (ready_retries, scheduled_retries) = {
            let r = self.retries.lock();
            (
                std::array::from_fn(|l| r.ready_len(l) as u32),
                r.scheduled_len() as u32,
            )
        };
        let (dead_letters, dead_letters_evicted) = {
            let d = self.dead_letters.lock();
            (d.len() as u32, d.evicted())
        };
        QueueSizes {
            depth: std::array::from_fn(|lane| self.ring.depth(lane)),
            ready_retries,
            scheduled_retries,
            dead_letters,
            dead_letters_evicted,
        }
    }

    fn skip_dead_letter_ids(&self, next: u64) {
        self.dead_letters.lock().skip_ids(next);
    }

    fn restore(&self, deliveries: Vec<(Option<Instant>, Redelivery)>) {
        // One lock for all: a recovery hands over up to millions.
        let mut retries = self.retries.lock();
        for (due, d) in deliveries {
            match due {
                Some(due) => {
                    retries.schedule(due, d);
                }
                None => retries.push_ready(d, false),
            }
        }
    }

    fn drain(&self) -> Leftovers {
        Leftovers {
            records: std::iter::from_fn(|| self.ring.pop_next()).collect(),
            redeliveries: self.retries.lock().drain_all(&self.order),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::shm::layout::Layout;
    use crate::core::shm::ring::RingProducer;
    use crate::core::shm::words::SharedWords;
    use std::time::Duration;

    fn queue() -> LocalQueue {
        let layout = Layout::new(16, 2);
        let mem = Arc::new(SharedWords::owned(layout.words));
        layout.format_header(&mem);
        let order = [0, 1, 2];
        let ring = Arc::new(PriorityRing::new(
            mem,
            &layout,
            order,
            Duration::from_secs(60),
        ));
        LocalQueue::new(ring, order, 4)
    }

    fn retry_of(slot: u32, lane: u8) -> Redelivery {
        Redelivery {
            record: Record {
                lane,
                ..Record::bare(slot, lane)
            },
            handler: 7,
            attempt: 1,
            errors: Vec::new(),
        }
    }

    fn take_all(q: &LocalQueue) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        while let Next::Taken { delivery, .. } = q.take(0, &mut |_, _| Admit::Take {
            permits: 1,
            sink: 0,
        }) {
            out.push((delivery.record.slot, delivery.handler));
        }
        out
    }

    #[test]
    fn ready_retries_go_before_records_of_their_lane_and_below() {
        let q = queue();
        let mut p = RingProducer::new(&q.ring);
        p.push(1, 10, 0, 1);
        p.push(0, 11, 0, 1);
        q.enqueue(vec![retry_of(20, 1)]);
        assert!(q.has_work());
        // critical record, then the normal retry, then the normal record.
        assert_eq!(take_all(&q), vec![(11, 0), (20, 7), (10, 0)]);
        assert!(!q.has_work());
        assert_eq!(q.take(0, &mut |_, _| unreachable!()), Next::Empty);
    }

    #[test]
    fn what_is_not_admitted_keeps_its_place() {
        let q = queue();
        let mut p = RingProducer::new(&q.ring);
        p.push(1, 1, 0, 1);
        assert_eq!(q.take(0, &mut |_, _| Admit::Full(3)), Next::Full(3));
        assert_eq!(q.take(0, &mut |_, _| Admit::Later), Next::Blocked);
        q.enqueue(vec![retry_of(2, 0)]);
        assert_eq!(
            q.take(0, &mut |_, _| Admit::Full(2)),
            Next::Full(2),
            "the retry ranks first"
        );
        assert_eq!(take_all(&q), vec![(2, 7), (1, 0)]);
    }

    #[test]
    fn put_back_goes_in_front_in_order_and_drain_returns_everything() {
        let q = queue();
        let mut p = RingProducer::new(&q.ring);
        p.push(1, 1, 0, 1);
        q.enqueue(vec![retry_of(5, 1)]);
        q.put_back(vec![retry_of(3, 1), retry_of(4, 1)]);
        assert!(q.retry(Instant::now() + Duration::from_secs(60), retry_of(6, 2)));
        let sizes = q.sizes();
        assert_eq!(
            (
                sizes.depth[1],
                sizes.ready_retries[1],
                sizes.scheduled_retries
            ),
            (1, 3, 1)
        );
        let left = q.drain();
        let slots: Vec<u32> = left.redeliveries.iter().map(|d| d.record.slot).collect();
        assert_eq!(slots, vec![3, 4, 5, 6]);
        assert_eq!(
            left.records.iter().map(|r| r.slot).collect::<Vec<_>>(),
            vec![1]
        );
    }
}
