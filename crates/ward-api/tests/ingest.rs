//! The fleet endpoints over real HTTP on 127.0.0.1, on SQLite and on a private PostgreSQL:
//! enrollment (secret, one token per node, 409 until revoked), ingest (node tokens, a node
//! writes only its own findings, whole batches rejected naming the index and field, bounded
//! batches, idempotent replays, merged updates), heartbeats, `GET /v1/nodes`, revoke.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use ward_api::{ApiConfig, Server};
use ward_event::time::{format_rfc3339, parse_rfc3339};
use ward_event::Finding;
use ward_store::{FindingStore, NodeStore, SqliteStore};

const SECRET: &str = "enroll-secret-0123456789";

struct Collector {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(
    mut cfg: ApiConfig,
    store: Arc<dyn FindingStore>,
    nodes: Arc<dyn NodeStore>,
) -> Collector {
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.tokens = tokens();
    let server = Server::with_nodes(cfg, store, Some(nodes)).unwrap();
    let bound = server.bind().await.unwrap();
    let base = format!("http://{}", bound.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bound
            .run(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Collector {
        base,
        stop: Some(tx),
        task,
    }
}

impl Collector {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

async fn post(c: &Client, url: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut rq = c.post(url).json(body);
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    let r = rq.send().await.unwrap();
    let s = r.status();
    (s, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// The example findings of node `node-a` (what the example traces were recorded on).
fn node_a_findings() -> Vec<Finding> {
    let dir = tempfile::tempdir().unwrap();
    let scratch = SqliteStore::open(dir.path().join("scratch.db")).unwrap();
    let all = replay_examples(&scratch);
    let mine: Vec<Finding> = all
        .into_iter()
        .filter(|f| ward_store::finding_node(f) == "node-a")
        .collect();
    assert!(
        mine.len() >= 10,
        "example findings of node-a: {}",
        mine.len()
    );
    mine
}

fn as_json(fs: &[Finding]) -> Vec<Value> {
    fs.iter()
        .map(|f| serde_json::to_value(f).unwrap())
        .collect()
}

/// Two handles on one store (findings and node registry), and what keeps it alive.
type Stores = (Guard, Arc<dyn FindingStore>, Arc<dyn NodeStore>);

fn stores(b: Backend, test: &str) -> Option<Stores> {
    match b {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let s = Arc::new(SqliteStore::open(dir.path().join("c.db")).unwrap());
            Some((Guard::Dir(dir), s.clone(), s))
        }
        Backend::Postgres => {
            let pg = ward_testkit::postgres::TempPostgres::start_or_skip(test)?;
            let s = Arc::new(
                tokio::task::block_in_place(|| ward_store::PgStore::open(&pg.url())).unwrap(),
            );
            Some((Guard::Postgres(pg), s.clone(), s))
        }
    }
}

fn in_place<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn enroll_ingest_revoke(b: Backend, test: &str) {
    let Some((_g, store, nodes)) = stores(b, test) else {
        return;
    };
    let cfg = ApiConfig {
        enrollment_secret: Some(SECRET.into()),
        ingest_max_findings: 50,
        // Stamped on node-a's findings, so the registry knows its cluster and project.
        default_cluster: "prod-eu".into(),
        default_project: "shop".into(),
        ..ApiConfig::default()
    };
    let srv = start(cfg, store.clone(), nodes.clone()).await;
    let c = Client::new();
    let enroll = format!("{}/v1/enroll", srv.base);
    let ingest = format!("{}/v1/ingest", srv.base);

    // Enrollment: the secret, a valid name, once.
    let (s, v) = post(
        &c,
        &enroll,
        None,
        &json!({"node": "node-a", "secret": "wrong-secret-0123456"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = post(&c, &enroll, None, &json!({"node": "a b", "secret": SECRET})).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("node")),
        "{v}"
    );
    let (s, v) = post(
        &c,
        &enroll,
        None,
        &json!({"node": "node-a", "secret": SECRET, "agentVersion": "0.9.0"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    let (s, v) = post(
        &c,
        &enroll,
        None,
        &json!({"node": "node-a", "secret": SECRET}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(":revoke"),
        "{v}"
    );
    let (s, v) = post(
        &c,
        &enroll,
        None,
        &json!({"node": "node-b", "secret": SECRET}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token_b = v["token"].as_str().unwrap().to_string();
    // Only the hash is kept.
    let listed = in_place(|| nodes.list_nodes()).unwrap();
    assert!(listed
        .iter()
        .all(|n| n.name != token && !n.health_json.contains(&token)));
    assert!(in_place(|| nodes.node_by_token(&token)).unwrap().is_none());

    let findings = node_a_findings();
    let batch = |fs: &[Finding]| json!({"node": "node-a", "agentVersion": "0.9.1", "findings": as_json(fs), "health": {"dropped": 2, "outbox_rows": 0}});

    // Auth: no token, a console token, another node's token or body.
    let (s, _) = post(&c, &ingest, None, &batch(&findings)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post(&c, &ingest, Some(WRITE_TOKEN), &batch(&findings)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = post(&c, &ingest, Some(&token_b), &batch(&findings)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let mut other = batch(&findings);
    other["node"] = json!("node-b");
    let (s, v) = post(&c, &ingest, Some(&token_b), &other).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("findings[0]") && msg.contains(&findings[0].name),
        "{msg}"
    );

    // Malformed findings reject the whole batch, naming the index and the field.
    let mut bad = as_json(&findings);
    bad[3]["eventTime"] = json!("yesterday");
    let (s, v) = post(
        &c,
        &ingest,
        Some(&token),
        &json!({"node": "node-a", "findings": bad}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("findings[3]") && msg.contains("eventTime"),
        "{msg}"
    );
    let mut bad = as_json(&findings);
    bad[5].as_object_mut().unwrap().remove("severity");
    bad[6]["state"] = json!(7);
    let (s, v) = post(
        &c,
        &ingest,
        Some(&token),
        &json!({"node": "node-a", "findings": bad}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("findings[5]") && msg.contains("severity"),
        "{msg}"
    );
    assert_eq!(
        in_place(|| store.count("")).unwrap(),
        0,
        "nothing half-written"
    );

    // Bounded batches: 413 naming the limit.
    let many: Vec<Finding> = findings.iter().cycle().take(51).cloned().collect();
    let (s, v) = post(&c, &ingest, Some(&token), &batch(&many)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ingest_max_findings"),
        "{v}"
    );

    // A batch, then its replay: nothing changes.
    let (s, v) = post(&c, &ingest, Some(&token), &batch(&findings)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["inserted"], json!(findings.len()), "{v}");
    let before: Vec<Option<Finding>> = findings
        .iter()
        .map(|f| in_place(|| store.get(&f.name)).unwrap())
        .collect();
    assert_eq!(before.iter().flatten().count(), findings.len());
    let (s, v) = post(&c, &ingest, Some(&token), &batch(&findings)).await;
    assert_eq!(
        (s, v["inserted"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{v}"
    );
    for (f, b) in findings.iter().zip(&before) {
        assert_eq!(&in_place(|| store.get(&f.name)).unwrap(), b, "{}", f.name);
    }
    assert_eq!(in_place(|| store.count("")).unwrap(), findings.len() as u64);

    // An aggregation update merges: higher count, later last-seen; an older state is stale.
    let mut later = findings[0].clone();
    later
        .source_properties
        .insert("Count".into(), json!(later.count() + 5));
    let t = parse_rfc3339(&later.event_time).unwrap() + 60_000_000_000;
    later.event_time = format_rfc3339(t);
    let (s, v) = post(
        &c,
        &ingest,
        Some(&token),
        &batch(std::slice::from_ref(&later)),
    )
    .await;
    assert_eq!((s, v["updated"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    let got = in_place(|| store.get(&later.name)).unwrap().unwrap();
    assert_eq!(
        (got.count(), got.event_time.as_str()),
        (later.count(), later.event_time.as_str())
    );
    let (s, v) = post(&c, &ingest, Some(&token), &batch(&findings[..1])).await;
    assert_eq!((s, v["stale"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    assert_eq!(
        in_place(|| store.get(&later.name))
            .unwrap()
            .unwrap()
            .count(),
        later.count()
    );

    // A heartbeat (no findings) updates last seen; /v1/nodes shows it (read token).
    let (s, v) = post(
        &c,
        &ingest,
        Some(&token_b),
        &json!({"node": "node-b", "agentVersion": "1.0.0"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = c
        .get(format!("{}/v1/nodes", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = c
        .get(format!("{}/v1/nodes", srv.base))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = v["nodes"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert_eq!(list[0]["name"], "node-a");
    assert_eq!(list[0]["agentVersion"], "0.9.1");
    assert_eq!(list[0]["health"]["dropped"], 2);
    assert_eq!(list[1]["agentVersion"], "1.0.0");
    assert!(list[1]["lastSeenTime"].as_str().is_some(), "{v}");
    // Both just seen: not stale (api.node_stale_after, 90 s by default). The cluster and
    // project come from the node's findings: node-b has none.
    assert_eq!(v["staleAfterSeconds"], 90, "{v}");
    assert_eq!(
        (&list[0]["stale"], &list[1]["stale"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(
        (&list[0]["cluster"], &list[0]["project"]),
        (&json!("prod-eu"), &json!("shop")),
        "{v}"
    );
    assert!(
        list[1].get("cluster").is_none() && list[1].get("project").is_none(),
        "{v}"
    );

    // Revoke: the write token only; the node's token stops working; it may enroll again.
    let revoke = format!("{}/v1/nodes/node-a:revoke", srv.base);
    let (s, _) = post(&c, &revoke, Some(READ_TOKEN), &json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(&c, &revoke, Some(WRITE_TOKEN), &json!({})).await;
    assert_eq!(
        (s, v["revoked"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    let (s, _) = post(
        &c,
        &format!("{}/v1/nodes/nope:revoke", srv.base),
        Some(WRITE_TOKEN),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = post(&c, &ingest, Some(&token), &batch(&findings[..1])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("revoked"),
        "{v}"
    );
    let (s, v) = post(
        &c,
        &enroll,
        None,
        &json!({"node": "node-a", "secret": SECRET}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = post(
        &c,
        &ingest,
        Some(v["token"].as_str().unwrap()),
        &json!({"node": "node-a"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // The collector's counters.
    let m = c
        .get(format!("{}/metrics", srv.base))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(&format!(
            "ward_api_ingest_findings_total{{result=\"inserted\"}} {}",
            findings.len()
        )),
        "{m}"
    );
    assert!(m.contains("ward_api_ingest_heartbeats_total 2"), "{m}");
    assert!(m.contains("ward_api_enrollments_total 3"), "{m}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_ingest_revoke_sqlite() {
    enroll_ingest_revoke(Backend::Sqlite, "enroll_ingest_revoke_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_ingest_revoke_postgres() {
    enroll_ingest_revoke(Backend::Postgres, "enroll_ingest_revoke_postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_off_and_body_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(dir.path().join("c.db")).unwrap());
    let cfg = ApiConfig {
        ingest_max_body_bytes: 4096,
        ..ApiConfig::default()
    };
    let srv = start(cfg, s.clone(), s.clone()).await;
    let c = Client::new();
    let (st, v) = post(
        &c,
        &format!("{}/v1/enroll", srv.base),
        None,
        &json!({"node": "n", "secret": SECRET}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("enrollment is off"));
    // Enrolled before (enrollment since turned off): the token still works; a body above
    // ingest_max_body_bytes is a 413 naming the limit.
    let token = "f".repeat(64);
    s.enroll_node("n", &ward_api_sha(&token), "", 1).unwrap();
    let big = json!({"node": "n", "findings": [], "health": {"x": "y".repeat(5000)}});
    let (st, v) = post(&c, &format!("{}/v1/ingest", srv.base), Some(&token), &big).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("4096"),
        "{v}"
    );
    let (st, v) = post(
        &c,
        &format!("{}/v1/ingest", srv.base),
        Some(&token),
        &json!({"node": "n"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    srv.stop().await;
    // Config errors name the key.
    let e = ApiConfig {
        enrollment_secret: Some("short".into()),
        ..ApiConfig::default()
    }
    .resolve_enrollment_secret()
    .unwrap_err()
    .to_string();
    assert!(e.contains("enrollment_secret") && e.contains("16"), "{e}");
}

fn ward_api_sha(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `finding` as another node would send it: same name, that node, and later (a higher
/// count, a later eventTime), so the store would take it as an update of the stored one.
fn forged_for(finding: &Finding, node: &str) -> Finding {
    let mut f = finding.clone();
    if let Some(k) = f.kubernetes.as_mut() {
        for n in &mut k.nodes {
            n.name = node.into();
        }
    }
    f.source_properties
        .insert("VM_Instance_Name".into(), json!(node));
    f.source_properties
        .insert("Count".into(), json!(f.count() + 10));
    f.event_time = format_rfc3339(parse_rfc3339(&f.event_time).unwrap() + 60_000_000_000);
    assert_eq!(ward_store::finding_node(&f), node);
    f
}

/// `finding` under a new name (`tag` in its id), for node `node`.
fn renamed(finding: &Finding, node: &str, tag: &str) -> Finding {
    let mut f = forged_for(finding, node);
    let id = format!("{tag:0>32}");
    f.name = f.name.replace(finding.id(), &id);
    f.canonical_name = f.name.clone();
    f
}

/// A second handle on the same database (another collector's): findings and registry.
fn second_store(b: Backend, g: &mut Guard) -> (Arc<dyn FindingStore>, Arc<dyn NodeStore>) {
    match (b, g) {
        (Backend::Sqlite, Guard::Dir(d)) => {
            let s = Arc::new(SqliteStore::open(d.path().join("c.db")).unwrap());
            (s.clone(), s)
        }
        (Backend::Postgres, Guard::Postgres(pg)) => {
            let url = pg.url();
            let s = Arc::new(in_place(|| ward_store::PgStore::open(&url)).unwrap());
            (s.clone(), s)
        }
        _ => unreachable!("guard of another backend"),
    }
}

/// A node cannot overwrite a finding stored for another node by sending its name: the
/// collector answers 403 naming the finding and the owning node, and writes nothing of the
/// batch (the other findings in it included); the owner keeps writing it. Two collectors
/// over one database, with two nodes sending the same new name at once, store it for exactly
/// one of them and refuse the other.
async fn a_name_stored_for_another_node_is_refused(b: Backend) {
    let test = match b {
        Backend::Sqlite => "a_name_stored_for_another_node_is_refused::sqlite",
        Backend::Postgres => "a_name_stored_for_another_node_is_refused::postgres",
    };
    let Some((mut g, store, nodes)) = stores(b, test) else {
        return;
    };
    let cfg = ApiConfig {
        enrollment_secret: Some(SECRET.into()),
        ..ApiConfig::default()
    };
    let srv = start(cfg.clone(), store.clone(), nodes.clone()).await;
    let (other_store, other_nodes) = second_store(b, &mut g);
    let srv2 = start(cfg, other_store, other_nodes).await;
    let c = Client::new();
    let mut token = std::collections::BTreeMap::new();
    for node in ["node-a", "node-b"] {
        let (s, v) = post(
            &c,
            &format!("{}/v1/enroll", srv.base),
            None,
            &json!({"node": node, "secret": SECRET}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        token.insert(node, v["token"].as_str().unwrap().to_string());
    }
    let body = |node: &str, fs: &[&Finding]| json!({"node": node, "findings": fs.iter().map(|f| serde_json::to_value(f).unwrap()).collect::<Vec<_>>()});
    let mine = node_a_findings();
    let mine = &mine[..3];
    let (s, v) = post(
        &c,
        &format!("{}/v1/ingest", srv.base),
        Some(&token["node-a"]),
        &body("node-a", &mine.iter().collect::<Vec<_>>()),
    )
    .await;
    assert_eq!(
        (s, v["inserted"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{v}"
    );
    let stored: Vec<Finding> = mine
        .iter()
        .map(|f| in_place(|| store.get(&f.name)).unwrap().unwrap())
        .collect();

    // node-b sends a finding of its own and node-a's second finding under node-b's name, to
    // either collector: 403, and nothing of the batch is written.
    let own = renamed(&mine[0], "node-b", "b1");
    let forged = forged_for(&mine[1], "node-b");
    for base in [&srv.base, &srv2.base] {
        let (s, v) = post(
            &c,
            &format!("{base}/v1/ingest"),
            Some(&token["node-b"]),
            &body("node-b", &[&own, &forged]),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("findings[1]")
                && msg.contains(&forged.name)
                && msg.contains("node 'node-a'"),
            "{msg}"
        );
        assert_eq!(v["error"]["field"], "findings", "{v}");
        assert!(
            in_place(|| store.get(&own.name)).unwrap().is_none(),
            "half-written"
        );
        for (f, was) in mine.iter().zip(&stored) {
            assert_eq!(&in_place(|| store.get(&f.name)).unwrap().unwrap(), was);
        }
        assert_eq!(in_place(|| store.count("")).unwrap(), 3);
    }
    // Its own finding alone goes in; node-a still updates its finding.
    let (s, v) = post(
        &c,
        &format!("{}/v1/ingest", srv2.base),
        Some(&token["node-b"]),
        &body("node-b", &[&own]),
    )
    .await;
    assert_eq!(
        (s, v["inserted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    let later = forged_for(&mine[1], "node-a");
    let (s, v) = post(
        &c,
        &format!("{}/v1/ingest", srv.base),
        Some(&token["node-a"]),
        &body("node-a", &[&later]),
    )
    .await;
    assert_eq!((s, v["updated"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    assert_eq!(
        in_place(|| store.get(&later.name))
            .unwrap()
            .unwrap()
            .count(),
        later.count()
    );

    // A race: node-a (collector 1) and node-b (collector 2) send the same new name at once,
    // each in a batch with a finding of its own. One batch is stored whole, the other
    // refused whole, and the name belongs to the winner.
    for round in 0..12 {
        let name_a = renamed(&mine[2], "node-a", &format!("ace{round}"));
        let name_b = renamed(&mine[2], "node-b", &format!("ace{round}"));
        assert_eq!(name_a.name, name_b.name);
        let extra_a = renamed(&mine[2], "node-a", &format!("a0{round}"));
        let extra_b = renamed(&mine[2], "node-b", &format!("b0{round}"));
        let (url_a, url_b) = (
            format!("{}/v1/ingest", srv.base),
            format!("{}/v1/ingest", srv2.base),
        );
        let (body_a, body_b) = (
            body("node-a", &[&extra_a, &name_a]),
            body("node-b", &[&name_b, &extra_b]),
        );
        let (ra, rb) = tokio::join!(
            post(&c, &url_a, Some(&token["node-a"]), &body_a),
            post(&c, &url_b, Some(&token["node-b"]), &body_b),
        );
        let ok: Vec<bool> = [&ra, &rb].iter().map(|r| r.0 == StatusCode::OK).collect();
        assert_eq!(
            ok.iter().filter(|o| **o).count(),
            1,
            "round {round}: exactly one batch stored: {ra:?} {rb:?}"
        );
        let (loser, winner, lost_extra) = if ok[0] {
            (&rb, "node-a", &extra_b)
        } else {
            (&ra, "node-b", &extra_a)
        };
        assert_eq!(loser.0, StatusCode::FORBIDDEN, "{loser:?}");
        assert!(
            loser.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("node '{winner}'")),
            "{loser:?}"
        );
        let got = in_place(|| store.get(&name_a.name)).unwrap().unwrap();
        assert_eq!(ward_store::finding_node(&got), winner, "round {round}");
        assert!(
            in_place(|| store.get(&lost_extra.name)).unwrap().is_none(),
            "round {round}: the refused batch was half-written"
        );
    }
    srv.stop().await;
    srv2.stop().await;
}

both!(a_name_stored_for_another_node_is_refused);
