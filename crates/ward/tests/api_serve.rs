//! `ward serve` as a process: refuses non-loopback without tokens, serves a replayed database.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

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
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut url = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("ward: console: ") {
            url = u.to_string();
            break;
        }
    }
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(url.contains("/#token="), "{url}");
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/findings?pageSize=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"totalSize\":2"), "{resp}");
    assert!(resp.contains("content-security-policy"), "{resp}");
}
