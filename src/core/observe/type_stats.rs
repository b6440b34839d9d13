//! Per event type: the handler count (which decides the permits a fan-out
//! takes) and counters. Type ids are interned by JavaScript; names arrive
//! once per type, for reporting.

use parking_lot::RwLock;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[derive(Default)]
pub struct TypeStats {
    pub handlers: AtomicU32,
    /// Handled in worker isolates rather than on the main thread.
    pub isolated: AtomicBool,
    pub dispatched: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub dead_lettered: AtomicU64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TypeSnapshot {
    pub name: String,
    pub handlers: u32,
    pub dispatched: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retries: u64,
    pub dead_lettered: u64,
}

#[derive(Default)]
pub struct TypeTable {
    stats: RwLock<Vec<TypeStats>>,
    names: RwLock<Vec<String>>,
}

impl TypeTable {
    fn ensure(&self, type_id: u32) {
        let needed = type_id as usize + 1;
        if self.stats.read().len() < needed {
            let mut stats = self.stats.write();
            if stats.len() < needed {
                stats.resize_with(needed, TypeStats::default);
            }
        }
    }

    pub fn set_name(&self, type_id: u32, name: &str) {
        self.ensure(type_id);
        let mut names = self.names.write();
        let i = type_id as usize;
        if names.len() <= i {
            names.resize(i + 1, String::new());
        }
        names[i] = name.to_string();
    }

    /// The type's name, for logs; empty until JavaScript sent it.
    pub fn name(&self, type_id: u32) -> String {
        self.names
            .read()
            .get(type_id as usize)
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_handlers(&self, type_id: u32, count: u32) {
        self.ensure(type_id);
        if let Some(s) = self.stats.read().get(type_id as usize) {
            s.handlers.store(count, Ordering::Relaxed);
        }
    }

    pub fn set_isolated(&self, type_id: u32, isolated: bool) {
        self.ensure(type_id);
        if let Some(s) = self.stats.read().get(type_id as usize) {
            s.isolated.store(isolated, Ordering::Relaxed);
        }
    }

    /// Runs `f` with the table read-locked: one lock for a whole batch.
    pub fn read<R>(&self, f: impl FnOnce(&[TypeStats]) -> R) -> R {
        f(&self.stats.read())
    }

    /// The `limit` types with the most deliveries, most first, then, if
    /// there were more, one entry named [`OTHER_TYPES`] summing the rest
    /// (its `handlers` is how many types it stands for). Bounded in size
    /// and cost whatever the number of types: an application that puts an
    /// id into its event types must not make every metrics read, or the
    /// Prometheus page, grow with them.
    pub fn snapshot(&self, limit: usize) -> Vec<TypeSnapshot> {
        let stats = self.stats.read();
        let names = self.names.read();
        let counts = |i: usize, s: &TypeStats| TypeSnapshot {
            name: names
                .get(i)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("type-{i}")),
            handlers: s.handlers.load(Ordering::Relaxed),
            dispatched: s.dispatched.load(Ordering::Relaxed),
            succeeded: s.succeeded.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
        };
        if stats.len() <= limit {
            return stats
                .iter()
                .enumerate()
                .map(|(i, s)| counts(i, s))
                .collect();
        }
        let mut order: Vec<(u64, usize)> = stats
            .iter()
            .enumerate()
            .map(|(i, s)| (s.dispatched.load(Ordering::Relaxed), i))
            .collect();
        // Busiest first; ties by type id, so the choice is stable.
        let by_activity = |a: &(u64, usize), b: &(u64, usize)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        order.select_nth_unstable_by(limit, by_activity);
        let (top, rest) = order.split_at_mut(limit);
        top.sort_unstable_by(by_activity);
        let mut out: Vec<TypeSnapshot> = top.iter().map(|&(_, i)| counts(i, &stats[i])).collect();
        let mut other = TypeSnapshot {
            name: OTHER_TYPES.to_string(),
            handlers: rest.len() as u32,
            dispatched: 0,
            succeeded: 0,
            failed: 0,
            retries: 0,
            dead_lettered: 0,
        };
        for &(_, i) in rest.iter() {
            let s = &stats[i];
            other.dispatched += s.dispatched.load(Ordering::Relaxed);
            other.succeeded += s.succeeded.load(Ordering::Relaxed);
            other.failed += s.failed.load(Ordering::Relaxed);
            other.retries += s.retries.load(Ordering::Relaxed);
            other.dead_lettered += s.dead_lettered.load(Ordering::Relaxed);
        }
        out.push(other);
        out
    }
}

/// Types reported one by one in metrics; the rest are summed.
pub const REPORTED_TYPES: usize = 1000;
/// The name of the entry that sums the types past [`REPORTED_TYPES`].
pub const OTHER_TYPES: &str = "(other types)";

/// Bumps `counter` of `type_id`'s stats, if the type is known.
pub fn bump(stats: &[TypeStats], type_id: u32, counter: impl Fn(&TypeStats) -> &AtomicU64) {
    add(stats, type_id, &counter, 1);
}

fn add(stats: &[TypeStats], type_id: u32, counter: &impl Fn(&TypeStats) -> &AtomicU64, n: u64) {
    if let Some(s) = stats.get(type_id as usize) {
        counter(s).fetch_add(n, Ordering::Relaxed);
    }
}

/// One counter of the type table, counted for a whole batch and added with
/// one atomic add per run of equal types (on drop). A batch is mostly one
/// type, and the shared counters sit on cache lines other threads write:
/// an atomic add per event measured as the larger part of acknowledging it.
pub struct TypeTally<'a> {
    stats: &'a [TypeStats],
    counter: fn(&TypeStats) -> &AtomicU64,
    type_id: u32,
    n: u64,
}

