//! The engine of the bus, free of any Node-API type so it builds and tests
//! under plain `cargo test`. `crate::binding` is the thin napi layer over it.
//!
//! - `shm`: the memory JavaScript and the native threads share, and the
//!   protocols over it (the priority ring, the hand-off queues).
//! - `schedule`: what decides when a delivery runs: the in-flight window,
//!   retry policy and queue, dead letters.
//! - `observe`: counters, histograms, rates, per-type statistics and the
//!   Prometheus rendering.
//! - `journal`: the write-ahead journal of durable buses.
//! - `streams`: the Redis Streams backend, shared by many processes.
//! - `engine`: the worker threads that tie them together; `config` its
//!   settings.

pub mod config;
pub mod engine;
pub mod error;
pub mod journal;
pub mod observe;
pub mod schedule;
pub mod shm;
pub mod streams;
