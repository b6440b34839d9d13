//! The link's I/O thread: one current-thread tokio runtime running the
//! command loop (emissions and settles, in order, on the connection
//! manager), the reader (blocking reads on a connection of its own) and the
//! upkeep (claims renewed, dead processes' entries taken over, the group's
//! state read).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{cmd, AsyncConnectionConfig, Client, RedisError, RedisResult, Script, Value};

use crate::core::schedule::dead_letters::AttemptError;
use tokio::sync::mpsc::UnboundedReceiver;

use super::reply::{self, RawEntry};
use super::upkeep;
use super::{scripts, Command, Entry, Held, RetryOut, ServerFacts, Shared, GROUP};

pub(super) fn run(shared: Arc<Shared>, rx: UnboundedReceiver<Command>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            shared
                .events
                .connected(Err(format!("could not start the Redis runtime: {e}")));
            return;
        }
    };
    rt.block_on(main(shared, rx));
}

async fn main(shared: Arc<Shared>, mut rx: UnboundedReceiver<Command>) {
    let (client, manager, facts) = match connect(&shared).await {
        Ok(c) => c,
        Err(e) => {
            shared.events.connected(Err(e));
            return;
        }
    };
    shared.events.connected(Ok(facts));
    let reader = tokio::spawn(read_loop(shared.clone(), client, manager.clone()));
    let upkeep = tokio::spawn(upkeep::run(shared.clone(), manager.clone()));
    let promoter = tokio::spawn(upkeep::promote(shared.clone(), manager.clone()));
    command_loop(&shared, manager, &mut rx).await;
    reader.abort();
    upkeep.abort();
    promoter.abort();
}

