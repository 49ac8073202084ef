//! Fleet mode end to end (needs root for the live agent's eBPF sensor, and PostgreSQL):
//! one private PostgreSQL, two `ward serve` collectors over it, three nodes as separate
//! processes, each enrolled with the collectors' secret and sending through a `central`
//! output listing both collectors:
//!
//! * `node-live`: a real `ward agent` whose findings are host execs of intel-listed payload
//!   binaries (`ward_testkit::payloads`);
//! * `node-r1`, `node-r2`: `ward replay --node-name ... --output central:...` of example traces.
//!
//! Every finding arrives in PostgreSQL once (by name), with its node. Then the faults: kill -9
//! of a collector while findings stream (the agent fails over to the other one), PostgreSQL
//! stopped for `WARD_FLEET_PG_OUTAGE_SECS` seconds (default 30, the figure) while the
//! agent keeps finding, is restarted mid-outage and a replay starts; afterwards nothing is
//! lost, nothing unknown arrived, every finding has one row with the right node, and the
//! counters (the agent's `ward_output_*`, the collector's `ward_api_ingest_*`, `/v1/nodes`)
//! tell what happened.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ward_testkit::agent::{AgentOptions, WardAgent};
use ward_testkit::postgres::TempPostgres;

const WARD: &str = env!("CARGO_BIN_EXE_ward");
const SECRET: &str = "fleet-enrollment-secret-0123456789";
const READ: &str = "fleet-read-token-0123456789";
const WRITE: &str = "fleet-write-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `METHOD path` with a bearer token to 127.0.0.1:port; (status, body). `None` when the
/// server does not answer.
fn http(port: u16, method: &str, path: &str, token: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((status, body.to_string()))
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `ward serve` collector process on a port of its own.
struct Collector {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Collector {
    fn start(dir: &Path, name: &str, db: &str) -> Collector {
        let port = free_port();
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[api]\nlisten = \"127.0.0.1:{port}\"\nconsole = false\nenrollment_secret = \"{SECRET}\"\n\
                 [[api.tokens]]\nname = \"r\"\nscope = \"read\"\ntoken = \"{READ}\"\n\
                 [[api.tokens]]\nname = \"w\"\nscope = \"write\"\ntoken = \"{WRITE}\"\n"
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(WARD)
            .args(["serve", "--db", db, "--config"])
            .arg(&cfg)
            .env_remove("WARD_DB")
            .env_remove("WARD_API_READ_TOKEN")
            .env_remove("WARD_API_WRITE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let c = Collector {
            child: Some(child),
            port,
            log,
        };
        wait_for(
            &format!("collector {name} answering"),
            Duration::from_secs(30),
            || http(port, "GET", "/healthz", READ).is_some_and(|(s, _)| s == 200),
            || c.log(),
        );
        c
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let Some((_, text)) = http(self.port, "GET", "/metrics", READ) else {
            return -1.0;
        };
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// Every expected finding and every live one are in PostgreSQL.
fn all_arrived(
    pg: &TempPostgres,
    expected: &BTreeMap<String, String>,
    live: &BTreeSet<String>,
) -> bool {
    in_postgres(pg).is_some_and(|m| {
        live.iter().all(|n| m.contains_key(n)) && expected.keys().all(|n| m.contains_key(n))
    })
}

/// `SELECT name, node FROM findings`: name -> (rows with that name, node).
fn in_postgres(pg: &TempPostgres) -> Option<BTreeMap<String, (usize, String)>> {
    let out = pg
        .psql(
            "ward",
            "SELECT name, node, count(*) OVER (PARTITION BY name) FROM findings",
        )
        .ok()?;
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| !l.is_empty()) {
        let mut p = l.split('|');
        let (name, node, n) = (p.next()?, p.next()?, p.next()?);
        m.insert(name.to_string(), (n.parse().ok()?, node.to_string()));
    }
    Some(m)
}

/// `ward replay` of an example trace as node `node`, into the node's database (a second
/// replay of a node reuses its database and node token), to the collectors. Its stdout: the
/// findings it made, one JSON line each.
fn start_replay(work: &Path, node: &str, trace: &str, urls: &str) -> Child {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = work.join(node);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("replay.toml");
    std::fs::write(
        &cfg,
        "[output]\nretry_initial = \"50ms\"\nretry_max = \"1s\"\nshutdown_timeout = \"180s\"\n",
    )
    .unwrap();
    Command::new(WARD)
        .arg("replay")
        .arg(root.join("testdata/traces").join(trace))
        .arg("--db")
        .arg(dir.join("replay.db"))
        .arg("--config")
        .arg(&cfg)
        .args(["--node-name", node, "--output"])
        .arg(format!("central:{urls}"))
        .arg("--intel")
        .arg(root.join("testdata/intel/example-feed.txt"))
        .env("WARD_ENROLLMENT_SECRET", SECRET)
        .env_remove("WARD_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join(format!("{trace}.log"))).unwrap())
        .spawn()
        .unwrap()
}

/// Waits for a replay; the names of the findings it made.
fn finish_replay(mut child: Child, what: &str) -> BTreeSet<String> {
    let out = child.stdout.take().unwrap();
    let names: BTreeSet<String> = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    let st = child.wait().unwrap();
    assert!(st.success(), "{what}: {st}");
    assert!(!names.is_empty(), "{what}: no findings");
    names
}

fn jsonl_names(agent_dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(agent_dir.join("findings.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

/// Records that `node` wrote finding `name`; a name two nodes make is a mistake of the test's
/// trace choice (the collector keeps the first writer's), so it fails here, naming it.
fn expect_node(expected: &mut BTreeMap<String, String>, name: String, node: &str) {
    if let Some(before) = expected.get(&name) {
        assert_eq!(
            before, node,
            "{name} is made by the traces of two nodes: pick traces whose findings differ"
        );
    }
    expected.insert(name, node.to_string());
}

/// The agent's findings about the test's payloads (their paths are under `work`).
fn payload_findings(agent_dir: &Path, work: &Path) -> usize {
    let work = work.to_string_lossy().to_string();
    std::fs::read_to_string(agent_dir.join("findings.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&work))
        .count()
}

#[test]
fn three_nodes_two_collectors_one_postgres_survive_a_killed_collector_and_a_database_outage() {
    let test =
        "three_nodes_two_collectors_one_postgres_survive_a_killed_collector_and_a_database_outage";
    if !ward_testkit::root_or_skip(test) {
        return;
    }
    let Some(mut pg) = TempPostgres::start_or_skip(test) else {
        return;
    };
    let outage = Duration::from_secs(
        std::env::var("WARD_FLEET_PG_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let work = tempfile::tempdir().unwrap();
    let db = pg.url();
    let mut a = Collector::start(work.path(), "collector-a", &db);
    let b = Collector::start(work.path(), "collector-b", &db);
    let urls = format!("{},{}", a.url(), b.url());

    let (bins, feed) = ward_testkit::payloads::distinct_binaries(work.path(), 30, "fleet-e2e");
    let opts = AgentOptions {
        feeds: vec![feed],
        toml: format!(
            "[output]\nretry_initial = \"50ms\"\nretry_max = \"1s\"\n\n\
             [[outputs]]\nkind = \"central\"\nurl = \"{urls}\"\nenrollment_secret = \"{SECRET}\"\n\
             heartbeat = \"1s\"\ntimeout = \"15s\"\n"
        ),
        outputs_in_config: true,
        env: vec![("WARD_NODE_NAME".into(), "node-live".into())],
        ..AgentOptions::default()
    };
    let agent = WardAgent::start(Path::new(WARD), &opts).unwrap_or_else(|e| panic!("{e}"));
    let agent_dir = agent.dir().to_path_buf();

    // Phase 1: everything up. The agent's first findings and two replayed nodes.
    // The generated traces share a container and a clock: rce-nc-e and rce-socat make the same
    // Reverse Shell finding (same name), so both go to node-r1. A name first written by one
    // node is refused to another (`expect_node` checks the pairing keeps them apart).
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for (t1, t2) in [
        ("rce-nc-e.jsonl", "rce-perl.jsonl"),
        ("rce-socat.jsonl", "malicious-binary.jsonl"),
    ] {
        let r1 = start_replay(work.path(), "node-r1", t1, &urls);
        let r2 = start_replay(work.path(), "node-r2", t2, &urls);
        for n in finish_replay(r1, t1) {
            expect_node(&mut expected, n, "node-r1");
        }
        for n in finish_replay(r2, t2) {
            expect_node(&mut expected, n, "node-r2");
        }
    }
    for p in &bins[..8] {
        let _ = Command::new(p).status();
    }
    wait_for(
        "8 live findings made",
        Duration::from_secs(20),
        || payload_findings(&agent_dir, work.path()) >= 8,
        || agent.log(),
    );
    let live = jsonl_names(&agent_dir);
    wait_for(
        "phase 1: every finding in PostgreSQL",
        Duration::from_secs(30),
        || all_arrived(&pg, &expected, &live),
        || format!("{}\n{}\n{}", agent.log(), a.log(), b.log()),
    );

    // Phase 2: kill -9 collector A while the agent's findings stream.
    let streamer = {
        let bins = bins[8..16].to_vec();
        std::thread::spawn(move || {
            for p in bins {
                let _ = Command::new(p).status();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(250));
    a.kill9();
    streamer.join().unwrap();
    wait_for(
        "16 live findings made",
        Duration::from_secs(20),
        || payload_findings(&agent_dir, work.path()) >= 16,
        || agent.log(),
    );
    let live = jsonl_names(&agent_dir);
    wait_for(
        "phase 2: every finding in PostgreSQL through collector B",
        Duration::from_secs(30),
        || all_arrived(&pg, &expected, &live),
        || format!("{}\n{}", agent.log(), b.log()),
    );

    // Phase 3: PostgreSQL down. The agent keeps finding (its local store and outbox keep
    // them), is restarted mid-outage, and a replay of a third trace set starts mid-outage.
    pg.stop();
    let down = Instant::now();
    for p in &bins[16..24] {
        let _ = Command::new(p).status();
    }
    wait_for(
        "24 live findings made during the outage",
        Duration::from_secs(20),
        || payload_findings(&agent_dir, work.path()) >= 24,
        || agent.log(),
    );
    wait_for(
        "the agent counts failed central writes",
        outage.max(Duration::from_secs(20)),
        || agent.metric("ward_output_failed_total{output=\"central:") > 0.0,
        || agent.scrape().unwrap_or_default(),
    );
    agent.signal(libc::SIGTERM);
    let (st, agent_tmp) = agent.stop().unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success(), "agent stop: {st}");
    let agent =
        WardAgent::start_in(Path::new(WARD), &opts, agent_tmp).unwrap_or_else(|e| panic!("{e}"));
    for p in &bins[24..] {
        let _ = Command::new(p).status();
    }
    let r3 = start_replay(work.path(), "node-r2", "rce-python-pty.jsonl", &urls);
    if let Some(rest) = outage.checked_sub(down.elapsed()) {
        std::thread::sleep(rest);
    }
    pg.start_again().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "PostgreSQL was down for {:.1}s",
        down.elapsed().as_secs_f64()
    );
    for n in finish_replay(r3, "replay node-r2 (mid-outage)") {
        expect_node(&mut expected, n, "node-r2");
    }
    wait_for(
        "30 live findings made",
        Duration::from_secs(20),
        || payload_findings(&agent_dir, work.path()) >= 30,
        || agent.log(),
    );
    let live = jsonl_names(&agent_dir);
    // Each payload is one finding (the agent sees the whole host: anything else it finds
    // meanwhile goes to the collector too, and is checked like the rest).
    assert_eq!(
        payload_findings(&agent_dir, work.path()),
        30,
        "each payload is one finding"
    );
    for n in &live {
        expected.insert(n.clone(), "node-live".into());
    }
    wait_for(
        "phase 3: every finding in PostgreSQL after the outage",
        Duration::from_secs(60),
        || all_arrived(&pg, &expected, &live),
        || {
            let m = in_postgres(&pg).unwrap_or_default();
            format!(
                "missing {:?}\n{}\n{}",
                expected
                    .keys()
                    .filter(|n| !m.contains_key(*n))
                    .collect::<Vec<_>>(),
                agent.log(),
                b.log()
            )
        },
    );

    // Exactly once, with the right node, and nothing unknown.
    let m = in_postgres(&pg).unwrap();
    for (name, node) in &expected {
        let (rows, got) = &m[name];
        assert_eq!(*rows, 1, "{name}: {rows} rows");
        assert_eq!(got, node, "{name}");
    }
    // Anything else in PostgreSQL must be a later finding of the live agent (it watches the
    // whole host), which its own file output has too (written alongside: allow it a moment).
    let unknown = |m: &BTreeMap<String, (usize, String)>| -> Vec<String> {
        let now_live = jsonl_names(&agent_dir);
        m.iter()
            .filter(|(n, (_, node))| {
                !(expected.contains_key(*n) || node == "node-live" && now_live.contains(*n))
            })
            .map(|(n, _)| n.clone())
            .collect()
    };
    if !unknown(&m).is_empty() {
        std::thread::sleep(Duration::from_secs(2));
    }
    let u = unknown(&in_postgres(&pg).unwrap());
    assert!(u.is_empty(), "findings nobody made: {u:?}");

    // The counters say what happened.
    // (The agent's metrics are refreshed once a second.)
    wait_for(
        "the restarted agent counts its backlog delivered",
        Duration::from_secs(5),
        || agent.metric("ward_output_sent_total{output=\"central:") > 0.0,
        || agent.scrape().unwrap_or_default(),
    );
    let sent = agent.metric("ward_output_sent_total{output=\"central:");
    assert!(
        b.metric("ward_api_ingest_rejected_total") > 0.0,
        "collector B refused batches while the database was down"
    );
    assert!(b.metric("ward_api_ingest_findings_total{result=\"inserted\"}") > 0.0);
    let (s, nodes) = http(b.port, "GET", "/v1/nodes", READ).unwrap();
    assert_eq!(s, 200, "{nodes}");
    let nodes: Value = serde_json::from_str(&nodes).unwrap();
    let list = nodes["nodes"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-live", "node-r1", "node-r2"], "{nodes}");
    for n in list {
        assert!(n["lastSeenTime"].is_string(), "{n}");
        assert_eq!(n["agentVersion"], env!("CARGO_PKG_VERSION"), "{n}");
    }
    // The heartbeat keeps last seen moving without findings, and carries the agent's
    // health summary (filled once a second).
    let seen = list[0]["lastSeenTime"].as_str().unwrap().to_string();
    wait_for(
        "a heartbeat moves last seen and carries the health summary",
        Duration::from_secs(10),
        || {
            http(b.port, "GET", "/v1/nodes", READ).is_some_and(|(_, t)| {
                serde_json::from_str::<Value>(&t).is_ok_and(|v| {
                    let n = &v["nodes"][0];
                    n["lastSeenTime"] != seen.as_str()
                        && n["health"]["events"].as_u64().unwrap_or(0) > 0
                })
            })
        },
        || agent.log(),
    );
    eprintln!(
        "fleet: {} findings from 3 nodes, each once in PostgreSQL; the restarted agent sent {sent} (failed {}); collector B rejected {} batches during the outage",
        expected.len(),
        agent.metric("ward_output_failed_total{output=\"central:"),
        b.metric("ward_api_ingest_rejected_total"),
    );
    let (st, _) = agent.stop().unwrap();
    assert!(st.success(), "{st}");
}
