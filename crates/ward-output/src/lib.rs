//! Ward's outputs: everything a finding goes through after the engine.
//!
//! * [`FindingSink`]: the seam. A sink writes a batch of finding states and says when its
//!   receiver has them (the call returns `Ok`); it may be slow or fail, it runs on its own
//!   thread behind a bounded queue.
//! * [`driver::Driver`]: the one driver `ward agent` and `ward replay` share. The store first
//!   (a group commit with retry), then the outbox (`ward_store`'s, in the same transaction),
//!   then a fan-out to every sink, each with its own queue, retry with backoff and jitter,
//!   counters, and a cursor in the store advanced only after the receiver acknowledged.
//! * [`format`]: pure functions from a finding to what a receiver reads: SCC JSON (native),
//!   Falco alert JSON, OCSF Detection Finding, RFC 5424 syslog.
//! * [`spec`]: `[[outputs]]` entries and `--output` flags, checked at startup.
//! * [`local`]: sinks that need no HTTP (JSON Lines to stdout or a file, syslog over
//!   UDP/TCP/unix socket). The HTTP sinks (webhook, falcosidekick) are in `ward-api`, the one
//!   crate that speaks HTTP.

pub mod driver;
pub mod format;
pub mod local;
pub mod spec;
pub mod text;

use std::sync::Arc;
use ward_event::Finding;

pub use driver::{Driver, DriverConfig, SinkStats};
pub use format::{Format, Privacy};
pub use spec::{OutputKind, OutputSettings, OutputSpec, SpecError};

/// An error from one sink's write: counted, retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{target}: {message}")]
    Io {
        target: String,
        message: String,
        #[source]
        source: std::io::Error,
    },
    /// The receiver answered but did not accept (an HTTP status other than 2xx, a reset).
    #[error("{target}: {message}")]
    Rejected { target: String, message: String },
}

/// A finding state handed to a sink, with its outbox position (0 without a store).
#[derive(Debug, Clone)]
pub struct Item {
    pub seq: i64,
    pub finding: Arc<Finding>,
}

/// One output. `write_batch` returns `Ok` only once the receiver has the whole batch (a 2xx
/// answer, a flushed write); the driver then advances the output's cursor. A sink never sees
/// a finding the store has not committed.
pub trait FindingSink: Send {
    /// Writes the batch (in order). On `Err` the driver retries the same batch later.
    fn write_batch(&mut self, batch: &[Item]) -> Result<(), SinkError>;
    /// Pushes out anything buffered (called before shutdown).
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// A short description of what this sink is connected to, for health lines and errors.
    fn describe(&self) -> String;
    /// The sink's own word on its health, read after each write and shown with its counters
    /// (`SinkStats::health`): e.g. `connected`, `reconnecting`. `None`: nothing to add to the
    /// counters and the last error the driver keeps.
    fn health(&self) -> Option<String> {
        None
    }
    /// Called about every 100 ms while the sink has nothing to write (a heartbeat is due?).
    fn idle(&mut self) {}
}
