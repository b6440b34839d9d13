//! The engine: native worker threads that take deliveries from the
//! [`EventQueue`] (the priority ring and ready retries) inside the
//! in-flight window and hand them to JavaScript; a timer thread that
//! releases retries when their backoff expires; and the completion path
//! JavaScript calls when handlers settle.
//!
//! `worker.rs` has the dispatch loop, `park.rs` where workers wait,
//! `completion.rs` acknowledgements, failures' fates and the dead-letter
//! API, `sinks.rs` the main thread's and the isolates' hand-off queues,
//! `lifecycle.rs` starting, scaling and stopping threads, `backlog.rs`
//! deliveries waiting for a free worker isolate.
//!
//! # Lock order
//!
//! A thread holding one of these may take only those after it:
//! `dispatch` → `sinks` → `backlog` → `types` (read) → `in_flight` → `books` →
//! `policy` (read), `jitter` and the queue's own locks (retries, dead
//! letters). `park` is
//! taken holding none of the first five, and the retry timer promotes
//! retries (the queue's locks) under it. `workers` and `timer` are taken
//! alone, by `lifecycle.rs`. The JavaScript thread acknowledges under
//! `types` → `in_flight` and only then, as a refill, tries (never waits
//! for) `dispatch`. A worker waiting for an isolate to attach checks a
//! counter under `park`, not `sinks`. An isolate pulling from the backlog
//! (`Engine::pull`) waits for `dispatch`: it holds nothing then; so does
//! the JavaScript thread in `set_type_isolated`, which no worker waits on.

mod backlog;
mod completion;
mod durable;
mod lifecycle;
mod park;
mod recovery;
mod sinks;
mod worker;

use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::core::schedule::queue::Leftovers;
pub use completion::{Completion, Failure, Fate};
pub use durable::Adopted;
pub use sinks::{Detached, Sink};
pub use worker::Refill;

use crate::core::config::Config;
use crate::core::journal::Journal;
use crate::core::observe::log::{Logs, Throttle};
use crate::core::observe::metrics::Metrics;
use crate::core::observe::rates::{RateWindow, Rates};
use crate::core::observe::type_stats::{TypeSnapshot, TypeTable};
use crate::core::schedule::books::EventBooks;
use crate::core::schedule::in_flight::InFlightTable;
use crate::core::schedule::journaled::JournaledQueue;
use crate::core::schedule::permits::Permits;
use crate::core::schedule::queue::{EventQueue, LocalQueue, QueueSizes};
use crate::core::schedule::retry_policy::{Jitter, RetryPolicy};
use crate::core::shm::handoff::Handoff;
use crate::core::shm::layout::Layout;
use crate::core::shm::ring::PriorityRing;
use crate::core::shm::words::SharedWords;

/// Most deliveries one worker publishes at a time, so the dispatch lock is
/// never held for long.
pub const MAX_BATCH: usize = 256;

/// Tells the JavaScript thread that deliveries (or worker errors) wait for
/// it (through a threadsafe function, in the package).
pub trait Notifier: Send + Sync + 'static {
    /// Queues a call on the JavaScript thread without blocking; `false`
    /// when the receiver is gone (the environment is shutting down).
    fn notify(&self) -> bool;
}

#[derive(Default)]
pub struct WorkerStats {
    pub deliveries: AtomicU64,
    pub batches: AtomicU64,
    pub busy: AtomicBool,
    pub restarts: AtomicU64,
    /// Milliseconds since the engine started, at the last batch.
    pub last_active_ms: AtomicU64,
}

/// A worker thread that panicked, as reported to JavaScript.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerError {
    pub worker: u32,
    pub message: String,
    /// Deliveries the worker had taken, put back in front of their lanes.
    pub requeued: u32,
}

struct Worker {
    id: u32,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    thread: Option<JoinHandle<()>>,
}

pub struct Engine {
    inner: Arc<Inner>,
    mem: Arc<SharedWords>,
    layout: Layout,
    workers: Mutex<Vec<Worker>>,
    timer: Mutex<Option<JoinHandle<()>>>,
    next_worker_id: AtomicU32,
}

