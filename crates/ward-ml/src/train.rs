//! Training and grouped evaluation.
//!
//! Model: L2-regularised logistic regression on [`crate::features`] (dense signals + 2^18 hashed
//! features), trained with AdaGrad SGD in a fixed, seeded order (single thread: reproducible).
//! Split groups: malicious pack by `cluster`, wheels by package, stdlib by top-level module,
//! templates by template id. No group is on both sides of any split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{self, Doc, Origin};
use crate::features::{Extractor, FeatureVector, DIM, N_GROUPS, N_SIGNALS};
use crate::metrics;
use crate::model::{blank_manifest, DataSource, Model};
use crate::templates::{hash64, Rng};
use crate::MlError;

/// Options of [`train`] and [`evaluate`]. Every field maps to one CLI flag
/// (`--out`, `--malicious`, ...); [`Default`] gives the shipped configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainOptions {
    /// Output directory: `model.bin`, `manifest.json`, `MODEL_CARD.md`, `eval.json`.
    pub out: PathBuf,
    /// Malicious pack (`malicious.jsonl.gz`). `None`: `$WARD_ML_DATASET`, else the shared
    /// dataset directory if present, else no pack (templates only).
    pub malicious: Option<PathBuf>,
    /// Second malicious source (`registry.jsonl.gz`). `None`: `$WARD_ML_REGISTRY`, else the
    /// shared dataset directory if present, else none (no cross-source evaluation).
    #[serde(default)]
    pub registry: Option<PathBuf>,
    /// Train the shipped model on the registry source too (both sources). The cross-source
    /// evaluation always trains on one source and tests on the other, whatever this says.
    #[serde(default = "yes")]
    pub train_on_registry: bool,
    /// Pinned benign wheel list (`NAME==VERSION` lines). `None`: no wheels.
    pub benign_packages: Option<PathBuf>,
    /// Cache directory for wheels (`<cache>/wheels`).
    pub cache_dir: PathBuf,
    /// Download missing wheels with `pip download --only-binary=:all:` (never builds or runs).
    pub fetch: bool,
    /// Include the local CPython stdlib (found with `python3`) as benign data.
    pub stdlib: bool,
    /// Further benign directories of `.py` files (read only).
    pub extra_benign_dirs: Vec<PathBuf>,
    /// Directory holding `runtime-templates.tpl.gz` and `benign-templates.tpl.gz`.
    pub templates_dir: PathBuf,
    /// Variants generated per malicious runtime template.
    pub variants_per_template: usize,
    /// Variants generated per benign template.
    pub benign_variants_per_template: usize,
    /// Keep every n-th document of each real source (1 = all); for quick runs.
    pub subsample: usize,
    /// Per-cluster weight cap for the malicious pack (files beyond it share the cap).
    pub cluster_cap: f32,
    /// Per-template weight cap for runtime templates.
    pub template_cap: f32,
    /// Per-group weight cap for benign groups.
    pub benign_group_cap: f32,
    /// Per-template weight cap for benign templates (hard negatives; may exceed their count).
    pub benign_template_cap: f32,
    /// Total benign weight / total malicious weight.
    pub benign_ratio: f32,
    /// SGD epochs.
    pub epochs: usize,
    /// AdaGrad learning rate.
    pub learning_rate: f32,
    /// L2 regularisation.
    pub l2: f32,
    /// Multiplier of `l2` for the hashed token features (indices `N_SIGNALS..`). 1 = the same
    /// penalty as the signals (shipped); larger values were tried to keep the model from
    /// memorising one template's tokens and lost recall (see the model card).
    #[serde(default = "one")]
    pub token_l2_mult: f32,
    /// Two-stage fit (experimental, off in the shipped model): 0 = off; 1 = first fit the dense
    /// signals alone, then everything starting from those weights times `signal_stage_scale`;
    /// 2 = the same with only the behaviour combinations and statistics (`c:*`, `s:*`) in the
    /// first stage. Raises held-out runtime recall and the benign-template tail alike.
    #[serde(default)]
    pub signal_stage: u8,
    /// Scale of the first-stage weights before the second stage.
    #[serde(default = "one")]
    pub signal_stage_scale: f32,
    /// Weight multiplier for benign scripts that show a malicious behaviour combination
    /// (`c:any_behaviour`): hard negatives such as cloud SDKs reading metadata credentials.
    pub hard_negative_weight: f32,
    /// Weight multiplier for runtime variants without an obfuscation wrapper (plain and
    /// one-liner): their content alone must carry the verdict.
    pub plain_variant_weight: f32,
    /// Folds of the grouped cross-validation (evaluation and threshold choice).
    pub folds: usize,
    /// Target per-script false-positive rate for the threshold.
    pub target_fpr: f64,
    /// Lowest allowed threshold.
    pub min_threshold: f32,
    /// Seed for fold assignment, shuffling and variant generation.
    pub seed: u64,
    /// Run the grouped cross-validation before the final fit (figures go to the manifest).
    pub evaluate: bool,
    /// Split groups left out of the data entirely (ablations, leave-one-cluster-out probes),
    /// e.g. `cluster:040abba87d400b08`, `pkg:ansible_core`, `tpl:bindshell`.
    pub exclude_groups: Vec<String>,
    /// Worker threads for feature extraction.
    pub threads: usize,
    /// Show progress bars.
    pub progress: bool,
    /// The learner of the evaluation folds ([`Learner::Linear`] is shipped).
    #[serde(default)]
    pub learner: Learner,
    /// Hyper-parameters of the boosted trees ([`Learner::Gbt`], [`Learner::Blend`]).
    #[serde(default)]
    pub gbt: crate::gbt::GbtOptions,
}

/// Which learner fits a fold.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Learner {
    /// L2-regularised logistic regression ([`fit`]); the shipped model.
    #[default]
    Linear,
    /// Gradient-boosted trees over the signals and the most widespread hashed features
    /// ([`crate::gbt`]).
    Gbt,
    /// The mean of both models' probabilities.
    Blend,
}

impl std::str::FromStr for Learner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linear" | "lr" => Ok(Learner::Linear),
            "gbt" => Ok(Learner::Gbt),
            "blend" => Ok(Learner::Blend),
            _ => Err(format!("unknown learner {s:?} (linear, gbt, blend)")),
        }
    }
}

impl std::fmt::Display for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Learner::Linear => "linear",
            Learner::Gbt => "gbt",
            Learner::Blend => "blend",
        })
    }
}

/// A fitted fold model of any [`Learner`].
#[derive(Debug, Clone)]
pub enum Scorer {
    /// Logistic regression.
    Linear(Linear),
    /// Boosted trees.
    Gbt(crate::gbt::Gbt),
    /// Both; the score is the mean of their probabilities.
    Blend(Linear, crate::gbt::Gbt),
}

impl Scorer {
    /// Score of an example: maximum over the whole file and its windows (as `scan` does).
    pub fn score_example(&self, e: &Example) -> f32 {
        e.windows
            .iter()
            .map(|w| self.score(w))
            .fold(self.score(&e.fv), f32::max)
    }

    /// Score of one feature vector.
    pub fn score(&self, fv: &FeatureVector) -> f32 {
        match self {
            Scorer::Linear(l) => l.score(fv),
            Scorer::Gbt(g) => g.score(fv),
            Scorer::Blend(l, g) => 0.5 * (l.score(fv) + g.score(fv)),
        }
    }
}

/// Fits `opts.learner` on the examples `idx`.
pub fn fit_scorer(ex: &[Example], idx: &[usize], opts: &TrainOptions, salt: u64) -> Scorer {
    let seed = opts.seed ^ salt.wrapping_mul(0x9e37_79b9);
    match opts.learner {
        Learner::Linear => Scorer::Linear(fit(ex, idx, opts, salt)),
        Learner::Gbt => Scorer::Gbt(crate::gbt::fit_gbt(ex, idx, &opts.gbt, seed)),
        Learner::Blend => Scorer::Blend(
            fit(ex, idx, opts, salt),
            crate::gbt::fit_gbt(ex, idx, &opts.gbt, seed),
        ),
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        TrainOptions {
            out: manifest_dir.join("../../models/python"),
            malicious: None,
            registry: None,
            train_on_registry: true,
            benign_packages: Some(manifest_dir.join("../../models/python/benign-packages.txt")),
            cache_dir: crate::default_cache_dir(),
            fetch: false,
            stdlib: true,
            extra_benign_dirs: Vec::new(),
            templates_dir: manifest_dir.join("data"),
            variants_per_template: 45,
            benign_variants_per_template: 30,
            subsample: 1,
            cluster_cap: 20.0,
            template_cap: 30.0,
            benign_group_cap: 200.0,
            benign_template_cap: 100.0,
            benign_ratio: 1.0,
            epochs: 4,
            learning_rate: 0.1,
            l2: 3e-5,
            token_l2_mult: 1.0,
            signal_stage: 0,
            signal_stage_scale: 1.0,
            hard_negative_weight: 10.0,
            plain_variant_weight: 6.0,
            folds: 5,
            target_fpr: 1e-4,
            min_threshold: 0.5,
            seed: 20_261_121,
            evaluate: true,
            exclude_groups: Vec::new(),
            threads: 2,
            progress: true,
            learner: Learner::Linear,
            gbt: crate::gbt::GbtOptions::default(),
        }
    }
}

