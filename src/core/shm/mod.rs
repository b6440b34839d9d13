//! Shared memory: the buffer's layout, the word view native code reads it
//! through, the priority ring JavaScript produces into and the hand-off
//! queues deliveries and acknowledgements cross.

pub mod handoff;
pub mod layout;
pub mod ring;
pub mod words;
