//! The `central` output against a real collector (`ward_api::Server` with a node registry,
//! SQLite, HTTP on 127.0.0.1): enrollment on first use with the token stored 0600 and reused
//! by the next start, heartbeats carrying the health summary, a revoked token as a clear
//! error (no crash, no silent re-enrollment), failover over a URL list, a finding the
//! collector refuses skipped without stopping the rest, startup errors naming the key.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;
use ward_api::outputs::CentralSink;
use ward_api::{ApiConfig, Scope, Server, TokenConfig};
use ward_event::Finding;
use ward_output::format::{Context, HealthBoard};
use ward_output::spec::{OutputKind, OutputSpec};
use ward_output::{FindingSink, Item};
use ward_store::{FindingStore, NodeStore, SqliteStore};

const SECRET: &str = "enroll-secret-0123456789";
const WRITE: &str = "write-token-0123456789abcdef";

fn findings() -> Vec<Finding> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ward-output/tests/golden/input.jsonl"
    ))
    .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn items(fs: &[Finding]) -> Vec<Item> {
    fs.iter()
        .enumerate()
        .map(|(i, f)| Item {
            seq: i as i64 + 1,
            finding: Arc::new(f.clone()),
        })
        .collect()
}

/// A collector on its own thread and runtime (the sink's client is blocking).
struct Collector {
    url: String,
    store: Arc<SqliteStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Collector {
    fn start() -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("c.db")).unwrap());
        let cfg = ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            enrollment_secret: Some(SECRET.into()),
            tokens: vec![TokenConfig {
                name: "w".into(),
                scope: Scope::Write,
                token: Some(WRITE.into()),
                token_file: None,
            }],
            ..ApiConfig::default()
        };
        let server = Server::with_nodes(cfg, store.clone(), Some(store.clone())).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (utx, urx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
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
        Collector {
            url: urx.recv().unwrap(),
            store,
            stop: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spec(url: &str, token_file: &std::path::Path) -> OutputSpec {
    let mut s = OutputSpec::new(OutputKind::Central);
    s.url = Some(url.into());
    s.enrollment_secret = Some(SECRET.into());
    s.token_file = Some(token_file.to_path_buf());
    s.timeout = Duration::from_secs(2);
    s.heartbeat = Duration::from_secs(1);
    s
}

fn ctx(board: &HealthBoard) -> Context {
    Context {
        hostname: "node-a".into(),
        version: "9.9.9".into(),
        health: board.clone(),
        ..Context::default()
    }
}

#[test]
fn enrolls_once_sends_heartbeats_and_reports_a_revoked_token() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("state/node.token");
    let board = HealthBoard::default();
    let mut m = serde_json::Map::new();
    m.insert("kernel_drops".into(), 7.into());
    board.set(m);
    let fs = findings();

    let mut s = CentralSink::new(&spec(&c.url, &token_file), &ctx(&board), "outputs[0]").unwrap();
    s.write_batch(&items(&fs)).unwrap();
    assert!(
        s.health().unwrap().starts_with("connected"),
        "{:?}",
        s.health()
    );
    for f in &fs {
        assert_eq!(c.store.get(&f.name).unwrap().as_ref(), Some(f));
    }
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let created = c.store.list_nodes().unwrap()[0].created_ns;

    // The next start reuses the stored token (no second enrollment, which would be a 409).
    drop(s);
    let mut s = CentralSink::new(&spec(&c.url, &token_file), &ctx(&board), "outputs[0]").unwrap();
    s.write_batch(&items(&fs[..1])).unwrap();
    let nodes = c.store.list_nodes().unwrap();
    assert_eq!((nodes.len(), nodes[0].created_ns), (1, created));
    assert_eq!(nodes[0].agent_version, "9.9.9");
    assert!(
        nodes[0].health_json.contains("\"kernel_drops\":7"),
        "{nodes:?}"
    );

    // A heartbeat after the interval moves last seen.
    let seen = nodes[0].last_seen_ns;
    s.idle();
    assert_eq!(
        c.store.list_nodes().unwrap()[0].last_seen_ns,
        seen,
        "not due yet"
    );
    std::thread::sleep(Duration::from_millis(1100));
    s.idle();
    assert!(c.store.list_nodes().unwrap()[0].last_seen_ns > seen);

    // Revoked: a clear error, in the error and in the health; the sink stays usable.
    assert!(c.store.revoke_node("node-a").unwrap());
    let e = s.write_batch(&items(&fs)).unwrap_err().to_string();
    assert!(e.contains("revoked") && e.contains("node.token"), "{e}");
    assert!(s.health().unwrap().contains("revoked"));
    // Not enrolled again behind the operator's back.
    assert!(c.store.list_nodes().unwrap()[0].revoked);
}

#[test]
fn fails_over_along_the_url_list_and_skips_what_the_collector_refuses() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let board = HealthBoard::default();
    let urls = format!("{dead_url},{}", c.url);
    let mut s = CentralSink::new(
        &spec(&urls, &dir.path().join("t")),
        &ctx(&board),
        "outputs[0]",
    )
    .unwrap();
    let fs = findings();
    let e = s.write_batch(&items(&fs)).unwrap_err().to_string();
    assert!(e.contains("unavailable"), "{e}");
    // The next attempt goes to the next collector.
    s.write_batch(&items(&fs)).unwrap();
    assert_eq!(c.store.count("").unwrap(), fs.len() as u64);

    // Another node's finding in a batch: the rest is delivered, that one skipped (counted).
    let mut foreign = fs[0].clone();
    foreign.name = format!("{}-other", foreign.name);
    foreign.kubernetes = None;
    foreign
        .source_properties
        .insert("VM_Instance_Name".into(), "node-b".into());
    let mut mine = fs[1].clone();
    mine.name = format!("{}-new", mine.name);
    s.write_batch(&items(&[foreign.clone(), mine.clone()]))
        .unwrap();
    assert!(c.store.get(&mine.name).unwrap().is_some());
    assert!(c.store.get(&foreign.name).unwrap().is_none());
    assert!(
        s.health().unwrap().contains("1 findings refused"),
        "{:?}",
        s.health()
    );
}

#[test]
fn startup_errors_name_the_key() {
    let board = HealthBoard::default();
    let dir = tempfile::tempdir().unwrap();
    let mut sp = spec("http://127.0.0.1:1", &dir.path().join("none.token"));
    sp.enrollment_secret = None;
    std::env::remove_var("WARD_ENROLLMENT_SECRET");
    let e = CentralSink::new(&sp, &ctx(&board), "outputs[2]")
        .err()
        .unwrap();
    assert_eq!(e.key, "outputs[2].enrollment_secret", "{e}");
    let sp = spec("ftp://x", &dir.path().join("t"));
    assert_eq!(
        CentralSink::new(&sp, &ctx(&board), "o").err().unwrap().key,
        "o.url"
    );
    let sp = spec("http://127.0.0.1:1", &dir.path().join("t"));
    let mut c = ctx(&board);
    c.hostname = String::new();
    let e = CentralSink::new(&sp, &c, "o").err().unwrap();
    assert!(e.message.contains("--node-name"), "{e}");
}
