//! Cross-source evaluation: train on one malicious source, test on the other.
//!
//! The grouped cross-validation in [`crate::train`] holds clusters of one source out, but a
//! held-out cluster still comes from the same upstream, the same years and the same campaigns'
//! neighbours. What predicts the field is malware from another slice of the population, so the
//! headline is measured across sources, in both directions:
//!
//! * **pack → registry**: the malicious training data is the main pack (`malicious.jsonl.gz`);
//!   the test set is the registry source (`registry.jsonl.gz`), which the model never saw;
//! * **registry → pack**: the reverse.
//!
//! Benign data and the runtime templates are split into `k` grouped folds (by package, stdlib
//! module, template id) as in the grouped CV; fold `f`'s model trains on the whole training
//! source plus the benign and template groups outside fold `f`, and scores fold `f`'s benign and
//! template groups plus the test source's clusters that fall in fold `f` (each test file is
//! scored exactly once, by a model that saw no file of that source). Each fold's threshold comes
//! from an inner grouped 3-fold CV on that fold's training part only, with the shipped rule.
//!
//! The dominant campaign of a test source (a cluster holding more than
//! [`DOMINANT_SHARE`] of its files, the PowerShell typosquat campaign of the main pack) is
//! reported on its own line and kept out of the headline figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::Origin;
use crate::metrics;
use crate::train::{
    assign_weights_where, choose_threshold, fit_scorer, fold_of, Dataset, TrainOptions,
};

/// JSON has no NaN: serde_json writes it as `null`; read `null` back as NaN (a figure with
/// nothing to measure, e.g. recall over no `other` files).
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A test-source cluster holding more than this share of the source's files is its dominant
/// campaign: reported separately, never mixed into the headline.
pub const DOMINANT_SHARE: f64 = 0.2;

/// Recall of one slice of the test source at the fold thresholds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SliceRecall {
    /// Slice name (`all`, `setup.py`, `__init__.py`, `other`, or a cluster id).
    pub name: String,
    /// Files.
    pub files: usize,
    /// Clusters.
    pub clusters: usize,
    /// Recall per file.
    #[serde(deserialize_with = "nan_if_null")]
    pub recall: f64,
    /// Recall macro-averaged over clusters.
    #[serde(deserialize_with = "nan_if_null")]
    pub macro_cluster_recall: f64,
}

/// False positives of one held-out benign group (package, stdlib module, directory).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GroupFp {
    /// Split group.
    pub group: String,
    /// Scripts of the group.
    pub files: usize,
    /// Of which at or above the threshold.
    pub false_positives: usize,
    /// Highest held-out score in the group.
    pub max_score: f32,
}

