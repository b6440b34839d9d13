//! Putting back what a worker took but could not hand over: deliveries
//! that found no room in a hand-off queue, and the batch of a worker that
//! panicked (then reported, and the worker carries on).

use std::any::Any;
use std::sync::atomic::Ordering;

use super::worker::{Stage, Taken};
use super::{Inner, WorkerError, WorkerStats};

impl Inner {
    /// Puts back deliveries of `batch` (by index) that found no room in
    /// their hand-off queue: out of flight, permits released, in front of
    /// their lanes in order.
    pub(super) fn requeue_unpublished(&self, batch: &[Taken], unpublished: &[usize]) {
        let mut back = Vec::with_capacity(unpublished.len());
        let mut permits = 0;
        {
            let mut in_flight = self.in_flight.lock();
            for &i in unpublished {
                let t = &batch[i];
                let mut delivery = t.delivery.clone();
                if let Some(entry) = in_flight.remove(delivery.record.slot, delivery.handler) {
                    delivery.errors = entry.errors;
                }
                permits += t.permits;
                back.push(delivery);
            }
        }
        self.queue.put_back(back);
        self.metrics
            .requeued
            .fetch_add(unpublished.len() as u64, Ordering::Relaxed);
        self.release_permits(permits);
    }

    /// Puts back what a panicking worker held and reports the panic.
    pub(super) fn recover(
        &self,
        worker: u32,
        batch: &mut Vec<Taken>,
        stage: Stage,
        panic: Box<dyn Any + Send>,
        stats: &WorkerStats,
    ) {
        let mut requeued = 0;
        if stage != Stage::Published {
            let mut back = Vec::with_capacity(batch.len());
            let mut permits = 0;
            {
                let mut in_flight = self.in_flight.lock();
                for mut t in batch.drain(..) {
                    if stage == Stage::Registered {
                        if let Some(entry) =
                            in_flight.remove(t.delivery.record.slot, t.delivery.handler)
                        {
                            t.delivery.errors = entry.errors;
                        }
                    }
                    permits += t.permits;
                    back.push(t.delivery);
                }
            }
            requeued = back.len() as u32;
            self.queue.put_back(back);
            self.release_permits(permits);
        }
        batch.clear();
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "worker thread panicked".to_string());
        self.metrics.worker_restarts.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .requeued
            .fetch_add(requeued as u64, Ordering::Relaxed);
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        stats.busy.store(false, Ordering::Relaxed);
        self.logs.emit(|| {
            tracing::error!(
                target: "events::worker",
                worker,
                panic = message.as_str(),
                requeued,
                "worker thread panicked; its deliveries were put back and it carries on"
            )
        });
        self.worker_errors.lock().push(WorkerError {
            worker,
            message,
            requeued,
        });
        self.ring.count_worker_error();
        // Make sure the main thread looks, even with no delivery to announce.
        if let Some(main) = self.sinks.read().first().cloned() {
            self.publish(&main, 0);
        }
    }
}