fn one() -> f32 {
    1.0
}

fn yes() -> bool {
    true
}

/// Where the registry source is looked for when `registry` is `None`.
pub fn default_registry_path() -> Option<PathBuf> {
    shared_dataset("WARD_ML_REGISTRY", "registry.jsonl.gz")
}

/// Where the shared malicious pack is looked for when `malicious` is `None`.
pub fn default_pack_path() -> Option<PathBuf> {
    shared_dataset("WARD_ML_DATASET", "malicious.jsonl.gz")
}

/// `$env` if set, else `file` in the shared dataset directory (beside the checkout, or under
/// /work/shared) if present.
fn shared_dataset(env: &str, file: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        manifest_dir
            .join("../../../shared/datasets/python-scripts")
            .join(file),
        PathBuf::from("/work/shared/datasets/python-scripts").join(file),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// One featurised, weighted example.
#[derive(Debug, Clone)]
pub struct Example {
    /// Features.
    pub fv: FeatureVector,
    /// 1 = malicious.
    pub label: u8,
    /// Split group.
    pub group: String,
    /// Category (error analysis).
    pub category: String,
    /// Identifier.
    pub id: String,
    /// Origin.
    pub origin: Origin,
    /// Training weight.
    pub weight: f32,
    /// Window feature vectors ([`Extractor::windows`]); the script's score is the maximum over
    /// the whole file and these (as in [`crate::scan()`]). Not used for fitting.
    pub windows: Vec<FeatureVector>,
}

/// A featurised data set with its provenance.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Examples, in deterministic order.
    pub examples: Vec<Example>,
    /// Provenance.
    pub sources: Vec<DataSource>,
}

pub(crate) fn bar(n: u64, msg: &'static str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}/{eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

/// Loads every source, deduplicates, extracts features and assigns weights.
pub fn load_dataset(opts: &TrainOptions) -> Result<Dataset, MlError> {
    let step = opts.subsample.max(1);
    let mut docs: Vec<Doc> = Vec::new();
    let mut sources = Vec::new();
    let pack = opts.malicious.clone().or_else(default_pack_path);
    if let Some(p) = &pack {
        let (d, s) = data::load_pack(p, step)?;
        tracing::info!(n = d.len(), "malicious pack loaded");
        docs.extend(d);
        sources.push(s);
    } else {
        tracing::warn!("no malicious pack found; training on templates only");
    }
    if let Some(p) = opts.registry.clone().or_else(default_registry_path) {
        let (d, s) = data::load_registry(&p, step)?;
        tracing::info!(n = d.len(), "registry source loaded");
        docs.extend(d);
        sources.push(s);
    }
    let (d, s) = data::load_template_docs(
        &opts.templates_dir.join("runtime-templates.tpl.gz"),
        1,
        opts.variants_per_template,
        opts.seed,
    )?;
    docs.extend(d);
    sources.push(s);
    let (d, s) = data::load_template_docs(
        &opts.templates_dir.join("benign-templates.tpl.gz"),
        0,
        opts.benign_variants_per_template,
        opts.seed,
    )?;
    docs.extend(d);
    sources.push(s);
    if opts.stdlib {
        match data::detect_stdlib() {
            Some(root) => {
                let (d, s) = data::load_stdlib(&root, step)?;
                tracing::info!(n = d.len(), root = %root.display(), "stdlib loaded");
                docs.extend(d);
                sources.push(s);
            }
            None => tracing::warn!("python3 stdlib not found; skipped"),
        }
    }
    if let Some(pins) = &opts.benign_packages {
        let (d, s) = data::load_wheels(pins, &opts.cache_dir, opts.fetch, step)?;
        tracing::info!(n = d.len(), wheels = s.len(), "wheels loaded");
        docs.extend(d);
        sources.extend(s);
    }
    for dir in &opts.extra_benign_dirs {
        let (d, s) = data::load_extra_dir(dir, step)?;
        tracing::info!(n = d.len(), dir = %dir.display(), "extra benign dir loaded");
        docs.extend(d);
        sources.push(s);
    }
    let mut docs = data::dedup(docs);
    docs.retain(|d| !opts.exclude_groups.contains(&d.group));
    if !docs.iter().any(|d| d.label == 1) || !docs.iter().any(|d| d.label == 0) {
        return Err(MlError::Options(
            "need both malicious and benign data".into(),
        ));
    }
    let examples = extract_all(docs, opts.threads.max(1), opts.progress);
    let mut ds = Dataset { examples, sources };
    assign_weights_where(&mut ds.examples, opts, &|e| trains_shipped(e, opts));
    Ok(ds)
}

fn extract_all(docs: Vec<Doc>, threads: usize, progress: bool) -> Vec<Example> {
    let pb = bar(docs.len() as u64, "features", progress);
    let ex = Extractor::new();
    let mut fvs: Vec<Option<(FeatureVector, Vec<FeatureVector>)>> = vec![None; docs.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let docs = &docs;
                let pb = &pb;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in (t..docs.len()).step_by(threads) {
                        let text = &docs[i].text;
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let f = ex.analyze(text).features;
                            let w: Vec<FeatureVector> = ex
                                .windows_in_context(text, &f)
                                .into_iter()
                                .map(|x| x.1)
                                .collect();
                            (f, w)
                        }));
                        match r {
                            Ok(a) => out.push((i, a)),
                            Err(_) => tracing::error!(id = %docs[i].id, "feature extraction panicked (bug); example left empty"),
                        }
                        pb.inc(1);
                    }
                    out
                })
            })
            .collect();
        for h in handles {
            if let Ok(v) = h.join() {
                for (i, f) in v {
                    fvs[i] = Some(f);
                }
            }
        }
    });
    pb.finish_and_clear();
    docs.into_iter()
        .zip(fvs)
        .map(|(d, f)| {
            let (fv, windows) = f.unwrap_or_default();
            Example {
                fv,
                windows,
                label: d.label,
                group: d.group,
                category: d.category,
                id: d.id,
                origin: d.origin,
                weight: 1.0,
            }
        })
        .collect()
}

/// Whether an example trains the shipped model (the registry source only with
/// `train_on_registry`).
pub fn trains_shipped(e: &Example, opts: &TrainOptions) -> bool {
    opts.train_on_registry || e.origin != Origin::Registry
}

/// Assigns training weights over the examples `include` accepts (caps per group, emphasis,
/// class balance, mean 1); the others get weight 0 and count nowhere.
pub fn assign_weights_where(
    ex: &mut [Example],
    opts: &TrainOptions,
    include: &dyn Fn(&Example) -> bool,
) {
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for e in ex.iter().filter(|e| include(e)) {
        *sizes.entry(e.group.as_str()).or_insert(0) += 1;
    }
    let w: Vec<f32> = ex
        .iter()
        .map(|e| {
            let Some(&n) = sizes.get(e.group.as_str()).filter(|_| include(e)) else {
                return 0.0;
            };
            let n = n as f32;
            match e.origin {
                Origin::Pack | Origin::Registry => (opts.cluster_cap / n).min(1.0),
                Origin::Runtime => (opts.template_cap / n).min(1.0),
                Origin::Benign => (opts.benign_group_cap / n).min(1.0),
                Origin::BenignTemplate => opts.benign_template_cap / n,
            }
        })
        .collect();
    // Emphasis (before the class balance below, so the classes keep their totals): benign
    // scripts that show a behaviour combination, and unobfuscated runtime variants.
    let any_behaviour = crate::features::signal_index("c:any_behaviour");
    for (e, w) in ex.iter_mut().zip(w) {
        e.weight = w;
        if e.label == 0 && e.fv.idx.binary_search(&any_behaviour).is_ok() {
            e.weight *= opts.hard_negative_weight;
        }
        if e.origin == Origin::Runtime && is_plain(&e.id) {
            e.weight *= opts.plain_variant_weight;
        }
    }
    let pos: f32 = ex.iter().filter(|e| e.label == 1).map(|e| e.weight).sum();
    let neg: f32 = ex.iter().filter(|e| e.label == 0).map(|e| e.weight).sum();
    if pos > 0.0 && neg > 0.0 {
        let scale = opts.benign_ratio * pos / neg;
        for e in ex.iter_mut().filter(|e| e.label == 0) {
            e.weight *= scale;
        }
    }
    let total: f32 = ex.iter().map(|e| e.weight).sum();
    let mean = total / ex.iter().filter(|e| include(e)).count().max(1) as f32;
    if mean > 0.0 {
        for e in ex.iter_mut() {
            e.weight /= mean;
        }
    }
}

