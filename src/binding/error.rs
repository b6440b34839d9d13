use crate::core::error::BusError;

/// A JavaScript error whose `code` is the core error's stable code.
pub fn to_js(err: BusError) -> napi::Error<String> {
    napi::Error::new(err.code().to_string(), err.to_string())
}

/// Wraps a napi failure (a conversion, a closed environment) with a code of
/// its own so callers can still branch on `err.code`.
pub fn napi_to_js(err: napi::Error) -> napi::Error<String> {
    napi::Error::new("NATIVE_ERROR".to_string(), err.reason.clone())
}
