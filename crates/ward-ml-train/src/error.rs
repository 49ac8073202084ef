//! Library error type.

use std::path::PathBuf;

/// Errors of ward-ml-train. Every variant carries enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file could not be written or read back (`ward_ml`'s error).
    #[error(transparent)]
    Model(#[from] ward_ml::MlError),
    /// A data source (dataset, wheel, template file) is malformed.
    #[error("data {path}: {why}")]
    BadData { path: PathBuf, why: String },
    /// Fetching a benign package with pip failed.
    #[error("pip download {package}: {why}")]
    Fetch { package: String, why: String },
    /// The options cannot work (e.g. no data at all).
    #[error("invalid options: {0}")]
    Options(String),
    /// JSON (de)serialisation failed.
    #[error("json {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A model-card template names a field the writer does not fill, or the reverse.
    #[error("model card template {template}: {why}")]
    Card { template: &'static str, why: String },
}

impl TrainError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
