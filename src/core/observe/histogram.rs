//! A lock-free log-linear histogram of microsecond durations, in the style
//! of HdrHistogram: exact below 64 µs, then 32 sub-buckets per power of two
//! (at most ~3 % relative error) up to about 2^36 µs (19 hours). Recording
//! is three relaxed atomic adds; reading scans the buckets without
//! stopping writers.

use std::sync::atomic::{AtomicU64, Ordering};

const LINEAR: u64 = 64;
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two from 2^6 up to 2^36.
const OCTAVES: u64 = 31;
pub const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;

pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

/// Bucket index of `v` µs.
fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    // The highest set bit picks the octave; the next SUB_BITS bits the
    // sub-bucket within it.
    let top = 63 - v.leading_zeros() as u64; // >= 6
    let octave = top - 6;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = (v >> (top - SUB_BITS as u64)) & (SUB - 1);
    (LINEAR + octave * SUB + sub) as usize
}

/// The largest value (µs) that lands in bucket `i`.
pub fn upper_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let octave = (i - LINEAR) / SUB;
    let sub = (i - LINEAR) % SUB;
    let top = octave + 6;
    let shift = top - SUB_BITS as u64;
    ((SUB + sub + 1) << shift) - 1
}

/// A consistent-enough view for reporting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub sum_us: u64,
    pub max_us: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
}

/// Values gathered by one thread (a batch of deliveries or acknowledgements)
/// and merged with one atomic add per touched bucket instead of several
/// atomics per value.
pub struct LocalHistogram {
    counts: Vec<u32>,
    touched: Vec<u16>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for LocalHistogram {
    fn default() -> Self {
        LocalHistogram {
            counts: vec![0; BUCKETS],
            touched: Vec::new(),
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl LocalHistogram {
    pub fn add(&mut self, us: u64) {
        let i = index(us);
        if self.counts[i] == 0 {
            self.touched.push(i as u16);
        }
        self.counts[i] += 1;
        self.count += 1;
        self.sum += us;
        self.max = self.max.max(us);
    }

    pub fn max(&self) -> u64 {
        self.max
    }
}

impl Histogram {
    /// Adds everything in `local` (which is left empty).
    pub fn merge(&self, local: &mut LocalHistogram) {
        if local.count == 0 {
            return;
        }
        for i in local.touched.drain(..) {
            let i = i as usize;
            self.buckets[i].fetch_add(local.counts[i] as u64, Ordering::Relaxed);
            local.counts[i] = 0;
        }
        self.count.fetch_add(local.count, Ordering::Relaxed);
        self.sum.fetch_add(local.sum, Ordering::Relaxed);
        self.max.fetch_max(local.max, Ordering::Relaxed);
        local.count = 0;
        local.sum = 0;
        local.max = 0;
    }

    pub fn record(&self, us: u64) {
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(us, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// Bucket counts, for exporting.
    pub fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// The value (µs, a bucket's upper bound) at or below which `q` of the
    /// recorded values fall; 0 when empty.
    fn quantile(counts: &[u64], total: u64, q: f64) -> u64 {
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_bound(i);
            }
        }
        upper_bound(counts.len() - 1)
    }

    pub fn summary(&self) -> Summary {
        let counts = self.counts();
        // Sum the snapshot, not `count`: writers may have moved on.
        let total: u64 = counts.iter().sum();
        let max = self.max.load(Ordering::Relaxed);
        let q = |p| Self::quantile(&counts, total, p).min(max);
        Summary {
            count: total,
            sum_us: self.sum.load(Ordering::Relaxed),
            max_us: max,
            p50_us: q(0.50),
            p95_us: q(0.95),
            p99_us: q(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_with_bounded_error() {
        for v in [
            0u64,
            1,
            63,
            64,
            65,
            100,
            1000,
            4095,
            4096,
            123_456,
            10_000_000,
            1 << 35,
        ] {
            let i = index(v);
            let hi = upper_bound(i);
            assert!(hi >= v, "{v} -> bucket {i} with upper bound {hi}");
            let lo = if i == 0 { 0 } else { upper_bound(i - 1) + 1 };
            assert!(lo <= v, "{v} -> bucket {i} starting at {lo}");
            assert!(
                (hi - lo) as f64 <= (v as f64 / 16.0).max(1.0),
                "bucket too wide at {v}: {lo}..{hi}"
            );
        }
        let bounds: Vec<u64> = (0..BUCKETS).map(upper_bound).collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds increase");
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_follow_the_distribution() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!((s.count, s.max_us, s.sum_us), (1000, 1000, 500_500));
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.04;
        assert!(near(s.p50_us, 500), "{s:?}");
        assert!(near(s.p95_us, 950), "{s:?}");
        assert!(near(s.p99_us, 990), "{s:?}");
        assert_eq!(Histogram::default().summary(), Summary::default());
    }

    #[test]
    fn merged_batches_equal_recorded_values() {
        let (direct, merged) = (Histogram::default(), Histogram::default());
        let mut local = LocalHistogram::default();
        for v in (0..5000u64).map(|i| i * 37 % 20_000) {
            direct.record(v);
            local.add(v);
        }
        merged.merge(&mut local);
        assert_eq!(direct.counts(), merged.counts());
        assert_eq!(direct.summary(), merged.summary());
        merged.merge(&mut local);
        assert_eq!(
            merged.summary().count,
            5000,
            "merging leaves the batch empty"
        );
    }

    #[test]
    fn recording_is_safe_from_many_threads() {
        let h = std::sync::Arc::new(Histogram::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for v in 0..10_000u64 {
                        h.record(v * (t + 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("recorder");
        }
        assert_eq!(h.summary().count, 40_000);
        assert_eq!(h.counts().iter().sum::<u64>(), 40_000);
    }
}
