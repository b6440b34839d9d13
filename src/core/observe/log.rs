//! The native core's logs: `tracing` events collected per bus and handed
//! to JavaScript in batches, where the application's logger receives them.
//!
//! Each bus owns a [`Logs`]: a `tracing` dispatcher of its own (not the
//! process-wide default, which belongs to the application or to another
//! addon), a filter and a bounded buffer. Call sites run their macro inside
//! [`Logs::emit`], so a record lands in the buffer of the bus it concerns
//! whatever thread writes it. Only lifecycle points and slow paths log: the
//! buffer's mutex is never taken per event on the hot path.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// Records kept while JavaScript does not take them (its loop is blocked,
/// or no logger was attached yet); past it the oldest are counted, not kept.
pub const BUFFER_LIMIT: usize = 4096;

/// One log record, as JavaScript receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub level: Level,
    /// Which part of the bus: `events::worker`, `events::journal`, ...
    pub target: String,
    /// A fixed sentence per call site; what varies is in `fields`.
    pub message: String,
    pub fields: Map<String, Value>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: f64,
}

/// `RUST_LOG`-style directives: `warn`, `events::journal=debug`, or a list
/// of them separated by commas; the longest matching target prefix wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    pub fn at(level: LevelFilter) -> Self {
        Filter {
            default: level,
            targets: Vec::new(),
        }
    }

    /// Parses directives; the error names the one it cannot read.
    /// Directives naming only targets keep the default `warn` for the
    /// rest, so turning one part up never hides warnings from the others.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut filter = Filter::at(LevelFilter::WARN);
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                None => match parse_level(directive) {
                    Some(level) => filter.default = level,
                    // A bare target turns on everything under it.
                    None if is_target(directive) => {
                        filter.targets.push((directive.into(), LevelFilter::TRACE))
                    }
                    None => return Err(bad_directive(directive)),
                },
                Some((target, level)) => match parse_level(level.trim()) {
                    Some(level) if is_target(target.trim()) => {
                        filter.targets.push((target.trim().into(), level))
                    }
                    _ => return Err(bad_directive(directive)),
                },
            }
        }
        filter
            .targets
            .sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(filter)
    }

    pub fn enabled(&self, level: &Level, target: &str) -> bool {
        let limit = self
            .targets
            .iter()
            .find(|(prefix, _)| under(target, prefix))
            .map_or(self.default, |(_, l)| *l);
        *level <= limit
    }
}

/// `events::journal` is under `events::journal` and `events`, not under
/// `events::jour`.
fn under(target: &str, prefix: &str) -> bool {
    target
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s.to_ascii_lowercase().as_str() {
        "off" | "silent" => LevelFilter::OFF,
        "error" | "fatal" => LevelFilter::ERROR,
        "warn" | "warning" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => return None,
    })
}

