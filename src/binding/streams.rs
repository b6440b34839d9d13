//! A Redis bus's link, as JavaScript drives it (`js/streams.ts`): started
//! by `initialize()`, fed emission batches, told which types it handles
//! and which slot each entry it took went into. What the link reports
//! (connection, emissions, entries, outages) is queued here and taken by
//! `streamsTake` after a weak notification, as the journal does.

use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Float64Array, Function, Uint32Array};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::bus::NativeBus;
use super::error::to_js;
use super::sink::{weak_callback, DeliveryCallback};
use crate::core::engine::Adopted;
use crate::core::error::BusError;
use crate::core::streams::{
    Entry, HandlerKey, Outgoing, ServerFacts, StreamEvents, StreamLink, MAX_ATTEMPT,
};

/// What happened since the last `streamsTake`.
#[napi(object)]
pub struct StreamChanges {
    /// Set once: the first connection's outcome.
    pub connected: Option<StreamConnected>,
    /// Per finished emission batch, `[seq, accepted]`.
    pub emitted: Vec<f64>,
    /// Per finished emission batch, its error ('' when none).
    pub emit_errors: Vec<String>,
    /// Entries taken: `[handle, lane, deliveries, handler, attempt, type]`
    /// each (`handler` 0 and `attempt` 0 for a new event; a retry from the
    /// group's retry set names its handler's id here and its attempt;
    /// `type` indexes `entry_types`). One typed array, not a JavaScript
    /// array built element by element.
    pub entries: Float64Array,
    /// The entries' types, each once.
    pub entry_types: Vec<String>,
    /// The entries' envelopes end to end (one buffer: a buffer per entry
    /// costs more than the rest of its way in), and each one's length
    /// (`0xFFFFFFFF`: the entry had none).
    pub envelopes: Buffer,
    pub envelope_lengths: Uint32Array,
    /// Outages, in order: the message when it went down, '' when back.
    pub link: Vec<String>,
}

/// A dead letter of the group.
#[napi(object)]
pub struct GroupLetterEntry {
    pub id: f64,
    /// The work stream it came from.
    pub stream: String,
    /// The event's envelope (`null`: the entry had none).
    pub envelope: Option<Buffer>,
    /// JSON: `{ handler, attempts, errors, timestamp }`.
    pub meta: String,
}

/// A handler of this process, as the group knows it.
#[napi(object)]
pub struct StreamHandler {
    pub id: u32,
    #[napi(js_name = "type")]
    pub type_name: String,
    /// Its stable key, the same in every process (`js/handlers.ts`).
    pub key: String,
}

#[napi(object)]
pub struct StreamConnected {
    pub error: Option<String>,
    pub version: String,
    pub eviction_policy: String,
}

struct Collected {
    changes: Mutex<PendingChanges>,
    notify: DeliveryCallback,
}

#[derive(Default)]
struct PendingChanges {
    connected: Option<Result<ServerFacts, String>>,
    emitted: Vec<(u64, u32, Option<String>)>,
    entries: Vec<Entry>,
    link: Vec<String>,
}

