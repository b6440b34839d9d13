use napi_derive::napi;
use serde_json::Value;

use super::bus::NativeBus;
use crate::core::schedule::dead_letters::DeadLetter;

/// A dead letter as JavaScript sees it; the JavaScript layer adds the event.
#[napi(object)]
pub struct DeadLetterEntry {
    pub id: i64,
    pub slot: u32,
    pub handler_id: u32,
    pub handler: String,
    pub attempts: u32,
    /// Every attempt's error, oldest first: `{ message, name, stack, timedOut, at }`.
    pub errors: Value,
    /// Milliseconds since the Unix epoch.
    pub timestamp: f64,
}

impl From<DeadLetter> for DeadLetterEntry {
    fn from(d: DeadLetter) -> Self {
        DeadLetterEntry {
            id: d.id as i64,
            slot: d.slot,
            handler_id: d.handler_id,
            handler: d.handler,
            attempts: d.attempts,
            errors: serde_json::to_value(&d.errors).unwrap_or(Value::Null),
            timestamp: d.timestamp as f64,
        }
    }
}

fn entries(letters: Vec<DeadLetter>) -> Vec<DeadLetterEntry> {
    letters.into_iter().map(DeadLetterEntry::from).collect()
}

fn id_of(id: Option<i64>) -> Option<u64> {
    // Ids start at 1, so a negative or zero id matches nothing.
    id.map(|i| u64::try_from(i).unwrap_or(0))
}

#[napi]
impl NativeBus {
    /// Up to `limit` dead letters (default: all) from the `offset`-th.
    #[napi]
    pub fn dead_letters(&self, offset: Option<u32>, limit: Option<u32>) -> Vec<DeadLetterEntry> {
        let limit = limit.map_or(usize::MAX, |l| l as usize);
        entries(
            self.engine
                .dead_letters(offset.unwrap_or(0) as usize, limit),
        )
    }

    /// Puts one dead letter (or all) back with fresh attempts; returns them.
    #[napi]
    pub fn replay_dead_letters(&self, id: Option<i64>) -> Vec<DeadLetterEntry> {
        if id.is_some_and(|i| i <= 0) {
            return Vec::new();
        }
        entries(self.engine.replay_dead_letters(id_of(id)))
    }

    /// Removes one dead letter (or all); returns them.
    #[napi]
    pub fn remove_dead_letters(&self, id: Option<i64>) -> Vec<DeadLetterEntry> {
        if id.is_some_and(|i| i <= 0) {
            return Vec::new();
        }
        entries(self.engine.remove_dead_letters(id_of(id)))
    }

    /// Test hook: while set, starting a worker thread fails.
    #[napi]
    pub fn fail_worker_starts(&self, fail: bool) {
        self.engine.fail_worker_starts(fail);
    }
}
