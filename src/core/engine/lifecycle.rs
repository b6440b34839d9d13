//! Starting, scaling and stopping the engine's threads: the native
//! workers and the retry timer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::sinks::Stopped;
use super::{Engine, Inner, Leftovers, Notifier, Sink, Worker, WorkerStats};
use crate::core::config::WORKER_COUNT_RANGE;
use crate::core::error::BusError;
use crate::core::observe::rates::SAMPLE_EVERY;

impl Engine {
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
        let started = count.saturating_sub(workers.len() as u32);
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
        if started > 0 || !surplus.is_empty() {
            self.inner.logs.emit(|| {
                tracing::info!(
                    target: "events::worker",
                    workers = count,
                    started,
                    stopping = surplus.len(),
                    "worker pool scaled"
                )
            });
        }
        join_all(&self.inner, surplus);
        Ok(())
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
        self.inner
            .logs
            .emit(|| tracing::info!(target: "events::worker", "workers and retry timer stopped"));
        let _dispatch = self.inner.dispatch.lock();
        // The main thread's notifier holds its JavaScript callback, and so
        // the bus that owns this engine: dropping it is what lets a bus that
        // was shut down be collected. What isolates finish after this is in
        // the books' reports, which JavaScript takes once they are stopped.
        if let Some(main) = self.inner.sinks.write().first_mut().filter(|s| s.id == 0) {
            *main = Arc::new(Sink {
                id: 0,
                handoff: main.handoff.clone(),
                notifier: Arc::new(Stopped),
                deliveries: AtomicU64::new(main.deliveries.load(Ordering::Relaxed)),
            });
        }
        let mut left = self.inner.queue.drain();
        let (backlogged, permits) = self.inner.backlog.remove(|_| true);
        left.redeliveries.extend(backlogged);
        self.inner.release_permits(permits);
        left
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
    /// Releases retries whose backoff has expired and samples the rates,
    /// then sleeps until the next retry is due or the next sample. Once a
    /// sample finds nothing changed since the last one, it stops sampling
    /// and sleeps until a retry is due or it is nudged (an emission woke a
    /// worker, a completion, a read of the rates, a retry scheduled), so an
    /// idle bus wakes no thread at all. Everything that nudges it takes the
    /// park lock, which this thread holds except while it waits.
    fn run_timer(&self) {
        let mut guard = self.park.lock();
        let mut next_sample = Instant::now();
        let mut last = None;
        while !self.stopping.load(Ordering::SeqCst) {
            let now = Instant::now();
            let (moved, next) = self.queue.promote(now);
            if moved > 0 {
                self.records_cv.notify_one();
                self.permits_cv.notify_one();
            }
            let mut idle = false;
            if now >= next_sample {
                let totals = (self.ring.tails(), self.metrics.completed());
                self.rates.sample(now, totals.0, totals.1);
                idle = last == Some(totals);
                last = Some(totals);
                next_sample = now + SAMPLE_EVERY;
            }
            self.timer_idle.store(idle, Ordering::Relaxed);
            if idle {
                match next {
                    Some(due) => {
                        self.timer_cv.wait_until(&mut guard, due);
                    }
                    None => self.timer_cv.wait(&mut guard),
                }
                self.timer_idle.store(false, Ordering::Relaxed);
                // Woken by activity: sample at once, so the window starts here.
                next_sample = Instant::now();
                continue;
            }
            let until = next.map_or(next_sample, |due| due.min(next_sample));
            if until > Instant::now() {
                self.timer_cv.wait_until(&mut guard, until);
            }
        }
    }
}
