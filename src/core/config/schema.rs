//! The one table of configuration fields: each field's path, its rule, its
//! environment variable and whether it may change on a running bus. The
//! resolver, the environment overrides, `updateConfig` and the README's
//! configuration table (checked by a test) all read it, so a range is
//! written once.
//!
//! Three kinds of entry:
//! - a **field** is a leaf of `Config`, its default taken from
//!   `Config::default()`;
//! - a **mirror** is a BootifyJS nested copy of a field
//!   (`memoryLimits.maxQueueSize` of `maxQueueSize`): accepted as input,
//!   always written back equal to the field;
//! - an **alias** is a compatibility name from BootifyJS's published guide
//!   (`maxRetries`): accepted as input, never written back.

use super::{MAX_CONCURRENCY, WORKER_COUNT_RANGE};

/// Largest delay a JavaScript timer honours (larger ones fire at once).
pub const MAX_TIMER_MS: u32 = 2_147_483_647;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Bool,
    /// An integer within `lo..=hi`.
    Int {
        lo: u32,
        hi: u32,
    },
    /// A finite number within `min..=max`.
    Num {
        min: f64,
        max: f64,
    },
    /// A non-empty array of integer milliseconds, each `lo..=hi`.
    Delays {
        lo: u32,
        hi: u32,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A string (a path).
    Text,
}

pub struct Field {
    pub path: &'static str,
    pub rule: Rule,
    /// May change through `updateConfig` on a running bus.
    pub live: bool,
    /// The `BUFFERED_EVENTS_*` variable that overrides it.
    pub env: Option<&'static str>,
}

/// Where an input-only name goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The same value as this field.
    Field(&'static str),
    /// Part of the delays list `retryDelayMs · retryBackoffMultiplier^k`.
    Backoff,
    /// Accepted and validated for compatibility; has no effect.
    Ignored,
}

pub struct Alias {
    pub path: &'static str,
    pub rule: Rule,
    pub target: Target,
}

const fn int(lo: u32, hi: u32) -> Rule {
    Rule::Int { lo, hi }
}

const fn num(min: f64) -> Rule {
    Rule::Num { min, max: f64::MAX }
}

const fn entry(path: &'static str, rule: Rule, live: bool) -> Field {
    Field {
        path,
        rule,
        live,
        env: None,
    }
}

const fn with_env(path: &'static str, rule: Rule, live: bool, var: &'static str) -> Field {
    Field {
        path,
        rule,
        live,
        env: Some(var),
    }
}

const QUEUE_SIZE: Rule = int(100, 1 << 24);
const EVENT_SIZE: Rule = int(1024, 1 << 26);
const MEMORY_MB: Rule = Rule::Num {
    min: 10.0,
    max: 1_048_576.0,
};
const RETRIES: Rule = int(0, 10);
const INTERVAL: Rule = int(10, MAX_TIMER_MS);

/// Every leaf of `Config`, in resolution order (`retryAttempts` before
/// `retryDelays`, which a backoff alias derives from it).
pub const FIELDS: &[Field] = &[
    with_env("enabled", Rule::Bool, false, "BUFFERED_EVENTS_ENABLED"),
    with_env(
        "workerCount",
        int(WORKER_COUNT_RANGE.0, WORKER_COUNT_RANGE.1),
        true,
        "BUFFERED_EVENTS_WORKER_COUNT",
    ),
    with_env(
        "maxQueueSize",
        QUEUE_SIZE,
        false,
        "BUFFERED_EVENTS_MAX_QUEUE_SIZE",
    ),
    with_env(
        "maxMemoryMB",
        MEMORY_MB,
        false,
        "BUFFERED_EVENTS_MAX_MEMORY_MB",
    ),
    with_env(
        "maxEventSize",
        EVENT_SIZE,
        false,
        "BUFFERED_EVENTS_MAX_EVENT_SIZE",
    ),
    with_env(
        "retryAttempts",
        RETRIES,
        true,
        "BUFFERED_EVENTS_RETRY_ATTEMPTS",
    ),
    entry(
        "retryDelays",
        Rule::Delays {
            lo: 100,
            hi: MAX_TIMER_MS,
        },
        true,
    ),
    entry("fallbackToSync", Rule::Bool, true),
    entry("concurrency", int(1, MAX_CONCURRENCY), true),
    entry("agingMs", int(1, 3_600_000), true),
    entry("handlerTimeout", int(0, MAX_TIMER_MS), true),
    entry("deadLetterQueueSize", int(1, 1_000_000), false),
    entry("workerIsolates", int(1, 64), false),
    entry("propagateContext", Rule::Bool, true),
    entry(
        "durability",
        Rule::Choice(&["memory", "process", "fsync"]),
        false,
    ),
    with_env(
        "journal.dir",
        Rule::Text,
        false,
        "BUFFERED_EVENTS_JOURNAL_DIR",
    ),
    entry(
        "journal.maxDiskMB",
        Rule::Num {
            min: 4.0,
            max: 16_777_216.0,
        },
        false,
    ),
    entry(
        "journal.segmentMB",
        Rule::Num {
            min: 1.0,
            max: 4096.0,
        },
        false,
    ),
    entry("backend.type", Rule::Choice(&["memory", "redis"]), false),
    with_env(
        "backend.url",
        Rule::Text,
        false,
        "BUFFERED_EVENTS_REDIS_URL",
    ),
    entry("backend.name", Rule::Text, false),
    entry("backend.consumer", Rule::Text, false),
    entry("backend.claimIdleMs", int(100, MAX_TIMER_MS), false),
    entry("priorities.critical", num(0.0), false),
    entry("priorities.normal", num(0.0), false),
    entry("priorities.low", num(0.0), false),
    entry("memoryLimits.workerHeapMB", num(1.0), false),
    entry("performanceLimits.maxInputRate", num(0.0), true),
    entry("performanceLimits.targetProcessingRate", num(0.0), true),
    entry("performanceLimits.maxMainThreadImpact", num(0.0), true),
    entry("performanceLimits.maxQueueLatency", num(0.0), true),
    entry(
        "reliabilityLimits.workerRestartDelay",
        int(0, MAX_TIMER_MS),
        true,
    ),
    entry(
        "reliabilityLimits.gracefulShutdownTimeout",
        int(0, MAX_TIMER_MS),
        true,
    ),
    entry("monitoring.enabled", Rule::Bool, true),
    entry("monitoring.metricsInterval", INTERVAL, true),
    entry("monitoring.healthMonitoring", Rule::Bool, true),
    entry("monitoring.healthCheckInterval", INTERVAL, true),
    entry(
        "monitoring.alertThresholds.queueDepthWarning",
        num(0.0),
        true,
    ),
    entry(
        "monitoring.alertThresholds.processingRateMin",
        num(0.0),
        true,
    ),
    entry(
        "monitoring.alertThresholds.maxFailedWorkers",
        num(0.0),
        true,
    ),
    entry("monitoring.alertThresholds.dlqSizeAlert", num(0.0), true),
    entry(
        "monitoring.alertThresholds.mainThreadCpuAlert",
        num(0.0),
        true,
    ),
    entry("monitoring.alertThresholds.eventLoopLagMs", num(0.0), true),
];

