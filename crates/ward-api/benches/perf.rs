//! Measurement (not a test): the list API over HTTP on a large store, and the console's list
//! page in headless chromium.
//!
//!     cargo bench -p ward-api --bench perf
//!
//! 1. `GET /v1/findings` p50/p99/max with `WARD_BENCH_N` findings stored (default 1000000),
//!    over a keep-alive HTTP connection to a server on 127.0.0.1, `WARD_BENCH_ITERS` requests
//!    per query shape (default 300): first with the server's 5 s `totalSize` cache (what a
//!    user paging sees), then every shape that asks for `totalSize` again with the cache off,
//!    so each request counts all matches. Then `store.count` alone for every filter.
//! 2. The console's list page with `WARD_BENCH_UI_N` findings (default 10000): time from
//!    navigation start to the console's `ward-list-rendered` performance mark (the table is
//!    in the DOM), in Debian's chromium.
//!
//! Databases are generated with `upsert_many` from the example findings
//! (`testdata/traces/*.expected.jsonl`) as templates and kept under
//! `target/ward-api-bench/` for the next run.

#[path = "../tests/common/browser.rs"]
mod browser;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_api::{ApiConfig, Server};
use ward_event::time::format_rfc3339;
use ward_event::Finding;
use ward_store::{FindingStore, ListQuery, SqliteStore};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_795_219_200 * SEC;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn templates() -> Vec<Finding> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root().join("testdata/traces")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".expected.jsonl") {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                if !line.trim().is_empty() {
                    out.push(serde_json::from_str(line).unwrap());
                }
            }
        }
    }
    out.sort_by(|a: &Finding, b| a.name.cmp(&b.name));
    assert!(!out.is_empty());
    out
}

fn synthetic(t: &Finding, i: u64, n: u64) -> Finding {
    let mut f = t.clone();
    let id = format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    f.name = format!("{}/findings/{id}", f.parent);
    f.canonical_name = f.name.clone();
    let span = 30 * 86_400 * SEC;
    let ns = T0 + i * (span / n.max(1));
    f.event_time = format_rfc3339(ns);
    f.create_time = f.event_time.clone();
    let c = (i * 7919) % 5000;
    let cname = format!(
        "{}-{c}",
        ["web", "api", "worker", "db", "cache"][(c % 5) as usize]
    );
    for k in f.containers.iter_mut() {
        k.name = cname.clone();
    }
    if let Some(k) = f.kubernetes.as_mut() {
        for p in k.pods.iter_mut() {
            p.name = format!("{cname}-7d9c5b");
            p.ns = format!("ns-{}", c % 50);
        }
        for nd in k.nodes.iter_mut() {
            nd.name = format!("node-{}", c % 100);
        }
    }
    let sp = &mut f.source_properties;
    sp.insert("Container_Name".into(), cname.clone().into());
    sp.insert("Container_Id".into(), format!("{c:064x}").into());
    sp.insert("Pod_Name".into(), format!("{cname}-7d9c5b").into());
    sp.insert("Pod_Namespace".into(), format!("ns-{}", c % 50).into());
    sp.insert("Count".into(), (1 + i % 7).into());
    if i.is_multiple_of(10) {
        f.state = ward_event::finding::State::Inactive;
    }
    f
}

