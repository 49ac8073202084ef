//! The model card (`MODEL_CARD.md`), rendered from a trained model, its evaluation and the
//! training options. The prose is Markdown under `crates/ward-ml-train/card/` with `{{name}}`
//! fields that this module fills (figures, tables, options); edit the Markdown, then retrain or
//! re-render (`ward-ml card`). A template field the writer does not fill, or a filled field no
//! template names, is an error ([`TrainError::Card`]), so the two cannot drift apart.

use ward_ml::Model;

use crate::metrics;
use crate::train::{EvalReport, TrainOptions};
use crate::TrainError;

/// The card's skeleton: header, what the model is, data, known limits, how to retrain.
const MODEL_CARD: &str = include_str!("../card/model-card.md");
/// The headline section (cross-source evaluation): its introduction.
const CROSS_SOURCE: &str = include_str!("../card/cross-source.md");
/// Hand-written notes of the headline section (baseline, trade-offs, what was tried).
const CROSS_SOURCE_NOTES: &str = include_str!("../card/cross-source-notes.md");
/// The grouped evaluation's section, and its stand-in when training skipped it.
const EVALUATION: &str = include_str!("../card/evaluation.md");
const EVALUATION_NOT_RUN: &str = include_str!("../card/evaluation-not-run.md");
/// The missed runtime variants' list (only when there are some).
const MISSED_RUNTIME: &str = include_str!("../card/missed-runtime.md");
/// The rule-of-three bound on precision (only when the evaluation saw no false positive).
const PRECISION_BOUND: &str = include_str!("../card/precision-bound.md");

fn f(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.4}")
    }
}

/// Fills the `{{name}}` fields of `template`. Every field must be given and every value used.
pub fn render(
    name: &'static str,
    template: &str,
    fields: &[(&str, String)],
) -> Result<String, TrainError> {
    let err = |why: String| TrainError::Card {
        template: name,
        why,
    };
    let mut out = String::with_capacity(template.len() * 2);
    let mut used = vec![false; fields.len()];
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or_else(|| {
            err(format!(
                "unclosed field at byte {}",
                template.len() - rest.len() + i
            ))
        })?;
        let key = &after[..j];
        let k = fields
            .iter()
            .position(|(n, _)| *n == key)
            .ok_or_else(|| err(format!("field {{{{{key}}}}} is not filled by the writer")))?;
        used[k] = true;
        out.push_str(&fields[k].1);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    if let Some(k) = used.iter().position(|u| !u) {
        return Err(err(format!(
            "the writer fills {{{{{}}}}}, which the template does not name",
            fields[k].0
        )));
    }
    Ok(out)
}

/// Renders MODEL_CARD.md.
pub fn model_card(
    model: &Model,
    eval: Option<&EvalReport>,
    opts: &TrainOptions,
) -> Result<String, TrainError> {
    let m = &model.manifest;
    let cross_source = match eval.and_then(|e| e.cross_source.as_ref()) {
        Some(cs) => render(
            "cross-source.md",
            CROSS_SOURCE,
            &[
                ("table", crate::crosseval::markdown(cs)),
                ("notes", CROSS_SOURCE_NOTES.to_string()),
            ],
        )?,
        None => String::new(),
    };
    let data_rows: String = m
        .data
        .iter()
        .map(|d| {
            format!(
                "| {} | {} | {} | `{}` |\n",
                d.kind,
                d.name,
                d.scripts,
                &d.sha256[..16.min(d.sha256.len())]
            )
        })
        .collect();
    let evaluation = match eval {
        Some(r) => evaluation_section(r)?,
        None => EVALUATION_NOT_RUN.to_string(),
    };
    let precision_bound = match eval {
        Some(r) if r.false_positives == 0 && r.benign_scripts > 0 => {
            // Rule of three: with no false positive in n scripts, FPR <= 3/n at 95%.
            let fpr = 3.0 / r.benign_scripts as f64;
            render(
                "precision-bound.md",
                PRECISION_BOUND,
                &[
                    ("benign_scripts", r.benign_scripts.to_string()),
                    (
                        "precision",
                        format!(
                            "{:.3}",
                            metrics::precision_at_prevalence(r.recall_at_threshold, fpr, 1e-3)
                        ),
                    ),
                ],
            )?
        }
        _ => String::new(),
    };
    let l = ward_ml::features::Limits::default();
    let extra: String = opts
        .extra_benign_dirs
        .iter()
        .map(|d| format!(" --extra-benign {}", d.display()))
        .collect();
    render(
        "model-card.md",
        MODEL_CARD,
        &[
            ("name", m.name.clone()),
            ("model_id", model.id().to_string()),
            ("model_bytes", model.to_bytes().len().to_string()),
            ("format_version", m.format_version.to_string()),
            ("feature_set_version", m.feature_set_version.clone()),
            ("feature_set_hash", m.feature_set_hash[..16].to_string()),
            ("threshold", format!("{:.4}", m.threshold)),
            ("threshold_rule", m.threshold_rule.clone()),
            ("cross_source", cross_source),
            ("n_signals", ward_ml::features::N_SIGNALS.to_string()),
            ("behaviour_span", (2 * ward_ml::features::CHUNK).to_string()),
            (
                "group_region_kib",
                ((ward_ml::features::GROUP_REGION_CHUNKS * ward_ml::features::CHUNK) >> 10)
                    .to_string(),
            ),
            ("max_depth", l.max_depth.to_string()),
            ("max_layers", l.max_layers.to_string()),
            ("max_decoded_kib", (l.max_decoded >> 10).to_string()),
            ("max_input_kib", (l.max_input >> 10).to_string()),
            (
                "max_scored_mib",
                (ward_ml::features::MAX_SCORED >> 20).to_string(),
            ),
            ("data_rows", data_rows),
            ("cluster_cap", opts.cluster_cap.to_string()),
            ("template_cap", opts.template_cap.to_string()),
            ("benign_group_cap", opts.benign_group_cap.to_string()),
            (
                "hard_negative_weight",
                opts.hard_negative_weight.to_string(),
            ),
            (
                "plain_variant_weight",
                opts.plain_variant_weight.to_string(),
            ),
            ("benign_ratio", opts.benign_ratio.to_string()),
            ("evaluation", evaluation),
            ("precision_bound", precision_bound),
            ("extra_benign_flags", extra),
        ],
    )
}

