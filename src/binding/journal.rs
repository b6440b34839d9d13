//! A durable bus's journal, as JavaScript drives it: opened (and replayed)
//! by `initialize()`, fed batches of accepted events, told which recovered
//! events it put back into slots.

use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Float64Array, Function, Uint32Array};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use super::bus::NativeBus;
use super::error::to_js;
use super::sink::{weak_callback, DeliveryCallback};
use crate::core::config::Durability;
use crate::core::engine::Adopted;
use crate::core::error::BusError;
use crate::core::journal::{DurableNotifier, Journal, JournalOptions, Recovered};
use crate::core::schedule::dead_letters::{AttemptError, DeadLetter};

/// Numbers per event in `RecoveredJournal::numbers` and `::fields`.
const NUMBERS: usize = 3;
const FIELDS: usize = 10;
/// Fields per event `adoptRecovered` takes.
const ADOPT_FIELDS: usize = 7;

/// What `openJournal` found.
#[napi(object)]
pub struct RecoveredJournal {
    /// Per event, `[journal id, due (Unix ms), timestamp]`.
    pub numbers: Float64Array,
    /// Per event, `[flags, type index, buffer, start, id end, correlation
    /// start, correlation end, payload start, end, attempt]`; flags are
    /// `lane | encoding << 2 | open << 4` (encoding 0 JSON, 1 structured
    /// clone, 2 and 3 the whole event as isolates read it, in JSON or
    /// structured clone; open 0 when only dead letters hold the event). In
    /// `buffers[buffer]`, `[start..id end]` is the event id, `[correlation
    /// start..end]` the correlation id (empty: the event id), `[payload
    /// start..end]` the payload. Open events first, in the order they were
    /// accepted, then those only dead letters hold.
    pub fields: Uint32Array,
    pub types: Vec<String>,
    /// The journal's segments as read (the events are not copied out).
    pub buffers: Vec<Buffer>,
    pub letters: Vec<RecoveredLetterEntry>,
    pub records: f64,
    pub truncated: u32,
    pub truncated_bytes: f64,
    pub corruptions: Vec<CorruptionEntry>,
}

#[napi(object)]
pub struct RecoveredLetterEntry {
    pub letter: f64,
    /// The journal id of the event it holds.
    pub id: f64,
    pub attempts: u32,
    pub timestamp: f64,
    pub handler: String,
    /// JSON of its attempts' errors.
    pub errors: String,
}

#[napi(object)]
pub struct CorruptionEntry {
    pub segment: u32,
    pub offset: f64,
    pub reason: String,
    pub skipped: f64,
}

struct TsfnDurable(DeliveryCallback);