impl<'a> TypeTally<'a> {
    pub fn new(stats: &'a [TypeStats], counter: fn(&TypeStats) -> &AtomicU64) -> Self {
        TypeTally {
            stats,
            counter,
            type_id: 0,
            n: 0,
        }
    }

    pub fn add(&mut self, type_id: u32) {
        if type_id != self.type_id {
            self.flush();
            self.type_id = type_id;
        }
        self.n += 1;
    }

    fn flush(&mut self) {
        if self.n > 0 {
            add(self.stats, self.type_id, &self.counter, self.n);
            self.n = 0;
        }
    }
}

impl Drop for TypeTally<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_grow_on_demand_and_report_by_name() {
        let t = TypeTable::default();
        t.set_name(2, "order.created");
        t.set_handlers(2, 3);
        t.read(|s| bump(s, 2, |x| &x.dispatched));
        t.read(|s| bump(s, 9, |x| &x.dispatched));
        let snap = t.snapshot(REPORTED_TYPES);
        assert_eq!(snap.len(), 3);
        assert_eq!(snap[2].name, "order.created");
        assert_eq!((snap[2].handlers, snap[2].dispatched), (3, 1));
        assert_eq!(snap[0].name, "type-0");
    }

    #[test]
    fn tallies_add_every_run_of_a_type_and_skip_unknown_types() {
        let t = TypeTable::default();
        t.set_handlers(2, 1);
        t.read(|s| {
            let mut tally = TypeTally::new(s, |x| &x.succeeded);
            for type_id in [2, 2, 1, 2, 9, 0] {
                tally.add(type_id);
            }
        });
        let snap = t.snapshot(REPORTED_TYPES);
        let succeeded: Vec<u64> = snap.iter().map(|s| s.succeeded).collect();
        assert_eq!(succeeded, [1, 1, 3]);
    }

    #[test]
    fn past_the_limit_the_busiest_types_are_reported_and_the_rest_summed() {
        let t = TypeTable::default();
        for i in 0..10u32 {
            t.set_name(i, &format!("t{i}"));
            t.read(|s| {
                for _ in 0..i {
                    bump(s, i, |x| &x.dispatched);
                }
                bump(s, i, |x| &x.failed);
            });
        }
        let snap = t.snapshot(3);
        let names: Vec<&str> = snap.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["t9", "t8", "t7", OTHER_TYPES]);
        let other = &snap[3];
        assert_eq!((other.handlers, other.dispatched, other.failed), (7, 21, 7));
        assert_eq!(t.snapshot(10).len(), 10, "no sum at the limit");
    }
}
