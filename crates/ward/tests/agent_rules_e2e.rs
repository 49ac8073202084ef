//! End to end: the detection rules (`rules/*.toml`, docs/rules.md) in the real `ward agent`
//! (real eBPF) against real podman containers, one shipped rule category per test, plus
//! benign look-alikes that must stay quiet.
//!
//! Harmless stand-ins only: the "tools" are copies of `/bin/true` (or python3) under the
//! tool's name, base64 payloads are decoded to /dev/null, and nothing leaves the machine (the
//! containers use the host network and talk only to 127.0.0.1, or to nobody).
//!
//! Negative controls are deterministic through a sentinel, as in `agent_e2e.rs`: after the
//! benign actions the same container runs a compiler; once that finding is out, everything
//! the container did before has been processed.
//!
//! Needs root and podman (`ward_testkit::require_containers!` skips otherwise).

use serde_json::Value;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};
use ward_testkit::{require_containers, Container, Images, Network};

mod rules_common;
use rules_common::*;
fn debian(images: &Images, prefix: &str) -> Container {
    Container::builder(&images.debian)
        .name_prefix(prefix)
        .network(Network::Host)
        .run(&["sleep", "600"])
        .unwrap()
}

/// `/bin/true` copied to `path` inside `c`: a harmless binary with a tool's name.
fn stand_in(c: &Container, path: &str) {
    c.exec_ok(&["cp", "/bin/true", path]).unwrap();
}

fn sh(c: &Container, script: &str) {
    c.exec_ok(&["sh", "-c", script]).unwrap();
}

