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

/// `ward serve --db postgres://...` serves the PostgreSQL store; two collectors over one
/// database answer the same (stateless collectors behind a load balancer).
#[test]
fn serve_selects_postgres_by_url_and_two_collectors_share_it() {
    let test = "serve_selects_postgres_by_url_and_two_collectors_share_it";
    let Some(pg) = ward_testkit::postgres::TempPostgres::start_or_skip(test) else {
        return;
    };
    // Findings from a replay (into SQLite), copied into PostgreSQL through the store trait.
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
    use ward_store::FindingStore;
    let all = ward_store::SqliteStore::open(&db)
        .unwrap()
        .list(&ward_store::ListQuery::default())
        .unwrap()
        .findings;
    assert_eq!(all.len(), 2);
    let url = pg.url();
    let sum = ward_store::PgStore::open(&url)
        .unwrap()
        .upsert_many(&all)
        .unwrap();
    assert_eq!(sum.inserted, 2);

    let serve = || {
        let mut child = Command::new(WARD)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &url])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let console = common::console_url(std::iter::from_fn(|| {
            let l = lines.next()?;
            if let Ok(l) = &l {
                said.push_str(l);
                said.push('\n');
            }
            Some(l)
        }));
        // Keep reading stderr (what it says when it stops) so that it never writes to a
        // closed pipe.
        let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        (child, console, said, rest)
    };
    let (mut a, url_a, said, rest_a) = serve();
    let (mut b, url_b, _, _) = serve();
    // It says where it serves from, without a password.
    assert!(
        said.contains("serving findings from postgres://ward@127.0.0.1:"),
        "{said}"
    );
    let id = all[0].id().to_string();
    let resps: Vec<String> = [&url_a, &url_b]
        .iter()
        .flat_map(|u| {
            [
                common::get(u, "/v1/findings?pageSize=1"),
                common::get(u, &format!("/v1/findings/{id}")),
                common::get(
                    u,
                    "/v1/findings?filter=severity%3E%3DHIGH%20containerName%3Anope",
                ),
            ]
        })
        .collect();
    // A collector stops cleanly on SIGTERM (its store is closed off the async runtime).
    // SAFETY: signalling our own child.
    unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
    let status = a.wait().unwrap();
    let _ = b.kill();
    let _ = b.wait();
    let rest_a = rest_a.join().unwrap().join("\n");
    assert!(
        status.success(),
        "ward serve on SIGTERM: {status}: {rest_a}"
    );
    assert!(!rest_a.contains("panicked"), "{rest_a}");
    for r in resps.iter().step_by(3) {
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("\"totalSize\":2"), "{r}");
        assert!(r.contains("\"nextPageToken\""), "{r}");
    }
    for r in resps.iter().skip(1).step_by(3) {
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(&id), "{r}");
    }
    for r in resps.iter().skip(2).step_by(3) {
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("\"totalSize\":0"), "{r}");
    }
}
