//! Training and grouped evaluation.
//!
//! Model: L2-regularised logistic regression on [`ward_ml::features`] (dense signals + 2^18 hashed
//! features), trained with AdaGrad SGD in a fixed, seeded order (single thread: reproducible).
//! Split groups: malicious pack by `cluster`, wheels by package, stdlib by top-level module,
//! templates by template id. No group is on both sides of any split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{self, Doc, Origin};
use crate::metrics;
use crate::templates::{hash64, Rng};
use crate::TrainError;
use ward_ml::features::{Extractor, FeatureVector, DIM, N_GROUPS, N_SIGNALS};
use ward_ml::model::{blank_manifest, DataSource, Model};

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

/// The runtime and benign templates: `crates/ward-ml/data`. They stay beside the inference
/// crate because the shipped model's manifest names that path (moving them changes the model
/// file's bytes, so they move with a retrain).
pub fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ward-ml/data")
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
            templates_dir: templates_dir(),
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
    /// the whole file and these (as in [`ward_ml::scan()`]). Not used for fitting.
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
pub fn load_dataset(opts: &TrainOptions) -> Result<Dataset, TrainError> {
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
        return Err(TrainError::Options(
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
    let any_behaviour = ward_ml::features::signal_index("c:any_behaviour");
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
pub fn evaluate(opts: &TrainOptions) -> Result<EvalReport, TrainError> {
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
pub fn train(opts: &TrainOptions) -> Result<TrainReport, TrainError> {
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
    let mut tjson = serde_json::to_value(opts).map_err(|e| TrainError::Json {
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
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io("create dir", &opts.out, e))?;
    let path = opts.out.join("model.bin");
    model.save(&path)?;
    if let Some(r) = &eval {
        let p = opts.out.join("eval.json");
        let j = serde_json::to_string_pretty(r).map_err(|e| TrainError::Json {
            what: "eval".into(),
            source: e,
        })?;
        std::fs::write(&p, j + "\n").map_err(|e| TrainError::io("write", &p, e))?;
    }
    let card = crate::card::model_card(&model, eval.as_ref(), opts)?;
    let p = opts.out.join("MODEL_CARD.md");
    std::fs::write(&p, card).map_err(|e| TrainError::io("write", &p, e))?;
    let model_bytes = std::fs::metadata(&path)
        .map_err(|e| TrainError::io("stat", &path, e))?
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

/// Reads `eval.json` written by [`train`].
pub fn read_eval(path: &Path) -> Result<EvalReport, TrainError> {
    let s = std::fs::read_to_string(path).map_err(|e| TrainError::io("read", path, e))?;
    serde_json::from_str(&s).map_err(|e| TrainError::Json {
        what: path.display().to_string(),
        source: e,
    })
}

/// Options of [`evaluate`] (same data and hyper-parameters as training).
pub type EvalOptions = TrainOptions;
