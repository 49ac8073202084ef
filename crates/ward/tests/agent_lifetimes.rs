//! End to end: a malicious binary or script is reported whatever its process's lifetime.
//!
//! Every scenario here runs in a container whose only process is the one under test and exits
//! at once (`podman run --rm`, the entrypoint case), so nothing is left running by the time
//! the agent reads the exec: `/proc/PID/exe` and `/proc/PID/root` are gone, and no other
//! process of the container's mount namespace exists. The agent must hash what ran through
//! fanotify's handle (or hold the process, for memfd) and read scripts without the process.
//!
//! With the default 50 ms poll the process is gone before its exec is read in most runs
//! (before fanotify, 42 of 200 entrypoint containers were hashed here; docs/agent.md). A
//! slower reader (500 ms, tried) also loses the container id of a container the runtime has
//! already cleaned up (its cgroup is gone): not covered here.
//!
//! One agent is shared (its own intel feed: the testkit payloads, the image's
//! `which.debianutils` script); each test asserts that the agent's hash misses that mean "the
//! file was lost" (exe gone, identity mismatch) stay 0.
//!
//! Needs root and podman (`ward_testkit::require_containers!` skips otherwise).

mod lifetimes_common;
use lifetimes_common::*;
use std::time::{Duration, Instant};
use ward_testkit::require_containers;

/// The payload as the entrypoint: it prints its line and exits before the agent reads the exec.
#[test]
fn entrypoint_binary_is_built_in() {
    let images = require_containers!();
    let agent = agent(&images);
    let x = run_to_exit(&images.debian, "entry", &[&images.payload_path]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, BUILT_IN, |_| true);
    assert_eq!(sha(&f), images.payload_sha256);
    assert_eq!(proc0(&f, "path"), images.payload_path.as_str());
    assert_eq!(f["sourceProperties"]["File_Layer"], "image", "{f:#}");
    assert_no_lost_files(agent);
}

/// 20 entrypoint containers in a row, each reported: the outcome does not depend on timing.
#[test]
fn entrypoint_binary_twenty_times() {
    let images = require_containers!();
    let agent = agent(&images);
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(run_to_exit(&images.busybox, "entry20", &[&images.payload_path]).id);
    }
    for id in &ids {
        let f = wait_for(agent, id, BUILT_IN, |_| true);
        assert_eq!(sha(&f), images.payload_sha256);
    }
    assert_no_lost_files(agent);
}

/// The last command of `sh -c`, which the shell execs in place of itself.
#[test]
fn last_command_of_sh_c_is_built_in() {
    let images = require_containers!();
    let agent = agent(&images);
    let cmd = format!("echo start; {}", images.payload_path);
    let x = run_to_exit(&images.debian, "shc", &["sh", "-c", &cmd]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, BUILT_IN, |_| true);
    assert_eq!(sha(&f), images.payload_sha256);
    assert_no_lost_files(agent);
}

/// A copy of an image binary run from /tmp: the upper layer, Added.
#[test]
fn copy_run_from_tmp_is_added() {
    let images = require_containers!();
    let agent = agent(&images);
    let cmd = format!("cp {} /tmp/p && exec /tmp/p", images.payload_path);
    let x = run_to_exit(&images.debian, "tmpcopy", &["sh", "-c", &cmd]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, ADDED, |f| proc0(f, "path") == "/tmp/p");
    assert_eq!(sha(&f), images.payload_sha256);
    assert_eq!(f["sourceProperties"]["File_Layer"], "added", "{f:#}");
    assert_no_lost_files(agent);
}

/// An image binary overwritten with the payload and run: copied up over the lower file,
/// Modified.
#[test]
fn overwritten_image_binary_is_modified() {
    let images = require_containers!();
    let agent = agent(&images);
    let cmd = format!(
        "cat {} > /usr/bin/whoami && exec /usr/bin/whoami",
        images.payload_path
    );
    let x = run_to_exit(&images.debian, "overwrite", &["sh", "-c", &cmd]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, MODIFIED, |f| {
        proc0(f, "path") == "/usr/bin/whoami"
    });
    assert_eq!(sha(&f), images.payload_sha256);
    assert_eq!(f["sourceProperties"]["File_Layer"], "modified", "{f:#}");
    assert_no_lost_files(agent);
}

/// Fileless: python3 copies the payload into a memfd and execs it through /proc/self/fd.
#[test]
fn memfd_exec_is_reported() {
    let images = require_containers!();
    let agent = agent(&images);
    let code = format!(
        "import os\n\
         fd = os.memfd_create('payload')\n\
         os.write(fd, open('{}', 'rb').read())\n\
         os.execve('/proc/self/fd/%d' % fd, ['payload'], {{}})\n",
        images.payload_path
    );
    let x = run_to_exit(&images.debian, "memfd", &["python3", "-c", &code]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, ADDED, |f| sha(f) == images.payload_sha256);
    assert_eq!(f["sourceProperties"]["File_Layer"], "memfd", "{f:#}");
    assert_no_lost_files(agent);
}

