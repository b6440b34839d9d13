//! The one error type of the core. Each variant maps to a stable `code`
//! string that JavaScript callers can branch on; the message names the
//! offending field or value.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusError {
    /// Every offending configuration field, one message each.
    InvalidConfig(Vec<String>),
    /// A caller-supplied argument outside the configuration (for example
    /// `scaleWorkers(0)`).
    InvalidArgument(String),
    /// The bus has stopped taking work.
    ShuttingDown(String),
    /// The bus is in the wrong lifecycle state for the call.
    InvalidState(String),
    /// No native worker could be started.
    WorkersUnavailable(String),
    /// The journal of a durable bus could not be read or written.
    Journal(String),
    /// Another bus holds the journal directory.
    JournalLocked(String),
}

impl BusError {
    pub fn code(&self) -> &'static str {
        match self {
            BusError::InvalidConfig(_) => "INVALID_CONFIG",
            BusError::InvalidArgument(_) => "INVALID_ARGUMENT",
            BusError::ShuttingDown(_) => "SHUTTING_DOWN",
            BusError::InvalidState(_) => "INVALID_STATE",
            BusError::WorkersUnavailable(_) => "WORKERS_UNAVAILABLE",
            BusError::Journal(_) => "JOURNAL_ERROR",
            BusError::JournalLocked(_) => "JOURNAL_LOCKED",
        }
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::InvalidConfig(problems) => {
                write!(f, "invalid configuration: {}", problems.join("; "))
            }
            BusError::InvalidArgument(msg)
            | BusError::ShuttingDown(msg)
            | BusError::InvalidState(msg)
            | BusError::WorkersUnavailable(msg)
            | BusError::Journal(msg)
            | BusError::JournalLocked(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for BusError {}
