//! Concise constructors for events, used by tests, trace generators and benchmarks.

use crate::event::*;
use crate::{Sha256, StrList};
use std::net::IpAddr;

/// Builds an [`ExecEvent`] with sensible defaults (host process, files on fds 0-2).
#[derive(Debug, Clone)]
pub struct ExecBuilder(ExecEvent);

impl ExecBuilder {
    /// `path` is both the filename executed and the binary path; argv[0] is its basename.
    pub fn new(time: u64, pid: Pid, ppid: Pid, path: &str) -> Self {
        let name = crate::script::basename(path).to_string();
        ExecBuilder(ExecEvent {
            time,
            node: "node-1".into(),
            pid,
            tgid: Some(pid),
            ppid,
            uid: 0,
            gid: 0,
            comm: name.chars().take(15).collect(),
            filename: path.into(),
            binary: BinaryInfo {
                path: path.into(),
                size: 1000,
                layer: Layer::NotOverlay,
                ..Default::default()
            },
            argv: vec![name],
            argv_truncated: false,
            env: StrList::new(),
            env_truncated: false,
            cwd: "/".into(),
            script: None,
            stdio: [fd(FdKind::Tty, 3), fd(FdKind::Tty, 3), fd(FdKind::Tty, 3)],
            stdin_writer: None,
            cgroup_id: 0,
            container_id: None,
            container: None,
        })
    }

    pub fn args(mut self, argv: &[&str]) -> Self {
        self.0.argv = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The environment at exec, `"NAME=value"` entries.
    pub fn env(mut self, env: &[&str]) -> Self {
        self.0.env = env.iter().collect();
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.0.node = node.into();
        self
    }

    /// The resolved binary differs from the filename (symlink, shebang interpreter, busybox).
    pub fn binary_path(mut self, path: &str) -> Self {
        self.0.binary.path = path.into();
        self
    }

    pub fn sha256(mut self, sha: Sha256) -> Self {
        self.0.binary.sha256 = Some(sha);
        self.0.binary.hashed_size = Some(self.0.binary.size);
        self
    }

    pub fn layer(mut self, layer: Layer) -> Self {
        self.0.binary.layer = layer;
        self
    }

    pub fn stdio(mut self, fd: usize, info: FdInfo) -> Self {
        self.0.stdio[fd] = info;
        self
    }

    /// The process holding the write end of the stdin pipe (see [`ExecEvent::stdin_writer`]).
    pub fn stdin_writer(mut self, pid: Pid) -> Self {
        self.0.stdin_writer = Some(pid);
        self
    }

    pub fn script(mut self, script: ScriptInfo) -> Self {
        self.0.script = Some(script);
        self
    }

    /// Runs in a container with the given id, name and image.
    pub fn container(mut self, id: &str, name: &str, image: &str) -> Self {
        self.0.container_id = Some(id.into());
        self.0.cgroup_id = 1000;
        self.0.container = Some(ContainerMeta {
            name: name.into(),
            image: image.into(),
            image_id: format!("sha256:{}", "0".repeat(64)),
            ..Default::default()
        });
        self
    }

    pub fn pod(mut self, namespace: &str, name: &str) -> Self {
        if let Some(c) = self.0.container.as_mut() {
            c.pod = Some(PodMeta {
                name: name.into(),
                namespace: namespace.into(),
                labels: Default::default(),
            });
        }
        self
    }

    pub fn build(self) -> ExecEvent {
        self.0
    }

    pub fn event(self) -> Event {
        Event::Exec(Box::new(self.0))
    }
}

/// An fd of the given kind and inode.
pub fn fd(kind: FdKind, inode: u64) -> FdInfo {
    FdInfo {
        kind,
        inode,
        path: None,
        socket: None,
    }
}

/// A connected TCP socket from `local` to `remote` (`"ip:port"`).
pub fn tcp(inode: u64, local: &str, remote: &str) -> FdInfo {
    FdInfo {
        kind: FdKind::InetSocket,
        inode,
        path: None,
        socket: Some(socket(local, remote)),
    }
}

/// A connected UDP socket from `local` to `remote` (`"ip:port"`).
pub fn udp(inode: u64, local: &str, remote: &str) -> FdInfo {
    let mut f = tcp(inode, local, remote);
    if let Some(s) = f.socket.as_mut() {
        s.protocol = Protocol::Udp;
    }
    f
}

/// Parses `ip:port` / `[v6]:port` pairs into a TCP [`SocketInfo`]. Panics on bad input: for
/// tests and generators only.
pub fn socket(local: &str, remote: &str) -> SocketInfo {
    let l: std::net::SocketAddr = local.parse().expect("local ip:port");
    let r: std::net::SocketAddr = remote.parse().expect("remote ip:port");
    SocketInfo {
        protocol: Protocol::Tcp,
        local_ip: l.ip(),
        local_port: l.port(),
        remote_ip: r.ip(),
        remote_port: r.port(),
    }
}

pub fn fork(time: u64, pid: Pid, ppid: Pid) -> Event {
    Event::Fork(ForkEvent { time, pid, ppid })
}

pub fn exit(time: u64, pid: Pid) -> Event {
    Event::Exit(ExitEvent { time, pid, code: 0 })
}

pub fn dup(time: u64, pid: Pid, fd: u8, target: FdInfo) -> Event {
    Event::Fd(FdEvent {
        time,
        pid,
        fd,
        via: FdVia::Dup2,
        target,
    })
}

pub fn connect(time: u64, pid: Pid, inode: u64, local: &str, remote: &str) -> Event {
    Event::Socket(SocketEvent {
        time,
        pid,
        fd: 3,
        op: SocketOp::Connect,
        inode,
        socket: socket(local, remote),
    })
}

/// An unspecified address, for listening sockets.
pub fn any_ip() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
