//! The shipped rules load and pass their own tests; the loader names every problem with its
//! file and line.

use std::path::{Path, PathBuf};
use ward_rules::{RuleError, RuleSet};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

fn load_text(text: &str) -> Result<RuleSet, String> {
    RuleSet::from_texts(&[(0, PathBuf::from("t.toml"), text.to_string())])
        .map_err(|e| e.to_string())
}

const GOOD: &str = r#"
[[rule]]
id = "TEST_RULE"
category = "Execution: Test"
severity = "LOW"
tactic = "EXECUTION"
techniques = ["T1059"]
description = "d"
next_steps = "n"
[rule.when]
basename = ["nc"]
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/nc" }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/ls" }
"#;

#[test]
fn shipped_rules_load_and_pass_their_tests() {
    let set = RuleSet::load(&[shipped()]).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.rules().len() >= 10, "{} rules", set.rules().len());
    let report = set.run_tests();
    let failures: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(report.passed >= 2 * set.rules().len());
}

#[test]
fn a_good_rule_fires_through_the_index_and_gives_evidence() {
    let set = load_text(GOOD).unwrap();
    let report = set.run_tests();
    assert_eq!((report.passed, report.failures.len()), (2, 0));

    // Evidence of a shipped rule with nested conditions: which field held, with what value.
    let set = RuleSet::load(&[shipped()]).unwrap();
    let (i, rule) = set
        .rules()
        .iter()
        .enumerate()
        .find(|(_, r)| r.id == "UNEXPECTED_CHILD_SHELL")
        .unwrap();
    let chain = &rule.tests[0];
    assert_eq!(chain.expect, ward_rules::Expect::Fire);
    let mut fired = Vec::new();
    set.eval(chain.chain(), &mut fired);
    assert_eq!(fired, vec![i as u32]);
    let ev: Vec<(String, String)> = set
        .evidence(i as u32, chain.chain())
        .into_iter()
        .map(|e| (e.field, e.value))
        .collect();
    assert_eq!(
        ev,
        vec![
            ("basename".to_string(), "sh".to_string()),
            ("parent.basename".to_string(), "nginx".to_string()),
        ]
    );
}

#[test]
fn unknown_fields_are_errors_with_their_line() {
    let bad = GOOD.replace(
        "basename = [\"nc\"]",
        "basename = [\"nc\"]\nbasenme = [\"x\"]",
    );
    let e = load_text(&bad).unwrap_err();
    assert!(e.contains("t.toml:"), "{e}");
    assert!(e.contains("basenme"), "{e}");
}

#[test]
fn env_conditions_load_and_their_mistakes_are_errors_with_their_line() {
    let env = GOOD.replace(
        "basename = [\"nc\"]",
        "basename = [\"nc\"]\nenv = { name = [\"HTTP_PROXY\"], value = { prefix = [\"http://\"] } }",
    );
    load_text(&env).unwrap_or_else(|e| panic!("{e}"));
    for (bad, what) in [
        ("env = { nmae = [\"HTTP_PROXY\"] }", "nmae"),
        ("env = { name = [\"X\"], valeu = [\"y\"] }", "valeu"),
        ("env = { value = [\"y\"] }", "name"),
        ("env = { name = [] }", "env.name"),
        ("env = [\"HTTP_PROXY\"]", "env"),
    ] {
        let text = GOOD.replace(
            "basename = [\"nc\"]",
            &format!("basename = [\"nc\"]\n{bad}"),
        );
        let e = load_text(&text).unwrap_err();
        assert!(e.contains("t.toml:"), "{bad}: {e}");
        assert!(e.contains(what), "{bad}: {e}");
    }
    // A test exec's env must be a list of strings (the error names the test's line).
    let text = GOOD.replacen("exec = {", "exec = { env = \"X=1\",", 1);
    let e = load_text(&text).unwrap_err();
    assert!(
        e.contains("t.toml:14:") && e.contains("expected a sequence"),
        "{e}"
    );
}

#[test]
fn bad_patterns_empty_conditions_and_missing_tests_are_errors() {
    let bad_regex = GOOD.replace(
        "basename = [\"nc\"]",
        "basename = [\"nc\"]\nargv = { any = { regex = ['(unclosed'] } }",
    );
    let e = load_text(&bad_regex).unwrap_err();
    assert!(
        e.contains("t.toml:10: rule TEST_RULE: when: invalid regex"),
        "{e}"
    );

    let empty = GOOD.replace("basename = [\"nc\"]", "basename = []");
    let e = load_text(&empty).unwrap_err();
    assert!(e.contains("empty condition: basename"), "{e}");

    let no_quiet = GOOD.replace("expect = \"quiet\"", "expect = \"fire\"");
    let e = load_text(&no_quiet).unwrap_err();
    assert!(e.contains("no test with expect = \"quiet\""), "{e}");

    let bad_id = GOOD.replace("TEST_RULE", "test-rule");
    let e = load_text(&bad_id).unwrap_err();
    assert!(e.contains("t.toml:3: rule test-rule: id must be"), "{e}");

    let bad_technique = GOOD.replace("T1059", "1059");
    assert!(load_text(&bad_technique)
        .unwrap_err()
        .contains("not an ATT&CK id"));
}

