//! Helpers shared by the live rule tests (`agent_rules_e2e.rs`, `agent_rules_e2e2.rs`): one
//! agent per test binary with the default configuration (rules on), waiting for a rule's
//! finding, and the compiler sentinel that makes negative controls deterministic.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ward_testkit::agent::{AgentOptions, WardAgent};
use ward_testkit::{Container, Images, PodmanService};

pub const WAIT: Duration = Duration::from_secs(10);
pub const COMPILER: &str = "Defense Evasion: Launch Code Compiler Tool In Container";

pub fn podman_api() -> &'static Path {
    static SERVICE: OnceLock<PodmanService> = OnceLock::new();
    SERVICE
        .get_or_init(|| PodmanService::start().unwrap_or_else(|e| panic!("{e}")))
        .socket_path()
}

/// One agent for this file, with the default configuration (rules on).
pub fn agent(images: &Images) -> &'static WardAgent {
    static AGENT: OnceLock<WardAgent> = OnceLock::new();
    AGENT.get_or_init(|| {
        let opts = AgentOptions {
            feeds: vec![images.intel_feed.clone()],
            toml: format!("docker_sockets = [\"{}\"]", podman_api().display()),
            agent_keys: true,
            health_log_interval: "5s".into(),
            ..AgentOptions::default()
        };
        WardAgent::start(Path::new(env!("CARGO_BIN_EXE_ward")), &opts)
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

pub fn for_container(agent: &WardAgent, id: &str) -> Vec<Value> {
    agent
        .findings()
        .into_iter()
        .filter(|f| f["sourceProperties"]["Container_Id"] == id)
        .collect()
}

/// The first finding of rule `rule_id` for container `id` that satisfies `pred`.
pub fn wait_rule(
    agent: &WardAgent,
    id: &str,
    rule_id: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = for_container(agent, id);
        if let Some(f) = all
            .iter()
            .find(|f| f["sourceProperties"]["Rule_Id"] == rule_id && pred(f))
        {
            return f.clone();
        }
        if Instant::now() >= deadline {
            panic!(
                "no {rule_id} finding for container {id} within {WAIT:?}; its findings:\n{}\nagent log:\n{}",
                serde_json::to_string_pretty(&all).unwrap(),
                agent.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a compiler in `c` and waits for its finding; returns the container's other findings.
pub fn after_sentinel(agent: &WardAgent, c: &Container) -> Vec<Value> {
    c.exec_ok(&["tcc", "-v"]).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let all = for_container(agent, c.id());
        if all
            .iter()
            .any(|f| f["category"] == COMPILER && args(f) == ["tcc", "-v"])
        {
            return all
                .into_iter()
                .filter(|f| !(f["category"] == COMPILER && args(f) == ["tcc", "-v"]))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the sentinel compiler finding did not arrive; agent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn args(f: &Value) -> Vec<String> {
    f["processes"][0]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}
