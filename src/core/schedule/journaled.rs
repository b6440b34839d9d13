//! The queue of a durable bus: the in-process queue, with every change
//! that recovery needs recorded in the journal (`core::journal`) as it
//! happens: retries scheduled, dead letters added and gone, events
//! reopened by a replay, and events whose work ended.
//!
//! The journal opens at `initialize()`, after the engine exists, hence
//! the `OnceLock`: until then nothing has run, so nothing is recorded.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::core::journal::Journal;
use crate::core::schedule::books::Report;
use crate::core::schedule::dead_letters::DeadLetter;
use crate::core::schedule::queue::{Admit, EventQueue, Leftovers, LocalQueue, Next, QueueSizes};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::ring::Record;

pub struct JournaledQueue {
    local: LocalQueue,
    journal: Arc<OnceLock<Arc<Journal>>>,
}

impl JournaledQueue {
    /// `journal` is filled when the bus opens its journal.
    pub fn new(local: LocalQueue, journal: Arc<OnceLock<Arc<Journal>>>) -> Self {
        JournaledQueue { local, journal }
    }

    fn journal(&self) -> Option<&Journal> {
        self.journal.get().map(|j| &**j)
    }
}

/// `due` as Unix milliseconds: the journal outlives this process's clock.
pub fn unix_ms_at(due: Instant) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now + due.saturating_duration_since(Instant::now()).as_millis() as u64
}

impl EventQueue for JournaledQueue {
    fn take(&self, now_ns: u64, admit: &mut dyn FnMut(&Record, u32) -> Admit) -> Next {
        self.local.take(now_ns, admit)
    }

    fn has_work(&self) -> bool {
        self.local.has_work()
    }

    fn put_back(&self, deliveries: Vec<Redelivery>) {
        self.local.put_back(deliveries)
    }

    fn acknowledged(&self, record: &Record, handler: u32) {
        self.local.acknowledged(record, handler)
    }

    fn retry(&self, due: Instant, delivery: Redelivery) -> bool {
        if let Some(j) = self.journal() {
            j.reopened(delivery.record.slot, delivery.attempt, unix_ms_at(due));
        }
        self.local.retry(due, delivery)
    }

    fn promote(&self, now: Instant) -> (usize, Option<Instant>) {
        self.local.promote(now)
    }

    fn dead_letter(&self, letter: DeadLetter) -> (u64, Option<DeadLetter>) {
        let slot = letter.slot;
        let (attempts, at, handler) = (letter.attempts, letter.timestamp, letter.handler.clone());
        let errors = serde_json::to_string(&letter.errors).unwrap_or_else(|_| "[]".into());
        let (id, evicted) = self.local.dead_letter(letter);
        if let Some(j) = self.journal() {
            j.lettered(slot, id, attempts, at, &handler, &errors);
            if let Some(e) = &evicted {
                j.unlettered([e.id]);
            }
        }
        (id, evicted)
    }

    fn dead_letters(&self, offset: usize, limit: usize) -> Vec<DeadLetter> {
        self.local.dead_letters(offset, limit)
    }

    fn take_dead_letters(&self, id: Option<u64>) -> Vec<DeadLetter> {
        let letters = self.local.take_dead_letters(id);
        if let Some(j) = self.journal() {
            j.unlettered(letters.iter().map(|l| l.id));
        }
        letters
    }

    fn enqueue(&self, deliveries: Vec<Redelivery>) {
        if let Some(j) = self.journal() {
            for d in &deliveries {
                j.reopened(d.record.slot, d.attempt, 0);
            }
        }
        self.local.enqueue(deliveries)
    }

    fn sizes(&self) -> QueueSizes {
        self.local.sizes()
    }

    fn drain(&self) -> Leftovers {
        self.local.drain()
    }

    fn reported(&self, reports: &[Report]) {
        if let Some(j) = self.journal() {
            j.finished(
                reports
                    .iter()
                    .filter(|r| r.finished.is_some())
                    .map(|r| r.slot),
            );
            j.freed(reports.iter().filter(|r| r.freed).map(|r| r.slot));
        }
    }

    fn restore_dead_letter(&self, letter: DeadLetter) -> (u64, Option<DeadLetter>) {
        let (id, evicted) = self.local.dead_letter(letter);
        if let (Some(j), Some(e)) = (self.journal(), &evicted) {
            j.unlettered([e.id]);
        }
        (id, evicted)
    }

    fn skip_dead_letter_ids(&self, next: u64) {
        self.local.skip_dead_letter_ids(next)
    }

    fn restore(&self, deliveries: Vec<(Option<Instant>, Redelivery)>) {
        self.local.restore(deliveries)
    }
}
