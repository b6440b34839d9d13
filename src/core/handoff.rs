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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::layout::{self, Layout, ACK_WORDS, DELIVERY_WORDS};
use super::shared::SharedWords;

pub struct Handoff {
    mem: Arc<SharedWords>,
    base: usize,
    acks_base: usize,
    capacity: u32,
    /// Producer position; only touched under the dispatch lock.
    tail: AtomicU32,
}

impl Handoff {
    pub fn new(mem: Arc<SharedWords>, layout: &Layout) -> Self {
        Handoff {
            mem,
            base: layout.deliveries_base,
            acks_base: layout.acks_base,
            capacity: layout.handoff_capacity,
            tail: AtomicU32::new(0),
        }
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        &self.mem.words()[i]
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Deliveries published and not yet taken by JavaScript.
    pub fn pending(&self) -> u32 {
        let head = self.word(layout::DELIVERY_HEAD).load(Ordering::Acquire);
        self.tail.load(Ordering::Relaxed).wrapping_sub(head)
    }

    /// Appends a delivery without publishing it; `false` when full. Callers
    /// must be serialised (the engine's dispatch lock).
    pub fn push(&self, slot: u32, handler: u32, attempt: u32) -> bool {
        if self.pending() >= self.capacity {
            return false;
        }
        let pos = self.tail.load(Ordering::Relaxed);
        let cell = self.base + (pos & (self.capacity - 1)) as usize * DELIVERY_WORDS;
        self.word(cell).store(slot, Ordering::Relaxed);
        self.word(cell + 1).store(handler, Ordering::Relaxed);
        self.word(cell + 2).store(attempt, Ordering::Relaxed);
        self.tail.store(pos.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// Publishes what was pushed. Returns true when the JavaScript side must
    /// be notified (no notification is pending yet).
    pub fn publish(&self) -> bool {
        self.word(layout::DELIVERY_TAIL)
            .store(self.tail.load(Ordering::Relaxed), Ordering::SeqCst);
        self.word(layout::DELIVERY_PENDING)
            .swap(1, Ordering::SeqCst)
            == 0
    }

    /// Forgets a notification that could not be sent, so the next publish
    /// tries again.
    pub fn notification_failed(&self) {
        self.word(layout::DELIVERY_PENDING)
            .store(0, Ordering::SeqCst);
    }

    /// Bumps the worker-error counter JavaScript watches.
    pub fn count_worker_error(&self) {
        self.word(layout::WORKER_ERRORS)
            .fetch_add(1, Ordering::SeqCst);
    }

    /// Reads `count` acknowledgements JavaScript wrote into the ack area.
    pub fn read_acks(&self, count: u32) -> Option<Vec<u32>> {
        if count > self.capacity {
            return None;
        }
        let words = count as usize * ACK_WORDS;
        Some(
            (0..words)
                .map(|i| self.word(self.acks_base + i).load(Ordering::Relaxed))
                .collect(),
        )
    }
}

/// The JavaScript consumer's algorithm, in Rust for the tests.
#[cfg(test)]
pub struct HandoffReader {
    mem: Arc<SharedWords>,
    base: usize,
    capacity: u32,
    head: u32,
}

#[cfg(test)]
impl HandoffReader {
    pub fn new(mem: Arc<SharedWords>, layout: &Layout) -> Self {
        HandoffReader {
            mem,
            base: layout.deliveries_base,
            capacity: layout.handoff_capacity,
            head: 0,
        }
    }

    /// Clears the pending flag, then takes everything published.
    pub fn drain(&mut self) -> Vec<u32> {
        let w = self.mem.words();
        w[layout::DELIVERY_PENDING].store(0, Ordering::SeqCst);
        let tail = w[layout::DELIVERY_TAIL].load(Ordering::SeqCst);
        let mut out = Vec::new();
        while self.head != tail {
            let cell = self.base + (self.head & (self.capacity - 1)) as usize * DELIVERY_WORDS;
            out.extend((0..DELIVERY_WORDS).map(|i| w[cell + i].load(Ordering::Relaxed)));
            self.head = self.head.wrapping_add(1);
        }
        w[layout::DELIVERY_HEAD].store(self.head, Ordering::SeqCst);
        out
    }

    /// Writes acknowledgements where `Handoff::read_acks` finds them.
    pub fn write_acks(&self, layout: &Layout, acks: &[u32]) {
        let w = self.mem.words();
        for (i, a) in acks.iter().enumerate() {
            w[layout.acks_base + i].store(*a, Ordering::Relaxed);
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
        let h = Handoff::new(mem.clone(), &layout);
        let mut r = HandoffReader::new(mem, &layout);
        assert!(h.push(1, 0, 0) && h.push(2, 5, 1));
        assert!(h.publish(), "first publish notifies");
        assert!(h.push(3, 0, 0));
        assert!(!h.publish(), "a notification is already pending");
        assert_eq!(r.drain(), vec![1, 0, 0, 2, 5, 1, 3, 0, 0]);
        for i in 0..4 {
            assert!(h.push(10 + i, 0, 0));
        }
        assert!(!h.push(99, 0, 0), "capacity 4");
        assert!(h.publish(), "drain cleared the pending flag");
        assert_eq!(r.drain().len(), 12);
        r.write_acks(&layout, &[7, 0, 1]);
        assert_eq!(h.read_acks(1), Some(vec![7, 0, 1]));
        assert_eq!(h.read_acks(5), None);
    }
}
