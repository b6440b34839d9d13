//! Typed arrays the native threads read and write while JavaScript runs.

use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, Int32Array, TypeName, ValueType};
use napi::{check_status, sys, Error, Status};

use crate::core::shm::words::SharedWords;

/// An `Int32Array` over a `SharedArrayBuffer`. Only such memory may be
/// shared with native threads: a `SharedArrayBuffer` can be neither
/// detached (`transfer()`, `postMessage` with a transfer list) nor moved,
/// where an `ArrayBuffer` can, which would leave the threads writing into
/// freed memory.
pub struct SharedInt32Array(Int32Array);

impl TypeName for SharedInt32Array {
    fn type_name() -> &'static str {
        "Int32Array"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for SharedInt32Array {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut kind = 0;
        let mut length = 0;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut offset = 0;
        // SAFETY: `env` and `value` come from the call being converted;
        // the out-pointers are valid locals. A value that is not a typed
        // array makes this return an error status, checked below.
        check_status!(
            unsafe {
                sys::napi_get_typedarray_info(
                    env,
                    value,
                    &mut kind,
                    &mut length,
                    &mut data,
                    &mut buffer,
                    &mut offset,
                )
            },
            "expected an Int32Array over a SharedArrayBuffer"
        )?;
        let mut plain = false;
        // SAFETY: `buffer` is the typed array's buffer, just returned by
        // Node-API for this `env`.
        check_status!(unsafe { sys::napi_is_arraybuffer(env, buffer, &mut plain) })?;
        // `napi_is_arraybuffer` is false for a SharedArrayBuffer, the only
        // other kind of buffer a typed array can have.
        if plain {
            return Err(Error::new(
                Status::InvalidArg,
                "expected an Int32Array over a SharedArrayBuffer, got one over an ArrayBuffer \
                 (which can be detached)"
                    .to_owned(),
            ));
        }
        // SAFETY: same `env` and `value`; this checks the element type.
        Ok(SharedInt32Array(unsafe {
            Int32Array::from_napi_value(env, value)
        }?))
    }
}

impl SharedInt32Array {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The words, kept alive by the typed array they now own.
    pub fn into_words(self) -> SharedWords {
        let (ptr, len) = (self.0.as_ptr() as *mut u32, self.0.len());
        // SAFETY: the memory belongs to a SharedArrayBuffer (checked when
        // this value was made), which never moves and cannot be detached,
        // and `SharedWords` owns the typed array, so the memory outlives
        // it. JavaScript touches these words only with `Atomics` or with
        // plain writes that a later `Atomics.store` publishes, as the ring
        // and hand-off protocols require.
        unsafe { SharedWords::from_raw(ptr, len, Box::new(self.0)) }
    }
}
