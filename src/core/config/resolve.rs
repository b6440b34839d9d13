//! Resolves user input against a base configuration (the defaults, or a
//! running bus's configuration for `updateConfig`) by the rules of
//! `schema`. Every problem is collected so one `INVALID_CONFIG` error can
//! name all of them.
//!
//! The merge rule that makes spread configs work: a field can be given in
//! several places (itself, a BootifyJS mirror, a compatibility alias).
//! Values equal to the base are the ones a spread carried along, so they
//! yield to a value the caller changed (and, for an update, so do values
//! equal to the defaults, which a spread of `defaultBufferedEventConfig`
//! carries); two different changed values are a mistake, reported with
//! both names.

use serde_json::{Map, Value};

use super::schema::{self, Rule, Target, DEFAULT_BACKOFF_MULTIPLIER, FIELDS, MIRRORS};
use super::Config;
use crate::core::error::BusError;

/// The keys of BootifyJS's `BufferedEventBusOptions`, the TS constructor's
/// other argument shape, and the field each option sets.
const OPTIONS: [(&str, Option<&str>); 4] = [
    ("config", None),
    ("fallbackToSync", Some("fallbackToSync")),
    ("enableMetrics", Some("monitoring.enabled")),
    (
        "enableHealthMonitoring",
        Some("monitoring.healthMonitoring"),
    ),
];

/// A value given for a field, and the name it was given under.
struct Given<'a> {
    source: String,
    path: &'a str,
    value: &'a Value,
}

/// Looks up a `BUFFERED_EVENTS_*` variable.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(super) fn resolve(
    user: &Value,
    base: &Config,
    env: Option<Env<'_>>,
) -> Result<Config, BusError> {
    let mut problems = Vec::new();
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
    let mut given = Vec::new();
    unwrap_options(root, &mut given, &mut problems);

    let mut out = serde_json::to_value(base).map_err(internal)?;
    let defaults = serde_json::to_value(Config::default()).map_err(internal)?;
    for field in FIELDS {
        let candidates = candidates(field, &given, &out, &mut problems);
        let base_value = get(&out, field.path).cloned().unwrap_or(Value::Null);
        let mut changed: Vec<(String, Value)> = Vec::new();
        for (source, value) in candidates {
            if value != base_value && !changed.iter().any(|(_, v)| *v == value) {
                changed.push((source, value));
            }
        }
        // Updating a running bus from a spread of the defaults: a default
        // value was carried along too, and yields as well.
        if changed.len() > 1 {
            let default = get(&defaults, field.path);
            changed.retain(|(_, v)| Some(v) != default);
        }
        match changed.as_slice() {
            [] => {}
            [(_, value)] => set_field(&mut out, field.path, value.clone()),
            [(a, x), (b, y), ..] => problems.push(format!(
                "{a} ({}) and {b} ({}) disagree; set one of them",
                show(x),
                show(y)
            )),
        }
    }
    for g in &given {
        if let Some(alias) = schema::alias(g.path).filter(|a| a.target == Target::Ignored) {
            check(alias.rule, g.value, &g.source, &mut problems);
        }
    }
    if let Some(env) = env {
        apply_env(&mut out, env, &mut problems);
    }
    if problems.is_empty() {
        check_journal(&out, &mut problems);
        check_backend(&out, &mut problems);
    }
    if !problems.is_empty() {
        return Err(BusError::InvalidConfig(problems));
    }
    serde_json::from_value(out).map_err(internal)
}

/// Rules between the backend fields.
fn check_backend(out: &Value, problems: &mut Vec<String>) {
    let text = |p| get(out, p).and_then(Value::as_str).unwrap_or("");
    if text("backend.type") != "redis" {
        return;
    }
    let url = text("backend.url");
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        problems.push(format!(
            "backend.url must be a redis:// or rediss:// URL when backend.type is 'redis', got {}",
            show(&Value::String(url.into()))
        ));
    }
    let name = text("backend.name");
    let plain = |s: &str, most: usize| {
        !s.is_empty()
            && s.len() <= most
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    // The name goes inside the keys' hash tag: braces would break it.
    if !plain(name, 64) {
        problems.push(format!(
            "backend.name must be 1 to 64 letters, digits or - _ . :, got {}",
            show(&Value::String(name.into()))
        ));
    }
    let consumer = text("backend.consumer");
    if !consumer.is_empty() && !plain(consumer, 128) {
        problems.push(format!(
            "backend.consumer must be empty or 1 to 128 letters, digits or - _ . :, got {}",
            show(&Value::String(consumer.into()))
        ));
    }
    if text("durability") != "memory" {
        problems.push(format!(
            "durability must be 'memory' with backend.type 'redis' (Redis keeps the events), got {}",
            show(&Value::String(text("durability").into()))
        ));
    }
}

