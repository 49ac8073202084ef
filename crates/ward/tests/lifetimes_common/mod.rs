//! Helpers shared by the lifetime tests (`agent_lifetimes.rs`, `agent_lifetimes_late.rs`):
//! the agents (one per test binary and kind), their intel feed, waiting for a finding and the
//! lost-file check.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ward_testkit::agent::{AgentOptions, WardAgent};
use ward_testkit::{Container, Exited, Images, Network, PodmanService};

pub const WAIT: Duration = Duration::from_secs(10);
pub const BUILT_IN: &str = "Execution: Built in Malicious Binary Executed";
pub const ADDED: &str = "Execution: Added Malicious Binary Executed";
pub const MODIFIED: &str = "Execution: Modified Malicious Binary Executed";
pub const MALICIOUS_PYTHON: &str = "Execution: Malicious Python executed";
pub const WHICH: &str = "/usr/bin/which.debianutils";

pub fn podman_api() -> &'static Path {
    static SERVICE: OnceLock<PodmanService> = OnceLock::new();
    SERVICE
        .get_or_init(|| PodmanService::start().unwrap_or_else(|e| panic!("{e}")))
        .socket_path()
}

/// The sha256 of the image's `which.debianutils` (a shell script), read once.
pub fn which_sha(images: &Images) -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        let c = Container::builder(&images.debian)
            .name_prefix("which-sha")
            .network(Network::Host)
            .run(&["sleep", "60"])
            .unwrap();
        let out = c.exec_ok(&["sha256sum", WHICH]).unwrap();
        out.split_whitespace().next().unwrap().to_string()
    })
}

pub fn agent(images: &Images) -> &'static WardAgent {
    static AGENT: OnceLock<(WardAgent, tempfile::TempDir)> = OnceLock::new();
    &AGENT.get_or_init(|| start_agent(images, "")).0
}

/// An agent that reads the ring buffer only every second: whatever it does not hold at exec
/// is long gone when it looks.
pub fn late_agent(images: &Images) -> &'static WardAgent {
    static AGENT: OnceLock<(WardAgent, tempfile::TempDir)> = OnceLock::new();
    &AGENT
        .get_or_init(|| {
            start_agent(
                images,
                "poll_interval = \"1s\"\nhold_python_script_execs = true\n",
            )
        })
        .0
}

pub fn start_agent(images: &Images, extra_toml: &str) -> (WardAgent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    let mut text = std::fs::read_to_string(&images.intel_feed).unwrap();
    text.push_str(&format!(
        "{};which from the test image\n",
        which_sha(images)
    ));
    std::fs::write(&feed, text).unwrap();
    let opts = AgentOptions {
        feeds: vec![feed],
        toml: format!(
            "docker_sockets = [\"{}\"]\n{extra_toml}",
            podman_api().display()
        ),
        agent_keys: true,
        health_log_interval: "5s".into(),
        env: vec![("WARD_LOG".into(), "ward_enrich=debug".into())],
        ..AgentOptions::default()
    };
    let a = WardAgent::start(Path::new(env!("CARGO_BIN_EXE_ward")), &opts)
        .unwrap_or_else(|e| panic!("{e}"));
    (a, dir)
}

pub fn for_container(agent: &WardAgent, id: &str) -> Vec<Value> {
    agent
        .findings()
        .into_iter()
        .filter(|f| f["sourceProperties"]["Container_Id"] == id)
        .collect()
}

pub fn wait_for(
    agent: &WardAgent,
    id: &str,
    category: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = for_container(agent, id);
        if let Some(f) = all.iter().find(|f| f["category"] == category && pred(f)) {
            return f.clone();
        }
        if Instant::now() >= deadline {
            let same_category: Vec<Value> = agent
                .findings()
                .into_iter()
                .filter(|f| f["category"] == category)
                .map(|f| {
                    serde_json::json!({
                        "container": f["sourceProperties"]["Container_Id"],
                        "count": f["sourceProperties"]["Count"],
                        "binary": f["processes"][0]["binary"],
                    })
                })
                .collect();
            panic!(
                "no {category:?} finding for container {id} within {WAIT:?}; its findings:\n{}\nall {category:?} findings:\n{}\nmetrics:\n{}\nagent log:\n{}",
                serde_json::to_string_pretty(&all).unwrap(),
                serde_json::to_string_pretty(&same_category).unwrap(),
                agent.scrape().unwrap_or_default(),
                agent.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one metric line (`name{labels}`) in the agent's /metrics.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Nothing the agent saw was lost for want of a file: no exec left unhashed because its
/// process (and file) was gone, or because the file seen was another.
pub fn assert_no_lost_files(agent: &WardAgent) {
    // The metrics server answers one scrape at a time: retry a refused or reset one.
    let mut tries = 0;
    let text = loop {
        match agent.scrape() {
            // (The text is filled once a second: empty right after the start.)
            Ok(t) if t.starts_with("HTTP/1.1 200") && t.contains("ward_fanotify_up") => break t,
            r if tries < 50 => {
                tries += 1;
                let _ = r;
                std::thread::sleep(Duration::from_millis(100));
            }
            r => panic!("scraping the agent's metrics: {r:?}"),
        }
    };
    for reason in ["exe_gone", "identity_mismatch"] {
        let n = metric(
            &text,
            &format!("ward_enrich_hash_misses_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(
            n,
            0.0,
            "hash misses ({reason}):\n{text}\nagent log (exe lines):\n{}",
            agent
                .log()
                .lines()
                .filter(|l| l.contains("exe"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(metric(&text, "ward_fanotify_up"), 1.0, "{text}");
}

pub fn run_to_exit(image: &str, prefix: &str, cmd: &[&str]) -> Exited {
    Container::builder(image)
        .name_prefix(prefix)
        .network(Network::Host)
        .run_to_exit(cmd)
        .unwrap()
}

pub fn proc0<'a>(f: &'a Value, field: &str) -> &'a Value {
    &f["processes"][0]["binary"][field]
}

pub fn sha(f: &Value) -> &str {
    proc0(f, "sha256").as_str().unwrap_or("")
}
