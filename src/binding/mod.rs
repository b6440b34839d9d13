//! The Node-API layer: converts arguments and errors, owns the threadsafe
//! function, and otherwise forwards to `crate::core`.

pub mod bus;
mod dead_letters;
mod error;
pub mod isolates;
mod journal;
mod logs;
mod shared_view;
mod sink;
pub mod stats;
mod streams;
