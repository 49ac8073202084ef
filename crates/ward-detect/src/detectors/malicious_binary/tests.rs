use crate::testing::{intel, run, run_with, CID};
use crate::DetectorsConfig;
use ward_event::build::*;
use ward_event::{Category, Layer, ScriptInfo, ScriptKind, Sha256};

fn sha(byte: u8) -> Sha256 {
    Sha256([byte; 32])
}

fn feed() -> std::sync::Arc<ward_intel::IntelSet> {
    intel(&format!(
        "{};Test.Miner.A\n{};Test.Dropper.B\n",
        sha(0xaa).to_hex(),
        sha(0xbb).to_hex()
    ))
}

fn exec_with(pid: u32, layer: Layer, hash: Sha256) -> ward_event::Event {
    ExecBuilder::new(pid as u64, pid, 1, "/usr/local/bin/payload")
        .container(CID, "app", "registry.example/app:2")
        .sha256(hash)
        .layer(layer)
        .event()
}

#[test]
fn category_follows_the_layer() {
    for (layer, cat) in [
        (Layer::Image, Category::BuiltInMaliciousBinaryExecuted),
        (Layer::Added, Category::AddedMaliciousBinaryExecuted),
        (Layer::Modified, Category::ModifiedMaliciousBinaryExecuted),
        (Layer::Memfd, Category::AddedMaliciousBinaryExecuted),
        (Layer::NotOverlay, Category::AddedMaliciousBinaryExecuted),
    ] {
        let r = run_with(
            &DetectorsConfig::default(),
            feed(),
            None,
            vec![exec_with(10, layer, sha(0xaa))],
        );
        let f = r.only(cat);
        assert_eq!(f.severity, ward_event::finding::Severity::Critical);
        assert_eq!(f.source_str("Intel_Feed"), Some("test-feed"));
        assert_eq!(f.source_str("Intel_Comment"), Some("Test.Miner.A"));
        let vt = format!("https://www.virustotal.com/gui/file/{}", sha(0xaa).to_hex());
        assert_eq!(f.external_uri.as_deref(), Some(vt.as_str()));
        assert_eq!(f.source_properties["VirusTotal_Links"][0], vt.as_str());
        assert_eq!(
            f.processes[0].binary.as_ref().unwrap().sha256,
            Some(sha(0xaa).to_hex())
        );
    }
}

#[test]
fn unknown_hashes_and_empty_intel_are_quiet() {
    let r = run_with(
        &DetectorsConfig::default(),
        feed(),
        None,
        vec![exec_with(10, Layer::Image, sha(0x01))],
    );
    assert!(r.findings.is_empty());
    assert!(run(vec![exec_with(10, Layer::Image, sha(0xaa))])
        .findings
        .is_empty());
}

#[test]
fn repeats_aggregate_per_hash_and_container() {
    let ev = (0..5)
        .map(|i| exec_with(10 + i, Layer::Image, sha(0xaa)))
        .chain([exec_with(20, Layer::Image, sha(0xbb))])
        .collect();
    let r = run_with(&DetectorsConfig::default(), feed(), None, ev);
    assert_eq!(r.findings.len(), 2);
    assert_eq!(r.findings[0].count(), 5);
    assert_eq!(r.findings[1].count(), 1);
    assert_eq!(r.updates, 6);
}

#[test]
fn scripts_are_checked_too() {
    let script = ScriptInfo {
        kind: ScriptKind::Shebang,
        path: Some("/tmp/drop.sh".into()),
        size: 120,
        sha256: Some(sha(0xbb)),
        contents: Some("#!/bin/sh\nwget ...".into()),
        contents_truncated: false,
        layer: Some(Layer::Added),
        scoring_text: None,
    };
    let ev = ExecBuilder::new(1, 10, 1, "/tmp/drop.sh")
        .binary_path("/bin/dash")
        .args(&["/bin/sh", "/tmp/drop.sh"])
        .container(CID, "app", "img")
        .script(script)
        .event();
    let r = run_with(&DetectorsConfig::default(), feed(), None, vec![ev.clone()]);
    let f = r.only(Category::AddedMaliciousBinaryExecuted);
    assert_eq!(f.source_str("Matched_File"), Some("script"));
    let s = f.processes[0].script.as_ref().unwrap();
    assert_eq!(s.path.as_deref(), Some("/tmp/drop.sh"));
    assert_eq!(s.contents.as_deref(), Some("#!/bin/sh\nwget ..."));
    let mut cfg = DetectorsConfig::default();
    cfg.malicious_binary.check_scripts = false;
    assert!(run_with(&cfg, feed(), None, vec![ev]).findings.is_empty());
}
