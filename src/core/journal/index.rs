//! Which records are still needed, so segments can be deleted.
//!
//! An event's records are live while recovery would need them: its
//! `Accepted` record until its work has finished and no dead letter holds
//! it; its latest `Reopened` record while it is open; its `Finished`
//! record while a dead letter keeps the event (without it, recovery would
//! run the event again); a `Lettered` record until the letter leaves.
//! Each segment counts its live bytes; at zero it can go. The same index
//! is rebuilt by replay, so the writer and recovery agree on what is live.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::format::Entry;
use super::segments::Loc;

#[derive(Debug, Clone)]
pub struct Event {
    pub accepted: Loc,
    pub lane: u8,
    pub open: bool,
    pub attempt: u32,
    pub due_ms: u64,
    /// The latest `Reopened` or `Finished` record, whichever came last.
    pub state: Option<Loc>,
    pub letters: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Letter {
    pub id: u64,
    pub loc: Loc,
}

/// Hashes the journal's ids, which are dense counters chosen by this
/// process, not input an attacker picks: a multiply spreads them, where
/// SipHash's flood resistance would cost more than the rest of the update.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Events by id, kept in the order they were inserted: the map holds only
/// positions (small entries, fewer cache misses), the events sit in a
/// vector written sequentially, and iterating it yields journal order,
/// which is nearly id order (recovery sorts what copying forward moved).
/// Removed events leave a hole until holes outnumber events.
#[derive(Default)]
pub struct EventTable {
    positions: IdMap<u64, u32>,
    arena: Vec<(u64, Option<Event>)>,
    holes: usize,
}

impl EventTable {
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    pub fn reserve(&mut self, more: usize) {
        self.positions.reserve(more);
        self.arena.reserve(more);
    }

    pub fn get(&self, id: &u64) -> Option<&Event> {
        let &at = self.positions.get(id)?;
        self.arena[at as usize].1.as_ref()
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Event> {
        let &at = self.positions.get(id)?;
        self.arena[at as usize].1.as_mut()
    }

    /// Adds `ev` at the end; returns the event it replaces.
    pub fn insert(&mut self, id: u64, ev: Event) -> Option<Event> {
        let at = self.arena.len() as u32;
        self.arena.push((id, Some(ev)));
        let old = self.positions.insert(id, at)?;
        self.holes += 1;
        self.arena[old as usize].1.take()
    }

    pub fn remove(&mut self, id: &u64) -> Option<Event> {
        let at = self.positions.remove(id)?;
        let ev = self.arena[at as usize].1.take();
        self.holes += 1;
        if self.holes > 1024 && self.holes * 2 > self.arena.len() {
            self.close_holes();
        }
        ev
    }

    fn close_holes(&mut self) {
        self.arena.retain(|(_, ev)| ev.is_some());
        for (at, (id, _)) in self.arena.iter().enumerate() {
            self.positions.insert(*id, at as u32);
        }
        self.holes = 0;
    }

    /// Live events in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Event)> {
        self.arena
            .iter()
            .filter_map(|(id, ev)| ev.as_ref().map(|ev| (id, ev)))
    }
}

#[cfg(test)]
impl std::ops::Index<&u64> for EventTable {
    type Output = Event;
    fn index(&self, id: &u64) -> &Event {
        self.get(id).expect("no such event in the journal index")
    }
}

#[derive(Default)]
pub struct Index {
    pub events: EventTable,
    pub letters: IdMap<u64, Letter>,
    live: IdMap<u32, u64>,
    /// Records naming an event or letter the index does not hold.
    pub strays: u64,
}

impl Index {
    /// Room for this many more events without growing.
    pub fn reserve(&mut self, events: usize) {
        self.events.reserve(events);
    }

    pub fn live_bytes(&self, segment: u32) -> u64 {
        self.live.get(&segment).copied().unwrap_or(0)
    }

    fn add(&mut self, loc: Loc) {
        *self.live.entry(loc.segment).or_default() += loc.len as u64;
    }

    fn drop_loc(&mut self, loc: Loc) {
        if let Some(n) = self.live.get_mut(&loc.segment) {
            *n = n.saturating_sub(loc.len as u64);
            if *n == 0 {
                self.live.remove(&loc.segment);
            }
        }
    }

    /// Takes a record written at `loc` into account.
    pub fn apply(&mut self, entry: &Entry<'_>, loc: Loc) {
        match *entry {
            Entry::Accepted { id, lane, .. } => {
                self.add(loc);
                // Copied forward: only the record moves; the event keeps
                // its state, so a copy cut short by a crash before the
                // state's record changes nothing.
                if let Some(ev) = self.events.get_mut(&id) {
                    let old = std::mem::replace(&mut ev.accepted, loc);
                    self.drop_loc(old);
                    return;
                }
                let ev = Event {
                    accepted: loc,
                    lane,
                    open: true,
                    attempt: 0,
                    due_ms: 0,
                    state: None,
                    letters: 0,
                };
                self.events.insert(id, ev);
            }
            Entry::Finished { id } => self.set_state(id, loc, false, 0, 0),
            Entry::Reopened {
                id,
                attempt,
                due_ms,
            } => self.set_state(id, loc, true, attempt, due_ms),
            Entry::Lettered { letter, id, .. } => {
                if self.events.get(&id).is_none() {
                    self.strays += 1;
                    return;
                }
                self.add(loc);
                let old = self.letters.insert(letter, Letter { id, loc });
                if let Some(old) = old {
                    self.drop_loc(old.loc);
                    // A letter copied forward: the same letter, moved.
                    if old.id == id {
                        return;
                    }
                    if let Some(other) = self.events.get_mut(&old.id) {
                        other.letters = other.letters.saturating_sub(1);
                    }
                }
                if let Some(ev) = self.events.get_mut(&id) {
                    ev.letters += 1;
                }
            }
            Entry::Unlettered { letter } => {
                let Some(l) = self.letters.remove(&letter) else {
                    self.strays += 1;
                    return;
                };
                self.drop_loc(l.loc);
                if let Some(ev) = self.events.get_mut(&l.id) {
                    ev.letters = ev.letters.saturating_sub(1);
                }
                self.forget_if_done(l.id);
            }
        }
    }

