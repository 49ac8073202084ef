//! The classifier seam: the Malicious Python detector asks a [`ScriptClassifier`] for a
//! verdict on the code being executed. The model lives in `ward-ml`; detectors receive it as a
//! value and never load it themselves.

/// A model that scores script source.
pub trait ScriptClassifier: Send + Sync {
    /// Identifier of the model, e.g. `ward-python-v1 (sha256:abcd…)`.
    fn model_id(&self) -> &str;
    /// Scores a script's bytes (may be truncated, may be non-UTF-8).
    fn classify(&self, script: &[u8]) -> Verdict;
}

/// A classifier's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Probability-like score in [0, 1].
    pub score: f32,
    /// The threshold the model ships with; `malicious` is `score >= threshold`.
    pub threshold: f32,
    pub malicious: bool,
    /// The strongest signals behind the score, in words a responder reads.
    pub reasons: Vec<String>,
}
