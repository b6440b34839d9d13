//! The in-flight window: how many handler invocations may run at once.

use std::sync::atomic::{AtomicI64, Ordering};

pub struct Permits {
    limit: AtomicI64,
    available: AtomicI64,
}

impl Permits {
    pub fn new(limit: u32) -> Self {
        Permits {
            limit: AtomicI64::new(limit as i64),
            available: AtomicI64::new(limit as i64),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed) as u32
    }

    pub fn available(&self) -> i64 {
        self.available.load(Ordering::SeqCst)
    }

    pub fn in_use(&self) -> u32 {
        (self.limit.load(Ordering::Relaxed) - self.available()).max(0) as u32
    }

    /// Moves the window's size to `limit`; permits in use stay taken, so a
    /// smaller window fills up again only as running deliveries finish.
    pub fn set_limit(&self, limit: u32) {
        let old = self.limit.swap(limit as i64, Ordering::SeqCst);
        self.available
            .fetch_add(limit as i64 - old, Ordering::SeqCst);
    }

    /// Takes `n` permits if that many are free.
    pub fn try_acquire(&self, n: u32) -> bool {
        let n = n as i64;
        let mut cur = self.available.load(Ordering::SeqCst);
        while cur >= n {
            match self.available.compare_exchange_weak(
                cur,
                cur - n,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    pub fn release(&self, n: u32) {
        self.available.fetch_add(n as i64, Ordering::SeqCst);
    }

    /// How many permits one delivery to `handlers` handlers takes: one per
    /// handler, but never more than the whole window, so an event with a
    /// wider fan-out than the window still runs (alone).
    pub fn needed_for(&self, handlers: u32) -> u32 {
        handlers.clamp(1, self.limit().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_release_and_fan_out_clamp() {
        let p = Permits::new(4);
        assert!(p.try_acquire(3));
        assert!(!p.try_acquire(2));
        assert_eq!(p.in_use(), 3);
        p.release(3);
        assert_eq!(p.needed_for(0), 1);
        assert_eq!(p.needed_for(10), 4);
        assert!(p.try_acquire(4));
        assert_eq!(p.available(), 0);
    }

    #[test]
    fn a_smaller_window_waits_for_running_deliveries() {
        let p = Permits::new(4);
        assert!(p.try_acquire(3));
        p.set_limit(2);
        assert!(!p.try_acquire(1), "3 running, window 2");
        p.release(3);
        assert_eq!((p.available(), p.limit()), (2, 2));
        p.set_limit(4);
        assert!(p.try_acquire(4));
    }
}
