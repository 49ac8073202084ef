//! Measurement (not a test): list/count latency on a store of many synthetic findings.
//!
//!     cargo bench -p ward-store --bench list
//!
//! Environment: `WARD_BENCH_N` (findings, default 1000000), `WARD_BENCH_DB` (database path,
//! default `target/ward-store-bench/list-v4-<N>.db`; reused when it already holds N findings),
//! `WARD_BENCH_ITERS` (samples per query, default 50), `WARD_BENCH_INSERT_N` (findings for the
//! write-throughput part, default 200000; 0 skips it).
//!
//! The write part runs first, on a fresh database (`target/ward-store-bench/insert.db`,
//! removed afterwards): new findings in `upsert_many` batches of 1000 (the agent's path),
//! updates of existing findings (aggregation: later eventTime, higher count) in batches of
//! 1000, and single-finding upserts, one transaction each.

use std::time::Instant;
use ward_event::time::format_rfc3339;
use ward_event::Finding;
use ward_store::{FindingStore, ListQuery, SqliteStore};

mod common;
use common::*;

fn bench_writes(dir: &std::path::Path, n: u64) {
    let path = dir.join("insert.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("\n-- writes: fresh database {} --", path.display());
    let rate = |label: &str, count: u64, t: Instant| {
        let s = t.elapsed().as_secs_f64();
        println!(
            "{label:<58} {count:>7} in {s:>6.2} s  {:>8.0} findings/s",
            count as f64 / s
        );
    };
    let batch = 1000u64;
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let fs: Vec<Finding> = (i..(i + batch).min(n)).map(|j| synthetic(j, n)).collect();
        store.upsert_many(&fs).expect("insert");
        i += batch;
    }
    rate("insert new, upsert_many batches of 1000", n, t);
    let m = (n / 10).max(1);
    let t = Instant::now();
    let mut i = 0;
    while i < m {
        // Every 10th finding, so updates touch the whole table.
        let fs: Vec<Finding> = (i..(i + batch).min(m))
            .map(|j| repeated(j * 10, n, 1))
            .collect();
        let sum = store.upsert_many(&fs).expect("update");
        assert_eq!(sum.updated, fs.len());
        i += batch;
    }
    rate("update existing, upsert_many batches of 1000", m, t);
    let k = (n / 100).max(1);
    let t = Instant::now();
    for j in 0..k {
        store.upsert(&synthetic(n + j, n)).expect("insert one");
    }
    rate("insert new, one upsert (transaction) each", k, t);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(format!("{}-wal", path.display()))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "database with {} findings: {:.0} MiB (with WAL)",
        n + k,
        size as f64 / 1048576.0
    );
    drop(store);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

