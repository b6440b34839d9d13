//! What JavaScript hands the journal: batches of accepted events packed
//! into one buffer, and which journal id the event in each slot has (and
//! what was recorded about an event before it had one).

use super::format::{self, Entry};
use super::index::IdMap;

/// One accepted event as JavaScript packs it for `accept`: `[slot
/// u32][lane u8][encoding u8][unused u16][timestamp f64][type length
/// u32][id length u32][correlation length u32][payload length u32]`, then
/// the type, the event id, the correlation id (empty: the event id) and
/// the payload; little-endian.
pub const PACKED_HEADER: usize = 32;

/// Slots are dense (JavaScript reuses freed ones first): a vector below
/// this, a map above, so a wild slot number costs an entry, not memory.
const DENSE_SLOTS: usize = 1 << 20;

#[derive(Default)]
pub struct SlotIds {
    dense: Vec<u64>,
    sparse: IdMap<u32, u64>,
}

pub fn set_slot(slots: &mut SlotIds, slot: u32, id: u64) {
    let i = slot as usize;
    if i >= DENSE_SLOTS {
        if id == 0 {
            slots.sparse.remove(&slot);
        } else {
            slots.sparse.insert(slot, id);
        }
        return;
    }
    if i >= slots.dense.len() {
        if id == 0 {
            return;
        }
        slots.dense.resize(i + 1, 0);
    }
    slots.dense[i] = id;
}

pub fn slot_id(slots: &SlotIds, slot: u32) -> Option<u64> {
    let id = match slot as usize {
        i if i < DENSE_SLOTS => slots.dense.get(i).copied(),
        _ => slots.sparse.get(&slot).copied(),
    };
    id.filter(|&id| id != 0)
}

/// One packed accepted event at `at`: its slot, its record, the next offset.
pub fn unpack(buf: &[u8], at: usize) -> Option<(u32, Entry<'_>, usize)> {
    let h = buf.get(at..at.checked_add(PACKED_HEADER)?)?;
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as usize;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&h[8..16]);
    let mut next = at + PACKED_HEADER;
    let mut take = |n: usize| {
        let s = buf.get(next..next.checked_add(n)?)?;
        next += n;
        Some(s)
    };
    let event_type = take(word(16))?;
    let event_id = take(word(20))?;
    let correlation = take(word(24))?;
    let payload = take(word(28))?;
    let entry = Entry::Accepted {
        id: 0,
        lane: h[4],
        encoding: h[5],
        timestamp: f64::from_le_bytes(ts),
        event_type,
        event_id,
        correlation,
        payload,
    };
    Some((word(0) as u32, entry, next))
}

/// A record about an event's work, before the event has its journal id.
pub enum Early {
    Reopened {
        attempt: u32,
        due_ms: u64,
    },
    Lettered {
        letter: u64,
        attempts: u32,
        at_ms: u64,
        handler: String,
        errors: String,
    },
}

impl Early {
    pub fn encode(&self, id: u64, out: &mut Vec<u8>) {
        let entry = match self {
            Early::Reopened { attempt, due_ms } => Entry::Reopened {
                id,
                attempt: *attempt,
                due_ms: *due_ms,
            },
            Early::Lettered {
                letter,
                attempts,
                at_ms,
                handler,
                errors,
            } => Entry::Lettered {
                letter: *letter,
                id,
                attempts: *attempts,
                at_ms: *at_ms,
                handler,
                errors: errors.as_bytes(),
            },
        };
        format::encode(&entry, out);
    }
}
