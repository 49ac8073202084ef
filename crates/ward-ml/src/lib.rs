//! ward-ml: the model behind "Execution: Malicious Python executed", inference only. This is
//! what the agent and `ward scan-script` link; training, data loading, templates, the
//! evaluations and the model-card writer are `ward-ml-train`'s.
//!
//! * [`features`]: bounded decoding of obfuscation layers and feature extraction.
//! * [`model`]: the versioned model file (logistic regression on hashed features + signals).
//! * [`scan`](mod@scan): [`scan()`] and the [`ScriptClassifier`] implementation.
//!
//! Nothing in this crate executes, imports or extracts the scripts it reads.

pub mod classify;
pub mod decode;
mod error;
pub mod features;
pub mod lexer;
pub mod model;
pub mod scan;

pub use classify::{ScriptClassifier, Verdict};
pub use error::MlError;
pub use features::{Analysis, Extractor, FeatureVector, Limits, NotPython};
pub use model::{Manifest, Model, MODEL_FORMAT_VERSION};
pub use scan::{scan, PythonClassifier, ScanResult};