#[test]
fn a_second_rule_with_a_known_id_is_refused_unless_it_overrides_a_shipped_one() {
    let files = |second: &str, dir: usize| {
        RuleSet::from_texts(&[
            (0, PathBuf::from("shipped.toml"), GOOD.to_string()),
            (dir, PathBuf::from("mine.toml"), second.to_string()),
        ])
    };
    let err = files(GOOD, 1).unwrap_err();
    assert!(matches!(err.0[0], RuleError::Shadowed { .. }));
    assert!(
        err.to_string()
            .contains("mine.toml:2: rule TEST_RULE is already defined at shipped.toml:2"),
        "{err}"
    );
    let over = GOOD.replace("id = \"TEST_RULE\"", "id = \"TEST_RULE\"\noverride = true");
    let set = files(&over, 1).unwrap();
    assert_eq!(set.rules().len(), 1);
    assert_eq!(set.rules()[0].place.file, PathBuf::from("mine.toml"));
    // Overriding within the same directory is still a duplicate.
    assert!(files(&over, 0).is_err());
}

#[test]
fn exceptions_from_a_users_file_apply_and_unknown_rules_are_named() {
    let user = r#"
[[exception]]
rule = "TEST_RULE"
reason = "our health check uses nc"
when = { image = { prefix = ["registry.example/app:"] } }
"#;
    let set = RuleSet::from_texts(&[
        (0, PathBuf::from("shipped.toml"), GOOD.to_string()),
        (1, PathBuf::from("mine.toml"), user.to_string()),
    ])
    .unwrap();
    // The rule's own fire test runs in image registry.example/app:1: now excepted.
    let report = set.run_tests();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(
        set.rules()[0].exceptions[0].reason,
        "our health check uses nc"
    );

    let e = RuleSet::from_texts(&[
        (0, PathBuf::from("shipped.toml"), GOOD.to_string()),
        (
            1,
            PathBuf::from("mine.toml"),
            user.replace("TEST_RULE", "NO_SUCH"),
        ),
    ])
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("mine.toml:2: exception for unknown rule NO_SUCH"),
        "{e}"
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let two = format!(
        "{}\n{}",
        GOOD.replace("T1059", "x"),
        GOOD.replace("TEST_RULE", "OTHER")
            .replace("basename = [\"nc\"]", "basename = []")
    );
    let err = RuleSet::from_texts(&[(0, PathBuf::from("t.toml"), two)]).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
}

const PIPED: &str = r#"
[[rule]]
id = "TEST_PIPE"
category = "Execution: Test"
severity = "LOW"
tactic = "EXECUTION"
description = "d"
next_steps = "n"
[rule.when]
basename = ["sh"]
stdin_writer = { basename = ["nc"] }
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/sh", stdin_writer = { exe = "/bin/nc" } }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/sh", stdin_writer = { exe = "/bin/cat" } }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/sh", stdin = "pipe" }
"#;

fn exec(pid: u32, ppid: u32, path: &str) -> ward_event::ExecEvent {
    ward_event::ExecEvent {
        time: 0,
        node: "n".into(),
        pid,
        tgid: None,
        ppid,
        uid: 0,
        gid: 0,
        comm: String::new(),
        filename: path.into(),
        binary: ward_event::BinaryInfo {
            path: path.into(),
            ..Default::default()
        },
        argv: vec![path.rsplit('/').next().unwrap().into()],
        argv_truncated: false,
        env: Default::default(),
        env_truncated: false,
        cwd: "/".into(),
        script: None,
        stdio: Default::default(),
        stdin_writer: None,
        cgroup_id: 0,
        container_id: None,
        container: None,
    }
}

