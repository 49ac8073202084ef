//! Owned, user-friendly events decoded from the kernel records.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::abi::{self, read_pod};

/// One event from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawEvent {
    /// A successful execve/execveat.
    Exec(Box<ExecEvent>),
    /// A new process (thread group); threads are not reported.
    Fork(ForkEvent),
    /// The last thread of a process exited.
    Exit(ExitEvent),
    /// One of fds 0-2 was replaced by dup/dup2/dup3/fcntl(F_DUPFD*).
    FdReplaced(FdEvent),
    /// connect() on an AF_INET/AF_INET6 stream socket succeeded or is in progress.
    Connect(ConnEvent),
    /// accept()/accept4() returned an AF_INET/AF_INET6 stream socket.
    Accept(ConnEvent),
}

impl RawEvent {
    /// Boot-time timestamp (CLOCK_BOOTTIME, ns) of the event.
    pub fn ktime_boot_ns(&self) -> u64 {
        match self {
            RawEvent::Exec(e) => e.ktime_boot_ns,
            RawEvent::Fork(e) => e.ktime_boot_ns,
            RawEvent::Exit(e) => e.ktime_boot_ns,
            RawEvent::FdReplaced(e) => e.ktime_boot_ns,
            RawEvent::Connect(e) | RawEvent::Accept(e) => e.ktime_boot_ns,
        }
    }

    /// Process id (thread group id) the event belongs to. For `Fork`, the child.
    pub fn tgid(&self) -> u32 {
        match self {
            RawEvent::Exec(e) => e.tgid,
            RawEvent::Fork(e) => e.tgid,
            RawEvent::Exit(e) => e.tgid,
            RawEvent::FdReplaced(e) => e.tgid,
            RawEvent::Connect(e) | RawEvent::Accept(e) => e.tgid,
        }
    }

    /// The kind of the event.
    pub fn kind(&self) -> EventKind {
        match self {
            RawEvent::Exec(_) => EventKind::Exec,
            RawEvent::Fork(_) => EventKind::Fork,
            RawEvent::Exit(_) => EventKind::Exit,
            RawEvent::FdReplaced(_) => EventKind::FdReplaced,
            RawEvent::Connect(_) => EventKind::Connect,
            RawEvent::Accept(_) => EventKind::Accept,
        }
    }
}

/// Event kinds, for statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// [`RawEvent::Exec`]
    Exec,
    /// [`RawEvent::Fork`]
    Fork,
    /// [`RawEvent::Exit`]
    Exit,
    /// [`RawEvent::FdReplaced`]
    FdReplaced,
    /// [`RawEvent::Connect`]
    Connect,
    /// [`RawEvent::Accept`]
    Accept,
}

impl EventKind {
    /// All kinds, in ABI order.
    pub const ALL: [EventKind; 6] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::FdReplaced,
        EventKind::Connect,
        EventKind::Accept,
    ];

    /// The kind's `ward_event_header.kind` value.
    pub fn abi_kind(self) -> u16 {
        match self {
            EventKind::Exec => abi::WARD_EV_EXEC,
            EventKind::Fork => abi::WARD_EV_FORK,
            EventKind::Exit => abi::WARD_EV_EXIT,
            EventKind::FdReplaced => abi::WARD_EV_FD,
            EventKind::Connect => abi::WARD_EV_CONNECT,
            EventKind::Accept => abi::WARD_EV_ACCEPT,
        }
    }
}

