//! The classifier interface of the detection core.
//!
//! Mirrors `ward_event::classify::{ScriptClassifier, Verdict}`; ward-event does not exist yet in
//! this tree. When it lands, this module becomes a re-export of those types.

/// A classifier's verdict on one script.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Model score in `[0, 1]` (probability-like; higher is more malicious).
    pub score: f32,
    /// The shipped decision threshold.
    pub threshold: f32,
    /// `score >= threshold`.
    pub malicious: bool,
    /// Top reasons, most important first, in human words.
    pub reasons: Vec<String>,
}

/// Scores scripts.
pub trait ScriptClassifier: Send + Sync {
    /// Identifier of the model, e.g. "ward-python-v1 (sha256:abcd…)".
    fn model_id(&self) -> &str;
    /// Scores a script's bytes (may be truncated, may be non-UTF-8).
    fn classify(&self, script: &[u8]) -> Verdict;
}