#[test]
fn pipe_neighbours_come_from_the_view_and_show_in_the_evidence() {
    let set = load_text(PIPED).unwrap();
    let report = set.run_tests();
    assert_eq!((report.passed, report.failures.len()), (3, 0), "{report:?}");
    assert!(set.uses_pipe_neighbours());
    assert!(!load_text(GOOD).unwrap().uses_pipe_neighbours());

    // What an engine does: the chain from its process table, the neighbour found by inode.
    let chain = vec![exec(20, 10, "/bin/sh"), exec(10, 1, "/bin/bash")];
    let nc = exec(21, 10, "/usr/bin/nc");
    let mut fired = Vec::new();
    set.eval(&chain, &mut fired);
    assert!(fired.is_empty(), "no neighbour known: quiet");
    let view = ward_rules::WithPeers {
        chain: &chain,
        stdin_writer: Some(&nc),
        stdout_reader: None,
    };
    set.eval(&view, &mut fired);
    assert_eq!(fired, vec![0]);
    let ev: Vec<(String, String)> = set
        .evidence(0, &view)
        .into_iter()
        .map(|e| (e.field, e.value))
        .collect();
    assert_eq!(
        ev,
        vec![
            ("basename".to_string(), "sh".to_string()),
            ("stdin_writer.basename".to_string(), "nc".to_string()),
        ]
    );

    // The reference lookup by pipe inode: `curl | base64 -d | sh` as three live execs.
    let pipe = |kind, inode| ward_event::FdInfo {
        kind,
        inode,
        ..Default::default()
    };
    use ward_event::FdKind::{Pipe, Tty};
    let mut curl = exec(50, 10, "/usr/bin/curl");
    curl.stdio = [pipe(Tty, 0), pipe(Pipe, 501), pipe(Tty, 0)];
    let mut b64 = exec(51, 10, "/usr/bin/base64");
    b64.stdio = [pipe(Pipe, 501), pipe(Pipe, 502), pipe(Tty, 0)];
    let mut sh = exec(52, 10, "/bin/sh");
    sh.stdio = [pipe(Pipe, 502), pipe(Tty, 0), pipe(Tty, 0)];
    let mut elsewhere = exec(53, 10, "/bin/sh");
    elsewhere.stdio = sh.stdio.clone();
    elsewhere.container_id = Some("ef".repeat(32));
    let live = [&elsewhere, &curl, &b64, &sh];
    let (w, r) = ward_rules::pipe_neighbours(&b64, live);
    assert_eq!((w.map(|e| e.pid), r.map(|e| e.pid)), (Some(50), Some(52)));
    assert_eq!(
        ward_rules::pipe_neighbours(&curl, live).0.map(|e| e.pid),
        None
    );
    let (w, _) = ward_rules::pipe_neighbours(&sh, live);
    assert_eq!(
        w.map(|e| e.pid),
        Some(51),
        "not the other container's writer"
    );

    // Without the engine's lookup, the exec's own `stdin_writer` (a relay parent holding the
    // write end, filled by the enricher) is found among its ancestors.
    let mut relay = vec![exec(30, 29, "/bin/sh"), exec(29, 1, "/usr/bin/nc")];
    fired.clear();
    set.eval(&relay, &mut fired);
    assert!(fired.is_empty());
    relay[0].stdin_writer = Some(29);
    set.eval(&relay, &mut fired);
    assert_eq!(fired, vec![0]);
}

#[test]
fn a_pipe_neighbour_is_judged_on_its_own_exec() {
    let bad = PIPED.replace(
        "stdin_writer = { basename = [\"nc\"] }",
        "stdin_writer = { basename = [\"nc\"], parent = { basename = [\"bash\"] } }",
    );
    let err = load_text(&bad).unwrap_err();
    assert!(
        err.contains("t.toml:11:") && err.contains("stdin_writer: a pipe neighbour"),
        "{err}"
    );
    let bad = PIPED.replace(
        "exec = { exe = \"/bin/sh\", stdin_writer = { exe = \"/bin/nc\" } }",
        "exec = { exe = \"/bin/sh\", stdin_writer = { exe = \"/bin/nc\", parent = { exe = \"/bin/bash\" } } }",
    );
    let err = load_text(&bad).unwrap_err();
    assert!(
        err.contains("t.toml:12:") && err.contains("test exec"),
        "{err}"
    );
}

/// One rule per policy, each with an exception or condition on metadata, and their tests.
const METADATA: &str = r#"
[[rule]]
id = "T_ALERT"
category = "Execution: Test"
severity = "LOW"
tactic = "EXECUTION"
description = "d"
next_steps = "n"
[rule.when]
basename = ["sh"]
[[rule.exception]]
reason = "our image"
when = { image = { prefix = ["registry.example/ok:"] } }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/sh", image = "registry.example/ok:1" }
[[rule.test]]
name = "metadata missing: the exception cannot apply, the rule alerts"
expect = "fire"
exec = { exe = "/bin/sh", metadata = false }
[[rule.test]]
name = "host: no image for certain, so no exception"
expect = "fire"
exec = { exe = "/bin/sh", container = false }

