//! The last step of recovery: what the index says must run again, and the
//! dead letters, read out of the segments in acceptance order.

use super::format::{self, Entry, Frame};
use super::index::Index;
use super::replay::{PendingEvent, Recovered, RecoveredLetter};
use super::segments::Loc;

#[derive(Clone, Copy)]
struct Pick {
    id: u64,
    accepted: Loc,
    attempt: u32,
    due_ms: u64,
    lane: u8,
    open: bool,
}

/// Open events by id, then those only dead letters hold, by id. The
/// table yields journal order, nearly id order already (copying forward
/// moves a few), which the sort handles in about one pass.
fn in_id_order(mut picks: Vec<Pick>) -> Vec<Pick> {
    picks.sort_unstable_by_key(|p| (!p.open, p.id));
    picks
}

/// Copies out the envelopes of open events and of those dead letters hold.
pub(super) fn extract(index: &Index, files: &[(u32, Vec<u8>)], rec: &mut Recovered) {
    // Open events first, in acceptance order: they go back into their
    // lanes; then those only dead letters hold.
    // What is needed of each event, copied out in the table's order
    // (sequential memory, nearly id order).
    let mut picks: Vec<Pick> = Vec::with_capacity(index.events.len());
    picks.extend(index.events.iter().map(|(&id, ev)| Pick {
        id,
        accepted: ev.accepted,
        attempt: ev.attempt,
        due_ms: ev.due_ms,
        lane: ev.lane,
        open: ev.open,
    }));
    let events = in_id_order(picks);
    let mut types: std::collections::HashMap<&[u8], u32> = Default::default();
    let mut last_type: (&[u8], u32) = (&[], u32::MAX);
    rec.events.reserve(events.len());
    for ev in events {
        let id = ev.id;
        let Some(buffer) = files.iter().position(|(n, _)| *n == ev.accepted.segment) else {
            continue;
        };
        let buf = &files[buffer].1;
        let off = ev.accepted.offset as usize;
        let Frame::Record(
            Entry::Accepted {
                encoding,
                timestamp,
                event_type,
                event_id,
                correlation,
                payload,
                ..
            },
            _,
        ) = format::parse_checked(&buf[off..off + ev.accepted.len as usize])
        else {
            continue;
        };
        let type_index = if last_type.0 == event_type {
            last_type.1
        } else {
            let i = match types.get(event_type) {
                Some(&i) => i,
                None => {
                    let i = rec.types.len() as u32;
                    types.insert(event_type, i);
                    rec.types
                        .push(String::from_utf8_lossy(event_type).into_owned());
                    i
                }
            };
            last_type = (event_type, i);
            i
        };
        // The record lays them out one after another, each behind its length.
        let at = |field: &[u8]| field.as_ptr() as usize - buf.as_ptr() as usize;
        let start = at(event_id);
        let id_end = start + event_id.len();
        let correlation_start = at(correlation);
        let correlation_end = correlation_start + correlation.len();
        let (payload_start, end) = (at(payload), at(payload) + payload.len());
        rec.events.push(PendingEvent {
            id,
            lane: ev.lane,
            encoding,
            timestamp,
            type_index,
            buffer: buffer as u32,
            start,
            id_end,
            correlation_start,
            correlation_end,
            payload_start,
            end,
            attempt: ev.attempt,
            due_ms: ev.due_ms,
            open: ev.open,
        });
    }
    let mut letters: Vec<_> = index.letters.iter().collect();
    letters.sort_unstable_by_key(|(n, _)| **n);
    for (&letter, l) in letters {
        let Some(buf) = files
            .iter()
            .find(|(n, _)| *n == l.loc.segment)
            .map(|(_, b)| b)
        else {
            continue;
        };
        if let Frame::Record(
            Entry::Lettered {
                attempts,
                at_ms,
                handler,
                errors,
                ..
            },
            _,
        ) = format::decode(&buf[l.loc.offset as usize..])
        {
            rec.letters.push(RecoveredLetter {
                letter,
                id: l.id,
                attempts,
                at_ms,
                handler: handler.to_owned(),
                errors: String::from_utf8_lossy(errors).into_owned(),
            });
        }
    }
}
