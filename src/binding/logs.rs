//! The native core's logs, handed to JavaScript in batches: a weak
//! threadsafe function says records are waiting (once per batch, see
//! `observe::log`), and JavaScript takes them all with `takeLogs`.

use std::sync::Arc;

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use serde_json::Value;
use tracing::Level;

use super::bus::NativeBus;
use super::error::to_js;
use super::sink::weak_callback;
use crate::core::error::BusError;
use crate::core::observe::log::Filter;

/// One record of the native core's log.
#[napi(object)]
pub struct LogEntry {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The part of the bus, e.g. `events::journal`.
    pub target: String,
    pub message: String,
    pub fields: Value,
    /// Milliseconds since the Unix epoch.
    pub time: f64,
}

/// What `takeLogs` returns.
#[napi(object)]
pub struct LogBatch {
    pub records: Vec<LogEntry>,
    /// Records dropped since the last batch because JavaScript did not take
    /// them in time.
    pub dropped: f64,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn parse_filter(filter: &str) -> napi::Result<Filter, String> {
    Filter::parse(filter).map_err(|why| {
        to_js(BusError::InvalidConfig(vec![format!(
            "BOOTIFY_EVENTS_LOG: {why}"
        )]))
    })
}

#[napi]
impl NativeBus {
    /// Sets the log filter (`RUST_LOG`-style directives) and the callback
    /// told, weakly, when records are waiting.
    #[napi]
    pub fn attach_logs(
        &self,
        filter: String,
        on_records: Function<(), ()>,
    ) -> napi::Result<(), String> {
        let filter = parse_filter(&filter)?;
        let tsfn = Arc::new(weak_callback(on_records)?);
        let logs = self.engine.logs();
        logs.set_filter(filter);
        logs.set_wake(Box::new(move || {
            // Non-blocking: a worker never waits on the JavaScript thread.
            let _ = tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }));
        Ok(())
    }

    /// Changes the log filter; throws `INVALID_CONFIG` naming the directive
    /// it cannot read.
    #[napi]
    pub fn set_log_filter(&self, filter: String) -> napi::Result<(), String> {
        self.engine.logs().set_filter(parse_filter(&filter)?);
        Ok(())
    }

    /// The records waiting, oldest first.
    #[napi]
    pub fn take_logs(&self) -> LogBatch {
        let (records, dropped) = self.engine.logs().take();
        LogBatch {
            records: records
                .into_iter()
                .map(|r| LogEntry {
                    level: level_name(r.level).to_string(),
                    target: r.target,
                    message: r.message,
                    fields: Value::Object(r.fields),
                    time: r.at_ms,
                })
                .collect(),
            dropped: dropped as f64,
        }
    }

    /// Whether a record at `level` for `target` would be kept: the filter
    /// JavaScript's own records go through.
    #[napi]
    pub fn log_enabled(&self, level: String, target: String) -> bool {
        let level = match level.as_str() {
            "error" => Level::ERROR,
            "warn" => Level::WARN,
            "info" => Level::INFO,
            "debug" => Level::DEBUG,
            _ => Level::TRACE,
        };
        self.engine.logs().enabled(&level, &target)
    }

    /// Drops the log callback (and the JavaScript function it holds).
    #[napi]
    pub fn detach_logs(&self) {
        self.engine.logs().clear_wake();
    }
}
