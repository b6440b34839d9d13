//! The engine's metrics in the Prometheus text exposition format (0.0.4):
//! counters, gauges, and histograms with cumulative `_bucket{le=…}`,
//! `_sum` and `_count`, labelled by `priority` and event `type`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::core::engine::Engine;
use crate::core::journal::Journal;
use crate::core::observe::histogram::{upper_bound, Histogram};
use crate::core::observe::type_stats::TypeSnapshot;
use crate::core::shm::ring::LANE_NAMES;

/// Bucket bounds in seconds for every duration histogram.
const LE_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Reads one counter of a type's snapshot.
type TypeCounter = fn(&TypeSnapshot) -> u64;

/// Escapes a label value: backslash, double quote and newline.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let counts = h.counts();
        let mut cumulative = 0u64;
        let mut next = 0usize;
        for le in LE_SECONDS {
            let le_us = (le * 1e6) as u64;
            while next < counts.len() && upper_bound(next) <= le_us {
                cumulative += counts[next];
                next += 1;
            }
            self.sample(
                &format!("{name}_bucket"),
                &format!("le=\"{le}\""),
                cumulative as f64,
            );
        }
        let total: u64 = counts.iter().sum();
        self.sample(&format!("{name}_bucket"), "le=\"+Inf\"", total as f64);
        self.sample(&format!("{name}_sum"), "", h.sum() as f64 / 1e6);
        self.sample(&format!("{name}_count"), "", total as f64);
    }
}