/// One direction of the cross-source evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DirectionReport {
    /// Malicious source trained on (`pack` / `registry`).
    pub train_source: String,
    /// Malicious source tested on.
    pub test_source: String,
    /// Headline: the test source without its dominant campaign, per file and macro per
    /// cluster.
    pub headline: SliceRecall,
    /// The same by file name (`setup.py`, `__init__.py`, `other`), dominant campaign excluded.
    pub by_file_name: Vec<SliceRecall>,
    /// The dominant campaign of the test source, reported on its own (None when no cluster holds
    /// more than [`DOMINANT_SHARE`] of the files).
    pub dominant_campaign: Option<SliceRecall>,
    /// ROC AUC, headline test files vs held-out real benign scripts.
    #[serde(deserialize_with = "nan_if_null")]
    pub roc_auc: f64,
    /// Ranking: headline recall at a real-benign FPR of 1e-3 (pooled out-of-fold scores).
    #[serde(deserialize_with = "nan_if_null")]
    pub recall_at_fpr_1e3: f64,
    /// Ranking: headline recall at a real-benign FPR of 1e-4.
    #[serde(deserialize_with = "nan_if_null")]
    pub recall_at_fpr_1e4: f64,
    /// Per-fold thresholds (inner grouped 3-fold CV on the fold's training part).
    pub fold_thresholds: Vec<f32>,
    /// Held-out real benign scripts (stdlib, wheels, extra directories).
    pub real_benign_scripts: usize,
    /// Held-out real benign groups.
    pub real_benign_groups: usize,
    /// Of which at or above their fold's threshold.
    pub real_benign_false_positives: usize,
    /// `real_benign_false_positives / real_benign_scripts`.
    #[serde(deserialize_with = "nan_if_null")]
    pub real_benign_fpr: f64,
    /// Real benign groups with a false positive, most first.
    pub fp_by_group: Vec<GroupFp>,
    /// Held-out benign-template variants / templates, and those at or above the threshold.
    pub benign_template_variants: usize,
    /// Benign templates.
    pub benign_templates: usize,
    /// Benign-template variants at or above the threshold.
    pub benign_template_false_positives: usize,
    /// Benign templates with at least one variant at or above the threshold.
    pub benign_templates_with_fp: Vec<String>,
    /// Precision at a prevalence of 1 malicious script in 1,000 (headline recall, real-benign
    /// FPR). With no false positive it is 1 by construction; see `real_benign_fpr_upper_95`.
    #[serde(deserialize_with = "nan_if_null")]
    pub precision_at_1_in_1000: f64,
    /// Precision at 1 in 10,000.
    #[serde(deserialize_with = "nan_if_null")]
    pub precision_at_1_in_10000: f64,
    /// One-sided 95% upper bound of the real-benign FPR (Clopper-Pearson; `3 / n` at zero).
    #[serde(deserialize_with = "nan_if_null")]
    pub real_benign_fpr_upper_95: f64,
    /// Precision at 1 in 1,000 with the FPR at its 95% upper bound (the pessimistic figure).
    #[serde(deserialize_with = "nan_if_null")]
    pub precision_at_1_in_1000_pessimistic: f64,
    /// Precision at 1 in 10,000, pessimistic.
    #[serde(deserialize_with = "nan_if_null")]
    pub precision_at_1_in_10000_pessimistic: f64,
    /// Runtime-template variants held out by template: recall at the threshold.
    #[serde(deserialize_with = "nan_if_null")]
    pub runtime_recall: f64,
    /// Of which plain / one-liner variants.
    #[serde(deserialize_with = "nan_if_null")]
    pub runtime_plain_recall: f64,
    /// Runtime variants scored.
    pub runtime_variants: usize,
    /// Test clusters with the lowest recall (headline part): cluster, files, recall.
    pub weakest_clusters: Vec<(String, usize, f64)>,
    /// Highest-scoring held-out real benign scripts: id, score, threshold.
    pub top_benign: Vec<(String, f32, f32)>,
    /// The learner of the folds (`linear`, `gbt`, `blend`).
    #[serde(default)]
    pub learner: String,
    /// Model cost per scored file in microseconds (whole-file vector and every window, features
    /// already extracted; mean over the held-out files of the direction).
    #[serde(default)]
    pub model_us_per_file: f64,
}

/// Both directions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CrossSourceReport {
    /// How the figures were computed.
    pub method: String,
    /// `pack → registry`, then `registry → pack` (a direction is absent when a source is).
    pub directions: Vec<DirectionReport>,
}

fn source_name(o: Origin) -> &'static str {
    match o {
        Origin::Pack => "pack",
        Origin::Registry => "registry",
        Origin::Runtime => "runtime",
        Origin::Benign => "benign",
        Origin::BenignTemplate => "benign-template",
    }
}

/// One-sided 95% upper bound of a binomial rate with `k` events in `n` trials
/// (Clopper-Pearson, solved by bisection on the binomial tail).
pub fn rate_upper_95(k: usize, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    if k >= n {
        return 1.0;
    }
    // P(X <= k | p) = 0.05, decreasing in p.
    let cdf = |p: f64| -> f64 {
        let (mut term, mut sum) = ((1.0 - p).powi(n as i32), 0.0);
        for i in 0..=k {
            if i > 0 {
                term *= (n - i + 1) as f64 / i as f64 * p / (1.0 - p);
            }
            sum += term;
        }
        sum
    };
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) > 0.05 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// File-name slice of a category (`pack:setup.py` → `setup.py`).
pub fn file_name(category: &str) -> &str {
    category.rsplit(':').next().unwrap_or(category)
}

