//! Who writes a shell's stdin pipe: the parent's `/proc/PID/fd` entries, looked up in user
//! space when a shell execs with a pipe on stdin.
//!
//! Interpreter relays (python `Popen(["/bin/sh"], stdin=PIPE)` + a pump thread, node `spawn`,
//! java `Runtime.exec`, a Go `exec.Command` with `StdinPipe`) keep the write end of the shell's
//! stdin pipe in the process that holds the connection, which is the shell's parent. The
//! process table binds the shell when that process holds a remote connection.
//!
//! Why user space and not BPF: it costs nothing on the exec path (only execs of shells whose
//! stdin is a pipe pay, in the agent, about one `readlink` per open fd of the parent), and it
//! looks a little after the exec: a shell running `x | sh` has closed its copies of the pipe by
//! then, while a relay keeps its write end for the whole session. A relay that is gone before
//! the lookup (it no longer relays anything) or a parent that passes the pipe on through a
//! socketpair (libuv/node's default child stdio is an AF_UNIX socketpair) is not seen.

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
    if parent == 0 || pipe_inode == 0 {
        return PipeWriter::NotHeld;
    }
    let dir = proc.join(parent.to_string());
    let want = format!("pipe:[{pipe_inode}]");
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
        if target.as_os_str() == want.as_str() && writable(&dir, fd) {
            return PipeWriter::Holds(fd);
        }
    }
    PipeWriter::NotHeld
}

/// The fd on which `parent` holds the write end of the pipe, if it does.
pub fn pipe_writer_fd(proc: &Path, parent: u32, pipe_inode: u64) -> Option<u32> {
    match pipe_writer(proc, parent, pipe_inode) {
        PipeWriter::Holds(fd) => Some(fd),
        _ => None,
    }
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
