//! The hand-off from the workers to the JavaScript thread and back.
//!
//! Deliveries go through a single-producer, single-consumer queue in shared
//! memory: workers (one at a time, under the dispatch lock) append and
//! publish the tail; JavaScript reads up to the tail and publishes its head.
//! JavaScript is told there is something to read through a threadsafe
//! function, but only when no notification is already pending, so a burst of
//! batches costs one call into the JavaScript thread, not one per batch.
//!
//! Acknowledgements come back through a flat area JavaScript fills before it
//! calls `complete(count)`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

#[cfg(test)]
use crate::core::shm::layout::Layout;
use crate::core::shm::layout::{HandoffRegion, ACK_WORDS, DELIVERY_WORDS};
use crate::core::shm::sync::AtomicU32;
use crate::core::shm::words::SharedWords;

pub struct Handoff {
    mem: Arc<SharedWords>,
    region: HandoffRegion,
    /// Producer position; only touched under the dispatch lock.
    tail: AtomicU32,
}

/// One delivery as the consumer reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    pub slot: u32,
    pub handler: u32,
    pub attempt: u32,
    pub arena: u32,
    pub len: u32,
}

impl Handoff {
    pub fn new(mem: Arc<SharedWords>, region: HandoffRegion) -> Self {
        Handoff {
            mem,
            region,
            tail: AtomicU32::new(0),
        }
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        &self.mem.words()[i]
    }

    pub fn capacity(&self) -> u32 {
        self.region.capacity
    }

    /// Deliveries published and not yet taken by JavaScript.
    pub fn pending(&self) -> u32 {
        let head = self.word(self.region.head).load(Ordering::Acquire);
        self.tail.load(Ordering::Relaxed).wrapping_sub(head)
    }

