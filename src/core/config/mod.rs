//! The bus configuration: BootifyJS defaults, merged key by key with what
//! the caller passed, then overridden by `BUFFERED_EVENTS_*` variables, then
//! validated. Every problem is collected so one `INVALID_CONFIG` error can
//! name all of them.

mod resolve;
pub mod schema;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::BusError;

/// What an accepted event survives (see `core::journal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Nothing: queued events live in memory only.
    Memory,
    /// The death of the process (`write(2)` before `emitEvent` resolves).
    Process,
    /// The machine's crash or power loss (`fdatasync`, group commit).
    Fsync,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalConfig {
    /// Where the journal's segments live; required unless durability is
    /// `'memory'`.
    pub dir: String,
    #[serde(rename = "maxDiskMB")]
    pub max_disk_mb: f64,
    #[serde(rename = "segmentMB")]
    pub segment_mb: f64,
}

/// Where events wait: this process (`memory`) or Redis Streams shared by
/// every bus of the same `name` (see `core::streams`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendConfig {
    #[serde(rename = "type")]
    pub kind: String,
    /// `redis://` or `rediss://` URL; required with `type: 'redis'`.
    pub url: String,
    /// The group's name: buses with the same one share their events.
    pub name: String,
    /// This process's consumer name in the group; empty: host, pid and a
    /// random suffix.
    pub consumer: String,
    /// How long (ms) a delivery may go unrenewed before another process
    /// takes it over (its holder is presumed dead).
    pub claim_idle_ms: u32,
}

impl BackendConfig {
    pub fn is_redis(&self) -> bool {
        self.kind == "redis"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Priorities {
    pub critical: f64,
    pub normal: f64,
    pub low: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryLimits {
    pub max_queue_size: u32,
    pub max_event_size: u32,
    #[serde(rename = "totalMemoryMB")]
    pub total_memory_mb: f64,
    #[serde(rename = "workerHeapMB")]
    pub worker_heap_mb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceLimits {
    pub max_input_rate: f64,
    pub target_processing_rate: f64,
    pub max_main_thread_impact: f64,
    pub max_queue_latency: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReliabilityLimits {
    pub max_retry_attempts: u32,
    pub worker_restart_delay: u32,
    pub health_check_interval: u32,
    pub graceful_shutdown_timeout: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertThresholds {
    pub queue_depth_warning: f64,
    pub processing_rate_min: f64,
    pub max_failed_workers: f64,
    pub dlq_size_alert: f64,
    pub main_thread_cpu_alert: f64,
    /// Event-loop lag (ms) seen by the workers above which health turns
    /// `degraded`. This package's.
    pub event_loop_lag_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    pub enabled: bool,
    pub metrics_interval: u32,
    pub health_monitoring: bool,
    pub health_check_interval: u32,
    pub alert_thresholds: AlertThresholds,
}

/// The resolved configuration. Field names match BootifyJS's
/// `BufferedEventConfig`; `concurrency`, `agingMs`, `handlerTimeout` and
/// `deadLetterQueueSize` are this package's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub enabled: bool,
    pub worker_count: u32,
    pub max_queue_size: u32,
    #[serde(rename = "maxMemoryMB")]
    pub max_memory_mb: f64,
    pub max_event_size: u32,
    pub retry_attempts: u32,
    pub retry_delays: Vec<u32>,
    pub fallback_to_sync: bool,
    pub concurrency: u32,
    pub aging_ms: u32,
    /// Milliseconds a handler may run before it counts as failed
    /// (`HANDLER_TIMEOUT`); 0 = no limit.
    pub handler_timeout: u32,
    /// Most entries kept in the dead-letter queue; the oldest is evicted.
    pub dead_letter_queue_size: u32,
    /// Worker isolates that run handlers registered with
    /// `registerWorkerHandler`; started on the first such event.
    pub worker_isolates: u32,
    /// Main-thread handlers run in the async context of the emission
    /// (AsyncLocalStorage stores reach them).
    pub propagate_context: bool,
    pub durability: Durability,
    pub journal: JournalConfig,
    pub backend: BackendConfig,
    pub priorities: Priorities,
    pub memory_limits: MemoryLimits,
    pub performance_limits: PerformanceLimits,
    pub reliability_limits: ReliabilityLimits,
    pub monitoring: Monitoring,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            worker_count: 5,
            max_queue_size: 10_000,
            max_memory_mb: 50.0,
            max_event_size: 5120,
            retry_attempts: 3,
            retry_delays: vec![1000, 2000, 4000],
            fallback_to_sync: true,
            concurrency: 1024,
            aging_ms: 100,
            handler_timeout: 0,
            dead_letter_queue_size: 1000,
            worker_isolates: default_isolates(),
            propagate_context: true,
            durability: Durability::Memory,
            journal: JournalConfig {
                dir: String::new(),
                max_disk_mb: 1024.0,
                segment_mb: 32.0,
            },
            backend: BackendConfig {
                kind: "memory".into(),
                url: String::new(),
                name: "events".into(),
                consumer: String::new(),
                claim_idle_ms: 30_000,
            },
            priorities: Priorities {
                critical: 3.0,
                normal: 2.0,
                low: 1.0,
            },
            memory_limits: MemoryLimits {
                max_queue_size: 10_000,
                max_event_size: 5120,
                total_memory_mb: 50.0,
                worker_heap_mb: 100.0,
            },
            performance_limits: PerformanceLimits {
                max_input_rate: 1000.0,
                target_processing_rate: 500.0,
                max_main_thread_impact: 5.0,
                max_queue_latency: 100.0,
            },
            reliability_limits: ReliabilityLimits {
                max_retry_attempts: 3,
                worker_restart_delay: 1000,
                health_check_interval: 5000,
                graceful_shutdown_timeout: 10_000,
            },
            monitoring: Monitoring {
                enabled: true,
                metrics_interval: 1000,
                health_monitoring: true,
                health_check_interval: 5000,
                alert_thresholds: AlertThresholds {
                    queue_depth_warning: 8000.0,
                    processing_rate_min: 0.0,
                    max_failed_workers: 1.0,
                    dlq_size_alert: 100.0,
                    main_thread_cpu_alert: 10.0,
                    event_loop_lag_ms: 100.0,
                },
            },
        }
    }
}

/// One isolate per available core, at most 8.
fn default_isolates() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8) as u32)
}