/// Recall of the files `(index, cluster)` per file and macro per cluster; `hit(index)` says
/// whether a file was detected.
pub fn slice(name: &str, files: &[(usize, &str)], hit: &dyn Fn(usize) -> bool) -> SliceRecall {
    let mut clusters: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for &(i, c) in files {
        let e = clusters.entry(c).or_insert((0, 0));
        e.0 += 1;
        e.1 += hit(i) as usize;
    }
    let hits: usize = clusters.values().map(|c| c.1).sum();
    SliceRecall {
        name: name.to_string(),
        files: files.len(),
        clusters: clusters.len(),
        recall: if files.is_empty() {
            f64::NAN
        } else {
            hits as f64 / files.len() as f64
        },
        macro_cluster_recall: if clusters.is_empty() {
            f64::NAN
        } else {
            clusters
                .values()
                .map(|(n, h)| *h as f64 / *n as f64)
                .sum::<f64>()
                / clusters.len() as f64
        },
    }
}

/// Runs both directions on a data set holding both malicious sources. Training weights are
/// recomputed per direction (the test source weighs nothing) and restored afterwards.
pub fn cross_source_eval(ds: &mut Dataset, opts: &TrainOptions) -> CrossSourceReport {
    let k = opts.folds.max(2);
    let mut directions = Vec::new();
    let pb = crate::train::bar(2 * k as u64, "cross-src", opts.progress);
    for (dir, (train_src, test_src)) in [
        (Origin::Pack, Origin::Registry),
        (Origin::Registry, Origin::Pack),
    ]
    .into_iter()
    .enumerate()
    {
        let has = |o: Origin| ds.examples.iter().any(|e| e.origin == o);
        if !has(train_src) || !has(test_src) {
            tracing::warn!(
                train = source_name(train_src),
                test = source_name(test_src),
                "cross-source direction skipped: a source is missing"
            );
            continue;
        }
        assign_weights_where(&mut ds.examples, opts, &|e| e.origin != test_src);
        let ex = &ds.examples;
        let mut score = vec![f32::NAN; ex.len()];
        let mut thr = vec![f32::NAN; ex.len()];
        let mut fold_thresholds = Vec::new();
        let (mut scored, mut score_ns) = (0u64, 0u128);
        let salt = opts.seed ^ 0xc505_0000 ^ dir as u64;
        for f in 0..k {
            let train: Vec<usize> = (0..ex.len())
                .filter(|&i| {
                    let e = &ex[i];
                    e.origin == train_src
                        || (e.origin != test_src && fold_of(&e.group, k, salt) != f)
                })
                .collect();
            let t = choose_threshold(ex, &train, 3, salt ^ 0xabcd ^ f as u64, opts);
            let m = fit_scorer(ex, &train, opts, 3000 + 100 * dir as u64 + f as u64);
            let t0 = std::time::Instant::now();
            for i in (0..ex.len())
                .filter(|&i| ex[i].origin != train_src && fold_of(&ex[i].group, k, salt) == f)
            {
                score[i] = m.score_example(&ex[i]);
                thr[i] = t;
                scored += 1;
            }
            score_ns += t0.elapsed().as_nanos();
            fold_thresholds.push(t);
            tracing::info!(
                train = source_name(train_src),
                fold = f,
                threshold = t,
                "cross-source fold done"
            );
            pb.inc(1);
        }
        let mut d = direction_report(ex, &score, &thr, train_src, test_src, fold_thresholds);
        d.learner = opts.learner.to_string();
        d.model_us_per_file = score_ns as f64 / 1e3 / scored.max(1) as f64;
        directions.push(d);
    }
    pb.finish_and_clear();
    assign_weights_where(&mut ds.examples, opts, &|_| true);
    CrossSourceReport {
        method: format!(
            "train on one malicious source, test on the other; benign data and runtime templates in \
             {k} grouped folds (package / stdlib module / template id), test-source clusters spread \
             over the same folds; per-fold thresholds from an inner grouped 3-fold CV on the fold's \
             training part (the shipped rule); the dominant campaign (a cluster over {:.0}% of its \
             source) reported separately",
            DOMINANT_SHARE * 100.0
        ),
        directions,
    }
}

