//! End to end: the environment at exec, in the real `ward agent` (real eBPF capturing envp)
//! against real podman containers. Two agents watch the same containers: one with the
//! default `[agent] report_environment_variables = false`, one with it on; both turn on the
//! off-by-default #31 (PROGRAM_RUN_WITH_DISALLOWED_HTTP_PROXY_ENV).
//!
//! - `env HTTP_PROXY=http://127.0.0.1:3128 /bin/true` fires #31 in both, with the variable as
//!   evidence; only the second agent's finding carries `envVariables`;
//! - `env LD_PRELOAD=/tmp/x.so /bin/true` (no such file: the dynamic loader prints a warning
//!   and runs the program) fires LD_PRELOAD_FROM_TEMPORARY_DIRECTORY; with a 3 KB variable
//!   after it the second agent's finding says `envVariablesTruncated`;
//! - `env GCONV_PATH=... pkexec` as uid 1000 (a stand-in `pkexec`, a copy of `/bin/true`)
//!   fires the GCONV_PATH half of #36;
//! - `env GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=AAAA... su` as uid 1000 (a
//!   stand-in `su`, a copy of `/bin/true`; the image's glibc is a fixed one, and the program
//!   is not setuid) fires GLIBC_TUNABLES_OVERFLOW_ATTEMPT, while ordinary malloc tuning stays
//!   quiet (below);
//! - ordinary environments (and the quiet tests' look-alikes) stay quiet in both agents,
//!   made deterministic by the compiler sentinel (`rules_common::after_sentinel`).
//!
//! Nothing connects anywhere: the proxy is never used (`/bin/true` makes no request).
//! Needs root and podman (`ward_testkit::require_containers!` skips otherwise).

use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;
use ward_testkit::agent::{AgentOptions, WardAgent};
use ward_testkit::{require_containers, Container, Images, Network};

mod rules_common;
use rules_common::{after_sentinel, args, podman_api, wait_rule};

const PROXY_RULE: &str = "PROGRAM_RUN_WITH_DISALLOWED_HTTP_PROXY_ENV";
const PRELOAD_RULE: &str = "LD_PRELOAD_FROM_TEMPORARY_DIRECTORY";
const PWNKIT_RULE: &str = "POLKIT_LOCAL_PRIVILEGE_ESCALATION_VULNERABILITY";
const TUNABLES_RULE: &str = "GLIBC_TUNABLES_OVERFLOW_ATTEMPT";

fn start(images: &Images, report_env: bool) -> WardAgent {
    let opts = AgentOptions {
        feeds: vec![images.intel_feed.clone()],
        toml: format!(
            "docker_sockets = [\"{}\"]\nreport_environment_variables = {report_env}\n\n\
             [detectors.rules.rules]\n{PROXY_RULE} = true\n",
            podman_api().display()
        ),
        agent_keys: true,
        health_log_interval: "5s".into(),
        ..AgentOptions::default()
    };
    WardAgent::start(Path::new(env!("CARGO_BIN_EXE_ward")), &opts).unwrap_or_else(|e| panic!("{e}"))
}

