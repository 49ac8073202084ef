//! A misconfigured output is a startup error naming the key (no root needed: outputs are
//! checked and opened before the sensor loads).

use std::process::Command;

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn agent_error(toml: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ward.toml");
    std::fs::write(&cfg, toml).unwrap();
    let out = Command::new(WARD)
        .args(["agent", "--metrics-addr", "none", "--config"])
        .arg(&cfg)
        .arg("--db")
        .arg(dir.path().join("w.db"))
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the agent started");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("ward agent: ready"), "{err}");
    err
}

#[test]
fn an_unknown_format_names_the_line_and_key() {
    let e = agent_error(
        "[[outputs]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"xml\"\n",
        &[],
    );
    assert!(e.contains("ward.toml:4:") && e.contains("format"), "{e}");
}

#[test]
fn an_unknown_kind_names_the_line_and_key() {
    let e = agent_error("[[outputs]]\nkind = \"kafka\"\n", &[]);
    assert!(e.contains("ward.toml:2:") && e.contains("kind"), "{e}");
}

#[test]
fn a_bad_url_names_the_entry() {
    let e = agent_error(
        "[[outputs]]\nkind = \"file\"\npath = \"/tmp/x\"\n[[outputs]]\nkind = \"webhook\"\nurl = \"localhost:80/x\"\n",
        &[],
    );
    assert!(e.contains("outputs[1].url"), "{e}");
    let e = agent_error(
        "[[outputs]]\nkind = \"syslog\"\nurl = \"udp://127.0.0.1\"\n",
        &[],
    );
    assert!(
        e.contains("outputs[0].url") && e.contains("HOST:PORT"),
        "{e}"
    );
}

#[test]
fn an_unreadable_ca_file_or_key_names_the_key() {
    let e = agent_error(
        "[[outputs]]\nkind = \"webhook\"\nurl = \"https://127.0.0.1:9/\"\nca_file = \"/nonexistent/ca.pem\"\n",
        &[],
    );
    assert!(
        e.contains("outputs[0].ca_file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let e = agent_error(
        "[[outputs]]\nkind = \"webhook\"\nurl = \"https://127.0.0.1:9/\"\nhmac_key_env = \"WARD_TEST_UNSET_KEY\"\n",
        &[],
    );
    assert!(e.contains("outputs[0].hmac_key_env"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let e = agent_error(
        &format!(
            "[[outputs]]\nkind = \"webhook\"\nurl = \"https://127.0.0.1:9/\"\nca_file = \"{}\"\n",
            junk.display()
        ),
        &[],
    );
    assert!(e.contains("outputs[0].ca_file"), "{e}");
}

#[test]
fn output_flags_are_checked_too() {
    let e = agent_error("", &["--output", "kafka:broker:9092"]);
    assert!(e.contains("--output \"kafka:broker:9092\""), "{e}");
    let e = agent_error(
        "",
        &["--output", "jsonl:/tmp/a", "--output", "jsonl:/tmp/a"],
    );
    assert!(e.contains("a second output named"), "{e}");
}

#[test]
fn config_check_checks_outputs_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ward.toml");
    std::fs::write(&cfg, "[[outputs]]\nkind = \"syslog\"\nurl = \"udp://h\"\n").unwrap();
    let out = Command::new(WARD)
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("outputs[0].url"), "{err}");
    std::fs::write(
        &cfg,
        "[[outputs]]\nkind = \"syslog\"\nurl = \"udp://h:514\"\n",
    )
    .unwrap();
    let out = Command::new(WARD)
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