[[rule]]
id = "T_QUIET"
category = "Execution: Test"
severity = "LOW"
tactic = "EXECUTION"
description = "d"
next_steps = "n"
on_missing_metadata = "quiet"
[rule.when]
basename = ["sh"]
image = { prefix = ["registry.example/web:"] }
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/sh", image = "registry.example/web:2" }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/sh", metadata = false }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/ls", metadata = false }

[[rule]]
id = "T_WAIT"
category = "Execution: Test"
severity = "LOW"
tactic = "EXECUTION"
description = "d"
next_steps = "n"
on_missing_metadata = "wait"
[rule.when]
basename = ["sh"]
not = { namespace = ["kube-system"] }
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/sh", namespace = "shop" }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/sh", namespace = "kube-system" }
[[rule.test]]
expect = "wait"
exec = { exe = "/bin/sh", metadata = false }
[[rule.test]]
name = "not in a pod (podman): no namespace for certain"
expect = "fire"
exec = { exe = "/bin/sh" }
"#;

#[test]
fn missing_metadata_follows_each_rules_policy() {
    let set = load_text(METADATA).unwrap();
    let report = set.run_tests();
    let failures: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(report.passed, 10);
    let (alert, quiet, wait) = (0u32, 1u32, 2u32);
    assert_eq!(
        set.get(wait).on_missing_metadata,
        ward_rules::OnMissingMetadata::Wait
    );

    // An exec in a container whose metadata has not come: the alert rule fires, the quiet one
    // does not, the waiting one is held by eval_waiting and fires through plain eval.
    let mut sh = exec(40, 1, "/bin/sh");
    sh.container_id = Some("ab".repeat(32));
    let chain = vec![sh.clone()];
    let (mut fired, mut waiting) = (Vec::new(), Vec::new());
    set.eval_waiting(&chain, &mut fired, &mut waiting);
    assert_eq!((fired.clone(), waiting.clone()), (vec![alert], vec![wait]));
    fired.clear();
    set.eval(&chain, &mut fired);
    assert_eq!(fired, vec![alert, wait]);
    assert!(!fired.contains(&quiet));
    assert_eq!(
        set.get(wait).verdict(&chain),
        ward_rules::Verdict::Undecided
    );

    // The enricher's partial metadata (a note, no pod): the namespace is unknown, the image
    // is known.
    sh.container = Some(ward_event::ContainerMeta {
        image: "registry.example/web:2".into(),
        note: Some("pod sandbox not found".into()),
        ..Default::default()
    });
    let chain = vec![sh.clone()];
    assert_eq!(set.get(wait).truth(&chain), ward_rules::Truth::Unknown);
    assert_eq!(set.get(quiet).truth(&chain), ward_rules::Truth::True);
    // No note: a container outside Kubernetes, its namespace certainly absent.
    sh.container.as_mut().unwrap().note = None;
    assert_eq!(set.get(wait).truth(&vec![sh]), ward_rules::Truth::True);

    // A policy on a rule that never looks at metadata does nothing: a load error.
    let err = load_text(&GOOD.replace(
        "[rule.when]",
        "on_missing_metadata = \"quiet\"\n[rule.when]",
    ))
    .unwrap_err();
    assert!(
        err.contains("t.toml:2: rule TEST_RULE: on_missing_metadata has no effect"),
        "{err}"
    );

    // The evidence names the undecidable condition.
    let mut missing = exec(41, 1, "/bin/sh");
    missing.container_id = Some("cd".repeat(32));
    let q = RuleSet::from_texts(&[(
        0,
        PathBuf::from("q.toml"),
        METADATA.replace(
            "on_missing_metadata = \"quiet\"\n",
            "on_missing_metadata = \"alert\"\n",
        ),
    )])
    .unwrap();
    // Changing the policy makes its quiet test fail: the policy is what decides.
    let fails: Vec<String> = q
        .run_tests()
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(fails.len(), 1, "{fails:?}");
    assert!(fails[0].contains("T_QUIET"), "{fails:?}");
    let ev: Vec<(String, String)> = q
        .evidence(quiet, &vec![missing])
        .into_iter()
        .map(|e| (e.field, e.value))
        .collect();
    assert_eq!(
        ev,
        vec![
            ("basename".to_string(), "sh".to_string()),
            ("image".to_string(), ward_rules::MISSING.to_string()),
        ]
    );
}

