//! Developer CLI for ward-ml (the `ward` binary wires the same functions):
//!
//! ```text
//! ward-ml train [--out DIR] [--fetch] [--quick N] [--no-eval] [--extra-benign DIR]...
//! ward-ml eval  [--fetch] [--quick N] [--extra-benign DIR]...
//! ward-ml scan  --model FILE PATH...
//! ward-ml score-source --model FILE SOURCE.jsonl.gz
//! ward-ml card --model DIR/model.bin [--extra-benign DIR]...   (re-render DIR/MODEL_CARD.md)
//! ```
use std::path::PathBuf;
use std::process::ExitCode;

use ward_ml::{scan, Model};
use ward_ml_train::{evaluate, train, TrainOptions};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let mut opts = TrainOptions::default();
    let mut model: Option<PathBuf> = None;
    let mut dump: Option<PathBuf> = None;
    let mut paths = Vec::new();
    let mut learners: Vec<ward_ml_train::train::Learner> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => opts.out = args.next().ok_or("--out DIR")?.into(),
            "--fetch" => opts.fetch = true,
            "--no-eval" => opts.evaluate = false,
            "--no-stdlib" => opts.stdlib = false,
            "--no-wheels" => opts.benign_packages = None,
            "--quick" => opts.subsample = args.next().ok_or("--quick N")?.parse()?,
            "--malicious" => opts.malicious = Some(args.next().ok_or("--malicious FILE")?.into()),
            "--registry" => opts.registry = Some(args.next().ok_or("--registry FILE")?.into()),
            "--pack-only" => opts.train_on_registry = false,
            "--extra-benign" => opts
                .extra_benign_dirs
                .push(args.next().ok_or("--extra-benign DIR")?.into()),
            "--epochs" => opts.epochs = args.next().ok_or("--epochs N")?.parse()?,
            "--lr" => opts.learning_rate = args.next().ok_or("--lr X")?.parse()?,
            "--ratio" => opts.benign_ratio = args.next().ok_or("--ratio X")?.parse()?,
            "--target-fpr" => opts.target_fpr = args.next().ok_or("--target-fpr X")?.parse()?,
            "--btcap" => opts.benign_template_cap = args.next().ok_or("--btcap X")?.parse()?,
            "--exclude" => opts
                .exclude_groups
                .push(args.next().ok_or("--exclude GROUP")?),
            "--tokl2" => opts.token_l2_mult = args.next().ok_or("--tokl2 X")?.parse()?,
            "--stage" => opts.signal_stage = args.next().ok_or("--stage N")?.parse()?,
            "--stage-scale" => {
                opts.signal_stage_scale = args.next().ok_or("--stage-scale X")?.parse()?
            }
            "--l2" => opts.l2 = args.next().ok_or("--l2 X")?.parse()?,
            "--hard" => opts.hard_negative_weight = args.next().ok_or("--hard X")?.parse()?,
            "--plain" => opts.plain_variant_weight = args.next().ok_or("--plain X")?.parse()?,
            "--tcap" => opts.template_cap = args.next().ok_or("--tcap X")?.parse()?,
            "--cap" => opts.cluster_cap = args.next().ok_or("--cap X")?.parse()?,
            "--dump" => dump = Some(args.next().ok_or("--dump FILE")?.into()),
            "--templates" => opts.templates_dir = args.next().ok_or("--templates DIR")?.into(),
            "--model" => model = Some(args.next().ok_or("--model FILE")?.into()),
            "--learner" => opts.learner = args.next().ok_or("--learner NAME")?.parse()?,
            "--learners" => {
                learners = args
                    .next()
                    .ok_or("--learners A,B")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--gbt-iter" => opts.gbt.iterations = args.next().ok_or("--gbt-iter N")?.parse()?,
            "--gbt-depth" => opts.gbt.max_depth = args.next().ok_or("--gbt-depth N")?.parse()?,
            "--gbt-lr" => opts.gbt.learning_rate = args.next().ok_or("--gbt-lr X")?.parse()?,
            "--gbt-l2" => opts.gbt.l2 = args.next().ok_or("--gbt-l2 X")?.parse()?,
            "--gbt-bins" => opts.gbt.nbins = args.next().ok_or("--gbt-bins N")?.parse()?,
            "--gbt-tokens" => opts.gbt.tokens = args.next().ok_or("--gbt-tokens N")?.parse()?,
            "--gbt-min-groups" => {
                opts.gbt.min_token_groups = args.next().ok_or("--gbt-min-groups N")?.parse()?
            }
            "--gbt-min-leaf" => {
                opts.gbt.min_leaf_weight = args.next().ok_or("--gbt-min-leaf X")?.parse()?
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    match cmd.as_str() {
        "train" => {
            let r = train(&opts)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        "eval" => match &dump {
            None => {
                let r = evaluate(&opts)?;
                if let Some(cs) = &r.cross_source {
                    eprintln!("{}", ward_ml_train::crosseval::markdown(cs));
                }
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Some(path) => {
                // Out-of-fold scores per script (ids, groups and scores only, never text).
                let ds = ward_ml_train::train::load_dataset(&opts)?;
                let o = ward_ml_train::train::oof_eval(&ds, &opts);
                let mut s = String::from("id\tgroup\tcategory\tlabel\tscore\tthreshold\tsignals\n");
                for (i, e) in ds.examples.iter().enumerate() {
                    let sig: Vec<String> =
                        e.fv.idx
                            .iter()
                            .zip(&e.fv.val)
                            .filter(|(&j, _)| (j as usize) < ward_ml::features::N_SIGNALS)
                            .map(|(&j, v)| {
                                let n = ward_ml::features::signal_name(j as usize);
                                if *v == 1.0 {
                                    n
                                } else {
                                    format!("{n}={v:.2}")
                                }
                            })
                            .collect();
                    s.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                        e.id,
                        e.group,
                        e.category,
                        e.label,
                        o.score[i],
                        o.threshold[i],
                        sig.join(" ")
                    ));
                }
                std::fs::write(path, s)?;
                let r = ward_ml_train::train::evaluate_report(&ds, &o, &opts);
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
        },
        "compare" => {
            // The cross-source evaluation once per learner on one loaded data set: one
            // Markdown table (stdout) and every direction's report as JSON (--dump FILE).
            if learners.is_empty() {
                learners = vec![
                    ward_ml_train::train::Learner::Linear,
                    ward_ml_train::train::Learner::Gbt,
                ];
            }
            let mut ds = ward_ml_train::train::load_dataset(&opts)?;
            let mut reports = Vec::new();
            for l in &learners {
                let o = TrainOptions {
                    learner: *l,
                    ..opts.clone()
                };
                let t0 = std::time::Instant::now();
                let r = ward_ml_train::crosseval::cross_source_eval(&mut ds, &o);
                eprintln!("{l}: {:.0} s", t0.elapsed().as_secs_f64());
                reports.push(r);
            }
            println!(
                "{}",
                ward_ml_train::crosseval::comparison_markdown(&reports)
            );
            if let Some(p) = &dump {
                std::fs::write(p, serde_json::to_string_pretty(&reports)?)?;
            }
        }
        "scan" => {
            let m = Model::load(&model.ok_or("--model FILE")?)?;
            for p in paths {
                let b = std::fs::read(&p)?;
                let r = scan(&m, &b);
                println!("{}\t{}", p.display(), serde_json::to_string(&r)?);
            }
        }
        "card" => {
            // Re-renders MODEL_CARD.md from a trained model and its eval.json (after editing the
            // card's Markdown notes in crates/ward-ml-train/card/), without retraining.
            let path = model.ok_or("--model FILE")?;
            let m = Model::load(&path)?;
            let dir = path.parent().ok_or("model path has no directory")?;
            let e = ward_ml_train::train::read_eval(&dir.join("eval.json"))?;
            let card = ward_ml_train::card::model_card(&m, Some(&e), &opts)?;
            std::fs::write(dir.join("MODEL_CARD.md"), card)?;
        }
        "score-source" => {
            // Scores a whole malicious source (pack or registry .jsonl.gz, in memory) with a
            // model at its threshold: recall per file, macro per cluster, per file name, and the
            // dominant campaign apart (a model that never saw the source: its cross-source figure).
            let m = Model::load(&model.ok_or("--model FILE")?)?;
            let src = paths.first().ok_or("score-source FILE.jsonl.gz")?;
            let (docs, _) = ward_ml_train::data::load_registry(src, 1)?;
            let c = ward_ml::PythonClassifier::new(m);
            let hits: Vec<bool> = docs.iter().map(|d| c.scan(&d.text).malicious).collect();
            let mut sizes = std::collections::BTreeMap::<&str, usize>::new();
            for d in &docs {
                *sizes.entry(d.group.as_str()).or_insert(0) += 1;
            }
            let dom = sizes
                .iter()
                .max_by_key(|x| *x.1)
                .filter(|x| {
                    *x.1 as f64 > ward_ml_train::crosseval::DOMINANT_SHARE * docs.len() as f64
                })
                .map(|x| x.0.to_string());
            let hit = |i: usize| hits[i];
            let part = |f: &dyn Fn(&ward_ml_train::data::Doc) -> bool| -> Vec<(usize, &str)> {
                docs.iter()
                    .enumerate()
                    .filter(|(_, d)| f(d))
                    .map(|(i, d)| (i, d.group.as_str()))
                    .collect()
            };
            let not_dom = |d: &ward_ml_train::data::Doc| Some(&d.group) != dom.as_ref();
            let mut out = vec![ward_ml_train::crosseval::slice(
                "all",
                &part(&not_dom),
                &hit,
            )];
            for n in ["setup.py", "__init__.py", "other"] {
                out.push(ward_ml_train::crosseval::slice(
                    n,
                    &part(&|d| not_dom(d) && ward_ml_train::crosseval::file_name(&d.category) == n),
                    &hit,
                ));
            }
            if let Some(d) = &dom {
                out.push(ward_ml_train::crosseval::slice(
                    d,
                    &part(&|x| &x.group == d),
                    &hit,
                ));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        "probe" => {
            // Scores pack records of one cluster in memory (prints ids and reasons, never text).
            let m = Model::load(&model.ok_or("--model FILE")?)?;
            let cluster = paths.first().ok_or("probe CLUSTER")?.display().to_string();
            let pack = opts
                .malicious
                .clone()
                .or_else(ward_ml_train::train::default_pack_path)
                .ok_or("no pack")?;
            let (docs, _) = ward_ml_train::data::load_pack(&pack, 1)?;
            for d in docs.iter().filter(|d| d.group.ends_with(&cluster)).take(5) {
                let r = scan(&m, &d.text);
                let a = ward_ml::Extractor::new().analyze(&d.text);
                let mut neg: Vec<(u32, f32)> = a
                    .features
                    .idx
                    .iter()
                    .zip(&a.features.val)
                    .map(|(&i, &v)| (i, m.weights[i as usize] * v))
                    .filter(|x| x.1 < 0.0)
                    .collect();
                neg.sort_by(|a, b| a.1.total_cmp(&b.1));
                let negsum: f32 = neg.iter().map(|x| x.1).sum();
                let want: Vec<u32> = neg.iter().take(6).map(|x| x.0).collect();
                let names = ward_ml::Extractor::new()
                    .analyze_named(&d.text, &want)
                    .names;
                let negs: Vec<String> = neg
                    .iter()
                    .take(6)
                    .map(|(i, c)| {
                        let n = names
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| ward_ml::features::signal_name(*i as usize));
                        format!("{n}={c:.2}")
                    })
                    .collect();
                println!(
                    "{}\t{:.4}\tlayers={}\tbias={:.2} neg={negsum:.2} nnz={}\t{:?}\t{:?}",
                    d.id,
                    r.score,
                    r.decoded_layers,
                    m.bias,
                    a.features.idx.len(),
                    r.top_reasons,
                    negs
                );
                println!(
                    "{}\t{:.4}\tlayers={}\t{:?}",
                    d.id, r.score, r.decoded_layers, r.top_reasons
                );
            }
        }
        "weights" => {
            // Dense-signal weights of a model, largest first.
            let m = Model::load(&model.ok_or("--model FILE")?)?;
            let mut w: Vec<(usize, f32)> = (0..ward_ml::features::N_SIGNALS)
                .map(|i| (i, m.weights[i]))
                .collect();
            w.sort_by(|a, b| b.1.total_cmp(&a.1));
            println!("bias {:.3}", m.bias);
            for (i, x) in w {
                println!("{x:8.3}  {}", ward_ml::features::signal_name(i));
            }
        }
        "explain" => {
            // Scores the plain variants of a template and splits the margin into its parts.
            let m = Model::load(&model.ok_or("--model FILE")?)?;
            let id = paths
                .first()
                .ok_or("explain TEMPLATE_ID|FILE")?
                .display()
                .to_string();
            let ex = ward_ml::Extractor::new();
            let mut texts: Vec<Vec<u8>> = Vec::new();
            if let Ok(b) = std::fs::read(&id) {
                texts.push(b);
            }
            for f in ["runtime-templates.tpl.gz", "benign-templates.tpl.gz"] {
                let ts = ward_ml_train::templates::load_templates(&opts.templates_dir.join(f))?;
                for t in ts.iter().filter(|t| t.id == id) {
                    let mal = f.starts_with("runtime");
                    for v in ward_ml_train::templates::variants(t, 8, opts.seed, mal)
                        .iter()
                        .filter(|v| v.wrapper == "plain" || v.wrapper == "oneliner")
                    {
                        texts.push(v.text.clone().into_bytes());
                    }
                }
            }
            {
                {
                    for text in &texts {
                        let a = ex.analyze(text);
                        let z = m.margin(&a.features);
                        let zs: f32 = a
                            .features
                            .idx
                            .iter()
                            .zip(&a.features.val)
                            .filter(|(&i, _)| i as usize >= ward_ml::features::N_SIGNALS)
                            .map(|(&i, &x)| m.weights[i as usize] * x)
                            .sum();
                        let mut c: Vec<(u32, f32)> = a
                            .features
                            .idx
                            .iter()
                            .zip(&a.features.val)
                            .map(|(&i, &x)| (i, m.weights[i as usize] * x))
                            .collect();
                        c.sort_by(|a, b| a.1.total_cmp(&b.1));
                        let want: Vec<u32> = c.iter().map(|x| x.0).collect();
                        let names = ex.analyze_named(text, &want).names;
                        let nm = |i: u32| {
                            names
                                .get(&i)
                                .cloned()
                                .unwrap_or_else(|| ward_ml::features::signal_name(i as usize))
                        };
                        let neg: Vec<String> = c
                            .iter()
                            .take(8)
                            .map(|(i, x)| format!("{}={x:.2}", nm(*i)))
                            .collect();
                        let pos: Vec<String> = c
                            .iter()
                            .rev()
                            .take(8)
                            .map(|(i, x)| format!("{}={x:.2}", nm(*i)))
                            .collect();
                        println!("score {:.4} z {z:.2} dense {:.2} sparse {zs:.2} nnz {}\n  - {}\n  + {}", m.score(&a.features), z - zs - m.bias, a.features.idx.len(), neg.join(" "), pos.join(" "));
                    }
                }
            }
        }
        "variants" => {
            // Prints generated variants of one template (our own templates; for review).
            let id = paths
                .first()
                .ok_or("variants TEMPLATE_ID")?
                .display()
                .to_string();
            for f in ["runtime-templates.tpl.gz", "benign-templates.tpl.gz"] {
                let ts = ward_ml_train::templates::load_templates(&opts.templates_dir.join(f))?;
                for t in ts.iter().filter(|t| t.id == id) {
                    let mal = f.starts_with("runtime");
                    let n = if mal {
                        opts.variants_per_template
                    } else {
                        opts.benign_variants_per_template
                    };
                    for (k, v) in ward_ml_train::templates::variants(t, n, opts.seed, mal)
                        .iter()
                        .enumerate()
                    {
                        println!("----- #{k} {}\n{}", v.wrapper, v.text);
                    }
                }
            }
        }
        "inject" => {
            // Appends fresh runtime-template variants, in memory, to each benign file given and
            // scores the result: measures dilution of a small payload inside a large benign script.
            let m = Model::load(&model.ok_or("--model FILE")?)?;
            let ts = ward_ml_train::templates::load_templates(
                &opts.templates_dir.join("runtime-templates.tpl.gz"),
            )?;
            for p in &paths {
                let base = std::fs::read(p)?;
                let (mut hit, mut n) = (0, 0);
                for t in &ts {
                    for v in ward_ml_train::templates::variants(t, 4, 99, true) {
                        let mut b = base.clone();
                        b.extend_from_slice(b"\n");
                        b.extend_from_slice(v.text.as_bytes());
                        n += 1;
                        hit += scan(&m, &b).malicious as usize;
                    }
                }
                println!(
                    "{}\t{} bytes\t{hit}/{n} injected variants flagged",
                    p.display(),
                    base.len()
                );
            }
        }
        _ => return Err("usage: ward-ml train|eval|scan|probe [options]".into()),
    }
    Ok(())
}