async fn connect(shared: &Shared) -> Result<(Client, ConnectionManager, ServerFacts), String> {
    let client = Client::open(shared.url.as_str()).map_err(|e| format!("backend.url: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    let connecting = ConnectionManager::new_with_config(client.clone(), config);
    let mut manager = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| format!("no answer from {} within 5 s", shared.url))?
        .map_err(|e| format!("could not connect to {}: {e}", shared.url))?;
    let info: String = cmd("INFO")
        .arg("server")
        .query_async(&mut manager)
        .await
        .map_err(|e| format!("INFO failed on {}: {e}", shared.url))?;
    let version = reply::info_field(&info, "redis_version").unwrap_or_default();
    // XPENDING's IDLE filter arrived in 6.2.
    let (major, minor) = {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    if (major, minor) < (6, 2) {
        return Err(format!(
            "Redis {version} at {} is too old: the bus needs 6.2 or later",
            shared.url
        ));
    }
    // Managed services may refuse CONFIG: then the policy is unknown.
    let policy: Value = cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut manager)
        .await
        .unwrap_or(Value::Nil);
    let eviction_policy = match &policy {
        Value::Array(a) => a.get(1).and_then(as_text).unwrap_or_default(),
        Value::Map(m) => m.first().and_then(|(_, v)| as_text(v)).unwrap_or_default(),
        _ => String::new(),
    };
    Ok((
        client,
        manager,
        ServerFacts {
            version,
            eviction_policy,
        },
    ))
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Notes the outcome of a command for health: the first failure reports
/// the link down, the first success after it reports it back.
pub(super) fn note<T>(shared: &Shared, r: &RedisResult<T>) {
    match r {
        Ok(_) => {
            if shared.down.swap(false, Ordering::SeqCst) {
                shared.events.link(None);
            }
        }
        Err(e) => {
            shared.counters.errors.fetch_add(1, Ordering::Relaxed);
            if unreachable(e) && !shared.down.swap(true, Ordering::SeqCst) {
                shared.events.link(Some(e.to_string()));
            }
        }
    }
}

fn unreachable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout()
}

/// Most events one emission script adds: several batches queued while one
/// was in flight go together, up to this.
const MAX_EMIT: usize = 1024;

async fn command_loop(
    shared: &Shared,
    mut manager: ConnectionManager,
    rx: &mut UnboundedReceiver<Command>,
) {
    let emit = Script::new(scripts::EMIT);
    let settle = Script::new(scripts::SETTLE);
    let letter = Script::new(scripts::LETTER);
    let replay = Script::new(scripts::REPLAY);
    let release = Script::new(scripts::RELEASE);
    let retry = Script::new(scripts::RETRY);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let first = tokio::select! {
            c = rx.recv() => c,
            _ = tick.tick() => Some(Command::Settle(Vec::new())),
        };
        let Some(first) = first else { break };
        let mut settles = std::mem::take(&mut *shared.unsettled.lock());
        let mut emits: Vec<(u64, Vec<super::Outgoing>)> = Vec::new();
        let mut releases = Vec::new();
        let mut retries = std::mem::take(&mut *shared.unsent_retries.lock());
        let mut others = Vec::new();
        let mut queued = 0;
        let mut take = |c: Command, queued: &mut usize| match c {
            Command::Emit { seq, events } => {
                *queued += events.len();
                emits.push((seq, events));
            }
            Command::Settle(l) => settles.extend(l),
            Command::Release(l) => releases.extend(l),
            Command::Retry(l) => retries.extend(l),
            other => others.push(other),
        };
        take(first, &mut queued);
        while queued < MAX_EMIT {
            let Ok(c) = rx.try_recv() else { break };
            take(c, &mut queued);
        }
        if !emits.is_empty() {
            let sizes: Vec<(u64, usize)> = emits.iter().map(|(s, e)| (*s, e.len())).collect();
            let all: Vec<super::Outgoing> = emits.into_iter().flat_map(|(_, e)| e).collect();
            let (mut accepted, error) = send_emits(shared, &emit, &mut manager, all).await;
            shared
                .counters
                .emitted
                .fetch_add(accepted as u64, Ordering::Relaxed);
            // The script adds in order: the first batches get the room.
            for (seq, n) in sizes {
                let mine = (accepted as usize).min(n);
                accepted -= mine as u32;
                shared.events.emitted(seq, mine as u32, error.clone());
            }
        }
        // Before the settles: a retry copies its entry's envelope.
        if !retries.is_empty() {
            send_retries(shared, &retry, &mut manager, retries).await;
        }
        if !settles.is_empty() {
            send_settle(shared, &settle, &mut manager, settles).await;
        }
        for (key, id, deliveries) in releases {
            send_release(shared, &release, &mut manager, &key, &id, deliveries).await;
        }
        // Letters that failed before go again.
        let retried: Vec<Command> = std::mem::take(&mut *shared.unsent_letters.lock())
            .into_iter()
            .map(|(k, id, m)| Command::Letter(k, id, m))
            .collect();
        let touched_letters = !others.is_empty() || !retried.is_empty();
        for c in retried.into_iter().chain(others) {
            // A letter settles its entry: not before a retry of another of
            // its handlers has copied the envelope.
            if let Command::Letter(key, id, metas) = c {
                if waits_for_retry(shared, &key, &id) {
                    shared.unsent_letters.lock().push((key, id, metas));
                    continue;
                }
                let c = Command::Letter(key, id, metas);
                letters(shared, &letter, &replay, &mut manager, c).await;
                continue;
            }
            letters(shared, &letter, &replay, &mut manager, c).await;
        }
        if touched_letters {
            read_letters(shared, &mut manager).await;
        }
        if shared.closing.load(Ordering::SeqCst) && rx.is_empty() {
            break;
        }
    }
}