pub fn render(engine: &Engine) -> String {
    let m = engine.metrics();
    let q = engine.queue_state();
    let mut out = Out(String::new());
    let lanes = |out: &mut Out, name: &str, values: [u64; 3]| {
        for (lane, v) in LANE_NAMES.iter().zip(values) {
            out.sample(name, &format!("priority=\"{lane}\""), v as f64);
        }
    };

    out.family(
        "bootify_events_queued",
        "gauge",
        "Events waiting in the ring, by priority.",
    );
    lanes(
        &mut out,
        "bootify_events_queued",
        q.queued.depth.map(u64::from),
    );
    out.family(
        "bootify_events_dispatched_total",
        "counter",
        "Deliveries handed to handlers, by priority.",
    );
    lanes(
        &mut out,
        "bootify_events_dispatched_total",
        std::array::from_fn(|i| m.dispatched[i].load(Ordering::Relaxed)),
    );
    out.family(
        "bootify_events_completed_total",
        "counter",
        "Deliveries whose handlers all settled, by priority.",
    );
    lanes(
        &mut out,
        "bootify_events_completed_total",
        std::array::from_fn(|i| m.completed_by_lane[i].load(Ordering::Relaxed)),
    );

    let counters = [
        (
            "bootify_events_succeeded_total",
            "Deliveries whose handlers all succeeded.",
            &m.succeeded,
        ),
        (
            "bootify_events_failed_total",
            "Deliveries with at least one failed handler.",
            &m.failed,
        ),
        (
            "bootify_events_unhandled_total",
            "Deliveries of a type with no handler.",
            &m.unhandled,
        ),
        (
            "bootify_events_handler_failures_total",
            "Individual handler failures.",
            &m.handler_failures,
        ),
        (
            "bootify_events_retries_total",
            "Retries scheduled.",
            &m.retries,
        ),
        (
            "bootify_events_dead_lettered_total",
            "Deliveries moved to the dead-letter queue.",
            &m.dead_lettered,
        ),
        (
            "bootify_events_replayed_total",
            "Dead letters replayed.",
            &m.replayed,
        ),
        (
            "bootify_events_undeliverable_total",
            "Deliveries lost because the JavaScript side was gone.",
            &m.undeliverable,
        ),
        (
            "bootify_events_worker_restarts_total",
            "Native worker panics caught.",
            &m.worker_restarts,
        ),
    ];
    for (name, help, counter) in counters {
        out.family(name, "counter", help);
        out.sample(name, "", counter.load(Ordering::Relaxed) as f64);
    }
    out.family(
        "bootify_events_dead_letters_evicted_total",
        "counter",
        "Dead letters evicted from a full queue.",
    );
    out.sample(
        "bootify_events_dead_letters_evicted_total",
        "",
        q.queued.dead_letters_evicted as f64,
    );

    let ready: u32 = q.queued.ready_retries.iter().sum();
    let gauges = [
        (
            "bootify_events_in_flight",
            "Deliveries running now.",
            q.in_flight_deliveries as f64,
        ),
        (
            "bootify_events_in_flight_invocations",
            "Handler invocations running now.",
            q.in_flight_permits as f64,
        ),
        (
            "bootify_events_concurrency",
            "The in-flight window.",
            engine.concurrency() as f64,
        ),
        (
            "bootify_events_scheduled_retries",
            "Retries waiting for their backoff.",
            q.queued.scheduled_retries as f64,
        ),
        (
            "bootify_events_ready_retries",
            "Retries waiting for a place in the window.",
            ready as f64,
        ),
        (
            "bootify_events_dead_letters",
            "Entries in the dead-letter queue.",
            q.queued.dead_letters as f64,
        ),
        (
            "bootify_events_workers",
            "Native worker threads.",
            engine.worker_count() as f64,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, "", value);
    }
    let rates = engine.rates();
    out.family(
        "bootify_events_input_rate",
        "gauge",
        "Events emitted per second over the last 10 s.",
    );
    out.sample("bootify_events_input_rate", "", rates.input);
    out.family(
        "bootify_events_processing_rate",
        "gauge",
        "Deliveries completed per second over the last 10 s.",
    );
    out.sample("bootify_events_processing_rate", "", rates.processing);

    out.histogram(
        "bootify_events_processing_seconds",
        "From dispatch to the last handler settling.",
        &m.processing,
    );
    out.histogram(
        "bootify_events_queue_wait_seconds",
        "From emission to dispatch.",
        &m.queue_wait,
    );
    out.histogram(
        "bootify_events_event_loop_lag_seconds",
        "From a worker's notification to the JavaScript thread running it.",
        &m.lag.histogram,
    );

    if let Some(journal) = engine.journal() {
        render_journal(&mut out, journal);
    }

    let types = engine.type_stats();
    let per_type: [(&str, &str, TypeCounter); 5] = [
        (
            "bootify_events_type_dispatched_total",
            "Deliveries, by event type.",
            |t| t.dispatched,
        ),
        (
            "bootify_events_type_succeeded_total",
            "Succeeded deliveries, by event type.",
            |t| t.succeeded,
        ),
        (
            "bootify_events_type_failed_total",
            "Failed deliveries, by event type.",
            |t| t.failed,
        ),
        (
            "bootify_events_type_retries_total",
            "Retries, by event type.",
            |t| t.retries,
        ),
        (
            "bootify_events_type_dead_lettered_total",
            "Dead letters, by event type.",
            |t| t.dead_lettered,
        ),
    ];
    for (name, help, get) in per_type {
        out.family(name, "counter", help);
        for t in &types {
            out.sample(
                name,
                &format!("type=\"{}\"", escape(&t.name)),
                get(t) as f64,
            );
        }
    }
    out.0
}

