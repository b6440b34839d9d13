//! Input and processing rates over a sliding window, from totals sampled
//! by the timer thread (every 100 ms).

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    enqueued: u64,
    completed: u64,
}

#[derive(Default)]
struct State {
    samples: VecDeque<Sample>,
    /// Lane tails at the last sample (wrapping counts of records pushed).
    tails: [u32; 3],
    enqueued: u64,
}

#[derive(Default)]
pub struct RateWindow {
    state: Mutex<State>,
}

/// Events per second over the window (or since the first sample).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub input: f64,
    pub processing: f64,
    /// Seconds the rates are taken over.
    pub window: f64,
}

impl RateWindow {
    /// Records the totals now: `tails` are the ring's lane tails (records
    /// pushed, wrapping), `completed` the deliveries acknowledged.
    pub fn sample(&self, now: Instant, tails: [u32; 3], completed: u64) {
        let mut s = self.state.lock();
        let pushed: u64 = tails
            .iter()
            .zip(s.tails)
            .map(|(&t, old)| t.wrapping_sub(old) as u64)
            .sum();
        s.tails = tails;
        s.enqueued += pushed;
        let enqueued = s.enqueued;
        s.samples.push_back(Sample {
            at: now,
            enqueued,
            completed,
        });
        while s
            .samples
            .front()
            .is_some_and(|f| now.duration_since(f.at) > WINDOW)
        {
            s.samples.pop_front();
        }
    }

    pub fn rates(&self) -> Rates {
        let s = self.state.lock();
        let (Some(first), Some(last)) = (s.samples.front(), s.samples.back()) else {
            return Rates::default();
        };
        let secs = last.at.duration_since(first.at).as_secs_f64();
        if secs <= 0.0 {
            return Rates::default();
        }
        Rates {
            input: (last.enqueued - first.enqueued) as f64 / secs,
            processing: last.completed.saturating_sub(first.completed) as f64 / secs,
            window: secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_window_and_survive_tail_wrap() {
        let w = RateWindow::default();
        let t0 = Instant::now();
        assert_eq!(w.rates(), Rates::default());
        w.sample(t0, [u32::MAX - 10, 0, 0], 0);
        w.sample(
            t0 + Duration::from_secs(1),
            [(u32::MAX - 10).wrapping_add(100), 50, 0],
            120,
        );
        let r = w.rates();
        assert!((r.input - 150.0).abs() < 1e-6, "{r:?}");
        assert!((r.processing - 120.0).abs() < 1e-6, "{r:?}");
        // Samples older than the window drop out.
        w.sample(
            t0 + WINDOW + Duration::from_secs(5),
            [(u32::MAX - 10).wrapping_add(100), 50, 0],
            120,
        );
        let r = w.rates();
        assert_eq!((r.input, r.processing), (0.0, 0.0));
    }
}
