//! Where a worker waits: for records, for permits, for an isolate to
//! attach, or out its restart delay. No wait has a timeout: a parked
//! worker costs nothing, and each wait's protocol (commented where it is)
//! makes a wake-up impossible to miss.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Instant;

use super::Inner;

impl Inner {
    /// Sleeps for `delay` unless asked to stop.
    pub(super) fn pause(&self, stop: &AtomicBool, delay: std::time::Duration) {
        let deadline = Instant::now() + delay;
        let mut guard = self.park.lock();
        while !self.should_stop(stop) && Instant::now() < deadline {
            self.pause_cv.wait_until(&mut guard, deadline);
        }
    }

    /// Parks at once, without spinning first: the producer wakes consumers
    /// once per run of emissions, and a consumer spinning on the ring's
    /// cache lines while the producer writes them slowed the producer more
    /// than the futex round trip costs.
    pub(super) fn park_until_records(&self, stop: &AtomicBool) {
        let mut guard = self.park.lock();
        let word = self.ring.park_word();
        // Counted as parked before the last look at the ring, in the
        // handshake `ParkWord` explains: a producer that publishes from
        // now on sees this thread parked and calls `wake`, which needs the
        // park lock, held here until the wait releases it.
        word.enter();
        if !self.has_work() && !self.should_stop(stop) {
            self.records_cv.wait(&mut guard);
        }
        word.leave();
    }

    /// The next delivery waits for an isolate to attach (`attach_sink`
    /// wakes every parked worker) or for a record that may rank above it.
    pub(super) fn park_until_attached(&self, stop: &AtomicBool, seen: u64) {
        let mut guard = self.park.lock();
        let word = self.ring.park_word();
        word.enter();
        // Checked under the park lock, which `attach_sink` takes to notify
        // after counting its sink: an isolate attaching now is not missed.
        if self.attach_generation.load(Ordering::SeqCst) == seen && !self.should_stop(stop) {
            self.records_cv.wait(&mut guard);
        }
        word.leave();
    }

    pub(super) fn park_until_permits(&self, stop: &AtomicBool, need: u32) {
        let mut guard = self.park.lock();
        self.permit_waiters.fetch_add(1, Ordering::SeqCst);
        // The same store-load pattern against `release` then
        // `wake_permit_waiters`.
        fence(Ordering::SeqCst);
        if self.permits.available() < need as i64 && !self.should_stop(stop) {
            self.permits_cv.wait(&mut guard);
        }
        self.permit_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
