//! The engine: native worker threads that take records from the priority
//! ring and ready retries, inside the in-flight window, and hand them to
//! JavaScript; a timer thread that releases retries when their backoff
//! expires; and the completion path JavaScript calls when handlers settle.
//!
//! `worker.rs` has the worker loop, `completion.rs` acknowledgements,
//! retries and the dead-letter queue.

mod completion;
mod worker;

use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::core::schedule::queue::Leftovers;
pub use completion::{Completion, Failure, Fate};

use crate::core::config::{Config, WORKER_COUNT_RANGE};
use crate::core::error::BusError;
use crate::core::observe::metrics::{Metrics, Outcome};
use crate::core::observe::rates::{RateWindow, Rates, SAMPLE_EVERY};
use crate::core::observe::type_stats::{TypeSnapshot, TypeTable};
use crate::core::schedule::in_flight::InFlightTable;
use crate::core::schedule::permits::Permits;
use crate::core::schedule::queue::{EventQueue, LocalQueue};
use crate::core::schedule::retry_policy::{Jitter, RetryPolicy};
use crate::core::schedule::retry_queue::Redelivery;
use crate::core::shm::handoff::Handoff;
use crate::core::shm::layout::{HandoffRegion, Layout, ACK_WORDS};
use crate::core::shm::ring::{PriorityRing, Record, LANES};
use crate::core::shm::words::SharedWords;

/// Most deliveries one worker publishes at a time, so the dispatch lock is
/// never held for long.
pub const MAX_BATCH: usize = 256;
/// Upper bound on one park, so a missed wake-up can only ever cost this much.
const PARK_TIMEOUT: Duration = Duration::from_millis(250);

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

/// Where deliveries go: the main thread (id 0) or a worker isolate, each
/// with its own hand-off queue and notifier.
pub struct Sink {
    pub id: u32,
    handoff: Arc<Handoff>,
    notifier: Arc<dyn Notifier>,
    /// Deliveries published to it.
    pub deliveries: AtomicU64,
}

/// The main thread's notifier once the engine stopped: JavaScript drains
/// what is left itself.
struct Stopped;

impl Notifier for Stopped {
    fn notify(&self) -> bool {
        true
    }
}

struct Worker {
    id: u32,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    thread: Option<JoinHandle<()>>,
}

/// What became of a dead isolate's unfinished deliveries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Detached {
    /// Counted as failed attempts (it died running them).
    pub charged: u32,
    /// Finished before it died: counted as handled.
    pub succeeded: u32,
    /// Put back in front of their lanes for another isolate.
    pub requeued: u32,
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
    /// The main thread's hand-off queue (acknowledgements come back here).
    handoff: Arc<Handoff>,
    /// Sink 0 is the main thread once started; the rest are worker isolates.
    sinks: RwLock<Vec<Arc<Sink>>>,
    next_sink_id: AtomicU32,
    /// Round robin over the isolate sinks.
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
    permit_waiters: AtomicU32,
    /// Test hook: the next worker to take a batch panics holding it.
    inject_panic: AtomicBool,
    /// Test hook: starting a worker thread fails.
    start_fails: AtomicBool,
    worker_errors: Mutex<Vec<WorkerError>>,
    /// Dispatches done by `Inner::refill` on the calling thread.
    refill_stats: WorkerStats,
}

