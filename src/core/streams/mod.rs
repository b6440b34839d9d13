//! The Redis Streams backend: the same bus shared by many processes.
//!
//! Events wait in Redis, not in this process. Each (priority, type) has a
//! stream, `{bootify:<name>}:<priority>:<type>`, all under one hash tag, and
//! every bus of the same name reads them as one consumer group, so each
//! event goes to one process, and a process reads only the streams of the
//! types it has handlers for (a process that only emits never takes any).
//! What a process reads goes into its own engine as recovered events do
//! (`Engine::adopt_streamed`): priorities, the window, retries and their
//! backoff, dead letters and metrics work as in-process. When the books
//! report an event finished, its entry is acknowledged and deleted
//! (`scripts::SETTLE`); until then this process renews its claim, and a
//! process that dies leaves its entries pending for another to take over
//! once they have been idle `claimIdleMs`, as one more delivery.
//!
//! Tokio owns the I/O, on one thread of this bus (`io.rs`): commands go
//! through the `redis` crate's connection manager, which reconnects; the
//! blocking reads have their own connection, as a blocking `XREADGROUP`
//! holds up every command behind it. JavaScript's calls here never wait
//! for Redis: they queue a command, and `StreamEvents` reports the result.

mod io;
mod read_ahead;
pub mod reply;
mod scripts;
mod upkeep;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

use crate::core::config::Config;
use crate::core::error::BusError;
use crate::core::schedule::books::{Finish, Report};
use crate::core::schedule::dead_letters::AttemptError;

/// The streams' priority names, by lane.
pub const LANE_NAMES: [&str; 3] = ["critical", "normal", "low"];
/// The consumer group every bus of a name joins.
pub const GROUP: &str = "bootify";

/// An event to add: its lane, type and envelope (`js/wire-codec.ts`).
pub struct Outgoing {
    pub lane: u8,
    pub type_name: String,
    pub envelope: Vec<u8>,
}

/// An entry this process took from the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Names it in `StreamLink::bind`.
    pub handle: u64,
    pub lane: u8,
    pub type_name: Arc<str>,
    /// Its envelope; `None` when the entry carries none (it goes to the
    /// dead-letter queue as undecodable).
    pub envelope: Option<Vec<u8>>,
    /// Times the group has delivered it, this one included: more than one
    /// after a process holding it died.
    pub deliveries: u32,
    /// A retry from the group's retry set: the one handler it is for (its
    /// id here), else 0 (every handler of the type).
    pub handler: u32,
    /// The attempt it is (1 = first retry); 0 for a new event.
    pub attempt: u32,
}

/// What the server said at connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFacts {
    pub version: String,
    /// `maxmemory-policy`; empty when the server does not say.
    pub eviction_policy: String,
}

/// How the link reports back; called on its I/O thread.
pub trait StreamEvents: Send + Sync + 'static {
    /// The first connection succeeded, or failed (the bus does not start).
    fn connected(&self, result: Result<ServerFacts, String>);
    /// Emission batch `seq`: its first `accepted` events are in the group;
    /// the rest were refused because the group is full, or, when `error`
    /// is set, could not be sent.
    fn emitted(&self, seq: u64, accepted: u32, error: Option<String>);
    /// Entries taken from the group, highest priority first.
    fn entries(&self, entries: Vec<Entry>);
    /// Redis became unreachable (`Some(why)`) or reachable again (`None`).
    fn link(&self, down: Option<String>);
}

/// The group as Redis last reported it (refreshed about once a second).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Entries in each priority's streams, pending ones included.
    pub depth: [u64; 3],
    /// Delivered to a process and not yet acknowledged.
    pub pending: u64,
    pub consumers: u64,
    /// Waiting in streams of types this process has no handler for.
    pub unhandled_types: Vec<(String, u64)>,
    /// Retries waiting in the group's retry set.
    pub retrying: u64,
    /// When it was read (ms since the link started); 0: not yet.
    pub read_at_ms: u64,
}

