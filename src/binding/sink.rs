use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

use std::sync::Arc;

use super::error::napi_to_js;
use crate::core::engine::Notifier;
use crate::core::observe::metrics::LoopLag;

/// The JavaScript "deliveries are waiting" callback. Weak: a pending call
/// alone does not keep the process alive; the JavaScript layer holds the
/// loop open while it has work outstanding.
pub type DeliveryCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

/// `f` as a [`DeliveryCallback`]: any thread may call it without blocking,
/// and a pending call never keeps the process alive.
pub fn weak_callback(f: Function<(), ()>) -> napi::Result<DeliveryCallback, String> {
    f.build_threadsafe_function::<()>()
        .weak::<true>()
        .callee_handled::<false>()
        .build()
        .map_err(napi_to_js)
}

pub struct TsfnNotifier {
    pub tsfn: DeliveryCallback,
    /// Timestamps the notification; the callback records the lag. Only the
    /// main thread's: the lag probe measures that event loop, and an
    /// isolate's notification is answered on another.
    pub lag: Option<Arc<LoopLag>>,
}

impl Notifier for TsfnNotifier {
    fn notify(&self) -> bool {
        if let Some(lag) = &self.lag {
            lag.notified();
        }
        // Non-blocking: a worker must never wait on the JavaScript thread,
        // or `process.exit()` could hang joining it.
        self.tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
    }
}
