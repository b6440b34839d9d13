//! The engine: native worker threads that take records from the priority
//! ring, inside the in-flight window, and hand them to JavaScript in batches;
//! and the completion path that JavaScript calls when handlers settle.

use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{Config, WORKER_COUNT_RANGE};
use super::error::BusError;
use super::handoff::Handoff;
use super::in_flight::{InFlight, InFlightTable};
use super::layout::{Layout, ACK_WORDS};
use super::metrics::{Metrics, Outcome, OutcomeTally};
use super::permits::Permits;
use super::ring::{PriorityRing, Record, LANES};
use super::shared::SharedWords;

/// Most deliveries one worker publishes at a time, so the dispatch lock is
/// never held for long.
pub const MAX_BATCH: usize = 256;
/// Upper bound on one park, so a missed wake-up can only ever cost this much.
const PARK_TIMEOUT: Duration = Duration::from_millis(250);

/// Tells the JavaScript thread that deliveries are waiting in the hand-off
/// queue (through a threadsafe function, in the package).
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
    /// Milliseconds since the engine started, at the last batch.
    pub last_active_ms: AtomicU64,
}

struct Worker {
    id: u32,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    thread: Option<JoinHandle<()>>,
}

enum Collected {
    Delivered,
    Empty,
    NoPermits(u32),
}

pub struct Engine {
    inner: Arc<Inner>,
    mem: Arc<SharedWords>,
    layout: Layout,
    workers: Mutex<Vec<Worker>>,
    next_worker_id: AtomicU32,
}

struct Inner {
    ring: PriorityRing,
    handoff: Handoff,
    permits: Permits,
    metrics: Metrics,
    started: Instant,
    stopping: AtomicBool,
    handler_counts: RwLock<Vec<u32>>,
    in_flight: Mutex<InFlightTable>,
    /// The dispatch lock: one worker at a time takes records and publishes
    /// deliveries, so deliveries keep the order records left the ring and
    /// the hand-off queue has a single producer.
    dispatch: Mutex<()>,
    notifier: RwLock<Option<Arc<dyn Notifier>>>,
    park: Mutex<()>,
    records_cv: Condvar,
    permits_cv: Condvar,
    permit_waiters: AtomicU32,
}

/// Per-lane depth and totals, read without stopping the workers.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueState {
    pub depth: [u32; LANES],
    pub in_flight_deliveries: u32,
    pub in_flight_permits: u32,
}

