//! The word a consumer parks on: how many consumers are parked (low bits)
//! and whether a wake-up was asked for since the last one parked (`WAKE`).
//!
//! The producer publishes records and then asks whether it must wake
//! someone; a consumer counts itself parked and then looks at the ring one
//! last time before sleeping. Each side's second step must see the other's
//! first, or the record waits beside a sleeping consumer. Both sides change
//! this word only with read-modify-writes, which every thread sees in one
//! order: if the consumer's comes first, the producer's sees it parked and
//! wakes it; if the producer's comes first, the consumer's reads it and
//! with it everything the producer published before (acquire/release), so
//! it finds the record. No fence is needed, and `loom` can check it (its
//! `SeqCst` is only acquire/release, which a store-then-load handshake does
//! not survive). The producer's side is `claimWake` in `js/ring.ts`, with
//! `Atomics.or`; [`ParkWord::claim`] is the same step in Rust.

use std::sync::atomic::Ordering;

use super::sync::AtomicU32;

/// Set by a producer that asked for a wake-up; cleared by the next consumer
/// to park.
pub const WAKE: u32 = 1 << 31;

pub struct ParkWord<'a>(&'a AtomicU32);

impl<'a> ParkWord<'a> {
    pub fn new(word: &'a AtomicU32) -> Self {
        ParkWord(word)
    }

    /// A consumer about to check for work a last time before it sleeps:
    /// counts itself and forgets earlier requests, in one step.
    pub fn enter(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some((w & !WAKE) + 1)
            });
    }

    /// The consumer stopped sleeping (or never started).
    pub fn leave(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }

    /// The producer, after publishing: true when it must wake a consumer
    /// (one is parked and nobody asked since it parked).
    pub fn claim(&self) -> bool {
        let was = self.0.fetch_or(WAKE, Ordering::AcqRel);
        was & WAKE == 0 && was & !WAKE != 0
    }

    /// Consumers parked now.
    pub fn parked(&self) -> u32 {
        self.0.load(Ordering::Acquire) & !WAKE
    }
}
