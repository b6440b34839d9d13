//! The engine of the bus, free of any Node-API type so it builds and tests
//! under plain `cargo test`. `crate::binding` is the thin napi layer over it.

pub mod config;
pub mod dead_letter;
pub mod engine;
pub mod error;
pub mod handoff;
pub mod histogram;
pub mod in_flight;
pub mod layout;
pub mod metrics;
pub mod permits;
pub mod prometheus;
pub mod rates;
pub mod retry;
pub mod retry_queue;
pub mod ring;
pub mod shared;
pub mod types;