fn database(n: u64) -> Arc<SqliteStore> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("ward-api-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("api-{n}.db"));
    let opened = Instant::now();
    let store = SqliteStore::open(&path).unwrap();
    if opened.elapsed() > Duration::from_secs(1) {
        eprintln!(
            "opened {} in {:.1} s (migrated an older schema)",
            path.display(),
            opened.elapsed().as_secs_f64()
        );
    }
    let have = store.count("").unwrap();
    if have != n {
        drop(store);
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let store = SqliteStore::open(&path).unwrap();
        let t = templates();
        let start = Instant::now();
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..n {
            batch.push(synthetic(&t[(i % t.len() as u64) as usize], i, n));
            if batch.len() == 10_000 {
                store.upsert_many(&batch).unwrap();
                batch.clear();
            }
        }
        store.upsert_many(&batch).unwrap();
        store.optimize().unwrap();
        eprintln!(
            "generated {n} findings in {:.1} s -> {}",
            start.elapsed().as_secs_f64(),
            path.display()
        );
        return Arc::new(store);
    }
    Arc::new(store)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// The list queries measured: (label, query string). `totalSize` is asked for unless the
/// query says `includeTotal=false`.
fn shapes(token: &str) -> Vec<(&'static str, String)> {
    let enc = |s: &str| {
        s.replace(' ', "%20")
            .replace('=', "%3D")
            .replace('"', "%22")
            .replace(':', "%3A")
    };
    vec![
        ("first page (100), totalSize", "".to_string()),
        (
            "first page (100), no total",
            "includeTotal=false".to_string(),
        ),
        (
            "page 2 via pageToken",
            format!("pageToken={token}&includeTotal=false"),
        ),
        (
            "filter severity=CRITICAL",
            format!("filter={}", enc("severity=CRITICAL")),
        ),
        (
            "filter severity=CRITICAL, no total",
            format!("filter={}&includeTotal=false", enc("severity=CRITICAL")),
        ),
        (
            "filter category + state + container",
            format!(
                "filter={}",
                enc("category=REVERSE_SHELL state=ACTIVE containerName:web")
            ),
        ),
        (
            "filter ns=ns-7, orderBy severity desc",
            format!("filter={}&orderBy=severity%20desc", enc("ns=ns-7")),
        ),
        (
            "filter containerName:\"web\" (1 in 5)",
            format!("filter={}", enc("containerName:\"web\"")),
        ),
        (
            "filter containerName:\"web-123\" (sparse)",
            format!("filter={}", enc("containerName:\"web-123\"")),
        ),
        (
            "filter ns=ns-7 containerName:web",
            format!("filter={}", enc("ns=ns-7 containerName:web")),
        ),
        (
            "filter state=ACTIVE -mute=MUTED, by count",
            format!(
                "filter={}&orderBy=count%20desc",
                enc("state=ACTIVE -mute=MUTED")
            ),
        ),
        ("console's first page (50)", "pageSize=50".to_string()),
    ]
}

/// Every filter of [`shapes`], decoded.
fn shape_filters() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, q) in shapes("") {
        for part in q.split('&') {
            if let Some(f) = part.strip_prefix("filter=") {
                let f = f
                    .replace("%20", " ")
                    .replace("%3D", "=")
                    .replace("%22", "\"")
                    .replace("%3A", ":");
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
    }
    out.insert(0, String::new());
    out
}

async fn bench_api(n: u64, iters: usize) {
    let store = database(n);
    let first = store.list(&ListQuery::default()).unwrap();
    let token = first.next_page_token.unwrap_or_default();
    let srv = Server::new(
        ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ApiConfig::default()
        },
        store.clone(),
    )
    .unwrap();
    let uncached = Server::new(
        ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ApiConfig::default()
        },
        store.clone(),
    )
    .unwrap();
    uncached.set_count_cache_ttl(Duration::ZERO);
    let mut bases = Vec::new();
    for s in [srv, uncached] {
        let bound = s.bind().await.unwrap();
        bases.push(format!("http://{}", bound.local_addr()));
        tokio::spawn(bound.run(std::future::pending()));
    }
    let c = reqwest::Client::new();
    let mut worst: (f64, String) = (0.0, String::new());
    for (pass, base) in bases.iter().enumerate() {
        if pass == 0 {
            println!("\n== list API over HTTP, {n} findings stored, {iters} requests each ==");
        } else {
            println!("\n== the same with totalSize counted on every request (count cache off) ==");
        }
        for (label, q) in shapes(&token) {
            if pass == 1 && q.contains("includeTotal=false") {
                continue;
            }
            let url = format!("{base}/v1/findings?{q}");
            // Warm up.
            for _ in 0..3 {
                let r = c.get(&url).send().await.unwrap();
                assert!(r.status().is_success(), "{url}: {}", r.status());
                r.bytes().await.unwrap();
            }
            let mut samples = Vec::with_capacity(iters);
            let mut rows = 0;
            let mut total = None;
            for _ in 0..iters {
                let t = Instant::now();
                let v: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
                samples.push(t.elapsed());
                rows = v["listFindingsResults"]
                    .as_array()
                    .map(|a| a.len())
                    .unwrap_or(0);
                total = v["totalSize"].as_u64();
            }
            samples.sort();
            let p99 = pct(&samples, 0.99);
            if p99 > worst.0 {
                worst = (p99, format!("{label} (pass {})", pass + 1));
            }
            println!(
                "{label:<44} rows {rows:>4} total {:>7}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
                total.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                pct(&samples, 0.5),
                p99,
                samples.last().unwrap().as_secs_f64() * 1e3
            );
        }
    }
    println!(
        "worst p99 over all shapes: {:.2} ms ({}); target 50 ms",
        worst.0, worst.1
    );
}

