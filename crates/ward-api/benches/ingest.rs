//! Collector ingest (issue 15's numbers): 10 simulated agents (threads, each enrolled as its
//! own node) POST batches of findings over HTTP to a real collector (`ward_api::Server` with a
//! node registry) on 127.0.0.1, into PostgreSQL and, as the baseline in the same run, SQLite.
//!
//! ```sh
//! cargo bench -p ward-api --bench ingest     # WARD_BENCH_BATCHES=N per agent (default 40),
//!                                            # WARD_BENCH_BATCH=N findings per batch (64)
//! ```
//!
//! Both stores keep their production settings: PostgreSQL with fsync and synchronous_commit
//! on (every commit flushed), SQLite in WAL with `synchronous=NORMAL` (the store's own:
//! commits are not fsynced one by one, so SQLite's figure is the kinder one). Prints, per store: new findings/s (every name new), replayed batches/s
//! (the same batches again: idempotent, nothing rewritten), p50/p99/max latency of one POST.
//! Needs a quiet machine for its figures.

use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_api::{ApiConfig, Server};
use ward_event::finding::Node;
use ward_event::Finding;
use ward_store::{FindingStore, NodeStore};

const AGENTS: usize = 10;
const SECRET: &str = "bench-enrollment-secret-0123456789";

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn template() -> Finding {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ward-output/tests/golden/input.jsonl"
    ))
    .unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn finding(t: &Finding, node: &str, i: usize) -> serde_json::Value {
    let mut f = t.clone();
    f.name = format!("{}-{node}-{i:07}", t.name);
    if let Some(k) = f.kubernetes.as_mut() {
        k.nodes = vec![Node { name: node.into() }];
    }
    f.source_properties
        .insert("VM_Instance_Name".into(), node.into());
    serde_json::to_value(f).unwrap()
}

/// Serves a collector on a thread of its own; returns its base URL and a stopper.
fn serve(
    store: Arc<dyn FindingStore>,
    nodes: Arc<dyn NodeStore>,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let cfg = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        enrollment_secret: Some(SECRET.into()),
        max_requests_per_client: 64,
        ..ApiConfig::default()
    };
    let server = Server::with_nodes(cfg, store, Some(nodes)).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (utx, urx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let bound = server.bind().await.unwrap();
            utx.send(format!("http://{}", bound.local_addr())).unwrap();
            bound
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
    });
    (urx.recv().unwrap(), tx, t)
}

struct Run {
    findings: usize,
    secs: f64,
    lat: Vec<f64>,
}

/// Every agent posts its batches; returns what was sent, how long it took, each POST's time.
fn run(base: &str, batches: &[Vec<String>], tokens: &[String]) -> Run {
    let start = Instant::now();
    let threads: Vec<_> = batches
        .iter()
        .cloned()
        .zip(tokens.iter().cloned())
        .map(|(bodies, token)| {
            let url = format!("{base}/v1/ingest");
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut lat = Vec::with_capacity(bodies.len());
                for b in bodies {
                    let t = Instant::now();
                    let r = c
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .unwrap();
                    let status = r.status();
                    let text = r.text().unwrap_or_default();
                    assert!(status.is_success(), "{status}: {text}");
                    lat.push(t.elapsed().as_secs_f64());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().unwrap());
    }
    Run {
        findings: 0,
        secs: start.elapsed().as_secs_f64(),
        lat,
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn bench(name: &str, store: Arc<dyn FindingStore>, nodes: Arc<dyn NodeStore>) -> (f64, f64) {
    let per_agent = env_usize("WARD_BENCH_BATCHES", 40);
    let batch = env_usize("WARD_BENCH_BATCH", 64);
    let t = template();
    let (base, stop, thread) = serve(store.clone(), nodes);
    let c = reqwest::blocking::Client::new();
    let mut tokens = Vec::new();
    let mut bodies: Vec<Vec<String>> = Vec::new();
    for a in 0..AGENTS {
        let node = format!("bench-node-{a}");
        let v: serde_json::Value = c
            .post(format!("{base}/v1/enroll"))
            .json(&serde_json::json!({"node": node, "secret": SECRET}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        tokens.push(v["token"].as_str().unwrap().to_string());
        bodies.push(
            (0..per_agent)
                .map(|b| {
                    let fs: Vec<serde_json::Value> = (0..batch)
                        .map(|i| finding(&t, &node, b * batch + i))
                        .collect();
                    serde_json::json!({"node": node, "agentVersion": "bench", "findings": fs, "health": {"kernel_drops": 0}})
                        .to_string()
                })
                .collect(),
        );
    }
    let total = AGENTS * per_agent * batch;
    let mut new = run(&base, &bodies, &tokens);
    new.findings = total;
    let stored = store.count("").unwrap();
    assert_eq!(stored, total as u64, "{name}: every finding stored once");
    let replay = run(&base, &bodies, &tokens);
    let _ = stop.send(());
    let _ = thread.join();
    let mut l = new.lat.clone();
    l.sort_by(f64::total_cmp);
    let mut r = replay.lat.clone();
    r.sort_by(f64::total_cmp);
    let fps = new.findings as f64 / new.secs;
    println!(
        "{name:<10} new: {total} findings in {:.2}s = {fps:>8.0} findings/s; POST p50 {:>6.1} ms, p99 {:>6.1} ms, max {:>6.1} ms | replay (idempotent): {:>8.0} findings/s, p99 {:>6.1} ms",
        new.secs,
        quantile(&l, 0.5) * 1e3,
        quantile(&l, 0.99) * 1e3,
        l.last().copied().unwrap_or(0.0) * 1e3,
        total as f64 / replay.secs,
        quantile(&r, 0.99) * 1e3,
    );
    (fps, quantile(&l, 0.99))
}

fn main() {
    println!(
        "ingest: {AGENTS} agents, {} batches of {} findings each, over HTTP on 127.0.0.1",
        env_usize("WARD_BENCH_BATCHES", 40),
        env_usize("WARD_BENCH_BATCH", 64)
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(ward_store::SqliteStore::open(dir.path().join("bench.db")).unwrap());
    let (s_fps, s_p99) = bench("SQLite", sqlite.clone(), sqlite);
    if !ward_testkit::postgres::available_or_skip("ingest bench") {
        println!("PostgreSQL: not installed; SQLite figures only");
        return;
    }
    // Production settings: fsync and synchronous_commit on.
    let pg = ward_testkit::postgres::TempPostgres::start_with(&[]).unwrap();
    let store = Arc::new(ward_store::PgStore::open(&pg.url()).unwrap());
    let (p_fps, p_p99) = bench("PostgreSQL", store.clone(), store);
    println!(
        "PostgreSQL / SQLite: throughput {:.2}x, p99 latency {:.2}x",
        p_fps / s_fps,
        p_p99 / s_p99
    );
}