impl DurableNotifier for TsfnDurable {
    fn changed(&self) {
        self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

fn converted(rec: Recovered) -> RecoveredJournal {
    let mut numbers = Vec::with_capacity(rec.events.len() * NUMBERS);
    let mut fields = Vec::with_capacity(rec.events.len() * FIELDS);
    let offset = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    for e in &rec.events {
        numbers.extend_from_slice(&[e.id as f64, e.due_ms as f64, e.timestamp]);
        let flags = u32::from(e.lane) | u32::from(e.encoding & 3) << 2 | u32::from(e.open) << 4;
        fields.extend_from_slice(&[
            flags,
            e.type_index,
            e.buffer,
            offset(e.start),
            offset(e.id_end),
            offset(e.correlation_start),
            offset(e.correlation_end),
            offset(e.payload_start),
            offset(e.end),
            e.attempt,
        ]);
    }
    RecoveredJournal {
        numbers: Float64Array::new(numbers),
        fields: Uint32Array::new(fields),
        types: rec.types,
        buffers: rec.buffers.into_iter().map(Buffer::from).collect(),
        letters: rec
            .letters
            .into_iter()
            .map(|l| RecoveredLetterEntry {
                letter: l.letter as f64,
                id: l.id as f64,
                attempts: l.attempts,
                timestamp: l.at_ms as f64,
                handler: l.handler,
                errors: l.errors,
            })
            .collect(),
        records: rec.records as f64,
        truncated: rec.truncated as u32,
        truncated_bytes: rec.truncated_bytes as f64,
        corruptions: rec
            .corruptions
            .into_iter()
            .map(|c| CorruptionEntry {
                segment: c.segment,
                offset: c.offset as f64,
                reason: c.reason.to_string(),
                skipped: c.skipped as f64,
            })
            .collect(),
    }
}

impl NativeBus {
    fn open_journal_handle(&self) -> Result<&Arc<Journal>, BusError> {
        self.engine
            .journal()
            .ok_or_else(|| BusError::InvalidState("this bus has no open journal".into()))
    }
}

#[napi]
impl NativeBus {
    /// Locks and replays the journal of a durable bus and attaches it to
    /// the engine. `onChange` is called (weakly) when accepted batches
    /// become durable or the journal fails.
    #[napi]
    pub fn open_journal(
        &self,
        on_change: Function<(), ()>,
    ) -> napi::Result<RecoveredJournal, String> {
        let config = self.current_config();
        if config.durability == Durability::Memory {
            return Err(to_js(BusError::InvalidState(
                "durability is 'memory': there is no journal".into(),
            )));
        }
        let mb = |v: f64| (v * 1024.0 * 1024.0) as u64;
        let (journal, recovered) = Journal::open(JournalOptions {
            dir: PathBuf::from(&config.journal.dir),
            max_disk_bytes: mb(config.journal.max_disk_mb),
            segment_bytes: mb(config.journal.segment_mb),
            fsync: config.durability == Durability::Fsync,
            logs: self.engine.logs().clone(),
        })
        .map_err(to_js)?;
        journal.set_notifier(Arc::new(TsfnDurable(weak_callback(on_change)?)));
        self.engine.skip_dead_letter_ids(recovered.next_letter);
        self.engine
            .attach_journal(Arc::new(journal))
            .map_err(to_js)?;
        Ok(converted(recovered))
    }

    /// Journals a packed batch of accepted events; returns its sequence
    /// number (see `journalDurable`). Throws `JOURNAL_ERROR` once a write
    /// failed.
    #[napi]
    pub fn journal_accept(&self, packed: Buffer) -> napi::Result<f64, String> {
        let journal = self.open_journal_handle().map_err(to_js)?;
        journal
            .accept(&packed)
            .map(|seq| seq as f64)
            .map_err(|e| to_js(BusError::Journal(e)))
    }

    /// Batches durable so far.
    #[napi]
    pub fn journal_durable(&self) -> f64 {
        self.engine
            .journal()
            .map_or(0.0, |j| j.durable_seq() as f64)
    }

    /// Why the journal stopped writing, if it did.
    #[napi]
    pub fn journal_failure(&self) -> Option<String> {
        self.engine.journal().and_then(|j| j.failure())
    }

    /// Disk bytes accepted events may still take.
    #[napi]
    pub fn journal_room(&self) -> f64 {
        self.engine.journal().map_or(0.0, |j| j.room() as f64)
    }

    /// Recovered events JavaScript put into slots: `[slot, id, type id,
    /// lane, size, attempt, due]` each, in the order they run.
    #[napi]
    pub fn adopt_recovered(&self, flat: Float64Array) -> napi::Result<(), String> {
        if !flat.len().is_multiple_of(ADOPT_FIELDS) {
            return Err(to_js(BusError::InvalidArgument(format!(
                "adoptRecovered takes groups of {ADOPT_FIELDS} numbers, got {}",
                flat.len()
            ))));
        }
        let events: Vec<Adopted> = flat
            .chunks_exact(ADOPT_FIELDS)
            .map(|f| Adopted {
                slot: f[0] as u32,
                id: f[1] as u64,
                type_id: f[2] as u32,
                lane: (f[3] as u8).min(2),
                size: f[4] as u32,
                attempt: f[5] as u32,
                due_ms: f[6] as u64,
                handler: 0,
                errors: Vec::new(),
            })
            .collect();
        self.engine.adopt(&events);
        Ok(())
    }

    /// A recovered dead letter whose event JavaScript put into `slot`.
    #[napi]
    pub fn adopt_letter(
        &self,
        slot: u32,
        type_id: u32,
        lane: u32,
        size: u32,
        entry: RecoveredLetterEntry,
    ) {
        let errors: Vec<AttemptError> = serde_json::from_str(&entry.errors).unwrap_or_default();
        let letter = DeadLetter {
            id: entry.letter as u64,
            slot,
            // Handler ids do not outlive the process: a replay runs every
            // handler of the type.
            handler_id: 0,
            handler: entry.handler,
            type_id,
            lane: lane.min(2) as u8,
            size,
            arena: 0,
            attempts: entry.attempts,
            errors,
            timestamp: entry.timestamp as u64,
        };
        self.engine.adopt_letter(entry.id as u64, letter);
    }

    /// Writes and syncs what is queued and releases the directory.
    #[napi]
    pub fn close_journal(&self) -> napi::Result<(), String> {
        match self.engine.journal() {
            Some(j) => j.close().map_err(|e| to_js(BusError::Journal(e))),
            None => Ok(()),
        }
    }
}