/// Every target of this package is under `events`: anything else is a
/// typo (`debgu`), not a target that happens to match nothing.
fn is_target(s: &str) -> bool {
    under(s, "events")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn bad_directive(d: &str) -> String {
    format!(
        "cannot read the log directive {d:?}: expected a level (off, error, warn, info, debug, trace), \
         a target under events (events::worker, events::retry, events::dead_letter, \
         events::queue, events::isolate, events::journal, events::shutdown), or target=level"
    )
}

/// Where one bus's records wait for JavaScript.
struct Buffer {
    records: Mutex<VecDeque<LogRecord>>,
    dropped: AtomicU64,
    filter: RwLock<Filter>,
    /// Called when the buffer goes from empty to not empty: one wake-up per
    /// batch, however many records join it before JavaScript takes them.
    wake: RwLock<Option<Box<dyn Fn() + Send + Sync>>>,
}

/// Lets a record through at most once per interval, counting the rest:
/// for what can happen once per event (dead letters in an outage).
#[derive(Debug, Default)]
pub struct Throttle {
    /// Milliseconds since the Unix epoch of the last record let through,
    /// 0 before the first.
    last_ms: AtomicU64,
    held: AtomicU64,
}

impl Throttle {
    /// `Some(n)`: log now, `n` occurrences were held back since the last
    /// record. `None`: counted, not logged.
    pub fn pass(&self, now_ms: u64, every_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < every_ms {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // One thread wins the interval; the others count.
        match self.last_ms.compare_exchange(
            last,
            now_ms.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => Some(self.held.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.held.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// One bus's logs: its dispatcher and what it collected.
#[derive(Clone)]
pub struct Logs {
    buffer: Arc<Buffer>,
    dispatch: Dispatch,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs")
            .field("filter", &*self.buffer.filter.read())
            .finish_non_exhaustive()
    }
}

impl Default for Logs {
    fn default() -> Self {
        Logs::new(Filter::at(LevelFilter::WARN))
    }
}

impl Logs {
    pub fn new(filter: Filter) -> Self {
        let buffer = Arc::new(Buffer {
            records: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            filter: RwLock::new(filter),
            wake: RwLock::new(None),
        });
        let dispatch = Dispatch::new(Collector {
            buffer: buffer.clone(),
            next_span: AtomicU64::new(1),
        });
        Logs { buffer, dispatch }
    }

    /// Runs `log` (a `tracing` macro call) with this bus as the collector.
    pub fn emit(&self, log: impl FnOnce()) {
        tracing::dispatcher::with_default(&self.dispatch, log);
    }

    pub fn enabled(&self, level: &Level, target: &str) -> bool {
        self.buffer.filter.read().enabled(level, target)
    }

    pub fn set_filter(&self, filter: Filter) {
        *self.buffer.filter.write() = filter;
    }

    /// Sets what is called when records are waiting; called at once if some
    /// already are.
    pub fn set_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        // Stored first: a record arriving between the two steps then
        // wakes through it, or is seen waiting here.
        *self.buffer.wake.write() = Some(wake);
        if !self.buffer.records.lock().is_empty() {
            if let Some(wake) = &*self.buffer.wake.read() {
                wake();
            }
        }
    }

    /// Drops the wake-up (the JavaScript callback it holds), at shutdown.
    pub fn clear_wake(&self) {
        *self.buffer.wake.write() = None;
    }

    /// The waiting records, oldest first, and how many were dropped since
    /// the last call because the buffer was full.
    pub fn take(&self) -> (Vec<LogRecord>, u64) {
        let records = std::mem::take(&mut *self.buffer.records.lock());
        (
            records.into(),
            self.buffer.dropped.swap(0, Ordering::Relaxed),
        )
    }
}

struct Collector {
    buffer: Arc<Buffer>,
    next_span: AtomicU64,
}

impl Subscriber for Collector {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Filters differ per bus and change at run time: ask each time.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.buffer
            .filter
            .read()
            .enabled(meta.level(), meta.target())
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are not used; ids must still be unique and non-zero.
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let record = LogRecord {
            level: *meta.level(),
            target: meta.target().to_string(),
            message: visitor.message,
            fields: visitor.fields,
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        };
        let first = {
            let mut records = self.buffer.records.lock();
            if records.len() >= BUFFER_LIMIT {
                records.pop_front();
                self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
            }
            records.push_back(record);
            records.len() == 1
        };
        if first {
            if let Some(wake) = &*self.buffer.wake.read() {
                wake();
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn directives_pick_the_longest_matching_target() {
        let f = Filter::parse("warn, events::journal=debug,events::journal::replay=off").unwrap();
        assert!(f.enabled(&Level::WARN, "events::worker"));
        assert!(!f.enabled(&Level::INFO, "events::worker"));
        assert!(f.enabled(&Level::DEBUG, "events::journal::writer"));
        assert!(!f.enabled(&Level::ERROR, "events::journal::replay"));
        assert_eq!(
            Filter::parse("debug").unwrap(),
            Filter::at(LevelFilter::DEBUG)
        );
        assert!(Filter::parse("events::retry")
            .unwrap()
            .enabled(&Level::TRACE, "events::retry"));
        let only = Filter::parse("events::journal=debug").unwrap();
        assert!(
            only.enabled(&Level::WARN, "events::dead_letter"),
            "others keep warn"
        );
        assert!(!only.enabled(&Level::DEBUG, "events::journalist"));
        for bad in [
            "loud",
            "eventsfoo",
            "events::journal=loud",
            "a b=info",
            "=debug",
        ] {
            let err = Filter::parse(bad).unwrap_err();
            assert!(
                err.contains("cannot read the log directive"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn records_reach_their_own_bus_with_their_fields_and_wake_once_per_batch() {
        let (a, b) = (Logs::default(), Logs::new(Filter::at(LevelFilter::DEBUG)));
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        a.set_wake(Box::new(move || {
            w.fetch_add(1, Ordering::Relaxed);
        }));
        a.emit(|| tracing::warn!(target: "events::dead_letter", event_id = "e-1", attempts = 3u32, "event dead-lettered"));
        a.emit(|| tracing::error!(target: "events::worker", worker = 2u32, "worker panicked"));
        a.emit(|| tracing::debug!(target: "events::retry", "below this bus's level"));
        b.emit(|| tracing::debug!(target: "events::retry", delay_ms = 1.5f64, "retry scheduled"));
        assert_eq!(wakes.load(Ordering::Relaxed), 1);
        let (records, dropped) = a.take();
        assert_eq!(dropped, 0);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].message, "event dead-lettered");
        assert_eq!(records[0].level, Level::WARN);
        assert_eq!(records[0].target, "events::dead_letter");
        assert_eq!(records[0].fields["event_id"], "e-1");
        assert_eq!(records[0].fields["attempts"], 3);
        let (theirs, _) = b.take();
        assert_eq!(theirs.len(), 1);
        assert_eq!(theirs[0].fields["delay_ms"], 1.5);
        // Taken: the next record wakes again.
        a.emit(|| tracing::warn!(target: "events::queue", "again"));
        assert_eq!(wakes.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_throttle_lets_one_record_through_per_interval_and_counts_the_rest() {
        let t = Throttle::default();
        assert_eq!(t.pass(1_000, 10_000), Some(0));
        assert_eq!(t.pass(2_000, 10_000), None);
        assert_eq!(t.pass(10_999, 10_000), None);
        assert_eq!(t.pass(11_000, 10_000), Some(2));
        assert_eq!(t.pass(30_000, 10_000), Some(0));
    }

    #[test]
    fn a_full_buffer_keeps_the_newest_and_counts_the_rest() {
        let logs = Logs::default();
        for i in 0..BUFFER_LIMIT + 5 {
            logs.emit(|| tracing::warn!(target: "events::queue", i, "overflow"));
        }
        let (records, dropped) = logs.take();
        assert_eq!(records.len(), BUFFER_LIMIT);
        assert_eq!(dropped, 5);
        assert_eq!(records[0].fields["i"], 5);
        logs.set_filter(Filter::at(LevelFilter::OFF));
        logs.emit(|| tracing::error!(target: "events::queue", "filtered out"));
        assert!(logs.take().0.is_empty());
    }
}
