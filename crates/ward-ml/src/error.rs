//! Library error type.

use std::path::PathBuf;

/// Errors of ward-ml (reading, writing and checking model files). Every variant carries
/// enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file is malformed or does not match this code.
    #[error("model {path}: {why}")]
    BadModel { path: PathBuf, why: String },
    /// JSON (de)serialisation failed.
    #[error("json {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl MlError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MlError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
