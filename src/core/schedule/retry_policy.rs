//! When a failed handler runs again: BootifyJS's policy. Attempt 0 plus
//! `retryAttempts` retries; the delay before retry k is `retryDelays[k]`
//! with ±25 % jitter, falling back to `1000 · 2^k` ms capped at 30 s when the
//! list is shorter, and never under 100 ms.

use std::time::Duration;

pub const MIN_DELAY_MS: f64 = 100.0;
pub const MAX_FALLBACK_MS: f64 = 30_000.0;
pub const JITTER: f64 = 0.25;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub delays_ms: Vec<u32>,
}

impl RetryPolicy {
    pub fn new(retries: u32, delays_ms: Vec<u32>) -> Self {
        RetryPolicy { retries, delays_ms }
    }

    /// Whether a delivery that failed on `attempt` (0 = first run) may run again.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.retries
    }

    /// The nominal delay before retry `k` (0-based), before jitter.
    pub fn base_delay_ms(&self, k: u32) -> f64 {
        match self.delays_ms.get(k as usize) {
            Some(&ms) => ms as f64,
            None => (1000.0 * 2f64.powi(k.min(31) as i32)).min(MAX_FALLBACK_MS),
        }
    }

    /// The delay before retry `k`, with `unit` (uniform in [0, 1)) choosing
    /// the jitter.
    pub fn delay(&self, k: u32, unit: f64) -> Duration {
        let base = self.base_delay_ms(k);
        let jittered = base * (1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0));
        Duration::from_micros((jittered.max(MIN_DELAY_MS) * 1000.0) as u64)
    }
}

/// A small, fast, non-cryptographic generator for jitter (xorshift64*).
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_first_run_plus_retries() {
        let p = RetryPolicy::new(3, vec![1000, 2000, 4000]);
        assert!(p.should_retry(0) && p.should_retry(2));
        assert!(!p.should_retry(3));
        assert!(!RetryPolicy::new(0, vec![100]).should_retry(0));
    }

    #[test]
    fn delays_follow_the_list_then_double_up_to_30s() {
        let p = RetryPolicy::new(10, vec![100, 250]);
        assert_eq!(p.base_delay_ms(0), 100.0);
        assert_eq!(p.base_delay_ms(1), 250.0);
        assert_eq!(p.base_delay_ms(2), 4000.0);
        assert_eq!(p.base_delay_ms(4), 16_000.0);
        assert_eq!(p.base_delay_ms(5), 30_000.0);
        assert_eq!(p.base_delay_ms(40), 30_000.0);
    }

    #[test]
    fn jitter_stays_within_25_percent_and_never_under_100ms() {
        let p = RetryPolicy::new(3, vec![1000, 100]);
        let mut j = Jitter::new(42);
        let (mut lo, mut hi) = (f64::MAX, 0f64);
        for _ in 0..10_000 {
            let ms = p.delay(0, j.next_unit()).as_secs_f64() * 1000.0;
            assert!((750.0..=1250.0).contains(&ms), "{ms}");
            lo = lo.min(ms);
            hi = hi.max(ms);
            let short = p.delay(1, j.next_unit()).as_secs_f64() * 1000.0;
            assert!((100.0..=125.0).contains(&short), "{short}");
        }
        assert!(
            lo < 770.0 && hi > 1230.0,
            "jitter covers the range: {lo}..{hi}"
        );
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(750));
        assert_eq!(p.delay(0, 1.0), Duration::from_millis(1250));
    }
}
