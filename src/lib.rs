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

// The Redis reader and the engine allocate per event on several threads
// (reply values, envelopes, books); glibc's arenas made that a tenth of the
// reader's CPU, with lock waits between threads. Only Rust's own
// allocations go through it: Node's heap is its own. Local-dynamic TLS:
// an addon is loaded with dlopen, where initial-exec TLS competes for
// glibc's small static block with every other addon loaded (and fails to
// load when it runs out).
#[cfg(not(bootify_loom))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
