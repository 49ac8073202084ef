//! `ward serve` as a process: refuses non-loopback without tokens, serves a replayed database.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn serve_refuses_a_public_address_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(WARD)
        .args(["serve", "--listen", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("w.db"))
        .env_remove("WARD_API_READ_TOKEN")
        .env_remove("WARD_API_WRITE_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without API tokens"), "{err}");
}

#[test]
fn serve_answers_on_loopback_after_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let st = Command::new(WARD)
        .current_dir(repo())
        .args([
            "replay",
            "-q",
            "--intel",
            "testdata/intel/example-feed.txt",
            "--db",
        ])
        .arg(&db)
        .arg("testdata/traces/rce-bash-dev-tcp.jsonl")
        .status()
        .unwrap();
    assert!(st.success());
    let mut child = Command::new(WARD)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = common::console_url(BufReader::new(child.stderr.take().unwrap()).lines());
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(url.contains("/#token="), "{url}");
    let resp = common::get(&url, "/v1/findings?pageSize=1");
    let _ = child.kill();
    let _ = child.wait();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"totalSize\":2"), "{resp}");
    assert!(resp.contains("content-security-policy"), "{resp}");
}
