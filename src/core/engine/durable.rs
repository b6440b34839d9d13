//! Events that come from outside the ring: a durable bus's journal
//! (attached once it is open, and what a previous run left unfinished, see
//! `core::journal`), and a Redis bus's link (`core::streams`), whose
//! entries taken over from a dead process come back here as adopted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{unix_ms, Engine, Inner};
use crate::core::error::BusError;
use crate::core::journal::Journal;
use crate::core::schedule::books::Report;
use crate::core::schedule::dead_letters::{AttemptError, DeadLetter};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::ring::Record;
use crate::core::streams::StreamLink;

/// A recovered event JavaScript has put back in a slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Adopted {
    pub slot: u32,
    /// Its journal id.
    pub id: u64,
    pub type_id: u32,
    pub lane: u8,
    pub size: u32,
    /// Runs made before the restart.
    pub attempt: u32,
    /// When its next run is due (Unix ms; 0 = now).
    pub due_ms: u64,
    /// The one handler it runs for (a Redis group's retry), else 0: every
    /// handler of its type.
    pub handler: u32,
    /// Errors of its earlier attempts, oldest first.
    pub errors: Vec<AttemptError>,
}

impl Engine {
    /// Hands the engine the bus's journal; from now on the queue records
    /// in it. Only a bus configured durable has a queue that records.
    pub fn attach_journal(&self, journal: Arc<Journal>) -> Result<(), BusError> {
        self.inner
            .journal
            .set(journal)
            .map_err(|_| BusError::InvalidState("the journal is already open".into()))
    }

    /// Dead letters made from now on get ids from `next` on.
    pub fn skip_dead_letter_ids(&self, next: u64) {
        self.inner.queue.skip_dead_letter_ids(next);
    }

    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.inner.journal.get()
    }

    /// Hands the engine the bus's Redis link: from now on finished events
    /// taken from the group are settled there.
    pub fn attach_streams(&self, link: Arc<StreamLink>) -> Result<(), BusError> {
        self.inner
            .streams
            .set(link)
            .map_err(|_| BusError::InvalidState("the Redis link is already open".into()))
    }

    pub fn streams(&self) -> Option<&Arc<StreamLink>> {
        self.inner.streams.get()
    }

    /// Takes back recovered events, in the order given: each runs every
    /// handler of its type (it may have run before the restart: at least
    /// once), at once or, for a retry that was waiting, when it falls due,
    /// as the attempt it was to be.
    pub fn adopt(&self, events: &[Adopted]) {
        let now_ms = unix_ms();
        let now = Instant::now();
        if let Some(journal) = self.journal() {
            journal.adopt_all(events.iter().map(|e| (e.slot, e.id)));
        }
        {
            let mut books = self.inner.books.lock();
            for e in events {
                books.opened(e.slot);
            }
        }
        let deliveries = events
            .iter()
            .map(|e| {
                let due =
                    (e.due_ms > now_ms).then(|| now + Duration::from_millis(e.due_ms - now_ms));
                let record = Record {
                    slot: e.slot,
                    type_id: e.type_id,
                    size: e.size,
                    enqueued_us: 0,
                    arena: 0,
                    lane: e.lane,
                };
                let delivery = Redelivery {
                    record,
                    handler: e.handler,
                    attempt: e.attempt,
                    errors: e.errors.clone(),
                };
                (due, delivery)
            })
            .collect();
        self.inner.queue.restore(deliveries);
        let _guard = self.inner.park.lock();
        self.inner.timer_cv.notify_one();
        self.inner.records_cv.notify_all();
        self.inner.permits_cv.notify_one();
    }

    /// Takes back a recovered dead letter, holding the event in `slot`
    /// (journal id `id`), under its old letter id.
    pub fn adopt_letter(&self, id: u64, letter: DeadLetter) {
        let Some(journal) = self.journal() else {
            return;
        };
        journal.adopt(letter.slot, id);
        {
            let mut books = self.inner.books.lock();
            books.lettered(letter.slot);
        }
        let (_, evicted) = self.inner.queue.restore_dead_letter(letter);
        if let Some(evicted) = evicted {
            self.inner.books.lock().unlettered(evicted.slot);
        }
    }
}

impl Inner {
    /// What the books reported since the last call; the queue records it
    /// (the journal's `Finished` records) before JavaScript learns it.
    pub(super) fn take_reports(&self) -> Vec<Report> {
        let mut all = Vec::new();
        let mut batch = self.books.lock().take_reports();
        // Handing letters over frees their slots: those reports (and any
        // another thread added meanwhile) go through the same hands.
        while !batch.is_empty() {
            let mut more = false;
            if let Some(streams) = self.streams.get() {
                let lettered = streams.reported(&mut batch);
                if !lettered.is_empty() {
                    self.hand_over_letters(streams, &lettered);
                    more = true;
                }
            }
            self.queue.reported(&batch);
            all.append(&mut batch);
            if more {
                batch = self.books.lock().take_reports();
            }
        }
        all
    }

    /// A Redis bus's dead letters belong to the group: those of the events
    /// in `slots` leave this process's queue for the group's dead-letter
    /// stream, so any process sees, replays or removes them; their slots
    /// are freed here (the books report it).
    fn hand_over_letters(&self, streams: &StreamLink, slots: &[u32]) {
        let mut by_slot: HashMap<u32, Vec<String>> = HashMap::new();
        for letter in self.queue.dead_letters(0, usize::MAX) {
            if !slots.contains(&letter.slot) {
                continue;
            }
            for l in self.queue.take_dead_letters(Some(letter.id)) {
                self.books.lock().unlettered(l.slot);
                let json = serde_json::json!({
                    "handler": l.handler,
                    "key": streams.key_of(l.handler_id),
                    "attempts": l.attempts,
                    "errors": l.errors,
                    "timestamp": l.timestamp,
                });
                by_slot.entry(l.slot).or_default().push(json.to_string());
            }
        }
        for slot in slots {
            streams.letters(*slot, by_slot.remove(slot).unwrap_or_default());
        }
    }
}