/// What every rule finding carries: the rule's category, severity, ATT&CK, next steps, the
/// rule id, typed evidence, and the container.
fn assert_rule_finding(
    f: &Value,
    c: &Container,
    category: &str,
    severity: &str,
    technique: &str,
    evidence: (&str, &str),
) {
    assert_eq!(f["category"], category, "{f:#}");
    assert_eq!(f["severity"], severity, "{f:#}");
    assert_eq!(f["sourceProperties"]["Detector"], "rules");
    assert_eq!(f["containers"][0]["name"], c.name(), "{f:#}");
    let ids = f["sourceProperties"]["Mitre_Technique_Ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(ids.iter().any(|t| t == technique), "{technique}: {f:#}");
    assert!(!f["mitreAttack"]["primaryTactic"]
        .as_str()
        .unwrap_or("")
        .is_empty());
    assert!(!f["nextSteps"].as_str().unwrap_or("").is_empty());
    let ev = f["sourceProperties"]["Evidence"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        ev.iter()
            .any(|e| e["field"] == evidence.0 && e["value"] == evidence.1),
        "evidence {evidence:?} in {f:#}"
    );
}

/// A free port on 127.0.0.1 (the container shares the host network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` against 127.0.0.1:`port`, retried until the server is up.
fn http_get(port: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(WAIT)).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the server on {port} never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real web server (python's http.server, run by a python3 copy named `gunicorn`) whose
/// request handler runs a shell: a web shell's command injection.
const WEB_SHELL_SERVER: &str = r#"import http.server, subprocess, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        out = subprocess.run('id', shell=True, capture_output=True).stdout
        self.send_response(200); self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

#[test]
fn unexpected_child_shell_under_a_real_web_server() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-ucs");
    c.exec_ok(&["cp", "/usr/bin/python3", "/usr/local/bin/gunicorn"])
        .unwrap();
    c.exec_ok(&[
        "sh",
        "-c",
        &format!("cat > /srv.py <<'EOF'\n{WEB_SHELL_SERVER}EOF"),
    ])
    .unwrap();
    let port = free_port();
    c.exec_detached(&["/usr/local/bin/gunicorn", "/srv.py", &port.to_string()])
        .unwrap();
    let body = http_get(port);
    assert!(body.contains("uid=0(root)"), "{body}");
    let f = wait_rule(agent, c.id(), "UNEXPECTED_CHILD_SHELL", |_| true);
    assert_rule_finding(
        &f,
        &c,
        "Unexpected Child Shell",
        "CRITICAL",
        "T1059.004",
        ("parent.basename", "gunicorn"),
    );
    assert_eq!(args(&f), ["/bin/sh", "-c", "id"]);
    assert_eq!(
        f["processes"][1]["binary"]["path"], "/usr/local/bin/gunicorn",
        "{f:#}"
    );
    // A second request: the same server's shells fold into the finding (key = parent_exe).
    assert!(http_get(port).contains("uid=0(root)"));
    // (JSON Lines carries new findings only; the count is the store's, see the unit tests.)
    let others = after_sentinel(agent, &c);
    let names: std::collections::BTreeSet<&str> = others
        .iter()
        .map(|f| f["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names.len(), 1, "one finding for both shells: {others:#?}");
}

#[test]
fn socat_exec_shell() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-socat");
    // socat's EXEC address runs a shell on socat's stdio: no network involved.
    let out = c.exec_ok(&["socat", "-", "EXEC:sh -c id"]).unwrap();
    assert!(out.contains("uid=0(root)"), "{out}");
    let f = wait_rule(agent, c.id(), "SOCAT_REVERSE_SHELL_DETECTED", |_| true);
    assert_rule_finding(
        &f,
        &c,
        "Execution: Socat Reverse Shell Detected",
        "MEDIUM",
        "T1059.004",
        ("parent.basename", "socat"),
    );
}

#[test]
fn fileless_execution_from_a_memfd() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-memfd");
    let code = "import os\n\
                fd = os.memfd_create('kworker')\n\
                os.write(fd, open('/bin/true', 'rb').read())\n\
                os.execve('/proc/self/fd/%d' % fd, ['kworker'], {})\n";
    c.exec_ok(&["python3", "-c", code]).unwrap();
    let f = wait_rule(agent, c.id(), "FILELESS_EXECUTION_DETECTION_MEMFD", |_| {
        true
    });
    assert_rule_finding(
        &f,
        &c,
        "Execution: Fileless Execution in /memfd:",
        "HIGH",
        "T1620",
        ("layer", "memfd"),
    );
    // runc starts every container from its own sealed memfd copy: never reported.
    let runc: Vec<Value> = agent
        .findings()
        .into_iter()
        .filter(|f| {
            f["sourceProperties"]["Rule_Id"] == "FILELESS_EXECUTION_DETECTION_MEMFD"
                && f["processes"][0]["name"]
                    .as_str()
                    .unwrap_or("")
                    .contains("runc")
        })
        .collect();
    assert!(runc.is_empty(), "runc's memfd reported: {runc:#?}");
}

#[test]
fn fileless_execution_from_dev_shm() {
    let images = require_containers!();
    let agent = agent(&images);
    // podman mounts /dev/shm noexec; an exec-able one, as some workloads configure it.
    let c = Container::builder(&images.debian)
        .name_prefix("rules-shm")
        .network(Network::Host)
        .arg("--tmpfs=/dev/shm:rw,exec,size=16m")
        .run(&["sleep", "600"])
        .unwrap();
    sh(&c, "cp /bin/true /dev/shm/.x && /dev/shm/.x");
    let f = wait_rule(agent, c.id(), "FILELESS_EXECUTION_DETECTION_SHM", |_| true);
    assert_rule_finding(
        &f,
        &c,
        "Privilege Escalation: Fileless Execution in /dev/shm",
        "HIGH",
        "T1620",
        ("exe", "/dev/shm/.x"),
    );
}

#[test]
fn base64_elf_on_a_command_line() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-b64elf");
    // The first bytes of an ELF header, base64 (f0VMR...), decoded to nowhere.
    sh(
        &c,
        "echo f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAA | base64 -d > /dev/null",
    );
    let f = wait_rule(agent, c.id(), "BASE64_ELF_FILE_CMDLINE", |_| true);
    assert_rule_finding(
        &f,
        &c,
        "Defense Evasion: Base64 ELF File Command Line",
        "MEDIUM",
        "T1027",
        (
            "argv",
            "echo f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAA | base64 -d > /dev/null",
        ),
    );
}

#[test]
fn base64_encoded_shell_script_piped_download() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-b64sh");
    // base64 of `curl -s http://127.0.0.1:9/x | sh`: a piped encoded download, decoded to
    // /dev/null (never run).
    sh(
        &c,
        "echo Y3VybCAtcyBodHRwOi8vMTI3LjAuMC4xOjkveCB8IHNo | base64 -d > /dev/null",
    );
    let f = wait_rule(
        agent,
        c.id(),
        "BASE64_ENCODED_SHELL_SCRIPT_EXECUTED",
        |_| true,
    );
    assert_rule_finding(
        &f,
        &c,
        "Defense Evasion: Base64 Encoded Shell Script Executed",
        "MEDIUM",
        "T1140",
        ("argv.base64", "curl -s http://127.0.0.1:9/x | sh"),
    );
}

#[test]
fn stratum_miner_command_line() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-stratum");
    stand_in(&c, "/tmp/xmrig");
    c.exec_ok(&[
        "/tmp/xmrig",
        "-o",
        "stratum+tcp://pool.invalid:3333",
        "-u",
        "wallet",
    ])
    .unwrap();
    let f = wait_rule(
        agent,
        c.id(),
        "SUSPICIOUS_CRYPTO_MINING_ACTIVITY_USING_STRATUM_PROTOCOL",
        |_| true,
    );
    assert_rule_finding(
        &f,
        &c,
        "Impact: Suspicious crypto mining activity using the Stratum Protocol",
        "HIGH",
        "T1496",
        (
            "cmdline",
            "/tmp/xmrig -o stratum+tcp://pool.invalid:3333 -u wallet",
        ),
    );
}

#[test]
fn openssl_engine_from_a_shared_object() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-openssl");
    stand_in(&c, "/usr/local/bin/openssl");
    c.exec_ok(&["openssl", "req", "-engine", "/tmp/libpwn.so"])
        .unwrap();
    let f = wait_rule(
        agent,
        c.id(),
        "SUSPICIOUS_OPENSSL_SHARED_OBJECT_LOADED",
        |_| true,
    );
    assert_rule_finding(
        &f,
        &c,
        "Execution: Suspicious OpenSSL Shared Object Loaded",
        "CRITICAL",
        "T1129",
        ("argv", "/tmp/libpwn.so"),
    );
}

