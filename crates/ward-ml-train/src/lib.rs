//! ward-ml-train: training and evaluation of the Malicious Python model. The agent never links
//! this crate; it links `ward-ml` (features, the model file, `PythonClassifier`), which this
//! crate builds on (dependencies point one way: this crate → `ward-ml`).
//!
//! * [`train`](mod@train): [`train()`] and [`evaluate()`] with grouped splits.
//! * [`crosseval`]: the cross-source evaluation (train on one malicious source, test on the other).
//! * [`data`]: the malicious sources, benign wheels, stdlib and extra directories, read in memory.
//! * [`templates`]: the runtime and benign templates and their variants.
//! * [`gbt`]: gradient-boosted trees (`forust-ml`) for the learner comparison (not shipped).
//! * [`card`]: the model-card writer; the prose is Markdown under `card/`.
//!
//! Nothing in this crate executes, imports or extracts the scripts it reads.

pub mod card;
pub mod crosseval;
pub mod data;
mod error;
pub mod gbt;
pub mod metrics;
pub mod templates;
pub mod train;

pub use error::TrainError;
pub use train::{evaluate, train, EvalOptions, EvalReport, TrainOptions, TrainReport};

/// Default cache directory for downloaded wheels (`$WARD_ML_CACHE`, else `/var/cache/ward-ml`).
pub fn default_cache_dir() -> std::path::PathBuf {
    std::env::var_os("WARD_ML_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/var/cache/ward-ml"))
}
