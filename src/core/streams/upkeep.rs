//! What the link does on a timer: renews the claims on the entries this
//! process holds (a long handler, a retry waiting for its backoff), takes
//! over entries a dead process left pending, and reads the group's state
//! for the metrics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{cmd, RedisResult, Script, Value};

use super::io::{lane_keys, note, Taken};
use super::reply;
use super::{scripts, GroupState, Shared, GROUP, LANE_NAMES};

pub(super) async fn run(shared: Arc<Shared>, mut manager: ConnectionManager) {
    let stats = Script::new(scripts::STATS);
    let renewal = Script::new(scripts::RENEW);
    // A third of the idle time: a claim is renewed twice before it could
    // be taken over.
    let tick = Duration::from_millis((shared.claim_idle_ms / 3).clamp(50, 1000));
    let mut last_stats: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        renew(&shared, &renewal, &mut manager).await;
        if shared.reading.load(Ordering::SeqCst) {
            reclaim(&shared, &mut manager).await;
        }
        if last_stats.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_stats = Some(Instant::now());
            read_state(&shared, &stats, &mut manager).await;
            super::io::read_letters(&shared, &mut manager).await;
        }
    }
}

/// Resets the idle time of what this process holds (`scripts::RENEW`); an
/// entry another process took over meanwhile (this one was cut off from
/// Redis longer than `claimIdleMs`) is let go: it runs there.
async fn renew(shared: &Shared, script: &Script, manager: &mut ConnectionManager) {
    let due = Duration::from_millis(shared.claim_idle_ms / 3);
    let mut by_key: HashMap<Arc<str>, Vec<(u64, String)>> = HashMap::new();
    {
        let books = shared.books.lock();
        for (handle, h) in &books.held {
            if h.renewed.elapsed() >= due {
                by_key
                    .entry(h.key.clone())
                    .or_default()
                    .push((*handle, h.id.clone()));
            }
        }
    }
    for (key, entries) in by_key {
        let mut inv = script.prepare_invoke();
        inv.key(&*key).arg(GROUP).arg(&shared.consumer);
        for (_, id) in &entries {
            inv.arg(id);
        }
        let r: RedisResult<Vec<String>> = inv.invoke_async(manager).await;
        note(shared, &r);
        let Ok(lost) = r else { continue };
        let now = Instant::now();
        let mut books = shared.books.lock();
        for (handle, id) in &entries {
            if lost.contains(id) {
                // Its slot keeps running here; finishing it settles nothing.
                books.held.remove(handle);
                let slots: Vec<u32> = books
                    .by_slot
                    .iter()
                    .filter(|(_, h)| *h == handle)
                    .map(|(s, _)| *s)
                    .collect();
                for s in slots {
                    books.by_slot.remove(&s);
                    shared.lost_slots.lock().insert(s);
                }
                shared.counters.lost.fetch_add(1, Ordering::Relaxed);
            } else if let Some(h) = books.held.get_mut(handle) {
                h.renewed = now;
            }
        }
        shared.counters.renewed.fetch_add(
            (entries.len() - lost.len().min(entries.len())) as u64,
            Ordering::Relaxed,
        );
    }
}

/// Entries idle longer than `claimIdleMs` belong to a process presumed
/// dead: they are claimed here, each claim one more delivery.
async fn reclaim(shared: &Shared, manager: &mut ConnectionManager) {
    let types = shared.types.lock().clone();
    for lane in 0..LANE_NAMES.len() as u8 {
        for (key, lane, type_name) in lane_keys(shared, &types, lane) {
            let room = shared
                .window
                .load(Ordering::Relaxed)
                .saturating_sub(shared.books.lock().held.len());
            if room == 0 {
                return;
            }
            let r: RedisResult<Value> = cmd("XPENDING")
                .arg(&key)
                .arg(GROUP)
                .arg("IDLE")
                .arg(shared.claim_idle_ms)
                .arg("-")
                .arg("+")
                .arg(room)
                .query_async(manager)
                .await;
            // NOGROUP: nobody has read this stream yet.
            let Ok(v) = r else { continue };
            let lines = reply::pending(&v);
            if lines.is_empty() {
                continue;
            }
            // What this process holds, or finished and could not settle yet.
            let held: Vec<String> = {
                let books = shared.books.lock();
                let unsettled = shared.unsettled.lock();
                let unsent = shared.unsent_letters.lock();
                books
                    .held
                    .values()
                    .filter(|h| *h.key == *key)
                    .map(|h| h.id.clone())
                    .chain(
                        unsettled
                            .iter()
                            .filter(|(k, _)| **k == *key)
                            .map(|(_, id)| id.clone()),
                    )
                    .chain(
                        unsent
                            .iter()
                            .filter(|(k, _, _)| **k == *key)
                            .map(|(_, id, _)| id.clone()),
                    )
                    .collect()
            };
            let lines: Vec<_> = lines
                .into_iter()
                .filter(|l| !held.contains(&l.id))
                .collect();
            if lines.is_empty() {
                continue;
            }
            let mut c = cmd("XCLAIM");
            c.arg(&key)
                .arg(GROUP)
                .arg(&shared.consumer)
                .arg(shared.claim_idle_ms);
            for l in &lines {
                c.arg(&l.id);
            }
            let r: RedisResult<Value> = c.query_async(manager).await;
            note(shared, &r);
            let Ok(v) = r else { continue };
            let counts: HashMap<&str, u32> = lines
                .iter()
                .map(|l| (l.id.as_str(), l.deliveries))
                .collect();
            let (stream, type_name): (Arc<str>, Arc<str>) =
                (key.as_str().into(), type_name.as_str().into());
            let taken: Vec<Taken> = reply::claimed(v)
                .into_iter()
                .map(|e| {
                    let before = counts.get(e.id.as_str()).copied().unwrap_or(1);
                    (
                        stream.clone(),
                        lane,
                        type_name.clone(),
                        e,
                        before.saturating_add(1),
                    )
                })
                .collect();
            if !taken.is_empty() {
                let n = taken.len() as u64;
                shared.counters.reclaimed.fetch_add(n, Ordering::Relaxed);
                shared.counters.taken.fetch_add(n, Ordering::Relaxed);
                super::io::take_in(shared, manager, taken).await;
            }
        }
    }
}

