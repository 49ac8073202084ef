//! ward-ml: the model behind "Execution: Malicious Python executed".
//!
//! * [`features`]: bounded decoding of obfuscation layers and feature extraction.
//! * [`model`]: the versioned model file (logistic regression on hashed features + signals).
//! * [`scan`](mod@scan): [`scan()`] and the [`ScriptClassifier`] implementation.
//! * [`train`](mod@train): [`train()`] and [`evaluate()`] with grouped splits.
//! * [`crosseval`]: the cross-source evaluation (train on one malicious source, test on the other).
//!
//! Nothing in this crate executes, imports or extracts the scripts it reads.

pub mod classify;
pub mod crosseval;
pub mod data;
pub mod decode;
mod error;
pub mod features;
pub mod gbt;
pub mod lexer;
pub mod metrics;
pub mod model;
pub mod scan;
pub mod templates;
pub mod train;

pub use classify::{ScriptClassifier, Verdict};
pub use error::MlError;
pub use features::{Analysis, Extractor, FeatureVector, Limits, NotPython};
pub use model::{Manifest, Model, MODEL_FORMAT_VERSION};
pub use scan::{scan, PythonClassifier, ScanResult};
pub use train::{evaluate, train, EvalOptions, EvalReport, TrainOptions, TrainReport};

/// Default cache directory for downloaded wheels (`$WARD_ML_CACHE`, else `/var/cache/ward-ml`).
pub fn default_cache_dir() -> std::path::PathBuf {
    std::env::var_os("WARD_ML_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/var/cache/ward-ml"))
}