/// Trained linear parameters.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Bias.
    pub bias: f32,
    /// Weights, length [`DIM`].
    pub w: Vec<f32>,
}

impl Linear {
    /// Score of an example: maximum over the whole file and its windows (as `scan` does).
    pub fn score_example(&self, e: &Example) -> f32 {
        e.windows
            .iter()
            .map(|w| self.score(w))
            .fold(self.score(&e.fv), f32::max)
    }

    /// Score of one feature vector.
    pub fn score(&self, fv: &FeatureVector) -> f32 {
        let mut z = self.bias;
        for (&i, &v) in fv.idx.iter().zip(&fv.val) {
            z += self.w[i as usize] * v;
        }
        1.0 / (1.0 + (-z).exp())
    }
}

/// Fits logistic regression on the examples `idx` (AdaGrad SGD, seeded order).
pub fn fit(ex: &[Example], idx: &[usize], opts: &TrainOptions, salt: u64) -> Linear {
    let mut st = FitState {
        w: vec![0f32; DIM],
        g2: vec![0f32; DIM],
        bias: 0.0,
        gb: 0.0,
    };
    if opts.signal_stage > 0 {
        // Stage 1: the dense signals alone (from the combinations on when signal_stage == 2).
        let lo = if opts.signal_stage == 2 { N_GROUPS } else { 0 };
        fit_pass(&mut st, ex, idx, opts, salt ^ 0x5157, lo..N_SIGNALS);
        for x in st.w.iter_mut().take(N_SIGNALS) {
            *x *= opts.signal_stage_scale;
        }
        st.bias *= opts.signal_stage_scale;
    }
    fit_pass(&mut st, ex, idx, opts, salt, 0..DIM);
    Linear {
        bias: st.bias,
        w: st.w,
    }
}

/// Parameters and AdaGrad accumulators of a fit in progress.
struct FitState {
    w: Vec<f32>,
    g2: Vec<f32>,
    bias: f32,
    gb: f32,
}

/// `opts.epochs` AdaGrad epochs over `idx` in a seeded order, using and updating only the
/// features whose index lies in `range`.
fn fit_pass(
    st: &mut FitState,
    ex: &[Example],
    idx: &[usize],
    opts: &TrainOptions,
    salt: u64,
    range: std::ops::Range<usize>,
) {
    let FitState { w, g2, bias, gb } = st;
    let mut order: Vec<usize> = idx.to_vec();
    let mut rng = Rng::new(opts.seed ^ salt.wrapping_mul(0x9e37_79b9));
    let lr = opts.learning_rate;
    let l2_tok = opts.l2 * opts.token_l2_mult;
    for _ in 0..opts.epochs {
        for i in (1..order.len()).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
        for &k in &order {
            let e = &ex[k];
            // Indices are sorted: the features in `range` are one slice.
            let lo = e.fv.idx.partition_point(|&i| (i as usize) < range.start);
            let hi = e.fv.idx.partition_point(|&i| (i as usize) < range.end);
            let (fi, fv) = (&e.fv.idx[lo..hi], &e.fv.val[lo..hi]);
            let mut z = *bias;
            for (&i, &v) in fi.iter().zip(fv) {
                z += w[i as usize] * v;
            }
            let p = 1.0 / (1.0 + (-z).exp());
            let g = (p - e.label as f32) * e.weight;
            for (&i, &v) in fi.iter().zip(fv) {
                let i = i as usize;
                let l2 = if i < N_SIGNALS { opts.l2 } else { l2_tok };
                let gi = g * v + l2 * w[i];
                g2[i] += gi * gi;
                w[i] -= lr * gi / (g2[i].sqrt() + 1e-6);
            }
            *gb += g * g;
            *bias -= lr * g / (gb.sqrt() + 1e-6);
        }
    }
}

pub(crate) fn fold_of(group: &str, k: usize, salt: u64) -> usize {
    (hash64(group) ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) as usize % k.max(1)
}

/// Out-of-fold scores for `idx` with grouped `k`-fold cross-validation.
pub fn oof_scores(
    ex: &[Example],
    idx: &[usize],
    k: usize,
    salt: u64,
    opts: &TrainOptions,
) -> Vec<f32> {
    let mut out = vec![0f32; idx.len()];
    for f in 0..k {
        let train: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| fold_of(&ex[i].group, k, salt) != f)
            .collect();
        let m = fit_scorer(ex, &train, opts, salt ^ f as u64);
        for (o, &i) in out.iter_mut().zip(idx) {
            if fold_of(&ex[i].group, k, salt) == f {
                *o = m.score_example(&ex[i]);
            }
        }
    }
    out
}

/// Chooses the decision threshold from out-of-fold benign scores of `idx`.
pub fn choose_threshold(
    ex: &[Example],
    idx: &[usize],
    k: usize,
    salt: u64,
    opts: &TrainOptions,
) -> f32 {
    let s = oof_scores(ex, idx, k, salt, opts);
    // Benign "units": every real script counts once; all variants of one benign template count
    // as one unit scored by its highest variant (variants are synthetic near-duplicates).
    let mut neg: Vec<f32> = Vec::new();
    let mut tpl: BTreeMap<&str, f32> = BTreeMap::new();
    for (&sc, &i) in s.iter().zip(idx) {
        match (ex[i].label, ex[i].origin) {
            (0, Origin::BenignTemplate) => {
                let m = tpl.entry(ex[i].group.as_str()).or_insert(0.0);
                *m = m.max(sc);
            }
            (0, _) => neg.push(sc),
            _ => {}
        }
    }
    neg.extend(tpl.values());
    metrics::threshold_at_fpr(&neg, opts.target_fpr).max(opts.min_threshold)
}

/// Errors of one category at the threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryErrors {
    /// Category.
    pub category: String,
    /// 1 = malicious category (errors are misses), 0 = benign (errors are false positives).
    pub label: u8,
    /// Scripts.
    pub n: usize,
    /// Errors.
    pub errors: usize,
}

/// One scored script, for error listings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scored {
    /// Identifier (path, package member or template variant; never text).
    pub id: String,
    /// Group.
    pub group: String,
    /// Held-out score.
    pub score: f32,
    /// Threshold that applied.
    pub threshold: f32,
}

/// Figures of the grouped cross-validation. Every score is out-of-fold: the model that scored a
/// script never saw its group; thresholds were chosen without the scored fold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct EvalReport {
    /// Folds.
    pub folds: usize,
    /// Malicious pack scripts / clusters.
    pub pack_scripts: usize,
    /// Pack clusters.
    pub pack_clusters: usize,
    /// Runtime template variants / templates.
    pub runtime_scripts: usize,
    /// Runtime templates.
    pub runtime_templates: usize,
    /// Benign scripts (real + templates).
    pub benign_scripts: usize,
    /// Benign groups.
    pub benign_groups: usize,
    /// ROC AUC, all malicious vs all benign.
    pub roc_auc: f64,
    /// ROC AUC, pack vs benign.
    pub roc_auc_pack: f64,
    /// Recall at per-script FPR 1e-3 (threshold-free, pooled OOF scores).
    pub recall_at_fpr_1e3: f64,
    /// Recall at per-script FPR 1e-4.
    pub recall_at_fpr_1e4: f64,
    /// Pack-only recall at FPR 1e-3.
    pub pack_recall_at_fpr_1e3: f64,
    /// Runtime-only recall at FPR 1e-3.
    pub runtime_recall_at_fpr_1e3: f64,
    /// Per-fold thresholds chosen by the inner CV.
    pub fold_thresholds: Vec<f32>,
    /// At the per-fold threshold: recall over all malicious scripts.
    pub recall_at_threshold: f64,
    /// At the per-fold threshold: FPR over benign scripts.
    pub fpr_at_threshold: f64,
    /// False positives at the threshold.
    pub false_positives: usize,
    /// False positives among real benign code (stdlib, wheels, extra dirs) at the threshold.
    pub real_benign_false_positives: usize,
    /// Real benign scripts.
    pub real_benign_scripts: usize,
    /// Precision at prevalence 1/1000 (from recall and FPR at the threshold).
    pub precision_at_prevalence_1e3: f64,
    /// Held-out runtime variants detected at the threshold.
    pub runtime_recall_at_threshold: f64,
    /// Held-out runtime variants without obfuscation wrapper (plain / one-liner) detected.
    pub runtime_plain_recall_at_threshold: f64,
    /// Held-out runtime variants with an obfuscation wrapper detected.
    pub runtime_wrapped_recall_at_threshold: f64,
    /// Pack recall at the threshold (per script).
    pub pack_recall_at_threshold: f64,
    /// Pack recall macro-averaged over clusters.
    pub pack_macro_cluster_recall: f64,
    /// Pack recall without the dominant cluster.
    pub pack_recall_excluding_top_cluster: f64,
    /// Benign real-code groups (packages, stdlib modules) with at least one false positive.
    pub benign_groups_with_fp: Vec<String>,
    /// Errors by category.
    pub by_category: Vec<CategoryErrors>,
    /// Highest-scoring benign scripts.
    pub top_benign: Vec<Scored>,
    /// Missed runtime variants.
    pub missed_runtime: Vec<Scored>,
    /// Per-template runtime recall.
    pub runtime_recall_by_template: BTreeMap<String, f64>,
    /// Clusters with the lowest recall (cluster → (size, recall)).
    pub weakest_clusters: Vec<(String, usize, f64)>,
    /// Stricter: held-out runtime recall at the threshold when every template of the same
    /// category (reverse-shell, dropper, miner, ...) is held out together (a behaviour family no
    /// training template shows). `None` when not computed.
    #[serde(default)]
    pub runtime_family_holdout_recall: Option<f64>,
    /// The same for plain / one-liner variants only.
    #[serde(default)]
    pub runtime_family_holdout_plain_recall: Option<f64>,
    /// The headline: train on one malicious source, test on the other ([`crate::crosseval`]).
    /// `None` when the registry source is absent.
    #[serde(default)]
    pub cross_source: Option<crate::crosseval::CrossSourceReport>,
}

