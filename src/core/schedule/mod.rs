//! When deliveries run: the window of permits, the deliveries in flight,
//! the retry policy and the queue of retries waiting out their backoff,
//! and the dead letters.

pub mod books;
pub mod dead_letters;
pub mod in_flight;
pub mod journaled;
pub mod permits;
pub mod queue;
pub mod retry_policy;
pub mod retry_queue;