struct Inner {
    /// The shared-memory ring: its park/wake words and clock. Events are
    /// taken through `queue`, never from the ring directly.
    ring: Arc<PriorityRing>,
    /// Where events wait: the ring, retries and dead letters (see
    /// `schedule::queue`).
    queue: Box<dyn EventQueue>,
    /// The journal of a durable bus, once `initialize()` opened it.
    journal: Arc<OnceLock<Arc<Journal>>>,
    streams: OnceLock<Arc<crate::core::streams::StreamLink>>,
    /// The main thread's hand-off queue (acknowledgements come back here).
    handoff: Arc<Handoff>,
    /// Sink 0 is the main thread once started; the rest are worker isolates.
    sinks: RwLock<Vec<Arc<Sink>>>,
    next_sink_id: AtomicU32,
    /// Bumped by each `attach_sink`, for workers waiting for an isolate.
    attach_generation: AtomicU64,
    /// Where isolate-bound deliveries wait for a free isolate.
    backlog: backlog::Backlog,
    /// Rotates which free isolate is looked at first.
    next_isolate: AtomicU32,
    /// Live settings (`Engine::reconfigure`) are read once per use.
    policy: RwLock<RetryPolicy>,
    restart_delay_ms: AtomicU64,
    permits: Permits,
    metrics: Metrics,
    started: Instant,
    stopping: AtomicBool,
    types: TypeTable,
    rates: RateWindow,
    in_flight: Mutex<InFlightTable>,
    /// Each event's open work and dead letters (see `schedule::books`).
    books: Mutex<EventBooks>,
    jitter: Mutex<Jitter>,
    /// The dispatch lock: one worker at a time takes records and publishes
    /// deliveries, so deliveries keep the order records left the ring and
    /// the hand-off queue has a single producer.
    dispatch: Mutex<()>,
    notifier: RwLock<Option<Arc<dyn Notifier>>>,
    park: Mutex<()>,
    records_cv: Condvar,
    permits_cv: Condvar,
    timer_cv: Condvar,
    /// Workers sitting out their restart delay.
    pause_cv: Condvar,
    /// The timer found nothing changing and sleeps until a retry is due or
    /// it is nudged (`Inner::nudge_timer`): an idle bus costs no CPU.
    timer_idle: AtomicBool,
    permit_waiters: AtomicU32,
    /// Test hook: the next worker to take a batch panics holding it.
    inject_panic: AtomicBool,
    /// Test hook: starting a worker thread fails.
    start_fails: AtomicBool,
    worker_errors: Mutex<Vec<WorkerError>>,
    /// Dispatches done by `Inner::refill` on the calling thread.
    refill_stats: WorkerStats,
    /// What isolates took from the backlog (`Engine::pull`).
    pull_stats: WorkerStats,
    /// This bus's logs (see `observe::log`).
    logs: Logs,
    /// Dead letters and evictions are logged at warn once per interval.
    letter_log: Throttle,
    evict_log: Throttle,
}