/// The payload copied to the host's /dev/shm (a tmpfs; podman mounts a container's /dev/shm
/// `noexec`) and run from there by a process that exits at once: not from an image, Added.
#[test]
fn binary_run_from_dev_shm_is_added() {
    let images = require_containers!();
    let agent = agent(&images);
    let path = format!("/dev/shm/ward-test-payload-{}", std::process::id());
    // Copied and run by one shell: a copy written by this (multi-threaded) test process could
    // be open in a child another test forks at that moment (ETXTBSY at exec).
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("cp \"$0\" \"$1\" && \"$1\"; rc=$?; rm -f \"$1\"; exit $rc")
        .arg(&images.payload_host_copy)
        .arg(&path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("WARD-TEST-PAYLOAD"));
    let deadline = Instant::now() + WAIT;
    let f = loop {
        let found = agent
            .findings()
            .into_iter()
            .find(|f| f["category"] == ADDED && proc0(f, "path") == path.as_str());
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no Added finding for {path}; agent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sha(&f), images.payload_sha256);
    assert_no_lost_files(agent);
}

/// A deleted binary run through an fd that still holds it (`/proc/self/fd/3`): layer
/// `deleted`, Added.
#[test]
fn deleted_binary_is_added() {
    let images = require_containers!();
    let agent = agent(&images);
    let cmd = format!(
        "cp {} /tmp/d && exec 3</tmp/d && rm /tmp/d && exec /proc/self/fd/3",
        images.payload_path
    );
    let x = run_to_exit(&images.debian, "deleted", &["bash", "-c", &cmd]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, ADDED, |f| sha(f) == images.payload_sha256);
    assert_eq!(f["sourceProperties"]["File_Layer"], "deleted", "{f:#}");
    assert_no_lost_files(agent);
}

/// A script from the image whose hash is in intel, as the entrypoint: Built in (the layer is
/// found without the process).
#[test]
fn image_script_as_entrypoint_is_built_in() {
    let images = require_containers!();
    let agent = agent(&images);
    let sum = which_sha(&images);
    let x = run_to_exit(&images.debian, "script", &[WHICH, "ls"]);
    assert!(x.stdout.contains("/ls"), "{x:?}");
    let f = wait_for(agent, &x.id, BUILT_IN, |f| {
        f["sourceProperties"]["Matched_File"] == "script"
    });
    assert_eq!(f["sourceProperties"]["Matched_Sha256"], sum);
    assert_eq!(f["sourceProperties"]["File_Layer"], "image", "{f:#}");
    assert_no_lost_files(agent);
}

/// A binary run again after its hash was cached gets an ignore mark (the kernel stops
/// reporting it, for cost): `touch` then changes its identity without a write. Whether the
/// kernel reports the last exec then depends on the kernel (the mark survives an attribute
/// change; on this one an overlay file touched is sometimes reported again): either way every
/// one of the seven execs is hashed, through the kernel's handle or the one the agent kept
/// (found by the overlay file's inode number and size when its times changed), and none is
/// lost. A run in CI lost the touched exec (`exe gone`) before the inode-number lookup.
#[test]
fn ignored_binary_touched_is_hashed_every_time() {
    let images = require_containers!();
    let agent = agent(&images);
    let cmd = format!(
        "cp {} /tmp/t && for i in 1 2 3 4 5 6; do /tmp/t >/dev/null; sleep 0.2; done; \
         touch -d 2001-01-01 /tmp/t && exec /tmp/t",
        images.payload_path
    );
    let x = run_to_exit(&images.debian, "touched", &["sh", "-c", &cmd]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, ADDED, |f| proc0(f, "path") == "/tmp/t");
    assert_eq!(sha(&f), images.payload_sha256);
    // The repeats are in the store's count (the findings file has the first firing).
    use ward_store::FindingStore;
    let name = f["name"].as_str().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let store = ward_store::SqliteStore::open_read_only(agent.dir().join("ward.db")).unwrap();
        let count = store.get(name).unwrap().map(|f| f.count()).unwrap_or(0);
        if count == 7 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{count} of the 7 execs of /tmp/t reported; agent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_no_lost_files(agent);
}

/// A binary the kernel no longer reports (ignored after its hash was cached) rewritten in
/// place (same inode) with the payload and run: the write clears the mark, and the new
/// contents are hashed.
#[test]
fn ignored_binary_rewritten_in_place_is_hashed_anew() {
    let images = require_containers!();
    let agent = agent(&images);
    let cmd = format!(
        "cp /bin/true /tmp/r && for i in 1 2 3 4 5 6; do /tmp/r; sleep 0.2; done; \
         cat {} > /tmp/r && exec /tmp/r",
        images.payload_path
    );
    let x = run_to_exit(&images.debian, "rewritten", &["sh", "-c", &cmd]);
    assert!(x.stdout.contains("WARD-TEST-PAYLOAD"), "{x:?}");
    let f = wait_for(agent, &x.id, ADDED, |f| proc0(f, "path") == "/tmp/r");
    assert_eq!(sha(&f), images.payload_sha256);
    assert_no_lost_files(agent);
}