/// Returns how many were added, and the error that stopped the rest.
async fn send_emit(
    shared: &Shared,
    script: &Script,
    manager: &mut ConnectionManager,
    events: Vec<super::Outgoing>,
) -> (u32, Option<String>) {
    let keys = &shared.keys;
    let mut inv = script.prepare_invoke();
    inv.key(keys.depth()).key(keys.types());
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut types: Vec<&str> = Vec::new();
    let mut slots = Vec::with_capacity(events.len());
    for ev in &events {
        let key = keys.stream(ev.lane, &ev.type_name);
        let next = index.len() + 3;
        let at = *index.entry(key.clone()).or_insert_with(|| {
            inv.key(&key);
            types.push(&ev.type_name);
            next
        });
        slots.push(at);
    }
    types.sort_unstable();
    types.dedup();
    inv.arg(shared.max_queue).arg(types.len());
    for t in &types {
        inv.arg(*t);
    }
    for (ev, at) in events.iter().zip(&slots) {
        inv.arg(*at).arg(&ev.envelope[..]);
    }
    let r: RedisResult<i64> = inv.invoke_async(manager).await;
    note(shared, &r);
    match r {
        Ok(n) => (n.clamp(0, events.len() as i64) as u32, None),
        Err(e) => (0, Some(e.to_string())),
    }
}

/// Adds `events` in scripts of at most `MAX_EMIT` (one long script would
/// hold up Redis for every process): stops at the first refusal or error.
async fn send_emits(
    shared: &Shared,
    script: &Script,
    manager: &mut ConnectionManager,
    mut events: Vec<super::Outgoing>,
) -> (u32, Option<String>) {
    let mut accepted = 0;
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(MAX_EMIT));
        let n = events.len() as u32;
        let (took, error) = send_emit(shared, script, manager, events).await;
        accepted += took;
        if error.is_some() || took < n {
            return (accepted, error);
        }
        events = rest;
    }
    (accepted, None)
}

/// Whether a retry of entry (`key`, `id`) failed to reach Redis and goes
/// again: until it has, the entry (whose envelope it copies) stays.
fn waits_for_retry(shared: &Shared, key: &str, id: &str) -> bool {
    shared
        .unsent_retries
        .lock()
        .iter()
        .any(|r| *r.key == *key && r.id == id)
}

/// Most retries one script schedules.
const RETRY_CHUNK: usize = 200;

/// Schedules retries in the group's retry set, one script per stream; those
/// Redis did not take go again on the next round, their entries unsettled
/// meanwhile.
async fn send_retries(
    shared: &Shared,
    script: &Script,
    manager: &mut ConnectionManager,
    all: Vec<RetryOut>,
) {
    let mut by_key: HashMap<Arc<str>, Vec<RetryOut>> = HashMap::new();
    for r in all {
        by_key.entry(r.key.clone()).or_default().push(r);
    }
    let keys = &shared.keys;
    let mut scheduled = false;
    for (key, list) in by_key {
        for chunk in list.chunks(RETRY_CHUNK) {
            let mut inv = script.prepare_invoke();
            inv.key(&*key)
                .key(keys.retries())
                .key(keys.retry_data())
                .arg(GROUP)
                .arg(&shared.consumer);
            for r in chunk {
                inv.arg(&r.id)
                    .arg(r.delay_ms)
                    .arg(&*r.handler)
                    .arg(r.attempt)
                    .arg(&r.errors);
            }
            let out: RedisResult<Vec<i64>> = inv.invoke_async(manager).await;
            note(shared, &out);
            match out {
                Ok(outcomes) => {
                    let n = outcomes.iter().filter(|o| **o == 1).count();
                    shared
                        .counters
                        .retried
                        .fetch_add(n as u64, Ordering::Relaxed);
                    // Scheduled already (2): a resend after a lost reply.
                    // Taken over (-1): that run decides, and `lost` counts
                    // it. Gone (0): settled before its retry was copied,
                    // which the ordering here prevents; counted if it
                    // happens.
                    let gone = outcomes.iter().filter(|o| **o == 0).count();
                    shared
                        .counters
                        .retries_gone
                        .fetch_add(gone as u64, Ordering::Relaxed);
                    scheduled |= n > 0;
                }
                Err(_) => shared.unsent_retries.lock().extend(chunk.iter().cloned()),
            }
        }
    }
    if scheduled {
        shared.promote.notify_one();
    }
}