fn render_journal(out: &mut Out, journal: &Journal) {
    let s = journal.stats();
    let gauges = [
        (
            "bootify_events_journal_bytes",
            "Disk bytes the journal's segment files take.",
            s.disk_bytes,
        ),
        (
            "bootify_events_journal_max_bytes",
            "The journal's disk bound (journal.maxDiskMB).",
            s.max_disk_bytes,
        ),
        (
            "bootify_events_journal_segments",
            "Segment files of the journal.",
            s.segments,
        ),
    ];
    for (name, help, v) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, "", v as f64);
    }
    let counters = [
        (
            "bootify_events_journal_records_total",
            "Records written to the journal.",
            s.records_written,
        ),
        (
            "bootify_events_journal_written_bytes_total",
            "Bytes written to the journal.",
            s.bytes_written,
        ),
        (
            "bootify_events_journal_copied_forward_total",
            "Events whose records were copied out of a mostly settled segment.",
            s.copied_forward,
        ),
        (
            "bootify_events_journal_segments_deleted_total",
            "Segment files deleted once nothing in them was needed.",
            s.segments_deleted,
        ),
        (
            "bootify_events_journal_failures",
            "1 once a journal write or sync failed (emissions are refused).",
            u64::from(s.failure.is_some()),
        ),
    ];
    for (name, help, v) in counters {
        out.family(name, "counter", help);
        out.sample(name, "", v as f64);
    }
    out.histogram(
        "bootify_events_journal_fsync_seconds",
        "Duration of the journal's data syncs (durability 'fsync').",
        journal.sync_histogram(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::shm::layout::Layout;
    use crate::core::shm::words::SharedWords;
    use serde_json::json;
    use std::collections::HashMap;

    /// A small reader of the exposition format: every sample line belongs to
    /// a declared family, names and labels are well formed, buckets are
    /// cumulative and end with +Inf equal to _count.
    fn parse(text: &str) -> HashMap<String, Vec<(String, f64)>> {
        let mut families: HashMap<String, String> = HashMap::new();
        let mut samples: HashMap<String, Vec<(String, f64)>> = HashMap::new();
        let name_ok = |n: &str| {
            n.chars().enumerate().all(|(i, c)| {
                c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
            })
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(name_ok(name), "bad name {name}");
                assert!(["counter", "gauge", "histogram"].contains(&kind));
                families.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let value: f64 = value.parse().expect("numeric value");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace").to_string()),
                None => (series, String::new()),
            };
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').expect("label k=v");
                assert!(name_ok(k), "bad label name {k}");
                assert!(
                    v.starts_with('"') && v.ends_with('"'),
                    "label value quoted: {pair}"
                );
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| families.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(
                families.contains_key(family),
                "sample {name} without a # TYPE"
            );
            samples
                .entry(name.to_string())
                .or_default()
                .push((labels, value));
        }
        for (family, kind) in &families {
            if kind != "histogram" {
                continue;
            }
            let buckets = &samples[&format!("{family}_bucket")];
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} buckets not cumulative"
            );
            assert_eq!(buckets.last().map(|b| b.0.as_str()), Some("le=\"+Inf\""));
            assert_eq!(
                buckets.last().map(|b| b.1),
                samples[&format!("{family}_count")].first().map(|c| c.1)
            );
        }
        samples
    }

    #[test]
    fn exposition_parses_and_carries_the_numbers() {
        let config = Config::resolve(&json!({}), |_| None).expect("valid");
        let layout = Layout::new(config.max_queue_size, config.concurrency);
        let engine = Engine::new(&config, SharedWords::owned(layout.words));
        engine.set_type_name(0, "user.\"registered\"");
        for us in [50, 400, 3_000, 40_000, 2_000_000] {
            engine.metrics().processing.record(us);
        }
        engine.metrics().retries.fetch_add(3, Ordering::Relaxed);
        let text = render(&engine);
        let samples = parse(&text);
        assert_eq!(samples["bootify_events_retries_total"][0].1, 3.0);
        assert_eq!(samples["bootify_events_processing_seconds_count"][0].1, 5.0);
        let buckets = &samples["bootify_events_processing_seconds_bucket"];
        let at = |le: &str| {
            buckets
                .iter()
                .find(|b| b.0 == format!("le=\"{le}\""))
                .map(|b| b.1)
        };
        assert_eq!(at("0.0001"), Some(1.0));
        assert_eq!(at("0.005"), Some(3.0));
        assert_eq!(at("2.5"), Some(5.0));
        assert_eq!(samples["bootify_events_queued"].len(), 3);
        assert!(
            text.contains("type=\"user.\\\"registered\\\"\""),
            "escaped label:\n{text}"
        );
    }
}
