//! Shared by the API and console tests: a real SQLite (or PostgreSQL) store filled by the
//! detection engine from the example traces, and a real HTTP server on 127.0.0.1.
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
pub fn replay_examples(store: &dyn FindingStore) -> Vec<Finding> {
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
    /// The store as the server writes to it (`Server::store`: collector defaults applied).
    pub store: Arc<dyn FindingStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Serves `store` on 127.0.0.1 (a free port) with `cfg` (its listen address is replaced).
    pub async fn start(cfg: ApiConfig, store: Arc<dyn FindingStore>) -> TestServer {
        TestServer::start_with_nodes(cfg, store, None).await
    }

    /// [`TestServer::start`] as a collector (`ward serve`): with a node registry, it serves
    /// enrollment (when the config has a secret), ingest and `/v1/nodes`.
    pub async fn start_with_nodes(
        mut cfg: ApiConfig,
        store: Arc<dyn FindingStore>,
        nodes: Option<Arc<dyn ward_store::NodeStore>>,
    ) -> TestServer {
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        let server = Server::with_nodes(cfg, store, nodes).unwrap();
        let ephemeral_token = server.ephemeral_write_token().map(str::to_string);
        let server_store = server.store();
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
            store: server_store,
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

/// The store backend an API test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps a test store's backing alive: the SQLite temp dir or the private PostgreSQL.
pub enum Guard {
    Dir(tempfile::TempDir),
    Postgres(ward_testkit::postgres::TempPostgres),
}

impl Guard {
    /// The PostgreSQL server, when the store is on one.
    pub fn postgres(&mut self) -> Option<&mut ward_testkit::postgres::TempPostgres> {
        match self {
            Guard::Postgres(pg) => Some(pg),
            Guard::Dir(_) => None,
        }
    }
}

/// [`example_store`] on the given backend; `None` (after a printed SKIP) when PostgreSQL is
/// not installed outside CI (`CI=true` panics instead). Call it from a multi-thread runtime:
/// the PostgreSQL client is blocking and is opened through `block_in_place`.
pub fn example_store_on(
    b: Backend,
    test: &str,
) -> Option<(Guard, Arc<dyn FindingStore>, Vec<Finding>)> {
    match b {
        Backend::Sqlite => {
            let (d, s, f) = example_store();
            Some((Guard::Dir(d), s, f))
        }
        Backend::Postgres => {
            let pg = ward_testkit::postgres::TempPostgres::start_or_skip(test)?;
            let store = tokio::task::block_in_place(|| ward_store::PgStore::open(&pg.url()))
                .unwrap_or_else(|e| panic!("{test}: {e}; server log: {}", pg.log()));
            let findings = tokio::task::block_in_place(|| replay_examples(&store));
            Some((Guard::Postgres(pg), Arc::new(InPlace(store)), findings))
        }
    }
}

/// A store the async tests may call directly: each call runs in `block_in_place`, because
/// the blocking PostgreSQL client cannot run on a runtime worker (the API itself calls the
/// store from `spawn_blocking`, where `block_in_place` just runs the call).
pub struct InPlace<S>(pub S);

impl<S: FindingStore> FindingStore for InPlace<S> {
    fn upsert(&self, f: &Finding) -> Result<ward_store::Upserted, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.upsert(f))
    }
    fn upsert_many(
        &self,
        f: &[Finding],
    ) -> Result<ward_store::UpsertSummary, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.upsert_many(f))
    }
    fn upsert_many_for_node(
        &self,
        node: &str,
        f: &[Finding],
    ) -> Result<ward_store::UpsertSummary, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.upsert_many_for_node(node, f))
    }
    fn get(&self, n: &str) -> Result<Option<Finding>, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.get(n))
    }
    fn list(&self, q: &ward_store::ListQuery) -> Result<ward_store::Page, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.list(q))
    }
    fn count(&self, f: &str) -> Result<u64, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.count(f))
    }
    fn related(&self, n: &str, w: u64) -> Result<Vec<Finding>, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.related(n, w))
    }
    fn set_state(
        &self,
        n: &str,
        s: ward_event::finding::State,
    ) -> Result<Finding, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.set_state(n, s))
    }
    fn set_mute(
        &self,
        n: &str,
        m: ward_event::finding::Mute,
    ) -> Result<Finding, ward_store::StoreError> {
        tokio::task::block_in_place(|| self.0.set_mute(n, m))
    }
}

/// `both!(test_fn);` runs `async fn test_fn(b: Backend)` as two tests, `test_fn::sqlite` and
/// `test_fn::postgres`, each on a multi-thread runtime.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await;
            }
        }
    };
}
