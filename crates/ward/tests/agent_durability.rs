//! The agent never loses a finding it made, and one store has one writer.
//!
//! * SIGKILL at many moments of a burst of findings: every finding that reached the JSON Lines
//!   output is in the store (the store is committed first).
//! * A second `ward agent` (or `ward replay --db`) on a store an agent writes is refused,
//!   naming the holder.
//!
//! The burst is host processes (no containers needed): copies of `/bin/true`, each made
//! distinct by a trailing comment so each has its own hash, all listed in a test intel feed,
//! so each exec is its own *Added Malicious Binary* finding. Needs root (the eBPF sensor).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use ward_store::{FindingStore, SqliteStore};
use ward_testkit::agent::{AgentOptions, WardAgent};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn payloads(dir: &Path, n: usize) -> (Vec<PathBuf>, PathBuf) {
    ward_testkit::payloads::distinct_binaries(dir, n, "durability")
}

/// Finding names in the agent's JSON Lines file (complete lines only).
fn jsonl_names(agent_dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(agent_dir.join("findings.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

fn start_agent(feed: &Path) -> WardAgent {
    WardAgent::start(
        Path::new(WARD),
        &AgentOptions {
            feeds: vec![feed.to_path_buf()],
            ..AgentOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn sigkill_during_a_burst_loses_no_finding_from_the_store() {
    if !ward_testkit::root_or_skip("sigkill_during_a_burst_loses_no_finding_from_the_store") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (bins, feed) = payloads(work.path(), 40);
    // Moments after the first finding appears in the JSON Lines file: at once, within the
    // first milliseconds (the store's old 100 ms batch window), and later in the burst.
    let delays_ms = [0u64, 0, 1, 2, 3, 4, 6, 8, 10, 13, 20, 40, 70, 100, 150, 250];
    let mut in_jsonl_total = 0;
    let mut missing_total = Vec::new();
    for (round, delay) in delays_ms.iter().enumerate() {
        let agent = start_agent(&feed);
        let dir = agent.dir().to_path_buf();
        // The burst: each payload exec'd once, back to back, from a thread.
        let burst_bins = bins.clone();
        let burst = std::thread::spawn(move || {
            for b in &burst_bins {
                let _ = Command::new(b).status();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while jsonl_names(&dir).is_empty() {
            assert!(
                Instant::now() < deadline,
                "round {round}: no finding within 20 s; agent log:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(*delay));
        agent.signal(libc::SIGKILL);
        let (status, dir) = agent.stop().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "round {round}: the agent ended another way: {status}"
        );
        burst.join().unwrap();
        let seen = jsonl_names(dir.path());
        let store = SqliteStore::open(dir.path().join("ward.db")).expect("the store reopens");
        let missing: Vec<&String> = seen
            .iter()
            .filter(|n| store.get(n).expect("reading the store").is_none())
            .collect();
        eprintln!(
            "round {round}: killed {delay} ms after the first finding; {} in JSON Lines, {} missing from the store",
            seen.len(),
            missing.len()
        );
        in_jsonl_total += seen.len();
        missing_total.extend(missing.into_iter().cloned());
    }
    assert!(
        in_jsonl_total >= delays_ms.len(),
        "too few findings to test"
    );
    assert!(
        missing_total.is_empty(),
        "{} of {in_jsonl_total} findings written to JSON Lines are not in the store after SIGKILL: {missing_total:?}",
        missing_total.len()
    );
}

#[test]
fn a_second_writer_on_the_same_store_is_refused_naming_the_holder() {
    if !ward_testkit::root_or_skip("a_second_writer_on_the_same_store_is_refused_naming_the_holder")
    {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (bins, feed) = payloads(work.path(), 1);
    let first = start_agent(&feed);
    let db = first.dir().join("ward.db");
    let holder = format!("pid {} (ward agent)", first.pid());

    let started = Instant::now();
    let second = Command::new(WARD)
        .args([
            "agent",
            "--output",
            "none",
            "--metrics-addr",
            "none",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second agent ran: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused only after {:?}",
        started.elapsed()
    );
    assert!(err.contains("already used by another writer"), "{err}");
    assert!(err.contains(&holder), "{err}");
    assert!(err.contains("ward.db.lock"), "{err}");
    assert!(!err.contains("ward agent: ready"), "{err}");

    let trace = work.path().join("empty.jsonl");
    std::fs::File::create(&trace)
        .unwrap()
        .write_all(b"{\"type\":\"header\",\"format\":\"ward-trace\",\"version\":1}\n")
        .unwrap();
    let replay = Command::new(WARD)
        .args(["replay", "--db"])
        .arg(&db)
        .arg(&trace)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&replay.stderr);
    assert!(!replay.status.success(), "replay wrote the store: {err}");
    assert!(err.contains(&holder), "{err}");

    // The first agent is unaffected and still reports; after it stops, the lock is free.
    let _ = Command::new(&bins[0]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.findings().is_empty() {
        assert!(Instant::now() < deadline, "first agent: {}", first.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    first.signal(libc::SIGKILL);
    let (_, dir) = first.stop().unwrap();
    let replay = Command::new(WARD)
        .args(["replay", "--db"])
        .arg(dir.path().join("ward.db"))
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "a killed agent's lock is released by the kernel: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
}