async fn send_settle(
    shared: &Shared,
    script: &Script,
    manager: &mut ConnectionManager,
    mut all: Vec<(Arc<str>, String)>,
) {
    // An entry whose retry Redis has not taken yet keeps its envelope.
    if !shared.unsent_retries.lock().is_empty() {
        let (wait, go): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(k, id)| waits_for_retry(shared, k, id));
        shared.unsettled.lock().extend(wait);
        all = go;
    }
    // Lua's unpack takes a few thousand values at most.
    for chunk in all.chunks(SETTLE_CHUNK) {
        let mut by_key: HashMap<Arc<str>, Vec<String>> = HashMap::new();
        for (k, id) in chunk {
            by_key.entry(k.clone()).or_default().push(id.clone());
        }
        let mut inv = script.prepare_invoke();
        inv.key(shared.keys.depth()).arg(GROUP);
        for (k, ids) in by_key.iter_mut() {
            // Oldest first: the script finds those it must `XDEL` at the end.
            ids.sort_by_key(|id| reply::entry_id(id));
            inv.key(&**k).arg(ids.len());
            for id in ids {
                inv.arg(id);
            }
        }
        let r: RedisResult<i64> = inv.invoke_async(manager).await;
        note(shared, &r);
        match r {
            Ok(acked) => {
                shared
                    .counters
                    .settled
                    .fetch_add(acked.max(0) as u64, Ordering::Relaxed);
            }
            // Sent again on the next tick; meanwhile the entries stay
            // pending, not renewed, and not taken over by this process
            // (`upkeep::reclaim` skips them); after claimIdleMs another
            // process may run them again: at least once.
            Err(_) => shared.unsettled.lock().extend(chunk.iter().cloned()),
        }
    }
}

const SETTLE_CHUNK: usize = 1000;

/// The dead-letter commands: a failure leaves the entry pending (another
/// process takes it over, and letters it again) or the letter where it was.
async fn letters(
    shared: &Shared,
    letter: &Script,
    replay: &Script,
    manager: &mut ConnectionManager,
    c: Command,
) {
    let keys = &shared.keys;
    match c {
        Command::Letter(key, id, metas) => {
            let mut inv = letter.prepare_invoke();
            inv.key(keys.depth())
                .key(&*key)
                .key(keys.dead())
                .key(keys.letter_ids())
                .arg(&id)
                .arg(GROUP)
                .arg(shared.max_letters)
                .arg(&shared.consumer);
            for m in &metas {
                inv.arg(m);
            }
            let r: RedisResult<i64> = inv.invoke_async(manager).await;
            note(shared, &r);
            match r {
                Ok(n) if n > 0 => {
                    shared.counters.settled.fetch_add(1, Ordering::Relaxed);
                }
                // Settled already (0), or taken over by another process (-1).
                Ok(_) => {}
                // Kept, and sent again: meanwhile takeover skips the entry.
                Err(_) => shared.unsent_letters.lock().push((key, id, metas)),
            }
        }
        Command::Replay(l) => {
            // Both come from Redis: a letter naming a stream not of this bus
            // is left where it is.
            if !keys.is_stream(&l.stream) {
                return;
            }
            let handler = serde_json::from_str::<serde_json::Value>(&l.meta)
                .ok()
                .and_then(|m| m.get("key")?.as_str().map(str::to_string))
                .unwrap_or_default();
            let r: RedisResult<i64> = replay
                .key(keys.depth())
                .key(keys.dead())
                .key(&l.stream)
                .arg(format!("{}-0", l.id))
                .arg(handler)
                .invoke_async(manager)
                .await;
            note(shared, &r);
        }
        Command::Remove(id) => {
            let r: RedisResult<Value> = match id {
                Some(id) => {
                    cmd("XDEL")
                        .arg(keys.dead())
                        .arg(format!("{id}-0"))
                        .query_async(manager)
                        .await
                }
                None => cmd("DEL").arg(keys.dead()).query_async(manager).await,
            };
            note(shared, &r);
        }
        _ => {}
    }
}