/// Rules between the durability fields.
fn check_journal(out: &Value, problems: &mut Vec<String>) {
    let text = |p| get(out, p).and_then(Value::as_str).unwrap_or("");
    let num = |p| get(out, p).and_then(Value::as_f64).unwrap_or(0.0);
    let durability = text("durability");
    if durability != "memory" && text("journal.dir").trim().is_empty() {
        problems.push(format!(
            "journal.dir must name a directory when durability is '{durability}'"
        ));
    }
    let (disk, segment) = (num("journal.maxDiskMB"), num("journal.segmentMB"));
    if segment * 2.0 > disk {
        problems.push(format!(
            "journal.segmentMB ({segment}) must be at most half of journal.maxDiskMB ({disk})"
        ));
    }
}

/// The fixed fields (`Field::live == false`) whose value differs.
pub(super) fn changed_fixed_fields(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return vec!["configuration could not be compared".into()];
    };
    FIELDS
        .iter()
        .filter(|f| !f.live)
        .filter_map(|f| {
            let (x, y) = (get(&a, f.path)?, get(&b, f.path)?);
            (x != y).then(|| {
                format!(
                    "{} cannot change on a running bus ({} -> {}); create a new bus",
                    f.path,
                    show(x),
                    show(y)
                )
            })
        })
        .collect()
}

/// Accepts BootifyJS's `{ config, fallbackToSync?, enableHealthMonitoring? }`
/// as well as a bare config, then collects every given leaf.
fn unwrap_options<'a>(
    root: &'a Map<String, Value>,
    given: &mut Vec<Given<'a>>,
    problems: &mut Vec<String>,
) {
    let is_options =
        root.contains_key("config") && root.keys().all(|k| OPTIONS.iter().any(|(o, _)| o == k));
    if !is_options {
        return collect(root, "", given, problems);
    }
    for (key, target) in OPTIONS {
        let Some(value) = root.get(key) else { continue };
        match target {
            Some(path) => given.push(Given {
                source: format!("{key} (option)"),
                path,
                value,
            }),
            None => match value {
                Value::Object(config) => collect(config, "", given, problems),
                other => problems.push(format!("config must be an object, got {}", kind(other))),
            },
        }
    }
}

fn collect<'a>(
    map: &'a Map<String, Value>,
    prefix: &str,
    given: &mut Vec<Given<'a>>,
    problems: &mut Vec<String>,
) {
    for (key, value) in map {
        let path = format!("{prefix}{key}");
        if schema::is_group(&path) {
            match value {
                Value::Object(inner) => collect(inner, &format!("{path}."), given, problems),
                other => problems.push(format!("{path} must be an object, got {}", kind(other))),
            }
        } else if let Some(known) = schema::accepted_paths().find(|p| *p == path) {
            given.push(Given {
                source: path,
                path: known,
                value,
            });
        } else if key == "config" && prefix.is_empty() {
            problems.push(
                "unknown key 'config' (the { config, fallbackToSync, enableMetrics, \
                 enableHealthMonitoring } options shape takes no other keys)"
                    .into(),
            );
        } else {
            problems.push(match closest(&path) {
                Some(hint) => format!("unknown key '{path}' (did you mean '{hint}'?)"),
                None => format!("unknown key '{path}'"),
            });
        }
    }
}

/// The valid values given for `field` under any of its names.
fn candidates(
    field: &schema::Field,
    given: &[Given<'_>],
    resolved: &Value,
    problems: &mut Vec<String>,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut backoff = (None, None);
    for g in given {
        let rule = if g.path == field.path || schema::mirror_of(g.path) == Some(field.path) {
            field.rule
        } else {
            match schema::alias(g.path).map(|a| (a.rule, a.target)) {
                Some((rule, Target::Field(target))) if target == field.path => rule,
                Some((rule, Target::Backoff)) if field.path == "retryDelays" => {
                    let n = check(rule, g.value, &g.source, problems).and_then(|v| v.as_f64());
                    if g.path == "retryDelayMs" {
                        backoff.0 = n.or(Some(f64::NAN));
                    } else {
                        backoff.1 = n.or(Some(f64::NAN));
                    }
                    continue;
                }
                _ => continue,
            }
        };
        if let Some(value) = check(rule, g.value, &g.source, problems) {
            out.push((g.source.clone(), value));
        }
    }
    if backoff != (None, None) {
        let first = backoff
            .0
            .or_else(|| get(resolved, "retryDelays.0").and_then(Value::as_f64));
        let factor = backoff.1.unwrap_or(DEFAULT_BACKOFF_MULTIPLIER);
        if let (Some(first), false) = (first, factor.is_nan()) {
            if !first.is_nan() {
                let attempts = get(resolved, "retryAttempts")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1);
                let delays: Vec<Value> = (0..attempts)
                    .map(|k| {
                        Value::from(
                            (first * factor.powi(k as i32))
                                .min(schema::MAX_TIMER_MS as f64)
                                .round() as u32,
                        )
                    })
                    .collect();
                out.push((
                    "retryDelayMs/retryBackoffMultiplier".into(),
                    Value::Array(delays),
                ));
            }
        }
    }
    // The canonical name first, so messages read "field (x) and alias (y)".
    out.sort_by_key(|(source, _)| source != field.path);
    out
}

