use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use napi::bindgen_prelude::{Function, Int32Array};
use napi::Env;
use napi_derive::napi;
use serde_json::{json, Value};

use super::error::{napi_to_js, to_js};
use super::sink::TsfnNotifier;
use crate::core::config::Config;
use crate::core::engine::Engine;
use crate::core::layout::{self, Layout};
use crate::core::ring::LANE_NAMES;
use crate::core::shared::SharedWords;

/// The native half of `BufferedEventBusService`: owns the worker threads
/// that drain the shared priority ring. Internal; use the JavaScript class.
#[napi]
pub struct NativeBus {
    engine: Arc<Engine>,
    config: Config,
}

/// Resolves a partial `BufferedEventConfig` against the defaults and the
/// given `BUFFERED_EVENTS_*` variables. Throws `INVALID_CONFIG` naming every
/// offending field.
#[napi]
pub fn resolve_config(user: Value, env: HashMap<String, String>) -> napi::Result<Value, String> {
    let config = Config::resolve(&user, |k| env.get(k).cloned()).map_err(to_js)?;
    serde_json::to_value(config).map_err(|e| napi::Error::new("NATIVE_ERROR".into(), e.to_string()))
}

/// How many 32-bit words the shared buffer of a bus with this queue size
/// and in-flight window needs.
#[napi]
pub fn ring_words(max_queue_size: u32, concurrency: u32) -> u32 {
    Layout::new(max_queue_size, concurrency).words as u32
}

/// Word offsets of the shared buffer's header, so the JavaScript side and
/// the native side agree on one layout. Region offsets are in the header.
#[napi]
pub fn ring_layout() -> Value {
    json!({
        "magic": layout::MAGIC,
        "magicValue": layout::MAGIC_VALUE,
        "laneCapacity": layout::LANE_CAPACITY,
        "handoffCapacity": layout::HANDOFF_CAPACITY,
        "lanesBase": layout::LANES_BASE,
        "deliveriesBase": layout::DELIVERIES_BASE,
        "acksBase": layout::ACKS_BASE,
        "tail": layout::TAIL,
        "head": layout::HEAD,
        "line": layout::LINE,
        "sleepers": layout::SLEEPERS,
        "wakeRequested": layout::WAKE_REQUESTED,
        "bytesOut": layout::BYTES_OUT,
        "deliveryTail": layout::DELIVERY_TAIL,
        "deliveryHead": layout::DELIVERY_HEAD,
        "deliveryPending": layout::DELIVERY_PENDING,
        "recordWords": layout::RECORD_WORDS,
        "deliveryWords": layout::DELIVERY_WORDS,
        "ackWords": layout::ACK_WORDS,
    })
}

#[napi]
impl NativeBus {
    /// `config` must be a full configuration from `resolveConfig`; `ring` is
    /// an `Int32Array` over a `SharedArrayBuffer` of `ringWords(...)` words.
    #[napi(constructor)]
    pub fn new(env: Env, config: Value, ring: Int32Array) -> napi::Result<Self, String> {
        let config = Config::resolve(&config, |_| None).map_err(to_js)?;
        let needed = Layout::new(config.max_queue_size, config.concurrency).words;
        if ring.len() < needed {
            return Err(napi::Error::new(
                "INVALID_ARGUMENT".into(),
                format!("ring buffer has {} words, needs {needed}", ring.len()),
            ));
        }
        let (ptr, len) = (ring.as_ptr() as *mut u32, ring.len());
        // SAFETY: `ring` is a view of a SharedArrayBuffer, whose backing store
        // never moves; the view is kept alive as the owner of `SharedWords`
        // for as long as the engine exists. JavaScript touches these words
        // only with `Atomics` or plain writes published by `Atomics.store`.
        let mem = unsafe { SharedWords::from_raw(ptr, len, Box::new(ring)) };
        let engine = Arc::new(Engine::new(&config, mem));
        // Worker threads must be gone before the environment frees the
        // buffer; a worker isolate's environment can end without anyone
        // calling shutdown().
        let weak: Weak<Engine> = Arc::downgrade(&engine);
        env.add_env_cleanup_hook(weak, |weak| {
            if let Some(engine) = weak.upgrade() {
                engine.stop();
            }
        })
        .map_err(napi_to_js)?;
        Ok(NativeBus { engine, config })
    }

    /// The resolved configuration.
    #[napi(getter)]
    pub fn config(&self) -> napi::Result<Value, String> {
        serde_json::to_value(&self.config)
            .map_err(|e| napi::Error::new("NATIVE_ERROR".into(), e.to_string()))
    }

    /// Starts `workers` threads. `onDeliveries` is called on this thread
    /// whenever deliveries wait in the hand-off queue.
    #[napi]
    pub fn start(&self, on_deliveries: Function<(), ()>, workers: u32) -> napi::Result<(), String> {
        let tsfn = on_deliveries
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|_| Ok(()))
            .map_err(napi_to_js)?;
        self.engine
            .start(Arc::new(TsfnNotifier(tsfn)), workers)
            .map_err(to_js)
    }

    /// Wakes a parked worker after the producer published records.
    #[napi]
    pub fn wake(&self) {
        self.engine.wake();
    }

    /// Applies the first `count` acknowledgements of the ack area
    /// (`[slot, handler, outcome]` each); `handlerFailures` is how many
    /// individual handlers failed among them.
    #[napi]
    pub fn complete(&self, count: u32, handler_failures: u32) -> napi::Result<(), String> {
        self.engine.record_handler_failures(handler_failures as u64);
        self.engine.complete_shared(count).map_err(to_js)
    }

    #[napi]
    pub fn set_handler_count(&self, type_id: u32, count: u32) {
        self.engine.set_handler_count(type_id, count);
    }

    #[napi]
    pub fn scale(&self, workers: u32) -> napi::Result<(), String> {
        self.engine.scale(workers).map_err(to_js)
    }

    /// Stops and joins the workers. Returns the slots of records that never
    /// left the ring, in priority order.
    #[napi]
    pub fn stop(&self) -> Vec<u32> {
        self.engine.stop();
        self.engine
            .drain_undelivered()
            .iter()
            .map(|r| r.slot)
            .collect()
    }

    /// Counters, depths and worker states, read without stopping anything.
    #[napi]
    pub fn stats(&self) -> Value {
        let q = self.engine.queue_state();
        let m = self.engine.metrics().snapshot();
        let workers: Vec<Value> = self
            .engine
            .worker_stats()
            .into_iter()
            .map(|(id, s)| {
                json!({
                    "id": id,
                    "busy": s.busy.load(Ordering::Relaxed),
                    "deliveries": s.deliveries.load(Ordering::Relaxed),
                    "batches": s.batches.load(Ordering::Relaxed),
                    "lastActiveMs": s.last_active_ms.load(Ordering::Relaxed),
                })
            })
            .collect();
        let depth: serde_json::Map<String, Value> = LANE_NAMES
            .iter()
            .zip(q.depth)
            .map(|(name, d)| (name.to_string(), json!(d)))
            .collect();
        json!({
            "depth": depth,
            "inFlight": q.in_flight_deliveries,
            "inFlightInvocations": q.in_flight_permits,
            "concurrency": self.engine.concurrency(),
            "counters": m,
            "workers": workers,
            "uptimeMs": self.engine.uptime().as_millis() as u64,
        })
    }
}
