//! The priority ring: three bounded lanes (critical, normal, low) in shared
//! memory, one JavaScript producer, any number of native consumers.
//!
//! Each lane is a bounded MPMC queue in the style of Dmitry Vyukov's: every
//! cell carries a sequence number that says whose turn the cell is. The
//! producer may write cell `pos` when its sequence equals `pos`, and
//! publishes it by storing `pos + 1`; a consumer claims it by moving the
//! lane's head with a compare-and-swap and releases it by storing
//! `pos + capacity`. No record can be read before it is published, read
//! twice, or overwritten before it has been read.
//!
//! The producer lives in JavaScript (`js/ring.ts`); [`RingProducer`] is the
//! same algorithm in Rust, used by the tests and the benchmarks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::shm::layout::{self, record, Layout, LANE_COUNT, LINE, RECORD_WORDS};
use crate::core::shm::park_word::ParkWord;
use crate::core::shm::sync::{fence, AtomicU32, AtomicU64};
use crate::core::shm::words::SharedWords;

pub const LANES: usize = LANE_COUNT;
pub const LANE_NAMES: [&str; LANES] = ["critical", "normal", "low"];

/// One queued event as the producer wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Index of the event in the producer's slot table.
    pub slot: u32,
    /// Interned event type.
    pub type_id: u32,
    /// Estimated payload size in bytes.
    pub size: u32,
    /// When it was emitted: µs on the engine's clock, wrapping (see
    /// `Engine::elapsed_us`).
    pub enqueued_us: u32,
    /// Offset of the serialised event in the arena (types handled in worker
    /// isolates; `size` is then its exact length).
    pub arena: u32,
    /// 0 = critical, 1 = normal, 2 = low.
    pub lane: u8,
}

#[cfg(test)]
impl Record {
    /// A record with only a slot and a lane, for tests.
    pub fn bare(slot: u32, lane: u8) -> Self {
        Record {
            slot,
            type_id: 0,
            size: 0,
            enqueued_us: 0,
            arena: 0,
            lane,
        }
    }
}

pub struct PriorityRing {
    mem: Arc<SharedWords>,
    base: usize,
    capacity: u32,
    /// Lanes in the order they are served.
    order: [usize; LANES],
    /// The starvation bound in ns; changes live (`set_aging`).
    aging_ns: AtomicU64,
    epoch: Instant,
    /// Per lane, when (ns since `epoch`, 0 = never) a consumer first passed
    /// over the lane's head in favour of a higher lane.
    passed_over_since: [AtomicU64; LANES],
}

impl PriorityRing {
    /// Formats the lanes of `mem` (laid out by `layout`, whose header must
    /// already be formatted) as an empty ring.
    pub fn new(
        mem: Arc<SharedWords>,
        layout: &Layout,
        order: [usize; LANES],
        aging: Duration,
    ) -> Self {
        assert!(
            mem.words().len() >= layout.words,
            "shared buffer too small for the layout"
        );
        let ring = PriorityRing {
            mem,
            base: layout.lanes_base,
            capacity: layout.lane_capacity,
            order,
            aging_ns: AtomicU64::new(aging.as_nanos() as u64),
            epoch: Instant::now(),
            passed_over_since: Default::default(),
        };
        for lane in 0..LANES {
            for i in 0..ring.capacity {
                ring.word(ring.cell_index(lane, i))
                    .store(i, Ordering::Relaxed);
            }
        }
        fence(Ordering::SeqCst);
        ring
    }

    fn cell_index(&self, lane: usize, pos: u32) -> usize {
        self.base
            + (lane * self.capacity as usize + (pos & (self.capacity - 1)) as usize) * RECORD_WORDS
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        &self.mem.words()[i]
    }

    fn head(&self, lane: usize) -> &AtomicU32 {
        self.word(layout::HEAD + lane * LINE)
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Where consumers park when every lane is empty.
    pub fn park_word(&self) -> ParkWord<'_> {
        ParkWord::new(self.word(layout::PARK))
    }

