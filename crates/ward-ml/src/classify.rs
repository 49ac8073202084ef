//! The classifier interface of the detection core, re-exported from `ward-event`
//! (`ward_event::classify`), so that detectors and this crate share one definition.

pub use ward_event::classify::{ScriptClassifier, Verdict};
