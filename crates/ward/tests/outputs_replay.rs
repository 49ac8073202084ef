//! `ward replay` through the same driver as the agent: outputs with and without a store.

use std::path::{Path, PathBuf};
use std::process::Command;

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn replay_sends_each_new_finding_to_every_output_with_or_without_a_store() {
    let trace = repo().join("testdata/traces/rce-relay-python.jsonl");
    for with_db in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (ocsf, scc) = (dir.path().join("o.jsonl"), dir.path().join("s.jsonl"));
        let mut cmd = Command::new(WARD);
        cmd.arg("replay")
            .arg("--output")
            .arg(format!("ocsf:{}", ocsf.display()))
            .arg("--output")
            .arg(format!("jsonl:{}", scc.display()));
        if with_db {
            cmd.arg("--db").arg(dir.path().join("w.db"));
        }
        let out = cmd.arg(&trace).env_remove("WARD_DB").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!printed.is_empty());
        let (o, s) = (lines(&ocsf), lines(&scc));
        let names = |v: &[serde_json::Value], k: &dyn Fn(&serde_json::Value) -> String| {
            let mut n: Vec<String> = v.iter().map(k).collect();
            n.sort();
            n
        };
        let by_name = |v: &serde_json::Value| v["name"].as_str().unwrap().to_string();
        if with_db {
            // Through the outbox: each finding once, in its state when the store committed it.
            assert_eq!(names(&s, &by_name), names(&printed, &by_name));
        } else {
            assert_eq!(s, printed, "the SCC output is exactly what replay prints");
        }
        assert_eq!(
            names(&o, &|v| v["unmapped"]["scc_name"]
                .as_str()
                .unwrap()
                .to_string()),
            names(&printed, &by_name)
        );
        assert!(o.iter().all(|v| v["class_uid"] == 2004));
        assert!(err.contains("sent") && err.contains("dropped 0"), "{err}");
    }
}