/// Most due retries one round moves.
const PROMOTE_BATCH: usize = 500;
/// The longest the promoter sleeps: retries other processes scheduled are
/// moved at most this late when those processes died (their own promoters
/// move them on time).
const PROMOTE_POLL: Duration = Duration::from_secs(1);

/// Moves the group's retries to their streams as they fall due. Every
/// process does, so a retry runs even when the process that scheduled it
/// died; `scripts::PROMOTE` moves each once.
pub(super) async fn promote(shared: Arc<Shared>, mut manager: ConnectionManager) {
    let due = Script::new(scripts::DUE);
    let promote = Script::new(scripts::PROMOTE);
    let keys = &shared.keys;
    loop {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let r: RedisResult<Vec<Value>> = due
            .key(keys.retries())
            .key(keys.retry_data())
            .arg(PROMOTE_BATCH)
            .invoke_async(&mut manager)
            .await;
        note(&shared, &r);
        let mut wait = PROMOTE_POLL;
        if let Ok(v) = r {
            let (next, found) = reply::due(&v);
            if let Some(ms) = next {
                wait = wait.min(Duration::from_millis(ms));
            }
            if !found.is_empty() {
                let mut inv = promote.prepare_invoke();
                inv.key(keys.retries())
                    .key(keys.retry_data())
                    .key(keys.depth());
                let mut streams: HashMap<&str, usize> = HashMap::new();
                for (n, stream) in &found {
                    // Its stream comes from Redis: only this bus's streams.
                    let at = if keys.is_stream(stream) {
                        let next = streams.len() + 4;
                        *streams.entry(stream.as_str()).or_insert_with(|| {
                            inv.key(stream.as_str());
                            next
                        })
                    } else {
                        0
                    };
                    inv.arg(n).arg(at);
                }
                let r: RedisResult<(u64, u64)> = inv.invoke_async(&mut manager).await;
                note(&shared, &r);
                if let Ok((moved, gone)) = r {
                    shared.counters.promoted.fetch_add(moved, Ordering::Relaxed);
                    shared
                        .counters
                        .retries_gone
                        .fetch_add(gone, Ordering::Relaxed);
                    // More may be due: look again at once.
                    wait = Duration::ZERO;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.promote.notified() => {}
        }
    }
}

async fn read_state(shared: &Shared, stats: &Script, manager: &mut ConnectionManager) {
    let types: RedisResult<Vec<String>> = cmd("SMEMBERS")
        .arg(shared.keys.types())
        .query_async(manager)
        .await;
    note(shared, &types);
    let Ok(mut types) = types else { return };
    types.sort();
    let mut inv = stats.prepare_invoke();
    inv.arg(GROUP);
    for t in &types {
        for lane in 0..LANE_NAMES.len() as u8 {
            inv.key(shared.keys.stream(lane, t));
        }
    }
    let r: RedisResult<Vec<u64>> = inv.invoke_async(manager).await;
    note(shared, &r);
    let Ok(numbers) = r else { return };
    let retrying: RedisResult<u64> = cmd("ZCARD")
        .arg(shared.keys.retries())
        .query_async(manager)
        .await;
    note(shared, &retrying);
    let handled = shared.types.lock().clone();
    let mut state = GroupState {
        read_at_ms: shared.started.elapsed().as_millis().max(1) as u64,
        retrying: retrying.unwrap_or(0),
        ..GroupState::default()
    };
    for (t, per_lane) in types.iter().zip(numbers.chunks(9)) {
        let mut waiting = 0;
        let mut consumers = 0;
        for (lane, n) in per_lane.chunks(3).enumerate() {
            if let ([len, pending, c], Some(d)) = (n, state.depth.get_mut(lane)) {
                *d += len;
                state.pending += pending;
                waiting += len;
                consumers = consumers.max(*c);
            }
        }
        state.consumers = state.consumers.max(consumers);
        if waiting > 0 && consumers == 0 && !handled.contains(t) {
            state.unhandled_types.push((t.clone(), waiting));
        }
    }
    *shared.group.lock() = state;
}