/// Out-of-fold scores of the grouped cross-validation: per example the held-out score and the
/// threshold of its fold, and the per-fold thresholds.
#[derive(Debug, Clone, Default)]
pub struct OofScores {
    /// Held-out score per example.
    pub score: Vec<f32>,
    /// Threshold that applied to each example (its fold's).
    pub threshold: Vec<f32>,
    /// Per-fold thresholds.
    pub fold_thresholds: Vec<f32>,
}

/// Runs the grouped cross-validation on a loaded data set.
pub fn evaluate_dataset(ds: &Dataset, opts: &TrainOptions) -> EvalReport {
    evaluate_report(ds, &oof_eval(ds, opts), opts)
}

/// The report of out-of-fold scores computed by [`oof_eval`].
pub fn evaluate_report(ds: &Dataset, o: &OofScores, opts: &TrainOptions) -> EvalReport {
    report(
        &ds.examples,
        &o.score,
        &o.threshold,
        opts.folds.max(2),
        o.fold_thresholds.clone(),
    )
}

/// The grouped cross-validation's out-of-fold scores (what [`evaluate_dataset`] reports on).
pub fn oof_eval(ds: &Dataset, opts: &TrainOptions) -> OofScores {
    let ex = &ds.examples;
    let k = opts.folds.max(2);
    let all: Vec<usize> = (0..ex.len()).collect();
    let mut score = vec![0f32; ex.len()];
    let mut thr = vec![0f32; ex.len()];
    let mut fold_thresholds = Vec::new();
    let pb = bar(k as u64, "folds", opts.progress);
    for f in 0..k {
        let train: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| fold_of(&ex[i].group, k, opts.seed) != f)
            .collect();
        let test: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| fold_of(&ex[i].group, k, opts.seed) == f)
            .collect();
        let t = choose_threshold(ex, &train, 3, opts.seed ^ 0xabcd ^ f as u64, opts);
        let m = fit_scorer(ex, &train, opts, 1000 + f as u64);
        for &i in &test {
            score[i] = m.score_example(&ex[i]);
            thr[i] = t;
        }
        fold_thresholds.push(t);
        tracing::info!(fold = f, threshold = t, test = test.len(), "fold done");
        pb.inc(1);
    }
    pb.finish_and_clear();
    OofScores {
        score,
        threshold: thr,
        fold_thresholds,
    }
}

pub(crate) fn is_plain(id: &str) -> bool {
    id.ends_with(":plain") || id.ends_with(":oneliner")
}

fn report(
    ex: &[Example],
    score: &[f32],
    thr: &[f32],
    k: usize,
    fold_thresholds: Vec<f32>,
) -> EvalReport {
    let sel = |f: &dyn Fn(&Example) -> bool| -> Vec<f32> {
        ex.iter()
            .zip(score)
            .filter(|(e, _)| f(e))
            .map(|(_, s)| *s)
            .collect()
    };
    let pos = sel(&|e| e.label == 1);
    let neg = sel(&|e| e.label == 0);
    let pack = sel(&|e| e.origin == Origin::Pack);
    let rt = sel(&|e| e.origin == Origin::Runtime);
    let hit = |i: usize| score[i] >= thr[i];
    let rate = |f: &dyn Fn(&Example) -> bool| -> f64 {
        let v: Vec<usize> = (0..ex.len()).filter(|&i| f(&ex[i])).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().filter(|&&i| hit(i)).count() as f64 / v.len() as f64
        }
    };
    let recall = rate(&|e| e.label == 1);
    let fpr = rate(&|e| e.label == 0);
    let false_positives = (0..ex.len())
        .filter(|&i| ex[i].label == 0 && hit(i))
        .count();
    // Per-cluster recall.
    let mut clusters: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, e) in ex
        .iter()
        .enumerate()
        .filter(|(_, e)| e.origin == Origin::Pack)
    {
        let c = clusters.entry(e.group.as_str()).or_insert((0, 0));
        c.0 += 1;
        c.1 += hit(i) as usize;
    }
    let macro_rec = if clusters.is_empty() {
        f64::NAN
    } else {
        clusters
            .values()
            .map(|(n, h)| *h as f64 / *n as f64)
            .sum::<f64>()
            / clusters.len() as f64
    };
    let top_cluster = clusters
        .iter()
        .max_by_key(|(_, (n, _))| *n)
        .map(|(c, _)| c.to_string());
    let excl = rate(&|e| e.origin == Origin::Pack && Some(&e.group) != top_cluster.as_ref());
    let mut weakest: Vec<(String, usize, f64)> = clusters
        .iter()
        .map(|(c, (n, h))| (c.to_string(), *n, *h as f64 / *n as f64))
        .collect();
    weakest.sort_by(|a, b| a.2.total_cmp(&b.2).then(b.1.cmp(&a.1)));
    weakest.truncate(15);
    let mut tpl: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, e) in ex
        .iter()
        .enumerate()
        .filter(|(_, e)| e.origin == Origin::Runtime)
    {
        let c = tpl.entry(e.group.clone()).or_insert((0, 0));
        c.0 += 1;
        c.1 += hit(i) as usize;
    }
    let mut cats: BTreeMap<(String, u8), (usize, usize)> = BTreeMap::new();
    for (i, e) in ex.iter().enumerate() {
        let c = cats.entry((e.category.clone(), e.label)).or_insert((0, 0));
        c.0 += 1;
        c.1 += (hit(i) != (e.label == 1)) as usize;
    }
    let mut fp_groups: Vec<String> = (0..ex.len())
        .filter(|&i| ex[i].label == 0 && ex[i].origin == Origin::Benign && hit(i))
        .map(|i| ex[i].group.clone())
        .collect();
    fp_groups.sort();
    fp_groups.dedup();
    let scored = |i: usize| Scored {
        id: ex[i].id.clone(),
        group: ex[i].group.clone(),
        score: score[i],
        threshold: thr[i],
    };
    let mut benign_idx: Vec<usize> = (0..ex.len()).filter(|&i| ex[i].label == 0).collect();
    benign_idx.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let missed: Vec<Scored> = (0..ex.len())
        .filter(|&i| ex[i].origin == Origin::Runtime && !hit(i))
        .map(scored)
        .collect();
    EvalReport {
        folds: k,
        pack_scripts: pack.len(),
        pack_clusters: clusters.len(),
        runtime_scripts: rt.len(),
        runtime_templates: tpl.len(),
        benign_scripts: neg.len(),
        benign_groups: {
            let mut g: Vec<&str> = ex
                .iter()
                .filter(|e| e.label == 0)
                .map(|e| e.group.as_str())
                .collect();
            g.sort();
            g.dedup();
            g.len()
        },
        roc_auc: metrics::roc_auc(&pos, &neg),
        roc_auc_pack: metrics::roc_auc(&pack, &neg),
        recall_at_fpr_1e3: metrics::recall_at_fpr(&pos, &neg, 1e-3),
        recall_at_fpr_1e4: metrics::recall_at_fpr(&pos, &neg, 1e-4),
        pack_recall_at_fpr_1e3: metrics::recall_at_fpr(&pack, &neg, 1e-3),
        runtime_recall_at_fpr_1e3: metrics::recall_at_fpr(&rt, &neg, 1e-3),
        fold_thresholds,
        recall_at_threshold: recall,
        fpr_at_threshold: fpr,
        false_positives,
        real_benign_false_positives: (0..ex.len())
            .filter(|&i| ex[i].origin == Origin::Benign && hit(i))
            .count(),
        real_benign_scripts: ex.iter().filter(|e| e.origin == Origin::Benign).count(),
        precision_at_prevalence_1e3: metrics::precision_at_prevalence(recall, fpr, 1e-3),
        runtime_recall_at_threshold: rate(&|e| e.origin == Origin::Runtime),
        runtime_plain_recall_at_threshold: rate(&|e| {
            e.origin == Origin::Runtime && is_plain(&e.id)
        }),
        runtime_wrapped_recall_at_threshold: rate(&|e| {
            e.origin == Origin::Runtime && !is_plain(&e.id)
        }),
        pack_recall_at_threshold: rate(&|e| e.origin == Origin::Pack),
        pack_macro_cluster_recall: macro_rec,
        pack_recall_excluding_top_cluster: excl,
        benign_groups_with_fp: fp_groups,
        by_category: cats
            .into_iter()
            .map(|((category, label), (n, errors))| CategoryErrors {
                category,
                label,
                n,
                errors,
            })
            .collect(),
        top_benign: benign_idx.iter().take(15).map(|&i| scored(i)).collect(),
        missed_runtime: missed.into_iter().take(30).collect(),
        runtime_recall_by_template: tpl
            .into_iter()
            .map(|(t, (n, h))| (t, h as f64 / n as f64))
            .collect(),
        weakest_clusters: weakest,
        runtime_family_holdout_recall: None,
        runtime_family_holdout_plain_recall: None,
        cross_source: None,
    }
}