/// The grouped evaluation's section.
fn evaluation_section(r: &EvalReport) -> Result<String, TrainError> {
    let mut metric_rows = String::new();
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
        metric_rows.push_str(&format!("| {k} | {v} |\n"));
    }
    let category_rows: String = r
        .by_category
        .iter()
        .map(|c| {
            format!(
                "| {} | {} | {} | {} |\n",
                c.category,
                if c.label == 1 { "malicious" } else { "benign" },
                c.n,
                c.errors
            )
        })
        .collect();
    let top_benign_rows: String = r
        .top_benign
        .iter()
        .take(10)
        .map(|b| format!("| {} | {:.4} | {:.4} |\n", b.id, b.score, b.threshold))
        .collect();
    let weakest_cluster_rows: String = r
        .weakest_clusters
        .iter()
        .take(10)
        .map(|(c, n, rec)| format!("| {c} | {n} | {rec:.3} |\n"))
        .collect();
    let missed_runtime = if r.missed_runtime.is_empty() {
        String::new()
    } else {
        let rows: String = r
            .missed_runtime
            .iter()
            .take(15)
            .map(|m| format!("- {} (score {:.3})\n", m.id, m.score))
            .collect();
        render("missed-runtime.md", MISSED_RUNTIME, &[("rows", rows)])?
    };
    render(
        "evaluation.md",
        EVALUATION,
        &[
            ("folds", r.folds.to_string()),
            ("pack_scripts", r.pack_scripts.to_string()),
            ("pack_clusters", r.pack_clusters.to_string()),
            ("runtime_scripts", r.runtime_scripts.to_string()),
            ("runtime_templates", r.runtime_templates.to_string()),
            ("benign_scripts", r.benign_scripts.to_string()),
            ("benign_groups", r.benign_groups.to_string()),
            ("metric_rows", metric_rows),
            ("fold_thresholds", format!("{:?}", r.fold_thresholds)),
            (
                "benign_groups_with_fp",
                if r.benign_groups_with_fp.is_empty() {
                    "none".to_string()
                } else {
                    r.benign_groups_with_fp.join(", ")
                },
            ),
            ("category_rows", category_rows),
            ("top_benign_rows", top_benign_rows),
            ("weakest_cluster_rows", weakest_cluster_rows),
            ("missed_runtime", missed_runtime),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_fields_and_refuses_strays() {
        let ok = render(
            "t",
            "a {{x}} b {{y}}.",
            &[("x", "1".into()), ("y", "2".into())],
        );
        assert_eq!(ok.unwrap(), "a 1 b 2.");
        assert!(render("t", "a {{x}} {{z}}", &[("x", "1".into())]).is_err());
        assert!(render("t", "a {{x}}", &[("x", "1".into()), ("y", "2".into())]).is_err());
        assert!(render("t", "a {{x", &[("x", "1".into())]).is_err());
    }

    #[test]
    fn every_card_template_renders() {
        // A blank model with no evaluation: the skeleton and the not-run section.
        let m = Model::new(
            ward_ml::model::blank_manifest("t", 0.9),
            0.0,
            vec![0.0; ward_ml::features::DIM],
        );
        let card = model_card(&m, None, &TrainOptions::default()).unwrap();
        assert!(card.starts_with("# Model card: t\n"));
        assert!(card.contains("## Evaluation\n\nNot run"));
        assert!(!card.contains("{{"), "{card}");
        for (name, t) in [
            ("cross-source.md", CROSS_SOURCE),
            ("evaluation.md", EVALUATION),
            ("missed-runtime.md", MISSED_RUNTIME),
            ("precision-bound.md", PRECISION_BOUND),
        ] {
            assert!(t.contains("{{"), "{name} has fields");
        }
        assert!(
            !CROSS_SOURCE_NOTES.contains("{{"),
            "the notes are prose only"
        );
    }
}