#[test]
fn a_rule_an_exception_or_another_rule_covers_entirely_is_an_error() {
    // An exception that holds wherever the rule does: exact names against a prefix.
    let covered = format!(
        "{GOOD}[[rule.exception]]\nreason = \"all of them\"\nwhen = {{ basename = {{ prefix = [\"n\"] }} }}\n"
    );
    let err = load_text(&covered).unwrap_err();
    assert!(
        err.contains("t.toml:18: rule TEST_RULE can never fire: this exception"),
        "{err}"
    );
    // A narrower exception is what exceptions are for.
    let narrow = format!(
        "{GOOD}[[rule.exception]]\nreason = \"port checks\"\nwhen = {{ basename = [\"nc\"], argv = {{ any = [\"-z\"] }} }}\n"
    );
    load_text(&narrow).unwrap();
    // An exception broader in another way (parent anything) still does not cover: the rule
    // does not say its parent.
    let other = format!(
        "{GOOD}[[rule.exception]]\nreason = \"under init\"\nwhen = {{ parent = {{ basename = [\"tini\"] }} }}\n"
    );
    load_text(&other).unwrap();

    // Every branch of a top-level `any` covered by the exception.
    let branches = GOOD.replace(
        "basename = [\"nc\"]",
        "any = [{ basename = [\"nc\"], argv = { any = [\"-e\"] } }, { basename = [\"ncat\"] }]",
    );
    let err = load_text(&format!(
        "{branches}[[rule.exception]]\nreason = \"both\"\nwhen = {{ basename = [\"nc\", \"ncat\", \"netcat\"] }}\n"
    ))
    .unwrap_err();
    assert!(err.contains("can never fire: this exception"), "{err}");
    load_text(&format!(
        "{branches}[[rule.exception]]\nreason = \"one\"\nwhen = {{ basename = [\"ncat\"] }}\n"
    ))
    .unwrap();

    // A user's file excepting a shipped rule wholesale: an error at the user's line.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "# ours\n[[exception]]\nrule = \"UNEXPECTED_CHILD_SHELL\"\nreason = \"noisy\"\nwhen = { scope = \"container\" }\n",
    )
    .unwrap();
    let err = RuleSet::load(&[shipped(), dir.path().to_path_buf()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mine.toml:2: rule UNEXPECTED_CHILD_SHELL can never fire"),
        "{err}"
    );

    // A second rule of the same category that fires only where the first does.
    let second = GOOD
        .replace("TEST_RULE", "TEST_RULE_2")
        .replace(
            "basename = [\"nc\"]",
            "basename = [\"nc\"]\nargv = { any = [\"-e\"] }",
        )
        .replace(
            "exec = { exe = \"/bin/nc\" }",
            "exec = { exe = \"/bin/nc\", argv = [\"nc\", \"-e\", \"sh\"] }",
        );
    let both = format!("{GOOD}{second}");
    let err = load_text(&both).unwrap_err();
    assert!(
        err.contains("t.toml:19: rule TEST_RULE_2 can never fire: rule TEST_RULE (t.toml:2)"),
        "{err}"
    );
    // Under its own category it is a rule of its own.
    load_text(&format!(
        "{GOOD}{}",
        second.replace("Execution: Test", "Execution: Test two")
    ))
    .unwrap();
    // And the covering rule with an exception leaves the other reachable.
    let excepted = GOOD.replace(
        "[[rule.test]]\nexpect = \"fire\"",
        "[[rule.exception]]\nreason = \"r\"\nwhen = { argv = { any = [\"-e\"] } }\n[[rule.test]]\nexpect = \"fire\"",
    );
    load_text(&format!("{excepted}{second}")).unwrap();
}

/// Every condition of a shipped rule is needed by one of its tests: deleting any one condition
/// line of a `[rule.when]` table, an exception's `when`, or one branch of a multi-line `any`
/// list must make a test fail (or the file fail to load). A condition no test needs is a
/// condition nobody has seen work.
#[test]
fn every_shipped_condition_is_needed_by_a_test() {
    let mut files: Vec<(usize, PathBuf, String)> = std::fs::read_dir(shipped())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| (0, p.clone(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort_by(|a, b| a.1.cmp(&b.1));
    let (mut tried, mut survived) = (0, Vec::new());
    for f in 0..files.len() {
        let alone = RuleSet::from_texts(&files[f..=f]).unwrap_or_else(|e| panic!("{e}"));
        assert!(alone.run_tests().failures.is_empty());
        let text = files[f].2.clone();
        let lines: Vec<&str> = text.lines().collect();
        let mut in_when = false;
        let mut candidates = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with('[') {
                in_when = *l == "[rule.when]";
                continue;
            }
            if l.is_empty() {
                in_when = false;
            }
            let key = l.split(" = ").next().unwrap_or("");
            let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if (in_when && is_key && l.contains(" = "))
                || l.starts_with("when = ")
                || l.starts_with("  { ")
            {
                candidates.push(i);
            }
        }
        for i in candidates {
            tried += 1;
            let mutated: String = lines
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| format!("{l}\n"))
                .collect();
            // Each shipped file stands alone (no exceptions across files), so only the mutated
            // file is loaded and tested.
            let set = [(0, files[f].1.clone(), mutated)];
            let killed = match RuleSet::from_texts(&set) {
                Err(_) => true,
                Ok(s) => !s.run_tests().failures.is_empty(),
            };
            if !killed {
                survived.push(format!("{}:{}: {}", files[f].1.display(), i + 1, lines[i]));
            }
        }
    }
    assert!(tried > 100, "only {tried} conditions found");
    assert!(
        survived.is_empty(),
        "conditions no test needs (delete them, or add the test that shows them working):\n{}",
        survived.join("\n")
    );
}

