//! The bus configuration: BootifyJS defaults, merged key by key with what
//! the caller passed, then overridden by `BUFFERED_EVENTS_*` variables, then
//! validated. Every problem is collected so one `INVALID_CONFIG` error can
//! name all of them.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::BusError;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Priorities {
    pub critical: f64,
    pub normal: f64,
    pub low: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryLimits {
    pub max_queue_size: u32,
    pub max_event_size: u32,
    #[serde(rename = "totalMemoryMB")]
    pub total_memory_mb: f64,
    #[serde(rename = "workerHeapMB")]
    pub worker_heap_mb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceLimits {
    pub max_input_rate: f64,
    pub target_processing_rate: f64,
    pub max_main_thread_impact: f64,
    pub max_queue_latency: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReliabilityLimits {
    pub max_retry_attempts: u32,
    pub worker_restart_delay: u32,
    pub health_check_interval: u32,
    pub graceful_shutdown_timeout: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Environment variables BootifyJS documents, each overriding one field.
pub const ENV_OVERRIDES: [(&str, &str); 6] = [
    ("BUFFERED_EVENTS_ENABLED", "enabled"),
    ("BUFFERED_EVENTS_WORKER_COUNT", "workerCount"),
    ("BUFFERED_EVENTS_MAX_QUEUE_SIZE", "maxQueueSize"),
    ("BUFFERED_EVENTS_MAX_MEMORY_MB", "maxMemoryMB"),
    ("BUFFERED_EVENTS_RETRY_ATTEMPTS", "retryAttempts"),
    ("BUFFERED_EVENTS_MAX_EVENT_SIZE", "maxEventSize"),
];

impl Config {
    /// Resolves `user` (a possibly partial `BufferedEventConfig`, or null)
    /// against the defaults and the environment looked up through `env`.
    pub fn resolve(user: &Value, env: impl Fn(&str) -> Option<String>) -> Result<Config, BusError> {
        let mut r = Reader::default();
        let empty = Map::new();
        let root = match user {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(BusError::InvalidConfig(vec![format!(
                    "config must be an object, got {}",
                    kind(other)
                )]))
            }
        };
        let mut c = Config::default();
        let d = Config::default();

        c.enabled = r.boolean(root, "enabled", d.enabled);
        c.worker_count = r.int(root, "workerCount", d.worker_count, WORKER_COUNT_RANGE);
        c.fallback_to_sync = r.boolean(root, "fallbackToSync", d.fallback_to_sync);
        c.concurrency = r.int(root, "concurrency", d.concurrency, (1, MAX_CONCURRENCY));
        c.aging_ms = r.int(root, "agingMs", d.aging_ms, (1, 3_600_000));
        c.handler_timeout = r.int(
            root,
            "handlerTimeout",
            d.handler_timeout,
            (0, 2_147_483_647),
        );
        c.worker_isolates = r.int(root, "workerIsolates", d.worker_isolates, (1, 64));
        c.dead_letter_queue_size = r.int(
            root,
            "deadLetterQueueSize",
            d.dead_letter_queue_size,
            (1, 1_000_000),
        );
        c.retry_delays = r.delays(root, "retryDelays", &d.retry_delays);

        let prio = r.group(root, "priorities");
        c.priorities = Priorities {
            critical: r.number(prio, "priorities.critical", d.priorities.critical, 0.0),
            normal: r.number(prio, "priorities.normal", d.priorities.normal, 0.0),
            low: r.number(prio, "priorities.low", d.priorities.low, 0.0),
        };

        // Fields that appear both at top level and in a nested group: the
        // top level wins, a lone nested value is honoured, and two explicit
        // values that disagree are a mistake worth reporting.
        let mem = r.group(root, "memoryLimits");
        let rel = r.group(root, "reliabilityLimits");
        let mon = r.group(root, "monitoring");
        c.max_queue_size = r.mirrored_int(
            (root, "maxQueueSize"),
            (mem, "memoryLimits.maxQueueSize"),
            d.max_queue_size,
            (100, 1 << 24),
        );
        c.max_event_size = r.mirrored_int(
            (root, "maxEventSize"),
            (mem, "memoryLimits.maxEventSize"),
            d.max_event_size,
            (1024, 1 << 26),
        );
        c.max_memory_mb = r.mirrored_number(
            (root, "maxMemoryMB"),
            (mem, "memoryLimits.totalMemoryMB"),
            d.max_memory_mb,
            10.0,
        );
        c.retry_attempts = r.mirrored_int(
            (root, "retryAttempts"),
            (rel, "reliabilityLimits.maxRetryAttempts"),
            d.retry_attempts,
            (0, 10),
        );
        let health_interval = r.mirrored_int(
            (mon, "monitoring.healthCheckInterval"),
            (rel, "reliabilityLimits.healthCheckInterval"),
            d.monitoring.health_check_interval,
            (10, u32::MAX),
        );

        c.memory_limits = MemoryLimits {
            max_queue_size: c.max_queue_size,
            max_event_size: c.max_event_size,
            total_memory_mb: c.max_memory_mb,
            worker_heap_mb: r.number(
                mem,
                "memoryLimits.workerHeapMB",
                d.memory_limits.worker_heap_mb,
                1.0,
            ),
        };
        let perf = r.group(root, "performanceLimits");
        let dp = &d.performance_limits;
        c.performance_limits = PerformanceLimits {
            max_input_rate: r.number(
                perf,
                "performanceLimits.maxInputRate",
                dp.max_input_rate,
                0.0,
            ),
            target_processing_rate: r.number(
                perf,
                "performanceLimits.targetProcessingRate",
                dp.target_processing_rate,
                0.0,
            ),
            max_main_thread_impact: r.number(
                perf,
                "performanceLimits.maxMainThreadImpact",
                dp.max_main_thread_impact,
                0.0,
            ),
            max_queue_latency: r.number(
                perf,
                "performanceLimits.maxQueueLatency",
                dp.max_queue_latency,
                0.0,
            ),
        };
        let dr = &d.reliability_limits;
        c.reliability_limits = ReliabilityLimits {
            max_retry_attempts: c.retry_attempts,
            worker_restart_delay: r.int(
                rel,
                "reliabilityLimits.workerRestartDelay",
                dr.worker_restart_delay,
                (0, u32::MAX),
            ),
            health_check_interval: health_interval,
            graceful_shutdown_timeout: r.int(
                rel,
                "reliabilityLimits.gracefulShutdownTimeout",
                dr.graceful_shutdown_timeout,
                (0, u32::MAX),
            ),
        };
        let dm = &d.monitoring;
        let alerts = r.group(mon, "monitoring.alertThresholds");
        let da = &dm.alert_thresholds;
        let at = |r: &mut Reader, key: &str, default: f64| {
            r.number(
                alerts,
                &format!("monitoring.alertThresholds.{key}"),
                default,
                0.0,
            )
        };
        c.monitoring = Monitoring {
            enabled: r.boolean(mon, "monitoring.enabled", dm.enabled),
            metrics_interval: r.int(
                mon,
                "monitoring.metricsInterval",
                dm.metrics_interval,
                (10, u32::MAX),
            ),
            health_monitoring: r.boolean(mon, "monitoring.healthMonitoring", dm.health_monitoring),
            health_check_interval: health_interval,
            alert_thresholds: AlertThresholds {
                queue_depth_warning: at(&mut r, "queueDepthWarning", da.queue_depth_warning),
                processing_rate_min: at(&mut r, "processingRateMin", da.processing_rate_min),
                max_failed_workers: at(&mut r, "maxFailedWorkers", da.max_failed_workers),
                dlq_size_alert: at(&mut r, "dlqSizeAlert", da.dlq_size_alert),
                main_thread_cpu_alert: at(&mut r, "mainThreadCpuAlert", da.main_thread_cpu_alert),
                event_loop_lag_ms: at(&mut r, "eventLoopLagMs", da.event_loop_lag_ms),
            },
        };

        r.apply_env(&mut c, env);
        if r.problems.is_empty() {
            Ok(c)
        } else {
            Err(BusError::InvalidConfig(r.problems))
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

    pub fn max_memory_bytes(&self) -> u64 {
        (self.max_memory_mb * 1024.0 * 1024.0) as u64
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Reads typed fields out of JSON objects, recording one message per problem.
#[derive(Default)]
struct Reader {
    problems: Vec<String>,
}

static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

impl Reader {
    fn group<'a>(&mut self, obj: &'a Map<String, Value>, path: &str) -> &'a Map<String, Value> {
        let empty = EMPTY.get_or_init(Map::new);
        match obj.get(leaf(path)) {
            None | Some(Value::Null) => empty,
            Some(Value::Object(map)) => map,
            Some(other) => {
                self.problems
                    .push(format!("{path} must be an object, got {}", kind(other)));
                empty
            }
        }
    }

    fn boolean(&mut self, obj: &Map<String, Value>, path: &str, default: bool) -> bool {
        match obj.get(leaf(path)) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problems
                    .push(format!("{path} must be a boolean, got {}", kind(other)));
                default
            }
        }
    }

    fn number(&mut self, obj: &Map<String, Value>, path: &str, default: f64, min: f64) -> f64 {
        match obj.get(leaf(path)) {
            None | Some(Value::Null) => default,
            Some(v) => self.check_number(v, path, min).unwrap_or(default),
        }
    }

    fn check_number(&mut self, v: &Value, path: &str, min: f64) -> Option<f64> {
        match v.as_f64() {
            Some(n) if n.is_finite() && n >= min => Some(n),
            Some(n) => {
                self.problems
                    .push(format!("{path} must be a finite number >= {min}, got {n}"));
                None
            }
            None => {
                self.problems
                    .push(format!("{path} must be a number, got {}", kind(v)));
                None
            }
        }
    }

    fn check_int(&mut self, v: &Value, path: &str, (lo, hi): (u32, u32)) -> Option<u32> {
        match v.as_f64() {
            Some(n) if n.fract() == 0.0 && n >= lo as f64 && n <= hi as f64 => Some(n as u32),
            Some(n) if n.fract() != 0.0 || !n.is_finite() => {
                self.problems
                    .push(format!("{path} must be an integer, got {n}"));
                None
            }
            Some(n) => {
                let range = if hi == u32::MAX {
                    format!(">= {lo}")
                } else {
                    format!("between {lo} and {hi}")
                };
                self.problems
                    .push(format!("{path} must be {range}, got {n}"));
                None
            }
            None => {
                self.problems
                    .push(format!("{path} must be an integer, got {}", kind(v)));
                None
            }
        }
    }

    fn int(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        default: u32,
        range: (u32, u32),
    ) -> u32 {
        match obj.get(leaf(path)) {
            None | Some(Value::Null) => default,
            Some(v) => self.check_int(v, path, range).unwrap_or(default),
        }
    }

    fn mirrored_int(
        &mut self,
        a: (&Map<String, Value>, &str),
        b: (&Map<String, Value>, &str),
        default: u32,
        range: (u32, u32),
    ) -> u32 {
        self.mirrored(a, b, default, |r, v, path| r.check_int(v, path, range))
    }

    fn mirrored_number(
        &mut self,
        a: (&Map<String, Value>, &str),
        b: (&Map<String, Value>, &str),
        default: f64,
        min: f64,
    ) -> f64 {
        self.mirrored(a, b, default, |r, v, path| r.check_number(v, path, min))
    }

    /// A field set in two places: either may be given, both must agree.
    fn mirrored<T: Copy + PartialEq + std::fmt::Display>(
        &mut self,
        (a, a_path): (&Map<String, Value>, &str),
        (b, b_path): (&Map<String, Value>, &str),
        default: T,
        check: impl Fn(&mut Self, &Value, &str) -> Option<T>,
    ) -> T {
        let x = a.get(leaf(a_path)).filter(|v| !v.is_null());
        let y = b.get(leaf(b_path)).filter(|v| !v.is_null());
        let x = x.and_then(|v| check(self, v, a_path));
        let y = y.and_then(|v| check(self, v, b_path));
        match (x, y) {
            (Some(x), Some(y)) if x != y => {
                self.problems.push(format!(
                    "{a_path} ({x}) and {b_path} ({y}) disagree; set one of them"
                ));
                x
            }
            (Some(x), _) => x,
            (None, Some(y)) => y,
            (None, None) => default,
        }
    }

    fn delays(&mut self, obj: &Map<String, Value>, path: &str, default: &[u32]) -> Vec<u32> {
        match obj.get(path) {
            None | Some(Value::Null) => default.to_vec(),
            Some(Value::Array(items)) if items.is_empty() => {
                self.problems.push(format!("{path} must not be empty"));
                default.to_vec()
            }
            Some(Value::Array(items)) => {
                let before = self.problems.len();
                let out: Vec<u32> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| {
                        self.check_int(v, &format!("{path}[{i}]"), (100, u32::MAX))
                    })
                    .collect();
                if self.problems.len() == before {
                    out
                } else {
                    default.to_vec()
                }
            }
            Some(other) => {
                self.problems.push(format!(
                    "{path} must be an array of milliseconds, got {}",
                    kind(other)
                ));
                default.to_vec()
            }
        }
    }

    fn apply_env(&mut self, c: &mut Config, env: impl Fn(&str) -> Option<String>) {
        for (var, field) in ENV_OVERRIDES {
            let Some(raw) = env(var) else { continue };
            if field == "enabled" {
                // BootifyJS's rule: only the exact string 'true' enables.
                c.enabled = raw.trim() == "true";
                continue;
            }
            let parsed: Option<f64> = raw.trim().parse().ok();
            let Some(n) = parsed else {
                self.problems
                    .push(format!("{var} must be a number, got {raw:?}"));
                continue;
            };
            let value = Value::from(n);
            let path = format!("{field} (from {var})");
            match field {
                "workerCount" => {
                    if let Some(v) = self.check_int(&value, &path, WORKER_COUNT_RANGE) {
                        c.worker_count = v;
                    }
                }
                "maxQueueSize" => {
                    if let Some(v) = self.check_int(&value, &path, (100, 1 << 24)) {
                        c.max_queue_size = v;
                        c.memory_limits.max_queue_size = v;
                    }
                }
                "maxMemoryMB" => {
                    if let Some(v) = self.check_number(&value, &path, 10.0) {
                        c.max_memory_mb = v;
                        c.memory_limits.total_memory_mb = v;
                    }
                }
                "retryAttempts" => {
                    if let Some(v) = self.check_int(&value, &path, (0, 10)) {
                        c.retry_attempts = v;
                        c.reliability_limits.max_retry_attempts = v;
                    }
                }
                "maxEventSize" => {
                    if let Some(v) = self.check_int(&value, &path, (1024, 1 << 26)) {
                        c.max_event_size = v;
                        c.memory_limits.max_event_size = v;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn problems(v: Value) -> Vec<String> {
        match Config::resolve(&v, no_env) {
            Err(BusError::InvalidConfig(p)) => p,
            other => panic!("expected INVALID_CONFIG, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_bootifyjs() {
        let c = Config::resolve(&Value::Null, no_env).expect("defaults are valid");
        assert_eq!(c, Config::default());
        assert_eq!(c.worker_count, 5);
        assert_eq!(c.retry_delays, vec![1000, 2000, 4000]);
        assert_eq!(c.monitoring.alert_thresholds.dlq_size_alert, 100.0);
    }

    #[test]
    fn nested_groups_merge_key_by_key() {
        let c = Config::resolve(
            &json!({ "monitoring": { "metricsInterval": 250, "alertThresholds": { "dlqSizeAlert": 5 } } }),
            no_env,
        )
        .expect("valid");
        assert_eq!(c.monitoring.metrics_interval, 250);
        assert!(c.monitoring.enabled);
        assert_eq!(c.monitoring.alert_thresholds.dlq_size_alert, 5.0);
        assert_eq!(c.monitoring.alert_thresholds.queue_depth_warning, 8000.0);
    }

    #[test]
    fn every_offending_field_is_named() {
        let p = problems(json!({
            "workerCount": 0, "maxQueueSize": 10, "maxEventSize": 100, "maxMemoryMB": 1,
            "retryAttempts": 11, "retryDelays": [50], "concurrency": 1.5, "enabled": "yes"
        }));
        for field in [
            "workerCount",
            "maxQueueSize",
            "maxEventSize",
            "maxMemoryMB",
            "retryAttempts",
            "retryDelays[0]",
            "concurrency",
            "enabled",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(field)),
                "no problem names {field}: {p:?}"
            );
        }
        assert_eq!(p.len(), 8);
    }

    #[test]
    fn empty_delay_list_and_wrong_types_are_rejected() {
        assert!(problems(json!({ "retryDelays": [] }))[0].contains("retryDelays must not be empty"));
        assert!(problems(json!({ "monitoring": 3 }))[0].contains("monitoring must be an object"));
        assert!(
            problems(json!({ "workerCount": "4" }))[0].contains("workerCount must be an integer")
        );
        assert!(problems(json!([1, 2]))[0].contains("config must be an object"));
    }

    #[test]
    fn mirrored_fields_follow_one_value() {
        let c = Config::resolve(&json!({ "memoryLimits": { "maxQueueSize": 500 } }), no_env)
            .expect("valid");
        assert_eq!(
            (c.max_queue_size, c.memory_limits.max_queue_size),
            (500, 500)
        );
        let c = Config::resolve(&json!({ "maxQueueSize": 700 }), no_env).expect("valid");
        assert_eq!(c.memory_limits.max_queue_size, 700);
        let p = problems(json!({ "maxQueueSize": 700, "memoryLimits": { "maxQueueSize": 500 } }));
        assert!(p[0].contains("disagree"), "{p:?}");
    }

    #[test]
    fn environment_overrides_config() {
        let env = |k: &str| match k {
            "BUFFERED_EVENTS_WORKER_COUNT" => Some("7".to_string()),
            "BUFFERED_EVENTS_ENABLED" => Some("false".to_string()),
            "BUFFERED_EVENTS_MAX_EVENT_SIZE" => Some("2048".to_string()),
            _ => None,
        };
        let c = Config::resolve(&json!({ "workerCount": 2 }), env).expect("valid");
        assert_eq!(c.worker_count, 7);
        assert!(!c.enabled);
        assert_eq!(c.max_event_size, 2048);

        let bad = |k: &str| (k == "BUFFERED_EVENTS_MAX_QUEUE_SIZE").then(|| "lots".to_string());
        let Err(BusError::InvalidConfig(p)) = Config::resolve(&Value::Null, bad) else {
            panic!("expected INVALID_CONFIG")
        };
        assert!(p[0].contains("BUFFERED_EVENTS_MAX_QUEUE_SIZE"), "{p:?}");
    }

    #[test]
    fn lane_order_follows_weights() {
        let c = Config::default();
        assert_eq!(c.lane_order(), [0, 1, 2]);
        let c = Config::resolve(&json!({ "priorities": { "low": 10 } }), no_env).expect("valid");
        assert_eq!(c.lane_order(), [2, 0, 1]);
    }
}
