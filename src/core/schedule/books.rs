//! The books on each accepted event, kept in one place: how much open work
//! it has (deliveries queued again or in flight, retries waiting) and how
//! many dead letters hold it. JavaScript keeps the event itself (payload,
//! context) in a slot and is told, through [`Report`]s, when an event's
//! work has ended (and how) and when its slot may be freed. It never
//! reconstructs either from delivery outcomes.

use std::collections::HashMap;

/// How an event's work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every delivery succeeded (or ended without a dead letter).
    Succeeded = 0,
    /// At least one of its handlers is in the dead-letter queue.
    DeadLettered = 1,
    /// Its first delivery found no handler.
    Unhandled = 2,
    /// What was left of its work went elsewhere: a Redis bus put a failed
    /// handler's retry in the group's retry set, for any process to run
    /// (`core::streams`). Not an outcome here: the group decides it.
    HandedOver = 3,
}

/// What JavaScript is told about a slot. Flattened as two words,
/// `[slot, code]`: `code & 7` is the [`Finish`] (7: none, only freed) and
/// `code & FREED` says the slot may be freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub slot: u32,
    pub finished: Option<Finish>,
    pub freed: bool,
}

pub const NO_FINISH: u32 = 7;
pub const FREED: u32 = 8;

impl Report {
    pub fn code(&self) -> u32 {
        self.finished.map_or(NO_FINISH, |f| f as u32) | if self.freed { FREED } else { 0 }
    }
}

/// Slots below this are counted in vectors (slots are dense: JavaScript
/// reuses freed ones first); any others in a map, so a garbage slot word
/// from shared memory costs an entry, not a slot-sized vector.
const DENSE_SLOTS: usize = 1 << 20;

#[derive(Default)]
struct Counts {
    dense: Vec<(u32, u32)>,
    sparse: HashMap<u32, (u32, u32)>,
}

impl Counts {
    /// `(open work, dead letters)` of `slot`.
    fn get_mut(&mut self, slot: u32) -> &mut (u32, u32) {
        let i = slot as usize;
        if i < DENSE_SLOTS {
            if self.dense.len() <= i {
                self.dense.resize(i + 1, (0, 0));
            }
            &mut self.dense[i]
        } else {
            self.sparse.entry(slot).or_default()
        }
    }

    fn forget(&mut self, slot: u32) {
        if slot as usize >= DENSE_SLOTS {
            self.sparse.remove(&slot);
        }
    }
}

#[derive(Default)]
pub struct EventBooks {
    counts: Counts,
    reports: Vec<Report>,
}

impl EventBooks {
    /// The engine took the event from where it waited for the first time.
    pub fn opened(&mut self, slot: u32) {
        self.counts.get_mut(slot).0 += 1;
    }

    /// One more piece of work: a retry scheduled, a dead letter replayed.
    pub fn add_work(&mut self, slot: u32) {
        self.counts.get_mut(slot).0 += 1;
    }

    /// A delivery ended (acknowledged). `unhandled`: it was a first
    /// delivery that found no handler.
    pub fn work_done(&mut self, slot: u32, unhandled: bool) {
        let c = self.counts.get_mut(slot);
        c.0 = c.0.saturating_sub(1);
        if c.0 > 0 {
            return;
        }
        let letters = c.1;
        let finished = if letters > 0 {
            Finish::DeadLettered
        } else if unhandled {
            Finish::Unhandled
        } else {
            Finish::Succeeded
        };
        if letters == 0 {
            self.counts.forget(slot);
        }
        self.reports.push(Report {
            slot,
            finished: Some(finished),
            freed: letters == 0,
        });
    }

    /// A failed delivery's handler went to the dead-letter queue.
    pub fn lettered(&mut self, slot: u32) {
        self.counts.get_mut(slot).1 += 1;
    }

    /// One of its dead letters left the queue: removed, evicted, or
    /// replayed (then with `add_work` first).
    pub fn unlettered(&mut self, slot: u32) {
        let c = self.counts.get_mut(slot);
        c.1 = c.1.saturating_sub(1);
        if *c == (0, 0) {
            self.counts.forget(slot);
            self.reports.push(Report {
                slot,
                finished: None,
                freed: true,
            });
        }
    }

    /// Reports since the last call, oldest first.
    pub fn take_reports(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.reports)
    }

    pub fn has_reports(&self) -> bool {
        !self.reports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(slot: u32, finished: Option<Finish>, freed: bool) -> Report {
        Report {
            slot,
            finished,
            freed,
        }
    }

    #[test]
    fn an_event_finishes_when_its_last_work_ends() {
        let mut b = EventBooks::default();
        b.opened(3);
        b.add_work(3); // a retry scheduled while the first delivery runs
        b.work_done(3, false);
        assert!(!b.has_reports());
        b.work_done(3, false);
        assert_eq!(
            b.take_reports(),
            vec![report(3, Some(Finish::Succeeded), true)]
        );
        b.opened(4);
        b.work_done(4, true);
        assert_eq!(
            b.take_reports(),
            vec![report(4, Some(Finish::Unhandled), true)]
        );
    }

    #[test]
    fn dead_letters_hold_the_slot_until_they_leave() {
        let mut b = EventBooks::default();
        b.opened(1);
        b.lettered(1);
        b.work_done(1, false);
        assert_eq!(
            b.take_reports(),
            vec![report(1, Some(Finish::DeadLettered), false)]
        );
        // Replayed: work again, the letter gone; it fails again.
        b.add_work(1);
        b.unlettered(1);
        assert!(!b.has_reports(), "still open");
        b.lettered(1);
        b.work_done(1, false);
        b.unlettered(1);
        assert_eq!(
            b.take_reports(),
            vec![
                report(1, Some(Finish::DeadLettered), false),
                report(1, None, true)
            ]
        );
        assert_eq!(report(1, None, true).code(), NO_FINISH | FREED);
    }

    #[test]
    fn a_garbage_slot_costs_one_entry() {
        let mut b = EventBooks::default();
        b.opened(u32::MAX);
        b.work_done(u32::MAX, false);
        assert_eq!(b.take_reports().len(), 1);
        assert!(b.counts.dense.is_empty());
        assert!(b.counts.sparse.is_empty());
    }
}
