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

    pub fn snapshot(&self) -> Vec<TypeSnapshot> {
        let stats = self.stats.read();
        let names = self.names.read();
        stats
            .iter()
            .enumerate()
            .map(|(i, s)| TypeSnapshot {
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
            })
            .collect()
    }
}

/// Bumps `counter` of `type_id`'s stats, if the type is known.
pub fn bump(stats: &[TypeStats], type_id: u32, counter: impl Fn(&TypeStats) -> &AtomicU64) {
    if let Some(s) = stats.get(type_id as usize) {
        counter(s).fetch_add(1, Ordering::Relaxed);
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
        let snap = t.snapshot();
        assert_eq!(snap.len(), 3);
        assert_eq!(snap[2].name, "order.created");
        assert_eq!((snap[2].handlers, snap[2].dispatched), (3, 1));
        assert_eq!(snap[0].name, "type-0");
    }
}