/// Per-lane depth and totals, read without stopping the workers.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueState {
    pub depth: [u32; LANES],
    pub ready_retries: [u32; LANES],
    pub scheduled_retries: u32,
    pub in_flight_deliveries: u32,
    pub in_flight_permits: u32,
    pub dead_letters: u32,
    pub dead_letters_evicted: u64,
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
        let queue = LocalQueue::new(ring.clone(), order, config.dead_letter_queue_size as usize);
        Engine {
            inner: Arc::new(Inner {
                ring,
                queue: Box::new(queue),
                handoff: Arc::new(Handoff::new(mem.clone(), layout.handoff_region())),
                sinks: RwLock::new(Vec::new()),
                next_sink_id: AtomicU32::new(1),
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
                jitter: Mutex::new(Jitter::new(seed)),
                dispatch: Mutex::new(()),
                notifier: RwLock::new(None),
                park: Mutex::new(()),
                records_cv: Condvar::new(),
                permits_cv: Condvar::new(),
                timer_cv: Condvar::new(),
                permit_waiters: AtomicU32::new(0),
                inject_panic: AtomicBool::new(false),
                start_fails: AtomicBool::new(false),
                worker_errors: Mutex::new(Vec::new()),
                refill_stats: WorkerStats::default(),
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

    /// Starts `workers` threads and the retry timer, notifying JavaScript
    /// through `notifier`.
    pub fn start(&self, notifier: Arc<dyn Notifier>, workers: u32) -> Result<(), BusError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(BusError::InvalidState("the engine has been stopped".into()));
        }
        *self.inner.notifier.write() = Some(notifier.clone());
        {
            let mut sinks = self.inner.sinks.write();
            if sinks.first().is_none_or(|s| s.id != 0) {
                sinks.insert(
                    0,
                    Arc::new(Sink {
                        id: 0,
                        handoff: self.inner.handoff.clone(),
                        notifier,
                        deliveries: AtomicU64::new(0),
                    }),
                );
            }
        }
        let mut timer = self.timer.lock();
        if timer.is_none() {
            let inner = self.inner.clone();
            *timer = Some(
                std::thread::Builder::new()
                    .name("bootify-events-timer".into())
                    .spawn(move || inner.run_timer())
                    .map_err(|e| {
                        BusError::WorkersUnavailable(format!(
                            "could not start the retry timer: {e}"
                        ))
                    })?,
            );
        }
        drop(timer);
        self.scale(workers)
    }

    /// Grows or shrinks the worker pool. A worker asked to stop finishes the
    /// batch it is delivering; records stay in the ring for the others.
    pub fn scale(&self, count: u32) -> Result<(), BusError> {
        let (lo, hi) = WORKER_COUNT_RANGE;
        if !(lo..=hi).contains(&count) {
            return Err(BusError::InvalidArgument(format!(
                "worker count must be an integer between {lo} and {hi}, got {count}"
            )));
        }
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(BusError::ShuttingDown("the bus is shutting down".into()));
        }
        let mut workers = self.workers.lock();
        while workers.len() < count as usize {
            let id = self.next_worker_id.fetch_add(1, Ordering::Relaxed);
            let stop = Arc::new(AtomicBool::new(false));
            let stats = Arc::new(WorkerStats::default());
            let (inner, s, st) = (self.inner.clone(), stop.clone(), stats.clone());
            let spawned = if self.inner.start_fails.load(Ordering::Relaxed) {
                Err(std::io::Error::other(
                    "worker start disabled by a test hook",
                ))
            } else {
                std::thread::Builder::new()
                    .name(format!("bootify-events-{id}"))
                    .spawn(move || inner.run_worker(id, &s, &st))
            };
            let thread = spawned.map_err(|e| {
                BusError::WorkersUnavailable(format!("could not start a worker thread: {e}"))
            })?;
            workers.push(Worker {
                id,
                stop,
                stats,
                thread: Some(thread),
            });
        }
        let surplus: Vec<Worker> = workers.drain(count as usize..).collect();
        drop(workers);
        join_all(&self.inner, surplus);
        Ok(())
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
        self.inner.records_cv.notify_one();
        // A worker short of permits re-checks too: the new record may need
        // fewer than the one that did not fit (a critical event behind a
        // wide fan-out).
        self.inner.permits_cv.notify_one();
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
        self.inner.rates.rates()
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

    /// Test hook: the next worker that takes a batch panics while holding it.
    pub fn inject_worker_panic(&self) {
        self.inner.inject_panic.store(true, Ordering::SeqCst);
    }

    /// Routes `type_id` to worker isolates (or back to the main thread).
    pub fn set_type_isolated(&self, type_id: u32, isolated: bool) {
        self.inner.types.set_isolated(type_id, isolated);
    }

    /// Adds a worker isolate's hand-off queue; its region must hold at least
    /// the in-flight window. Returns the sink id.
    pub fn attach_sink(
        &self,
        mem: Arc<SharedWords>,
        region: HandoffRegion,
        notifier: Arc<dyn Notifier>,
    ) -> Result<u32, BusError> {
        if region.capacity < self.inner.permits.limit() {
            return Err(BusError::InvalidArgument(format!(
                "an isolate's hand-off queue needs room for the window ({}), got {}",
                self.inner.permits.limit(),
                region.capacity
            )));
        }
        if mem.words().len() < region.words() {
            return Err(BusError::InvalidArgument(
                "an isolate's hand-off buffer is smaller than its region".into(),
            ));
        }
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(BusError::ShuttingDown("the bus is shutting down".into()));
        }
        let id = self.inner.next_sink_id.fetch_add(1, Ordering::Relaxed);
        self.inner.sinks.write().push(Arc::new(Sink {
            id,
            handoff: Arc::new(Handoff::new(mem, region)),
            notifier,
            deliveries: AtomicU64::new(0),
        }));
        self.inner.notify_all();
        Ok(id)
    }

    /// Stops handing deliveries to an isolate whose environment is ending
    /// (its notifier would reach nobody). What it was running stays in
    /// flight until `detach_sink` decides what to charge.
    pub fn close_sink(&self, id: u32) {
        if id != 0 {
            self.inner.sinks.write().retain(|s| s.id != id);
        }
    }

    /// An isolate died. The deliveries `culprits` names (one failure each,
    /// keyed by slot and delivery) count as failed attempts: retried or
    /// dead-lettered like any failure. Those in `succeeded` finished before
    /// it died, though their acknowledgements did not arrive: they count as
    /// handled and never run again. Its other unfinished deliveries go back
    /// in front of their lanes, uncharged, for another isolate.
    pub fn detach_sink(
        &self,
        id: u32,
        culprits: Vec<Failure>,
        succeeded: &[(u32, u32)],
    ) -> Detached {
        if id == 0 {
            return Detached::default();
        }
        self.close_sink(id);
        // Only what it still had is settled here: a delivery that had been
        // acknowledged after all (or is named twice) is not.
        let (culprits, acks) = {
            let in_flight = self.inner.in_flight.lock();
            let mut seen = std::collections::HashSet::new();
            let mut mine = |slot: u32, delivery: u32| {
                in_flight
                    .get(slot, delivery)
                    .is_some_and(|e| e.sink == id && !e.remote_done)
                    && seen.insert((slot, delivery))
            };
            let culprits: Vec<Failure> = culprits
                .into_iter()
                .filter(|c| mine(c.slot, c.delivery))
                .collect();
            let mut acks: Vec<u32> = culprits
                .iter()
                .flat_map(|c| [c.slot, c.delivery, Outcome::Failed as u32])
                .collect();
            for &(slot, delivery) in succeeded {
                if mine(slot, delivery) {
                    acks.extend([slot, delivery, Outcome::Ok as u32]);
                }
            }
            (culprits, acks)
        };
        let charged = culprits.len() as u32;
        let settled = (acks.len() / ACK_WORDS) as u32;
        if settled > 0 {
            self.record_handler_failures(u64::from(charged));
            self.settle_remote(id, &acks, culprits);
        }
        let taken = self
            .inner
            .in_flight
            .lock()
            .take_where(|e| e.sink == id && !e.remote_done);
        let permits = taken.iter().map(|(_, e)| e.permits).sum();
        let requeued = taken.len() as u32;
        self.inner.queue.put_back(
            taken
                .into_iter()
                .map(|((_, handler), e)| Redelivery {
                    record: e.record,
                    handler,
                    attempt: e.attempt,
                    errors: e.errors,
                })
                .collect(),
        );
        self.inner.release_permits(permits);
        self.inner
            .metrics
            .requeued
            .fetch_add(u64::from(requeued), Ordering::Relaxed);
        self.inner.notify_all();
        Detached {
            charged,
            succeeded: settled - charged,
            requeued,
        }
    }

    /// The main thread got delivery `delivery` of `slot`, of a type handled
    /// in isolates since the event was emitted (so it had no serialised
    /// bytes), and stored them at `arena` (`size` bytes, never offset 0).
    /// It goes back in front of its lane, attempt unchanged, for an isolate.
    pub fn reroute(&self, slot: u32, delivery: u32, arena: u32, size: u32) -> Result<(), BusError> {
        if arena == 0 {
            return Err(BusError::InvalidArgument(
                "arena offset 0 holds no event".into(),
            ));
        }
        let entry = {
            let mut in_flight = self.inner.in_flight.lock();
            match in_flight.get(slot, delivery) {
                Some(e) if e.sink == 0 => in_flight.remove(slot, delivery),
                _ => None,
            }
        }
        .ok_or_else(|| {
            BusError::InvalidArgument(format!(
                "delivery {slot}/{delivery} is not in flight on the main thread"
            ))
        })?;
        let record = Record {
            arena,
            size,
            ..entry.record
        };
        self.inner.queue.put_back(vec![Redelivery {
            record,
            handler: delivery,
            attempt: entry.attempt,
            errors: entry.errors,
        }]);
        self.inner.release_permits(entry.permits);
        self.inner.notify_all();
        Ok(())
    }

    /// `(sink id, deliveries published)` for every sink.
    pub fn sink_stats(&self) -> Vec<(u32, u64)> {
        self.inner
            .sinks
            .read()
            .iter()
            .map(|s| (s.id, s.deliveries.load(Ordering::Relaxed)))
            .collect()
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
        let sizes = self.inner.queue.sizes();
        QueueState {
            depth: sizes.depth,
            ready_retries: sizes.ready_retries,
            scheduled_retries: sizes.scheduled_retries,
            in_flight_deliveries: self.inner.in_flight.lock().len() as u32,
            in_flight_permits: self.inner.permits.in_use(),
            dead_letters: sizes.dead_letters,
            dead_letters_evicted: sizes.dead_letters_evicted,
        }
    }

    /// Stops the workers and the timer and joins them. Returns what was
    /// still waiting (never started); deliveries in flight stay in flight
    /// and can still be acknowledged.
    pub fn stop(&self) -> Leftovers {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let workers: Vec<Worker> = self.workers.lock().drain(..).collect();
        join_all(&self.inner, workers);
        if let Some(timer) = self.timer.lock().take() {
            // The timer has nothing to clean up if it panicked.
            let _ = timer.join();
        }
        *self.inner.notifier.write() = None;
        let _dispatch = self.inner.dispatch.lock();
        // The main thread's notifier holds its JavaScript callback, and so
        // the bus that owns this engine: dropping it is what lets a bus that
        // was shut down be collected. Isolates finishing after this still
        // leave notices in the hand-off queue, for the final drain.
        if let Some(main) = self.inner.sinks.write().first_mut().filter(|s| s.id == 0) {
            *main = Arc::new(Sink {
                id: 0,
                handoff: main.handoff.clone(),
                notifier: Arc::new(Stopped),
                deliveries: AtomicU64::new(main.deliveries.load(Ordering::Relaxed)),
            });
        }
        self.inner.queue.drain()
    }
}