    /// Appends a delivery without publishing it; `false` when full. Callers
    /// must be serialised (the engine's dispatch lock).
    pub fn push(&self, d: Delivery) -> bool {
        if self.pending() >= self.region.capacity {
            return false;
        }
        let pos = self.tail.load(Ordering::Relaxed);
        let cell = self.region.deliveries_base
            + (pos & (self.region.capacity - 1)) as usize * DELIVERY_WORDS;
        for (i, v) in [d.slot, d.handler, d.attempt, d.arena, d.len]
            .into_iter()
            .enumerate()
        {
            self.word(cell + i).store(v, Ordering::Relaxed);
        }
        self.tail.store(pos.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// Publishes what was pushed. Returns true when the JavaScript side must
    /// be notified (no notification is pending yet).
    pub fn publish(&self) -> bool {
        self.word(self.region.tail)
            .store(self.tail.load(Ordering::Relaxed), Ordering::SeqCst);
        self.word(self.region.pending).swap(1, Ordering::SeqCst) == 0
    }

    /// Publishes what was pushed without asking for a notification: for
    /// the JavaScript thread's own refill, which drains right after.
    pub fn publish_quiet(&self) {
        self.word(self.region.tail)
            .store(self.tail.load(Ordering::Relaxed), Ordering::SeqCst);
    }

    /// Forgets a notification that could not be sent, so the next publish
    /// tries again.
    pub fn notification_failed(&self) {
        self.word(self.region.pending).store(0, Ordering::SeqCst);
    }

    /// Writes `words` into the ack area, which the JavaScript thread reads
    /// back right after the call that took its acknowledgements (the area
    /// is free by then); false, writing nothing, when they do not fit.
    pub fn write_back(&self, words: &[u32]) -> bool {
        if words.len() > self.region.capacity as usize * ACK_WORDS {
            return false;
        }
        for (i, &w) in words.iter().enumerate() {
            self.word(self.region.acks_base + i)
                .store(w, Ordering::Relaxed);
        }
        true
    }

    /// Reads `count` acknowledgements JavaScript wrote into the ack area.
    pub fn read_acks(&self, count: u32) -> Option<Vec<u32>> {
        if count > self.region.capacity {
            return None;
        }
        let words = count as usize * ACK_WORDS;
        Some(
            (0..words)
                .map(|i| self.word(self.region.acks_base + i).load(Ordering::Relaxed))
                .collect(),
        )
    }
}

/// The JavaScript consumer's algorithm, in Rust for the tests.
#[cfg(test)]
pub struct HandoffReader {
    mem: Arc<SharedWords>,
    region: HandoffRegion,
    head: u32,
}

#[cfg(test)]
impl HandoffReader {
    pub fn new(mem: Arc<SharedWords>, region: HandoffRegion) -> Self {
        HandoffReader {
            mem,
            region,
            head: 0,
        }
    }

    /// Clears the pending flag, then takes everything published, as
    /// `[slot, handler, attempt]` triples (the arena words are dropped).
    pub fn drain(&mut self) -> Vec<u32> {
        self.drain_full()
            .into_iter()
            .flat_map(|d| [d.slot, d.handler, d.attempt])
            .collect()
    }

    /// Whether a notification is pending (published, not yet drained).
    pub fn pending(&self) -> bool {
        self.mem.words()[self.region.pending].load(Ordering::SeqCst) != 0
    }

    pub fn drain_full(&mut self) -> Vec<Delivery> {
        let w = self.mem.words();
        let r = self.region;
        // A read-modify-write, as in `js/handoff.ts`: it reads the flag the
        // last `publish` swapped in, and with it that publish's tail.
        w[r.pending].swap(0, Ordering::SeqCst);
        let tail = w[r.tail].load(Ordering::SeqCst);
        let mut out = Vec::new();
        while self.head != tail {
            let cell = r.deliveries_base + (self.head & (r.capacity - 1)) as usize * DELIVERY_WORDS;
            let word = |i: usize| w[cell + i].load(Ordering::Relaxed);
            out.push(Delivery {
                slot: word(0),
                handler: word(1),
                attempt: word(2),
                arena: word(3),
                len: word(4),
            });
            self.head = self.head.wrapping_add(1);
        }
        w[r.head].store(self.head, Ordering::SeqCst);
        out
    }

    /// Writes acknowledgements where `Handoff::read_acks` finds them.
    pub fn write_acks(&self, acks: &[u32]) {
        let w = self.mem.words();
        for (i, a) in acks.iter().enumerate() {
            w[self.region.acks_base + i].store(*a, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_round_trip_and_notify_once_per_drain() {
        let layout = Layout::new(100, 4);
        let mem = Arc::new(SharedWords::owned(layout.words));
        layout.format_header(&mem);
        let h = Handoff::new(mem.clone(), layout.handoff_region());
        let mut r = HandoffReader::new(mem, layout.handoff_region());
        let d = |slot, handler, attempt| Delivery {
            slot,
            handler,
            attempt,
            arena: slot * 8,
            len: 3,
        };
        assert!(h.push(d(1, 0, 0)) && h.push(d(2, 5, 1)));
        assert!(h.publish(), "first publish notifies");
        assert!(h.push(d(3, 0, 0)));
        assert!(!h.publish(), "a notification is already pending");
        let got = r.drain_full();
        assert_eq!(got, vec![d(1, 0, 0), d(2, 5, 1), d(3, 0, 0)]);
        for i in 0..4 {
            assert!(h.push(d(10 + i, 0, 0)));
        }
        assert!(!h.push(d(99, 0, 0)), "capacity 4");
        assert!(h.publish(), "drain cleared the pending flag");
        assert_eq!(r.drain().len(), 12);
        r.write_acks(&[7, 0, 1]);
        assert_eq!(h.read_acks(1), Some(vec![7, 0, 1]));
        assert_eq!(h.read_acks(5), None);
    }

    #[test]
    fn a_standalone_region_works_the_same() {
        let region = HandoffRegion::standalone(3);
        assert_eq!(region.capacity, 4);
        let mem = Arc::new(SharedWords::owned(region.words()));
        let h = Handoff::new(mem.clone(), region);
        let mut r = HandoffReader::new(mem, region);
        assert!(h.push(Delivery {
            slot: 4,
            handler: 2,
            attempt: 1,
            arena: 64,
            len: 10
        }));
        assert!(h.publish());
        assert_eq!(r.drain_full()[0].len, 10);
    }
}
