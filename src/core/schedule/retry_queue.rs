//! Deliveries waiting to run again: retries until their backoff expires
//! ("scheduled"), then per-priority lanes of deliveries ready to dispatch.
//! Requeued work (a worker's batch after a panic, a dead letter replayed)
//! goes straight to the ready lanes. None of it occupies a worker or a
//! place in the in-flight window while it waits.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::core::schedule::dead_letters::AttemptError;
use crate::core::shm::ring::{Record, LANES};

/// A delivery of one record to one handler (or, with `handler` 0, to all).
#[derive(Debug, Clone, PartialEq)]
pub struct Redelivery {
    pub record: Record,
    pub handler: u32,
    /// The attempt this delivery will be (1 = first retry).
    pub attempt: u32,
    /// Errors of the earlier attempts, oldest first.
    pub errors: Vec<AttemptError>,
}

struct Scheduled {
    due: Instant,
    seq: u64,
    item: Redelivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Default)]
pub struct RetryQueue {
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    ready: [VecDeque<Redelivery>; LANES],
    seq: u64,
    /// Ready deliveries, readable without the queue's lock (see `ready_count`).
    ready_count: Arc<AtomicUsize>,
}

impl RetryQueue {
    /// A counter of ready deliveries that stays readable without locking the
    /// queue, so workers skip the lock in the common case of none.
    pub fn ready_count(&self) -> Arc<AtomicUsize> {
        self.ready_count.clone()
    }

    fn sync_count(&self) {
        let n = self.ready.iter().map(VecDeque::len).sum();
        self.ready_count.store(n, Ordering::Release);
    }

    /// Queues `item` to become ready at `due`. Returns true when it is now
    /// the earliest, so the timer must re-arm.
    pub fn schedule(&mut self, due: Instant, item: Redelivery) -> bool {
        let earliest = self.next_due().is_none_or(|d| due < d);
        self.seq += 1;
        self.scheduled.push(Reverse(Scheduled {
            due,
            seq: self.seq,
            item,
        }));
        earliest
    }

    /// Queues `item` as ready now. `front` puts it ahead of its lane (work a
    /// worker had already taken when it failed).
    pub fn push_ready(&mut self, item: Redelivery, front: bool) {
        let lane = &mut self.ready[(item.record.lane as usize).min(LANES - 1)];
        if front {
            lane.push_front(item);
        } else {
            lane.push_back(item);
        }
        self.sync_count();
    }

    /// Moves every retry due by `now` to the ready lanes; returns how many.
    pub fn promote(&mut self, now: Instant) -> usize {
        let mut moved = 0;
        while self.scheduled.peek().is_some_and(|Reverse(s)| s.due <= now) {
            if let Some(Reverse(s)) = self.scheduled.pop() {
                self.push_ready(s.item, false);
                moved += 1;
            }
        }
        moved
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.scheduled.peek().map(|Reverse(s)| s.due)
    }

    /// The first lane, in `order`, with a ready delivery.
    pub fn ready_lane(&self, order: &[usize; LANES]) -> Option<usize> {
        order.iter().copied().find(|&l| !self.ready[l].is_empty())
    }

    pub fn pop_ready(&mut self, lane: usize) -> Option<Redelivery> {
        let item = self.ready[lane].pop_front();
        self.sync_count();
        item
    }

    pub fn scheduled_len(&self) -> usize {
        self.scheduled.len()
    }

    pub fn ready_len(&self, lane: usize) -> usize {
        self.ready[lane].len()
    }

    /// Everything waiting: ready deliveries by lane order, then scheduled
    /// ones by due time.
    pub fn drain_all(&mut self, order: &[usize; LANES]) -> Vec<Redelivery> {
        let mut out: Vec<Redelivery> = order
            .iter()
            .flat_map(|&l| std::mem::take(&mut self.ready[l]))
            .collect();
        self.sync_count();
        let mut scheduled = std::mem::take(&mut self.scheduled).into_sorted_vec();
        scheduled.reverse();
        out.extend(scheduled.into_iter().map(|Reverse(s)| s.item));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item(slot: u32, lane: u8) -> Redelivery {
        Redelivery {
            record: Record::bare(slot, lane),
            handler: 1,
            attempt: 1,
            errors: vec![],
        }
    }

    #[test]
    fn retries_become_ready_when_due_and_keep_their_lane() {
        let mut q = RetryQueue::default();
        let t0 = Instant::now();
        assert!(q.schedule(t0 + Duration::from_millis(50), item(1, 2)));
        assert!(q.schedule(t0 + Duration::from_millis(10), item(2, 0)));
        assert!(!q.schedule(t0 + Duration::from_millis(30), item(3, 1)));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_millis(10)));
        let ready = q.ready_count();
        assert_eq!(q.promote(t0 + Duration::from_millis(35)), 2);
        assert_eq!(ready.load(Ordering::Relaxed), 2);
        assert_eq!(q.scheduled_len(), 1);
        let order = [0, 1, 2];
        assert_eq!(q.ready_lane(&order), Some(0));
        assert_eq!(q.pop_ready(0).map(|r| r.record.slot), Some(2));
        assert_eq!(q.ready_lane(&order), Some(1));
        q.push_ready(item(9, 1), true);
        assert_eq!(
            q.pop_ready(1).map(|r| r.record.slot),
            Some(9),
            "front of its lane"
        );
        let rest: Vec<u32> = q.drain_all(&order).iter().map(|r| r.record.slot).collect();
        assert_eq!(rest, vec![3, 1]);
        assert_eq!(q.next_due(), None);
    }
}
