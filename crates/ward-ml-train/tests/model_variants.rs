//! The committed model on fresh variants of the templates (the templates are this crate's).
use std::path::PathBuf;

use ward_ml::{Model, PythonClassifier, ScriptClassifier};
use ward_ml_train::templates::{self, variants};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> Model {
    Model::load(&root().join("../../models/python/model.bin")).expect("committed model loads")
}

#[test]
fn fresh_variants_are_separated() {
    // Fresh seeds: new names, hosts, ports and wrapper draws. The templates themselves were
    // in training, so this is a smoke test of the shipped model, not a metric.
    let clf = PythonClassifier::new(model());
    let dir = ward_ml_train::train::templates_dir();
    let mal = templates::load_templates(&dir.join("runtime-templates.tpl.gz")).unwrap();
    let ben = templates::load_templates(&dir.join("benign-templates.tpl.gz")).unwrap();
    let (mut hit, mut n) = (0, 0);
    for t in &mal {
        for v in variants(t, 15, 0xfeed, true) {
            n += 1;
            hit += clf.classify(v.text.as_bytes()).malicious as usize;
        }
    }
    let (mut fp, mut nb) = (0, 0);
    for t in &ben {
        for v in variants(t, 4, 0xfeed, false) {
            nb += 1;
            fp += clf.classify(v.text.as_bytes()).malicious as usize;
        }
    }
    assert!(
        hit as f64 >= 0.9 * n as f64,
        "{hit}/{n} malicious variants flagged"
    );
    assert!(
        fp as f64 <= 0.05 * nb as f64,
        "{fp}/{nb} benign variants flagged"
    );
}