/// What `totalSize` costs in the store alone (no HTTP, no cache).
fn bench_counts(n: u64, iters: usize) {
    let store = database(n);
    println!("\n== uncached counts (store.count), {n} findings, {iters} each ==");
    for f in shape_filters() {
        let mut samples = Vec::new();
        let mut m = 0;
        for _ in 0..iters {
            let t = Instant::now();
            m = store.count(&f).unwrap();
            samples.push(t.elapsed());
        }
        samples.sort();
        println!(
            "count {:<55} = {m:>7}  p50 {:>7.2} ms  p99 {:>7.2} ms",
            format!("'{f}'"),
            pct(&samples, 0.5),
            pct(&samples, 0.99)
        );
    }
}

async fn bench_console(n: u64, runs: usize) {
    if !browser::browser_available() {
        println!("console: chromium not installed; skipped");
        return;
    }
    let store = database(n);
    let srv = Server::new(
        ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ApiConfig::default()
        },
        store.clone(),
    )
    .unwrap();
    let bound = srv.bind().await.unwrap();
    let base = format!("http://{}", bound.local_addr());
    tokio::spawn(bound.run(std::future::pending()));
    let b = browser::Browser::start().await;
    println!("\n== console list page in chromium, {n} findings stored, {runs} loads ==");
    let mut samples = Vec::new();
    for i in 0..runs {
        b.goto("about:blank").await;
        b.goto(&format!("{base}/#/")).await;
        b.wait_ready("list").await;
        let v = b
            .js("const m = performance.getEntriesByName('ward-list-rendered')[0]; \
                 const nav = performance.getEntriesByType('navigation')[0]; \
                 return {mark: m ? m.startTime : null, rows: document.querySelectorAll('#findings-table tbody tr').length, \
                         total: document.getElementById('total-size').textContent, dcl: nav ? nav.domContentLoadedEventEnd : null}")
            .await;
        let ms = v["mark"].as_f64().expect("mark");
        if i == 0 {
            println!(
                "first load: rows {} of total {}; DOMContentLoaded {:.1} ms",
                v["rows"],
                v["total"],
                v["dcl"].as_f64().unwrap_or(0.0)
            );
        }
        samples.push(ms);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "navigation start -> list rendered: p50 {:.1} ms  max {:.1} ms  (min {:.1} ms)",
        samples[samples.len() / 2],
        samples.last().unwrap(),
        samples[0]
    );
    b.close().await;
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bench_api(
            env_u64("WARD_BENCH_N", 1_000_000),
            env_u64("WARD_BENCH_ITERS", 300) as usize,
        )
        .await;
        bench_counts(env_u64("WARD_BENCH_N", 1_000_000), 100);
        bench_console(env_u64("WARD_BENCH_UI_N", 10_000), 10).await;
    });
}