fn direction_report(
    ex: &[crate::train::Example],
    score: &[f32],
    thr: &[f32],
    train_src: Origin,
    test_src: Origin,
    fold_thresholds: Vec<f32>,
) -> DirectionReport {
    let hit = |i: usize| score[i] >= thr[i];
    let test: Vec<usize> = (0..ex.len())
        .filter(|&i| ex[i].origin == test_src)
        .collect();
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in &test {
        *sizes.entry(ex[i].group.as_str()).or_insert(0) += 1;
    }
    let dominant = sizes
        .iter()
        .max_by_key(|(_, n)| **n)
        .filter(|(_, n)| **n as f64 > DOMINANT_SHARE * test.len() as f64)
        .map(|(c, _)| c.to_string());
    let is_dom = |i: usize| Some(&ex[i].group) == dominant.as_ref();
    let head: Vec<(usize, &str)> = test
        .iter()
        .filter(|&&i| !is_dom(i))
        .map(|&i| (i, ex[i].group.as_str()))
        .collect();
    let headline = slice("all", &head, &hit);
    let by_file_name = ["setup.py", "__init__.py", "other"]
        .iter()
        .map(|n| {
            let v: Vec<(usize, &str)> = head
                .iter()
                .copied()
                .filter(|&(i, _)| file_name(&ex[i].category) == *n)
                .collect();
            slice(n, &v, &hit)
        })
        .collect();
    let dominant_campaign = dominant.as_ref().map(|d| {
        let v: Vec<(usize, &str)> = test
            .iter()
            .filter(|&&i| is_dom(i))
            .map(|&i| (i, ex[i].group.as_str()))
            .collect();
        slice(d, &v, &hit)
    });
    let real: Vec<usize> = (0..ex.len())
        .filter(|&i| ex[i].origin == Origin::Benign && !score[i].is_nan())
        .collect();
    let mut groups: BTreeMap<&str, GroupFp> = BTreeMap::new();
    for &i in &real {
        let g = groups.entry(ex[i].group.as_str()).or_default();
        g.files += 1;
        g.false_positives += hit(i) as usize;
        g.max_score = g.max_score.max(score[i]);
    }
    let real_fp: usize = groups.values().map(|g| g.false_positives).sum();
    let mut fp_by_group: Vec<GroupFp> = groups
        .iter()
        .filter(|(_, g)| g.false_positives > 0)
        .map(|(k, g)| GroupFp {
            group: k.to_string(),
            ..g.clone()
        })
        .collect();
    fp_by_group.sort_by(|a, b| {
        b.false_positives
            .cmp(&a.false_positives)
            .then(a.group.cmp(&b.group))
    });
    let btpl: Vec<usize> = (0..ex.len())
        .filter(|&i| ex[i].origin == Origin::BenignTemplate && !score[i].is_nan())
        .collect();
    let mut btpl_fp: Vec<String> = btpl
        .iter()
        .filter(|&&i| hit(i))
        .map(|&i| ex[i].group.clone())
        .collect();
    btpl_fp.sort();
    btpl_fp.dedup();
    let mut btpl_groups: Vec<&str> = btpl.iter().map(|&i| ex[i].group.as_str()).collect();
    btpl_groups.sort();
    btpl_groups.dedup();
    let rt: Vec<usize> = (0..ex.len())
        .filter(|&i| ex[i].origin == Origin::Runtime && !score[i].is_nan())
        .collect();
    let rate = |v: &[usize]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().filter(|&&i| hit(i)).count() as f64 / v.len() as f64
        }
    };
    let rt_plain: Vec<usize> = rt
        .iter()
        .copied()
        .filter(|&i| crate::train::is_plain(&ex[i].id))
        .collect();
    let pos: Vec<f32> = head.iter().map(|&(i, _)| score[i]).collect();
    let neg: Vec<f32> = real.iter().map(|&i| score[i]).collect();
    let fpr = if real.is_empty() {
        f64::NAN
    } else {
        real_fp as f64 / real.len() as f64
    };
    let fpr_hi = rate_upper_95(real_fp, real.len());
    let mut weakest: Vec<(String, usize, f64)> = {
        let mut c: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for &(i, g) in &head {
            let e = c.entry(g).or_insert((0, 0));
            e.0 += 1;
            e.1 += hit(i) as usize;
        }
        c.into_iter()
            .map(|(g, (n, h))| (g.to_string(), n, h as f64 / n as f64))
            .collect()
    };
    weakest.sort_by(|a, b| a.2.total_cmp(&b.2).then(b.1.cmp(&a.1)));
    weakest.truncate(12);
    let mut top: Vec<usize> = real.clone();
    top.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    DirectionReport {
        train_source: source_name(train_src).into(),
        test_source: source_name(test_src).into(),
        roc_auc: metrics::roc_auc(&pos, &neg),
        recall_at_fpr_1e3: metrics::recall_at_fpr(&pos, &neg, 1e-3),
        recall_at_fpr_1e4: metrics::recall_at_fpr(&pos, &neg, 1e-4),
        precision_at_1_in_1000: metrics::precision_at_prevalence(headline.recall, fpr, 1e-3),
        precision_at_1_in_10000: metrics::precision_at_prevalence(headline.recall, fpr, 1e-4),
        precision_at_1_in_1000_pessimistic: metrics::precision_at_prevalence(
            headline.recall,
            fpr_hi,
            1e-3,
        ),
        precision_at_1_in_10000_pessimistic: metrics::precision_at_prevalence(
            headline.recall,
            fpr_hi,
            1e-4,
        ),
        real_benign_fpr_upper_95: fpr_hi,
        headline,
        by_file_name,
        dominant_campaign,
        fold_thresholds,
        real_benign_scripts: real.len(),
        real_benign_groups: groups.len(),
        real_benign_false_positives: real_fp,
        real_benign_fpr: fpr,
        fp_by_group,
        benign_template_variants: btpl.len(),
        benign_templates: btpl_groups.len(),
        benign_template_false_positives: btpl.iter().filter(|&&i| hit(i)).count(),
        benign_templates_with_fp: btpl_fp,
        runtime_recall: rate(&rt),
        runtime_plain_recall: rate(&rt_plain),
        runtime_variants: rt.len(),
        weakest_clusters: weakest,
        top_benign: top
            .iter()
            .take(10)
            .map(|&i| (ex[i].id.clone(), score[i], thr[i]))
            .collect(),
        learner: String::new(),
        model_us_per_file: 0.0,
    }
}