/// An entry this process holds: where it is, and whose slot it is in.
#[derive(Debug, Clone)]
struct Held {
    key: Arc<str>,
    id: String,
    renewed: Instant,
    /// Deliveries when it was taken (this one included).
    deliveries: u32,
    /// Retries of its handlers handed to the group's retry set.
    handed: u32,
    /// The attempt the engine was given it as (0 unless adopted: a fresh
    /// event). Left over at shutdown still at this attempt, it never ran
    /// here.
    adopted_attempt: u32,
    /// A retry's earlier errors, until the engine takes the entry.
    errors: Vec<AttemptError>,
}

#[derive(Default)]
struct Books {
    held: IdMap<u64, Held>,
    by_slot: IdMap<u32, u64>,
}

/// Handles and slots are integers this process hands out, not input anyone
/// chooses: one multiply spreads them over the table (an odd factor keeps
/// consecutive ones in distinct buckets), where SipHash's resistance to
/// chosen keys cost most of the books' time per event.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(ID_MIX);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(ID_MIX);
    }
}

/// 2^64 / the golden ratio, odd.
const ID_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The stable keys of this process's handlers: a retry names its handler
/// by key, the same in every process of the group (`js/handlers.ts` derives
/// it from the handler's name).
#[derive(Default)]
struct HandlerKeys {
    by_id: HashMap<u32, Arc<str>>,
    /// (type, key) to id.
    by_key: HashMap<(String, String), u32>,
    /// Per type, its handlers' keys (for the error naming what is here).
    of_type: HashMap<String, Vec<String>>,
}

/// A handler of this process: its id, its type and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerKey {
    pub id: u32,
    pub type_name: String,
    pub key: String,
}

/// A failed handler's retry, on its way to the group's retry set.
#[derive(Debug, Clone)]
pub(crate) struct RetryOut {
    key: Arc<str>,
    id: String,
    delay_ms: u64,
    handler: Arc<str>,
    attempt: u32,
    /// Its earlier errors (JSON).
    errors: String,
}

/// Names of the keys of one bus.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(name: &str) -> Self {
        Keys {
            prefix: format!("{{bootify:{name}}}"),
        }
    }

    pub fn stream(&self, lane: u8, type_name: &str) -> String {
        let lane = LANE_NAMES.get(lane as usize).copied().unwrap_or("low");
        format!("{}:{lane}:{type_name}", self.prefix)
    }

    pub fn depth(&self) -> String {
        format!("{}:depth", self.prefix)
    }

    pub fn types(&self) -> String {
        format!("{}:types", self.prefix)
    }

    /// The group's dead letters (a stream capped at `deadLetterQueueSize`).
    pub fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// The counter dead letters are numbered from.
    pub fn letter_ids(&self) -> String {
        format!("{}:dead-ids", self.prefix)
    }

    /// Retries waiting for their backoff: retry names by due time.
    pub fn retries(&self) -> String {
        format!("{}:retries", self.prefix)
    }

    /// Each waiting retry's stream, envelope, handler, attempt and errors.
    pub fn retry_data(&self) -> String {
        format!("{}:retry-data", self.prefix)
    }

    /// Whether `key` names one of this bus's work streams.
    pub fn is_stream(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(lane, ty)| LANE_NAMES.contains(&lane) && !ty.is_empty())
    }
}

/// A dead letter of the group, as last read from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLetter {
    /// Its number (its entry id is `<id>-0`).
    pub id: u64,
    /// The work stream it came from (a replay goes back there).
    pub stream: String,
    pub envelope: Option<Vec<u8>>,
    /// JSON: the failed handler, attempts, errors, timestamp.
    pub meta: String,
}

/// The highest attempt an entry from Redis is taken as: past
/// `retryAttempts` (at most 10) every number means the same, and the engine
/// counts on one more still fitting.
pub const MAX_ATTEMPT: u32 = 1000;

pub(crate) enum Command {
    Emit {
        seq: u64,
        events: Vec<Outgoing>,
    },
    Settle(Vec<(Arc<str>, String)>),
    /// Entries taken and never started: handed back to the group.
    Release(Vec<(Arc<str>, String, u32)>),
    /// A dead-lettered event's entry and its letters (JSON, one per failed
    /// handler): into the dead-letter stream, then settled.
    Letter(Arc<str>, String, Vec<String>),
    /// A dead letter back to its work stream.
    Replay(GroupLetter),
    /// Dead letters deleted (`None`: all).
    Remove(Option<u64>),
    /// Failed handlers' retries, into the group's retry set.
    Retry(Vec<RetryOut>),
}

