//! Events as the detectors see them: kernel observations enriched with file identity, hashes,
//! image-layer provenance, script contents and container metadata.
//!
//! Every struct here is one record type of the trace format (`docs/trace-format.md`); field
//! names are lowerCamelCase in JSON. Optional fields are omitted when unknown.

use crate::{Sha256, StrList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Process id as the kernel reports it (tgid for processes).
pub type Pid = u32;

/// One observation. `time` is nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// A process replaced its image with `execve`/`execveat`.
    Exec(Box<ExecEvent>),
    /// A new process (thread group) was created.
    Fork(ForkEvent),
    /// A process (its thread-group leader) exited.
    Exit(ExitEvent),
    /// One of fds 0, 1 or 2 was replaced after exec (`dup2`, `dup3`, `fcntl(F_DUPFD)`, `dup`).
    Fd(FdEvent),
    /// A process established an AF_INET/AF_INET6 stream connection (connect or accept).
    Socket(SocketEvent),
}

impl Event {
    pub fn time(&self) -> u64 {
        match self {
            Event::Exec(e) => e.time,
            Event::Fork(e) => e.time,
            Event::Exit(e) => e.time,
            Event::Fd(e) => e.time,
            Event::Socket(e) => e.time,
        }
    }

    pub fn pid(&self) -> Pid {
        match self {
            Event::Exec(e) => e.pid,
            Event::Fork(e) => e.pid,
            Event::Exit(e) => e.pid,
            Event::Fd(e) => e.pid,
            Event::Socket(e) => e.pid,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Event::Exec(_) => "exec",
            Event::Fork(_) => "fork",
            Event::Exit(_) => "exit",
            Event::Fd(_) => "fd",
            Event::Socket(_) => "socket",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecEvent {
    pub time: u64,
    /// Kubernetes node / host name the event was observed on.
    pub node: String,
    /// Process id (thread-group id of the process).
    pub pid: Pid,
    /// Id of the thread that called exec (equals `pid` once exec completes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tgid: Option<Pid>,
    pub ppid: Pid,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// The kernel's `comm` after exec (at most 15 bytes).
    #[serde(default)]
    pub comm: String,
    /// The path as passed to exec (for a shebang script: the script).
    pub filename: String,
    /// The binary that runs, its identity, hash and provenance (for a shebang script: the
    /// interpreter).
    pub binary: BinaryInfo,
    pub argv: Vec<String>,
    /// True when argv was cut by the sensor's size cap.
    #[serde(default, skip_serializing_if = "is_false")]
    pub argv_truncated: bool,
    /// The environment at exec (`envp`), `"NAME=value"` entries as the process was given
    /// them, in order; at most the sensor's cap (2 KiB) of them. Absent in traces recorded
    /// before the sensor captured it (and then empty).
    #[serde(default, skip_serializing_if = "StrList::is_empty")]
    pub env: StrList,
    /// True when `env` was cut by the sensor's size cap (its last entry may be cut too).
    #[serde(default, skip_serializing_if = "is_false")]
    pub env_truncated: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cwd: String,
    /// The script an interpreter runs: a file, a shebang script or a `-c` literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptInfo>,
    /// Fds 0, 1 and 2 at exec.
    #[serde(default)]
    pub stdio: [FdInfo; 3],
    /// When stdin is a pipe (or an AF_UNIX socketpair): the process seen holding its write end
    /// (the other end: the parent, looked up in `/proc/PID/fd` at enrichment, for interactive
    /// shells only; also set when the parent is already gone by then, see `ward_enrich::stdin`). Relays that pump a connection into a
    /// shell's stdin pipe (python `Popen(stdin=PIPE)`, node `spawn`, java `Runtime.exec`) are
    /// found through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_writer: Option<Pid>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cgroup_id: u64,
    /// Container id (64 hex) when the process runs in a container; absent on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Container and pod metadata from the runtime, when it could be had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerMeta>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Identity, hash and provenance of an executed file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinaryInfo {
    /// Resolved path, relative to the process's root (inside the container).
    pub path: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dev: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    #[serde(default)]
    pub size: u64,
    /// Modification time, ns since the epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtime: u64,
    /// Status-change time, ns since the epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ctime: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    /// How many bytes the hash covers (less than `size` when partially hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_size: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub partially_hashed: bool,
    #[serde(default)]
    pub layer: Layer,
}

/// Where an executed file comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Layer {
    /// Overlay lower layer: part of the original container image.
    Image,
    /// Overlay upper layer only: added after the container started.
    Added,
    /// Upper layer over a lower file: an image file modified after start (copied up).
    Modified,
    /// Not on an overlay filesystem (host binaries, bind mounts).
    NotOverlay,
    /// An anonymous memory file (memfd_create): fileless execution.
    Memfd,
    /// The file was deleted (nlink 0) by the time of exec.
    Deleted,
    #[default]
    Unknown,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Image => "image",
            Layer::Added => "added",
            Layer::Modified => "modified",
            Layer::NotOverlay => "notOverlay",
            Layer::Memfd => "memfd",
            Layer::Deleted => "deleted",
            Layer::Unknown => "unknown",
        }
    }
}