/// BootifyJS's nested copies: `(mirror, field)`.
pub const MIRRORS: &[(&str, &str)] = &[
    ("memoryLimits.maxQueueSize", "maxQueueSize"),
    ("memoryLimits.maxEventSize", "maxEventSize"),
    ("memoryLimits.totalMemoryMB", "maxMemoryMB"),
    ("reliabilityLimits.maxRetryAttempts", "retryAttempts"),
    (
        "reliabilityLimits.healthCheckInterval",
        "monitoring.healthCheckInterval",
    ),
];

/// Names from BootifyJS's "Buffered Events" guide and its TS constructor
/// options (see `resolve::unwrap_options`).
pub const ALIASES: &[Alias] = &[
    Alias {
        path: "maxRetries",
        rule: RETRIES,
        target: Target::Field("retryAttempts"),
    },
    Alias {
        path: "retryDelayMs",
        rule: int(100, MAX_TIMER_MS),
        target: Target::Backoff,
    },
    Alias {
        path: "retryBackoffMultiplier",
        rule: Rule::Num {
            min: 1.0,
            max: 10.0,
        },
        target: Target::Backoff,
    },
    Alias {
        path: "batchSize",
        rule: int(1, MAX_CONCURRENCY),
        target: Target::Ignored,
    },
    Alias {
        path: "processingIntervalMs",
        rule: int(0, MAX_TIMER_MS),
        target: Target::Ignored,
    },
    Alias {
        path: "retryJitter",
        rule: Rule::Bool,
        target: Target::Ignored,
    },
    Alias {
        path: "workerOptions.resourceLimits.maxOldGenerationSizeMb",
        rule: num(0.0),
        target: Target::Ignored,
    },
    Alias {
        path: "workerOptions.resourceLimits.maxYoungGenerationSizeMb",
        rule: num(0.0),
        target: Target::Ignored,
    },
    Alias {
        path: "workerOptions.resourceLimits.codeRangeSizeMb",
        rule: num(0.0),
        target: Target::Ignored,
    },
    Alias {
        path: "workerOptions.resourceLimits.stackSizeMb",
        rule: num(0.0),
        target: Target::Ignored,
    },
];

/// The multiplier of the backoff aliases when only `retryDelayMs` is given,
/// BootifyJS's guide's default.
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 2.0;

pub fn field(path: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.path == path)
}

/// The field `path` mirrors, if it is a mirror.
pub fn mirror_of(path: &str) -> Option<&'static str> {
    MIRRORS.iter().find(|(m, _)| *m == path).map(|(_, f)| *f)
}

pub fn alias(path: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|a| a.path == path)
}

/// Every accepted path: fields, mirrors and aliases.
pub fn accepted_paths() -> impl Iterator<Item = &'static str> {
    FIELDS
        .iter()
        .map(|f| f.path)
        .chain(MIRRORS.iter().map(|(m, _)| *m))
        .chain(ALIASES.iter().map(|a| a.path))
}

/// Whether `path` names a group of fields (`monitoring`,
/// `monitoring.alertThresholds`, ...).
pub fn is_group(path: &str) -> bool {
    accepted_paths()
        .any(|p| p.len() > path.len() && p.starts_with(path) && p[path.len()..].starts_with('.'))
}