/// Grouped cross-validation of the training procedure ([`TrainOptions`] gives data and
/// hyper-parameters). Writes nothing.
pub fn evaluate(opts: &TrainOptions) -> Result<EvalReport, MlError> {
    let mut ds = load_dataset(opts)?;
    Ok(evaluate_full(&mut ds, opts))
}

/// [`evaluate_dataset`] plus the family hold-out figures (runtime templates grouped by
/// category; the data set's groups are restored afterwards).
pub fn evaluate_full(ds: &mut Dataset, opts: &TrainOptions) -> EvalReport {
    let mut r = evaluate_dataset(ds, opts);
    let saved: Vec<String> = ds.examples.iter().map(|e| e.group.clone()).collect();
    for e in ds
        .examples
        .iter_mut()
        .filter(|e| e.origin == Origin::Runtime)
    {
        e.group = format!("family:{}", e.category);
    }
    let o = oof_eval(ds, opts);
    for (e, g) in ds.examples.iter_mut().zip(saved) {
        e.group = g;
    }
    let rate = |plain_only: bool| {
        let v: Vec<usize> = (0..ds.examples.len())
            .filter(|&i| {
                let e = &ds.examples[i];
                e.origin == Origin::Runtime && (!plain_only || is_plain(&e.id))
            })
            .collect();
        let hit = v.iter().filter(|&&i| o.score[i] >= o.threshold[i]).count();
        (!v.is_empty()).then(|| hit as f64 / v.len() as f64)
    };
    r.runtime_family_holdout_recall = rate(false);
    r.runtime_family_holdout_plain_recall = rate(true);
    if ds.examples.iter().any(|e| e.origin == Origin::Registry) {
        r.cross_source = Some(crate::crosseval::cross_source_eval(ds, opts));
        assign_weights_where(&mut ds.examples, opts, &|e| trains_shipped(e, opts));
    }
    r
}

/// What [`train`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Written model file.
    pub model_path: PathBuf,
    /// Model id (name + file hash).
    pub model_id: String,
    /// Model file size in bytes.
    pub model_bytes: u64,
    /// Shipped threshold.
    pub threshold: f32,
    /// Training examples.
    pub examples: usize,
    /// Grouped cross-validation figures (when `evaluate` was set).
    pub eval: Option<EvalReport>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Model name written into manifests.
pub const MODEL_NAME: &str = "ward-python-v1";