/// A dead-lettered event's entry (stream, id) and its letters.
pub(crate) type Unsent = (Arc<str>, String, Vec<String>);

/// What JavaScript's thread and the I/O thread share.
pub(crate) struct Shared {
    url: String,
    keys: Keys,
    consumer: String,
    claim_idle_ms: u64,
    aging_ms: u64,
    max_queue: u32,
    /// Entries this process holds at least, when its handlers are slow or
    /// idle (`read_ahead`).
    prefetch: usize,
    /// Entries this process may hold now, at its pace (`read_ahead`).
    window: AtomicUsize,
    events: Arc<dyn StreamEvents>,
    books: Mutex<Books>,
    next_handle: AtomicU64,
    /// Types with a handler here; the reader reads their streams.
    types: Mutex<Vec<String>>,
    handlers: Mutex<HandlerKeys>,
    /// Retries whose script failed (Redis unreachable), sent again; their
    /// entries are not settled before (the retry copies the envelope).
    unsent_retries: Mutex<Vec<RetryOut>>,
    /// A retry was scheduled: the promoter looks at the set again.
    promote: Notify,
    types_changed: Notify,
    /// An entry was settled: the reader may have room again.
    settled: Notify,
    reading: AtomicBool,
    closing: AtomicBool,
    /// Redis is unreachable (the last command failed for it).
    down: AtomicBool,
    group: Mutex<GroupState>,
    /// The group's dead letters, oldest first, as last read.
    letters: Mutex<Vec<GroupLetter>>,
    max_letters: u32,
    /// Dead-lettered events whose letters the engine is handing over.
    lettering: Mutex<HashMap<u32, (Arc<str>, String)>>,
    /// Letters whose script failed (Redis unreachable), sent again.
    unsent_letters: Mutex<Vec<Unsent>>,
    /// Slots whose entry another process took over (renewal found it
    /// gone): their end settles nothing, and their letters are dropped.
    lost_slots: Mutex<std::collections::HashSet<u32>>,
    started: Instant,
    /// Settles that failed (Redis unreachable), sent again later.
    unsettled: Mutex<Vec<(Arc<str>, String)>>,
    counters: Counters,
}

/// This process's traffic with the group.
#[derive(Default)]
pub struct Counters {
    pub emitted: AtomicU64,
    pub taken: AtomicU64,
    pub reclaimed: AtomicU64,
    pub settled: AtomicU64,
    pub renewed: AtomicU64,
    /// Held entries another process took over (this one was cut off).
    pub lost: AtomicU64,
    pub errors: AtomicU64,
    /// Failed handlers' retries put in the group's retry set.
    pub retried: AtomicU64,
    /// Due retries this process moved to their streams.
    pub promoted: AtomicU64,
    /// Retries whose data was gone from Redis when due (deleted by
    /// something else than this package).
    pub retries_gone: AtomicU64,
    /// Retries naming a handler key no handler here has: dead-lettered.
    pub unknown_handlers: AtomicU64,
}

pub struct StreamLink {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Command>,
    next_seq: AtomicU64,
    /// The I/O thread, and word from it that it has ended.
    thread: Mutex<Option<(std::thread::JoinHandle<()>, std::sync::mpsc::Receiver<()>)>>,
}