fn pct(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.3}")
    }
}

/// The cross-source figures as Markdown (the model card's headline; `ward model eval` prints it
/// to stderr before its JSON).
pub fn markdown(r: &CrossSourceReport) -> String {
    let mut s = String::new();
    if r.directions.is_empty() {
        s.push_str("No cross-source evaluation: the registry source was not found.\n");
        return s;
    }
    let dirs = &r.directions;
    let row = |s: &mut String, name: &str, f: &dyn Fn(&DirectionReport) -> String| {
        s.push_str(&format!("| {name} |"));
        for d in dirs {
            s.push_str(&format!(" {} |", f(d)));
        }
        s.push('\n');
    };
    s.push_str("| at the fold thresholds |");
    for d in dirs {
        s.push_str(&format!(" {} → {} |", d.train_source, d.test_source));
    }
    s.push_str("\n|---|");
    for _ in dirs {
        s.push_str("---|");
    }
    s.push('\n');
    row(&mut s, "test files / clusters (headline)", &|d| {
        format!("{} / {}", d.headline.files, d.headline.clusters)
    });
    row(&mut s, "**recall per file**", &|d| {
        format!("**{}**", pct(d.headline.recall))
    });
    row(&mut s, "**recall, macro per cluster**", &|d| {
        format!("**{}**", pct(d.headline.macro_cluster_recall))
    });
    for (k, n) in ["setup.py", "__init__.py", "other"].iter().enumerate() {
        row(&mut s, &format!("`{n}`: files, recall / macro"), &|d| {
            let x = &d.by_file_name[k];
            if x.files == 0 {
                "none".into()
            } else {
                format!(
                    "{}: {} / {}",
                    x.files,
                    pct(x.recall),
                    pct(x.macro_cluster_recall)
                )
            }
        });
    }
    row(&mut s, "ROC AUC vs held-out real benign", &|d| {
        pct(d.roc_auc)
    });
    row(
        &mut s,
        "recall at real-benign FPR 1e-3 / 1e-4 (ranking)",
        &|d| {
            format!(
                "{} / {}",
                pct(d.recall_at_fpr_1e3),
                pct(d.recall_at_fpr_1e4)
            )
        },
    );
    row(&mut s, "**held-out real benign: false positives**", &|d| {
        format!(
            "**{} of {}** ({} groups; FPR {:.2e}, 95% upper {:.1e})",
            d.real_benign_false_positives,
            d.real_benign_scripts,
            d.real_benign_groups,
            d.real_benign_fpr,
            d.real_benign_fpr_upper_95
        )
    });
    row(
        &mut s,
        "held-out benign templates: variants flagged",
        &|d| {
            format!(
                "{} of {} ({} of {} templates{})",
                d.benign_template_false_positives,
                d.benign_template_variants,
                d.benign_templates_with_fp.len(),
                d.benign_templates,
                if d.benign_templates_with_fp.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.benign_templates_with_fp.join(", "))
                }
            )
        },
    );
    row(&mut s, "precision at 1 in 1,000 / 1 in 10,000", &|d| {
        format!(
            "{} / {} (FPR at its 95% bound: {} / {})",
            pct(d.precision_at_1_in_1000),
            pct(d.precision_at_1_in_10000),
            pct(d.precision_at_1_in_1000_pessimistic),
            pct(d.precision_at_1_in_10000_pessimistic)
        )
    });
    row(
        &mut s,
        "runtime templates held out by template (plain)",
        &|d| {
            format!(
                "{} ({}) of {}",
                pct(d.runtime_recall),
                pct(d.runtime_plain_recall),
                d.runtime_variants
            )
        },
    );
    row(
        &mut s,
        "dominant campaign, reported apart",
        &|d| match &d.dominant_campaign {
            None => "none (no cluster over 20%)".into(),
            Some(c) => format!("`{}`: {} files, recall {}", c.name, c.files, pct(c.recall)),
        },
    );
    row(&mut s, "fold thresholds", &|d| {
        d.fold_thresholds
            .iter()
            .map(|t| format!("{t:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    s.push('\n');
    for d in dirs {
        if !d.fp_by_group.is_empty() {
            s.push_str(&format!(
                "Real benign groups with false positives ({} → {}): {}.\n\n",
                d.train_source,
                d.test_source,
                d.fp_by_group
                    .iter()
                    .map(|g| format!("`{}` {} of {}", g.group, g.false_positives, g.files))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        s.push_str(&format!(
            "Weakest {} clusters ({} → {}; files, recall): {}.\n\n",
            d.test_source,
            d.train_source,
            d.test_source,
            d.weakest_clusters
                .iter()
                .map(|(c, n, r)| format!("`{c}` {n} {r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s.push_str(&format!("Method: {}.\n", r.method));
    s
}

/// One table comparing learners: each report's directions, one row per learner and direction.
pub fn comparison_markdown(reports: &[CrossSourceReport]) -> String {
    let mut s = String::from(
        "| learner | direction | recall per file | macro per cluster | `setup.py` / `__init__.py` / other (per file) | real-benign FPs (held out) | benign-template variants flagged | runtime held out (plain) | recall at real-benign FPR 1e-3 / 1e-4 | ROC AUC | model µs per file |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        for d in &r.directions {
            let f = |k: usize| pct(d.by_file_name.get(k).map_or(f64::NAN, |x| x.recall));
            s.push_str(&format!(
                "| {} | {} → {} | {} | {} | {} / {} / {} | {} of {} | {} of {} ({} templates) | {} ({}) | {} / {} | {} | {:.1} |\n",
                d.learner,
                d.train_source,
                d.test_source,
                pct(d.headline.recall),
                pct(d.headline.macro_cluster_recall),
                f(0),
                f(1),
                f(2),
                d.real_benign_false_positives,
                d.real_benign_scripts,
                d.benign_template_false_positives,
                d.benign_template_variants,
                d.benign_templates_with_fp.len(),
                pct(d.runtime_recall),
                pct(d.runtime_plain_recall),
                pct(d.recall_at_fpr_1e3),
                pct(d.recall_at_fpr_1e4),
                pct(d.roc_auc),
                d.model_us_per_file,
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound() {
        // Rule of three at zero events.
        let u = rate_upper_95(0, 10_000);
        assert!((u - 3.0e-4).abs() < 1e-5, "{u}");
        // 1 in 1000: the exact bound is ~0.00474.
        let u = rate_upper_95(1, 1000);
        assert!((u - 0.00474).abs() < 1e-4, "{u}");
        assert_eq!(rate_upper_95(5, 5), 1.0);
    }

    /// A synthetic data set with both malicious sources: malicious files carry signal 2 and a
    /// source-specific token, benign files signal 4 and package tokens.
    fn synthetic() -> Dataset {
        use crate::train::Example;
        use ward_ml::features::{FeatureVector, N_SIGNALS};
        let mut examples = Vec::new();
        let mut push = |origin: Origin, label: u8, group: String, id: String, f: Vec<u32>| {
            examples.push(Example {
                fv: FeatureVector {
                    val: vec![1.0; f.len()],
                    idx: f,
                },
                label,
                category: format!("{}:setup.py", source_name(origin)),
                group,
                id,
                origin,
                weight: 1.0,
                windows: Vec::new(),
            });
        };
        let t = |k: u32| N_SIGNALS as u32 + k;
        for c in 0..30u32 {
            for k in 0..3u32 {
                push(
                    Origin::Pack,
                    1,
                    format!("cluster:{c}"),
                    format!("p{c}-{k}"),
                    vec![2, t(100 + c % 4)],
                );
                push(
                    Origin::Registry,
                    1,
                    format!("registry:{c}"),
                    format!("r{c}-{k}"),
                    vec![2, t(200 + c % 4)],
                );
                push(
                    Origin::Benign,
                    0,
                    format!("pkg:{c}"),
                    format!("b{c}-{k}"),
                    vec![4, t(300 + k)],
                );
                push(
                    Origin::Runtime,
                    1,
                    format!("tpl:m{c}"),
                    format!("m{c}-{k}:plain"),
                    vec![2, 7],
                );
                push(
                    Origin::BenignTemplate,
                    0,
                    format!("tpl:b{c}"),
                    format!("bt{c}-{k}"),
                    vec![4, 7],
                );
            }
        }
        Dataset {
            examples,
            sources: Vec::new(),
        }
    }

    #[test]
    fn every_learner_runs_both_directions_and_lands_in_one_table() {
        let mut ds = synthetic();
        let mut reports = Vec::new();
        for learner in [
            crate::train::Learner::Linear,
            crate::train::Learner::Gbt,
            crate::train::Learner::Blend,
        ] {
            let mut opts = TrainOptions {
                learner,
                progress: false,
                ..TrainOptions::default()
            };
            opts.gbt.iterations = 20;
            opts.gbt.min_token_groups = 2;
            opts.gbt.threads = 1;
            let r = cross_source_eval(&mut ds, &opts);
            assert_eq!(r.directions.len(), 2);
            for d in &r.directions {
                assert_eq!(d.learner, learner.to_string());
                assert_eq!(d.headline.files, 90, "every test file is scored once");
                assert!(d.model_us_per_file > 0.0);
                // Signal 2 separates: every learner finds every held-out malicious file and
                // flags no benign one.
                assert_eq!(d.headline.recall, 1.0, "{learner}: {d:?}");
                assert_eq!(d.real_benign_false_positives, 0, "{learner}");
            }
            reports.push(r);
        }
        // The folds really were fitted by each learner: their held-out benign scores differ.
        let benign = |k: usize| reports[k].directions[0].top_benign.clone();
        assert_ne!(benign(0), benign(1));
        assert_ne!(benign(1), benign(2));
        let table = comparison_markdown(&reports);
        for l in [
            "| linear | pack → registry",
            "| gbt | registry → pack",
            "| blend |",
        ] {
            assert!(table.contains(l), "{l} missing from\n{table}");
        }
    }

    #[test]
    fn slices() {
        let hit = |i: usize| i.is_multiple_of(2);
        let s = slice("x", &[(0, "a"), (1, "a"), (2, "b")], &hit);
        assert_eq!((s.files, s.clusters), (3, 2));
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((s.macro_cluster_recall - 0.75).abs() < 1e-9);
    }
}
