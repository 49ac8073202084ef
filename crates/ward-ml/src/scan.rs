//! Scanning one script with a loaded model.

use std::path::Path;

use serde::Serialize;

use crate::classify::{ScriptClassifier, Verdict};
use crate::features::{self, Extractor, NotPython, N_SIGNALS};
use crate::model::Model;
use crate::MlError;

/// Number of reasons reported.
pub const TOP_REASONS: usize = 5;

/// The outcome of scanning one script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanResult {
    /// Score in `[0, 1]`; 0 for input that is not Python.
    pub score: f32,
    /// The model's decision threshold.
    pub threshold: f32,
    /// `score >= threshold`.
    pub malicious: bool,
    /// Largest positive feature contributions, in human words, most important first.
    pub top_reasons: Vec<String>,
    /// Set when the input is not Python text (binary data, empty input): not scored.
    pub not_python: Option<String>,
    /// Number of decoded obfuscation layers that were analysed.
    pub decoded_layers: usize,
    /// True when the input was longer than the analysed window.
    pub truncated: bool,
}

/// Turns a feature name into words for a responder.
pub fn describe_feature(name: &str) -> String {
    let (ns, rest) = name.split_once(':').unwrap_or(("", name));
    let rest = rest.replace('\x1f', " ");
    match ns {
        "c" => format!("calls {rest}()"),
        "cc" => {
            let (a, b) = rest.split_once('>').unwrap_or((&rest, ""));
            format!("calls {a}() then {b}()")
        }
        "d" => format!("uses {}", rest.replace('>', ".")),
        "n" => format!("name '{rest}'"),
        "imp" => format!("imports {rest}"),
        "kw" => format!("passes keyword {rest}="),
        "kwv" => format!("passes {}", rest.replace('>', "=")),
        "s" => format!("string contains \"{rest}\""),
        "url" => format!("URL {rest}"),
        "tld" => format!("URL host in .{rest}"),
        "path" => format!("path {rest}"),
        "enc" => format!("encoded literal ({rest} chars)"),
        "layer" => format!("decodes a {rest} layer"),
        "str" => format!("string is an {rest} address"),
        _ => name.to_string(),
    }
}

fn reasons(
    model: &Model,
    ex: &Extractor,
    bytes: &[u8],
    fv: &features::FeatureVector,
) -> Vec<String> {
    let top = model.top_contributions(fv, TOP_REASONS);
    let want: Vec<u32> = top
        .iter()
        .map(|t| t.0)
        .filter(|&i| i as usize >= N_SIGNALS)
        .collect();
    let names = if want.is_empty() {
        Default::default()
    } else {
        ex.analyze_named(bytes, &want).names
    };
    top.iter()
        .map(|&(i, c)| {
            let text = if (i as usize) < N_SIGNALS {
                features::signal_description(i as usize).to_string()
            } else {
                names
                    .get(&i)
                    .map_or_else(|| format!("feature #{i}"), |n| describe_feature(n))
            };
            format!("{text} (+{c:.2})")
        })
        .collect()
}

/// Scans `bytes` with `model`: sniff, decode, extract, score, explain.
///
/// Never panics on input; time and memory are bounded by [`features::Limits`].
pub fn scan(model: &Model, bytes: &[u8]) -> ScanResult {
    scan_with(model, &Extractor::new(), bytes, true)
}

fn scan_with(model: &Model, ex: &Extractor, bytes: &[u8], always_explain: bool) -> ScanResult {
    let threshold = model.manifest.threshold;
    let a = ex.analyze(bytes);
    if let Some(np) = a.not_python {
        return ScanResult {
            score: 0.0,
            threshold,
            malicious: false,
            top_reasons: Vec::new(),
            not_python: Some(match np {
                NotPython::Empty => "empty input".to_string(),
                other => other.to_string(),
            }),
            decoded_layers: 0,
            truncated: false,
        };
    }
    let mut score = model.score(&a.features);
    // A payload inside a large benign file is diluted in the whole-file vector: also score the
    // windows around strong patterns and keep the maximum.
    let mut best: Option<(std::ops::Range<usize>, features::FeatureVector)> = None;
    if score < threshold {
        for (r, fv) in ex.windows_in_context(bytes, &a.features) {
            let s = model.score(&fv);
            if s > score {
                score = s;
                best = Some((r, fv));
            }
        }
    }
    let malicious = score >= threshold;
    let top_reasons = if always_explain || malicious {
        match &best {
            Some((r, fv)) => {
                let mut v = vec![format!(
                    "suspicious region at bytes {}..{} of {}",
                    r.start,
                    r.end,
                    bytes.len()
                )];
                v.extend(reasons(model, ex, &bytes[r.clone()], fv));
                v.truncate(TOP_REASONS + 1);
                v
            }
            None => reasons(model, ex, bytes, &a.features),
        }
    } else {
        Vec::new()
    };
    ScanResult {
        score,
        threshold,
        malicious,
        top_reasons,
        not_python: None,
        decoded_layers: a.layers,
        truncated: a.truncated,
    }
}

/// The Python model behind "Execution: Malicious Python executed", as a [`ScriptClassifier`].
#[derive(Debug, Clone)]
pub struct PythonClassifier {
    model: Model,
    extractor: Extractor,
}

impl PythonClassifier {
    /// Wraps a loaded model.
    pub fn new(model: Model) -> Self {
        PythonClassifier {
            model,
            extractor: Extractor::new(),
        }
    }

    /// Loads the model file at `path` (refusing a wrong format or feature set).
    pub fn load(path: &Path) -> Result<Self, MlError> {
        Ok(Self::new(Model::load(path)?))
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Full scan result (reasons always computed).
    pub fn scan(&self, bytes: &[u8]) -> ScanResult {
        scan_with(&self.model, &self.extractor, bytes, true)
    }
}

impl ScriptClassifier for PythonClassifier {
    fn model_id(&self) -> &str {
        self.model.id()
    }

    /// Reasons are computed only for malicious verdicts (or non-Python input), keeping the
    /// benign path to a single feature pass.
    fn classify(&self, script: &[u8]) -> Verdict {
        let r = scan_with(&self.model, &self.extractor, script, false);
        let reasons = match r.not_python {
            Some(np) => vec![np],
            None => r.top_reasons,
        };
        Verdict {
            score: r.score,
            threshold: r.threshold,
            malicious: r.malicious,
            reasons,
        }
    }
}
