//! Native buffered event bus for BootifyJS.
//!
//! `core` holds the engine (priority ring, workers, configuration) and has
//! no Node-API dependency; `binding` exposes it to JavaScript.

pub mod binding;
pub mod core;