/// How long `close` waits for the I/O thread: the JavaScript thread calls
/// it, and a Redis that stopped answering would hold it for the response
/// timeout (seconds) per command still queued.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl StreamLink {
    /// Starts the link's thread, which connects and then reports through
    /// `events.connected`.
    pub fn start(config: &Config, events: Arc<dyn StreamEvents>) -> Result<Self, BusError> {
        let b = &config.backend;
        let consumer = if b.consumer.is_empty() {
            default_consumer()
        } else {
            b.consumer.clone()
        };
        let prefetch = (config.concurrency as usize * 4).clamp(16, 16_384);
        let shared = Arc::new(Shared {
            url: b.url.clone(),
            keys: Keys::new(&b.name),
            consumer,
            claim_idle_ms: b.claim_idle_ms as u64,
            aging_ms: config.aging_ms as u64,
            max_queue: config.max_queue_size,
            prefetch,
            window: AtomicUsize::new(prefetch),
            events,
            books: Mutex::new(Books::default()),
            next_handle: AtomicU64::new(1),
            types: Mutex::new(Vec::new()),
            handlers: Mutex::new(HandlerKeys::default()),
            unsent_retries: Mutex::new(Vec::new()),
            promote: Notify::new(),
            types_changed: Notify::new(),
            settled: Notify::new(),
            reading: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            down: AtomicBool::new(false),
            group: Mutex::new(GroupState::default()),
            letters: Mutex::new(Vec::new()),
            max_letters: config.dead_letter_queue_size,
            lettering: Mutex::new(HashMap::new()),
            unsent_letters: Mutex::new(Vec::new()),
            lost_slots: Mutex::new(std::collections::HashSet::new()),
            started: Instant::now(),
            unsettled: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let io_shared = shared.clone();
        let (ended, on_end) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bootify-redis".into())
            .spawn(move || {
                io::run(io_shared, rx);
                let _ = ended.send(());
            })
            .map_err(|e| {
                BusError::InvalidState(format!("could not start the Redis thread: {e}"))
            })?;
        Ok(StreamLink {
            shared,
            tx,
            next_seq: AtomicU64::new(1),
            thread: Mutex::new(Some((thread, on_end))),
        })
    }

    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }

    /// Queues an emission batch; `StreamEvents::emitted` reports it under
    /// the returned sequence number.
    pub fn emit(&self, events: Vec<Outgoing>) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Command::Emit { seq, events }).is_err() {
            self.shared
                .events
                .emitted(seq, 0, Some("the bus's Redis link is closed".into()));
        }
        seq
    }

    /// The types this process has handlers for now, and those handlers'
    /// keys.
    pub fn handle_types(&self, mut types: Vec<String>, handlers: Vec<HandlerKey>) {
        types.sort();
        types.dedup();
        let mut keys = HandlerKeys::default();
        for h in handlers {
            keys.of_type
                .entry(h.type_name.clone())
                .or_default()
                .push(h.key.clone());
            keys.by_id.insert(h.id, Arc::from(h.key.as_str()));
            keys.by_key.insert((h.type_name, h.key), h.id);
        }
        *self.shared.handlers.lock() = keys;
        *self.shared.types.lock() = types;
        self.shared.types_changed.notify_one();
    }

    /// The stable key of handler `id` ('' when it has none here).
    pub fn key_of(&self, id: u32) -> String {
        self.shared
            .handlers
            .lock()
            .by_id
            .get(&id)
            .map_or_else(String::new, |k| k.to_string())
    }

    /// A failed handler of the event in `slot` is to run again as
    /// `attempt` after `delay`: its retry goes to the group's retry set, for
    /// whichever process of the group is free when it is due, and this
    /// process's work on it ends. False when the event is not one this
    /// process holds for the group (or the handler has no key): the engine
    /// schedules the retry here.
    pub fn retry(
        &self,
        slot: u32,
        handler: u32,
        attempt: u32,
        delay: std::time::Duration,
        errors: &[AttemptError],
    ) -> bool {
        let Some(handler) = self.shared.handlers.lock().by_id.get(&handler).cloned() else {
            return false;
        };
        // The books' lock is held across the send, so the event's finish
        // (which settles its entry) cannot overtake its retry.
        let mut books = self.shared.books.lock();
        let Some(handle) = books.by_slot.get(&slot).copied() else {
            return false;
        };
        let Some(held) = books.held.get_mut(&handle) else {
            return false;
        };
        let out = RetryOut {
            key: held.key.clone(),
            id: held.id.clone(),
            delay_ms: delay.as_millis() as u64,
            handler,
            attempt,
            errors: serde_json::to_string(errors).unwrap_or_else(|_| "[]".into()),
        };
        // A closed link (the bus shut down) takes nothing: the engine decides.
        if self.tx.send(Command::Retry(vec![out])).is_err() {
            return false;
        }
        held.handed += 1;
        true
    }

    /// Entry `handle` goes to the engine as `attempt`: returns its earlier
    /// errors (none when another process took it over meanwhile; it runs
    /// here too, counted as lost).
    pub fn adopting(&self, handle: u64, attempt: u32) -> Vec<AttemptError> {
        let mut books = self.shared.books.lock();
        let Some(h) = books.held.get_mut(&handle) else {
            return Vec::new();
        };
        h.adopted_attempt = attempt;
        std::mem::take(&mut h.errors)
    }

    /// Entry `handle` is now in `slot`: settled when the slot's event
    /// finishes.
    pub fn bind(&self, slot: u32, handle: u64) {
        self.shared.books.lock().by_slot.insert(slot, handle);
    }

    /// The books' reports: finished events' entries are settled. An event
    /// that found no handler (its handler went away meanwhile) goes back to
    /// the group, for a process that has one. An event that succeeded here
    /// but handed a retry to the group is reported `HandedOver` instead.
    /// Returns the slots of events that ended as dead letters: the engine
    /// hands their letters to `letters`, which moves them into the group's
    /// dead-letter stream.
    pub fn reported(&self, reports: &mut [Report]) -> Vec<u32> {
        let mut settle = Vec::new();
        let mut back = Vec::new();
        let mut lettered = Vec::new();
        {
            let mut books = self.shared.books.lock();
            for r in reports.iter_mut() {
                let Some(finish) = r.finished else { continue };
                let Some(handle) = books.by_slot.remove(&r.slot) else {
                    // Taken over by another process: its letters are that
                    // run's to make.
                    if self.shared.lost_slots.lock().remove(&r.slot)
                        && finish == Finish::DeadLettered
                    {
                        lettered.push(r.slot);
                    }
                    continue;
                };
                let Some(held) = books.held.remove(&handle) else {
                    continue;
                };
                match finish {
                    Finish::Unhandled => {
                        let counted = held.deliveries.saturating_sub(1);
                        back.push((held.key, held.id, counted));
                    }
                    Finish::DeadLettered => {
                        self.shared
                            .lettering
                            .lock()
                            .insert(r.slot, (held.key, held.id));
                        lettered.push(r.slot);
                    }
                    Finish::Succeeded | Finish::HandedOver => {
                        if held.handed > 0 {
                            r.finished = Some(Finish::HandedOver);
                        }
                        settle.push((held.key, held.id));
                    }
                }
            }
        }
        if !settle.is_empty() {
            let _ = self.tx.send(Command::Settle(settle));
        }
        if !back.is_empty() {
            let _ = self.tx.send(Command::Release(back));
        }
        self.shared.settled.notify_one();
        lettered
    }

    /// The letters (JSON, one per failed handler) of the dead-lettered
    /// event in `slot`, which `reported` returned: they go to the group's
    /// dead-letter stream and the entry is settled.
    pub fn letters(&self, slot: u32, letters: Vec<String>) {
        let Some((key, id)) = self.shared.lettering.lock().remove(&slot) else {
            return;
        };
        // No letter left (evicted here): the event is settled, not deleted
        // by a script that would write nothing.
        let command = if letters.is_empty() {
            Command::Settle(vec![(key, id)])
        } else {
            Command::Letter(key, id, letters)
        };
        let _ = self.tx.send(command);
    }

    /// The group's dead letters, oldest first, as last read (about once a
    /// second, and after this process's own changes).
    pub fn group_letters(&self) -> Vec<GroupLetter> {
        self.shared.letters.lock().clone()
    }

    pub fn letter_count(&self) -> usize {
        self.shared.letters.lock().len()
    }

    /// Replays dead letter `id` of the group (as last read); false when it
    /// is not there.
    pub fn replay_letter(&self, id: u64) -> bool {
        let letter = {
            let mut letters = self.shared.letters.lock();
            let Some(at) = letters.iter().position(|l| l.id == id) else {
                return false;
            };
            letters.remove(at)
        };
        let _ = self.tx.send(Command::Replay(letter));
        true
    }

    /// Removes dead letter `id` of the group (`None`: all); returns how
    /// many of those last read.
    pub fn remove_letters(&self, id: Option<u64>) -> usize {
        let removed = {
            let mut letters = self.shared.letters.lock();
            let before = letters.len();
            letters.retain(|l| id.is_some_and(|id| l.id != id));
            before - letters.len()
        };
        if removed > 0 || id.is_none() {
            let _ = self.tx.send(Command::Remove(id));
        }
        removed
    }

    /// The events in `slots` will not run (again) here (the bus shut
    /// down): their entries go back to the group at once, ready for another
    /// process. `(slot, attempt)`: the attempt left over. One still at the
    /// attempt it was taken as never ran here, and this delivery is not
    /// counted; one past it (a retry was waiting here) ran, and it is.
    pub fn release(&self, slots: &[(u32, u32)]) {
        let mut back = Vec::new();
        {
            let mut books = self.shared.books.lock();
            for &(slot, attempt) in slots {
                let Some(handle) = books.by_slot.remove(&slot) else {
                    continue;
                };
                if let Some(h) = books.held.remove(&handle) {
                    let ran = attempt != h.adopted_attempt;
                    let counted = h.deliveries.saturating_sub(u32::from(!ran));
                    back.push((h.key, h.id, counted));
                }
            }
        }
        if !back.is_empty() {
            let _ = self.tx.send(Command::Release(back));
        }
    }

    /// Takes nothing more from the group (shutdown has begun).
    pub fn stop_reading(&self) {
        // Under the books' lock: see `io::hand`.
        let books = self.shared.books.lock();
        self.shared.reading.store(false, Ordering::SeqCst);
        drop(books);
        self.shared.types_changed.notify_one();
    }

    pub fn group_state(&self) -> GroupState {
        self.shared.group.lock().clone()
    }

    /// Whether Redis is unreachable now.
    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// How long ago the group's state was read; `None` before the first
    /// reading.
    pub fn read_ago_ms(&self) -> Option<u64> {
        let at = self.shared.group.lock().read_at_ms;
        (at > 0).then(|| (self.shared.started.elapsed().as_millis() as u64).saturating_sub(at))
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Entries held here, taken and not yet settled.
    pub fn held(&self) -> usize {
        self.shared.books.lock().held.len()
    }

    /// Sends what is queued, then closes the connections and joins the
    /// thread, waiting at most `CLOSE_WAIT` for a Redis that does not
    /// answer. Entries still held stay pending in the group.
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Entries on their way to the engine as it stopped were never bound
        // to an event, so never started: back to the group at once, not
        // left pending for `claimIdleMs`. No more come in once `reading`
        // is false under the books' lock (`io::hand`).
        let unbound: Vec<_> = {
            let mut books = self.shared.books.lock();
            self.shared.reading.store(false, Ordering::SeqCst);
            let bound: std::collections::HashSet<u64> = books.by_slot.values().copied().collect();
            let handles: Vec<u64> = books
                .held
                .keys()
                .filter(|h| !bound.contains(h))
                .copied()
                .collect();
            handles
                .into_iter()
                .filter_map(|h| books.held.remove(&h))
                .map(|h| (h.key, h.id, h.deliveries.saturating_sub(1)))
                .collect()
        };
        if !unbound.is_empty() {
            let _ = self.tx.send(Command::Release(unbound));
        }
        self.shared.types_changed.notify_one();
        self.shared.settled.notify_one();
        // A closed channel ends the command loop once it has drained it.
        let _ = self.tx.send(Command::Settle(Vec::new()));
        if let Some((thread, on_end)) = self.thread.lock().take() {
            match on_end.recv_timeout(CLOSE_WAIT) {
                // Redis does not answer: the thread finishes (or fails) what
                // is queued on its own; what it cannot send stays pending in
                // the group, for another process to take over.
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => drop(thread),
                _ => {
                    let _ = thread.join();
                }
            }
        }
    }
}

impl Drop for StreamLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// `<host>-<pid>-<random>`: unique per process, readable in `XINFO`.
fn default_consumer() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(48)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{:x}", std::process::id(), nanos)
}

#[cfg(test)]
mod tests;
