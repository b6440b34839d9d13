use std::collections::HashMap;
use std::sync::{Arc, Weak};

use napi::bindgen_prelude::{Either, Function};
use napi::Env;
use napi_derive::napi;
use serde_json::Value;

use super::error::{napi_to_js, to_js};
use super::shared_view::SharedInt32Array;
use super::sink::TsfnNotifier;
use crate::core::config::Config;
use crate::core::engine::{Engine, Failure, Refill};
use crate::core::error::BusError;
use crate::core::schedule::books::Report;
use crate::core::schedule::dead_letters::AttemptError;
use crate::core::shm::layout::Layout;

/// The native half of `BufferedEventBusService`: owns the worker threads
/// that drain the shared priority ring. Internal; use the JavaScript class.
#[napi]
pub struct NativeBus {
    pub(super) engine: Arc<Engine>,
    pub(super) bus_id: u32,
    /// Only the JavaScript thread reads or updates it.
    config: parking_lot::Mutex<Config>,
    /// The window the shared buffer was sized for; `updateConfig` may not
    /// exceed it.
    max_concurrency: u32,
    /// A Redis bus's link and what it has to report (`streams.rs`).
    pub(super) streams: parking_lot::Mutex<Option<super::streams::Streams>>,
}

/// One handler failure, reported with the acknowledgements.
#[napi(object)]
pub struct HandlerFailure {
    pub slot: u32,
    /// The delivery's handler id: 0 for a fan-out.
    pub delivery: u32,
    /// The failing handler's id.
    pub handler: u32,
    pub handler_name: String,
    pub message: String,
    pub name: String,
    pub stack: Option<String>,
    pub retryable: bool,
    pub timed_out: bool,
    /// Milliseconds since the Unix epoch.
    pub at: f64,
}

impl From<HandlerFailure> for Failure {
    fn from(f: HandlerFailure) -> Self {
        Failure {
            slot: f.slot,
            delivery: f.delivery,
            handler: f.handler,
            handler_name: f.handler_name,
            error: AttemptError {
                message: f.message,
                name: f.name,
                stack: f.stack,
                timed_out: f.timed_out,
                at: f.at as u64,
            },
            retryable: f.retryable,
        }
    }
}

/// Reports of the books (`schedule::books`), flat: `[slot, code, ...]`.
pub(super) fn flat_reports(reports: &[Report]) -> Vec<u32> {
    reports.iter().flat_map(|r| [r.slot, r.code()]).collect()
}

/// Converts reported failures and runs `complete` with them.
pub(super) fn complete_with_failures(
    engine: &Engine,
    failures: Option<Vec<HandlerFailure>>,
    complete: impl FnOnce(
        Vec<Failure>,
    ) -> Result<crate::core::engine::Completion, crate::core::error::BusError>,
) -> napi::Result<crate::core::engine::Completion, String> {
    let failures: Vec<Failure> = failures
        .unwrap_or_default()
        .into_iter()
        .map(Failure::from)
        .collect();
    engine.record_handler_failures(failures.len() as u64);
    complete(failures).map_err(to_js)
}

/// A delivery that never started.
#[napi(object)]
pub struct Undelivered {
    pub slot: u32,
    /// 0 for a first delivery to every handler; else the retried handler.
    pub handler: u32,
    pub attempt: u32,
}

/// A caught worker panic.
#[napi(object)]
pub struct WorkerPanic {
    pub worker: u32,
    pub message: String,
    /// Deliveries the worker held, put back in front of their lanes.
    pub requeued: u32,
}

/// Resolves a partial `BufferedEventConfig` against the defaults and the
/// given `BUFFERED_EVENTS_*` variables. Throws `INVALID_CONFIG` naming every
/// offending field, `problems` (what JavaScript found reading the input)
/// first.
#[napi]
pub fn resolve_config(
    user: Value,
    env: HashMap<String, String>,
    problems: Vec<String>,
) -> napi::Result<Value, String> {
    let resolved = Config::resolve(&user, |k| env.get(k).cloned());
    let config = with_problems(resolved, problems).map_err(to_js)?;
    to_value(&config)
}

