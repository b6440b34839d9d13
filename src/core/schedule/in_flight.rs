//! Deliveries handed to JavaScript and not yet acknowledged.
//!
//! A fan-out delivery (handler 0) is unique per slot, so it lives in a
//! vector indexed by slot: no hashing on the hot path. Deliveries to one
//! handler (retries) can share a slot and go to a map.

use std::collections::HashMap;

use crate::core::schedule::dead_letters::AttemptError;
use crate::core::shm::ring::Record;

pub struct InFlight {
    pub record: Record,
    pub permits: u32,
    /// When it was dispatched: µs on the engine's clock.
    pub since_us: u64,
    /// 0 for the first run.
    pub attempt: u32,
    /// Errors of the earlier attempts (retries only).
    pub errors: Vec<AttemptError>,
    /// The sink it went to (0 = the main thread).
    pub sink: u32,
}

/// Fan-out deliveries of slots below this live in a vector indexed by
/// slot (slots are dense: JavaScript reuses freed ones first); any others
/// in the map. A slot word is written by JavaScript into shared memory, so
/// a garbage value must cost a map entry, not a 4-billion-entry vector.
const DENSE_SLOTS: u32 = 1 << 20;

fn dense(slot: u32, handler: u32) -> bool {
    handler == 0 && slot < DENSE_SLOTS
}

#[derive(Default)]
pub struct InFlightTable {
    fan_out: Vec<Option<InFlight>>,
    single: HashMap<(u32, u32), InFlight>,
    len: usize,
}

impl InFlightTable {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records a delivery; returns false if that delivery is already in flight.
    pub fn insert(&mut self, slot: u32, handler: u32, entry: InFlight) -> bool {
        let fresh = if dense(slot, handler) {
            let i = slot as usize;
            if self.fan_out.len() <= i {
                self.fan_out.resize_with(i + 1, || None);
            }
            let cell = &mut self.fan_out[i];
            let fresh = cell.is_none();
            if fresh {
                *cell = Some(entry);
            }
            fresh
        } else {
            match self.single.entry((slot, handler)) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(entry);
                    true
                }
            }
        };
        self.len += fresh as usize;
        fresh
    }

    pub fn get(&self, slot: u32, handler: u32) -> Option<&InFlight> {
        if dense(slot, handler) {
            self.fan_out.get(slot as usize).and_then(Option::as_ref)
        } else {
            self.single.get(&(slot, handler))
        }
    }

    pub fn get_mut(&mut self, slot: u32, handler: u32) -> Option<&mut InFlight> {
        if dense(slot, handler) {
            self.fan_out.get_mut(slot as usize).and_then(Option::as_mut)
        } else {
            self.single.get_mut(&(slot, handler))
        }
    }

    /// Removes and returns every entry `keep` rejects, with its key.
    pub fn take_where(&mut self, take: impl Fn(&InFlight) -> bool) -> Vec<((u32, u32), InFlight)> {
        let mut out = Vec::new();
        for (slot, cell) in self.fan_out.iter_mut().enumerate() {
            if cell.as_ref().is_some_and(&take) {
                if let Some(e) = cell.take() {
                    out.push(((slot as u32, 0), e));
                }
            }
        }
        let keys: Vec<(u32, u32)> = self
            .single
            .iter()
            .filter(|(_, e)| take(e))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(e) = self.single.remove(&k) {
                out.push((k, e));
            }
        }
        self.len -= out.len();
        out
    }

    pub fn remove(&mut self, slot: u32, handler: u32) -> Option<InFlight> {
        let entry = if dense(slot, handler) {
            self.fan_out.get_mut(slot as usize).and_then(Option::take)
        } else {
            self.single.remove(&(slot, handler))
        };
        self.len -= entry.is_some() as usize;
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(slot: u32) -> InFlight {
        InFlight {
            record: Record::bare(slot, 1),
            permits: 1,
            since_us: 0,
            attempt: 0,
            errors: vec![],
            sink: slot % 2,
        }
    }

    #[test]
    fn fan_out_and_single_deliveries_are_tracked_apart() {
        let mut t = InFlightTable::default();
        assert!(t.insert(5, 0, entry(5)));
        assert!(!t.insert(5, 0, entry(5)), "one fan-out per slot");
        assert!(t.insert(5, 3, entry(5)));
        assert!(t.insert(5, 4, entry(5)));
        assert_eq!(t.len(), 3);
        assert!(t.get(5, 3).is_some() && t.get(5, 0).is_some() && t.get(6, 0).is_none());
        assert!(t.remove(5, 3).is_some());
        assert!(t.remove(5, 3).is_none());
        assert!(t.remove(5, 0).is_some());
        assert!(t.remove(9, 0).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn entries_of_one_sink_can_be_taken_out() {
        let mut t = InFlightTable::default();
        for slot in 0..6 {
            t.insert(slot, 0, entry(slot));
            t.insert(slot, 7, entry(slot));
        }
        let odd = t.take_where(|e| e.sink == 1);
        assert_eq!(odd.len(), 6);
        assert!(odd.iter().all(|((slot, _), _)| slot % 2 == 1));
        assert_eq!(t.len(), 6);
        if let Some(e) = t.get_mut(2, 7) {
            e.attempt = 3;
        }
        assert!(t.get(2, 7).is_some_and(|e| e.attempt == 3));
    }

    #[test]
    fn a_garbage_slot_costs_one_entry() {
        let mut t = InFlightTable::default();
        assert!(t.insert(u32::MAX, 0, entry(1)));
        assert!(!t.insert(u32::MAX, 0, entry(1)), "still one delivery");
        assert!(t.get(u32::MAX, 0).is_some());
        assert_eq!(t.take_where(|_| true).len(), 1);
        assert!(t.insert(u32::MAX, 0, entry(1)));
        assert!(t.remove(u32::MAX, 0).is_some());
        assert!(t.is_empty());
        assert!(t.fan_out.len() < 16, "no slot-sized vector");
    }
}
