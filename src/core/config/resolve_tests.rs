use serde_json::{json, Value};

use super::super::schema::{FIELDS, MIRRORS};
use super::super::Config;
use super::get;
use crate::core::error::BusError;

fn no_env(_: &str) -> Option<String> {
    None
}

fn ok(v: Value) -> Config {
    Config::resolve(&v, no_env).unwrap_or_else(|e| panic!("expected a valid config, got {e}"))
}

fn problems(v: Value) -> Vec<String> {
    match Config::resolve(&v, no_env) {
        Err(BusError::InvalidConfig(p)) => p,
        other => panic!("expected INVALID_CONFIG, got {other:?}"),
    }
}

/// The defaults as a caller sees them: what `{ ...defaultBufferedEventConfig }` spreads.
fn defaults() -> serde_json::Map<String, Value> {
    match serde_json::to_value(Config::default()) {
        Ok(Value::Object(map)) => map,
        other => panic!("defaults serialise to an object, got {other:?}"),
    }
}

fn spread(overrides: Value) -> Value {
    let mut map = defaults();
    if let Value::Object(o) = overrides {
        map.extend(o);
    }
    Value::Object(map)
}

#[test]
fn defaults_match_bootifyjs() {
    let c = ok(Value::Null);
    assert_eq!(c, Config::default());
    assert_eq!(c.worker_count, 5);
    assert_eq!(c.retry_delays, vec![1000, 2000, 4000]);
    assert_eq!(c.monitoring.alert_thresholds.dlq_size_alert, 100.0);
}

#[test]
fn every_leaf_of_the_config_has_one_rule() {
    let tree = serde_json::to_value(Config::default()).expect("serialises");
    fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| leaves(v, &format!("{prefix}{k}."), out)),
            _ => out.push(prefix.trim_end_matches('.').to_string()),
        }
    }
    let mut paths = Vec::new();
    leaves(&tree, "", &mut paths);
    for path in &paths {
        let rules = FIELDS.iter().filter(|f| f.path == path).count()
            + MIRRORS.iter().filter(|(m, _)| m == path).count();
        assert_eq!(rules, 1, "{path} must be exactly one field or mirror");
    }
    assert_eq!(paths.len(), FIELDS.len() + MIRRORS.len());
}

#[test]
fn a_resolved_config_resolves_to_itself() {
    let c =
        ok(json!({ "workerCount": 2, "memoryLimits": { "maxQueueSize": 500 }, "maxRetries": 5 }));
    let again = ok(serde_json::to_value(&c).expect("serialises"));
    assert_eq!(again, c);
}

