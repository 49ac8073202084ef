//! `[detectors.rules]` through the real `ward` binary (no containers): `ward replay` loads the
//! same rules as the agent, with the user's directories and per-rule switches, and refuses to
//! start on any problem; `ward findings` filters by a rule category's API name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn ward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .current_dir(repo())
        .env_remove("WARD_DB")
        .output()
        .expect("run ward")
}

fn replay(config: &str, dir: &Path) -> Output {
    let cfg = dir.join("ward.toml");
    std::fs::write(&cfg, config).unwrap();
    ward(&[
        "replay",
        "--final",
        "--config",
        cfg.to_str().unwrap(),
        "testdata/traces/rules.jsonl",
    ])
}

fn rule_ids(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|f| f["sourceProperties"]["Rule_Id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

const OWN_RULE: &str = r#"
[[rule]]
id = "MY_SHELL_UNDER_CATATONIT"
category = "Mine: Shell Under The Container's Init"
severity = "LOW"
tactic = "EXECUTION"
techniques = ["T1059.004"]
description = "A shell under catatonit."
next_steps = "Check the entrypoint."
[rule.when]
basename = ["bash"]
parent = { basename = ["catatonit"] }
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/bash", parent = { exe = "/usr/bin/catatonit" } }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/bash", parent = { exe = "/usr/bin/tini" } }
"#;

#[test]
fn rules_are_on_by_default_and_can_be_switched_off() {
    let d = tempfile::tempdir().unwrap();
    let all = rule_ids(&replay("", d.path()));
    assert_eq!(all.len(), 8, "{all:?}");
    assert!(all.contains(&"UNEXPECTED_CHILD_SHELL".to_string()));
    // One rule off.
    let some = rule_ids(&replay(
        "[detectors.rules.rules]\nUNEXPECTED_CHILD_SHELL = false\n",
        d.path(),
    ));
    assert_eq!(some.len(), 7, "{some:?}");
    assert!(!some.contains(&"UNEXPECTED_CHILD_SHELL".to_string()));
    // The detector off.
    assert!(rule_ids(&replay("[detectors.rules]\nenabled = false\n", d.path())).is_empty());
}

#[test]
fn a_users_rule_directory_adds_rules_and_exceptions() {
    let d = tempfile::tempdir().unwrap();
    let rules = d.path().join("rules.d");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("mine.toml"), OWN_RULE).unwrap();
    std::fs::write(
        rules.join("except.toml"),
        "[[exception]]\nrule = \"SUSPICIOUS_CRYPTO_MINING_ACTIVITY_USING_STRATUM_PROTOCOL\"\n\
         reason = \"our pool test\"\nwhen = { argv = { any = { contains = [\"pool.example.net\"] } } }\n",
    )
    .unwrap();
    let ids = rule_ids(&replay(
        &format!("[detectors.rules]\ndirs = [\"{}\"]\n", rules.display()),
        d.path(),
    ));
    assert!(
        ids.contains(&"MY_SHELL_UNDER_CATATONIT".to_string()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"SUSPICIOUS_CRYPTO_MINING_ACTIVITY_USING_STRATUM_PROTOCOL".to_string()),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 8, "{ids:?}");
}

#[test]
fn every_problem_stops_replay_with_its_place() {
    let d = tempfile::tempdir().unwrap();
    let rules = d.path().join("rules.d");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("bad.toml"),
        OWN_RULE.replace("basename = [\"bash\"]", "basename = { regex = [\"(\"] }"),
    )
    .unwrap();
    let cases = [
        (
            format!("[detectors.rules]\ndirs = [\"{}\"]\n", rules.display()),
            format!("{}:", rules.join("bad.toml").display()),
        ),
        (
            "[detectors.rules]\ndirs = [\"/nonexistent/ward-rules\"]\n".to_string(),
            "/nonexistent/ward-rules".to_string(),
        ),
        (
            "[detectors.rules.rules]\nNO_SUCH_RULE = false\n".to_string(),
            "NO_SUCH_RULE".to_string(),
        ),
    ];
    for (config, want) in cases {
        let out = replay(&config, d.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}: {err}");
        assert!(err.contains(&want), "{config}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{config}: no finding before the check"
        );
    }
}

/// A rule may not take a built-in category's name: `ward rules check` and the loader of
/// `ward replay` (and the agent) say which rule, where.
#[test]
fn a_rule_naming_a_built_in_category_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let rules = d.path().join("rules.d");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("mine.toml"),
        OWN_RULE.replace("Mine: Shell Under The Container's Init", "Reverse Shell"),
    )
    .unwrap();
    let place = format!(
        "{}:2: rule MY_SHELL_UNDER_CATATONIT",
        rules.join("mine.toml").display()
    );
    let check = ward(&["rules", "check", rules.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&place) && err.contains("REVERSE_SHELL"),
        "{err}"
    );
    let out = replay(
        &format!("[detectors.rules]\ndirs = [\"{}\"]\n", rules.display()),
        d.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&place), "{err}");
}

#[test]
fn findings_filter_by_a_rule_categorys_api_name() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("ward.db");
    let out = ward(&[
        "replay",
        "--quiet",
        "--db",
        db.to_str().unwrap(),
        "testdata/traces/rules.jsonl",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for filter in [
        "category=UNEXPECTED_CHILD_SHELL",
        "category=\"Unexpected Child Shell\"",
    ] {
        let out = ward(&[
            "findings",
            "list",
            "--db",
            db.to_str().unwrap(),
            "--format",
            "json",
            "--filter",
            filter,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(lines.len(), 1, "{filter}: {lines:?}");
        assert!(lines[0].contains("\"Rule_Id\":\"UNEXPECTED_CHILD_SHELL\""));
    }
}