/// The code an interpreter runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptInfo {
    pub kind: ScriptKind,
    /// Path of the script file (absent for `-c` literals), as the process names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Size of the whole script in bytes.
    pub size: u64,
    /// SHA-256 of the whole script (not just the captured contents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    /// The script's text, cut at the configured cap (64 KiB by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub contents_truncated: bool,
    /// Provenance of the script file, like [`BinaryInfo::layer`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// The whole script, up to the enricher's scoring cap, when it is longer than `contents`:
    /// what the Malicious Python model scores. In memory only, never serialised: findings and
    /// traces keep the display-capped `contents`.
    #[serde(skip)]
    pub scoring_text: Option<std::sync::Arc<[u8]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScriptKind {
    /// `interpreter path/to/script`.
    File,
    /// A script executed directly and run through its `#!` line.
    Shebang,
    /// A literal on the command line (`python -c CODE`, `sh -c CODE`, `perl -e CODE`).
    Inline,
}

/// What one file descriptor refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdInfo {
    pub kind: FdKind,
    /// Inode number of the file, pipe or socket (links pipe ends between processes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    /// Path for files, FIFOs and ttys when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Addresses of an AF_INET/AF_INET6 socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketInfo>,
}

impl FdInfo {
    /// The socket when this fd is an AF_INET/AF_INET6 *stream* socket with a remote peer.
    pub fn remote_stream_peer(&self) -> Option<&SocketInfo> {
        match (&self.kind, &self.socket) {
            (FdKind::InetSocket, Some(s)) if s.protocol == Protocol::Tcp && s.has_peer() => Some(s),
            _ => None,
        }
    }

    /// The socket when this fd is a *connected* AF_INET/AF_INET6 stream or datagram socket
    /// (`/dev/udp/H/P` is a connected UDP socket): what a reverse shell's stdin can be.
    pub fn remote_peer(&self) -> Option<&SocketInfo> {
        match (&self.kind, &self.socket) {
            (FdKind::InetSocket, Some(s))
                if matches!(s.protocol, Protocol::Tcp | Protocol::Udp) && s.has_peer() =>
            {
                Some(s)
            }
            _ => None,
        }
    }

    /// Pipes and FIFOs can be linked between processes by inode.
    pub fn pipe_inode(&self) -> Option<u64> {
        match self.kind {
            FdKind::Pipe | FdKind::Fifo if self.inode != 0 => Some(self.inode),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FdKind {
    /// Not open.
    Closed,
    /// A regular file (or directory).
    File,
    /// An anonymous pipe.
    Pipe,
    /// A named pipe (mkfifo).
    Fifo,
    /// A terminal (pty or console).
    Tty,
    /// Another character device (/dev/null, ...).
    Char,
    UnixSocket,
    /// AF_INET or AF_INET6 socket; see `socket`.
    InetSocket,
    /// A socket of another family (netlink, vsock, ...).
    OtherSocket,
    Other,
    #[default]
    Unknown,
}

/// The addresses of an AF_INET/AF_INET6 socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketInfo {
    pub protocol: Protocol,
    pub local_ip: IpAddr,
    pub local_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
}

impl SocketInfo {
    /// True when the socket is connected to a peer (not listening, not unconnected).
    pub fn has_peer(&self) -> bool {
        self.remote_port != 0 && !self.remote_ip.is_unspecified()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Image reference as the container was created from (e.g. `docker.io/library/nginx:1.27`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Image id (`sha256:...`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Creation time, ns since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodMeta>,
    /// Why metadata is missing or partial (runtime socket unavailable, timed out, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForkEvent {
    pub time: u64,
    /// The new process.
    pub pid: Pid,
    /// The process that forked it.
    pub ppid: Pid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitEvent {
    pub time: u64,
    pub pid: Pid,
    #[serde(default)]
    pub code: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdEvent {
    pub time: u64,
    pub pid: Pid,
    /// The fd that was replaced: 0, 1 or 2.
    pub fd: u8,
    /// The syscall that replaced it.
    pub via: FdVia,
    /// What the fd refers to now.
    pub target: FdInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FdVia {
    Dup,
    Dup2,
    Dup3,
    Fcntl,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketEvent {
    pub time: u64,
    pub pid: Pid,
    pub fd: i32,
    pub op: SocketOp,
    /// Socket inode (links the socket to fds that are later dup'ed from it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    pub socket: SocketInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SocketOp {
    Connect,
    Accept,
}
