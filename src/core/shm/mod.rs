//! Shared memory: the buffer's layout, the word view native code reads it
//! through, the priority ring JavaScript produces into and the hand-off
//! queues deliveries and acknowledgements cross.

pub mod handoff;
pub mod layout;
pub mod park_word;
pub mod ring;
pub mod sync;
pub mod words;

#[cfg(all(test, bootify_loom))]
mod loom_models;
