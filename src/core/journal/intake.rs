//! What JavaScript hands the journal: batches of accepted events packed
//! into one buffer, and which journal id the event in each slot has.

use super::format::Entry;
use super::index::IdMap;

/// One accepted event as JavaScript packs it for `accept`: `[slot
/// u32][lane u8][encoding u8][type length u16][timestamp f64][id length
/// u16][correlation length u16][payload length u32]`, then the type, the
/// event id, the correlation id (empty: the event id) and the payload;
/// little-endian.
pub const PACKED_HEADER: usize = 24;

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
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]) as usize;
    let slot = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&h[8..16]);
    let payload_len = u32::from_le_bytes([h[20], h[21], h[22], h[23]]) as usize;
    let mut next = at + PACKED_HEADER;
    let mut take = |n: usize| {
        let s = buf.get(next..next.checked_add(n)?)?;
        next += n;
        Some(s)
    };
    let event_type = take(u16_at(6))?;
    let event_id = take(u16_at(16))?;
    let correlation = take(u16_at(18))?;
    let payload = take(payload_len)?;
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
    Some((slot, entry, next))
}