    /// Lane tails as last published by the producer (records pushed,
    /// wrapping).
    pub fn tails(&self) -> [u32; LANES] {
        std::array::from_fn(|lane| {
            self.word(layout::TAIL + lane * LINE)
                .load(Ordering::Acquire)
        })
    }

    /// Bumps the worker-panic counter JavaScript watches.
    pub fn count_worker_error(&self) {
        self.word(layout::WORKER_ERRORS)
            .fetch_add(1, Ordering::SeqCst);
    }

    /// Tells JavaScript the books have reports for it (see `layout::REPORTS`).
    pub fn count_reports(&self) {
        self.word(layout::REPORTS).fetch_add(1, Ordering::SeqCst);
    }

    /// Records waiting in `lane`.
    pub fn depth(&self, lane: usize) -> u32 {
        let tail = self
            .word(layout::TAIL + lane * LINE)
            .load(Ordering::Acquire);
        let head = self.head(lane).load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.capacity)
    }

    /// Whether `lane` has a published record at its head.
    pub fn lane_ready(&self, lane: usize) -> bool {
        let pos = self.head(lane).load(Ordering::Acquire);
        let seq = self
            .word(self.cell_index(lane, pos))
            .load(Ordering::Acquire);
        seq == pos.wrapping_add(1)
    }

    pub fn is_empty(&self) -> bool {
        (0..LANES).all(|lane| !self.lane_ready(lane))
    }

    /// Takes the oldest record of `lane`, if any.
    pub fn pop_lane(&self, lane: usize) -> Option<Record> {
        let head = self.head(lane);
        let mut pos = head.load(Ordering::Relaxed);
        loop {
            let cell = self.cell_index(lane, pos);
            let seq = self.word(cell).load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as i32;
            if diff == 0 {
                match head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let rec = self.read_record(cell, lane);
                        self.word(cell)
                            .store(pos.wrapping_add(self.capacity), Ordering::Release);
                        self.word(layout::BYTES_OUT)
                            .fetch_add(rec.size, Ordering::Relaxed);
                        return Some(rec);
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                return None;
            } else {
                pos = head.load(Ordering::Relaxed);
            }
        }
    }

    /// The ring's clock for [`Self::pop_next_if`]. A dispatcher reads it
    /// once per batch: aging is measured in milliseconds, and reading the
    /// clock per record was the largest single cost of dispatching.
    pub fn now_ns(&self) -> u64 {
        // +1 keeps 0 free to mean "not passed over".
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// Reads the head record of `lane` without taking it.
    pub fn peek_lane(&self, lane: usize) -> Option<Record> {
        let pos = self.head(lane).load(Ordering::Acquire);
        let cell = self.cell_index(lane, pos);
        if self.word(cell).load(Ordering::Acquire) != pos.wrapping_add(1) {
            return None;
        }
        Some(self.read_record(cell, lane))
    }

    /// The fields of the record at `cell`, once its sequence word said the
    /// producer published it.
    fn read_record(&self, cell: usize, lane: usize) -> Record {
        let field = |offset: usize| self.word(cell + offset).load(Ordering::Relaxed);
        Record {
            slot: field(record::SLOT),
            type_id: field(record::TYPE_ID),
            size: field(record::SIZE),
            enqueued_us: field(record::ENQUEUED_US),
            arena: field(record::ARENA),
            lane: lane as u8,
        }
    }

    /// Takes the next record in priority order. Safe with any number of
    /// concurrent consumers.
    ///
    /// Lanes are served strictly by weight, with one exception that bounds
    /// starvation: once a lower lane's head has been passed over for at least
    /// `aging`, that lane is served next, once.
    pub fn pop_next(&self) -> Option<Record> {
        let now = self.now_ns();
        loop {
            let lane = self.choose_lane(now)?;
            if let Some(rec) = self.pop_lane(lane) {
                self.served(lane, now);
                return Some(rec);
            }
            // Another consumer emptied the lane meanwhile: choose again.
        }
    }

    /// Like [`Self::pop_next`], but takes the record only if `accept` says
    /// so; otherwise it stays at the head of its lane. Callers must not run
    /// concurrently with other consumers (the engine's dispatch lock), so
    /// the record accepted is the record taken. `now` is from
    /// [`Self::now_ns`].
    pub fn pop_next_if(&self, now: u64, accept: impl FnOnce(&Record) -> bool) -> Option<Record> {
        let lane = self.choose_lane(now)?;
        let rec = self.peek_lane(lane)?;
        if !accept(&rec) {
            return None;
        }
        let taken = self.pop_lane(lane)?;
        debug_assert_eq!(taken, rec, "pop_next_if raced another consumer");
        self.served(lane, now);
        Some(taken)
    }

    /// Changes the starvation bound; lanes already passed over are measured
    /// against the new bound from their next look.
    pub fn set_aging(&self, aging: Duration) {
        self.aging_ns
            .store(aging.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The lane `pop_next` would serve now, without taking anything.
    pub fn next_lane(&self) -> Option<usize> {
        self.choose_lane(self.now_ns())
    }

    /// The lane to serve next: a passed-over lane past its aging bound, else
    /// the first ready lane by weight.
    fn choose_lane(&self, now: u64) -> Option<usize> {
        let aging = self.aging_ns.load(Ordering::Relaxed);
        for &lane in &self.order[1..] {
            let since = self.passed_over_since[lane].load(Ordering::Relaxed);
            if since != 0 && now.saturating_sub(since) >= aging {
                if self.lane_ready(lane) {
                    return Some(lane);
                }
                self.passed_over_since[lane].store(0, Ordering::Relaxed);
            }
        }
        self.order
            .iter()
            .copied()
            .find(|&lane| self.lane_ready(lane))
    }

    /// Bookkeeping after `lane` was served: lower lanes with records waiting
    /// start (or keep) their passed-over clock; the served lane's next head
    /// starts waiting from now.
    fn served(&self, lane: usize, now: u64) {
        let rank = self.order.iter().position(|&l| l == lane).unwrap_or(0);
        for &lower in &self.order[rank + 1..] {
            if self.lane_ready(lower) {
                let _ = self.passed_over_since[lower].compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        if self.passed_over_since[lane].load(Ordering::Relaxed) != 0 {
            let since = if self.lane_ready(lane) { now } else { 0 };
            self.passed_over_since[lane].store(since, Ordering::Relaxed);
        }
    }
}

/// The producer side of the ring. Only one may exist per ring at a time;
/// in the package that one is JavaScript's.
pub struct RingProducer<'a> {
    ring: &'a PriorityRing,
    tails: [u32; LANES],
}

impl<'a> RingProducer<'a> {
    pub fn new(ring: &'a PriorityRing) -> Self {
        RingProducer {
            ring,
            tails: [0; LANES],
        }
    }

    /// Appends a record; `false` when the lane is full.
    pub fn push(&mut self, lane: usize, slot: u32, type_id: u32, size: u32) -> bool {
        self.push_record(Record {
            slot,
            type_id,
            size,
            enqueued_us: 0,
            arena: 0,
            lane: lane as u8,
        })
    }

    /// Appends `rec` to its lane, every field written as `js/ring.ts`
    /// writes it; `false` when the lane is full.
    pub fn push_record(&mut self, rec: Record) -> bool {
        let lane = rec.lane as usize;
        let pos = self.tails[lane];
        let cell = self.ring.cell_index(lane, pos);
        if self.ring.word(cell + record::SEQ).load(Ordering::Acquire) != pos {
            return false;
        }
        let field = |offset: usize, value: u32| {
            self.ring
                .word(cell + offset)
                .store(value, Ordering::Relaxed)
        };
        field(record::SLOT, rec.slot);
        field(record::TYPE_ID, rec.type_id);
        field(record::SIZE, rec.size);
        field(record::ENQUEUED_US, rec.enqueued_us);
        field(record::ARENA, rec.arena);
        self.ring
            .word(cell + record::SEQ)
            .store(pos.wrapping_add(1), Ordering::Release);
        self.tails[lane] = pos.wrapping_add(1);
        self.ring
            .word(layout::TAIL + lane * LINE)
            .store(pos.wrapping_add(1), Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests;