/// Reports problems found before resolution together with the resolver's.
fn with_problems(
    resolved: Result<Config, BusError>,
    mut problems: Vec<String>,
) -> Result<Config, BusError> {
    match resolved {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(BusError::InvalidConfig(problems)),
        Err(BusError::InvalidConfig(more)) => {
            problems.extend(more);
            Err(BusError::InvalidConfig(problems))
        }
        Err(other) => Err(other),
    }
}

fn to_value(config: &Config) -> napi::Result<Value, String> {
    serde_json::to_value(config).map_err(|e| napi::Error::new("NATIVE_ERROR".into(), e.to_string()))
}

/// How many 32-bit words the shared buffer of a bus with this queue size
/// and in-flight window needs.
#[napi]
pub fn ring_words(max_queue_size: u32, concurrency: u32) -> u32 {
    Layout::new(max_queue_size, concurrency).words as u32
}

impl NativeBus {
    pub(super) fn current_config(&self) -> Config {
        self.config.lock().clone()
    }
}

#[napi]
impl NativeBus {
    /// `config` must be a full configuration from `resolveConfig`; `ring` is
    /// an `Int32Array` over a `SharedArrayBuffer` of `ringWords(...)` words.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        config: Value,
        #[napi(ts_arg_type = "Int32Array")] ring: SharedInt32Array,
    ) -> napi::Result<Self, String> {
        let config = Config::resolve(&config, |_| None).map_err(to_js)?;
        let needed = Layout::new(config.max_queue_size, config.concurrency).words;
        if ring.len() < needed {
            return Err(napi::Error::new(
                "INVALID_ARGUMENT".into(),
                format!("ring buffer has {} words, needs {needed}", ring.len()),
            ));
        }
        let mem = ring.into_words();
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
        let bus_id = super::isolates::register_bus(&engine);
        Ok(NativeBus {
            engine,
            bus_id,
            max_concurrency: config.concurrency,
            streams: parking_lot::Mutex::new(None),
            config: parking_lot::Mutex::new(config),
        })
    }

    /// The resolved configuration.
    #[napi(getter)]
    pub fn config(&self) -> napi::Result<Value, String> {
        to_value(&self.config.lock())
    }

    /// Merges `partial` over the running configuration, validates it like
    /// the constructor's input (`problems` as in `resolveConfig`), applies
    /// the live settings to the engine and returns the new configuration.
    /// Throws `INVALID_CONFIG` naming every field that is invalid or cannot
    /// change on a running bus; nothing changes then.
    #[napi]
    pub fn update_config(
        &self,
        partial: Value,
        problems: Vec<String>,
    ) -> napi::Result<Value, String> {
        let mut config = self.config.lock();
        let mut next = with_problems(config.update(&partial), problems);
        if let Ok(c) = &next {
            if c.concurrency > self.max_concurrency {
                next = Err(BusError::InvalidConfig(vec![format!(
                    "concurrency can change on a running bus up to {} (the size it was created with), got {}",
                    self.max_concurrency, c.concurrency
                )]));
            }
        }
        let next = next.map_err(to_js)?;
        // The worker count follows through `scale`, which JavaScript calls
        // when the bus is running.
        self.engine.reconfigure(&next);
        *config = next;
        to_value(&config)
    }

    /// Starts `workers` threads. `onDeliveries` is called on this thread
    /// whenever deliveries wait in the hand-off queue.
    #[napi]
    pub fn start(&self, on_deliveries: Function<(), ()>, workers: u32) -> napi::Result<(), String> {
        let lag = self.engine.loop_lag();
        let arrived = lag.clone();
        let tsfn = on_deliveries
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            // Runs on the JavaScript thread just before the callback: the
            // moment the event loop got round to the notification.
            .build_callback(move |_| {
                arrived.arrived();
                Ok(())
            })
            .map_err(napi_to_js)?;
        self.engine
            .start(
                Arc::new(TsfnNotifier {
                    tsfn,
                    lag: Some(lag),
                }),
                workers,
            )
            .map_err(to_js)
    }

    /// Wakes a parked worker after the producer published records.
    #[napi]
    pub fn wake(&self) {
        self.engine.wake();
    }

    /// A run of emissions ended. With `look`, dispatches on this thread
    /// what the ring holds and fits in the window, for the caller to drain
    /// from its hand-off queue at once. Returns 2 when nothing that can run
    /// is left, 1 when records wait for room in the window, 0 when it did
    /// not look (told not to, a worker was dispatching, or the bus is
    /// stopping); below 2 the caller wakes a parked worker. `since_us`:
    /// when the run's first emission was accepted (`elapsedUs` clock,
    /// wrapping), for the event-loop lag.
    #[napi]
    pub fn dispatch(&self, since_us: u32, look: bool) -> u32 {
        match self.engine.dispatch_here(since_us, look) {
            Refill::Skipped => 0,
            Refill::Full => 1,
            Refill::Drained => 2,
        }
    }

    /// Applies `failures` (every handler failure among them), then the
    /// first `count` acknowledgements of the ack area (`[slot, handler,
    /// outcome]` each). With `refill`, dispatches what now fits in the window
    /// on this thread, for the caller to drain from its hand-off queue at
    /// once. The books' reports (as `takeReports`) come back in the ack
    /// area, whose acknowledgements were just taken: the number of reports
    /// written there, or, when they do not fit, an array of them. Setting
    /// an array's elements one by one from here cost more than anything
    /// else the engine does per event.
    #[napi]
    pub fn complete(
        &self,
        count: u32,
        failures: Option<Vec<HandlerFailure>>,
        refill: Option<bool>,
    ) -> napi::Result<Either<u32, Vec<u32>>, String> {
        let done = complete_with_failures(&self.engine, failures, |f| {
            self.engine
                .complete_shared(count, f, refill.unwrap_or(false))
        })?;
        let flat = flat_reports(&done.reports);
        Ok(if self.engine.handoff().write_back(&flat) {
            Either::A(done.reports.len() as u32)
        } else {
            Either::B(flat)
        })
    }

    /// What the books say of events since the last call, flat: `[slot,
    /// code, ...]` (`code & 7`: 0 succeeded, 1 dead-lettered, 2 unhandled,
    /// 3 handed over to the group, 7 not finished; `code & 8`: the slot may
    /// be freed).
    #[napi]
    pub fn take_reports(&self) -> Vec<u32> {
        flat_reports(&self.engine.take_reports())
    }

    #[napi]
    pub fn set_handler_count(&self, type_id: u32, count: u32) {
        self.engine.set_handler_count(type_id, count);
    }

    /// Names an interned event type, for per-type metrics.
    #[napi]
    pub fn set_type_name(&self, type_id: u32, name: String) {
        self.engine.set_type_name(type_id, &name);
    }

    /// Microseconds on the engine's clock, to stamp ring records with.
    #[napi]
    pub fn elapsed_us(&self) -> f64 {
        self.engine.elapsed_us() as f64
    }

    /// The native metrics in the Prometheus text exposition format.
    #[napi]
    pub fn metrics_text(&self) -> String {
        crate::core::observe::prometheus::render(&self.engine)
    }

    /// Largest queue wait and event-loop lag (ms) since the last call.
    #[napi]
    pub fn take_recent_maxima(&self) -> Vec<f64> {
        let (wait, lag) = self.engine.take_recent_maxima();
        vec![wait as f64 / 1e3, lag as f64 / 1e3]
    }

    #[napi]
    pub fn scale(&self, workers: u32) -> napi::Result<(), String> {
        self.engine.scale(workers).map_err(to_js)
    }

    /// Stops and joins the workers and the retry timer. Returns what never
    /// started: ring records in priority order, then retries.
    #[napi]
    pub fn stop(&self) -> Vec<Undelivered> {
        let left = self.engine.stop();
        let records = left.records.into_iter().map(|r| Undelivered {
            slot: r.slot,
            handler: 0,
            attempt: 0,
        });
        let retries = left.redeliveries.into_iter().map(|r| Undelivered {
            slot: r.record.slot,
            handler: r.handler,
            attempt: r.attempt,
        });
        records.chain(retries).collect()
    }

    /// Test hook: the next worker to take a batch panics while holding it.
    #[napi]
    pub fn inject_worker_panic(&self) {
        self.engine.inject_worker_panic();
    }

    /// Worker panics caught since the last call.
    #[napi]
    pub fn take_worker_errors(&self) -> Vec<WorkerPanic> {
        self.engine
            .take_worker_errors()
            .into_iter()
            .map(|e| WorkerPanic {
                worker: e.worker,
                message: e.message,
                requeued: e.requeued,
            })
            .collect()
    }
}
