//! The CRI client against a real containerd (Debian's `containerd` package), started on a
//! private socket, root and state directory. Needs root and the `cri` feature:
//! `cargo test -p ward-enrich --features cri --test cri_live`. Skipped (with a line on stderr)
//! when containerd is not installed or not root.
//!
//! What it checks: HTTP/2 + gRPC framing + status handling against the real server. An
//! unknown container answers gRPC NOT_FOUND, which the client reports as not found. (A
//! positive lookup needs a running CRI pod, i.e. a pause image, which cannot be pulled
//! offline here.)
#![cfg(feature = "cri")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn containerd_answers_container_status() {
    // /proc/self is owned by the effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if !root
        || Command::new("containerd")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("SKIP containerd_answers_container_status: needs root and containerd");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("containerd.sock");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\n[grpc]\n  address = \"{}\"\n",
            dir.path().join("root").display(),
            dir.path().join("state").display(),
            sock.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("containerd")
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // The CRI plugin starts after the socket appears: retry until it answers NOT_FOUND.
    let result = loop {
        let r = ward_enrich::cri::cri_inspect(&sock, &"e".repeat(64), Duration::from_secs(2));
        match &r {
            Err(e) if e.is_not_found() => break r,
            _ if Instant::now() >= deadline => break r,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let e = result.expect_err("an unknown container cannot be found");
    assert!(e.is_not_found(), "{e}");
}