fn apply_env(out: &mut Value, env: Env<'_>, problems: &mut Vec<String>) {
    for field in FIELDS {
        let Some(var) = field.env else { continue };
        let Some(raw) = env(var) else { continue };
        let source = format!("{} (from {var})", field.path);
        let value = match field.rule {
            // BootifyJS's rule: only the exact string 'true' enables.
            Rule::Bool => Some(Value::Bool(raw.trim() == "true")),
            Rule::Text | Rule::Choice(_) => {
                check(field.rule, &Value::from(raw.trim()), &source, problems)
            }
            rule => match raw.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => check(rule, &Value::from(n), &source, problems),
                _ => {
                    problems.push(format!("{var} must be a number, got {raw:?}"));
                    None
                }
            },
        };
        if let Some(value) = value {
            set_field(out, field.path, value);
        }
    }
}

/// Validates `v` by `rule`, returning it in the form `Config` stores.
fn check(rule: Rule, v: &Value, path: &str, problems: &mut Vec<String>) -> Option<Value> {
    let problem = match (rule, v) {
        (Rule::Bool, Value::Bool(_)) => return Some(v.clone()),
        (Rule::Bool, other) => format!("{path} must be a boolean, got {}", kind(other)),
        (Rule::Int { lo, hi }, Value::Number(n)) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if n.fract() != 0.0 || !n.is_finite() {
                format!("{path} must be an integer, got {n}")
            } else if n < lo as f64 || n > hi as f64 {
                format!("{path} must be between {lo} and {hi}, got {n}")
            } else {
                return Some(Value::from(n as u32));
            }
        }
        (Rule::Int { .. }, other) => format!("{path} must be an integer, got {}", kind(other)),
        (Rule::Num { min, max }, Value::Number(n)) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if n.is_finite() && n >= min && n <= max {
                return Some(Value::from(n));
            }
            if max == f64::MAX {
                format!("{path} must be a finite number >= {min}, got {n}")
            } else {
                format!("{path} must be a number between {min} and {max}, got {n}")
            }
        }
        (Rule::Num { .. }, other) => format!("{path} must be a number, got {}", kind(other)),
        (Rule::Delays { .. }, Value::Array(items)) if items.is_empty() => {
            format!("{path} must not be empty")
        }
        (Rule::Delays { lo, hi }, Value::Array(items)) => {
            let before = problems.len();
            let delays: Vec<Value> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    check(
                        Rule::Int { lo, hi },
                        item,
                        &format!("{path}[{i}]"),
                        problems,
                    )
                })
                .collect();
            return (problems.len() == before).then_some(Value::Array(delays));
        }
        (Rule::Choice(options), Value::String(v)) if options.contains(&v.as_str()) => {
            return Some(Value::String(v.clone()))
        }
        (Rule::Choice(options), other) => format!(
            "{path} must be one of {}, got {}",
            options
                .iter()
                .map(|o| format!("'{o}'"))
                .collect::<Vec<_>>()
                .join(", "),
            show(other)
        ),
        (Rule::Text, Value::String(v)) if v.contains('\0') => {
            format!("{path} must not contain a NUL character")
        }
        (Rule::Text, Value::String(_)) => return Some(v.clone()),
        (Rule::Text, other) => format!("{path} must be a string, got {}", kind(other)),
        (Rule::Delays { .. }, other) => format!(
            "{path} must be an array of milliseconds, got {}",
            kind(other)
        ),
    };
    problems.push(problem);
    None
}

/// Sets a field and every mirror of it.
fn set_field(tree: &mut Value, path: &str, value: Value) {
    for (mirror, _) in MIRRORS.iter().filter(|(_, f)| *f == path) {
        set(tree, mirror, value.clone());
    }
    set(tree, path, value);
}

pub(super) fn get<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(tree, |node, key| match node {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        other => other.get(key),
    })
}

fn set(tree: &mut Value, path: &str, value: Value) {
    let mut node = tree;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        let Value::Object(map) = node else { return };
        if keys.peek().is_none() {
            map.insert(key.to_string(), value);
            return;
        }
        node = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The accepted path nearest to an unknown one, for the error's hint: a
/// small edit away, or the same key in another group.
fn closest(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    let leaf = leaf(&lower);
    schema::accepted_paths()
        .map(|p| {
            let q = p.to_ascii_lowercase();
            let moved = if leaf == self::leaf(&q) {
                1
            } else {
                usize::MAX
            };
            (edit_distance(&lower, &q).min(moved), p)
        })
        .filter(|(d, _)| *d <= (leaf.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p)
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        other => other.to_string(),
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

fn internal(e: serde_json::Error) -> BusError {
    BusError::InvalidConfig(vec![format!("configuration could not be built: {e}")])
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
