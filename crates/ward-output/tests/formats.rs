//! Golden tests of every format: each is a pure function of the finding, so a fixed input
//! gives a fixed output. `WARD_BLESS=1 cargo test -p ward-output --test formats` rewrites the
//! golden files; review the diff.

use serde_json::Value;
use std::path::{Path, PathBuf};
use ward_event::Finding;
use ward_output::format::{self, Context, Format, Privacy};
use ward_output::local::Encoder;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn inputs() -> Vec<Finding> {
    std::fs::read_to_string(golden_dir().join("input.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ctx() -> Context {
    Context {
        hostname: "fallback-host".into(),
        version: "0.1.0".into(),
        pid: 4242,
        ..Context::default()
    }
}

fn check(name: &str, got: String) {
    let path = golden_dir().join(name);
    if std::env::var_os("WARD_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (WARD_BLESS=1 writes it)", path.display()));
    assert_eq!(got, want, "{name} differs from its golden file");
}

fn lines(format: Format, privacy: Privacy) -> String {
    let enc = Encoder {
        format,
        privacy,
        ctx: ctx(),
    };
    inputs()
        .iter()
        .map(|f| enc.encode(f) + "\n")
        .collect::<String>()
}

#[test]
fn scc_is_the_finding_as_stored() {
    let got = lines(Format::Scc, Privacy::default());
    for (line, f) in got.lines().zip(inputs()) {
        let back: Finding = serde_json::from_str(line).unwrap();
        assert_eq!(back, f, "native SCC JSON is the finding itself");
    }
    check("scc.jsonl", got);
}

#[test]
fn falco_alert_json() {
    let got = lines(Format::Falco, Privacy::default());
    for line in got.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        // falcosidekick's contract: a non-empty output, a known priority, rule, RFC 3339 time.
        assert!(!v["output"].as_str().unwrap().is_empty());
        assert!(v["output"].as_str().unwrap().is_ascii(), "output is ASCII");
        assert!(matches!(
            v["priority"].as_str().unwrap(),
            "Critical" | "Error" | "Warning" | "Notice"
        ));
        assert!(ward_event::time::parse_rfc3339(v["time"].as_str().unwrap()).is_some());
        for k in [
            "container.id",
            "container.name",
            "container.image.repository",
            "k8s.ns.name",
            "k8s.pod.name",
            "proc.cmdline",
            "proc.exepath",
            "proc.pid",
            "proc.pname",
            "fd.rip",
            "fd.rport",
        ] {
            assert!(v["output_fields"].get(k).is_some(), "output_fields.{k}");
        }
        assert!(v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().starts_with('T')));
    }
    check("falco.jsonl", got);
}

#[test]
fn ocsf_detection_finding() {
    let got = lines(Format::Ocsf, Privacy::default());
    for line in got.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(
            v["type_uid"].as_u64().unwrap(),
            200400 + v["activity_id"].as_u64().unwrap()
        );
        assert!(v["severity_id"].as_u64().unwrap() >= 2);
        assert!(v["time"].as_u64().is_some(), "time is epoch milliseconds");
        assert!(!v["finding_info"]["attacks"].as_array().unwrap().is_empty());
        assert!(v["evidences"][0]["process"]["pid"].as_u64().is_some());
    }
    check("ocsf.jsonl", got);
}

#[test]
fn text_and_syslog() {
    check("text.txt", lines(Format::Text, Privacy::default()));
    let got: String = inputs()
        .iter()
        .map(|f| format::syslog_5424(f, &ctx(), 16, Format::Text) + "\n")
        .collect();
    for l in got.lines() {
        assert!(l.is_ascii());
        assert!(l.starts_with('<'));
    }
    check("syslog.txt", got);
}

#[test]
fn privacy_switches_leave_out_env_args_and_scripts() {
    let all = Privacy {
        env: true,
        args: true,
        scripts: true,
    };
    for fmt in [Format::Scc, Format::Falco, Format::Ocsf, Format::Text] {
        let got = lines(fmt, all);
        for secret in [
            "s3cr3t",                     // an environment value
            "-static",                    // an argument
            "ward-test-payload --beacon", // a command line
            "chmod +x",                   // script contents
        ] {
            assert!(!got.contains(secret), "{fmt:?} still carries {secret:?}");
        }
    }
    // Without the switches the same text is there (the check above can fail).
    let plain = lines(Format::Scc, Privacy::default());
    assert!(plain.contains("s3cr3t") && plain.contains("-static") && plain.contains("chmod +x"));
    check("scc-redacted.jsonl", lines(Format::Scc, all));
}

#[test]
fn hidden_characters_are_escaped() {
    let got = lines(Format::Falco, Privacy::default());
    assert!(!got.contains('\u{202e}'));
    assert!(got.contains("\\u202E"));
}

#[test]
fn env_privacy_also_drops_env_values_from_rule_evidence() {
    // A rule finding on the environment: the matching entry is in its evidence and its
    // description, the whole environment (cut) in envVariables.
    let mut f = inputs().remove(3);
    let secret = "http://user:pa55w0rd@203.0.113.9:3128";
    f.description = format!(
        "A program ran with a proxy. Rule PROGRAM_RUN_WITH_DISALLOWED_HTTP_PROXY_ENV matched: scope = container, env = HTTP_PROXY={secret}."
    );
    f.source_properties.insert(
        ward_event::finding::EVIDENCE_KEY.into(),
        serde_json::json!([{"field": "env", "value": format!("HTTP_PROXY={secret}")},
                           {"field": "parent.env", "value": format!("ALL_PROXY={secret}")}]),
    );
    f.processes[0].env_variables_truncated = true;
    let env_only = Privacy {
        env: true,
        args: false,
        scripts: false,
    };
    for fmt in [Format::Scc, Format::Falco, Format::Ocsf, Format::Text] {
        let enc = Encoder {
            format: fmt,
            privacy: env_only,
            ctx: ctx(),
        };
        let got = enc.encode(&f);
        assert!(!got.contains("pa55w0rd"), "{fmt:?}: {got}");
        assert!(!got.contains("s3cr3t"), "{fmt:?}: {got}");
        assert!(!got.contains("envVariablesTruncated"), "{fmt:?}: {got}");
    }
    let enc = |privacy| Encoder {
        format: Format::Scc,
        privacy,
        ctx: ctx(),
    };
    let redacted: Finding = serde_json::from_str(&enc(env_only).encode(&f)).unwrap();
    assert_eq!(
        redacted.evidence()[0].value,
        "HTTP_PROXY=<redacted>",
        "the variable's name stays"
    );
    assert_eq!(redacted.evidence()[1].value, "ALL_PROXY=<redacted>");
    assert!(redacted
        .description
        .ends_with("env = HTTP_PROXY=<redacted>."));
    // Without the switch everything is there (the checks above can fail).
    let plain = enc(Privacy::default()).encode(&f);
    assert!(plain.contains("pa55w0rd") && plain.contains("\"envVariablesTruncated\":true"));
}