/// The agent with `report_environment_variables` off (the default) and the one with it on.
fn agents(images: &Images) -> (&'static WardAgent, &'static WardAgent) {
    static OFF: OnceLock<WardAgent> = OnceLock::new();
    static ON: OnceLock<WardAgent> = OnceLock::new();
    (
        OFF.get_or_init(|| start(images, false)),
        ON.get_or_init(|| start(images, true)),
    )
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

/// `processes[0].envVariables` as (name, val) pairs.
fn env_variables(f: &Value) -> Vec<(String, String)> {
    f["processes"][0]["envVariables"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["val"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has(pairs: &[(String, String)], a: &str, b: &str) -> bool {
    pairs.iter().any(|(x, y)| x == a && y == b)
}

#[test]
fn http_proxy_env_fires_31_and_env_variables_follow_the_switch() {
    let images = require_containers!();
    let (off, on) = agents(&images);
    let c = debian(&images, "env-proxy");
    c.exec_ok(&["env", "HTTP_PROXY=http://127.0.0.1:3128", "/bin/true"])
        .unwrap();
    for (agent, report) in [(off, false), (on, true)] {
        let f = wait_rule(agent, c.id(), PROXY_RULE, |f| args(f) == ["/bin/true"]);
        assert_eq!(
            f["category"], "Execution: Program Run with Disallowed HTTP Proxy Env",
            "{f:#}"
        );
        assert_eq!(f["severity"], "LOW");
        assert_eq!(f["containers"][0]["name"], c.name(), "{f:#}");
        let ev = evidence(&f);
        assert!(has(&ev, "env", "HTTP_PROXY=http://127.0.0.1:3128"), "{f:#}");
        let p = &f["processes"][0];
        if report {
            let vars = env_variables(&f);
            assert!(has(&vars, "HTTP_PROXY", "http://127.0.0.1:3128"), "{f:#}");
            // The rest of the environment podman gave the process, split at the first '='.
            assert!(
                vars.iter().any(|(n, v)| n == "PATH" && v.contains("/bin")),
                "{f:#}"
            );
            assert!(p.get("envVariablesTruncated").is_none(), "{f:#}");
        } else {
            assert!(p.get("envVariables").is_none(), "switch off: {f:#}");
            assert!(p.get("envVariablesTruncated").is_none(), "{f:#}");
            // The evidence still names the variable that matched (what fired the rule).
            assert!(f["description"]
                .as_str()
                .unwrap_or("")
                .contains("env = HTTP_PROXY=http://127.0.0.1:3128"));
        }
    }
}

#[test]
fn ld_preload_from_tmp_fires_and_a_long_environment_is_marked_truncated() {
    let images = require_containers!();
    let (off, on) = agents(&images);
    let c = debian(&images, "env-preload");
    // No such file: ld.so warns on stderr and runs the program.
    c.exec_ok(&["env", "LD_PRELOAD=/tmp/x.so", "/bin/true"])
        .unwrap();
    for agent in [off, on] {
        let f = wait_rule(agent, c.id(), PRELOAD_RULE, |f| args(f) == ["/bin/true"]);
        assert_eq!(
            f["category"], "Defense Evasion: Library Preloaded from a Temporary Directory",
            "{f:#}"
        );
        assert_eq!(f["severity"], "HIGH");
        assert!(has(&evidence(&f), "env", "LD_PRELOAD=/tmp/x.so"), "{f:#}");
    }
    // An environment past the sensor's 2 KiB: the first bytes are kept (the preload comes
    // first with `env -i`), the finding says the rest is missing.
    c.exec_ok(&["cp", "/bin/true", "/tmp/t/app"]).unwrap();
    let pad = format!("PAD={}", "x".repeat(3000));
    c.exec_ok(&["env", "-i", "LD_PRELOAD=/dev/shm/y.so", &pad, "/tmp/t/app"])
        .unwrap();
    let f = wait_rule(on, c.id(), PRELOAD_RULE, |f| args(f) == ["/tmp/t/app"]);
    assert!(
        has(&evidence(&f), "env", "LD_PRELOAD=/dev/shm/y.so"),
        "{f:#}"
    );
    assert_eq!(f["processes"][0]["envVariablesTruncated"], true, "{f:#}");
    let vars = env_variables(&f);
    assert_eq!(
        vars[0],
        ("LD_PRELOAD".into(), "/dev/shm/y.so".into()),
        "{f:#}"
    );
    assert!(
        vars.len() == 2 && vars[1].0 == "PAD" && vars[1].1.len() < 3000,
        "{vars:?}"
    );
    let f = wait_rule(off, c.id(), PRELOAD_RULE, |f| args(f) == ["/tmp/t/app"]);
    assert!(
        f["processes"][0].get("envVariablesTruncated").is_none(),
        "{f:#}"
    );
}

#[test]
fn gconv_path_for_pkexec_fires_36() {
    let images = require_containers!();
    let (off, _) = agents(&images);
    let c = debian(&images, "env-pwnkit");
    c.exec_ok(&["cp", "/bin/true", "/tmp/t/pkexec"]).unwrap();
    c.exec_ok(&[
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "env",
        "GCONV_PATH=/tmp/pwn",
        "/tmp/t/pkexec",
        "/bin/sh",
    ])
    .unwrap();
    let f = wait_rule(off, c.id(), PWNKIT_RULE, |_| true);
    assert_eq!(f["severity"], "CRITICAL");
    assert_eq!(args(&f), ["/tmp/t/pkexec", "/bin/sh"], "{f:#}");
    assert!(has(&evidence(&f), "env", "GCONV_PATH=/tmp/pwn"), "{f:#}");
}

#[test]
fn glibc_tunables_overflow_shape_fires() {
    let images = require_containers!();
    let (off, _) = agents(&images);
    let c = debian(&images, "env-tunables");
    c.exec_ok(&["cp", "/bin/true", "/tmp/t/su"]).unwrap();
    let var = format!(
        "GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast={}",
        "A".repeat(40)
    );
    c.exec_ok(&[
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "env",
        &var,
        "/tmp/t/su",
        "--help",
    ])
    .unwrap();
    let f = wait_rule(off, c.id(), TUNABLES_RULE, |_| true);
    assert_eq!(
        f["category"], "Privilege Escalation: GLIBC_TUNABLES Overflow Attempt (CVE-2023-4911)",
        "{f:#}"
    );
    assert_eq!(f["severity"], "HIGH");
    assert_eq!(args(&f), ["/tmp/t/su", "--help"], "{f:#}");
    assert!(has(&evidence(&f), "env", &var), "{f:#}");
}

#[test]
fn ordinary_environments_stay_quiet() {
    let images = require_containers!();
    let (off, on) = agents(&images);
    let c = debian(&images, "env-benign");
    c.exec_ok(&["cp", "/bin/true", "/tmp/t/pkexec"]).unwrap();
    for argv in [
        &["env", "LANG=C.UTF-8", "TZ=UTC", "/bin/true"][..],
        // Proxy settings that send nothing through a proxy.
        &[
            "env",
            "NO_PROXY=localhost",
            "no_proxy=127.0.0.1",
            "/bin/true",
        ],
        &["env", "HTTP_PROXY=", "/bin/true"],
        // A library from the image, ordinary malloc tuning, GCONV_PATH for another program.
        &[
            "env",
            "LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6",
            "/bin/true",
        ],
        &[
            "env",
            "GLIBC_TUNABLES=glibc.malloc.arena_max=2",
            "/bin/true",
        ],
        &[
            "env",
            "GCONV_PATH=/usr/lib/x86_64-linux-gnu/gconv",
            "/bin/true",
        ],
        &[
            "env",
            "TMPDIR=/tmp",
            "LD_LIBRARY_PATH=/tmp/lib",
            "/bin/true",
        ],
        // pkexec run the ordinary way by that user.
        &["setpriv", "--reuid=1000", "/tmp/t/pkexec", "/usr/bin/id"],
    ] {
        c.exec_ok(argv).unwrap();
    }
    for agent in [off, on] {
        let others = after_sentinel(agent, &c);
        assert!(others.is_empty(), "{others:#?}");
    }
}
