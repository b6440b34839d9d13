//! A view of 32-bit words that JavaScript and native threads both touch.
//!
//! The memory either belongs to this struct (tests, Rust-only use) or to a
//! JavaScript `SharedArrayBuffer`, in which case `owner` is whatever keeps
//! that buffer alive (the napi typed-array reference).

use super::sync::AtomicU32;
use std::any::Any;

pub struct SharedWords {
    ptr: *const AtomicU32,
    len: usize,
    _owned: Option<Box<[AtomicU32]>>,
    _owner: Option<Box<dyn Any + Send + Sync>>,
}

// SAFETY: the words are only ever accessed through `AtomicU32`, which is
// `Sync`; the pointer is valid for as long as `self` lives (see the
// constructors), so sharing the view between threads is sound.
unsafe impl Send for SharedWords {}
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Zeroed words owned by this view.
    pub fn owned(len: usize) -> Self {
        let owned: Box<[AtomicU32]> = (0..len).map(|_| AtomicU32::new(0)).collect();
        SharedWords {
            ptr: owned.as_ptr(),
            len,
            _owned: Some(owned),
            _owner: None,
        }
    }

    /// A view of memory that something else allocated.
    ///
    /// # Safety
    /// `ptr` must be 4-byte aligned and valid for reads and writes of `len`
    /// `u32` words for as long as `owner` is alive, and every other party must
    /// access those words atomically (JavaScript's `Atomics`, or plain writes
    /// published by a later atomic store, as the ring protocol does).
    #[cfg(not(bootify_loom))]
    pub unsafe fn from_raw(ptr: *mut u32, len: usize, owner: Box<dyn Any + Send + Sync>) -> Self {
        SharedWords {
            ptr: ptr as *const AtomicU32,
            len,
            _owned: None,
            _owner: Some(owner),
        }
    }

    pub fn words(&self) -> &[AtomicU32] {
        // SAFETY: `ptr` is valid for `len` words while `self` lives (owned
        // box or `owner` keep it alive, per the constructors' contracts), and
        // `AtomicU32` has the same layout as `u32`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}
