//! Shared by the API and console tests: a real SQLite store filled by the detection engine
//! from the example traces, and a real HTTP server on 127.0.0.1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use ward_api::{ApiConfig, Scope, Server, TokenConfig};
use ward_detect::{DetectorsConfig, Engine, EngineConfig};
use ward_event::{Finding, TraceReader};
use ward_intel::{Feed, IntelSet};
use ward_store::{FindingStore, SqliteStore};

pub const READ_TOKEN: &str = "read-token-0123456789abcdef";
pub const WRITE_TOKEN: &str = "write-token-0123456789abcdef";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs every example trace (`testdata/traces/*.jsonl`) through the detection engine, with
/// the example intel feed and drift detection on, and stores the final findings. Returns them.
pub fn replay_examples(store: &SqliteStore) -> Vec<Finding> {
    let root = repo_root();
    let mut intel = IntelSet::new();
    intel.push(Feed::load(&root.join("testdata/intel/example-feed.txt")).unwrap());
    let intel = Arc::new(intel);
    let mut detectors = DetectorsConfig::default();
    detectors.added_binary.enabled = true;
    let mut traces: Vec<PathBuf> = std::fs::read_dir(root.join("testdata/traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".jsonl") && !n.ends_with(".expected.jsonl")
        })
        .collect();
    traces.sort();
    assert!(traces.len() >= 10, "example traces missing");
    let mut all = std::collections::BTreeMap::new();
    for t in traces {
        let mut engine = Engine::new(&EngineConfig::default(), &detectors, intel.clone(), None);
        let reader =
            TraceReader::new(std::io::BufReader::new(std::fs::File::open(&t).unwrap())).unwrap();
        let mut updates = Vec::new();
        for ev in reader.flatten() {
            engine.process(ev, &mut updates);
        }
        for u in updates.drain(..) {
            all.insert(u.finding.name.clone(), u.finding);
        }
    }
    let list: Vec<Finding> = all.into_values().collect();
    store.upsert_many(&list).unwrap();
    list
}

pub fn tokens() -> Vec<TokenConfig> {
    vec![
        TokenConfig {
            name: "reader".into(),
            scope: Scope::Read,
            token: Some(READ_TOKEN.into()),
            token_file: None,
        },
        TokenConfig {
            name: "writer".into(),
            scope: Scope::Write,
            token: Some(WRITE_TOKEN.into()),
            token_file: None,
        },
    ]
}

pub struct TestServer {
    pub base: String,
    pub console_url: String,
    pub ephemeral_token: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Serves `store` on 127.0.0.1 (a free port) with `cfg` (its listen address is replaced).
    pub async fn start(mut cfg: ApiConfig, store: Arc<dyn FindingStore>) -> TestServer {
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        let server = Server::new(cfg, store).unwrap();
        let ephemeral_token = server.ephemeral_write_token().map(str::to_string);
        let bound = server.bind().await.unwrap();
        let addr = bound.local_addr();
        let console_url = bound.console_url();
        let scheme = if console_url.starts_with("https") {
            "https"
        } else {
            "http"
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            bound
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            base: format!("{scheme}://{addr}"),
            console_url,
            ephemeral_token,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), t).await;
        }
    }
}

/// A fresh database in a temp dir, filled from the example traces.
pub fn example_store() -> (tempfile::TempDir, Arc<SqliteStore>, Vec<Finding>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("ward.db")).unwrap();
    let findings = replay_examples(&store);
    (dir, Arc::new(store), findings)
}