/// Refreshes the mirror of the group's dead letters.
pub(super) async fn read_letters(shared: &Shared, manager: &mut ConnectionManager) {
    let r: RedisResult<Value> = cmd("XRANGE")
        .arg(shared.keys.dead())
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(shared.max_letters)
        .query_async(manager)
        .await;
    note(shared, &r);
    let Ok(v) = r else { return };
    *shared.letters.lock() = reply::letters(&v);
}

/// Makes an entry look idle past `claimIdleMs`, with `deliveries` as its
/// count: the next process to look takes it over at once (and counts one
/// more).
async fn send_release(
    shared: &Shared,
    script: &Script,
    manager: &mut ConnectionManager,
    key: &str,
    id: &str,
    deliveries: u32,
) {
    let r: RedisResult<Value> = script
        .key(key)
        .arg(GROUP)
        .arg(&shared.consumer)
        .arg(shared.claim_idle_ms.saturating_mul(2))
        .arg(id)
        .arg(deliveries)
        .invoke_async(manager)
        .await;
    note(shared, &r);
}

/// A connection for blocking reads: no response timeout shorter than the
/// block.
async fn dedicated(client: &Client) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(BLOCK_S + 10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

const BLOCK_S: u64 = 5;
/// How long an unblocked read has to answer before it is unblocked again.
const UNBLOCK_AGAIN: Duration = Duration::from_millis(50);

/// The stream keys of `types` in lane `lane`, and what each stands for.
pub(super) fn lane_keys(shared: &Shared, types: &[String], lane: u8) -> Vec<(String, u8, String)> {
    types
        .iter()
        .map(|t| (shared.keys.stream(lane, t), lane, t.clone()))
        .collect()
}

async fn read_loop(shared: Arc<Shared>, client: Client, mut manager: ConnectionManager) {
    let mut backoff = Duration::from_millis(100);
    while !shared.closing.load(Ordering::SeqCst) {
        let mut con = match dedicated(&client).await {
            Ok(c) => c,
            Err(e) => {
                note::<()>(&shared, &Err(e));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let id: RedisResult<i64> = cmd("CLIENT").arg("ID").query_async(&mut con).await;
        note(&shared, &id);
        let Ok(client_id) = id else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        };
        backoff = Duration::from_millis(100);
        let mut groups = HashSet::new();
        if let Err(e) = read_rounds(&shared, &mut con, &mut manager, client_id, &mut groups).await {
            note::<()>(&shared, &Err(e));
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Reads until the connection fails or the link closes.
async fn read_rounds(
    shared: &Shared,
    con: &mut MultiplexedConnection,
    manager: &mut ConnectionManager,
    client_id: i64,
    groups: &mut HashSet<String>,
) -> RedisResult<()> {
    // When each lane last had its turn (or was found empty).
    let mut served = [Instant::now(); 3];
    let aging = Duration::from_millis(shared.aging_ms);
    let mut ahead = super::read_ahead::ReadAhead::new(shared.prefetch, Instant::now());
    loop {
        if shared.closing.load(Ordering::SeqCst) {
            return Ok(());
        }
        let types = shared.types.lock().clone();
        if types.is_empty() || !shared.reading.load(Ordering::SeqCst) {
            shared.types_changed.notified().await;
            continue;
        }
        let window = ahead.window(
            shared.counters.settled.load(Ordering::Relaxed),
            Instant::now(),
        );
        shared.window.store(window, Ordering::Relaxed);
        let room = window.saturating_sub(shared.books.lock().held.len());
        if room == 0 {
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.settled.notified()).await;
            continue;
        }
        let lanes: Vec<Vec<(String, u8, String)>> =
            (0..3).map(|l| lane_keys(shared, &types, l)).collect();
        for (key, _, _) in lanes.iter().flatten() {
            if !groups.contains(key) {
                create_group(manager, key).await?;
                groups.insert(key.clone());
            }
        }
        let mut got = Vec::new();
        // Highest priority first, as in-process: a lower lane passed over
        // for `agingMs` gets one place in the next read, so a flood of
        // critical events cannot starve it.
        let now = Instant::now();
        let aged: Vec<bool> = served.iter().map(|s| now - *s >= aging).collect();
        for (lane, keys) in lanes.iter().enumerate() {
            let kept = (lane + 1..3).filter(|&l| aged[l]).count();
            // COUNT applies per stream: one stream at a time keeps the
            // total within the room.
            for key in keys {
                let want = room.saturating_sub(got.len() + kept);
                if want == 0 {
                    break;
                }
                got.extend(
                    read_once(con, shared, std::slice::from_ref(key), want, None)
                        .await
                        .or_else(|e| nogroup(e, groups))?,
                );
            }
            // Read: served, whether it had entries or none were waiting.
            served[lane] = now;
        }
        if got.is_empty() {
            // Nothing waits: no pace to keep up with. A takeover meanwhile
            // (`upkeep::reclaim`) takes no more than the floor.
            shared.window.store(shared.prefetch, Ordering::Relaxed);
            // Waits for the first entry of any stream: one each at most (the
            // next round reads the rest by priority).
            let all: Vec<(String, u8, String)> = lanes.into_iter().flatten().collect();
            let read = read_once(con, shared, &all, 1, Some(BLOCK_S * 1000));
            tokio::pin!(read);
            let r = tokio::select! {
                r = &mut read => r,
                _ = shared.types_changed.notified() => {
                    // Ends the blocking read at once (with nothing), so the
                    // new types are read; its reply is still awaited, as it
                    // may carry entries already delivered to us. The unblock
                    // travels on another connection and can reach Redis
                    // before the read does (which then blocks its full
                    // time): it is sent again until the read answers.
                    loop {
                        let _: RedisResult<Value> =
                            cmd("CLIENT").arg("UNBLOCK").arg(client_id).query_async(manager).await;
                        if let Ok(r) = tokio::time::timeout(UNBLOCK_AGAIN, &mut read).await {
                            break r;
                        }
                    }
                }
            };
            got = r.or_else(|e| nogroup(e, groups))?;
        }
        if !got.is_empty() {
            shared
                .counters
                .taken
                .fetch_add(got.len() as u64, Ordering::Relaxed);
            take_in(shared, manager, got).await;
        }
    }
}

/// Hands what was read to the engine; unless shutdown began meanwhile (a
/// blocking read ended by `stop_reading` still answers with what Redis had
/// delivered, a reclaim may have been under way): those entries are not
/// this process's to run and go straight back to the group, this delivery
/// uncounted.
pub(super) async fn take_in(shared: &Shared, manager: &mut ConnectionManager, taken: Vec<Taken>) {
    let taken = hand(shared, taken);
    if taken.is_empty() {
        return;
    }
    let release = Script::new(scripts::RELEASE);
    for (key, _, _, raw, deliveries) in taken {
        let before = deliveries.saturating_sub(1);
        send_release(shared, &release, manager, &key, &raw.id, before).await;
    }
}

/// A stream or its group was deleted (Redis lost its data, or someone
/// deleted our keys): the groups are made again on the next round.
fn nogroup<T: Default>(e: RedisError, groups: &mut HashSet<String>) -> RedisResult<T> {
    if e.code() == Some("NOGROUP") {
        groups.clear();
        Ok(T::default())
    } else {
        Err(e)
    }
}

async fn create_group(manager: &mut ConnectionManager, key: &str) -> RedisResult<()> {
    let r: RedisResult<Value> = cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(manager)
        .await;
    match r {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

/// An entry read: its stream, lane, type, content and deliveries so far.
pub(super) type Taken = (Arc<str>, u8, Arc<str>, RawEntry, u32);

async fn read_once(
    con: &mut MultiplexedConnection,
    shared: &Shared,
    keys: &[(String, u8, String)],
    count: usize,
    block_ms: Option<u64>,
) -> RedisResult<Vec<Taken>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut c = cmd("XREADGROUP");
    c.arg("GROUP")
        .arg(GROUP)
        .arg(&shared.consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(ms) = block_ms {
        c.arg("BLOCK").arg(ms);
    }
    c.arg("STREAMS");
    for (k, _, _) in keys {
        c.arg(k);
    }
    for _ in keys {
        c.arg(">");
    }
    let v: Value = c.query_async(con).await?;
    let mut out = Vec::new();
    for (key, entries) in reply::read(v) {
        // Only keys asked for can come back; anything else is ignored.
        let Some((_, lane, type_name)) = keys.iter().find(|(k, _, _)| *k == key) else {
            continue;
        };
        // Shared by the stream's entries, not copied into each.
        let (key, type_name): (Arc<str>, Arc<str>) = (key.into(), type_name.as_str().into());
        out.extend(
            entries
                .into_iter()
                .map(|e| (key.clone(), *lane, type_name.clone(), e, 1)),
        );
    }
    Ok(out)
}

/// Records entries as held and hands them to JavaScript. A retry for a
/// handler key no handler here has (another version of the application
/// wrote it) is dead-lettered rather than run by the wrong handler.
/// Returns them all, handing none, once reading has stopped: `reading` is
/// set under the books' lock, so an entry is either held before the link
/// stops (and released by `close` if never bound) or not at all.
pub(super) fn hand(shared: &Shared, taken: Vec<Taken>) -> Vec<Taken> {
    let now = Instant::now();
    let mut out = Vec::with_capacity(taken.len());
    {
        let handlers = shared.handlers.lock();
        let mut books = shared.books.lock();
        if !shared.reading.load(Ordering::SeqCst) {
            return taken;
        }
        for (key, lane, type_name, raw, deliveries) in taken {
            let errors = raw
                .errors
                .as_deref()
                .and_then(|m| serde_json::from_str::<Vec<AttemptError>>(m).ok())
                .unwrap_or_default();
            let handler = match &raw.handler {
                None => 0,
                Some(h) => match handlers.by_key.get(&(type_name.to_string(), h.clone())) {
                    Some(id) => *id,
                    None => {
                        let here = handlers
                            .of_type
                            .get(&*type_name)
                            .cloned()
                            .unwrap_or_default();
                        let letter = unknown_handler(h, &type_name, &here, raw.attempt, errors);
                        shared
                            .counters
                            .unknown_handlers
                            .fetch_add(1, Ordering::Relaxed);
                        shared
                            .unsent_letters
                            .lock()
                            .push((key, raw.id, vec![letter]));
                        continue;
                    }
                },
            };
            let handle = shared.next_handle.fetch_add(1, Ordering::Relaxed);
            books.held.insert(
                handle,
                Held {
                    key,
                    id: raw.id,
                    renewed: now,
                    deliveries,
                    handed: 0,
                    adopted_attempt: 0,
                    errors,
                },
            );
            out.push(Entry {
                handle,
                lane,
                type_name,
                envelope: raw.envelope,
                deliveries,
                handler,
                attempt: raw.attempt,
            });
        }
    }
    if !out.is_empty() {
        shared.events.entries(out);
    }
    Vec::new()
}

/// The dead letter (JSON, as `LETTER` stores it) of a retry whose handler
/// key no handler of its type here has.
fn unknown_handler(
    key: &str,
    type_name: &str,
    here: &[String],
    attempt: u32,
    mut errors: Vec<AttemptError>,
) -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    errors.push(AttemptError {
        message: format!(
            "no handler of '{type_name}' here has the key '{key}' (this process has: {}); \
             the processes of the group disagree on their handlers",
            if here.is_empty() {
                "none".to_string()
            } else {
                here.join(", ")
            }
        ),
        name: "UnknownHandlerError".into(),
        stack: None,
        timed_out: false,
        at,
    });
    serde_json::json!({
        "handler": key,
        "key": key,
        "attempts": attempt,
        "errors": errors,
        "timestamp": at,
    })
    .to_string()
}
