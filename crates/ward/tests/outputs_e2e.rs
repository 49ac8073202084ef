//! Outputs end to end with a live agent (needs root for the eBPF sensor):
//!
//! * a live finding reaches a local webhook receiver (HMAC-SHA256 checked, custom header), a
//!   receiver holding falcosidekick's contract (POST to `/`, JSON with a non-empty `output`,
//!   a Falco priority, `rule`, an RFC 3339 `time`, `output_fields`), a real rsyslog over UDP,
//!   TCP and a unix socket, and an OCSF JSON Lines file;
//! * kill -9 of the agent during an outage of the receiver loses nothing: restarted, the agent
//!   delivers every finding once the receiver is back, resends only with the same `name`.
//!
//! The findings are host execs of distinct copies of `/bin/true` listed in a test intel feed.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_testkit::agent::{AgentOptions, WardAgent};
use ward_testkit::receiver::{HttpReceiver, Judge, Request};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn jsonl_names(agent_dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(agent_dir.join("findings.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An agent whose outputs are `[[outputs]]` in `toml` (plus the testkit's JSON Lines file).
fn start_configured(feed: PathBuf, toml: String) -> WardAgent {
    WardAgent::start(
        Path::new(WARD),
        &AgentOptions {
            feeds: vec![feed],
            toml,
            outputs_in_config: true,
            ..AgentOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    // HMAC-SHA256 (RFC 2104) written out here, independently of the agent's ring-based one.
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(body)
        .finalize();
    hex::encode(
        Sha256::new()
            .chain_update(&opad)
            .chain_update(inner)
            .finalize(),
    )
}

/// falcosidekick's input contract (its main handler): POST, a JSON body that decodes into
/// Falco's payload, a non-empty `output`; priority, rule, time and output_fields as Falco
/// writes them.
fn falcosidekick_judge() -> Judge {
    Arc::new(|r: &Request| {
        let ok = r.method == "POST" && r.path == "/" && {
            match r.json() {
                Some(v) => {
                    v["output"].as_str().is_some_and(|s| !s.is_empty())
                        && v["priority"].as_str().is_some_and(|p| {
                            [
                                "emergency",
                                "alert",
                                "critical",
                                "error",
                                "warning",
                                "notice",
                                "informational",
                                "info",
                                "debug",
                            ]
                            .contains(&p.to_ascii_lowercase().as_str())
                        })
                        && v["rule"].as_str().is_some_and(|s| !s.is_empty())
                        && v["time"]
                            .as_str()
                            .and_then(ward_event::time::parse_rfc3339)
                            .is_some()
                        && v["output_fields"].is_object()
                        && v["tags"].is_array()
                        && v["source"].is_string()
                }
                None => false,
            }
        };
        if ok {
            200
        } else {
            400
        }
    })
}

struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
    udp: u16,
    tcp: u16,
}

impl Rsyslog {
    fn out(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default()
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("log.sock")
    }
}

impl Rsyslog {
    /// Stops rsyslogd and starts it again on the same ports and files.
    fn restart(mut self) -> Rsyslog {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.socket());
        let (udp, tcp) = (self.udp, self.tcp);
        // The TempDir moves to the new instance; this one must not remove it.
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        start_rsyslog_in(dir, udp, tcp).expect("rsyslogd restarts")
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private rsyslogd: UDP and TCP on 127.0.0.1, a unix socket in its own directory, every
/// message to `out.log` with its facility and RFC 5424 fields.
fn start_rsyslog() -> Option<Rsyslog> {
    start_rsyslog_in(tempfile::tempdir().unwrap(), free_port(), free_port())
}

/// rsyslogd on the given ports, writing into `dir` (a restart keeps ports and directory).
fn start_rsyslog_in(dir: tempfile::TempDir, udp: u16, tcp: u16) -> Option<Rsyslog> {
    let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let d = dir.path().display();
    let conf = format!(
        r#"global(workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imuxsock" Socket="{d}/log.sock" UseSpecialParser="off" ParseHostname="on" IgnoreTimestamp="off")
template(name="ward" type="string" string="%syslogfacility-text% %syslogseverity-text% %timereported:::date-rfc3339% %hostname% %app-name% %msgid% %structured-data% %msg%\n")
*.* action(type="omfile" file="{d}/out.log" template="ward")
"#
    );
    std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
    let child = Command::new(bin)
        .args(["-n", "-f"])
        .arg(dir.path().join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("rsyslog.err")).unwrap())
        .spawn()
        .ok()?;
    let r = Rsyslog {
        child,
        dir,
        udp,
        tcp,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() || !r.socket().exists() {
        if Instant::now() > deadline {
            panic!(
                "rsyslogd did not start: {}",
                std::fs::read_to_string(r.dir.path().join("rsyslog.err")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(r)
}

#[test]
fn a_live_finding_reaches_a_webhook_falcosidekick_rsyslog_and_an_ocsf_file() {
    if !ward_testkit::root_or_skip(
        "a_live_finding_reaches_a_webhook_falcosidekick_rsyslog_and_an_ocsf_file",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (bins, feed) = ward_testkit::payloads::distinct_binaries(work.path(), 1, "outputs-live");
    let key = b"ward-test-hmac-key-0123456789";
    let key_file = work.path().join("hook.key");
    std::fs::write(&key_file, [key.as_slice(), b"\n"].concat()).unwrap();
    let hook = HttpReceiver::start(
        0,
        Arc::new(move |r: &Request| {
            let sig = r.header("x-ward-signature").unwrap_or("");
            let want = format!("sha256={}", hmac_hex(key, &r.body));
            if r.method != "POST" || sig != want {
                401
            } else if r.header("x-tenant") != Some("blue") {
                400
            } else {
                200
            }
        }),
    )
    .unwrap();
    let falco = HttpReceiver::start(0, falcosidekick_judge()).unwrap();
    let syslog = start_rsyslog().expect("rsyslogd (scripts/install-deps.sh installs rsyslog)");
    let ocsf = work.path().join("ocsf.jsonl");
    let toml = format!(
        r#"
[[outputs]]
kind = "webhook"
url = "{hook}"
hmac_key_file = "{key}"
headers = {{ "X-Tenant" = "blue" }}

[[outputs]]
kind = "falcosidekick"
url = "{falco}"

[[outputs]]
kind = "syslog"
url = "udp://127.0.0.1:{udp}"
facility = "local1"

[[outputs]]
kind = "syslog"
url = "tcp://127.0.0.1:{tcp}"
facility = "local2"

[[outputs]]
kind = "syslog"
url = "unix://{sock}"
facility = "local3"

[[outputs]]
kind = "file"
path = "{ocsf}"
format = "ocsf"
"#,
        hook = hook.url("/hook"),
        key = key_file.display(),
        falco = falco.url("/"),
        udp = syslog.udp,
        tcp = syslog.tcp,
        sock = syslog.socket().display(),
        ocsf = ocsf.display(),
    );
    let agent = start_configured(feed, toml);
    let _ = Command::new(&bins[0]).status();
    let dir = agent.dir().to_path_buf();
    wait_for(
        "a finding in the JSON Lines file",
        Duration::from_secs(20),
        || !jsonl_names(&dir).is_empty(),
        || agent.log(),
    );
    let name = jsonl_names(&dir).into_iter().next().unwrap();
    let id = name.rsplit('/').next().unwrap().to_string();
    let logs = || {
        format!(
            "agent:\n{}\nhook: {:?}\nfalco: {:?}\nsyslog:\n{}",
            agent.log(),
            hook.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
            falco
                .requests()
                .iter()
                .map(|r| r.status)
                .collect::<Vec<_>>(),
            syslog.out()
        )
    };
    wait_for(
        "the webhook delivery",
        Duration::from_secs(10),
        || {
            hook.requests()
                .iter()
                .any(|r| r.status == 200 && r.json().is_some_and(|v| v["name"] == name))
        },
        logs,
    );
    wait_for(
        "the falcosidekick delivery",
        Duration::from_secs(10),
        || {
            falco.requests().iter().any(|r| {
                r.status == 200
                    && r.json()
                        .is_some_and(|v| v["output_fields"]["ward.finding.name"] == name)
            })
        },
        logs,
    );
    wait_for(
        "rsyslog over UDP, TCP and the unix socket",
        Duration::from_secs(10),
        || {
            let out = syslog.out();
            ["local1", "local2", "local3"].iter().all(|fac| {
                out.lines()
                    .any(|l| l.starts_with(&format!("{fac} crit ")) && l.contains(&id))
            })
        },
        logs,
    );
    wait_for(
        "the OCSF file",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&ocsf)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|v| v["class_uid"] == 2004 && v["finding_info"]["uid"] == id.as_str())
        },
        logs,
    );
    // What rsyslog parsed out of the RFC 5424 message: app-name, msgid, structured data.
    let line = syslog
        .out()
        .lines()
        .find(|l| l.starts_with("local2 ") && l.contains(&id))
        .unwrap()
        .to_string();
    assert!(line.contains(" ward finding [ward@32473 name=\""), "{line}");
    // Nothing was refused: every request met its receiver's contract.
    assert!(
        hook.requests().iter().all(|r| r.status == 200),
        "{}",
        logs()
    );
    assert!(
        falco.requests().iter().all(|r| r.status == 200),
        "{}",
        logs()
    );
    // /metrics refreshes once a second.
    wait_for(
        "ward_output_sent_total for the 7 outputs",
        Duration::from_secs(5),
        || agent.metric("ward_output_sent_total{") >= 7.0,
        || agent.scrape().unwrap_or_default(),
    );
    let (st, _dir) = agent.stop().unwrap();
    assert!(st.success(), "{st}");
}

fn names_received(r: &[Request]) -> Vec<String> {
    r.iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.json())
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn kill_9_during_a_receiver_outage_loses_no_finding() {
    if !ward_testkit::root_or_skip("kill_9_during_a_receiver_outage_loses_no_finding") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (bins, feed) = ward_testkit::payloads::distinct_binaries(work.path(), 24, "outputs-kill");
    let ok: Judge = Arc::new(|_| 200);
    let hook = HttpReceiver::start(0, ok.clone()).unwrap();
    let port = hook.addr().port();
    let opts = AgentOptions {
        feeds: vec![feed],
        outputs: vec![format!("webhook:{}", hook.url("/ingest"))],
        toml: "[output]\nretry_initial = \"20ms\"\nretry_max = \"300ms\"\n".into(),
        tied: true,
        ..AgentOptions::default()
    };
    let agent = WardAgent::start(Path::new(WARD), &opts).unwrap_or_else(|e| panic!("{e}"));
    let dir = agent.dir().to_path_buf();
    // Phase 1: the receiver is up.
    for b in &bins[..8] {
        let _ = Command::new(b).status();
    }
    wait_for(
        "8 findings delivered",
        Duration::from_secs(20),
        || {
            names_received(&hook.requests())
                .into_iter()
                .collect::<BTreeSet<_>>()
                .len()
                >= 8
        },
        || agent.log(),
    );
    // Phase 2: the receiver goes away; findings keep coming and are stored.
    let log = hook.stop();
    for b in &bins[8..] {
        let _ = Command::new(b).status();
    }
    wait_for(
        "24 findings in the JSON Lines file",
        Duration::from_secs(20),
        || jsonl_names(&dir).len() >= 24,
        || agent.log(),
    );
    wait_for(
        "failed webhook writes counted",
        Duration::from_secs(10),
        || agent.metric("ward_output_failed_total{output=\"webhook:") > 0.0,
        || agent.scrape().unwrap_or_default(),
    );
    agent.signal(libc::SIGKILL);
    let (st, agent_dir) = agent.stop().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL)
    );
    let made = jsonl_names(agent_dir.path());
    assert_eq!(made.len(), 24, "each payload is one finding");
    // Phase 3: restart the agent while the receiver is still down, then bring it back.
    let agent =
        WardAgent::start_in(Path::new(WARD), &opts, agent_dir).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(700));
    let hook = HttpReceiver::start_with_log(port, ok, log).unwrap();
    wait_for(
        "every finding delivered after the restart",
        Duration::from_secs(30),
        || {
            names_received(&hook.requests())
                .into_iter()
                .collect::<BTreeSet<_>>()
                == made
        },
        || {
            format!(
                "missing {:?}\n{}",
                made.difference(&names_received(&hook.requests()).into_iter().collect())
                    .collect::<Vec<_>>(),
                agent.log()
            )
        },
    );
    // Duplicates only as resends of the same finding (same name, same state).
    let mut seen: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in hook.requests().iter().filter(|r| r.status == 200) {
        let v = r.json().expect("a JSON body");
        seen.entry(v["name"].as_str().unwrap().to_string())
            .or_default()
            .push(v);
    }
    let dups: usize = seen.values().map(|v| v.len() - 1).sum();
    for (name, states) in &seen {
        assert!(made.contains(name), "an unknown finding arrived: {name}");
        assert!(
            states
                .iter()
                .all(|s| s["eventTime"] == states[0]["eventTime"]),
            "{name}: different states resent"
        );
    }
    eprintln!(
        "kill -9 during the outage: {} findings, all delivered; {dups} resends (same name)",
        made.len()
    );
    let (st, _) = agent.stop().unwrap();
    assert!(st.success(), "{st}");
}

#[test]
fn a_slow_then_failing_receiver_holds_back_nothing_and_gets_everything() {
    if !ward_testkit::root_or_skip(
        "a_slow_then_failing_receiver_holds_back_nothing_and_gets_everything",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (bins, feed) = ward_testkit::payloads::distinct_binaries(work.path(), 3, "outputs-faults");
    // The first request hangs past the output's timeout, the next four get a 500, then 200
    // with a body that means nothing.
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hook = HttpReceiver::start(
        0,
        Arc::new(
            move |_: &Request| match n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => {
                    std::thread::sleep(Duration::from_millis(1500));
                    200
                }
                1..=4 => 500,
                _ => 200,
            },
        ),
    )
    .unwrap();
    let toml = format!(
        "[output]\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n\n[[outputs]]\nkind = \"webhook\"\nurl = \"{}\"\ntimeout = \"400ms\"\n",
        hook.url("/in")
    );
    let agent = start_configured(feed, toml);
    let dir = agent.dir().to_path_buf();
    let t = Instant::now();
    for b in &bins {
        let _ = Command::new(b).status();
    }
    // Detection and the store-backed JSON Lines output do not wait for the webhook.
    wait_for(
        "3 findings in the JSON Lines file",
        Duration::from_secs(20),
        || jsonl_names(&dir).len() == 3,
        || agent.log(),
    );
    let detected = t.elapsed();
    wait_for(
        "all 3 delivered to the webhook",
        Duration::from_secs(30),
        || {
            names_received(&hook.requests())
                .into_iter()
                .collect::<BTreeSet<_>>()
                == jsonl_names(&dir)
        },
        || {
            format!(
                "{:?}\n{}",
                hook.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
                agent.log()
            )
        },
    );
    wait_for(
        "the failures counted",
        Duration::from_secs(5),
        || agent.metric("ward_output_failed_total{output=\"webhook:") >= 5.0,
        || agent.scrape().unwrap_or_default(),
    );
    eprintln!(
        "faults: detected all 3 in {detected:?}; delivered after {:?} and {} requests",
        t.elapsed(),
        hook.requests().len()
    );
    let (st, _) = agent.stop().unwrap();
    assert!(st.success(), "{st}");
}

#[test]
fn kill_9_right_after_deliveries_resends_only_the_same_findings() {
    if !ward_testkit::root_or_skip("kill_9_right_after_deliveries_resends_only_the_same_findings") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (bins, feed) = ward_testkit::payloads::distinct_binaries(work.path(), 10, "outputs-resend");
    let hook = HttpReceiver::start(0, Arc::new(|_: &Request| 200)).unwrap();
    let opts = AgentOptions {
        feeds: vec![feed],
        outputs: vec![format!("webhook:{}", hook.url("/r"))],
        ..AgentOptions::default()
    };
    let agent = WardAgent::start(Path::new(WARD), &opts).unwrap_or_else(|e| panic!("{e}"));
    for b in &bins {
        let _ = Command::new(b).status();
    }
    wait_for(
        "10 delivered",
        Duration::from_secs(20),
        || {
            names_received(&hook.requests())
                .into_iter()
                .collect::<BTreeSet<_>>()
                .len()
                == 10
        },
        || agent.log(),
    );
    // At once: positions are stored once a second, so the restart may send some again.
    agent.signal(libc::SIGKILL);
    let (_, dir) = agent.stop().unwrap_or_else(|e| panic!("{e}"));
    let made = jsonl_names(dir.path());
    let agent = WardAgent::start_in(Path::new(WARD), &opts, dir).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(2));
    let got = names_received(&hook.requests());
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, made, "every finding, and only those");
    eprintln!(
        "kill -9 right after delivery: {} findings, {} resends after the restart",
        made.len(),
        got.len() - unique.len()
    );
    let (st, _) = agent.stop().unwrap();
    assert!(st.success(), "{st}");
}

#[test]
fn syslog_over_tcp_reconnects_after_rsyslog_restarts() {
    if !ward_testkit::root_or_skip("syslog_over_tcp_reconnects_after_rsyslog_restarts") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (bins, feed) =
        ward_testkit::payloads::distinct_binaries(work.path(), 2, "outputs-syslog-tcp");
    let syslog = start_rsyslog().expect("rsyslogd (scripts/install-deps.sh installs rsyslog)");
    let opts = AgentOptions {
        feeds: vec![feed],
        outputs: vec![format!("syslog:tcp://127.0.0.1:{}", syslog.tcp)],
        ..AgentOptions::default()
    };
    let agent = WardAgent::start(Path::new(WARD), &opts).unwrap_or_else(|e| panic!("{e}"));
    let dir = agent.dir().to_path_buf();
    let ids = |dir: &Path| -> Vec<String> {
        jsonl_names(dir)
            .iter()
            .map(|n| n.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    let _ = Command::new(&bins[0]).status();
    wait_for(
        "the first finding in rsyslog",
        Duration::from_secs(20),
        || ids(&dir).len() == 1 && syslog.out().contains(&ids(&dir)[0]),
        || format!("{}\n{}", agent.log(), syslog.out()),
    );
    let syslog = syslog.restart();
    let _ = Command::new(&bins[1]).status();
    wait_for(
        "the second finding in rsyslog after its restart",
        Duration::from_secs(20),
        || {
            ids(&dir).len() == 2
                && ids(&dir)
                    .iter()
                    .all(|id| syslog.out().contains(id.as_str()))
        },
        || format!("{}\n{}", agent.log(), syslog.out()),
    );
    let (st, _) = agent.stop().unwrap();
    assert!(st.success(), "{st}");
}