/// A successful exec, as seen at `sched_process_exec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    /// CLOCK_BOOTTIME ns; see [`crate::BootClock`].
    pub ktime_boot_ns: u64,
    /// Kernel pid of the thread (equals `tgid` after exec).
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// Real parent's process id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// `comm` after exec (first 15 bytes of the file name).
    pub comm: String,
    /// The file name as passed to execve (for a shebang script: the script,
    /// as given, possibly relative; `/dev/fd/N` for fexecve).
    pub filename: String,
    /// Absolute path of the file really executed (for a shebang script: the
    /// interpreter), relative to the process's root (its container's root).
    pub exe_path: String,
    /// Working directory, relative to the process's root.
    pub cwd: String,
    /// Arguments, at most [`abi::WARD_ARGV_MAX`] bytes of them.
    pub argv: Vec<String>,
    /// Real argument count (may exceed `argv.len()` when truncated).
    pub argc: u32,
    /// `argv` was cut at [`abi::WARD_ARGV_MAX`] bytes.
    pub argv_truncated: bool,
    /// The environment (`envp`, `"NAME=value"` as passed to execve), at most
    /// [`abi::WARD_ENV_MAX`] bytes of it, as the kernel lays it out (`A=1\0B=2\0`): one
    /// buffer, split by whoever reads it (`ward_event::StrList::from_nul_vec`).
    pub env: Vec<u8>,
    /// `env` was cut at [`abi::WARD_ENV_MAX`] bytes (its last entry may be cut too).
    pub env_truncated: bool,
    /// Identity of the executed file.
    pub exe: FileIdentity,
    /// Overlayfs layer of the executed file.
    pub overlay: OverlayLayer,
    /// Raw `WARD_EXEC_*` flags (the booleans below decode them).
    pub flags: u32,
    /// The executed file is a memfd (fileless execution).
    pub exe_memfd: bool,
    /// The executed file has no link left (nlink 0 or unhashed dentry).
    pub exe_deleted: bool,
    /// `exe_path` does not lead to the process's root (internal mount such as
    /// memfd, or a file outside its chroot/mount namespace).
    pub exe_detached: bool,
    /// `exe_path` or `cwd` was cut (too deep or too long) or the file name was cut.
    pub path_truncated: bool,
    /// State of fds 0, 1, 2 after exec.
    pub stdio: [FdInfo; 3],
    /// cgroup v2 id (inode of the cgroup directory).
    pub cgroup_id: u64,
    /// pid namespace inode number.
    pub pid_ns: u32,
    /// mount namespace inode number.
    pub mnt_ns: u32,
}

impl ExecEvent {
    /// The exec ran a `#!` script: `filename` is the script, `exe` its interpreter (the
    /// kernel's word for it, `WARD_EXEC_SHEBANG`, not a guess from the names).
    pub fn shebang(&self) -> bool {
        self.flags & abi::WARD_EXEC_SHEBANG != 0
    }
}

/// Identity of a file (what `stat` would say about the inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileIdentity {
    /// Device of the file system, in user-space `st_dev` encoding.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (seconds, nanoseconds) since the epoch.
    pub mtime: (i64, u32),
    /// Status change time (seconds, nanoseconds) since the epoch.
    pub ctime: (i64, u32),
    /// Number of links (0 for a memfd or a deleted file).
    pub nlink: u32,
    /// Super block magic of the file system (e.g. 0x794c7630 overlayfs).
    pub fs_magic: u64,
}

/// Overlayfs provenance of an executed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverlayLayer {
    /// Not on an overlay file system.
    #[default]
    NotOverlay,
    /// Only in a lower layer: shipped in the image.
    Lower,
    /// Only in the upper layer: added after the container started.
    UpperOnly,
    /// Upper copy of a lower file: modified after the container started.
    UpperOverLower,
}

/// What a file descriptor refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FdKind {
    /// Not open.
    #[default]
    None,
    /// Regular file.
    Regular,
    /// Anonymous pipe.
    Pipe,
    /// Named pipe.
    Fifo,
    /// Character device (tty, /dev/null, ...); see [`FdInfo::rdev`].
    CharDevice,
    /// AF_UNIX socket.
    UnixSocket,
    /// AF_INET or AF_INET6 socket; see [`FdInfo::socket`].
    InetSocket,
    /// Anything else (directory, block device, anon inode, netlink, ...).
    Other,
}

/// Classification of one file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FdInfo {
    /// What the descriptor refers to.
    pub kind: FdKind,
    /// Inode number (pipes with the same inode connect processes).
    pub ino: u64,
    /// (major, minor) of a character device.
    pub rdev: Option<(u32, u32)>,
    /// Socket type and addresses, for inet sockets.
    pub socket: Option<InetSocket>,
}

impl FdInfo {
    /// A tty (pty slave, console or virtual terminal) by device major.
    pub fn is_tty(&self) -> bool {
        matches!(self.rdev, Some((major, _)) if major == 4 || major == 5 || (136..=143).contains(&major))
    }
}

/// Socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockType {
    /// SOCK_STREAM (TCP).
    Stream,
    /// SOCK_DGRAM (UDP).
    Dgram,
    /// Any other type (raw value).
    Other(u8),
}

/// An AF_INET/AF_INET6 socket. IPv4-mapped IPv6 addresses are reported as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InetSocket {
    /// Stream or datagram.
    pub sock_type: SockType,
    /// Kernel socket state (TCP: 1 ESTABLISHED, 2 SYN_SENT, 10 LISTEN, 7 CLOSE, ...).
    pub state: u8,
    /// Local address and port.
    pub local: SocketAddr,
    /// Peer address and port (unspecified:0 when not connected).
    pub remote: SocketAddr,
}

impl InetSocket {
    /// The peer is set (connected or connecting).
    pub fn has_peer(&self) -> bool {
        !self.remote.ip().is_unspecified() || self.remote.port() != 0
    }
}

/// A new process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkEvent {
    /// CLOCK_BOOTTIME ns.
    pub ktime_boot_ns: u64,
    /// Child process id (== child thread id).
    pub tgid: u32,
    /// Real parent process id of the child.
    pub parent_tgid: u32,
    /// Thread that called fork/clone.
    pub parent_pid: u32,
    /// Child's comm (inherited).
    pub comm: String,
    /// cgroup v2 id of the parent at fork.
    pub cgroup_id: u64,
}

/// The end of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    /// CLOCK_BOOTTIME ns.
    pub ktime_boot_ns: u64,
    /// Process id.
    pub tgid: u32,
    /// Thread that exited last.
    pub pid: u32,
    /// Real parent process id.
    pub ppid: u32,
    /// comm at exit.
    pub comm: String,
    /// wait(2) status: `code << 8 | signal`.
    pub exit_code: u32,
}

impl ExitEvent {
    /// Exit status, when the process exited normally.
    pub fn exit_status(&self) -> Option<i32> {
        (self.exit_code & 0x7f == 0).then_some(((self.exit_code >> 8) & 0xff) as i32)
    }

    /// Terminating signal, when killed by one.
    pub fn signal(&self) -> Option<i32> {
        let sig = self.exit_code & 0x7f;
        (sig != 0).then_some(sig as i32)
    }
}

/// The syscall that replaced a standard fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DupSyscall {
    /// dup(2) returning 0-2 (after close).
    Dup,
    /// dup2(2).
    Dup2,
    /// dup3(2).
    Dup3,
    /// fcntl(F_DUPFD / F_DUPFD_CLOEXEC).
    Fcntl,
}

/// Fd 0, 1 or 2 now refers to something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdEvent {
    /// CLOCK_BOOTTIME ns.
    pub ktime_boot_ns: u64,
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// 0, 1 or 2.
    pub fd: u32,
    /// Which syscall.
    pub syscall: DupSyscall,
    /// The new state of `fd`.
    pub info: FdInfo,
}

/// A TCP connect or accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnEvent {
    /// CLOCK_BOOTTIME ns.
    pub ktime_boot_ns: u64,
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    /// The connected or accepted fd.
    pub fd: u32,
    /// connect: 0 or -EINPROGRESS (-115); accept: the new fd.
    pub ret: i32,
    /// Socket state and addresses.
    pub socket: InetSocket,
}

/// Why a record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its header or its declared size.
    #[error("record of {len} bytes is too short for {what}")]
    Short {
        /// Bytes available.
        len: usize,
        /// What was being read.
        what: &'static str,
    },
    /// Written by a different ABI version.
    #[error("record ABI version {found}, expected {expected}")]
    Version {
        /// Version in the record.
        found: u16,
        /// [`abi::WARD_ABI_VERSION`].
        expected: u16,
    },
    /// Unknown kind.
    #[error("unknown record kind {0}")]
    Kind(u16),
    /// Header size does not match the kind's struct.
    #[error("record kind {kind} declares {size} bytes, expected {expected}")]
    Size {
        /// Kind.
        kind: u16,
        /// Declared size.
        size: u32,
        /// Size of the struct.
        expected: usize,
    },
    /// A length field points outside its buffer.
    #[error("field {0} has an out-of-range length")]
    Length(&'static str),
}

