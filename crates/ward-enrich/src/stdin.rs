//! Who writes a shell's stdin: the parent's `/proc/PID/fd` entries, looked up in user space
//! when an interactive shell execs with a pipe or an AF_UNIX socketpair on stdin.
//!
//! Interpreter relays (python `Popen(["/bin/sh"], stdin=PIPE)` + a pump thread, node `spawn`,
//! java `Runtime.exec`, a Go `exec.Command` with `StdinPipe`) keep the write end of the shell's
//! stdin pipe in the process that holds the connection, which is the shell's parent. libuv (so
//! node) gives children one end of a socketpair instead of a pipe: its peer's inode comes from
//! the kernel's sock_diag interface. The process table binds the shell when that process holds
//! a remote connection.
//!
//! Why user space and not BPF: it costs nothing on the exec path (only execs of interactive
//! shells whose stdin is a pipe or socketpair pay, in the agent, about one `readlink` per open
//! fd of the parent), and it looks a little after the exec: a shell running `x | sh` has closed
//! its copies of the pipe by then, while a relay keeps its end for the whole session. A relay
//! that is not the shell's parent is not seen.

use std::path::Path;

/// What the lookup of a shell's stdin pipe in its parent found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeWriter {
    /// The parent holds the write end on this fd.
    Holds(u32),
    /// The parent is alive and does not hold it (a pipeline's shell has closed its copies).
    NotHeld,
    /// The parent's fds could not be read: it is gone (or not ours to read). A relay that ended
    /// its session before the agent looked; the process table still requires the parent to
    /// have held a remote connection.
    Gone,
}

/// Looks for the *write* end of the pipe with inode `pipe_inode` among `parent`'s fds. `proc`
/// is the procfs mount (`/proc`).
pub fn pipe_writer(proc: &Path, parent: u32, pipe_inode: u64) -> PipeWriter {
    if pipe_inode == 0 {
        return PipeWriter::NotHeld;
    }
    holder(proc, parent, &format!("pipe:[{pipe_inode}]"), true)
}

/// For a stdin that is one end of an AF_UNIX socketpair (libuv/node's child stdio): does
/// `parent` hold the other end? The peer's inode comes from the kernel's sock_diag interface
/// (`NETLINK_SOCK_DIAG`, `UDIAG_SHOW_PEER`, what `ss -x` shows).
///
/// The shell's socket already gone (its session ended before the agent looked; the shell
/// exited and the parent closed its copy) is [`PipeWriter::Gone`] like a parent that is gone:
/// the peer can no longer be asked for.
pub fn socketpair_holder(proc: &Path, parent: u32, socket_inode: u64) -> PipeWriter {
    match unix_peer(socket_inode) {
        UnixPeer::Peer(peer) => holder(proc, parent, &format!("socket:[{peer}]"), false),
        UnixPeer::Gone => PipeWriter::Gone,
        UnixPeer::Unknown => PipeWriter::NotHeld,
    }
}

/// What sock_diag says about an AF_UNIX socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixPeer {
    /// Connected; the peer's inode.
    Peer(u64),
    /// No socket with that inode (any more): ENOENT.
    Gone,
    /// Not connected, sock_diag unavailable, or a malformed reply.
    Unknown,
}

/// The fd on which `parent` holds the write end of the pipe, if it does.
pub fn pipe_writer_fd(proc: &Path, parent: u32, pipe_inode: u64) -> Option<u32> {
    match pipe_writer(proc, parent, pipe_inode) {
        PipeWriter::Holds(fd) => Some(fd),
        _ => None,
    }
}

/// An fd of `parent` whose `/proc` link reads `link` (and is writable when `write`).
fn holder(proc: &Path, parent: u32, link: &str, write: bool) -> PipeWriter {
    if parent == 0 {
        return PipeWriter::NotHeld;
    }
    let dir = proc.join(parent.to_string());
    let Ok(entries) = std::fs::read_dir(dir.join("fd")) else {
        return PipeWriter::Gone;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(fd) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.as_os_str() == link && (!write || writable(&dir, fd)) {
            return PipeWriter::Holds(fd);
        }
    }
    // An exited parent not yet reaped (a zombie) has no fds left, but its directory is still
    // there: the relay ended its session before the agent looked. That is gone, not "alive and
    // not holding it".
    if exited(&dir) {
        return PipeWriter::Gone;
    }
    PipeWriter::NotHeld
}

