//! `ward model train|eval|info`, `ward scan-script`, and the model the detectors use.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use sha2::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use ward_event::ScriptClassifier;
use ward_ml::{Model, PythonClassifier};
#[cfg(feature = "train")]
use ward_ml_train::TrainOptions;

/// The shipped model (`models/python/model.bin`), embedded at build so that `ward agent` and
/// `ward replay` score scripts identically without a file on disk.
pub const EMBEDDED_MODEL: &[u8] = include_bytes!("../../../../models/python/model.bin");

/// The classifier the Malicious Python detector uses: `path` if given, else the embedded model.
/// The loader refuses a model whose format or feature set does not match this build.
pub fn load_classifier(path: Option<&Path>) -> Result<Arc<dyn ScriptClassifier>> {
    let model = match path {
        Some(p) => Model::load(p).with_context(|| format!("loading model {}", p.display()))?,
        None => Model::from_bytes(EMBEDDED_MODEL)
            .map_err(|e| anyhow::anyhow!("the embedded model does not load: {e}"))?,
    };
    Ok(Arc::new(PythonClassifier::new(model)))
}

/// The classifier for a run, unless the detector is disabled.
pub fn classifier_for(
    cfg: &crate::config::WardConfig,
    path: Option<&Path>,
) -> Result<Option<Arc<dyn ScriptClassifier>>> {
    if cfg.detectors.malicious_python.enabled {
        load_classifier(path).map(Some)
    } else {
        Ok(None)
    }
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Train the Malicious Python model and write it with its manifest and model card
    /// (in a build with the `train` feature: `cargo run -p ward --features train -- model train`).
    ///
    /// Data: the malicious pack (../shared/datasets/python-scripts or $WARD_ML_DATASET), the
    /// CPython stdlib, pinned PyPI wheels (models/python/benign-packages.txt, fetched with
    /// `pip download --only-binary` into the cache with --fetch; nothing is built or run), the
    /// runtime templates, and any --extra-benign directories. Samples are read in memory and
    /// never executed. Evaluation is a grouped split (pack by cluster, benign by package,
    /// templates by template); no group crosses it.
    #[cfg(feature = "train")]
    Train {
        #[command(flatten)]
        data: DataArgs,
        /// Output directory (model.bin, manifest.json, eval.json, MODEL_CARD.md).
        #[arg(long, default_value = "models/python", value_name = "DIR")]
        out: PathBuf,
        /// Skip the grouped cross-validation (faster; the model card then has no metrics).
        #[arg(long)]
        no_eval: bool,
    },
    /// Evaluate the training recipe and print the figures (a build with the `train` feature). Headline: the cross-source
    /// evaluation (train on the main pack, test on the registry source, and the reverse; a
    /// Markdown table on stderr), then the grouped cross-validation (JSON on stdout).
    #[cfg(feature = "train")]
    Eval {
        #[command(flatten)]
        data: DataArgs,
    },
    /// `train` and `eval` in a build without the `train` feature: an error that says how to
    /// get them (the agent's build carries inference only).
    #[cfg(not(feature = "train"))]
    #[command(name = "train", alias = "eval", hide = true, disable_help_flag = true)]
    NoTraining {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Print a model's manifest: id, format, feature set, threshold, data, metrics.
    Info {
        /// Model file (default: the embedded model).
        #[arg(long, value_name = "FILE")]
        model: Option<PathBuf>,
    },
}

#[cfg(feature = "train")]
#[derive(Args, Debug)]
pub struct DataArgs {
    /// The malicious pack (`malicious.jsonl.gz`).
    #[arg(long, value_name = "FILE")]
    malicious: Option<PathBuf>,
    /// The second malicious source (`registry.jsonl.gz`) [default: $WARD_ML_REGISTRY or the
    /// shared dataset directory]. Drives the cross-source evaluation (the headline) and is
    /// trained on for the shipped model.
    #[arg(long, value_name = "FILE")]
    registry: Option<PathBuf>,
    /// Pinned benign wheels (`NAME==VERSION` lines); `none` to skip wheels.
    #[arg(
        long,
        default_value = "models/python/benign-packages.txt",
        value_name = "FILE"
    )]
    benign_packages: String,
    /// Download missing wheels into the cache (`pip download --no-deps --only-binary=:all:`).
    #[arg(long)]
    fetch: bool,
    /// Wheel cache directory [default: $WARD_ML_CACHE or /var/cache/ward-ml].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Further directories of benign `.py` files (read only). Repeatable.
    #[arg(long = "extra-benign", value_name = "DIR")]
    extra_benign: Vec<PathBuf>,
    /// Directory of the runtime and benign templates.
    #[arg(long, default_value = "crates/ward-ml/data", value_name = "DIR")]
    templates: PathBuf,
    /// Keep every N-th real document (1 = all); for quick experiments.
    #[arg(long, default_value_t = 1, value_name = "N")]
    subsample: usize,
    /// Do not include the local CPython stdlib as benign data.
    #[arg(long)]
    no_stdlib: bool,
}