#[test]
fn socket_peers_on_stdio() {
    let rule = r#"
[[rule]]
id = "TEST_PEER"
category = "Execution: Test"
severity = "LOW"
tactic = "EXECUTION"
description = "d"
next_steps = "n"
[rule.when]
basename = ["sh"]
stdin_peer = { port = [4444, 5555], loopback = false }
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/sh", stdin_peer = "203.0.113.9:4444" }
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/sh", stdin_peer = "[2001:db8::7]:5555" }
[[rule.test]]
name = "a loopback peer"
expect = "quiet"
exec = { exe = "/bin/sh", stdin_peer = "127.0.0.1:4444" }
[[rule.test]]
name = "another port"
expect = "quiet"
exec = { exe = "/bin/sh", stdin_peer = "203.0.113.9:80" }
[[rule.test]]
name = "the socket on stdout, not stdin"
expect = "quiet"
exec = { exe = "/bin/sh", stdout_peer = "203.0.113.9:4444" }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/sh", stdin = "inetSocket" }
"#;
    let set = load_text(rule).unwrap();
    let report = set.run_tests();
    let failures: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(report.passed, 6);
    let t = &set.get(0).tests[1];
    let ev: Vec<(String, String)> = set
        .evidence(0, t.view())
        .into_iter()
        .map(|e| (e.field, e.value))
        .collect();
    assert_eq!(ev[1], ("stdin_peer".into(), "[2001:db8::7]:5555".into()));

    let ip = rule.replace(
        "stdin_peer = { port = [4444, 5555], loopback = false }",
        "stdin_peer = { ip = { prefix = [\"203.0.113.\"] }, protocol = [\"TCP\"] }",
    );
    let set = load_text(&ip).unwrap();
    let fails: Vec<String> = set
        .run_tests()
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect();
    // The IPv6 test no longer fires, the port-80 one now does.
    assert_eq!(fails.len(), 2, "{fails:?}");

    let err = load_text(&rule.replace(
        "203.0.113.9:4444\" }\n[[rule.test]]\nexpect = \"fire\"",
        "nowhere\" }\n[[rule.test]]\nexpect = \"fire\"",
    ))
    .unwrap_err();
    assert!(
        err.contains("t.toml:12:") && err.contains("peer \"nowhere\""),
        "{err}"
    );
    let err = load_text(&rule.replace("port = [4444, 5555]", "port = []")).unwrap_err();
    assert!(err.contains("empty condition: peer port"), "{err}");
}

#[test]
fn an_error_in_a_nested_table_names_that_tables_line() {
    let bad = GOOD.replace(
        "basename = [\"nc\"]",
        "any = [\n  { basename = [\"nc\"] },\n  { basename = [\"ncat\"], parent = { exe = { regex = [\"(unclosed\"] } } },\n]",
    );
    let err = load_text(&bad).unwrap_err();
    // Line 13 holds the parent table with the bad regex (the any list starts on line 11).
    assert!(
        err.contains("t.toml:13: rule TEST_RULE: when: invalid regex"),
        "{err}"
    );
}

/// A view that counts neighbour lookups (an engine's are hash lookups by inode).
struct Counting<'a> {
    chain: &'a Vec<ward_event::ExecEvent>,
    lookups: std::cell::Cell<usize>,
}

impl ward_rules::ExecView for Counting<'_> {
    fn at(&self, depth: usize) -> Option<&ward_event::ExecEvent> {
        self.chain.get(depth)
    }
    fn stdin_writer(&self, _: usize) -> Option<&ward_event::ExecEvent> {
        self.lookups.set(self.lookups.get() + 1);
        None
    }
    fn stdout_reader(&self, _: usize) -> Option<&ward_event::ExecEvent> {
        self.lookups.set(self.lookups.get() + 1);
        None
    }
}

