//! `ward serve` and `ward agent` on a damaged store (issue 16, item 10): a corrupt file is a
//! startup error saying so (never "serving" then failing), `--recreate-corrupt-db` moves it
//! aside and starts empty, and a read-only directory is named once.

mod common;

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A real store from a replay, with pages 2-5 overwritten.
fn corrupt_db(dir: &Path) -> PathBuf {
    let db = dir.join("findings.db");
    let st = Command::new(WARD)
        .current_dir(repo())
        .args(["replay", "-q", "--db"])
        .arg(&db)
        .arg("testdata/traces/rce-bash-dev-tcp.jsonl")
        .status()
        .unwrap();
    assert!(st.success());
    // The replay closed the store; nothing is left in a WAL.
    assert!(std::fs::metadata(db.with_extension("db-wal")).map_or(true, |m| m.len() == 0));
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(4096)).unwrap();
    f.write_all(&[0xA5u8; 4 * 4096]).unwrap();
    db
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_corrupt_store_stops_serve_and_agent_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let db = corrupt_db(dir.path());
    for cmd in [
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["agent", "--output", "none"],
    ] {
        let out = Command::new(WARD)
            .args(&cmd)
            .arg("--db")
            .arg(&db)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        let want = format!("ward: error: database {} is corrupt: ", db.display());
        // Warnings about the configuration may come first; the error is a line of its own.
        assert!(err.lines().any(|l| l.starts_with(&want)), "{cmd:?}: {err}");
        assert!(err.contains("--recreate-corrupt-db"), "{err}");
        assert!(
            !err.contains("serving") && !err.contains("console"),
            "{err}"
        );
        let not_warnings = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains(" WARN "))
            .count();
        assert_eq!(not_warnings, 1, "one line (besides warnings): {err}");
    }
}

/// A child process killed when the test ends, also when it fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn recreate_corrupt_db_moves_it_aside_and_serves_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = corrupt_db(dir.path());
    let damaged = std::fs::read(&db).unwrap();
    let mut child = Killed(
        Command::new(WARD)
            .args([
                "serve",
                "--recreate-corrupt-db",
                "--listen",
                "127.0.0.1:0",
                "--db",
            ])
            .arg(&db)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let prefix = format!("ward: database {} was corrupt (quick_check: ", db.display());
    assert!(first.starts_with(&prefix), "{first}");
    let moved = first
        .split("; moved it to ")
        .nth(1)
        .and_then(|r| r.strip_suffix(" and created an empty store"))
        .unwrap_or_else(|| panic!("{first}"));
    assert!(
        moved.starts_with(&format!("{}.corrupt-20", db.display())),
        "{moved}"
    );
    assert_eq!(std::fs::read(moved).unwrap(), damaged);
    let url = common::console_url(lines);
    let resp = common::get(&url, "/v1/findings");
    drop(child);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"totalSize\":0"), "{resp}");
}

#[test]
fn a_read_only_directory_is_said_once() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        eprintln!("SKIPPED: needs root for a read-only bind mount");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mount = |args: &[&str]| {
        assert!(Command::new("mount")
            .args(args)
            .arg(&ro)
            .status()
            .unwrap()
            .success())
    };
    mount(&["--bind", ro.to_str().unwrap()]);
    mount(&["-o", "remount,bind,ro"]);
    let db = ro.join("findings.db");
    let out = Command::new(WARD)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&ro).status();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "ward: error: cannot open database {}: the directory {} is on a read-only file system (unable to open database file)",
            db.display(),
            ro.display()
        )
    );
}
