//! Native buffered event bus for BootifyJS.
//!
//! `core` holds the engine (priority ring, workers, configuration) and has
//! no Node-API dependency; `binding` exposes it to JavaScript.

// Under loom (`npm run test:loom`) only the engine is built: the models
// need no Node-API, and the binding's raw views of JavaScript memory cannot
// be loom's atomics.
#[cfg(not(bootify_loom))]
pub mod binding;
pub mod core;
