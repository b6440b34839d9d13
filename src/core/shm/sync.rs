//! The atomics the shared-memory protocols are built on: the standard
//! library's, or loom's when the concurrency models run
//! (`RUSTFLAGS="--cfg bootify_loom"`, see `loom_models.rs`), so the models exercise
//! this code and not a copy of it.

#[cfg(all(test, bootify_loom))]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(not(all(test, bootify_loom)))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64};
