//! Measurement (not a test): SQLite vs PostgreSQL, side by side in one run, over the same
//! synthetic findings: insert throughput (`upsert_many` batches of 1000), aggregation
//! updates, replays, and list/count latency for the API's query shapes.
//!
//!     cargo bench -p ward-store --bench backends
//!
//! Environment: `WARD_BENCH_N` (findings, default 200000), `WARD_BENCH_ITERS` (samples per
//! query, default 50), `WARD_BENCH_WRITE_PHASES` (1: inserts only, 2: and the aggregation
//! updates, default 3: and the replays), `WARD_BENCH_PG_URL` (an existing PostgreSQL database to use, emptied
//! first; default: a private server from `ward_testkit::postgres` with `fsync=on` and
//! `synchronous_commit=off`, the durability SQLite's WAL mode with `synchronous=NORMAL`
//! gives: no corruption on a crash, the last commits may be lost on power failure).
//! The SQLite file lives in a temp dir under `target/` and is removed afterwards.

mod common;

use common::*;
use std::time::Instant;
use ward_event::Finding;
use ward_store::{FindingStore, ListQuery, PgStore, SqliteStore};

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Inserts, updates and replays `n` findings (the first `phases` of those); returns
/// findings/s for each phase (NaN: not run).
fn writes(store: &dyn FindingStore, n: u64, phases: usize) -> [f64; 3] {
    let batch = 1000u64;
    let mut out = [f64::NAN; 3];
    for (phase, slot) in out.iter_mut().enumerate().take(phases) {
        let t = Instant::now();
        let mut i = 0;
        while i < n {
            let fs: Vec<Finding> = (i..(i + batch).min(n))
                .map(|j| match phase {
                    0 => synthetic(j, n),
                    // aggregation: later eventTime, higher count
                    1 => repeated(j, n, 1),
                    // the same batch again (an agent retrying after a lost answer)
                    _ => repeated(j, n, 1),
                })
                .collect();
            store.upsert_many(&fs).expect("upsert");
            i += batch;
        }
        *slot = n as f64 / t.elapsed().as_secs_f64();
    }
    out
}

/// SQLite's file and WAL, in bytes.
fn sqlite_bytes(dir: &std::path::Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            std::fs::metadata(dir.join(format!("bench.db{suffix}")))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

/// The PostgreSQL database's size (tables, indexes, TOAST), in bytes.
fn pg_bytes(server: &ward_testkit::postgres::TempPostgres) -> u64 {
    let out = server
        .psql("ward", "SELECT pg_database_size(current_database())")
        .unwrap_or_else(|e| panic!("pg_database_size: {e}"));
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("pg_database_size {out:?}: {e}"))
}

fn main() {
    let n: u64 = env_num("WARD_BENCH_N", 200_000);
    let iters: usize = env_num("WARD_BENCH_ITERS", 50);
    // 1: inserts only (a 1M-finding store for the list figures without an hour of updates).
    let phases: usize = env_num("WARD_BENCH_WRITE_PHASES", 3).clamp(1, 3);

    let base = format!("{}/../../target", env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::create_dir_all(&base);
    let dir = tempfile::Builder::new()
        .prefix("ward-store-backends-")
        .tempdir_in(&base)
        .expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("bench.db")).expect("sqlite");

    let given = std::env::var("WARD_BENCH_PG_URL").ok();
    let pg_server = given.is_none().then(|| {
        ward_testkit::postgres::TempPostgres::start_with(&[
            ("fsync", "on"),
            ("synchronous_commit", "off"),
            ("shared_buffers", "256MB"),
        ])
        .expect("start PostgreSQL (apt-get install postgresql)")
    });
    let url = given.unwrap_or_else(|| pg_server.as_ref().expect("started above").url());
    let pg = PgStore::open(&url).expect("postgres");
    if pg.count("").unwrap_or(0) > 0 {
        eprintln!("{} is not empty; use an empty database", pg.url());
        std::process::exit(1);
    }

    let sqlite_empty = sqlite_bytes(dir.path());
    let pg_empty = pg_server.as_ref().map(pg_bytes);
    let stores: [(&str, &dyn FindingStore); 2] = [("sqlite", &sqlite), ("postgres", &pg)];
    println!("\n== writes: {n} findings, batches of 1000 (findings/s) ==");
    println!(
        "{:<10} {:>12} {:>12} {:>12}",
        "store", "insert", "update", "replay"
    );
    for (name, store) in stores {
        let [ins, upd, rep] = writes(store, n, phases);
        println!("{name:<10} {ins:>12.0} {upd:>12.0} {rep:>12.0}");
    }

    let shapes: &[(&str, &str, &str)] = &[
        ("newest page", "", ""),
        ("severity filter", "severity>=HIGH", ""),
        ("one container", "containerName=web-1005", ""),
        ("namespace + state", "ns=ns-7 state=ACTIVE", ""),
        ("node", "node=node-42", ""),
        ("cluster", "cluster=cluster-3", ""),
        (
            "cluster + project + node",
            "cluster=cluster-2 project=shop node=node-42",
            "",
        ),
        ("contains", "image:\"team-3/\"", ""),
        ("by severity", "", "severity desc, eventTime desc"),
        ("time range", "eventTime>=2026-12-01", "eventTime"),
    ];
    for (name, store) in stores {
        println!("\n== list, page of 100 ({name}, {n} findings) ==");
        for (label, filter, order) in shapes {
            measure(&format!("{name}: {label}"), iters, || {
                store
                    .list(&ListQuery {
                        filter: filter.to_string(),
                        order_by: order.to_string(),
                        page_size: 100,
                        ..Default::default()
                    })
                    .expect("list")
                    .findings
                    .len()
            });
        }
        // Page 2 through the keyset token.
        let first = store
            .list(&ListQuery {
                page_size: 100,
                ..Default::default()
            })
            .expect("list");
        let token = first.next_page_token.unwrap_or_default();
        measure(&format!("{name}: second page (token)"), iters, || {
            store
                .list(&ListQuery {
                    page_size: 100,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .expect("list")
                .findings
                .len()
        });
        measure(&format!("{name}: count severity>=HIGH"), iters, || {
            store.count("severity>=HIGH").expect("count") as usize
        });
    }

    // Storage per finding (for docs/fleet.md's sizing): what the findings added to SQLite's
    // file with its WAL, and to PostgreSQL's database (tables, indexes, TOAST) when the bench
    // started the server.
    println!("\n== storage, {n} findings (growth over the empty store) ==");
    let row = |name: &str, bytes: u64| {
        println!(
            "{name:<10} {:>10.1} MiB {:>8.0} bytes/finding",
            bytes as f64 / (1 << 20) as f64,
            bytes as f64 / n as f64
        )
    };
    row(
        "sqlite",
        sqlite_bytes(dir.path()).saturating_sub(sqlite_empty),
    );
    match (&pg_server, pg_empty) {
        (Some(server), Some(empty)) => row("postgres", pg_bytes(server).saturating_sub(empty)),
        _ => println!("postgres   (WARD_BENCH_PG_URL given: not measured)"),
    }
}