/// What waits and what runs, read without stopping the workers.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueState {
    /// What waits (per lane, retries, dead letters).
    pub queued: QueueSizes,
    pub in_flight_deliveries: u32,
    pub in_flight_permits: u32,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Engine {
    /// `mem` must hold `Layout::new(max_queue_size, concurrency).words` words.
    pub fn new(config: &Config, mem: SharedWords) -> Self {
        let layout = Layout::new(config.max_queue_size, config.concurrency);
        let mem = Arc::new(mem);
        layout.format_header(&mem);
        let order = config.lane_order();
        let ring = Arc::new(PriorityRing::new(
            mem.clone(),
            &layout,
            order,
            Duration::from_millis(config.aging_ms as u64),
        ));
        let seed = unix_ms() ^ (Arc::as_ptr(&mem) as usize as u64);
        let started = Instant::now();
        let local = LocalQueue::new(ring.clone(), order, config.dead_letter_queue_size as usize);
        let journal = Arc::new(OnceLock::new());
        let queue: Box<dyn EventQueue> = if config.durable() {
            Box::new(JournaledQueue::new(local, journal.clone()))
        } else {
            Box::new(local)
        };
        Engine {
            inner: Arc::new(Inner {
                ring,
                queue,
                journal,
                streams: OnceLock::new(),
                handoff: Arc::new(Handoff::new(mem.clone(), layout.handoff_region())),
                sinks: RwLock::new(Vec::new()),
                next_sink_id: AtomicU32::new(1),
                attach_generation: AtomicU64::new(0),
                backlog: backlog::Backlog::default(),
                next_isolate: AtomicU32::new(0),
                policy: RwLock::new(RetryPolicy::new(
                    config.retry_attempts,
                    config.retry_delays.clone(),
                )),
                restart_delay_ms: AtomicU64::new(
                    config.reliability_limits.worker_restart_delay as u64,
                ),
                permits: Permits::new(config.concurrency),
                metrics: Metrics::new(started),
                started,
                stopping: AtomicBool::new(false),
                types: TypeTable::default(),
                rates: RateWindow::default(),
                in_flight: Mutex::new(InFlightTable::default()),
                books: Mutex::new(EventBooks::default()),
                jitter: Mutex::new(Jitter::new(seed)),
                dispatch: Mutex::new(()),
                notifier: RwLock::new(None),
                park: Mutex::new(()),
                records_cv: Condvar::new(),
                permits_cv: Condvar::new(),
                timer_cv: Condvar::new(),
                pause_cv: Condvar::new(),
                timer_idle: AtomicBool::new(false),
                permit_waiters: AtomicU32::new(0),
                inject_panic: AtomicBool::new(false),
                start_fails: AtomicBool::new(false),
                worker_errors: Mutex::new(Vec::new()),
                refill_stats: WorkerStats::default(),
                pull_stats: WorkerStats::default(),
                logs: Logs::default(),
                letter_log: Throttle::default(),
                evict_log: Throttle::default(),
            }),
            mem,
            layout,
            workers: Mutex::new(Vec::new()),
            timer: Mutex::new(None),
            next_worker_id: AtomicU32::new(1),
        }
    }

    pub fn memory(&self) -> &Arc<SharedWords> {
        &self.mem
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn ring(&self) -> &PriorityRing {
        &self.inner.ring
    }

    /// The main thread's hand-off queue and ack area.
    pub fn handoff(&self) -> &Handoff {
        &self.inner.handoff
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn concurrency(&self) -> u32 {
        self.inner.permits.limit()
    }

    /// Applies the settings of `config` that may change on a running engine
    /// (`schema::Field::live`): the retry policy (for retries scheduled from
    /// now on), the restart delay, the window and the starvation bound. The
    /// window must not exceed the one the engine was created with (the
    /// hand-off queues are sized for it). The worker count changes through
    /// `scale`.
    pub fn reconfigure(&self, config: &Config) {
        *self.inner.policy.write() =
            RetryPolicy::new(config.retry_attempts, config.retry_delays.clone());
        self.inner.restart_delay_ms.store(
            config.reliability_limits.worker_restart_delay as u64,
            Ordering::Relaxed,
        );
        self.inner
            .ring
            .set_aging(Duration::from_millis(config.aging_ms as u64));
        self.inner
            .permits
            .set_limit(config.concurrency.min(self.layout.handoff_capacity));
        // A larger window may let waiting records through.
        self.inner.permits_cv.notify_all();
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    pub fn worker_count(&self) -> u32 {
        self.workers.lock().len() as u32
    }

    /// Deliveries the calling (JavaScript) thread dispatched itself while
    /// acknowledging (see `Inner::refill`).
    pub fn refill_dispatched(&self) -> u64 {
        self.inner.refill_stats.deliveries.load(Ordering::Relaxed)
    }

    /// `(id, stats)` of every running worker.
    pub fn worker_stats(&self) -> Vec<(u32, Arc<WorkerStats>)> {
        self.workers
            .lock()
            .iter()
            .map(|w| (w.id, w.stats.clone()))
            .collect()
    }

    /// Called by the producer after it published records while consumers
    /// were parked.
    pub fn wake(&self) {
        let _guard = self.inner.park.lock();
        if self.inner.timer_idle.load(Ordering::Relaxed) {
            self.inner.timer_cv.notify_one();
        }
        self.inner.records_cv.notify_one();
        // A worker short of permits re-checks too: the new record may need
        // fewer than the one that did not fit (a critical event behind a
        // wide fan-out).
        self.inner.permits_cv.notify_one();
    }

    /// Called by the JavaScript thread after a run of emissions: with
    /// `look`, dispatches on that thread what the ring holds and fits in
    /// the window (see `Inner::refill`), for it to drain from its hand-off
    /// queue at once. When it did not look (told not to, a worker was
    /// dispatching, or the bus is stopping: `Skipped`), or when it left
    /// records waiting for room in the window (`Full`), a parked worker
    /// must be woken: only workers wait for permits, and only `Drained`
    /// means none is needed.
    ///
    /// `since_us` is when the run's first emission was accepted, on the
    /// engine clock (`elapsed_us`, wrapping): however the run is then
    /// dispatched, how long it waited for this thread counts as event-loop
    /// lag, as a late threadsafe-function call does (a synchronous block
    /// right after an emission shows up here).
    pub fn dispatch_here(&self, since_us: u32, look: bool) -> Refill {
        let inner = &self.inner;
        inner.nudge_timer();
        // A start stamped after this clock reading comes out "negative".
        let waited = (inner.started.elapsed().as_micros() as u32).wrapping_sub(since_us);
        inner
            .metrics
            .lag
            .record(if waited < 1 << 31 { waited as u64 } else { 0 });
        if look {
            inner.refill()
        } else {
            Refill::Skipped
        }
    }

    /// How many handlers `type_id` has; decides the permits a fan-out takes.
    pub fn set_handler_count(&self, type_id: u32, count: u32) {
        self.inner.types.set_handlers(type_id, count);
    }

    /// The name of an interned type, for reporting.
    pub fn set_type_name(&self, type_id: u32, name: &str) {
        self.inner.types.set_name(type_id, name);
    }

    /// Input and processing rates over the last ten seconds.
    pub fn rates(&self) -> Rates {
        let inner = &self.inner;
        if inner.timer_idle.load(Ordering::Relaxed) {
            // The idle timer takes no samples: the totals as of now end the window.
            inner.rates.sample(
                Instant::now(),
                inner.ring.tails(),
                inner.metrics.completed(),
            );
            inner.nudge_timer();
        }
        inner.rates.rates()
    }

    /// Largest queue wait and event-loop lag (µs) since the last call, and
    /// worker panics so far: what a health check compares to thresholds.
    pub fn take_recent_maxima(&self) -> (u64, u64) {
        (
            self.inner.metrics.take_recent_queue_wait_max(),
            self.inner.metrics.lag.take_recent_max(),
        )
    }

    /// The event-loop lag probe, for the threadsafe function's callback.
    pub fn loop_lag(&self) -> Arc<crate::core::observe::metrics::LoopLag> {
        self.inner.metrics.lag.clone()
    }

    /// Per-type counters, bounded: see `TypeTable::snapshot`.
    pub fn type_stats(&self) -> Vec<TypeSnapshot> {
        self.inner
            .types
            .snapshot(crate::core::observe::type_stats::REPORTED_TYPES)
    }

    /// Microseconds on the engine's clock (wrapping to u32 in ring
    /// records); JavaScript stamps records with it to measure queue waits.
    pub fn elapsed_us(&self) -> u64 {
        self.inner.started.elapsed().as_micros() as u64
    }

    /// This bus's logs: the binding attaches JavaScript's logger to them
    /// and hands them to the journal.
    pub fn logs(&self) -> &Logs {
        &self.inner.logs
    }

    /// Test hook: the next worker that takes a batch panics while holding it.
    pub fn inject_worker_panic(&self) {
        self.inner.inject_panic.store(true, Ordering::SeqCst);
    }

    /// Test hook: while set, starting a worker thread fails, to exercise the
    /// no-workers path.
    pub fn fail_worker_starts(&self, fail: bool) {
        self.inner.start_fails.store(fail, Ordering::SeqCst);
    }

    /// Worker panics not yet reported to JavaScript.
    pub fn take_worker_errors(&self) -> Vec<WorkerError> {
        std::mem::take(&mut *self.inner.worker_errors.lock())
    }

    pub fn queue_state(&self) -> QueueState {
        let mut queued = self.inner.queue.sizes();
        let (backlogged, held) = self.inner.backlog.held();
        for (d, b) in queued.depth.iter_mut().zip(backlogged) {
            *d += b;
        }
        QueueState {
            queued,
            in_flight_deliveries: self.inner.in_flight.lock().len() as u32,
            in_flight_permits: self.inner.permits.in_use().saturating_sub(held),
        }
    }
}

impl Inner {
    fn notify_all(&self) {
        let _guard = self.park.lock();
        self.records_cv.notify_all();
        self.permits_cv.notify_all();
        self.timer_cv.notify_all();
        self.pause_cv.notify_all();
    }

    /// Activity: an idle timer resumes sampling (and promoting retries).
    fn nudge_timer(&self) {
        if self.timer_idle.load(Ordering::Relaxed) {
            let _guard = self.park.lock();
            self.timer_cv.notify_one();
        }
    }

    fn release_permits(&self, n: u32) {
        if n == 0 {
            return;
        }
        self.permits.release(n);
        self.wake_permit_waiters();
    }

    fn wake_permit_waiters(&self) {
        if self.permit_waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.park.lock();
            self.permits_cv.notify_one();
        }
    }

    /// The books got reports from a thread other than JavaScript's: count
    /// it where JavaScript looks, and notify it.
    fn announce_reports(&self) {
        self.ring.count_reports();
        // The main hand-off queue has one producer at a time.
        let _dispatch = self.dispatch.lock();
        if let Some(main) = self.sinks.read().first().filter(|s| s.id == 0).cloned() {
            self.publish(&main, 0);
        }
    }

    /// Whether a worker has anything to take: a ring record or a ready retry.
    /// Not the backlog: what waits there waits for an isolate to drain, and
    /// the isolate pulls it then (a worker could only look and park again).
    fn has_work(&self) -> bool {
        self.queue.has_work()
    }
}

#[cfg(test)]
mod failure_tests;
#[cfg(test)]
mod isolate_tests;
#[cfg(test)]
mod tests;