fn record<T: abi::Pod>(
    bytes: &[u8],
    hdr: &abi::ward_event_header,
    what: &'static str,
) -> Result<T, DecodeError> {
    let expected = std::mem::size_of::<T>();
    if hdr.size as usize != expected {
        return Err(DecodeError::Size {
            kind: hdr.kind,
            size: hdr.size,
            expected,
        });
    }
    read_pod::<T>(bytes).ok_or(DecodeError::Short {
        len: bytes.len(),
        what,
    })
}

/// Decodes one ring-buffer record. Never panics.
pub fn decode(bytes: &[u8]) -> Result<RawEvent, DecodeError> {
    let hdr: abi::ward_event_header = read_pod(bytes).ok_or(DecodeError::Short {
        len: bytes.len(),
        what: "header",
    })?;
    if hdr.abi_version != abi::WARD_ABI_VERSION {
        return Err(DecodeError::Version {
            found: hdr.abi_version,
            expected: abi::WARD_ABI_VERSION,
        });
    }
    match hdr.kind {
        abi::WARD_EV_EXEC => decode_exec(bytes, &hdr).map(|e| RawEvent::Exec(Box::new(e))),
        abi::WARD_EV_FORK => {
            let r: abi::ward_fork_event = record(bytes, &hdr, "fork")?;
            Ok(RawEvent::Fork(ForkEvent {
                ktime_boot_ns: r.hdr.ktime_boot_ns,
                tgid: r.hdr.tgid,
                parent_tgid: r.parent_tgid,
                parent_pid: r.parent_pid,
                comm: cstr(&r.comm),
                cgroup_id: r.cgroup_id,
            }))
        }
        abi::WARD_EV_EXIT => {
            let r: abi::ward_exit_event = record(bytes, &hdr, "exit")?;
            Ok(RawEvent::Exit(ExitEvent {
                ktime_boot_ns: r.hdr.ktime_boot_ns,
                tgid: r.hdr.tgid,
                pid: r.hdr.pid,
                ppid: r.ppid,
                comm: cstr(&r.comm),
                exit_code: r.exit_code,
            }))
        }
        abi::WARD_EV_FD => {
            let r: abi::ward_fd_event = record(bytes, &hdr, "fd")?;
            let syscall = match r.syscall {
                abi::WARD_SYS_DUP => DupSyscall::Dup,
                abi::WARD_SYS_DUP2 => DupSyscall::Dup2,
                abi::WARD_SYS_DUP3 => DupSyscall::Dup3,
                abi::WARD_SYS_FCNTL => DupSyscall::Fcntl,
                _ => return Err(DecodeError::Length("syscall")),
            };
            if r.fd > 2 {
                return Err(DecodeError::Length("fd"));
            }
            Ok(RawEvent::FdReplaced(FdEvent {
                ktime_boot_ns: r.hdr.ktime_boot_ns,
                pid: r.hdr.pid,
                tgid: r.hdr.tgid,
                fd: r.fd,
                syscall,
                info: fd_info(&r.info),
            }))
        }
        abi::WARD_EV_CONNECT | abi::WARD_EV_ACCEPT => {
            let r: abi::ward_conn_event = record(bytes, &hdr, "conn")?;
            let info = fd_info(&r.info);
            let socket = info.socket.ok_or(DecodeError::Length("conn socket"))?;
            let ev = ConnEvent {
                ktime_boot_ns: r.hdr.ktime_boot_ns,
                pid: r.hdr.pid,
                tgid: r.hdr.tgid,
                fd: r.fd,
                ret: r.ret,
                socket,
            };
            Ok(if hdr.kind == abi::WARD_EV_CONNECT {
                RawEvent::Connect(ev)
            } else {
                RawEvent::Accept(ev)
            })
        }
        k => Err(DecodeError::Kind(k)),
    }
}

