//! Deliveries that exhausted their attempts (or failed with a non-retryable
//! error), with every attempt's error. Bounded: when full, the oldest entry
//! is evicted and counted, never dropped silently.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One attempt's error, as JavaScript reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptError {
    pub message: String,
    pub name: String,
    pub stack: Option<String>,
    pub timed_out: bool,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: u64,
    pub slot: u32,
    pub handler_id: u32,
    pub handler: String,
    pub type_id: u32,
    pub lane: u8,
    pub size: u32,
    /// The serialised event's offset, for types handled in worker isolates.
    pub arena: u32,
    /// Runs made, first included.
    pub attempts: u32,
    pub errors: Vec<AttemptError>,
    /// Milliseconds since the Unix epoch, when the entry was added.
    pub timestamp: u64,
}

pub struct DeadLetterQueue {
    entries: VecDeque<DeadLetter>,
    capacity: usize,
    next_id: u64,
    evicted: u64,
}

impl DeadLetterQueue {
    pub fn new(capacity: usize) -> Self {
        DeadLetterQueue {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 1,
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Adds an entry and returns the entry evicted to make room, if any.
    /// An entry with id 0 gets the next id; one with an id (restored from
    /// a journal) keeps it, and later ids follow it.
    pub fn push(&mut self, mut entry: DeadLetter) -> Option<DeadLetter> {
        if entry.id == 0 {
            entry.id = self.next_id;
        }
        self.next_id = self.next_id.max(entry.id + 1);
        let evicted = if self.entries.len() >= self.capacity {
            self.evicted += 1;
            self.entries.pop_front()
        } else {
            None
        };
        self.entries.push_back(entry);
        evicted
    }

    /// Ids below `next` are not given out.
    pub fn skip_ids(&mut self, next: u64) {
        self.next_id = self.next_id.max(next);
    }

    /// The id of the entry added last.
    pub fn last_id(&self) -> u64 {
        self.entries.back().map_or(0, |e| e.id)
    }

    pub fn entries(&self) -> impl Iterator<Item = &DeadLetter> {
        self.entries.iter()
    }

    /// Up to `limit` entries from the `offset`-th, without walking the ones
    /// before it.
    pub fn page(&self, offset: usize, limit: usize) -> impl Iterator<Item = &DeadLetter> {
        let start = offset.min(self.entries.len());
        let end = start.saturating_add(limit).min(self.entries.len());
        self.entries.range(start..end)
    }

    pub fn remove(&mut self, id: u64) -> Option<DeadLetter> {
        let at = self.entries.iter().position(|e| e.id == id)?;
        self.entries.remove(at)
    }

    pub fn drain_all(&mut self) -> Vec<DeadLetter> {
        self.entries.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(slot: u32) -> DeadLetter {
        DeadLetter {
            id: 0,
            slot,
            handler_id: 1,
            handler: "h".into(),
            type_id: 0,
            lane: 1,
            size: 0,
            arena: 0,
            attempts: 4,
            errors: vec![],
            timestamp: 0,
        }
    }

    #[test]
    fn bounded_with_counted_eviction_of_the_oldest() {
        let mut q = DeadLetterQueue::new(2);
        assert!(q.push(letter(1)).is_none());
        assert!(q.push(letter(2)).is_none());
        assert_eq!(q.push(letter(3)).map(|e| e.slot), Some(1));
        assert_eq!(q.evicted(), 1);
        let ids: Vec<u64> = q.entries().map(|e| e.id).collect();
        assert_eq!(ids, vec![2, 3], "ids are never reused");
        assert_eq!(q.remove(2).map(|e| e.slot), Some(2));
        assert!(q.remove(2).is_none());
        assert_eq!(q.drain_all().len(), 1);
        assert!(q.is_empty());
    }
}