    fn set_state(&mut self, id: u64, loc: Loc, open: bool, attempt: u32, due_ms: u64) {
        let Some(ev) = self.events.get_mut(&id) else {
            self.strays += 1;
            return;
        };
        let old = ev.state.replace(loc);
        ev.open = open;
        ev.attempt = attempt;
        ev.due_ms = due_ms;
        if let Some(old) = old {
            self.drop_loc(old);
        }
        self.add(loc);
        self.forget_if_done(id);
    }

    fn forget_if_done(&mut self, id: u64) {
        if self
            .events
            .get(&id)
            .is_some_and(|ev| !ev.open && ev.letters == 0)
        {
            if let Some(ev) = self.events.remove(&id) {
                self.release(&ev);
            }
        }
    }

    fn release(&mut self, ev: &Event) {
        self.drop_loc(ev.accepted);
        if let Some(state) = ev.state {
            self.drop_loc(state);
        }
    }

    /// Events with a live record in `segment`, and their letters: what
    /// copying the segment forward must re-write.
    pub fn pinned_by(&self, segment: u32) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .events
            .iter()
            .filter(|(_, ev)| {
                ev.accepted.segment == segment || ev.state.is_some_and(|s| s.segment == segment)
            })
            .map(|(&id, _)| id)
            .chain(
                self.letters
                    .values()
                    .filter(|l| l.loc.segment == segment)
                    .map(|l| l.id),
            )
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u32, offset: u64) -> Loc {
        Loc {
            segment,
            offset,
            len: 10,
        }
    }

    fn letter_of(id: u64, letter: u64) -> Entry<'static> {
        Entry::Lettered {
            letter,
            id,
            attempts: 1,
            at_ms: 0,
            handler: "h",
            errors: b"[]",
        }
    }

    fn accepted(id: u64) -> Entry<'static> {
        Entry::Accepted {
            id,
            lane: 1,
            encoding: 0,
            timestamp: 0.0,
            event_type: b"t",
            event_id: b"e",
            correlation: b"",
            payload: b"{}",
        }
    }

    #[test]
    fn a_finished_event_frees_its_segment() {
        let mut ix = Index::default();
        ix.apply(&accepted(1), at(1, 32));
        ix.apply(&accepted(2), at(1, 42));
        assert_eq!(ix.live_bytes(1), 20);
        ix.apply(&Entry::Finished { id: 1 }, at(2, 32));
        assert_eq!((ix.live_bytes(1), ix.live_bytes(2)), (10, 0));
        ix.apply(&Entry::Finished { id: 2 }, at(2, 42));
        assert_eq!((ix.live_bytes(1), ix.events.len()), (0, 0));
    }

    #[test]
    fn a_dead_letter_keeps_the_event_and_its_finish_until_it_leaves() {
        let mut ix = Index::default();
        ix.apply(&accepted(1), at(1, 32));
        let letter = letter_of(1, 5);
        ix.apply(&letter, at(2, 32));
        ix.apply(&Entry::Finished { id: 1 }, at(3, 32));
        assert_eq!(
            (ix.live_bytes(1), ix.live_bytes(2), ix.live_bytes(3)),
            (10, 10, 10)
        );
        assert_eq!(ix.pinned_by(3), vec![1]);
        ix.apply(&Entry::Unlettered { letter: 5 }, at(3, 42));
        assert!(ix.events.is_empty());
        assert_eq!(ix.live_bytes(1) + ix.live_bytes(2) + ix.live_bytes(3), 0);
    }

    #[test]
    fn a_copy_cut_short_after_its_accepted_record_changes_no_state() {
        let mut ix = Index::default();
        ix.apply(&accepted(1), at(1, 32));
        let letter = letter_of(1, 5);
        ix.apply(&letter, at(1, 42));
        ix.apply(&Entry::Finished { id: 1 }, at(1, 52));
        // Copying forward wrote the Accepted record again, then the crash.
        ix.apply(&accepted(1), at(2, 32));
        let ev = &ix.events[&1];
        assert!(!ev.open, "a dead-lettered event is not run again");
        assert_eq!((ev.letters, ev.accepted.segment), (1, 2));
        ix.apply(&letter, at(2, 42));
        assert_eq!(
            ix.events[&1].letters, 1,
            "the copied letter is the same letter"
        );
        assert_eq!(
            ix.live_bytes(1),
            10,
            "only the Finished record is left in segment 1"
        );
    }

    #[test]
    fn only_the_latest_retry_is_live_and_strays_are_counted() {
        let mut ix = Index::default();
        ix.apply(&accepted(1), at(1, 32));
        let retry = |attempt| Entry::Reopened {
            id: 1,
            attempt,
            due_ms: 9,
        };
        ix.apply(&retry(1), at(2, 32));
        ix.apply(&retry(2), at(3, 32));
        assert_eq!((ix.live_bytes(2), ix.live_bytes(3)), (0, 10));
        assert_eq!(ix.events[&1].attempt, 2);
        ix.apply(&Entry::Finished { id: 99 }, at(3, 42));
        assert_eq!(ix.strays, 1);
    }
}