/// Whether the process of `/proc/PID` `dir` has exited or is exiting: a zombie (`Z`), dead
/// (`X`), its stat unreadable, or `PF_EXITING` in its flags. The last one matters: `do_exit`
/// closes the fd table well before the process turns zombie, and in that window its fd list
/// is empty while its state still reads as running.
fn exited(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("stat")) {
        Ok(stat) => stat_says_exited(&stat),
        Err(_) => true,
    }
}

/// `PF_EXITING` in `/proc/PID/stat`'s flags (include/linux/sched.h).
const PF_EXITING: u64 = 0x4;

/// [`exited`] on the text of `/proc/PID/stat`: "pid (comm) S ppid pgrp session tty tpgid
/// flags ...". comm may hold spaces and parentheses: the fields follow the last ')'.
fn stat_says_exited(stat: &str) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return true;
    };
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().and_then(|s| s.chars().next());
    if matches!(state, Some('Z' | 'X' | 'x') | None) {
        return true;
    }
    // flags is the 6th field after the state.
    fields
        .nth(5)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const AF_UNIX: u8 = 1;
const UDIAG_SHOW_PEER: u32 = 4;
const UNIX_DIAG_PEER: u16 = 2;

/// The inode of the peer of the AF_UNIX socket with inode `ino` (`None`: not a connected
/// unix socket, or sock_diag unavailable).
pub fn unix_peer_inode(ino: u64) -> Option<u64> {
    match unix_peer(ino) {
        UnixPeer::Peer(p) => Some(p),
        _ => None,
    }
}

/// See [`UnixPeer`].
pub fn unix_peer(ino: u64) -> UnixPeer {
    query_peer(ino).unwrap_or(UnixPeer::Unknown)
}

fn query_peer(ino: u64) -> Option<UnixPeer> {
    use rustix::net::{netlink, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
    let ino = u32::try_from(ino).ok()?;
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )
    .ok()?;
    // struct nlmsghdr (16) + struct unix_diag_req (24), native endian.
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    req.extend_from_slice(&[AF_UNIX, 0, 0, 0]); // family, protocol, pad
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // all states
    req.extend_from_slice(&ino.to_ne_bytes());
    req.extend_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // no cookie
    rustix::net::send(&fd, &req, SendFlags::empty()).ok()?;
    let mut buf = [0u8; 1024];
    let (n, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()).ok()?;
    parse_peer(&buf[..n.min(buf.len())])
}

const ENOENT: i32 = 2;