/// Decodes a packed exec record: its head, then the used bytes of filename, exe_path, cwd, argv
/// and env back to back (`bpf/ward_abi.h`).
fn decode_exec(bytes: &[u8], hdr: &abi::ward_event_header) -> Result<ExecEvent, DecodeError> {
    let head = abi::WARD_EXEC_HEAD_SIZE;
    let size = hdr.size as usize;
    if size < head {
        return Err(DecodeError::Size {
            kind: hdr.kind,
            size: hdr.size,
            expected: head,
        });
    }
    if bytes.len() < size {
        return Err(DecodeError::Short {
            len: bytes.len(),
            what: "exec",
        });
    }
    let r: abi::ward_exec_head = read_pod(bytes).ok_or(DecodeError::Short {
        len: bytes.len(),
        what: "exec",
    })?;
    let lens = [
        (r.filename_len as usize, abi::WARD_FILENAME_MAX, "filename"),
        (r.exe_path_len as usize, abi::WARD_PATH_BUF, "exe_path"),
        (r.cwd_len as usize, abi::WARD_PATH_BUF, "cwd"),
        (r.argv_len as usize, abi::WARD_ARGV_MAX, "argv"),
        (r.env_len as usize, abi::WARD_ENV_MAX, "env"),
    ];
    let mut parts: [&[u8]; 5] = [&[]; 5];
    let mut off = head;
    for (i, (len, cap, what)) in lens.into_iter().enumerate() {
        if len > cap || off + len > size {
            return Err(DecodeError::Length(what));
        }
        parts[i] = &bytes[off..off + len];
        off += len;
    }
    if off != size {
        return Err(DecodeError::Length("exec record size"));
    }
    let [filename, exe_path, cwd, argv, env] = parts;
    let overlay = match r.ovl_layer {
        abi::WARD_OVL_NONE => OverlayLayer::NotOverlay,
        abi::WARD_OVL_LOWER => OverlayLayer::Lower,
        abi::WARD_OVL_UPPER => OverlayLayer::UpperOnly,
        abi::WARD_OVL_UPPER_LOWER => OverlayLayer::UpperOverLower,
        _ => return Err(DecodeError::Length("ovl_layer")),
    };
    let f = r.flags;
    Ok(ExecEvent {
        ktime_boot_ns: r.hdr.ktime_boot_ns,
        pid: r.hdr.pid,
        tgid: r.hdr.tgid,
        ppid: r.ppid,
        uid: r.uid,
        gid: r.gid,
        comm: cstr(&r.comm),
        filename: String::from_utf8_lossy(cstr_bytes(filename)).into_owned(),
        exe_path: components_to_path(exe_path),
        cwd: components_to_path(cwd),
        argv: split_argv(argv),
        argc: r.argc,
        argv_truncated: f & abi::WARD_EXEC_ARGV_TRUNCATED != 0,
        env: env.to_vec(),
        env_truncated: f & abi::WARD_EXEC_ENV_TRUNCATED != 0,
        exe: FileIdentity {
            dev: kernel_dev_to_user(r.exe_dev),
            ino: r.exe_ino,
            size: r.exe_size,
            mtime: (r.exe_mtime_sec, r.exe_mtime_nsec),
            ctime: (r.exe_ctime_sec, r.exe_ctime_nsec),
            nlink: r.exe_nlink,
            fs_magic: r.exe_fs_magic,
        },
        overlay,
        flags: f,
        exe_memfd: f & abi::WARD_EXEC_EXE_MEMFD != 0,
        exe_deleted: f & abi::WARD_EXEC_EXE_DELETED != 0,
        exe_detached: f & abi::WARD_EXEC_EXE_DETACHED != 0,
        path_truncated: f
            & (abi::WARD_EXEC_EXE_PATH_TRUNCATED
                | abi::WARD_EXEC_CWD_TRUNCATED
                | abi::WARD_EXEC_FILENAME_TRUNCATED)
            != 0,
        stdio: [fd_info(&r.fds[0]), fd_info(&r.fds[1]), fd_info(&r.fds[2])],
        cgroup_id: r.cgroup_id,
        pid_ns: r.pid_ns,
        mnt_ns: r.mnt_ns,
    })
}

/// Kernel-internal `dev_t` (major << 20 | minor) to user-space `st_dev`.
pub fn kernel_dev_to_user(dev: u32) -> u64 {
    libc::makedev(dev >> 20, dev & 0xfffff)
}

fn cstr_bytes(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(cstr_bytes(b)).into_owned()
}