/// Trains the shipped model: loads data, optionally cross-validates, chooses the threshold from
/// grouped out-of-fold scores, fits on everything and writes `model.bin`, `manifest.json`,
/// `eval.json` and `MODEL_CARD.md` into `opts.out`.
pub fn train(opts: &TrainOptions) -> Result<TrainReport, MlError> {
    let t0 = Instant::now();
    let mut ds = load_dataset(opts)?;
    tracing::info!(examples = ds.examples.len(), "data set ready");
    let eval = opts.evaluate.then(|| evaluate_full(&mut ds, opts));
    let all: Vec<usize> = (0..ds.examples.len())
        .filter(|&i| trains_shipped(&ds.examples[i], opts))
        .collect();
    let threshold = choose_threshold(
        &ds.examples,
        &all,
        opts.folds.max(2),
        opts.seed ^ 0x5eed,
        opts,
    );
    let lin = fit(&ds.examples, &all, opts, 7);
    let mut manifest = blank_manifest(MODEL_NAME, threshold);
    manifest.threshold_rule = format!(
        "smallest score with benign FPR <= {} on grouped {}-fold out-of-fold scores (each real benign \
         script counts once; all variants of one benign template count as one unit scored by their \
         highest variant), floored at {}",
        opts.target_fpr, opts.folds, opts.min_threshold
    );
    let mut tjson = serde_json::to_value(opts).map_err(|e| MlError::Json {
        what: "options".into(),
        source: e,
    })?;
    if let Some(o) = tjson.as_object_mut() {
        // Machine-specific paths are not part of the recipe.
        for k in [
            "out",
            "cache_dir",
            "templates_dir",
            "threads",
            "progress",
            "benign_packages",
            "malicious",
            "registry",
        ] {
            o.remove(k);
        }
    }
    manifest.training = tjson;
    manifest.data = ds.sources.clone();
    manifest.metrics = match &eval {
        Some(r) => summary_json(r),
        None => serde_json::Value::Null,
    };
    let model = Model::new(manifest, lin.bias, lin.w);
    std::fs::create_dir_all(&opts.out).map_err(|e| MlError::io("create dir", &opts.out, e))?;
    let path = opts.out.join("model.bin");
    model.save(&path)?;
    if let Some(r) = &eval {
        let p = opts.out.join("eval.json");
        let j = serde_json::to_string_pretty(r).map_err(|e| MlError::Json {
            what: "eval".into(),
            source: e,
        })?;
        std::fs::write(&p, j + "\n").map_err(|e| MlError::io("write", &p, e))?;
    }
    let card = model_card(&model, eval.as_ref(), opts);
    let p = opts.out.join("MODEL_CARD.md");
    std::fs::write(&p, card).map_err(|e| MlError::io("write", &p, e))?;
    let model_bytes = std::fs::metadata(&path)
        .map_err(|e| MlError::io("stat", &path, e))?
        .len();
    Ok(TrainReport {
        model_path: path,
        model_id: model.id().to_string(),
        model_bytes,
        threshold,
        examples: ds.examples.len(),
        eval,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn summary_json(r: &EvalReport) -> serde_json::Value {
    serde_json::json!({
        "method": format!("grouped {}-fold cross-validation, thresholds from inner grouped 3-fold CV", r.folds),
        "roc_auc": r.roc_auc,
        "roc_auc_pack": r.roc_auc_pack,
        "recall_at_fpr_1e-3": r.recall_at_fpr_1e3,
        "recall_at_fpr_1e-4": r.recall_at_fpr_1e4,
        "pack_recall_at_fpr_1e-3": r.pack_recall_at_fpr_1e3,
        "runtime_recall_at_fpr_1e-3": r.runtime_recall_at_fpr_1e3,
        "recall_at_threshold": r.recall_at_threshold,
        "fpr_at_threshold": r.fpr_at_threshold,
        "false_positives": r.false_positives,
        "real_benign_false_positives": r.real_benign_false_positives,
        "real_benign_scripts": r.real_benign_scripts,
        "benign_scripts": r.benign_scripts,
        "precision_at_prevalence_1e-3": r.precision_at_prevalence_1e3,
        "runtime_recall_at_threshold": r.runtime_recall_at_threshold,
        "runtime_plain_recall_at_threshold": r.runtime_plain_recall_at_threshold,
        "runtime_wrapped_recall_at_threshold": r.runtime_wrapped_recall_at_threshold,
        "pack_macro_cluster_recall": r.pack_macro_cluster_recall,
        "pack_recall_excluding_top_cluster": r.pack_recall_excluding_top_cluster,
        "runtime_family_holdout_recall": r.runtime_family_holdout_recall,
        "runtime_family_holdout_plain_recall": r.runtime_family_holdout_plain_recall,
        "benign_groups_with_fp": r.benign_groups_with_fp,
    })
}

fn f(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.4}")
    }
}

/// Hand-written part of the model card's headline section (`crates/ward-ml/card/`): edit the
/// Markdown, then retrain (or re-render) to update the card.
const CROSS_SOURCE_NOTES: &str = include_str!("../card/cross-source-notes.md");

/// Renders MODEL_CARD.md.
pub fn model_card(model: &Model, eval: Option<&EvalReport>, opts: &TrainOptions) -> String {
    let m = &model.manifest;
    let mut s = String::new();
    s.push_str(&format!("# Model card: {}\n\n", m.name));
    s.push_str("Model behind the finding **Execution: Malicious Python executed** (`MALICIOUS_PYTHON_EXECUTED`).\n");
    s.push_str("Generated by `ward_ml::train` (do not edit by hand; retrain instead).\n\n");
    s.push_str(&format!(
        "- Model id: `{}`\n- File: `model.bin` ({} bytes), format version {}, feature set `{}` (hash `{}`)\n- Threshold: **{:.4}** ({})\n\n",
        model.id(),
        model.to_bytes().len(),
        m.format_version,
        m.feature_set_version,
        &m.feature_set_hash[..16],
        m.threshold,
        m.threshold_rule
    ));
    if let Some(cs) = eval.and_then(|e| e.cross_source.as_ref()) {
        s.push_str("## Headline: cross-source evaluation\n\n");
        s.push_str(
            "What predicts the field is malware from a slice of the population the model never saw. \
             The model is trained on one malicious source and tested on the other, in both \
             directions: the main pack (`malicious.jsonl.gz`, malwi-samples) and the registry \
             source (`registry.jsonl.gz`, 440 pypi_malregistry packages the pack never saw). Benign \
             data and the runtime templates are held out by group in the same folds. The main \
             pack's dominant PowerShell campaign is reported on its own line, never in the \
             headline.\n\n",
        );
        s.push_str(&crate::crosseval::markdown(cs));
        s.push('\n');
        // Hand-written notes (baseline, trade-offs, what was tried) live in Markdown, not here.
        s.push_str(CROSS_SOURCE_NOTES);
        s.push('\n');
    }
    s.push_str("## What it is\n\n");
    s.push_str(&format!(
        "L2-regularised logistic regression (AdaGrad SGD, fixed seed, single-threaded, deterministic order) over\n\
         {} hand-built signals and 2^18 hashed features (identifiers, dotted API names, calls, call bigrams,\n\
         imports, keyword args, string words, URL schemes/TLDs, path prefixes).\n\n",
        crate::features::N_SIGNALS
    ));
    s.push_str("The signals: pattern groups (sockets, dup2, shells, downloads, chmod, metadata addresses, service-account\n");
    s.push_str("tokens, mining pools, webhooks, cron/systemd/shell-rc/Windows autorun persistence, credential files,\n");
    s.push_str("clipboard, encryption, keyloggers, container-escape and lateral-movement markers, ...; a few groups\n");
    s.push_str("that are common in ordinary code, such as DNS look-ups, hex/base64 encoding, read-write file modes and\n");
    s.push_str("run-time pip installs, only count as parts of combinations), obfuscation\n");
    s.push_str("statistics (decoded layers and depth, entropy, encoded literals, chr() calls, confusable or non-ASCII\n");
    s.push_str("identifiers) and code-style rates (definitions, `self`, test vocabulary, indentation). Behaviour\n");
    s.push_str(&format!(
        "combinations (reverse shell, remote command loop, download-chmod-exec, credential or environment exfiltration,\n\
         metadata credential theft, persistence with a payload, ransomware, wiper, clipper, escape, spreading,\n\
         secrets encoded into DNS queries, code from DNS TXT records, overwrite-and-delete wipers, run-time pip\n\
         installs imported dynamically, ...)\n\
         count only when their parts occur within {} bytes of each other in one text layer, so a large library\n\
         does not assemble a behaviour from unrelated corners; the group signals of the script itself come from its\n\
         densest {} KiB region (decoded layers count whole). `c:any_behaviour` / `s:behaviours` pool the\n\
         evidence of all behaviour combinations, so a behaviour no training script showed still counts.\n\n",
        2 * crate::features::CHUNK,
        (crate::features::GROUP_REGION_CHUNKS * crate::features::CHUNK) >> 10
    ));
    s.push_str("Before featurising, bounded decoders unwrap base64 (also reversed / URL-safe),\n");
    let l = crate::features::Limits::default();
    s.push_str(&format!(
        "hex, zlib/gzip, UTF-16LE, `chr()` joins, integer lists (also constant arithmetic such as `(7 << 4) - 2`) and\n\
         `\\x` escapes (depth <= {}, <= {} layers, <= {} KiB decoded); revealed text is featurised like the script\n\
         itself. The whole-file vector sees at most {} KiB (head 3/4, tail 1/4); the windows (below) are chosen\n\
         over the whole script up to {} MiB, so no part of it goes unscored. No file name, package name or\n\
         length feature is used. Reasons = largest positive\n",
        l.max_depth,
        l.max_layers,
        l.max_decoded >> 10,
        l.max_input >> 10,
        crate::features::MAX_SCORED >> 20
    ));
    s.push_str("contributions `w_i * x_i`, in words.\n\n");
    s.push_str("## Data\n\n| kind | source | scripts | sha256 |\n|---|---|---|---|\n");
    for d in &m.data {
        s.push_str(&format!(
            "| {} | {} | {} | `{}` |\n",
            d.kind,
            d.name,
            d.scripts,
            &d.sha256[..16.min(d.sha256.len())]
        ));
    }
    s.push_str(&format!(
        "\nWeights: pack and registry files weigh min(1, {}/cluster size); runtime variants min(1, {}/template size); benign \
         files min(1, {}/group size); benign scripts that show a behaviour combination (hard negatives: cloud SDKs \
         reading metadata credentials, deploy tools writing systemd units, ...) x{}; plain / one-liner runtime \
         variants x{} (the obfuscated ones are easy); then benign total = {} x malicious total. Exact duplicates \
         are dropped (malicious first).\n\n",
        opts.cluster_cap,
        opts.template_cap,
        opts.benign_group_cap,
        opts.hard_negative_weight,
        opts.plain_variant_weight,
        opts.benign_ratio
    ));
    s.push_str("Benign `setup.py`: wheels contain none and `pip download` of an sdist runs its build backend, so the\n");
    s.push_str("benign setup scripts are hand-written realistic templates (`crates/ward-ml/data/benign-templates.tpl.gz`,\n");
    s.push_str("category `setup-py`: plain, README/version parsing, custom `cmdclass` test/build_ext/post-install,\n");
    s.push_str("build-time downloads, git versions, PowerShell on Windows, Cython) plus any real setup.py found in the\n");
    s.push_str("extra benign directories. Runtime malicious templates (`runtime-templates.tpl.gz`, compressed, never\n");
    s.push_str("executed) cover reverse/bind shells (socket+dup2, pty, subprocess over the socket, asyncio, TLS,\n");
    s.push_str("websocket, HTTP polling, nc/socat, fork+execl), droppers and stagers (urllib/requests/http.client,\n");
    s.push_str("curl/wget via subprocess, embedded ELF, memfd, remote modules, marshal), miners (xmrig, stratum,\n");
    s.push_str("GPU, docker), AWS/GCP/Azure/Alibaba metadata, ECS and Kubernetes token theft, secret stores,\n");
    s.push_str("cron/systemd/rc.local/profile.d/.pth/sitecustomize/authorized_keys/uid-0/Windows Run-key\n");
    s.push_str("persistence, webhook/Telegram/SMTP/FTP/DNS exfiltration, clippers, keyloggers, ransomware, wipers,\n");
    s.push_str("container escapes and lateral movement; benign templates mirror them (metrics posts, deploy scripts,\n");
    s.push_str("installers, backups, proxies, notifications). Variants differ in names, hosts, quoting, structure (body\n");
    s.push_str("in a function or `try`, import style, header and comment lines, applied alike to benign and malicious\n");
    s.push_str("templates) and, for half of the malicious variants, an obfuscation wrapper. Every variant of a template\n");
    s.push_str("shares the template's split group; several templates implement each behaviour family differently, so\n");
    s.push_str("the stricter category hold-out below is reported too.\n\n");
    if let Some(r) = eval {
        s.push_str("## Evaluation (grouped, out-of-fold)\n\n");
        s.push_str(&format!(
            "Secondary figures (the recipe's own data, both malicious sources in training; optimistic \
             against the cross-source headline above). \
             Grouped {}-fold cross-validation: malicious pack by `cluster`, wheels by package, stdlib by top-level \
             module, templates by template id; no group on both sides. Each fold's threshold comes from an inner \
             grouped 3-fold CV on that fold's training part only. {} pack scripts in {} clusters, {} runtime variants \
             of {} templates, {} benign scripts in {} groups.\n\n",
            r.folds, r.pack_scripts, r.pack_clusters, r.runtime_scripts, r.runtime_templates, r.benign_scripts, r.benign_groups
        ));
        s.push_str("| metric | value |\n|---|---|\n");
        for (k, v) in [
            (
                "ROC AUC (all malicious vs benign, per script)",
                f(r.roc_auc),
            ),
            ("ROC AUC (pack vs benign)", f(r.roc_auc_pack)),
            ("recall at FPR 1e-3 (per script)", f(r.recall_at_fpr_1e3)),
            ("recall at FPR 1e-4 (per script)", f(r.recall_at_fpr_1e4)),
            ("pack recall at FPR 1e-3", f(r.pack_recall_at_fpr_1e3)),
            (
                "runtime-variant recall at FPR 1e-3",
                f(r.runtime_recall_at_fpr_1e3),
            ),
            ("recall at the fold threshold", f(r.recall_at_threshold)),
            (
                "FPR at the fold threshold",
                format!(
                    "{:.2e} ({} of {})",
                    r.fpr_at_threshold, r.false_positives, r.benign_scripts
                ),
            ),
            (
                "false positives on real benign code (stdlib, wheels, extra dirs)",
                format!(
                    "{} of {}",
                    r.real_benign_false_positives, r.real_benign_scripts
                ),
            ),
            (
                "precision at prevalence 1/1000",
                f(r.precision_at_prevalence_1e3),
            ),
            (
                "held-out runtime-variant recall at threshold",
                f(r.runtime_recall_at_threshold),
            ),
            (
                "  of which plain / one-liner variants",
                f(r.runtime_plain_recall_at_threshold),
            ),
            (
                "  of which obfuscation-wrapped variants",
                f(r.runtime_wrapped_recall_at_threshold),
            ),
            (
                "pack recall at threshold (per script)",
                f(r.pack_recall_at_threshold),
            ),
            (
                "pack recall, macro over clusters",
                f(r.pack_macro_cluster_recall),
            ),
            (
                "pack recall without the dominant cluster",
                f(r.pack_recall_excluding_top_cluster),
            ),
            (
                "stricter: runtime recall, whole category held out",
                r.runtime_family_holdout_recall.map_or("n/a".into(), f),
            ),
            (
                "  of which plain / one-liner variants",
                r.runtime_family_holdout_plain_recall
                    .map_or("n/a".into(), f),
            ),
        ] {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
        s.push_str(&format!(
            "\nFold thresholds: {:?}. Real benign groups with a false positive at the threshold: {}.\n\n",
            r.fold_thresholds,
            if r.benign_groups_with_fp.is_empty() { "none".to_string() } else { r.benign_groups_with_fp.join(", ") }
        ));
        s.push_str("### Errors by category (at the fold threshold)\n\n| category | label | scripts | errors |\n|---|---|---|---|\n");
        for c in &r.by_category {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                c.category,
                if c.label == 1 { "malicious" } else { "benign" },
                c.n,
                c.errors
            ));
        }
        s.push_str("\n### Highest-scoring benign scripts (held out)\n\n| script | score | threshold |\n|---|---|---|\n");
        for b in r.top_benign.iter().take(10) {
            s.push_str(&format!(
                "| {} | {:.4} | {:.4} |\n",
                b.id, b.score, b.threshold
            ));
        }
        s.push_str("\n### Weakest pack clusters (held out)\n\n| cluster | files | recall |\n|---|---|---|\n");
        for (c, n, rec) in r.weakest_clusters.iter().take(10) {
            s.push_str(&format!("| {c} | {n} | {rec:.3} |\n"));
        }
        if !r.missed_runtime.is_empty() {
            s.push_str("\n### Missed held-out runtime variants\n\n");
            for m in r.missed_runtime.iter().take(15) {
                s.push_str(&format!("- {} (score {:.3})\n", m.id, m.score));
            }
        }
        s.push('\n');
    } else {
        s.push_str("## Evaluation\n\nNot run for this model (train with `evaluate = true`).\n\n");
    }
    s.push_str("## Known limits\n\n");
    s.push_str("- The pack is install-time malware (94% setup.py, one Windows/PowerShell campaign is 63%); runtime Linux\n");
    s.push_str("  positives are templates written for this model, so runtime recall is measured on held-out templates\n");
    s.push_str("  of the same authoring style, not on real intrusions.\n");
    s.push_str("- Benign setup.py files are templates, not real sdists; real-world setup.py false-positive rate is\n");
    s.push_str("  not measured here.\n");
    s.push_str("- Encoded-and-executed code is treated as suspicious; benign packers that `exec` base64 text will score high.\n");
    s.push_str("- Linear model: no interactions beyond the hand-built combination signals. A stacked gradient-boosted\n");
    s.push_str("  tree stage over the signals and the linear score (monotone in the behaviour signals) was tried and\n");
    s.push_str("  scored worse in the grouped CV (it sharpened benign outliers as much as malware), so it is not used.\n");
    s.push_str("- Dilution: a small payload inside a large benign file weighs little in the whole-file vector.\n");
    s.push_str("  Scripts over 8 KiB are also scored on head/tail windows (4 KiB) and on the densest 16 KiB tiles of\n");
    s.push_str("  the whole script up to 64 MiB (most distinct strong pattern groups first; at most 16 windows;\n");
    s.push_str("  score = maximum; the evaluation above uses the same rule). Measured (`tests/size.rs`): a reverse\n");
    s.push_str("  shell appended at 64 KiB, 512 KiB, 1 MiB and 10 MiB offsets, after module data, one huge dict literal\n");
    s.push_str("  or plain functions, scores 0.96-1.00 (before: 0.000 at 512 KiB and beyond). In the middle of a large\n");
    s.push_str("  file (256 KiB more filler after it) its 16 KiB tile is found but scores 0.83-0.97: diluted by the\n");
    s.push_str("  tile's filler. Narrower windows were tried and lifted large benign modules as much. Time: one linear\n");
    s.push_str("  pattern pass per MB plus at most 16 bounded analyses.\n");
    s.push_str("  A window carries the code-style rates of its whole file (definitions, `self`, test vocabulary,\n");
    s.push_str("  indentation), so a slice of a test module or a class-based library is scored as part of one; a\n");
    s.push_str("  payload appended to such a file gets that benign context too (its behaviour signals stay its own).\n");
    s.push_str("  Measured: a five-line reverse shell appended to 30-120 KB of ordinary functions scores 0.77-0.85,\n");
    s.push_str("  under the threshold; appended to eight large stdlib modules (argparse, typing, tarfile, inspect,\n");
    s.push_str("  http.client, smtplib, subprocess, email's header parser) 0.66-0.96, over the threshold in 2 of 8.\n");
    s.push_str(
        "  After a module of plain data (no functions) it is caught through its window (0.98).\n",
    );
    s.push_str("- Plain / one-liner variants of a held-out template are the weak spot: they are caught through the\n");
    s.push_str("  behaviour signals, and a behaviour that is also common in legitimate code (posting to a chat API,\n");
    s.push_str("  writing an encrypted backup, serving shell commands over HTTP, installing a package from a URL)\n");
    s.push_str("  scores near the benign outliers (cloud SDK tests that mock metadata credentials, interactive shells).\n");
    s.push_str("- The signal catalogue and the new template families were written after error analysis of this\n");
    s.push_str("  grouped CV (including pack cluster 040abba87d400b08, a clipboard-hijacking browser-extension\n");
    s.push_str("  installer behind arithmetic/getattr obfuscation, and the missed held-out templates); the weights\n");
    s.push_str("  `hard_negative_weight` / `plain_variant_weight` were chosen on the same CV. Thresholds never see a\n");
    s.push_str("  test fold, but the figures carry that selection optimism.\n");
    s.push_str("- 44 of the runtime templates (DNS-TXT stagers, pip-from-URL droppers, ransomware, HTTP/Flask\n");
    s.push_str("  command servers, Windows autoruns, wipers, SMTP/FTP/Telegram/webhook/env exfiltration, keyloggers,\n");
    s.push_str("  clippers, credential-file theft, ...) were written as siblings of the behaviour families the previous\n");
    s.push_str("  model missed when held out, so a held-out template now usually has a sibling in training. That is\n");
    s.push_str("  the point (more implementations per family), but it flatters the runtime figure: with feature set\n");
    s.push_str("  4 the 142 earlier templates alone scored 0.942 held out (plain 0.886), the 44 siblings 0.819 (each\n");
    s.push_str("  sibling is as hard as the template it mirrors), and `l2` (3e-5) was chosen on the same CV.\n");
    s.push_str("- Feature set 5 added generic behaviour signals (DNS exfiltration, DNS TXT execution, overwrite-and-\n");
    s.push_str("  delete wipers, run-time pip installs imported dynamically; in-place encryption, request bodies and\n");
    s.push_str("  broader ransom-note wording in existing combinations) after looking at the held-out templates that\n");
    s.push_str("  feature set 4 missed, so they carry the same selection optimism. Held out at this retrain: the 142\n");
    s.push_str("  earlier templates 0.950 (plain 0.902), the 44 siblings 0.820 (plain 0.649).\n");
    s.push_str("- Tried on the same grouped CV and not used (runtime recall at the fold thresholds, real-benign\n");
    s.push_str("  false positives): with feature set 4, 10x / 100x L2 on the hashed tokens (0.887 / 0.800; pack recall\n");
    s.push_str("  at the threshold fell to 0.37 / 0.20), dropping the tokens of template variants in 20-50% of the\n");
    s.push_str("  training passes (0.892-0.912, 1-3 real false positives) and a signals-only second model OR-ed with\n");
    s.push_str("  this one (no runtime variant gained, 4 more real false positives); with feature set 5, a lower bound\n");
    s.push_str("  of 1.5 on the weights of the strong combinations (0.863, 2 real false positives) and a two-stage fit\n");
    s.push_str("  (signals first, then everything from half those weights; `signal_stage`, also with plain variants\n");
    s.push_str("  x10): 0.937-0.940 (plain 0.877-0.884) with 0 real false positives, but 33-41 of the 2,700 benign-\n");
    s.push_str("  template variants (a Telegram alert, an embedded base64 asset) became false positives and recall at\n");
    s.push_str("  FPR 1e-4 fell to 0.55-0.64, so it is off.\n");
    s.push_str("- The held-out runtime target (>= 0.97) and zero real-benign false positives cannot both be met\n");
    s.push_str("  with this ranking. Choosing the fold thresholds at benign FPR 3e-4 instead of 1e-4 gives 0.956 runtime\n");
    s.push_str("  recall (plain 0.913) with 3 real-benign false positives (27 with the benign-template variants); at\n");
    s.push_str("  1e-3, 0.976 (plain 0.953) with 16 real-benign false positives and precision at 1/1000 prevalence of\n");
    s.push_str("  0.16. The shipped rule keeps FPR 1e-4.\n");
    s.push_str("- Also tried and not used, with feature set 5: a stacked fit (the dense signals refitted with a\n");
    s.push_str("  Newton-fitted logistic regression on grouped out-of-fold margins of the training part, folded back\n");
    s.push_str("  into one linear model): 0.866-0.902 at the fold thresholds, and at L2 10 / 100 the real-benign\n");
    s.push_str("  tail rose (13 / 5 real scripts above 0.85, against 3); a floor on the weights of combinations\n");
    s.push_str("  that the training part shows only in malicious groups: 0.844 with every combination (a download-\n");
    s.push_str("  chmod-exec installer and an SSH fan-out admin template rose to 0.96-0.99), 0.926 (plain 0.855)\n");
    s.push_str("  with intent-only combinations (shells on sockets, ransom, wipers, miners, clippers, DNS tunnels,\n");
    s.push_str("  backdoor accounts) at a floor of 2, but pack recall at the threshold fell from 0.953 to 0.945, and\n");
    s.push_str("  that list was drawn up after seeing the first result.\n");
    s.push_str("- Plain variants of some templates are still missed when held out, and for several the behaviour is\n");
    s.push_str("  close to legitimate admin code or belongs to a family whose every template falls in one fold (the\n");
    s.push_str("  three HTTP command servers share a fold, so the webshell combination has no training example when\n");
    s.push_str("  they are held out): installing a package from a URL and importing it (dropper-pip-url),\n");
    s.push_str("  a script fetching a DNS TXT record and executing it decoded (stager-dns-txt), serving shell commands\n");
    s.push_str("  over HTTP (bindshell-http-cmd), encrypting a tree with Fernet and leaving a note (ransom-encrypt),\n");
    s.push_str("  rmtree of data directories (impact-wiper), a Run-key autostart (persist-windows-run-key), SMTP/FTP\n");
    s.push_str("  uploads of home-directory secrets (exfil-smtp, exfil-ftp). Their scores sit below the benign tail\n");
    s.push_str("  (Ansible's AnsiballZ wrapper, which decodes and runs an embedded zip, the gcloud interactive coshell,\n");
    s.push_str("  cloud SDK tests that mock metadata credentials); the margin between that tail and the threshold\n");
    s.push_str("  is a few thousandths in some folds, so a retrain on other data can flip one of them either way.\n");
    s.push_str("- Locality is by bytes, not by function: dozens of unrelated hard-negative snippets back to back (an\n");
    s.push_str("  installer next to a beacon next to an env dump) can assemble a behaviour within 2 KiB; real modules\n");
    s.push_str("  rarely do (see the real-benign false positives above).\n");
    if let Some(r) = eval {
        if r.false_positives == 0 && r.benign_scripts > 0 {
            // Rule of three: with no false positive in n scripts, FPR <= 3/n at 95%.
            let fpr = 3.0 / r.benign_scripts as f64;
            s.push_str(&format!(
                "- Precision at 1/1000 prevalence is computed from the observed FPR, which is 0 here; with the\n  \
                 95% bound FPR <= 3/{} it is at least {:.3}.\n",
                r.benign_scripts,
                metrics::precision_at_prevalence(r.recall_at_threshold, fpr, 1e-3)
            ));
        }
    }
    s.push_str("- The threshold (FPR <= 1e-4 over benign units in the inner CV) sits above every held-out benign\n");
    s.push_str("  script, so many small pack clusters whose scores fall just below it are missed: the macro recall\n");
    s.push_str("  over clusters at the threshold is much lower than per-script recall (it is close to the previous\n");
    s.push_str("  model's at a fixed FPR of 1e-3), and the margin to the highest benign script is a few hundredths.\n");
    s.push_str("- Per-script FPR counts every generated variant of a benign template, so one hard benign template\n");
    s.push_str("  (e.g. a Telegram alert that reads its token from the environment) can dominate the 1e-3 operating point.\n");
    s.push_str("- The extra benign directory (Google Cloud SDK) comes from this machine image; elsewhere pass other\n");
    s.push_str("  directories or none (provenance records what was used).\n\n");
    let extra: String = opts
        .extra_benign_dirs
        .iter()
        .map(|d| format!(" --extra-benign {}", d.display()))
        .collect();
    s.push_str(&format!(
        "## Retrain\n\n```\ncargo run -p ward-ml --release --example ward-ml -- train --out models/python --fetch{extra}\n```\n"
    ));
    s.push_str(&format!(
        "(`ward model train --out models/python/{extra}` runs the same training.) Wheels are cached in `$WARD_ML_CACHE/wheels`\n"
    ));
    s.push_str("(default `/var/cache/ward-ml`). The same command produced every figure above (evaluation included):\n");
    s.push_str("about 30-45 s on 2 cores once the wheels are cached (features ~15 s, grouped CV with its\n");
    s.push_str("inner threshold CVs and the category hold-out, final fit); `--fetch` downloads the 49 pinned wheels\n");
    s.push_str("(`pip download --no-deps --only-binary=:all:`, nothing is built or run) in about a minute. Training\n");
    s.push_str("is deterministic: the same inputs give a byte-identical `model.bin`. `ward-ml eval` runs only the\n");
    s.push_str("grouped cross-validation.\n");
    s
}

/// Reads `eval.json` written by [`train`].
pub fn read_eval(path: &Path) -> Result<EvalReport, MlError> {
    let s = std::fs::read_to_string(path).map_err(|e| MlError::io("read", path, e))?;
    serde_json::from_str(&s).map_err(|e| MlError::Json {
        what: path.display().to_string(),
        source: e,
    })
}

/// Options of [`evaluate`] (same data and hyper-parameters as training).
pub type EvalOptions = TrainOptions;
