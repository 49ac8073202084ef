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
        Collector::start_with(|_| {})
    }

    /// A collector whose config `edit` changes (TLS, client certificates).
    fn start_with(edit: impl FnOnce(&mut ApiConfig)) -> Collector {
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
        let mut cfg = cfg;
        edit(&mut cfg);
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
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
                utx.send(format!("{scheme}://{}", bound.local_addr()))
                    .unwrap();
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

/// A CA, and certificates it signs, written as PEM files into `dir`.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: std::path::PathBuf,
}

impl Pki {
    fn new(dir: &std::path::Path, name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Pki {
            ca,
            ca_key,
            dir: dir.to_path_buf(),
        }
    }

    fn ca_file(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// A certificate for `names` (server or client use), as (cert file, key file).
    fn issue(
        &self,
        file: &str,
        names: &[&str],
        client: bool,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// `[api] client_ca_file` (mTLS) on a collector's HTTPS listener, certificates from rcgen on
/// 127.0.0.1: a node whose central output presents a certificate signed by that CA enrolls
/// and ingests; without a certificate, or with one from another CA, the TLS handshake is
/// refused (no HTTP status at all, so not even enrollment or /healthz is reached, and the
/// node is never registered). Tokens still apply on top.
#[test]
fn mtls_collector_takes_a_node_with_a_good_certificate_and_refuses_one_without() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "fleet");
    let (srv_cert, srv_key) = pki.issue("server", &["127.0.0.1", "localhost"], false);
    let (node_cert, node_key) = pki.issue("node-a", &["node-a"], true);
    let rogue = Pki::new(dir.path(), "rogue");
    let (rogue_cert, rogue_key) = rogue.issue("rogue", &["node-b"], true);
    let c = Collector::start_with(|cfg| {
        cfg.tls = Some(ward_api::TlsConfig {
            cert: srv_cert.clone(),
            key: srv_key.clone(),
        });
        cfg.client_ca_file = Some(pki.ca_file("fleet"));
    });
    assert!(c.url.starts_with("https://127.0.0.1:"), "{}", c.url);
    let board = HealthBoard::default();
    let fs = findings();
    let central = |host: &str, cert: Option<(&std::path::Path, &std::path::Path)>| {
        let mut sp = spec(&c.url, &dir.path().join(format!("{host}.token")));
        sp.ca_file = Some(pki.ca_file("fleet"));
        if let Some((cf, kf)) = cert {
            sp.client_cert_file = Some(cf.to_path_buf());
            sp.client_key_file = Some(kf.to_path_buf());
        }
        let mut cx = ctx(&board);
        cx.hostname = host.into();
        CentralSink::new(&sp, &cx, "outputs[0]").unwrap()
    };

    // The node with a certificate of the fleet CA: enrolls, ingests.
    let mut good = central("node-a", Some((&node_cert, &node_key)));
    good.write_batch(&items(&fs)).unwrap();
    for f in &fs {
        assert_eq!(c.store.get(&f.name).unwrap().as_ref(), Some(f));
    }
    assert_eq!(c.store.list_nodes().unwrap().len(), 1);

    // Without a certificate, and with another CA's: refused before any HTTP.
    // The server's TLS alert reaches the agent's error and health line.
    for (host, cert, alert) in [
        ("node-b", None, "CertificateRequired"),
        (
            "node-c",
            Some((rogue_cert.as_path(), rogue_key.as_path())),
            "UnknownCA",
        ),
    ] {
        let mut bad = central(host, cert);
        let e = bad.write_batch(&items(&fs[..1])).unwrap_err().to_string();
        assert!(
            e.contains(&format!("received fatal alert: {alert}")),
            "{host}: {e}"
        );
        assert!(
            bad.health().unwrap().contains(alert),
            "{host}: {:?}",
            bad.health()
        );
    }
    let names: Vec<String> = c
        .store
        .list_nodes()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["node-a"], "no enrollment got through");

    // The same with a plain client: no status, a TLS error; with the certificate, 200.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.ca_file("fleet")).unwrap()).unwrap();
    let identity = |cf: &std::path::Path, kf: &std::path::Path| {
        let mut pem = std::fs::read(kf).unwrap();
        pem.extend(std::fs::read(cf).unwrap());
        reqwest::Identity::from_pem(&pem).unwrap()
    };
    let get = |id: Option<reqwest::Identity>| {
        let mut b = reqwest::blocking::Client::builder().add_root_certificate(ca.clone());
        if let Some(id) = id {
            b = b.identity(id);
        }
        b.build().unwrap().get(format!("{}/healthz", c.url)).send()
    };
    assert_eq!(
        get(Some(identity(&node_cert, &node_key))).unwrap().status(),
        200
    );
    for (id, alert) in [
        (None, "CertificateRequired"),
        (Some(identity(&rogue_cert, &rogue_key)), "UnknownCA"),
    ] {
        let e = get(id).unwrap_err();
        assert!(e.status().is_none(), "{e:?}");
        let chain = format!("{e:?}");
        assert!(
            chain.contains(&format!("AlertReceived({alert})")),
            "{chain}"
        );
    }
}

#[test]
fn client_certificate_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut sp = spec("https://127.0.0.1:1", &dir.path().join("t"));
    sp.client_cert_file = Some(dir.path().join("c.pem"));
    let e = sp.check("outputs[1]").unwrap_err();
    assert_eq!(e.key, "outputs[1].client_key_file", "{e}");
    sp.client_key_file = Some(dir.path().join("k.pem"));
    let board = HealthBoard::default();
    let e = CentralSink::new(&sp, &ctx(&board), "outputs[1]")
        .err()
        .unwrap();
    assert!(
        e.key.starts_with("outputs[1].client_") && e.message.contains("cannot read"),
        "{e}"
    );
    let mut wh = OutputSpec::new(OutputKind::Webhook);
    wh.url = Some("https://hooks.example/x".into());
    wh.client_cert_file = sp.client_cert_file.clone();
    wh.client_key_file = sp.client_key_file.clone();
    assert!(wh.check("o").is_err());
    // The collector side: client_ca_file needs HTTPS.
    let e = ApiConfig {
        client_ca_file: Some(dir.path().join("ca.pem")),
        ..ApiConfig::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("client_ca_file") && e.contains("[api.tls]"),
        "{e}"
    );
    // A CA file that is missing, or holds no certificate, stops the start, naming it.
    let pki = Pki::new(dir.path(), "fleet");
    let (cert, key) = pki.issue("server", &["127.0.0.1"], false);
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    for (ca, says) in [
        ("missing.pem", "cannot read"),
        ("empty.pem", "no PEM certificate"),
    ] {
        let cfg = ApiConfig {
            tls: Some(ward_api::TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            }),
            client_ca_file: Some(dir.path().join(ca)),
            ..ApiConfig::default()
        };
        let store = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
        let e = Server::new(cfg, store).unwrap_err().to_string();
        assert!(
            e.contains("api.client_ca_file") && e.contains(ca) && e.contains(says),
            "{e}"
        );
    }
}