#[test]
fn nested_groups_merge_key_by_key() {
    let c = ok(
        json!({ "monitoring": { "metricsInterval": 250, "alertThresholds": { "dlqSizeAlert": 5 } } }),
    );
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
fn empty_delay_lists_nulls_and_wrong_types_are_rejected() {
    assert!(problems(json!({ "retryDelays": [] }))[0].contains("retryDelays must not be empty"));
    assert!(problems(json!({ "monitoring": 3 }))[0].contains("monitoring must be an object"));
    assert!(problems(json!({ "workerCount": "4" }))[0].contains("workerCount must be an integer"));
    assert!(problems(json!({ "workerCount": null }))[0]
        .contains("workerCount must be an integer, got null"));
    assert!(problems(json!({ "monitoring": null }))[0]
        .contains("monitoring must be an object, got null"));
    assert!(problems(json!([1, 2]))[0].contains("config must be an object"));
}

#[test]
fn timers_cannot_exceed_what_javascript_timers_honour() {
    let p = problems(json!({
        "monitoring": { "metricsInterval": 2_147_483_648u64, "healthCheckInterval": 4e9 },
        "reliabilityLimits": { "gracefulShutdownTimeout": 2_147_483_648u64 }
    }));
    assert_eq!(p.len(), 3, "{p:?}");
}

#[test]
fn a_spread_default_yields_to_the_changed_mirror_in_both_directions() {
    // The seed's pattern: spread the defaults, change the top level.
    let c = ok(spread(
        json!({ "workerCount": 2, "maxQueueSize": 1000, "maxMemoryMB": 10, "retryAttempts": 1, "maxEventSize": 2048 }),
    ));
    let mirrored = |c: &Config| {
        (
            (c.max_queue_size, c.memory_limits.max_queue_size),
            (c.max_event_size, c.memory_limits.max_event_size),
            (c.retry_attempts, c.reliability_limits.max_retry_attempts),
        )
    };
    assert_eq!(mirrored(&c), ((1000, 1000), (2048, 2048), (1, 1)));
    assert_eq!(
        (c.max_memory_mb, c.memory_limits.total_memory_mb),
        (10.0, 10.0)
    );
    // ... or change the nested copy and keep the spread top level.
    let mut d = defaults();
    d.insert(
        "memoryLimits".into(),
        json!({ "maxQueueSize": 700, "maxEventSize": 4096, "totalMemoryMB": 20, "workerHeapMB": 100 }),
    );
    d.insert(
        "reliabilityLimits".into(),
        json!({ "maxRetryAttempts": 2, "workerRestartDelay": 1000, "healthCheckInterval": 750, "gracefulShutdownTimeout": 10000 }),
    );
    let c = ok(Value::Object(d));
    assert_eq!(
        (c.max_queue_size, c.max_event_size, c.max_memory_mb),
        (700, 4096, 20.0)
    );
    assert_eq!(c.retry_attempts, 2);
    assert_eq!(c.monitoring.health_check_interval, 750);
    assert_eq!(c.reliability_limits.health_check_interval, 750);
}

#[test]
fn two_changed_values_of_one_field_are_an_error_naming_both() {
    let p = problems(json!({ "maxQueueSize": 700, "memoryLimits": { "maxQueueSize": 500 } }));
    assert!(
        p[0].contains("maxQueueSize (700) and memoryLimits.maxQueueSize (500) disagree"),
        "{p:?}"
    );
    let p = problems(
        json!({ "monitoring": { "healthCheckInterval": 700 }, "reliabilityLimits": { "healthCheckInterval": 900 } }),
    );
    assert!(p[0].contains("disagree"), "{p:?}");
    // Equal values are no conflict.
    assert_eq!(
        ok(json!({ "retryAttempts": 5, "reliabilityLimits": { "maxRetryAttempts": 5 } }))
            .retry_attempts,
        5
    );
}

#[test]
fn unknown_keys_are_named_with_the_closest_known_key() {
    let p = problems(json!({ "workerCount": 3, "maxQueueSzie": 10 }));
    assert_eq!(
        p,
        vec!["unknown key 'maxQueueSzie' (did you mean 'maxQueueSize'?)"]
    );
    let p = problems(json!({ "monitoring": { "metricInterval": 10 } }));
    assert!(
        p[0].contains("'monitoring.metricInterval' (did you mean 'monitoring.metricsInterval'?)"),
        "{p:?}"
    );
    let p = problems(json!({ "metricsInterval": 10 }));
    assert!(
        p[0].contains("did you mean 'monitoring.metricsInterval'"),
        "{p:?}"
    );
    let p = problems(json!({ "zzzzzzzz": 1 }));
    assert_eq!(p, vec!["unknown key 'zzzzzzzz'"]);
}

#[test]
fn the_ts_options_shape_is_accepted() {
    let c = ok(
        json!({ "config": { "workerCount": 2 }, "fallbackToSync": false, "enableMetrics": false, "enableHealthMonitoring": false }),
    );
    assert_eq!(c.worker_count, 2);
    assert!(!c.fallback_to_sync);
    assert!(!c.monitoring.enabled);
    assert!(!c.monitoring.health_monitoring);
    let p = problems(
        json!({ "config": { "fallbackToSync": false }, "fallbackToSync": false, "workerCount": 2 }),
    );
    assert!(
        p.iter().any(|m| m.contains("unknown key 'config'")),
        "{p:?}"
    );
    let p = problems(json!({ "config": 5 }));
    assert!(p[0].contains("config must be an object"), "{p:?}");
}

#[test]
fn guide_aliases_map_to_fields_or_are_accepted_without_effect() {
    let c = ok(json!({
        "maxRetries": 2, "retryDelayMs": 200, "retryBackoffMultiplier": 3, "batchSize": 10, "processingIntervalMs": 5,
        "retryJitter": true, "workerOptions": { "resourceLimits": { "maxOldGenerationSizeMb": 64 } }
    }));
    assert_eq!(c.retry_attempts, 2);
    assert_eq!(c.retry_delays, vec![200, 600]);
    let c = ok(json!({ "retryDelayMs": 500 }));
    assert_eq!(c.retry_delays, vec![500, 1000, 2000]);
    let p = problems(json!({ "maxRetries": 2, "retryAttempts": 4 }));
    assert!(
        p[0].contains("retryAttempts (4) and maxRetries (2) disagree"),
        "{p:?}"
    );
    let p = problems(json!({ "retryDelayMs": 200, "retryDelays": [300] }));
    assert!(p[0].contains("disagree"), "{p:?}");
    let p = problems(json!({ "batchSize": 0, "retryBackoffMultiplier": 0.5 }));
    assert_eq!(p.len(), 2, "{p:?}");
    // A spread default yields to the alias.
    assert_eq!(ok(spread(json!({ "maxRetries": 6 }))).retry_attempts, 6);
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
    assert_eq!(
        (c.max_event_size, c.memory_limits.max_event_size),
        (2048, 2048)
    );

    let bad = |k: &str| (k == "BUFFERED_EVENTS_MAX_QUEUE_SIZE").then(|| "lots".to_string());
    let Err(BusError::InvalidConfig(p)) = Config::resolve(&Value::Null, bad) else {
        panic!("expected INVALID_CONFIG")
    };
    assert!(p[0].contains("BUFFERED_EVENTS_MAX_QUEUE_SIZE"), "{p:?}");
}

#[test]
fn updates_merge_over_the_running_config_and_refuse_fixed_fields() {
    let running = ok(json!({ "maxQueueSize": 1000, "retryAttempts": 1 }));
    let next = running
        .update(&json!({ "retryDelays": [150], "monitoring": { "metricsInterval": 50 } }))
        .expect("live fields change");
    assert_eq!(next.retry_delays, vec![150]);
    assert_eq!(next.monitoring.metrics_interval, 50);
    assert_eq!((next.max_queue_size, next.retry_attempts), (1000, 1));
    // The running value is the base: a spread of it yields to the change.
    let mut spread_running = match serde_json::to_value(&running) {
        Ok(Value::Object(m)) => m,
        other => panic!("{other:?}"),
    };
    spread_running.insert("retryAttempts".into(), json!(4));
    assert_eq!(
        running
            .update(&Value::Object(spread_running))
            .expect("valid")
            .retry_attempts,
        4
    );

    let Err(BusError::InvalidConfig(p)) =
        running.update(&json!({ "maxQueueSize": 2000, "priorities": { "low": 9 } }))
    else {
        panic!("expected INVALID_CONFIG")
    };
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("maxQueueSize cannot change on a running bus (1000 -> 2000)"),
        "{p:?}"
    );
    assert!(running.update(&json!({ "workerCount": 0 })).is_err());
}