fn join_all(inner: &Inner, mut workers: Vec<Worker>) {
    for w in &workers {
        w.stop.store(true, Ordering::SeqCst);
    }
    inner.notify_all();
    for w in &mut workers {
        if let Some(t) = w.thread.take() {
            // Worker panics are caught inside the loop; a join error can only
            // come from a panic while reporting one, with nothing left to do.
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Inner {
    fn notify_all(&self) {
        let _guard = self.park.lock();
        self.records_cv.notify_all();
        self.permits_cv.notify_all();
        self.timer_cv.notify_all();
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

    /// Releases retries whose backoff has expired and samples the rates,
    /// then sleeps until the next retry is due or the next sample.
    fn run_timer(&self) {
        let mut guard = self.park.lock();
        let mut next_sample = Instant::now();
        while !self.stopping.load(Ordering::SeqCst) {
            let now = Instant::now();
            let (moved, next) = self.queue.promote(now);
            if moved > 0 {
                self.records_cv.notify_one();
                self.permits_cv.notify_one();
            }
            if now >= next_sample {
                self.rates
                    .sample(now, self.ring.tails(), self.metrics.completed());
                next_sample = now + SAMPLE_EVERY;
            }
            let until = next.map_or(next_sample, |due| due.min(next_sample));
            let wait = until.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                self.timer_cv.wait_for(&mut guard, wait);
            }
        }
    }

    /// Whether a worker has anything to take: a ring record or a ready retry.
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