#[test]
fn sudo_user_minus_one_cve_2019_14287() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-sudo1");
    stand_in(&c, "/usr/local/bin/sudo");
    c.exec_ok(&["sudo", "-u#-1", "id"]).unwrap();
    let f = wait_rule(agent, c.id(), "ABUSE_SUDO_FOR_PRIVILEGE_ESCALATION", |_| {
        true
    });
    assert_rule_finding(
        &f,
        &c,
        "Privilege Escalation: Abuse of Sudo For Privilege Escalation (CVE-2019-14287)",
        "CRITICAL",
        "T1548.003",
        ("argv", "-u#-1"),
    );
}

#[test]
fn sudoedit_trailing_backslash_cve_2021_3156() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-sudo2");
    stand_in(&c, "/usr/local/bin/sudoedit");
    // As an ordinary user (the CVE is a local privilege escalation).
    c.exec_ok(&[
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "/usr/local/bin/sudoedit",
        "-s",
        "AAAAAAAA\\",
    ])
    .unwrap();
    let f = wait_rule(agent, c.id(), "SUDO_POTENTIAL_PRIVILEGE_ESCALATION", |_| {
        true
    });
    assert_rule_finding(
        &f,
        &c,
        "Privilege Escalation: Sudo Potential Privilege Escalation (CVE-2021-3156)",
        "CRITICAL",
        "T1068",
        ("argv", "AAAAAAAA\\"),
    );
}

/// Look-alikes of every rule above, and ordinary container work: nothing is reported.
#[test]
fn benign_look_alikes_stay_quiet() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-benign");
    for p in [
        "/usr/local/bin/sudo",
        "/usr/local/bin/sudoedit",
        "/usr/local/bin/openssl",
        "/tmp/xmrig",
    ] {
        stand_in(&c, p);
    }
    // An entrypoint script's shells, a health check, package queries, find and grep.
    sh(
        &c,
        "printf '#!/bin/sh\\nexec sh -c \"echo started\"\\n' > /entrypoint.sh && chmod +x /entrypoint.sh && /entrypoint.sh",
    );
    sh(&c, "bash -c 'echo ok' && test -x /bin/sh");
    sh(&c, "dpkg -l | wc -l; dpkg -s bash > /dev/null");
    sh(
        &c,
        "find /etc -name '*.conf' -type f | head -3; grep -c root /etc/passwd",
    );
    // The tools with ordinary arguments.
    c.exec_ok(&["sudo", "-u", "www-data", "id"]).unwrap();
    c.exec_ok(&[
        "setpriv",
        "--reuid=1000",
        "/usr/local/bin/sudoedit",
        "/etc/hosts",
    ])
    .unwrap();
    c.exec_ok(&["openssl", "version"]).unwrap();
    c.exec_ok(&["openssl", "s_client", "-connect", "127.0.0.1:9"])
        .unwrap();
    c.exec_ok(&["/tmp/xmrig", "--version"]).unwrap();
    // base64 of ordinary data, a shell script that mentions stratum, socat without a shell.
    sh(
        &c,
        "echo aGVsbG8gd29ybGQsIHRoaXMgaXMgZGF0YQ== | base64 -d > /dev/null",
    );
    sh(&c, "echo 'see docs/stratum.md' > /dev/null");
    c.exec_ok(&["socat", "-V"]).unwrap();
    // python running a shell outside any server.
    c.exec_ok(&[
        "python3",
        "-c",
        "import subprocess; subprocess.run('true', shell=True)",
    ])
    .unwrap();
    let others = after_sentinel(agent, &c);
    assert!(others.is_empty(), "benign actions reported: {others:#?}");
}

/// A rule file that does not load stops the agent at start, with its file and line.
#[test]
fn a_bad_rule_file_stops_the_agent_with_file_and_line() {
    let _images = require_containers!();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.d");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("mine.toml"),
        "# my rules\n[[rule]]\nid = \"MY_RULE\"\ncategory = \"Mine\"\nseverity = \"LOW\"\n\
         tactic = \"EXECUTION\"\ndescription = \"d\"\nnext_steps = \"n\"\n\
         [rule.when]\nbasenme = [\"sh\"]\n",
    )
    .unwrap();
    let cfg = dir.path().join("ward.toml");
    std::fs::write(
        &cfg,
        format!(
            "[detectors.rules]\ndirs = [\"{}\"]\n[agent]\nmetrics_addr = \"none\"\n",
            rules.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("agent")
        .arg("--config")
        .arg(&cfg)
        .arg("--db")
        .arg(dir.path().join("ward.db"))
        .args(["--output", "none"])
        .env_remove("WARD_DB")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let place = format!("{}:", rules.join("mine.toml").display());
    assert!(
        err.contains(&place) && err.contains("basenme"),
        "names the file, line and field: {err}"
    );
    assert!(
        !dir.path().join("ward.db").exists(),
        "refused before opening the store"
    );
}
