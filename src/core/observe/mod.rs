//! What the bus reports: counters and histograms, rates, per-event-type
//! statistics, and the Prometheus text rendering of them.

pub mod histogram;
pub mod log;
pub mod metrics;
pub mod prometheus;
pub mod rates;
pub mod type_stats;