#[test]
fn lane_order_follows_weights() {
    let c = Config::default();
    assert_eq!(c.lane_order(), [0, 1, 2]);
    let c = ok(json!({ "priorities": { "low": 10 } }));
    assert_eq!(c.lane_order(), [2, 0, 1]);
}

#[test]
fn paths_reach_into_arrays() {
    let v = json!({ "a": { "b": [4, 5] } });
    assert_eq!(get(&v, "a.b.1"), Some(&json!(5)));
    assert_eq!(get(&v, "a.c"), None);
}

#[test]
fn an_update_from_a_spread_of_the_defaults_keeps_the_changed_value() {
    let running = ok(json!({ "retryAttempts": 1 }));
    let next = running
        .update(&spread(json!({ "retryAttempts": 2 })))
        .expect("the spread's mirror holds the default and yields");
    assert_eq!(
        (
            next.retry_attempts,
            next.reliability_limits.max_retry_attempts
        ),
        (2, 2)
    );
}

/// The README's configuration table, as `(paths, description)` per row:
/// `` `priorities.{critical,normal,low}` `` stands for three paths.
fn readme_rows() -> Vec<(Vec<String>, String)> {
    let readme = include_str!("../../../README.md");
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let first = cells.first()?.strip_prefix("| `")?;
            let path = first.split('`').next()?;
            let paths = match (path.find('{'), path.find('}')) {
                (Some(open), Some(close)) => path[open + 1..close]
                    .split(',')
                    .map(|leaf| format!("{}{leaf}", &path[..open]))
                    .collect(),
                _ => vec![path.to_string()],
            };
            Some((paths, cells.last()?.to_string()))
        })
        .collect()
}

#[test]
fn the_readme_table_lists_every_field_and_says_which_change_live() {
    let rows = readme_rows();
    for field in FIELDS {
        let row = rows
            .iter()
            .find(|(paths, _)| paths.iter().any(|p| p == field.path));
        let Some((_, description)) = row else {
            panic!("README's configuration table has no row for {}", field.path);
        };
        assert_eq!(
            description.contains("Live"),
            field.live,
            "README says {} {} live",
            field.path,
            if field.live {
                "cannot change"
            } else {
                "can change"
            }
        );
    }
    let readme = include_str!("../../../README.md");
    for env in FIELDS.iter().filter_map(|f| f.env) {
        assert!(readme.contains(env), "README names {env}");
    }
}