/// Upper bound of `concurrency`; far above what one event loop can keep busy.
pub const MAX_CONCURRENCY: u32 = 65_536;
/// `workerCount` bounds, as BootifyJS validates them.
pub const WORKER_COUNT_RANGE: (u32, u32) = (1, 20);

impl Config {
    /// Resolves `user` (a possibly partial `BufferedEventConfig`, or null)
    /// against the defaults and the environment looked up through `env`.
    pub fn resolve(user: &Value, env: impl Fn(&str) -> Option<String>) -> Result<Config, BusError> {
        resolve::resolve(user, &Config::default(), Some(&env))
    }

    /// `partial` merged over this configuration, validated like the
    /// constructor's input; environment variables are not re-read. Fields
    /// that cannot change on a running bus (`schema::Field::live`) and do
    /// change are errors naming them.
    pub fn update(&self, partial: &Value) -> Result<Config, BusError> {
        let next = resolve::resolve(partial, self, None)?;
        let fixed = resolve::changed_fixed_fields(self, &next);
        if fixed.is_empty() {
            Ok(next)
        } else {
            Err(BusError::InvalidConfig(fixed))
        }
    }

    /// Lane indices (0 = critical, 1 = normal, 2 = low) in the order they are
    /// served: by descending `priorities` weight, ties keeping the default order.
    pub fn lane_order(&self) -> [usize; 3] {
        let w = [
            self.priorities.critical,
            self.priorities.normal,
            self.priorities.low,
        ];
        let mut order = [0, 1, 2];
        order.sort_by(|a, b| w[*b].total_cmp(&w[*a]));
        order
    }

    pub fn durable(&self) -> bool {
        self.durability != Durability::Memory
    }

    pub fn max_memory_bytes(&self) -> u64 {
        (self.max_memory_mb * 1024.0 * 1024.0) as u64
    }
}
