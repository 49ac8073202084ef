use crate::testing::{run, run_with, CID};
use crate::DetectorsConfig;
use std::sync::Arc;
use ward_event::build::*;
use ward_event::{Category, ScriptClassifier, ScriptInfo, ScriptKind, Sha256, Verdict};

/// A deterministic classifier for exercising the detector's plumbing (the real model is
/// tested in ward-ml): scores 0.99 when the code contains the marker, else 0.01.
struct MarkerClassifier;

impl ScriptClassifier for MarkerClassifier {
    fn model_id(&self) -> &str {
        "marker-test"
    }
    fn classify(&self, script: &[u8]) -> Verdict {
        let hit = script.windows(6).any(|w| w == b"MARKER");
        Verdict {
            score: if hit { 0.99 } else { 0.01 },
            threshold: 0.5,
            malicious: hit,
            reasons: if hit {
                vec!["contains the test marker".into()]
            } else {
                vec![]
            },
        }
    }
}

fn python(
    pid: u32,
    kind: ScriptKind,
    path: Option<&str>,
    code: &str,
    truncated: bool,
) -> ward_event::Event {
    ExecBuilder::new(pid as u64, pid, 1, "/usr/bin/python3")
        .binary_path("/usr/bin/python3.11")
        .container(CID, "app", "img")
        .script(ScriptInfo {
            kind,
            path: path.map(str::to_string),
            size: code.len() as u64 + if truncated { 1000 } else { 0 },
            sha256: Some(Sha256([pid as u8; 32])),
            contents: Some(code.into()),
            contents_truncated: truncated,
            layer: None,
            scoring_text: None,
        })
        .event()
}

fn model() -> Option<Arc<dyn ScriptClassifier>> {
    Some(Arc::new(MarkerClassifier))
}

#[test]
fn reports_scored_scripts_with_their_fields() {
    let ev = vec![
        python(10, ScriptKind::Inline, None, "import os # MARKER", false),
        python(
            11,
            ScriptKind::File,
            Some("/tmp/x.py"),
            "print('hello')",
            false,
        ),
        python(
            12,
            ScriptKind::File,
            Some("/app/run.py"),
            "MARKER ...",
            true,
        ),
    ];
    let r = run_with(&DetectorsConfig::default(), Default::default(), model(), ev);
    assert_eq!(r.findings.len(), 2);
    let inline = &r.findings[0];
    assert_eq!(
        inline.category,
        Category::MaliciousPythonExecuted.display_name()
    );
    let s = inline.processes[0].script.as_ref().unwrap();
    assert_eq!(s.path, None, "no path for -c");
    assert_eq!(s.contents.as_deref(), Some("import os # MARKER"));
    assert_eq!(s.sha256, Some(Sha256([10; 32]).to_hex()));
    assert_eq!(inline.source_str("Model_Id"), Some("marker-test"));
    assert_eq!(
        inline.source_properties["Model_Score"]
            .as_f64()
            .map(|s| (s * 100.0).round()),
        Some(99.0)
    );
    assert_eq!(
        inline.source_properties["Model_Top_Reasons"][0],
        "contains the test marker"
    );
    let file = &r.findings[1];
    assert_eq!(
        file.processes[0].script.as_ref().unwrap().path.as_deref(),
        Some("/app/run.py")
    );
    assert_eq!(file.source_properties["Script_Contents_Truncated"], true);
}

#[test]
fn no_model_means_no_finding_and_threshold_override() {
    let ev = || vec![python(10, ScriptKind::Inline, None, "MARKER", false)];
    assert!(
        run(ev()).findings.is_empty(),
        "no keyword fallback without a model"
    );
    let mut cfg = DetectorsConfig::default();
    cfg.malicious_python.threshold = Some(0.995);
    assert!(run_with(&cfg, Default::default(), model(), ev())
        .findings
        .is_empty());
    // Non-Python interpreters are not scored.
    let sh = ExecBuilder::new(1, 10, 1, "/bin/sh")
        .script(ScriptInfo {
            kind: ScriptKind::Inline,
            path: None,
            size: 6,
            sha256: None,
            contents: Some("MARKER".into()),
            contents_truncated: false,
            layer: None,
            scoring_text: None,
        })
        .event();
    assert!(run_with(
        &DetectorsConfig::default(),
        Default::default(),
        model(),
        vec![sh]
    )
    .findings
    .is_empty());
}

#[test]
fn script_contents_are_capped_in_the_finding() {
    let big = format!("MARKER{}", "é".repeat(40_000));
    let r = run_with(
        &DetectorsConfig::default(),
        Default::default(),
        model(),
        vec![python(10, ScriptKind::File, Some("/a.py"), &big, false)],
    );
    let c = r.findings[0].processes[0]
        .script
        .as_ref()
        .unwrap()
        .contents
        .as_ref()
        .unwrap();
    assert!(c.len() <= 64 * 1024 && c.len() > 60 * 1024, "{}", c.len());
    assert_eq!(
        r.findings[0].source_properties["Script_Contents_Truncated"],
        true
    );
}

/// Issue 11, section 4: a `python -c` finding carries `script.sha256` of the literal, also
/// when the exec record has no `script` object or one without a hash (traces written so).
#[test]
fn a_python_c_literal_always_carries_its_sha256() {
    use sha2::Digest;
    let code = "import socket,os # MARKER";
    let want = Sha256(sha2::Sha256::digest(code.as_bytes()).into()).to_hex();
    let exec = |with_unhashed_script: bool| {
        let mut e = ExecBuilder::new(20, 20, 1, "/usr/bin/python3")
            .binary_path("/usr/bin/python3.11")
            .container(CID, "app", "img")
            .args(&["python3", "-c", code]);
        if with_unhashed_script {
            e = e.script(ScriptInfo {
                kind: ScriptKind::Inline,
                path: None,
                size: code.len() as u64,
                sha256: None,
                contents: Some(code.into()),
                contents_truncated: false,
                scoring_text: None,
                layer: None,
            });
        }
        e.build()
    };
    let bare = exec(false);
    assert!(bare.script.is_none());
    let mut unhashed = exec(true);
    for ev in [bare, unhashed.clone()] {
        let r = run_with(
            &DetectorsConfig::default(),
            Default::default(),
            model(),
            vec![ward_event::Event::Exec(Box::new(ev))],
        );
        let f = r.only(Category::MaliciousPythonExecuted);
        let s = f.processes[0].script.as_ref().unwrap();
        assert_eq!(s.sha256.as_deref(), Some(want.as_str()));
        assert_eq!(s.contents.as_deref(), Some(code));
        assert_eq!(s.size, Some(code.len() as u64));
    }
    // argv cut short: the literal may be incomplete, so no hash is claimed for it.
    unhashed.argv_truncated = true;
    let r = run_with(
        &DetectorsConfig::default(),
        Default::default(),
        model(),
        vec![ward_event::Event::Exec(Box::new(unhashed))],
    );
    let f = r.only(Category::MaliciousPythonExecuted);
    assert_eq!(f.processes[0].script.as_ref().unwrap().sha256, None);
}