/// The UNIX_DIAG_PEER attribute of a sock_diag reply (or the ENOENT of a socket that is gone).
fn parse_peer(msg: &[u8]) -> Option<UnixPeer> {
    let u16_at = |o: usize| msg.get(o..o + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        msg.get(o..o + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let len = (u32_at(0)? as usize).min(msg.len());
    let kind = u16_at(4)?;
    if kind == NLMSG_ERROR {
        // struct nlmsgerr: int error (negative errno), then the request's header.
        let errno = u32_at(16).map(|e| -(e as i32))?;
        return Some(if errno == ENOENT {
            UnixPeer::Gone
        } else {
            UnixPeer::Unknown
        });
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    // nlmsghdr (16) + unix_diag_msg (16), then rtattrs {len u16, type u16, data}.
    let mut off = 32;
    while off + 4 <= len {
        let alen = u16_at(off)? as usize;
        if alen < 4 {
            return None;
        }
        if u16_at(off + 2)? == UNIX_DIAG_PEER {
            return u32_at(off + 4).map(|p| UnixPeer::Peer(u64::from(p)));
        }
        off += (alen + 3) & !3;
    }
    Some(UnixPeer::Unknown)
}

/// `flags:` of `/proc/PID/fdinfo/FD` (octal) has O_WRONLY or O_RDWR.
fn writable(dir: &Path, fd: u32) -> bool {
    let Ok(info) = std::fs::read_to_string(dir.join("fdinfo").join(fd.to_string())) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    fn pipe_inode(fd: &impl AsRawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .ino()
    }

    #[test]
    fn finds_the_write_end_held_by_a_process() {
        let (reader, writer) = std::io::pipe().unwrap();
        let ino = pipe_inode(&reader);
        let me = std::process::id();
        let proc = Path::new("/proc");
        assert_eq!(
            pipe_writer_fd(proc, me, ino),
            Some(writer.as_raw_fd() as u32)
        );
        // Only the read end left: not a writer.
        drop(writer);
        assert_eq!(pipe_writer_fd(proc, me, ino), None);
        drop(reader);
        assert_eq!(pipe_writer_fd(proc, me, ino), None);
        assert_eq!(pipe_writer(proc, me, ino), PipeWriter::NotHeld);
        // Gone processes are told apart; unknown inodes are not held.
        assert_eq!(pipe_writer(proc, u32::MAX - 1, ino), PipeWriter::Gone);
        assert_eq!(pipe_writer(proc, me, 0), PipeWriter::NotHeld);
    }

    /// A parent that exited but is not reaped yet (a zombie: its fds are closed, its /proc
    /// directory remains) is gone, not "alive and not holding the pipe".
    #[test]
    fn an_exiting_process_reads_as_exited() {
        // A live process: flags without PF_EXITING (0x400000 is PF_RANDOMIZE).
        let live = "4242 (perl) S 1 4242 4242 0 -1 4194560 2 0 0 0 0 0 0 0 20 0 1 0 5";
        assert!(!stat_says_exited(live));
        // In do_exit, fds already closed, not yet a zombie: PF_EXITING (0x4) set.
        let exiting = "4242 (perl) R 1 4242 4242 0 -1 4194564 2 0 0 0 0 0 0 0 20 0 1 0 5";
        assert!(stat_says_exited(exiting));
        // A comm with spaces and a ')' of its own.
        let odd = "4242 (a) b S) Z 1 4242 4242 0 -1 4194560 2";
        assert!(stat_says_exited(odd));
        assert!(!stat_says_exited(
            "4242 (a) b S) S 1 4242 4242 0 -1 4194560 2"
        ));
        assert!(stat_says_exited("garbage"));
        // Our own stat: alive.
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(!stat_says_exited(&me), "{me}");
    }

    #[test]
    fn an_unreaped_parent_is_gone() {
        let (reader, writer) = std::io::pipe().unwrap();
        let ino = pipe_inode(&reader);
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exit 0")
            .stdout(writer)
            .spawn()
            .unwrap();
        let pid = child.id();
        // Exited, not waited for: a zombie.
        let dir = Path::new("/proc").join(pid.to_string());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !exited(&dir) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child did not exit"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(dir.exists(), "a zombie keeps its /proc directory");
        assert_eq!(pipe_writer(Path::new("/proc"), pid, ino), PipeWriter::Gone);
        child.wait().unwrap();
        // A live process that does not hold it.
        assert_eq!(
            pipe_writer(Path::new("/proc"), std::process::id(), ino),
            PipeWriter::NotHeld
        );
        drop(reader);
    }

    #[test]
    fn socketpair_peers_are_found_through_sock_diag() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let ia = pipe_inode(&a);
        let ib = pipe_inode(&b);
        assert_eq!(unix_peer_inode(ia), Some(ib));
        assert_eq!(unix_peer_inode(ib), Some(ia));
        let me = std::process::id();
        assert_eq!(
            socketpair_holder(Path::new("/proc"), me, ia),
            PipeWriter::Holds(b.as_raw_fd() as u32)
        );
        drop(b);
        assert_eq!(
            socketpair_holder(Path::new("/proc"), me, ia),
            PipeWriter::NotHeld
        );
        // Not a unix socket.
        let (r, _w) = std::io::pipe().unwrap();
        assert_eq!(unix_peer_inode(pipe_inode(&r)), None);
        assert_eq!(parse_peer(&[0u8; 8]), None);
        // Both ends closed: the socket is gone.
        drop(a);
        assert_eq!(unix_peer(ia), UnixPeer::Gone);
        assert_eq!(
            socketpair_holder(Path::new("/proc"), me, ia),
            PipeWriter::Gone
        );
    }

    /// A real shell whose stdin is a pipe this process writes: found through the shell's
    /// parent (this test process).
    #[test]
    fn a_child_shell_on_our_pipe() {
        let (reader, writer) = std::io::pipe().unwrap();
        let ino = pipe_inode(&reader);
        let mut child = std::process::Command::new("sh")
            .stdin(reader)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdin_ino = std::fs::metadata(format!("/proc/{}/fd/0", child.id()))
            .unwrap()
            .ino();
        assert_eq!(stdin_ino, ino);
        assert_eq!(
            pipe_writer_fd(Path::new("/proc"), std::process::id(), stdin_ino),
            Some(writer.as_raw_fd() as u32)
        );
        drop(writer);
        child.wait().unwrap();
    }
}