impl Engine {
    /// Formats `mem` as the ring and prepares (but does not start) the workers.
    /// `mem` must hold `Layout::new(max_queue_size, concurrency).words` words.
    pub fn new(config: &Config, mem: SharedWords) -> Self {
        let layout = Layout::new(config.max_queue_size, config.concurrency);
        let mem = Arc::new(mem);
        layout.format_header(&mem);
        let ring = PriorityRing::new(
            mem.clone(),
            &layout,
            config.lane_order(),
            Duration::from_millis(config.aging_ms as u64),
        );
        Engine {
            inner: Arc::new(Inner {
                ring,
                handoff: Handoff::new(mem.clone(), &layout),
                permits: Permits::new(config.concurrency),
                metrics: Metrics::default(),
                started: Instant::now(),
                stopping: AtomicBool::new(false),
                handler_counts: RwLock::new(Vec::new()),
                in_flight: Mutex::new(InFlightTable::default()),
                dispatch: Mutex::new(()),
                notifier: RwLock::new(None),
                park: Mutex::new(()),
                records_cv: Condvar::new(),
                permits_cv: Condvar::new(),
                permit_waiters: AtomicU32::new(0),
            }),
            mem,
            layout,
            workers: Mutex::new(Vec::new()),
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

    /// Starts `workers` threads that notify JavaScript through `notifier`.
    pub fn start(&self, notifier: Arc<dyn Notifier>, workers: u32) -> Result<(), BusError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(BusError::InvalidState("the engine has been stopped".into()));
        }
        *self.inner.notifier.write() = Some(notifier);
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
            let thread = std::thread::Builder::new()
                .name(format!("bootify-events-{id}"))
                .spawn(move || inner.run_worker(&s, &st))
                .map_err(|e| {
                    BusError::InvalidState(format!("could not start a worker thread: {e}"))
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

    /// `(id, stats)` of every running worker.
    pub fn worker_stats(&self) -> Vec<(u32, Arc<WorkerStats>)> {
        self.workers
            .lock()
            .iter()
            .map(|w| (w.id, w.stats.clone()))
            .collect()
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
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
        let mut counts = self.inner.handler_counts.write();
        let i = type_id as usize;
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] = count;
    }

    /// Applies `count` acknowledgements JavaScript wrote into the ack area.
    pub fn complete_shared(&self, count: u32) -> Result<(), BusError> {
        let acks = self.inner.handoff.read_acks(count).ok_or_else(|| {
            BusError::InvalidArgument(format!(
                "ack count {count} exceeds the ack area ({})",
                self.inner.handoff.capacity()
            ))
        })?;
        self.complete(&acks)
    }

    /// Applies acknowledgements (`ACK_WORDS` words each). Unknown deliveries
    /// are reported, not ignored: they would mean the two sides disagree.
    pub fn complete(&self, acks: &[u32]) -> Result<(), BusError> {
        if !acks.len().is_multiple_of(ACK_WORDS) {
            return Err(BusError::InvalidArgument(format!(
                "acknowledgements must come in groups of {ACK_WORDS} words, got {}",
                acks.len()
            )));
        }
        let now = Instant::now();
        let mut released = 0;
        let mut unknown = Vec::new();
        let mut tally = OutcomeTally::default();
        {
            let mut in_flight = self.inner.in_flight.lock();
            for ack in acks.chunks_exact(ACK_WORDS) {
                let (slot, handler, code) = (ack[0], ack[1], ack[2]);
                let (Some(outcome), Some(entry)) =
                    (Outcome::from_code(code), in_flight.remove(slot, handler))
                else {
                    unknown.push(format!("{slot}/{handler}/{code}"));
                    continue;
                };
                released += entry.permits;
                let elapsed = now.saturating_duration_since(entry.since).as_nanos() as u64;
                tally.add(outcome, entry.record.lane, elapsed);
            }
        }
        self.inner.metrics.record(&tally);
        self.inner.release_permits(released);
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(BusError::InvalidArgument(format!(
                "acknowledged deliveries that were not in flight: {}",
                unknown.join(", ")
            )))
        }
    }

    /// Counts `n` individual handler failures (an event may have several).
    pub fn record_handler_failures(&self, n: u64) {
        self.inner
            .metrics
            .handler_failures
            .fetch_add(n, Ordering::Relaxed);
    }

    pub fn queue_state(&self) -> QueueState {
        QueueState {
            depth: std::array::from_fn(|lane| self.inner.ring.depth(lane)),
            in_flight_deliveries: self.inner.in_flight.lock().len() as u32,
            in_flight_permits: self.inner.permits.in_use(),
        }
    }

    /// Stops intake by the workers and joins them. Records still in the ring
    /// stay there; the caller decides what to do with them.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let workers: Vec<Worker> = self.workers.lock().drain(..).collect();
        join_all(&self.inner, workers);
        *self.inner.notifier.write() = None;
    }

    /// Takes every record not yet handed to JavaScript, in priority order.
    /// Only meaningful once the workers are stopped.
    pub fn drain_undelivered(&self) -> Vec<Record> {
        let _dispatch = self.inner.dispatch.lock();
        std::iter::from_fn(|| self.inner.ring.pop_next()).collect()
    }
}

