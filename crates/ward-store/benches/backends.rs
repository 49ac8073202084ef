//! Measurement (not a test): SQLite vs PostgreSQL, side by side in one run, over the same
//! synthetic findings: insert throughput (`upsert_many` batches of 1000), aggregation
//! updates, replays, and list/count latency for the API's query shapes.
//!
//!     cargo bench -p ward-store --bench backends
//!
//! Environment: `WARD_BENCH_N` (findings, default 200000), `WARD_BENCH_ITERS` (samples per
//! query, default 50), `WARD_BENCH_PG_URL` (an existing PostgreSQL database to use, emptied
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

/// Inserts, updates and replays `n` findings; returns findings/s for each phase.
fn writes(store: &dyn FindingStore, n: u64) -> [f64; 3] {
    let batch = 1000u64;
    let mut out = [0.0; 3];
    for (phase, slot) in out.iter_mut().enumerate() {
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

fn main() {
    let n: u64 = env_num("WARD_BENCH_N", 200_000);
    let iters: usize = env_num("WARD_BENCH_ITERS", 50);

    let base = format!("{}/../../target", env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::create_dir_all(&base);
    let dir = tempfile::Builder::new()
        .prefix("ward-store-backends-")
        .tempdir_in(&base)
        .expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("bench.db")).expect("sqlite");

    let server;
    let url = match std::env::var("WARD_BENCH_PG_URL") {
        Ok(u) => u,
        Err(_) => {
            server = ward_testkit::postgres::TempPostgres::start_with(&[
                ("fsync", "on"),
                ("synchronous_commit", "off"),
                ("shared_buffers", "256MB"),
            ])
            .expect("start PostgreSQL (apt-get install postgresql)");
            server.url()
        }
    };
    let pg = PgStore::open(&url).expect("postgres");
    if pg.count("").unwrap_or(0) > 0 {
        eprintln!("{} is not empty; use an empty database", pg.url());
        std::process::exit(1);
    }

    let stores: [(&str, &dyn FindingStore); 2] = [("sqlite", &sqlite), ("postgres", &pg)];
    println!("\n== writes: {n} findings, batches of 1000 (findings/s) ==");
    println!(
        "{:<10} {:>12} {:>12} {:>12}",
        "store", "insert", "update", "replay"
    );
    for (name, store) in stores {
        let [ins, upd, rep] = writes(store, n);
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
}
