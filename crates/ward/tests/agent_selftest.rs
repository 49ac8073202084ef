//! `ward selftest` end to end: it starts its own agent, triggers every finding type in a
//! throwaway container and must report all of them (root + podman; skips otherwise, fails
//! rather than skips when root but the container setup is broken).

use std::process::Command;

#[test]
fn selftest_reports_every_finding_type() {
    let _images = ward_testkit::require_containers!();
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("selftest")
        .env_remove("WARD_DB")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches(" PASS (").count(), 6, "{stdout}");
    assert!(stdout.contains("all 6 findings reported"), "{stdout}");
    let name = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ward selftest: container "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    // The throwaway container is gone.
    let ps = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains(&name));
}