fn join_all(inner: &Inner, mut workers: Vec<Worker>) {
    for w in &workers {
        w.stop.store(true, Ordering::SeqCst);
    }
    {
        let _guard = inner.park.lock();
        inner.records_cv.notify_all();
        inner.permits_cv.notify_all();
    }
    for w in &mut workers {
        if let Some(t) = w.thread.take() {
            // A worker that panicked has nothing left to clean up; its
            // records are still in the ring or in flight.
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
    fn should_stop(&self, me: &AtomicBool) -> bool {
        me.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed)
    }

    fn run_worker(&self, stop: &AtomicBool, stats: &WorkerStats) {
        let Some(notifier) = self.notifier.read().clone() else {
            return;
        };
        while !self.should_stop(stop) {
            match self.collect_and_deliver(&*notifier, stats) {
                Collected::Delivered => {}
                Collected::Empty => self.park_until_records(stop),
                Collected::NoPermits(need) => self.park_until_permits(stop, need),
            }
        }
    }

    /// Takes the next records in priority order that fit in the window and
    /// publishes them to the hand-off queue. A record that does not fit
    /// stays at the head of its lane, so a higher-priority record arriving
    /// meanwhile still goes first.
    fn collect_and_deliver(&self, notifier: &dyn Notifier, stats: &WorkerStats) -> Collected {
        let dispatch = self.dispatch.lock();
        let mut batch: Vec<(Record, u32)> = Vec::new();
        let mut short_of = 0;
        {
            let counts = self.handler_counts.read();
            while batch.len() < MAX_BATCH {
                let mut need = 0;
                let taken = self.ring.pop_next_if(|rec| {
                    let handlers = counts.get(rec.type_id as usize).copied().unwrap_or(0);
                    need = self.permits.needed_for(handlers);
                    // The hand-off queue is at least the window and every
                    // delivery holds a permit, so a permit guarantees a cell.
                    self.permits.try_acquire(need)
                });
                match taken {
                    Some(rec) => batch.push((rec, need)),
                    None => {
                        short_of = need;
                        break;
                    }
                }
            }
        }
        if batch.is_empty() {
            return if short_of > 0 {
                Collected::NoPermits(short_of)
            } else {
                Collected::Empty
            };
        }
        // Registered before JavaScript can see them, so an acknowledgement
        // always finds its delivery; one short lock for the whole batch,
        // because the JavaScript thread takes the same lock to acknowledge.
        let now = Instant::now();
        {
            let mut in_flight = self.in_flight.lock();
            for &(record, permits) in &batch {
                in_flight.insert(
                    record.slot,
                    0,
                    InFlight {
                        record,
                        permits,
                        since: now,
                    },
                );
            }
        }
        for &(record, _) in &batch {
            let pushed = self.handoff.push(record.slot, 0, 0);
            debug_assert!(pushed, "hand-off queue smaller than the window");
            self.metrics.dispatched[record.lane as usize].fetch_add(1, Ordering::Relaxed);
        }
        stats.busy.store(true, Ordering::Relaxed);
        if self.handoff.publish() && !notifier.notify() {
            // The JavaScript side is gone (process exit): nobody will run
            // these handlers. Count them so the loss is visible.
            self.handoff.notification_failed();
            self.metrics
                .undeliverable
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        drop(dispatch);
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .deliveries
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.busy.store(false, Ordering::Relaxed);
        stats
            .last_active_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Collected::Delivered
    }

    fn release_permits(&self, n: u32) {
        if n == 0 {
            return;
        }
        self.permits.release(n);
        if self.permit_waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.park.lock();
            self.permits_cv.notify_one();
        }
    }

    /// Parks at once, without spinning first: the producer wakes consumers
    /// once per synchronous run of emissions, and a consumer spinning on the
    /// ring's cache lines while the producer writes them slowed the producer
    /// more than the futex round trip costs.
    fn park_until_records(&self, stop: &AtomicBool) {
        let mut guard = self.park.lock();
        let sleepers = self.ring.sleepers();
        sleepers.fetch_add(1, Ordering::SeqCst);
        // Cleared under the lock: a producer that sets it from now on will
        // also call `wake`, which needs this lock, so it cannot be missed.
        self.ring.wake_requested().store(0, Ordering::SeqCst);
        if self.ring.is_empty() && !self.should_stop(stop) {
            self.records_cv.wait_for(&mut guard, PARK_TIMEOUT);
        }
        sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    fn park_until_permits(&self, stop: &AtomicBool, need: u32) {
        let mut guard = self.park.lock();
        self.permit_waiters.fetch_add(1, Ordering::SeqCst);
        if self.permits.available() < need as i64 && !self.should_stop(stop) {
            self.permits_cv.wait_for(&mut guard, PARK_TIMEOUT);
        }
        self.permit_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
