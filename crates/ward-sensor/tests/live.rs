//! Live tests: real BPF loads, real processes. Need root; skipped otherwise.

mod common;

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use common::{has_exec, python3, sensor, Collector};
use ward_sensor::{DupSyscall, FdKind, OverlayLayer, RawEvent, SockType};

fn stdio_of(s: &TcpStream) -> Stdio {
    Stdio::from(OwnedFd::from(s.try_clone().unwrap()))
}

fn exec_with_socket_stdio(bind: &str) {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let listener = TcpListener::bind(bind).unwrap();
    let server_addr = listener.local_addr().unwrap();
    let stream = TcpStream::connect(server_addr).unwrap();
    let (_peer, _) = listener.accept().unwrap();
    let child = Command::new("/bin/true")
        .stdin(stdio_of(&stream))
        .stdout(stdio_of(&stream))
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    c.until("exec + exit", &[pid], |evs| {
        has_exec(pid)(evs)
            && evs
                .iter()
                .any(|e| matches!(e, RawEvent::Exit(x) if x.tgid == pid))
    });
    let e = c.exec_of(pid).unwrap();
    assert_eq!(e.ppid, std::process::id());
    assert_eq!(
        e.exe_path,
        fs::canonicalize("/bin/true").unwrap().to_str().unwrap()
    );
    assert_eq!(e.filename, "/bin/true");
    assert_eq!(e.comm, "true");
    assert_eq!(e.argv, vec!["/bin/true"]);
    for fd in 0..2 {
        let info = e.stdio[fd];
        assert_eq!(info.kind, FdKind::InetSocket, "fd {fd}: {info:?}");
        let sock = info.socket.unwrap();
        assert_eq!(sock.sock_type, SockType::Stream);
        assert_eq!(sock.state, 1, "TCP_ESTABLISHED");
        assert_eq!(sock.remote, server_addr);
        assert_eq!(sock.local, stream.local_addr().unwrap());
    }
    let md = fs::metadata("/bin/true").unwrap();
    assert_eq!(e.exe.ino, md.ino());
    assert_eq!(e.exe.size, md.size());
    assert_eq!(e.exe.dev, md.dev());
    assert_eq!(e.exe.mtime, (md.mtime(), md.mtime_nsec() as u32));
    assert_eq!(e.exe.nlink, md.nlink() as u32);
    assert_eq!(e.overlay, OverlayLayer::NotOverlay);
    assert!(!e.exe_memfd && !e.exe_deleted && !e.exe_detached);
    assert_eq!(e.cwd, std::env::current_dir().unwrap().to_str().unwrap());
    let exit = c
        .of(pid)
        .find_map(|e| match e {
            RawEvent::Exit(x) => Some(x.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(exit.exit_status(), Some(0));
}

#[test]
fn exec_with_tcp_v4_stdio() {
    exec_with_socket_stdio("127.0.0.1:0");
}

#[test]
fn exec_with_tcp_v6_stdio() {
    exec_with_socket_stdio("[::1]:0");
}

/// python3 connects, then replaces fd 0 with the socket in one of several ways.
fn python_dup(how: &str, want: DupSyscall) {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket, os, fcntl\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         {how}\n"
    );
    let child = Command::new(python3())
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (_conn, peer) = listener.accept().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    c.until("fd replaced", &[pid, std::process::id()], |evs| {
        evs.iter()
            .any(|e| matches!(e, RawEvent::FdReplaced(f) if f.tgid == pid && f.fd == 0 && f.info.kind == FdKind::InetSocket))
            && evs.iter().any(|e| matches!(e, RawEvent::Accept(a) if a.tgid == std::process::id() && a.socket.remote == peer))
    });
    let f = c
        .of(pid)
        .find_map(|e| match e {
            RawEvent::FdReplaced(f) if f.fd == 0 && f.info.kind == FdKind::InetSocket => {
                Some(f.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(f.syscall, want);
    let sock = f.info.socket.unwrap();
    assert_eq!(sock.remote, listener.local_addr().unwrap());
    assert_eq!(sock.local, peer);
    // The python process's connect() was seen too.
    let conn = c
        .of(pid)
        .find_map(|e| match e {
            RawEvent::Connect(x) => Some(x.clone()),
            _ => None,
        })
        .expect("connect event");
    assert_eq!(conn.ret, 0);
    assert_eq!(conn.socket.remote, listener.local_addr().unwrap());
    assert_eq!(conn.socket.local, peer);
    // And this process's accept().
    let acc = c
        .of(std::process::id())
        .find_map(|e| match e {
            RawEvent::Accept(x) if x.socket.remote == peer => Some(x.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(acc.socket.local, listener.local_addr().unwrap());
}

#[test]
fn dup2_socket_onto_stdin() {
    python_dup("os.dup2(s.fileno(), 0)", DupSyscall::Dup2);
}

#[test]
fn close_then_dup_socket_onto_stdin() {
    // os.dup() is fcntl(F_DUPFD_CLOEXEC) in CPython; call libc's dup().
    python_dup(
        "import ctypes\nos.close(0)\nassert ctypes.CDLL(None).dup(s.fileno()) == 0",
        DupSyscall::Dup,
    );
}

#[test]
fn fcntl_dupfd_socket_onto_stdin() {
    python_dup(
        "os.close(0)\nassert fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 0) == 0",
        DupSyscall::Fcntl,
    );
}

#[test]
fn dup3_socket_onto_stdin() {
    // os.dup2(..., inheritable=False) uses dup3(O_CLOEXEC).
    python_dup(
        "os.dup2(s.fileno(), 0, inheritable=False)",
        DupSyscall::Dup3,
    );
}

#[test]
fn dup_of_pipe_over_socket_clears_state() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket, os\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         os.dup2(s.fileno(), 1)\n\
         r, w = os.pipe()\n\
         os.dup2(w, 1)\n"
    );
    let child = Command::new(python3())
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id();
    let _conn = listener.accept().unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    c.until("two dup2 on fd 1", &[pid], |evs| {
        evs.iter()
            .filter(|e| matches!(e, RawEvent::FdReplaced(f) if f.tgid == pid && f.fd == 1))
            .count()
            == 2
    });
    let kinds: Vec<FdKind> = c
        .of(pid)
        .filter_map(|e| match e {
            RawEvent::FdReplaced(f) => Some(f.info.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![FdKind::InetSocket, FdKind::Pipe]);
}

#[test]
fn pipe_and_regular_file_stdio() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.txt");
    fs::write(&path, b"hello").unwrap();
    let file = fs::File::open(&path).unwrap();
    let file_ino = file.metadata().unwrap().ino();
    let child = Command::new("/bin/cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let pipe_ino = {
        let stdin = child.stdin.as_ref().unwrap();
        let fd = stdin.as_fd().try_clone_to_owned().unwrap();
        fs::File::from(fd).metadata().unwrap().ino()
    };
    let _ = child.wait_with_output().unwrap();
    c.until("exec", &[pid], has_exec(pid));
    let e = c.exec_of(pid).unwrap();
    assert_eq!(e.stdio[0].kind, FdKind::Pipe);
    assert_eq!(e.stdio[0].ino, pipe_ino);
    assert_eq!(e.stdio[1].kind, FdKind::Regular);
    assert_eq!(e.stdio[1].ino, file_ino);
    assert_eq!(e.stdio[2].kind, FdKind::CharDevice);
    assert_eq!(e.stdio[2].rdev, Some((1, 3)), "/dev/null");
    assert!(e.stdio[0].socket.is_none());
    assert!(!e.shebang(), "an ELF exec is not a #! one: {:#x}", e.flags);
}

#[test]
fn shebang_script_reports_script_and_interpreter() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hello.sh");
    fs::write(&script, "#!/bin/sh\nexit 7\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new(&script)
        .arg("arg1")
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    c.until("exec + exit", &[pid], |evs| {
        has_exec(pid)(evs)
            && evs
                .iter()
                .any(|e| matches!(e, RawEvent::Exit(x) if x.tgid == pid))
    });
    let e = c.exec_of(pid).unwrap();
    assert_eq!(e.filename, script.to_str().unwrap());
    assert_eq!(
        e.exe_path,
        fs::canonicalize("/bin/sh").unwrap().to_str().unwrap()
    );
    assert_eq!(e.argv, vec!["/bin/sh", script.to_str().unwrap(), "arg1"]);
    assert_eq!(e.argc, 3);
    assert!(e.shebang(), "a #! exec is flagged: {:#x}", e.flags);
    assert_eq!(
        e.cwd,
        fs::canonicalize(dir.path()).unwrap().to_str().unwrap()
    );
    let exit = c
        .of(pid)
        .find_map(|e| match e {
            RawEvent::Exit(x) => Some(x.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(exit.exit_status(), Some(7));
}

#[test]
fn huge_argv_is_truncated() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let args: Vec<String> = (0..3000).map(|i| format!("argument-{i:05}")).collect();
    let child = Command::new("/bin/true").args(&args).spawn().unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    c.until("exec", &[pid], has_exec(pid));
    let e = c.exec_of(pid).unwrap();
    assert!(e.argv_truncated);
    assert_eq!(e.argc, 3001);
    assert!(e.argv.len() < 3001);
    assert_eq!(e.argv[0], "/bin/true");
    assert_eq!(e.argv[1], "argument-00000");
    let bytes: usize = e.argv.iter().map(|a| a.len() + 1).sum();
    assert!(bytes <= ward_sensor::abi::WARD_ARGV_MAX + 1);
}

#[test]
fn env_is_captured_in_order_and_bounded() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let child = Command::new("/bin/true")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HTTP_PROXY", "http://127.0.0.1:3128")
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    c.until("exec", &[pid], has_exec(pid));
    let e = c.exec_of(pid).unwrap();
    assert!(!e.env_truncated);
    let mut env = entries(&e.env);
    env.sort();
    assert_eq!(
        env,
        ["HTTP_PROXY=http://127.0.0.1:3128", "PATH=/usr/bin:/bin"]
    );

    // An environment past the cap: the first WARD_ENV_MAX bytes, flagged.
    let big: Vec<(String, String)> = (0..200)
        .map(|i| (format!("VAR_{i:03}"), "x".repeat(40)))
        .collect();
    let child = Command::new("/bin/true")
        .env_clear()
        .envs(big)
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    c.until("exec", &[pid], has_exec(pid));
    let e = c.exec_of(pid).unwrap();
    assert!(e.env_truncated);
    let env = entries(&e.env);
    assert!(env.len() < 200 && env.len() > 10, "{}", env.len());
    assert!(env.iter().all(|v| v.starts_with("VAR_")), "{env:?}");
    assert!(e.env.len() <= ward_sensor::abi::WARD_ENV_MAX);
    // argv is unaffected.
    assert_eq!(e.argv, ["/bin/true"]);
}

#[test]
fn memfd_exec_is_flagged() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let script = "import os\n\
                  fd = os.memfd_create('payload', 0)\n\
                  os.write(fd, open('/bin/true', 'rb').read())\n\
                  os.execve(fd, ['payload'], {})\n";
    let child = Command::new(python3())
        .args(["-c", script])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    c.until("memfd exec", &[pid], |evs| {
        evs.iter()
            .any(|e| matches!(e, RawEvent::Exec(x) if x.tgid == pid && x.comm != "python3"))
    });
    let e = c
        .of(pid)
        .filter_map(|e| match e {
            RawEvent::Exec(x) => Some(x),
            _ => None,
        })
        .last()
        .unwrap();
    assert!(e.exe_memfd, "{e:#?}");
    assert!(e.exe_deleted);
    assert!(e.exe_detached);
    assert_eq!(e.exe.nlink, 0);
    assert_eq!(e.exe_path, "/memfd:payload");
    assert!(e.filename.starts_with("/dev/fd/"), "{}", e.filename);
    assert_eq!(e.argv, vec!["payload"]);
}

#[test]
fn fork_and_exit_events() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    // sh forks a subshell that exits 5; sh then exits 3.
    let child = Command::new("/bin/sh")
        .args([
            "-c",
            "(exit 5); echo $? >/dev/null; /bin/sh -c 'exit 5' & wait; exit 3",
        ])
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    c.until("fork + exits", &[pid, std::process::id()], |evs| {
        evs.iter()
            .any(|e| matches!(e, RawEvent::Exit(x) if x.tgid == pid))
            && evs
                .iter()
                .any(|e| matches!(e, RawEvent::Fork(f) if f.parent_tgid == pid))
    });
    // This test process forked the sh.
    let fork_of_sh = c
        .events
        .iter()
        .find_map(|e| match e {
            RawEvent::Fork(f) if f.tgid == pid => Some(f.clone()),
            _ => None,
        })
        .expect("fork event of the child");
    assert_eq!(fork_of_sh.parent_tgid, std::process::id());
    let kids: Vec<u32> = c
        .events
        .iter()
        .filter_map(|e| match e {
            RawEvent::Fork(f) if f.parent_tgid == pid => Some(f.tgid),
            _ => None,
        })
        .collect();
    assert!(!kids.is_empty());
    // Follow the children's exits.
    c.until("children exit", &kids, |evs| {
        kids.iter().all(|k| {
            evs.iter()
                .any(|e| matches!(e, RawEvent::Exit(x) if x.tgid == *k))
        })
    });
    for k in &kids {
        let exit = c
            .of(*k)
            .find_map(|e| match e {
                RawEvent::Exit(x) => Some(x.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(exit.ppid, pid);
        assert_eq!(exit.exit_status(), Some(5), "{exit:?}");
    }
    let exit = c
        .of(pid)
        .find_map(|e| match e {
            RawEvent::Exit(x) => Some(x.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(exit.exit_status(), Some(3));
    assert_eq!(exit.ppid, std::process::id());
}

#[test]
fn threads_do_not_produce_fork_events() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let me = std::process::id();
    let t = std::thread::spawn(|| 1 + 1);
    t.join().unwrap();
    let child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    c.until("exec", &[pid, me], has_exec(pid));
    let forks: Vec<_> = c
        .events
        .iter()
        .filter(|e| matches!(e, RawEvent::Fork(f) if f.parent_tgid == me))
        .collect();
    // Only process forks are reported; concurrent tests may fork too, but no
    // fork event may have tgid == me (that would be a thread).
    assert!(!forks.is_empty());
    assert!(forks.iter().all(|e| e.tgid() != me));
}

#[test]
fn stats_count_events() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    c.until("exec", &[pid], has_exec(pid));
    let st = c.sensor.stats();
    assert!(st.events_total >= 1);
    assert_eq!(st.decode_errors, 0);
    assert_eq!(st.kernel_drops, 0);
    let boot = c.exec_of(pid).unwrap().ktime_boot_ns;
    let wall = c.sensor.clock().to_system_time(boot);
    let age = std::time::SystemTime::now().duration_since(wall).unwrap();
    assert!(age.as_secs() < 30, "{age:?}");
}

#[test]
fn seed_snapshot_matches_live_state() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to read every /proc/PID");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _peer = listener.accept().unwrap();
    let mut child = Command::new("/bin/sleep")
        .arg("30")
        .stdin(stdio_of(&stream))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let all = ward_sensor::snapshot_processes().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let p = all
        .iter()
        .find(|p| p.pid == pid)
        .expect("child in snapshot");
    assert_eq!(p.ppid, std::process::id());
    assert_eq!(p.comm, "sleep");
    assert_eq!(p.argv, vec!["/bin/sleep", "30"]);
    assert_eq!(
        p.exe_path.as_deref(),
        fs::canonicalize("/bin/sleep").unwrap().to_str()
    );
    assert_eq!(p.stdio[0].kind, FdKind::InetSocket);
    let sock = p.stdio[0].socket.unwrap();
    assert_eq!(sock.remote, listener.local_addr().unwrap());
    assert_eq!(sock.local, stream.local_addr().unwrap());
    assert_eq!(p.stdio[1].kind, FdKind::Pipe);
    let cg = ward_sensor::cgroup2_mount().expect("cgroup2 mounted");
    assert!(p.cgroup_id.is_some(), "cgroup id via {cg:?}");
}

#[test]
fn seed_cgroup_id_equals_bpf_cgroup_id() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let child = Command::new("/bin/sleep").arg("0.3").spawn().unwrap();
    let pid = child.id();
    c.until("exec", &[pid], has_exec(pid));
    let snap = ward_sensor::snapshot_process(pid).expect("alive");
    child.wait_with_output().unwrap();
    let e = c.exec_of(pid).unwrap();
    assert_eq!(Some(e.cgroup_id), snap.cgroup_id);
    assert_eq!(Some(e.pid_ns), snap.pid_ns);
    assert_eq!(Some(e.mnt_ns), snap.mnt_ns);
    assert_eq!(e.ppid, snap.ppid);
    assert_eq!(Some(e.exe_path.clone()), snap.exe_path);
    assert_eq!(e.exe.ino, snap.exe.unwrap().ino);
}

/// Unmounts the overlay even when an assertion fails.
struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn overlay_provenance() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    fs::copy("/bin/true", root.join("lower/from_image")).unwrap();
    fs::copy("/bin/true", root.join("lower/modified")).unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        root.join("lower").display(),
        root.join("upper").display(),
        root.join("work").display()
    );
    let merged = root.join("merged");
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "mount -t overlay failed");
    let _guard = Unmount(merged.clone());

    // Added after "start": created through the merged dir.
    fs::copy("/bin/true", merged.join("added")).unwrap();
    // Modified: opening a lower file for writing copies it up.
    fs::OpenOptions::new()
        .append(true)
        .open(merged.join("modified"))
        .unwrap()
        .write_all(b"\0")
        .unwrap();

    let mut pids = Vec::new();
    for name in ["from_image", "added", "modified"] {
        let child = Command::new(merged.join(name)).spawn().unwrap();
        pids.push(child.id());
        assert!(child.wait_with_output().unwrap().status.success());
    }
    c.until("three execs", &pids, |evs| {
        pids.iter().all(|p| has_exec(*p)(evs))
    });
    let layer = |i: usize| c.exec_of(pids[i]).unwrap().overlay;
    assert_eq!(layer(0), OverlayLayer::Lower);
    assert_eq!(layer(1), OverlayLayer::UpperOnly);
    assert_eq!(layer(2), OverlayLayer::UpperOverLower);
    let e = c.exec_of(pids[2]).unwrap();
    let merged_canon = fs::canonicalize(&merged).unwrap();
    assert_eq!(e.exe_path, merged_canon.join("modified").to_str().unwrap());
    assert_eq!(e.exe.size, fs::metadata("/bin/true").unwrap().len() + 1);
    assert_eq!(e.exe.fs_magic, 0x794c_7630);
}

#[test]
fn ipv6_connect_event() {
    let Some(s) = sensor() else { return };
    let mut c = Collector::new(s);
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let script = format!(
        "import socket\ns = socket.create_connection(('::1', {}))\n",
        addr.port()
    );
    let child = Command::new(python3())
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id();
    let (_conn, peer) = listener.accept().unwrap();
    child.wait_with_output().unwrap();
    c.until("connect", &[pid], |evs| {
        evs.iter()
            .any(|e| matches!(e, RawEvent::Connect(x) if x.tgid == pid))
    });
    let conn = c
        .of(pid)
        .find_map(|e| match e {
            RawEvent::Connect(x) => Some(x.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(conn.socket.remote, addr);
    assert_eq!(conn.socket.local, peer);
}

#[test]
fn kernel_drops_are_counted_when_the_ring_is_full() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: live BPF tests need root");
        return;
    }
    // A 16 KiB ring holds about 160 fd records; nobody reads during the storm.
    let cfg = ward_sensor::SensorConfig {
        ring_buffer_bytes: 16 << 10,
        ..Default::default()
    };
    let mut sensor = ward_sensor::Sensor::load(&cfg).unwrap();
    let script =
        "import os\nfd = os.open('/dev/null', os.O_WRONLY)\nfor _ in range(5000): os.dup2(fd, 1)\n";
    let out = Command::new(python3())
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    let st = sensor.stats();
    assert!(st.kernel_drops > 0, "{st:?}");
    let fd_drops = st
        .kernel_drops_by_kind
        .iter()
        .find(|(k, _)| *k == ward_sensor::EventKind::FdReplaced)
        .unwrap()
        .1;
    assert!(fd_drops > 0);
    let mut evs = Vec::new();
    sensor
        .poll(&mut evs, std::time::Duration::from_millis(10))
        .unwrap();
    assert!(!evs.is_empty());
    assert_eq!(sensor.stats().decode_errors, 0);
}

#[test]
fn paths_are_relative_to_the_process_root() {
    let Some(s) = sensor() else { return };
    let busybox = std::path::Path::new("/bin/busybox");
    if !busybox.exists() {
        eprintln!("SKIPPED: needs a static /bin/busybox (Debian busybox-static)");
        return;
    }
    let mut c = Collector::new(s);
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("bin")).unwrap();
    fs::create_dir_all(dir.path().join("work/sub")).unwrap();
    fs::copy(busybox, dir.path().join("bin/busybox")).unwrap();
    // chroot(1) execs /bin/busybox inside the new root; busybox's sh then
    // execs busybox again from the sub directory.
    let child = Command::new("chroot")
        .arg(dir.path())
        .args([
            "/bin/busybox",
            "sh",
            "-c",
            "cd /work/sub && exec /bin/busybox true",
        ])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    c.until("exec of busybox true", &[pid], |evs| {
        evs.iter().any(|e| matches!(e, RawEvent::Exec(x) if x.tgid == pid && x.argv.last().map(String::as_str) == Some("true")))
    });
    let last = c
        .of(pid)
        .filter_map(|e| match e {
            RawEvent::Exec(x) => Some(x),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(last.exe_path, "/bin/busybox");
    assert_eq!(last.filename, "/bin/busybox");
    assert_eq!(last.cwd, "/work/sub");
    assert!(!last.exe_detached);
}

#[test]
fn unprivileged_load_fails_with_a_clear_error() {
    if std::env::var_os("WARD_SENSOR_UNPRIV_CHILD").is_some() {
        let err = ward_sensor::Sensor::load(&Default::default()).unwrap_err();
        assert!(
            matches!(err, ward_sensor::SensorError::Privileges { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("CAP_BPF"), "{err}");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to switch to an unprivileged user");
        return;
    }
    // Re-run this test as nobody, without capabilities.
    let exe = std::env::current_exe().unwrap();
    let out = match Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "unprivileged_load_fails_with_a_clear_error",
            "--nocapture",
        ])
        .env("WARD_SENSOR_UNPRIV_CHILD", "1")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIPPED: setpriv not available: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "child: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// The entries of an envp block (`A=1\0B=2\0`; the last one may lack its NUL when cut).
fn entries(block: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(block)
        .split_terminator('\0')
        .map(String::from)
        .collect()
}
