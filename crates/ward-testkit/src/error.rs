use std::io;
use std::time::Duration;

/// What can go wrong while preparing or driving test containers.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// An IO operation failed; `context` names what was being done (a path, a command).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// The setup or image scripts could not produce usable images.
    #[error("container setup: {0}")]
    Setup(String),
    /// Something did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}; output so far: {partial:?}")]
    Timeout {
        what: String,
        timeout: Duration,
        partial: String,
    },
    /// Output from podman or the kernel did not look as expected.
    #[error("unexpected {what}: {detail}")]
    Unexpected { what: String, detail: String },
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        TestkitError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn unexpected(what: impl Into<String>, detail: impl Into<String>) -> Self {
        TestkitError::Unexpected {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
