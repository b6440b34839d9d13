//! Worker isolates: each attaches its own hand-off queue and threadsafe
//! function to the process-wide engine of a bus (the addon is loaded once
//! per process, so every isolate sees the same statics).

use std::sync::{Arc, Weak};

use napi::bindgen_prelude::Function;
use napi::Env;
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::bus::{complete_with_failures, HandlerFailure, NativeBus};
use super::error::{napi_to_js, to_js};
use super::shared_view::SharedInt32Array;
use super::sink::TsfnNotifier;
use crate::core::engine::{Engine, Failure};
use crate::core::shm::layout::{HandoffRegion, ACK_WORDS, DELIVERY_WORDS};

/// Buses by id, for isolates to attach to. Weak: an isolate must not keep a
/// bus alive that its owner shut down and dropped.
static BUSES: Mutex<Vec<(u32, Weak<Engine>)>> = Mutex::new(Vec::new());
static NEXT_BUS: Mutex<u32> = Mutex::new(1);

pub fn register_bus(engine: &Arc<Engine>) -> u32 {
    let id = {
        let mut next = NEXT_BUS.lock();
        *next += 1;
        *next
    };
    let mut buses = BUSES.lock();
    buses.retain(|(_, w)| w.strong_count() > 0);
    buses.push((id, Arc::downgrade(engine)));
    id
}

fn find_bus(id: u32) -> Option<Arc<Engine>> {
    BUSES
        .lock()
        .iter()
        .find(|(i, _)| *i == id)
        .and_then(|(_, w)| w.upgrade())
}

/// What became of a dead isolate's unfinished deliveries.
#[napi(object)]
pub struct DetachReport {
    /// Counted as failed attempts.
    pub charged: u32,
    /// Finished before it died: counted as handled.
    pub succeeded: u32,
    /// Put back in front of their lanes, uncharged.
    pub requeued: u32,
}

/// Words an isolate's hand-off buffer needs for a window of `concurrency`.
#[napi]
pub fn isolate_region_words(concurrency: u32) -> u32 {
    HandoffRegion::standalone(concurrency).words() as u32
}

/// Offsets inside an isolate's hand-off buffer.
#[napi]
pub fn isolate_region_layout(concurrency: u32) -> Value {
    let r = HandoffRegion::standalone(concurrency);
    json!({
        "tail": r.tail,
        "head": r.head,
        "pending": r.pending,
        "deliveriesBase": r.deliveries_base,
        "acksBase": r.acks_base,
        "capacity": r.capacity,
        "deliveryWords": DELIVERY_WORDS,
        "ackWords": ACK_WORDS,
    })
}

/// A worker isolate's attachment to a bus. Internal.
#[napi]
pub struct IsolateSink {
    engine: Arc<Engine>,
    id: u32,
}

#[napi]
impl IsolateSink {
    /// Attaches `region` (an `Int32Array` over a SharedArrayBuffer of
    /// `isolateRegionWords(concurrency)` words) to bus `busId`;
    /// `onDeliveries` runs on this isolate's thread when deliveries wait.
    #[napi(factory)]
    pub fn attach(
        env: Env,
        bus_id: u32,
        #[napi(ts_arg_type = "Int32Array")] region: SharedInt32Array,
        on_deliveries: Function<(), ()>,
    ) -> napi::Result<Self, String> {
        let engine = find_bus(bus_id).ok_or_else(|| {
            napi::Error::new(
                "INVALID_STATE".to_string(),
                format!("no bus {bus_id} to attach to"),
            )
        })?;
        let layout = HandoffRegion::standalone(engine.concurrency());
        let len = region.len();
        if len < layout.words() {
            return Err(napi::Error::new(
                "INVALID_ARGUMENT".to_string(),
                format!("isolate region has {len} words, needs {}", layout.words()),
            ));
        }
        let mem = Arc::new(region.into_words());
        let tsfn = on_deliveries
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|_| Ok(()))
            .map_err(napi_to_js)?;
        let id = engine
            .attach_sink(mem, layout, Arc::new(TsfnNotifier { tsfn, lag: None }))
            .map_err(to_js)?;
        // When this isolate's environment ends (terminate(), process.exit()
        // in the worker) nothing more goes to it; the main thread then
        // decides, from what the isolate left in its status words, which of
        // its deliveries to charge (`NativeBus.detachIsolate`).
        let weak = Arc::downgrade(&engine);
        env.add_env_cleanup_hook((weak, id), |(weak, id)| {
            if let Some(engine) = weak.upgrade() {
                engine.close_sink(id);
            }
        })
        .map_err(napi_to_js)?;
        Ok(IsolateSink { engine, id })
    }

    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Applies this isolate's `failures`, then its first `count`
    /// acknowledgements; see `NativeBus.complete`.
    #[napi]
    pub fn complete(
        &self,
        count: u32,
        failures: Option<Vec<HandlerFailure>>,
    ) -> napi::Result<(), String> {
        complete_with_failures(&self.engine, failures, |f| {
            self.engine.complete_remote(self.id, count, f)
        })
        .map(|_| ())
    }

    /// Called each time the isolate has drained its queue: it gets the
    /// oldest delivery waiting for a free isolate, if any, published
    /// without a notification. Returns how many (drain again when > 0).
    #[napi]
    pub fn pull(&self) -> u32 {
        self.engine.pull(self.id)
    }
}

#[napi]
impl NativeBus {
    /// Id isolates attach to this bus with.
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.bus_id
    }

    /// Routes a type's events to worker isolates (or back to this thread).
    #[napi]
    pub fn set_type_isolated(&self, type_id: u32, isolated: bool) {
        self.engine.set_type_isolated(type_id, isolated);
    }

    /// Delivery `delivery` of `slot` reached this thread for a type handled
    /// in isolates since the event was emitted; its serialised bytes are
    /// now at `arena` (`size` bytes). Sends it on to an isolate.
    #[napi]
    pub fn reroute(
        &self,
        slot: u32,
        delivery: u32,
        arena: u32,
        size: u32,
    ) -> napi::Result<(), String> {
        self.engine
            .reroute(slot, delivery, arena, size)
            .map_err(to_js)
    }

    /// An isolate exited. The deliveries `culprits` names (it died running
    /// them) count as failed attempts; `succeeded` (`[slot, delivery]`
    /// pairs, flat) finished before it died and count as handled; its other
    /// unfinished deliveries go back to the queue uncharged.
    #[napi]
    pub fn detach_isolate(
        &self,
        sink_id: u32,
        culprits: Vec<HandlerFailure>,
        succeeded: Vec<u32>,
    ) -> DetachReport {
        let culprits = culprits.into_iter().map(Failure::from).collect();
        let succeeded: Vec<(u32, u32)> = succeeded.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let done = self.engine.detach_sink(sink_id, culprits, &succeeded);
        DetachReport {
            charged: done.charged,
            succeeded: done.succeeded,
            requeued: done.requeued,
        }
    }
}