fn main() {
    let n: u64 = std::env::var("WARD_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let iters: usize = std::env::var("WARD_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let path = std::env::var("WARD_BENCH_DB").unwrap_or_else(|_| {
        format!(
            "{}/../../target/ward-store-bench/list-v4-{n}.db",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let insert_n: u64 = std::env::var("WARD_BENCH_INSERT_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    if insert_n > 0 {
        let dir = std::path::Path::new(&path)
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let _ = std::fs::create_dir_all(&dir);
        bench_writes(&dir, insert_n);
    }
    let opened = Instant::now();
    let store = match SqliteStore::open(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "\nopened {path} in {:.2} s (includes migrating an older schema)",
        opened.elapsed().as_secs_f64()
    );
    let have = store.count("").unwrap_or(0);
    if have != n {
        println!("building {path} with {n} findings (has {have})");
        let t = Instant::now();
        let batch = 10_000u64;
        let mut i = 0;
        while i < n {
            let fs: Vec<Finding> = (i..(i + batch).min(n)).map(|j| synthetic(j, n)).collect();
            if let Err(e) = store.upsert_many(&fs) {
                eprintln!("upsert failed: {e}");
                std::process::exit(1);
            }
            i += batch;
        }
        let el = t.elapsed().as_secs_f64();
        println!(
            "inserted {n} in {el:.1} s ({:.0} findings/s, batches of {batch})",
            n as f64 / el
        );
        if let Err(e) = store.optimize() {
            eprintln!("optimize failed: {e}");
        }
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "database {path}: {} findings, {:.0} MiB",
        n,
        size as f64 / 1048576.0
    );

    let list = |filter: &str, order: &str, token: &str| {
        store
            .list(&ListQuery {
                filter: filter.into(),
                order_by: order.into(),
                page_token: token.into(),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
    };
    let mid = format_rfc3339(T0 + SPAN / 2);
    let day_before = format_rfc3339(T0 + SPAN / 2 - 86_400 * SEC);
    let filters: Vec<(&str, String)> = vec![
        ("no filter", String::new()),
        ("severity", "severity=CRITICAL".into()),
        ("severity range", "severity>=HIGH".into()),
        ("category (rare)", r#"category="Reverse Shell""#.into()),
        (
            "category API name",
            "category=MALICIOUS_PYTHON_EXECUTED".into(),
        ),
        (
            "state+severity",
            "state=ACTIVE AND severity=CRITICAL".into(),
        ),
        ("namespace", "ns=ns-7".into()),
        ("pod (exact)", "pod=web-1230-7d9f".into()),
        (
            "containerName (exact, ~200 rows)",
            "containerName=web-1230".into(),
        ),
        ("containerId", format!("containerId={:064x}", 1230)),
        ("node", "node=node-42".into()),
        ("cluster (1 in 10)", "cluster=cluster-3".into()),
        (
            "resource.project_display_name (1 in 3)",
            r#"resource.project_display_name="shop""#.into(),
        ),
        ("cluster AND node", "cluster=cluster-2 node=node-42".into()),
        (
            "cluster AND severity",
            "cluster=cluster-3 severity=CRITICAL".into(),
        ),
        ("NOT cluster", "-cluster=cluster-3".into()),
        ("image", "image=registry.example/team-7/worker:1.2".into()),
        (
            "eventTime window (1 day)",
            format!("eventTime>={day_before} eventTime<{mid}"),
        ),
        ("muted", "mute=MUTED".into()),
        ("NOT muted", "-mute=MUTED".into()),
        (
            "category OR category",
            r#"category="Reverse Shell" OR category=MALICIOUS_PYTHON_EXECUTED"#.into(),
        ),
        ("ns AND severity", "ns=ns-7 AND severity=CRITICAL".into()),
        (
            "containerName contains (dense)",
            r#"containerName:"web""#.into(),
        ),
        (
            "containerName contains (sparse)",
            r#"containerName:"web-1230""#.into(),
        ),
        ("category contains", "category:shell".into()),
        (
            "category+state+containerName contains",
            "category=REVERSE_SHELL state=ACTIVE containerName:web".into(),
        ),
        (
            "ns AND containerName contains",
            "ns=ns-7 containerName:web".into(),
        ),
        (
            "ns AND node (two resource fields)",
            "ns=ns-7 node=node-7".into(),
        ),
        ("containerName contains (3 in 5)", "containerName:e".into()),
        ("NOT ns (negated resource field)", "NOT ns=ns-7".into()),
        (
            "severity AND NOT containerName contains",
            "severity=CRITICAL -containerName:web".into(),
        ),
        ("count>=7 (unindexed)", "count>=7".into()),
    ];
    println!("\n-- list, first page (100), default order eventTime desc --");
    for (label, f) in &filters {
        measure(&format!("list {label}"), iters, || {
            list(f, "", "").findings.len()
        });
    }
    println!("\n-- list, other orders and pages --");
    let t1 = list("", "", "").next_page_token.unwrap_or_default();
    measure("list page 2 (token)", iters, || {
        list("", "", &t1).findings.len()
    });
    let mut tok = String::new();
    for _ in 0..100 {
        tok = list("", "", &tok).next_page_token.unwrap_or_default();
    }
    measure("list page 101 (token)", iters, || {
        list("", "", &tok).findings.len()
    });
    for order in [
        "severity desc",
        "severity desc, eventTime desc",
        "createTime",
        "category",
        "count desc",
    ] {
        measure(&format!("list order_by {order}"), iters, || {
            list("", order, "").findings.len()
        });
    }
    measure("list ns=ns-7 order_by severity desc", iters, || {
        list("ns=ns-7", "severity desc", "").findings.len()
    });
    measure("list 1000 per page", iters, || {
        store
            .list(&ListQuery {
                page_size: 1000,
                ..Default::default()
            })
            .map(|p| p.findings.len())
            .unwrap_or(0)
    });
    println!("\n-- count --");
    for (label, f) in &filters {
        measure(&format!("count {label}"), iters.min(20), || {
            store.count(f).unwrap_or_else(|e| panic!("{f}: {e}")) as usize
        });
    }
    println!("\n-- related / get --");
    let some = synthetic(n / 2, n);
    measure("related (±10 min)", iters, || {
        store
            .related(&some.name, 600 * SEC)
            .map(|v| v.len())
            .unwrap_or(0)
    });
    measure("get by id", iters, || {
        store
            .get(some.id())
            .map(|f| f.is_some() as usize)
            .unwrap_or(0)
    });
}
