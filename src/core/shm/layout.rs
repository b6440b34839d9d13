//! Where everything lives in the shared buffer. The native side formats the
//! header; JavaScript reads the region offsets from it, so both sides agree
//! on one layout without duplicating the arithmetic.
//!
//! ```text
//! header | lanes: 3 x lane_capacity x RECORD_WORDS | deliveries: D x DELIVERY_WORDS | acks: D x ACK_WORDS
//! ```
//! `D`, the hand-off capacity, is at least the in-flight window, and every
//! delivery holds at least one permit until it is acknowledged, so neither
//! the delivery queue nor the ack area can overflow.

use std::sync::atomic::Ordering;

use crate::core::shm::words::SharedWords;

/// Words per line; hot words written by different parties sit on separate
/// 64-byte lines so they do not false-share.
pub const LINE: usize = 16;

pub const MAGIC: usize = 0;
pub const LANE_CAPACITY: usize = 1;
pub const HANDOFF_CAPACITY: usize = 2;
pub const LANES_BASE: usize = 3;
pub const DELIVERIES_BASE: usize = 4;
pub const ACKS_BASE: usize = 5;
/// Lane tails (producer-written, read for depth): `TAIL + lane * LINE`.
pub const TAIL: usize = LINE;
/// Lane heads (consumer compare-and-swap): `HEAD + lane * LINE`.
pub const HEAD: usize = 4 * LINE;
/// Consumers parked because every lane was empty, and whether the producer
/// asked for a wake-up (`park_word.rs`).
pub const PARK: usize = 7 * LINE;
/// Bytes of records taken by consumers (wrapping); the producer keeps the
/// bytes it put in, and the difference is the bytes queued.
pub const BYTES_OUT: usize = 8 * LINE;
/// Deliveries published by the workers (wrapping count).
pub const DELIVERY_TAIL: usize = 9 * LINE;
/// Deliveries taken by JavaScript (wrapping count).
pub const DELIVERY_HEAD: usize = 10 * LINE;
/// 1 while JavaScript has been notified and has not yet started draining.
pub const DELIVERY_PENDING: usize = 11 * LINE;
/// Worker panics so far (wrapping); JavaScript fetches the details when it
/// sees this change.
pub const WORKER_ERRORS: usize = 12 * LINE;
/// Times the books got news for JavaScript from another thread (an
/// isolate finished a delivery; wrapping); JavaScript takes the reports
/// when it sees this change.
pub const REPORTS: usize = 13 * LINE;
pub const HEADER_WORDS: usize = 14 * LINE;

/// Words of a ring record, at these offsets; JavaScript's producer
/// (`js/ring.ts`) writes them at the offsets `ringLayout()` exports from
/// here, so both sides have one definition.
pub mod record {
    /// Sequence word, which publishes the rest (see `ring.rs`).
    pub const SEQ: usize = 0;
    pub const SLOT: usize = 1;
    pub const TYPE_ID: usize = 2;
    pub const SIZE: usize = 3;
    pub const ENQUEUED_US: usize = 4;
    /// Offset of the serialised event in the arena; 0 for none (the arena
    /// never hands out offset 0).
    pub const ARENA: usize = 5;
}
pub const RECORD_WORDS: usize = 6;
/// `[slot, handler, attempt, arena offset, arena length]`; handler 0 means
/// every handler of the type. The arena fields locate the serialised event
/// of a type handled in worker isolates.
pub const DELIVERY_WORDS: usize = 5;
/// `[slot, handler, outcome]`.
pub const ACK_WORDS: usize = 3;
pub const LANE_COUNT: usize = 3;
pub const MAGIC_VALUE: u32 = 0x4246_5952; // "BFYR"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub lane_capacity: u32,
    pub handoff_capacity: u32,
    pub lanes_base: usize,
    pub deliveries_base: usize,
    pub acks_base: usize,
    pub words: usize,
}

/// Where one hand-off queue (deliveries out, acknowledgements back) lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffRegion {
    pub tail: usize,
    pub head: usize,
    pub pending: usize,
    pub deliveries_base: usize,
    pub acks_base: usize,
    pub capacity: u32,
}

impl HandoffRegion {
    /// A region of its own (a worker isolate's): three header lines, then
    /// the deliveries, then the acknowledgements.
    pub fn standalone(capacity: u32) -> Self {
        let capacity = capacity.max(2).next_power_of_two();
        let deliveries_base = 3 * LINE;
        HandoffRegion {
            tail: 0,
            head: LINE,
            pending: 2 * LINE,
            deliveries_base,
            acks_base: deliveries_base + capacity as usize * DELIVERY_WORDS,
            capacity,
        }
    }

    pub fn words(&self) -> usize {
        self.acks_base + self.capacity as usize * ACK_WORDS
    }
}

impl Layout {
    /// The main thread's hand-off region inside the shared buffer.
    pub fn handoff_region(&self) -> HandoffRegion {
        HandoffRegion {
            tail: DELIVERY_TAIL,
            head: DELIVERY_HEAD,
            pending: DELIVERY_PENDING,
            deliveries_base: self.deliveries_base,
            acks_base: self.acks_base,
            capacity: self.handoff_capacity,
        }
    }

    pub fn new(max_queue_size: u32, concurrency: u32) -> Self {
        let lane_capacity = max_queue_size.max(2).next_power_of_two();
        let handoff_capacity = concurrency.max(2).next_power_of_two();
        let lanes_base = HEADER_WORDS;
        let deliveries_base = lanes_base + LANE_COUNT * lane_capacity as usize * RECORD_WORDS;
        let acks_base = deliveries_base + handoff_capacity as usize * DELIVERY_WORDS;
        let words = acks_base + handoff_capacity as usize * ACK_WORDS;
        Layout {
            lane_capacity,
            handoff_capacity,
            lanes_base,
            deliveries_base,
            acks_base,
            words,
        }
    }

    /// Zeroes the header and records the geometry in it. The magic word is
    /// written last so a reader that sees it sees the rest.
    pub fn format_header(&self, mem: &SharedWords) {
        let w = mem.words();
        for word in &w[..HEADER_WORDS] {
            word.store(0, Ordering::Relaxed);
        }
        w[LANE_CAPACITY].store(self.lane_capacity, Ordering::Relaxed);
        w[HANDOFF_CAPACITY].store(self.handoff_capacity, Ordering::Relaxed);
        w[LANES_BASE].store(self.lanes_base as u32, Ordering::Relaxed);
        w[DELIVERIES_BASE].store(self.deliveries_base as u32, Ordering::Relaxed);
        w[ACKS_BASE].store(self.acks_base as u32, Ordering::Relaxed);
        w[MAGIC].store(MAGIC_VALUE, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_follow_each_other_and_fit() {
        let l = Layout::new(10_000, 256);
        assert_eq!((l.lane_capacity, l.handoff_capacity), (16_384, 256));
        assert_eq!(l.deliveries_base, HEADER_WORDS + 3 * 16_384 * RECORD_WORDS);
        assert_eq!(l.acks_base, l.deliveries_base + 256 * DELIVERY_WORDS);
        assert_eq!(l.words, l.acks_base + 256 * ACK_WORDS);
        let mem = SharedWords::owned(l.words);
        l.format_header(&mem);
        assert_eq!(
            mem.words()[ACKS_BASE].load(Ordering::Relaxed) as usize,
            l.acks_base
        );
        assert_eq!(mem.words()[MAGIC].load(Ordering::Relaxed), MAGIC_VALUE);
    }
}
