//! How many entries a process holds ahead of its handlers.
//!
//! A read comes back after a round trip through Redis, the I/O thread and
//! JavaScript; if the process holds fewer entries than it finishes in that
//! time, its handlers wait for the next read. A fixed window large enough
//! for fast handlers would let one process with slow handlers hoard the
//! group's events while the others idle, so the window follows the rate at
//! which this process finishes events: enough for `AHEAD` of work, between
//! a floor (a few per concurrency slot) and a ceiling.

use std::time::{Duration, Instant};

/// The work a process holds ahead, at its current pace. Longer does not
/// handle more with one consumer, and with several it leaves more of a
/// queue's last events held by one of them while the others idle
/// (`bench/redis.mjs profile 50000 4 3`: 50 ms, 48-79 k/s; 20 ms,
/// 67-81 k/s).
pub const AHEAD: Duration = Duration::from_millis(20);
/// The most entries a process holds, whatever its pace: past this, larger
/// reads cost more in the engine's intake than they save in round trips
/// (measured: 4096 handled the most per second on this bench's machine).
pub const CEILING: usize = 4096;
/// How often the pace is measured.
const SAMPLE: Duration = Duration::from_millis(20);

pub struct ReadAhead {
    floor: usize,
    ceiling: usize,
    at: Instant,
    finished: u64,
    /// Events finished per second, smoothed.
    rate: f64,
}

impl ReadAhead {
    /// `floor`: the window of a process whose handlers are slow or idle.
    pub fn new(floor: usize, now: Instant) -> Self {
        ReadAhead {
            floor,
            ceiling: floor.max(CEILING),
            at: now,
            finished: 0,
            rate: 0.0,
        }
    }

    /// The window now, given `finished`: events this process has finished
    /// so far (a count that only grows).
    pub fn window(&mut self, finished: u64, now: Instant) -> usize {
        let dt = now.saturating_duration_since(self.at);
        if dt >= SAMPLE {
            let rate = finished.saturating_sub(self.finished) as f64 / dt.as_secs_f64();
            // Half the weight on the last sample: the window grows within a
            // few samples when load arrives, and shrinks as fast when
            // handlers slow down.
            self.rate = 0.5 * self.rate + 0.5 * rate;
            self.at = now;
            self.finished = finished;
        }
        let wanted = self.rate * AHEAD.as_secs_f64();
        (wanted as usize).clamp(self.floor, self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ahead: &mut ReadAhead, start: Instant, per_sample: u64, samples: u32) -> usize {
        let mut w = 0;
        for k in 1..=samples {
            w = ahead.window(u64::from(k) * per_sample, start + SAMPLE * k);
        }
        w
    }

    #[test]
    fn idle_or_slow_handlers_keep_the_floor() {
        let start = Instant::now();
        let mut ahead = ReadAhead::new(256, start);
        assert_eq!(ahead.window(0, start), 256, "before any measure");
        // 50 events a second.
        assert_eq!(run(&mut ahead, start, 1, 20), 256);
    }

    #[test]
    fn fast_handlers_grow_it_to_the_ceiling_and_a_slowdown_shrinks_it_back() {
        let start = Instant::now();
        let mut ahead = ReadAhead::new(256, start);
        // 500 000 a second: over the ceiling.
        assert_eq!(run(&mut ahead, start, 10_000, 10), CEILING);
        // 50 000 a second.
        let per_sample = 1000;
        let mut done = 100_000;
        let mut at = start + SAMPLE * 10;
        let mut w = 0;
        for _ in 0..30 {
            done += per_sample;
            at += SAMPLE;
            w = ahead.window(done, at);
        }
        let expected = per_sample as f64 / SAMPLE.as_secs_f64() * AHEAD.as_secs_f64();
        assert!(
            (w as f64 - expected).abs() <= expected * 0.01,
            "{w} (expected {expected})"
        );
        assert!(w > 256 && w < CEILING);
    }

    #[test]
    fn a_large_floor_is_its_own_ceiling() {
        let start = Instant::now();
        let mut ahead = ReadAhead::new(10_000, start);
        assert_eq!(run(&mut ahead, start, 10_000, 10), 10_000);
    }

    #[test]
    fn a_clock_or_count_going_back_does_not_break_it() {
        let start = Instant::now();
        let mut ahead = ReadAhead::new(64, start + Duration::from_secs(1));
        assert_eq!(ahead.window(100, start), 64);
        assert_eq!(ahead.window(0, start + Duration::from_secs(2)), 64);
    }
}