#[test]
fn neighbours_are_looked_up_only_for_conditions_that_ask() {
    let mut chain = vec![exec(20, 10, "/bin/sh"), exec(10, 1, "/usr/sbin/nginx")];
    for e in &mut chain {
        e.container_id = Some("ab".repeat(32));
    }
    let view = Counting {
        chain: &chain,
        lookups: Default::default(),
    };
    let mut fired = Vec::new();
    // An `sh` exec under nginx asks only the rules that name `sh` in a branch with a
    // neighbour condition.
    let shipped = RuleSet::load(&[shipped()]).unwrap();
    shipped.eval(&view, &mut fired);
    let asked = view.lookups.get();
    let ucs = shipped
        .rules()
        .iter()
        .position(|r| r.id == "UNEXPECTED_CHILD_SHELL")
        .unwrap() as u32;
    assert_eq!(fired, vec![ucs]);
    // PIPED_ENCODED_CODE_EXECUTION, NETCAT and LOCAL_RECON each have one sh branch with a
    // stdin_writer: three lookups, no more.
    assert_eq!(asked, 3, "{asked} lookups");
    // A rule set without neighbour conditions never asks.
    let view = Counting {
        chain: &chain,
        lookups: Default::default(),
    };
    load_text(GOOD).unwrap().eval(&view, &mut fired);
    assert_eq!(view.lookups.get(), 0);
}

/// Hot paths never panic on input: every shipped rule (on or off) over odd execs.
#[test]
fn odd_execs_do_not_panic_any_rule() {
    let set = RuleSet::load(&[shipped()]).unwrap();
    let odd_args: Vec<Vec<String>> = vec![
        vec![],
        vec![String::new()],
        vec!["x".into(), String::new(), "://".into(), "é://ü".into()],
        vec!["sh".into(), "-c".into(), "A".repeat(70_000)],
        vec![
            "sh".into(),
            "-c".into(),
            format!("echo {}== | base64 -d", "QUJD".repeat(5000)),
        ],
        vec!["nc".into(), "-".into(), "--".into(), "-e".into()],
        vec![
            "x".into(),
            "\u{0}\u{7f}\u{ff}\u{10ffff}".into(),
            "http://".into(),
            "ftp:/".into(),
        ],
        vec!["sudo".into(), "\\".into(), "\\\\".into(), "-u#".into()],
    ];
    let paths = [
        "",
        "/",
        "x",
        "/memfd:",
        "/dev/shm/",
        "/bin/sh",
        "/usr/bin/é",
        "/a/",
    ];
    let mut fired = Vec::new();
    for p in paths {
        for a in &odd_args {
            let mut e = exec(7, 6, p);
            e.argv = a.clone();
            e.container_id = Some(String::new());
            let mut parent = exec(6, 5, "/usr/sbin/nginx");
            parent.argv = a.clone();
            let chain = vec![e.clone(), parent];
            set.eval(&chain, &mut fired);
            let view = ward_rules::WithPeers {
                chain: &chain,
                stdin_writer: Some(&e),
                stdout_reader: Some(&e),
            };
            set.eval(&view, &mut fired);
            for r in set.rules() {
                r.verdict(&view);
            }
            for &i in &fired {
                set.evidence(i, &view);
            }
            fired.clear();
        }
    }
}

/// What the rule set shares between rules while judging one exec (the basename index of rules
/// and of `any` branches, the joined arguments, the base64 scan) changes no decision: every
/// enabled shipped rule gets the same verdict through `RuleSet::eval_waiting` as through
/// `Rule::verdict` alone (which works everything out itself), on every shipped rule's test
/// execs, not only its own.
#[test]
fn the_rule_sets_shared_work_changes_no_verdict() {
    use ward_rules::Verdict;
    let set = RuleSet::shipped_and(&[]).expect("shipped rules load");
    let mut compared = 0;
    let mut fired_somewhere = 0;
    for t in set.rules().iter().flat_map(|r| r.tests.iter()) {
        let (mut fired, mut waiting) = (Vec::new(), Vec::new());
        set.eval_waiting(t, &mut fired, &mut waiting);
        for (i, rule) in set.rules().iter().enumerate() {
            if !rule.enabled {
                continue;
            }
            let i = i as u32;
            let through_set = if fired.contains(&i) {
                Verdict::Fire
            } else if waiting.contains(&i) {
                Verdict::Undecided
            } else {
                Verdict::Quiet
            };
            assert_eq!(
                through_set,
                rule.verdict(t),
                "rule {} on a test exec of {}",
                rule.id,
                t.chain()[0].filename
            );
            compared += 1;
            fired_somewhere += usize::from(through_set == Verdict::Fire);
        }
    }
    assert!(compared > 1000, "{compared} comparisons");
    assert!(fired_somewhere > 100, "{fired_somewhere} firings");
}