#[cfg(feature = "train")]
impl DataArgs {
    fn options(self) -> TrainOptions {
        let defaults = TrainOptions::default();
        TrainOptions {
            malicious: self.malicious,
            registry: self.registry,
            benign_packages: (self.benign_packages != "none")
                .then(|| PathBuf::from(&self.benign_packages)),
            fetch: self.fetch,
            cache_dir: self.cache.unwrap_or(defaults.cache_dir.clone()),
            extra_benign_dirs: self.extra_benign,
            templates_dir: self.templates,
            subsample: self.subsample.max(1),
            stdlib: !self.no_stdlib,
            ..defaults
        }
    }
}

pub fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        #[cfg(feature = "train")]
        ModelCommand::Train { data, out, no_eval } => {
            let mut o = data.options();
            o.out = out;
            o.evaluate = !no_eval;
            let report = ward_ml_train::train(&o)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        #[cfg(feature = "train")]
        ModelCommand::Eval { data } => {
            let report = ward_ml_train::evaluate(&data.options())?;
            // The headline (cross-source) as a table on stderr; the full report on stdout.
            if let Some(cs) = &report.cross_source {
                eprintln!("{}", ward_ml_train::crosseval::markdown(cs));
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        #[cfg(not(feature = "train"))]
        ModelCommand::NoTraining { .. } => {
            anyhow::bail!(
                "this ward was built without the training code: `ward model train` and `ward \
                 model eval` need `cargo build -p ward --features train` (or run \
                 `cargo run -p ward-ml-train --release --example ward-ml -- train|eval`)"
            );
        }
        ModelCommand::Info { model } => {
            let m = match &model {
                Some(p) => {
                    Model::load(p).with_context(|| format!("loading model {}", p.display()))?
                }
                None => Model::from_bytes(EMBEDDED_MODEL).map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            println!("{}", serde_json::to_string_pretty(&m.manifest)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Python files to score; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Model file (default: the embedded model).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    format: ScanFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScanFormat {
    /// One line per file: verdict, score, path, reasons.
    Text,
    /// One JSON object per file: {path, sha256, score, malicious, top_reasons, ...}.
    Json,
}

/// `ward scan-script`: exit 0 when nothing is malicious, 1 when something is, 2 on error.
pub fn scan_script(args: ScanArgs) -> Result<ExitCode> {
    let model = match &args.model {
        Some(p) => Model::load(p).with_context(|| format!("loading model {}", p.display()))?,
        None => Model::from_bytes(EMBEDDED_MODEL).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let classifier = PythonClassifier::new(model);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut any_malicious = false;
    for path in &args.files {
        let bytes = if path.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .context("reading stdin")?;
            b
        } else {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
        };
        let r = classifier.scan(&bytes);
        any_malicious |= r.malicious;
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        match args.format {
            ScanFormat::Json => {
                let mut v = serde_json::json!({
                    "path": path.display().to_string(),
                    "sha256": sha,
                    "size": bytes.len(),
                    "score": r.score,
                    "threshold": r.threshold,
                    "malicious": r.malicious,
                    "top_reasons": r.top_reasons,
                });
                if let Some(np) = &r.not_python {
                    v["not_python"] = np.clone().into();
                }
                serde_json::to_writer(&mut out, &v)?;
                writeln!(out)?;
            }
            ScanFormat::Text => {
                let verdict = match (&r.not_python, r.malicious) {
                    (Some(_), _) => "NOT-PYTHON",
                    (None, true) => "MALICIOUS",
                    (None, false) => "benign",
                };
                let why = r
                    .not_python
                    .clone()
                    .unwrap_or_else(|| r.top_reasons.join("; "));
                writeln!(
                    out,
                    "{verdict:<10} {:.3}  {}  {why}",
                    r.score,
                    path.display()
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if any_malicious {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
