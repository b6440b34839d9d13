use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

use crate::core::engine::Notifier;

/// The JavaScript "deliveries are waiting" callback. Weak: a pending call
/// alone does not keep the process alive; the JavaScript layer holds the
/// loop open while it has work outstanding.
pub type DeliveryCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

pub struct TsfnNotifier(pub DeliveryCallback);

impl Notifier for TsfnNotifier {
    fn notify(&self) -> bool {
        // Non-blocking: a worker must never wait on the JavaScript thread,
        // or `process.exit()` could hang joining it.
        self.0.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
    }
}