impl Collected {
    fn push(&self, f: impl FnOnce(&mut PendingChanges)) {
        f(&mut self.changes.lock());
        self.notify
            .call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

impl StreamEvents for Collected {
    fn connected(&self, result: Result<ServerFacts, String>) {
        self.push(|c| c.connected = Some(result));
    }

    fn emitted(&self, seq: u64, accepted: u32, error: Option<String>) {
        self.push(|c| c.emitted.push((seq, accepted, error)));
    }

    fn entries(&self, entries: Vec<Entry>) {
        self.push(|c| c.entries.extend(entries));
    }

    fn link(&self, down: Option<String>) {
        self.push(|c| c.link.push(down.unwrap_or_default()));
    }
}

/// What the bus's link reports (the engine holds the link itself).
pub struct Streams {
    collected: Arc<Collected>,
}

impl NativeBus {
    fn link(&self) -> napi::Result<&Arc<StreamLink>, String> {
        self.engine.streams().ok_or_else(|| {
            to_js(BusError::InvalidState(
                "this bus has no Redis link (backend.type is 'memory', or initialize() has not run)"
                    .into(),
            ))
        })
    }
}

#[napi]
impl NativeBus {
    /// Starts the Redis link of a bus with `backend.type: 'redis'`; it
    /// connects in the background and `onChange` is called (weakly) when
    /// `streamsTake` has something.
    #[napi]
    pub fn start_streams(&self, on_change: Function<(), ()>) -> napi::Result<(), String> {
        let config = self.current_config();
        if !config.backend.is_redis() {
            return Err(to_js(BusError::InvalidState(
                "backend.type is 'memory': there is no Redis link".into(),
            )));
        }
        let collected = Arc::new(Collected {
            changes: Mutex::new(PendingChanges::default()),
            notify: weak_callback(on_change)?,
        });
        let link = Arc::new(StreamLink::start(&config, collected.clone()).map_err(to_js)?);
        self.engine.attach_streams(link).map_err(to_js)?;
        *self.streams.lock() = Some(Streams { collected });
        Ok(())
    }

    /// What the link reported since the last call.
    #[napi]
    pub fn streams_take(&self) -> StreamChanges {
        let guard = self.streams.lock();
        let pending = guard
            .as_ref()
            .map(|s| std::mem::take(&mut *s.collected.changes.lock()))
            .unwrap_or_default();
        let mut out = StreamChanges {
            connected: pending.connected.map(|r| match r {
                Ok(f) => StreamConnected {
                    error: None,
                    version: f.version,
                    eviction_policy: f.eviction_policy,
                },
                Err(e) => StreamConnected {
                    error: Some(e),
                    version: String::new(),
                    eviction_policy: String::new(),
                },
            }),
            link: pending.link,
            emitted: Vec::new(),
            emit_errors: Vec::new(),
            entries: Float64Array::new(Vec::new()),
            entry_types: Vec::new(),
            envelopes: Buffer::from(Vec::new()),
            envelope_lengths: Uint32Array::new(Vec::new()),
        };
        for (seq, accepted, error) in pending.emitted {
            out.emitted.extend([seq as f64, accepted as f64]);
            out.emit_errors.push(error.unwrap_or_default());
        }
        let mut bytes = Vec::new();
        let mut lengths = Vec::with_capacity(pending.entries.len());
        let mut numbers = Vec::with_capacity(pending.entries.len() * 6);
        for e in pending.entries {
            // A batch has a handful of types: a scan beats a map.
            let type_index = match out.entry_types.iter().position(|t| **t == *e.type_name) {
                Some(i) => i,
                None => {
                    out.entry_types.push(e.type_name.to_string());
                    out.entry_types.len() - 1
                }
            };
            numbers.extend([
                e.handle as f64,
                e.lane as f64,
                e.deliveries as f64,
                e.handler as f64,
                e.attempt as f64,
                type_index as f64,
            ]);
            match e.envelope {
                Some(env) => {
                    lengths.push(env.len().min(u32::MAX as usize - 1) as u32);
                    bytes.extend_from_slice(&env);
                }
                None => lengths.push(u32::MAX),
            }
        }
        out.entries = Float64Array::new(numbers);
        out.envelopes = Buffer::from(bytes);
        out.envelope_lengths = Uint32Array::new(lengths);
        out
    }

    /// Adds events to the group: per event its lane and type, and its
    /// envelope's length in `envelopes` (all of them, end to end). Returns
    /// the batch's sequence number, under which `streamsTake` reports it.
    #[napi]
    pub fn streams_emit(
        &self,
        lanes: Uint32Array,
        types: Vec<String>,
        lengths: Uint32Array,
        envelopes: Buffer,
    ) -> napi::Result<f64, String> {
        let link = self.link()?;
        if lanes.len() != types.len() || lengths.len() != types.len() {
            return Err(to_js(BusError::InvalidArgument(
                "streamsEmit takes one lane, type and length per event".into(),
            )));
        }
        let mut at = 0usize;
        let mut events = Vec::with_capacity(types.len());
        for ((lane, type_name), len) in lanes.iter().zip(types).zip(lengths.iter()) {
            let end = at + *len as usize;
            let Some(bytes) = envelopes.get(at..end) else {
                return Err(to_js(BusError::InvalidArgument(
                    "streamsEmit: the lengths run past the envelopes".into(),
                )));
            };
            events.push(Outgoing {
                lane: (*lane).min(2) as u8,
                type_name,
                envelope: bytes.to_vec(),
            });
            at = end;
        }
        Ok(link.emit(events) as f64)
    }

    /// The types this process has handlers for (the streams it reads),
    /// and its handlers' keys (a retry from the group names its handler).
    #[napi]
    pub fn streams_handle(
        &self,
        types: Vec<String>,
        handlers: Vec<StreamHandler>,
    ) -> napi::Result<(), String> {
        let handlers = handlers
            .into_iter()
            .map(|h| HandlerKey {
                id: h.id,
                type_name: h.type_name,
                key: h.key,
            })
            .collect();
        self.link()?.handle_types(types, handlers);
        Ok(())
    }

    /// Entries that do not go into the ring: taken over from a dead
    /// process, retries from the group's retry set, or new ones the ring
    /// had no room for. `[slot, handle, typeId, lane, size, attempt,
    /// handler]` each (bound already); each runs as `attempt`, for `handler`
    /// (0: every handler of its type), with the earlier errors its entry
    /// carries.
    #[napi]
    pub fn streams_adopt(&self, flat: Float64Array) -> napi::Result<(), String> {
        const FIELDS: usize = 7;
        let link = self.link()?;
        if !flat.len().is_multiple_of(FIELDS) {
            return Err(to_js(BusError::InvalidArgument(format!(
                "streamsAdopt takes groups of {FIELDS} numbers, got {}",
                flat.len()
            ))));
        }
        let events: Vec<Adopted> = flat
            .chunks_exact(FIELDS)
            .map(|f| {
                let attempt = (f[5] as u32).min(MAX_ATTEMPT);
                Adopted {
                    slot: f[0] as u32,
                    id: 0,
                    type_id: f[2] as u32,
                    lane: (f[3] as u8).min(2),
                    size: f[4] as u32,
                    attempt,
                    due_ms: 0,
                    handler: f[6] as u32,
                    errors: link.adopting(f[1] as u64, attempt),
                }
            })
            .collect();
        self.engine.adopt(&events);
        Ok(())
    }

    /// Entries JavaScript put into slots: `[slot, handle]` pairs.
    #[napi]
    pub fn streams_bind(&self, pairs: Float64Array) -> napi::Result<(), String> {
        let link = self.link()?;
        for p in pairs.chunks_exact(2) {
            link.bind(p[0] as u32, p[1] as u64);
        }
        Ok(())
    }

    /// Events that will not run here after all (the bus shut down):
    /// `[slot, attempt]` of the delivery each has left over. Their entries
    /// go back to the group at once.
    #[napi]
    pub fn streams_release(&self, pairs: Uint32Array) -> napi::Result<(), String> {
        let link = self.link()?;
        let slots: Vec<(u32, u32)> = pairs.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        link.release(&slots);
        Ok(())
    }

    /// The group's dead letters, oldest first, as last read from Redis.
    #[napi]
    pub fn streams_letters(&self) -> napi::Result<Vec<GroupLetterEntry>, String> {
        Ok(self
            .link()?
            .group_letters()
            .into_iter()
            .map(|l| GroupLetterEntry {
                id: l.id as f64,
                stream: l.stream,
                envelope: l.envelope.map(Buffer::from),
                meta: l.meta,
            })
            .collect())
    }

    /// Replays the group's dead letter `id`; false when it is not there.
    #[napi]
    pub fn streams_replay_letter(&self, id: f64) -> napi::Result<bool, String> {
        Ok(self.link()?.replay_letter(id as u64))
    }

    /// Removes the group's dead letter `id` (all without one); returns how
    /// many of those last read.
    #[napi]
    pub fn streams_remove_letters(&self, id: Option<f64>) -> napi::Result<u32, String> {
        Ok(self.link()?.remove_letters(id.map(|i| i as u64)) as u32)
    }

    /// Takes nothing more from the group (shutdown began).
    #[napi]
    pub fn streams_stop_reading(&self) {
        if let Some(l) = self.engine.streams() {
            l.stop_reading();
        }
    }

    /// Sends what is queued and closes the link.
    #[napi]
    pub fn streams_close(&self) {
        if let Some(l) = self.engine.streams() {
            l.close();
        }
    }

    /// The group's state as last read, and this process's counters.
    #[napi]
    pub fn streams_state(&self) -> Value {
        let Some(l) = self.engine.streams() else {
            return Value::Null;
        };
        let g = l.group_state();
        let c = l.counters();
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        json!({
            "consumer": l.consumer(),
            "down": l.is_down(),
            "held": l.held(),
            "group": {
                "depth": g.depth,
                "pending": g.pending,
                "consumers": g.consumers,
                "unhandledTypes": g.unhandled_types.iter().map(|(t, n)| json!({ "type": t, "waiting": n })).collect::<Vec<_>>(),
                "retrying": g.retrying,
                "readAgoMs": l.read_ago_ms().map_or(-1.0, |ms| ms as f64),
            },
            "deadLetters": l.letter_count(),
            "emitted": n(&c.emitted),
            "taken": n(&c.taken),
            "reclaimed": n(&c.reclaimed),
            "settled": n(&c.settled),
            "renewed": n(&c.renewed),
            "lost": n(&c.lost),
            "errors": n(&c.errors),
            "retried": n(&c.retried),
            "promoted": n(&c.promoted),
            "retriesGone": n(&c.retries_gone),
            "unknownHandlers": n(&c.unknown_handlers),
        })
    }
}