/// Leaf-first NUL-terminated components -> "/a/b/c" (one allocation for valid UTF-8).
fn components_to_path(buf: &[u8]) -> String {
    let mut out = Vec::with_capacity(buf.len() + 1);
    // A root dentry named "/" (e.g. an internal mount's root) adds nothing.
    for c in buf
        .split(|&c| c == 0)
        .rev()
        .filter(|c| !c.is_empty() && *c != b"/")
    {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn split_argv(buf: &[u8]) -> Vec<String> {
    if buf.is_empty() {
        return Vec::new();
    }
    let body = buf.strip_suffix(&[0]).unwrap_or(buf);
    body.split(|&c| c == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn sockaddr(a: &abi::ward_sockaddr) -> SocketAddr {
    let ip = match a.family {
        2 => IpAddr::V4(Ipv4Addr::new(a.addr[0], a.addr[1], a.addr[2], a.addr[3])),
        10 => IpAddr::V6(Ipv6Addr::from(a.addr)).to_canonical(),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, a.port)
}

fn fd_info(i: &abi::ward_fd_info) -> FdInfo {
    let kind = match i.kind {
        abi::WARD_FD_NONE => FdKind::None,
        abi::WARD_FD_REG => FdKind::Regular,
        abi::WARD_FD_PIPE => FdKind::Pipe,
        abi::WARD_FD_FIFO => FdKind::Fifo,
        abi::WARD_FD_CHR => FdKind::CharDevice,
        abi::WARD_FD_UNIX => FdKind::UnixSocket,
        abi::WARD_FD_INET => FdKind::InetSocket,
        _ => FdKind::Other,
    };
    let socket = (kind == FdKind::InetSocket).then(|| InetSocket {
        sock_type: match i.sock_type {
            1 => SockType::Stream,
            2 => SockType::Dgram,
            t => SockType::Other(t),
        },
        state: i.sock_state,
        local: sockaddr(&i.local),
        remote: sockaddr(&i.remote),
    });
    FdInfo {
        kind,
        ino: i.ino,
        rdev: (kind == FdKind::CharDevice).then_some((i.rdev >> 20, i.rdev & 0xfffff)),
        socket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_rejected_not_panicking() {
        assert!(matches!(decode(&[]), Err(DecodeError::Short { .. })));
        let mut b = vec![0u8; 100];
        b[2] = abi::WARD_ABI_VERSION as u8;
        b[0] = 99;
        assert_eq!(decode(&b), Err(DecodeError::Kind(99)));
        b[0] = abi::WARD_EV_EXEC as u8;
        b[4] = 100;
        assert!(matches!(decode(&b), Err(DecodeError::Size { .. })));
        // Right declared size, truncated record.
        b[4..8].copy_from_slice(&400u32.to_ne_bytes());
        assert!(matches!(decode(&b), Err(DecodeError::Short { .. })));
        // Every prefix of every length never panics.
        for len in 0..b.len() {
            let _ = decode(&b[..len]);
        }
    }

    /// A packed exec record with these strings (exe_path/cwd leaf first, NUL separated).
    fn packed_exec(filename: &[u8], exe_path: &[u8], cwd: &[u8], argv: &[u8]) -> Vec<u8> {
        packed_exec_env(filename, exe_path, cwd, argv, b"")
    }

    /// The same with an environment after argv.
    fn packed_exec_env(
        filename: &[u8],
        exe_path: &[u8],
        cwd: &[u8],
        argv: &[u8],
        env: &[u8],
    ) -> Vec<u8> {
        let mut b = vec![0u8; abi::WARD_EXEC_HEAD_SIZE];
        b[0..2].copy_from_slice(&abi::WARD_EV_EXEC.to_ne_bytes());
        b[2..4].copy_from_slice(&abi::WARD_ABI_VERSION.to_ne_bytes());
        b[60..62].copy_from_slice(&(argv.len() as u16).to_ne_bytes());
        b[62..64].copy_from_slice(&(env.len() as u16).to_ne_bytes());
        b[64..66].copy_from_slice(&(filename.len() as u16).to_ne_bytes());
        b[66..68].copy_from_slice(&(exe_path.len() as u16).to_ne_bytes());
        b[68..70].copy_from_slice(&(cwd.len() as u16).to_ne_bytes());
        for part in [filename, exe_path, cwd, argv, env] {
            b.extend_from_slice(part);
        }
        let n = b.len() as u32;
        b[4..8].copy_from_slice(&n.to_ne_bytes());
        b
    }

    #[test]
    fn packed_exec_record_decodes() {
        let b = packed_exec(b"/bin/sh", b"dash\0bin\0usr\0", b"tmp\0", b"sh\0-c\0id\0");
        let Ok(RawEvent::Exec(e)) = decode(&b) else {
            panic!("{:?}", decode(&b));
        };
        assert_eq!(e.filename, "/bin/sh");
        assert_eq!(e.exe_path, "/usr/bin/dash");
        assert_eq!(e.cwd, "/tmp");
        assert_eq!(e.argv, vec!["sh", "-c", "id"]);
        // Empty strings.
        let b = packed_exec(b"", b"", b"", b"");
        let Ok(RawEvent::Exec(e)) = decode(&b) else {
            panic!("{:?}", decode(&b));
        };
        assert_eq!((e.exe_path.as_str(), e.argv.len()), ("/", 0));
        assert!(e.env.is_empty() && !e.env_truncated);
    }

    #[test]
    fn packed_exec_env_follows_argv() {
        let mut b = packed_exec_env(
            b"/bin/true",
            b"true\0bin\0",
            b"",
            b"true\0",
            b"PATH=/bin\0HTTP_PROXY=http://127.0.0.1:3128\0",
        );
        // The flag word is at 36.
        b[36..40].copy_from_slice(&abi::WARD_EXEC_ENV_TRUNCATED.to_ne_bytes());
        let Ok(RawEvent::Exec(e)) = decode(&b) else {
            panic!("{:?}", decode(&b));
        };
        assert_eq!(e.argv, vec!["true"]);
        assert_eq!(
            split_argv(&e.env),
            ["PATH=/bin", "HTTP_PROXY=http://127.0.0.1:3128"]
        );
        assert!(e.env_truncated && !e.argv_truncated);
    }

    #[test]
    fn exec_lengths_out_of_range_are_errors() {
        let good = packed_exec(b"/bin/true", b"true\0bin\0", b"", b"true\0");
        assert!(decode(&good).is_ok());
        // A length past its buffer's capacity.
        let mut b = good.clone();
        b[60..62].copy_from_slice(&9999u16.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Length("argv")));
        let mut b = good.clone();
        b[62..64].copy_from_slice(&2049u16.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Length("env")));
        // An env length that overruns the declared size.
        let mut b = good.clone();
        b[62..64].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Length("env")));
        // Lengths that overrun the declared size.
        let mut b = good.clone();
        b[68..70].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Length("cwd")));
        // Lengths that leave bytes over.
        let mut b = good.clone();
        b[64..66].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Length("exec record size")));
        // Declared size past the bytes received, and smaller than the head.
        let mut b = good.clone();
        b.truncate(good.len() - 1);
        assert!(matches!(decode(&b), Err(DecodeError::Short { .. })));
        let mut b = good;
        b[4..8].copy_from_slice(&100u32.to_ne_bytes());
        assert!(matches!(decode(&b), Err(DecodeError::Size { .. })));
    }

    #[test]
    fn paths_and_argv() {
        assert_eq!(components_to_path(b"true\0bin\0usr\0"), "/usr/bin/true");
        assert_eq!(components_to_path(b""), "/");
        assert_eq!(components_to_path(b"memfd:x\0/\0"), "/memfd:x");
        assert_eq!(components_to_path(b"b\xff\0a\0"), "/a/b\u{fffd}");
        assert_eq!(split_argv(b"a\0bb\0\0c\0"), vec!["a", "bb", "", "c"]);
        assert_eq!(split_argv(b"a\0trunc"), vec!["a", "trunc"]);
    }

    #[test]
    fn mapped_v6_becomes_v4() {
        let mut a = abi::ward_sockaddr {
            family: 10,
            port: 80,
            _pad0: 0,
            addr: [0; 16],
        };
        a.addr[10] = 0xff;
        a.addr[11] = 0xff;
        a.addr[12] = 127;
        a.addr[15] = 1;
        assert_eq!(sockaddr(&a), "127.0.0.1:80".parse().unwrap());
    }
}