/// Rules tried on every exec whose argv conditions are strings are tried only when one of
/// those strings occurs in the exec's argv (one search for all of them, over the lower-cased
/// argv): that gate lets through every case the rule's own condition takes, and the rule
/// still decides.
#[test]
fn strings_gating_rules_change_no_decision() {
    let text = r#"
[[rule]]
id = "CI_CMDLINE"
category = "Execution: Test ci"
severity = "LOW"
tactic = "EXECUTION"
techniques = ["T1059"]
description = "d"
next_steps = "n"
key = "cmdline"
[rule.when]
argv = { cmdline = { contains = ["stratum+tcp://", "stratum://"], ignore_case = true } }
[[rule.test]]
expect = "fire"
exec = { exe = "/tmp/x", argv = ["x", "-o", "STRATUM+TCP://pool:3333"] }
[[rule.test]]
expect = "quiet"
exec = { exe = "/tmp/x", argv = ["x", "-o", "pool:3333"] }

[[rule]]
id = "CS_ARG"
category = "Execution: Test cs"
severity = "LOW"
tactic = "EXECUTION"
techniques = ["T1059"]
description = "d"
next_steps = "n"
key = "cmdline"
[rule.when]
argv = { any = { contains = ["f0VMR"] } }
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/echo", argv = ["echo", "xf0VMRgIBAQ"] }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/echo", argv = ["echo", "xF0VMRGIBAQ"] }

[[rule]]
id = "BRANCHES"
category = "Execution: Test branches"
severity = "LOW"
tactic = "EXECUTION"
techniques = ["T1059"]
description = "d"
next_steps = "n"
key = "cmdline"
[rule.when]
any = [{ argv = { any = { contains = ["alpha"] } } }, { argv = { cmdline = { contains = ["Beta"] } }, uid = [0] }]
[[rule.test]]
expect = "fire"
exec = { exe = "/bin/x", argv = ["x", "--Beta"], uid = 0 }
[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/x", argv = ["x", "--Beta"], uid = 1 }
"#;
    let set = load_text(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        set.literal_gated(),
        3,
        "all three are gated by their strings"
    );
    let report = set.run_tests();
    let failures: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let id_of = |i: u32| set.get(i).id.clone();
    let fired = |argv: &[&str]| {
        let mut e = exec(2, 1, "/bin/x");
        e.argv = argv.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        set.eval(&vec![e], &mut out);
        out.into_iter().map(id_of).collect::<Vec<_>>()
    };
    // Any case of an ignore_case string passes the gate; the exact case of a case-sensitive
    // one fires and another case does not; a string only in argument 0 is not an argument.
    assert_eq!(fired(&["x", "-o", "sTrAtUm://p:1"]), ["CI_CMDLINE"]);
    assert_eq!(fired(&["x", "f0VMR"]), ["CS_ARG"]);
    assert!(fired(&["x", "F0vmr"]).is_empty());
    assert!(fired(&["f0VMR", "x"]).is_empty());
    assert_eq!(fired(&["x", "ALPHA", "alpha"]), ["BRANCHES"]);
    assert!(fired(&["x", "ALPHA"]).is_empty());
    // Two gated rules on one exec: both are tried.
    assert_eq!(fired(&["x", "stratum://f0VMR"]), ["CI_CMDLINE", "CS_ARG"]);
    assert!(fired(&["x", "-la", "/tmp"]).is_empty());
}

/// An engine indexes pipes only for the execs the rules can ask about as neighbours: the
/// shipped rules name them all; a rule whose neighbour condition names no basename makes
/// every exec a possible neighbour.
#[test]
fn pipe_neighbour_names_cover_every_neighbour_condition() {
    let set = RuleSet::shipped_and(&[]).expect("shipped rules load");
    let names = set
        .pipe_neighbour_names()
        .expect("shipped neighbours are named");
    for n in ["curl", "wget", "base64", "openssl", "sh", "bash", "nc"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    assert!(!names.iter().any(|x| x == "tee"), "{names:?}");
    let any_name = load_text(
        r#"
[[rule]]
id = "FED_BY_A_NETWORK_PIPE"
category = "Test: fed by a pipe"
severity = "LOW"
tactic = "EXECUTION"
description = "d"
next_steps = "n"
when = { basename = ["sh"], stdin_writer = { stdout = ["pipe"], exe = { prefix = ["/tmp/"] } } }

[[rule.test]]
expect = "fire"
exec = { exe = "/bin/sh", argv = ["sh"], stdin_writer = { exe = "/tmp/x", argv = ["x"], stdout = "pipe" } }

[[rule.test]]
expect = "quiet"
exec = { exe = "/bin/sh", argv = ["sh"], stdin_writer = { exe = "/usr/bin/x", argv = ["x"], stdout = "pipe" } }
"#,
    )
    .expect("loads");
    assert_eq!(any_name.pipe_neighbour_names(), None);
}
