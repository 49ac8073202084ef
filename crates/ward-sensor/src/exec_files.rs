//! Handles on executed files, from fanotify `FAN_OPEN_EXEC`.
//!
//! Reading `/proc/PID/exe` after the exec record was read loses every process that exited in
//! between (a container's entrypoint that prints a line and exits, the last command of
//! `sh -c`). fanotify closes that race: a `FAN_MARK_FILESYSTEM` mark with `FAN_OPEN_EXEC`
//! queues an event holding a reference to the very file the kernel opened for `execve`, and
//! reading the event gives an open fd on it, however long ago the process exited. The event is
//! a notification (not a permission event): the exec never waits for the agent.
//!
//! Which file systems: every super block mounted in the agent's mount namespace except pseudo
//! file systems and overlayfs itself. Container root file systems need no mark of their own:
//! on kernel 6.18 (measured) an exec of a file on an overlay mount reports the event on the
//! real (upper or lower layer) file, whose super block (the host's ext4, xfs, ...) is marked.
//! Super blocks mounted later (a tmpfs for a container's `/dev/shm`) are marked when the
//! mount table changes ([`ExecFiles::refresh`]). memfd files live on an internal mount that
//! cannot be marked (`EINVAL`), so memfd execs give no event here.
//!
//! An exec of an ELF with an interpreter queues two events (the program, then `ld.so`); a
//! `#!` script queues the script, then its interpreter (and its `ld.so`). The consumer pairs
//! events with exec records by pid and file identity.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use crate::FileIdentity;

/// One `FAN_OPEN_EXEC` event: the process and an open handle on the file it executed.
#[derive(Debug)]
pub struct ExecFile {
    /// Thread group id of the process that executed the file.
    pub pid: u32,
    /// Read-only handle on the executed file (the real file for an overlay file).
    pub file: File,
    /// `fstat` of the handle (`nlink` and `fs_magic` are not filled: 0).
    pub identity: FileIdentity,
}

/// Counters of [`ExecFiles`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecFilesStats {
    /// Events read with a file handle.
    pub events: u64,
    /// Times the kernel's event queue overflowed (events lost: those execs fall back to
    /// `/proc/PID/exe`).
    pub overflows: u64,
    /// Events without a usable fd (the fd could not be created or stat'ed).
    pub bad_events: u64,
    /// File systems (super blocks) marked.
    pub marked: u64,
    /// Mounts whose file system could not be marked.
    pub mark_errors: u64,
    /// Ignore marks added ([`ExecFiles::ignore`]).
    pub ignored: u64,
    /// Reads that failed (other than "nothing queued"), e.g. out of file descriptors: the
    /// event at the head is lost.
    pub read_errors: u64,
}

/// Most files [`ExecFiles::ignore`] marks.
pub const MAX_IGNORED: u64 = 4096;

/// A fanotify group watching executions on every real file system; see the module docs.
#[derive(Debug)]
pub struct ExecFiles {
    fd: OwnedFd,
    /// `/proc/self/mountinfo`, polled for `POLLPRI` (the mount table changed).
    mountinfo: File,
    /// Super blocks (`major:minor` of mountinfo) already marked or refused.
    seen: HashSet<String>,
    stats: ExecFilesStats,
    /// Ignore marks added and not removed (an upper bound: the kernel drops the marks of
    /// evicted inodes silently).
    ignores_live: u64,
    buf: Vec<u8>,
}

/// File systems that hold no executables (or, for overlay, whose executions are reported on
/// the layers' file system).
const SKIP_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "bpf",
    "tracefs",
    "debugfs",
    "securityfs",
    "pstore",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "nsfs",
    "efivarfs",
    "rpc_pipefs",
    "overlay",
    "devtmpfs",
    "hugetlbfs",
    "selinuxfs",
];

impl ExecFiles {
    /// Creates the fanotify group and marks the file systems mounted now. Needs
    /// CAP_SYS_ADMIN. The queue is bounded by the kernel (16384 events; an overflow is
    /// counted).
    pub fn open() -> io::Result<ExecFiles> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let raw = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC | libc::O_NOATIME) as u32,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fanotify_init returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Every event read is an open fd, held until its exec record is read: lift the soft
        // open-files limit to the hard one (1024 soft is a common default).
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid out pointer / in pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
        let mountinfo = File::open("/proc/self/mountinfo")?;
        let mut me = ExecFiles {
            fd,
            mountinfo,
            seen: HashSet::new(),
            stats: ExecFilesStats::default(),
            ignores_live: 0,
            buf: vec![0u8; 64 * 1024],
        };
        me.mark_mounts();
        if me.stats.marked == 0 {
            return Err(io::Error::other(
                "fanotify: no file system could be marked for FAN_OPEN_EXEC",
            ));
        }
        Ok(me)
    }

    /// Counters.
    pub fn stats(&self) -> ExecFilesStats {
        self.stats
    }

    /// Marks file systems mounted since the last call, if the mount table changed.
    pub fn refresh(&mut self) {
        let mut p = libc::pollfd {
            fd: self.mountinfo.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n > 0 && (p.revents & (libc::POLLPRI | libc::POLLERR)) != 0 {
            self.mark_mounts();
        }
    }

    fn mark_mounts(&mut self) {
        // Reading the file from the start also re-arms the POLLPRI notification.
        let text = {
            use std::io::{Read, Seek};
            let mut s = String::new();
            let _ = self.mountinfo.rewind();
            if self.mountinfo.read_to_string(&mut s).is_err() {
                return;
            }
            s
        };
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut l = left.split(' ');
            let (Some(_id), Some(_parent), Some(devno), Some(_root), Some(point)) =
                (l.next(), l.next(), l.next(), l.next(), l.next())
            else {
                continue;
            };
            let fstype = right.split(' ').next().unwrap_or("");
            if SKIP_FS.contains(&fstype) || self.seen.contains(devno) {
                continue;
            }
            self.seen.insert(devno.to_string());
            let point = unescape_mountinfo(point);
            let Ok(c) = CString::new(point.as_str()) else {
                continue;
            };
            // SAFETY: valid fd and NUL-terminated path.
            let r = unsafe {
                libc::fanotify_mark(
                    self.fd.as_raw_fd(),
                    libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                    libc::FAN_OPEN_EXEC,
                    libc::AT_FDCWD,
                    c.as_ptr(),
                )
            };
            if r == 0 {
                self.stats.marked += 1;
                tracing::debug!(mount = %point, fstype, devno, "fanotify: marked for FAN_OPEN_EXEC");
            } else {
                self.stats.mark_errors += 1;
                tracing::debug!(mount = %point, fstype, devno, error = %io::Error::last_os_error(), "fanotify: cannot mark");
            }
        }
    }

    /// Stops reporting executions of `file`'s inode (an ignore mask on an inode mark) until
    /// the file is written (a write or truncate clears the mask: no
    /// `FAN_MARK_IGNORED_SURV_MODIFY`). For files whose events are not needed: an `ld.so`,
    /// or a binary whose hash the agent already has (and keeps a handle on, to hash it again
    /// if its identity changes without a write).
    ///
    /// An inode mark pins its inode in memory (until the file is deleted or its file system
    /// unmounted), so at most [`MAX_IGNORED`] marks are added and not removed again
    /// ([`ExecFiles::unignore`]). Returns whether the mark was added.
    pub fn ignore(&mut self, file: &File) -> bool {
        if self.ignores_live >= MAX_IGNORED {
            return false;
        }
        if self.mark_ignore(file, libc::FAN_MARK_ADD) {
            self.stats.ignored += 1;
            self.ignores_live += 1;
            true
        } else {
            false
        }
    }

    /// Removes an ignore mark added by [`ExecFiles::ignore`]: the kernel reports the file's
    /// executions again.
    pub fn unignore(&mut self, file: &File) {
        if self.mark_ignore(file, libc::FAN_MARK_REMOVE) {
            self.ignores_live = self.ignores_live.saturating_sub(1);
        }
    }

    fn mark_ignore(&mut self, file: &File, op: libc::c_uint) -> bool {
        // SAFETY: valid fds; a NULL path marks the inode of `file` itself.
        let r = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                op | libc::FAN_MARK_IGNORED_MASK,
                libc::FAN_OPEN_EXEC,
                file.as_raw_fd(),
                std::ptr::null(),
            )
        };
        if r != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "fanotify: cannot change an ignore mark");
        }
        r == 0
    }

    /// Reads the events queued now (never blocks) and hands each to `f`.
    pub fn drain(&mut self, mut f: impl FnMut(ExecFile)) {
        loop {
            // SAFETY: reading into our own buffer of that length.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                )
            };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                    self.stats.read_errors += 1;
                }
                return;
            }
            let n = n as usize;
            let meta_len = std::mem::size_of::<libc::fanotify_event_metadata>();
            let mut off = 0usize;
            while off + meta_len <= n {
                // SAFETY: at least meta_len bytes from off are inside the read part of buf;
                // read_unaligned copes with any alignment.
                let m: libc::fanotify_event_metadata = unsafe {
                    std::ptr::read_unaligned(
                        self.buf[off..]
                            .as_ptr()
                            .cast::<libc::fanotify_event_metadata>(),
                    )
                };
                let len = m.event_len as usize;
                if len < meta_len || off + len > n {
                    break;
                }
                off += len;
                if m.mask & libc::FAN_Q_OVERFLOW != 0 {
                    self.stats.overflows += 1;
                }
                if m.fd < 0 {
                    if m.mask & libc::FAN_Q_OVERFLOW == 0 {
                        self.stats.bad_events += 1;
                    }
                    continue;
                }
                // SAFETY: the kernel created this fd for us; we own it from here.
                let file = File::from(unsafe { OwnedFd::from_raw_fd(m.fd) });
                let Ok(st) = file.metadata() else {
                    self.stats.bad_events += 1;
                    continue;
                };
                self.stats.events += 1;
                f(ExecFile {
                    pid: m.pid.max(0) as u32,
                    identity: FileIdentity {
                        dev: st.dev(),
                        ino: st.ino(),
                        size: st.size(),
                        mtime: (st.mtime(), st.mtime_nsec() as u32),
                        ctime: (st.ctime(), st.ctime_nsec() as u32),
                        nlink: 0,
                        fs_magic: 0,
                    },
                    file,
                });
            }
            if n < self.buf.len() / 2 {
                return;
            }
        }
    }
}

impl crate::ExecEvent {
    /// The exec program stopped this process ([`crate::SensorConfig::hold_memfd`]): take what
    /// is needed from `/proc/PID` (its exe), then [`resume_held`] it.
    pub fn held(&self) -> bool {
        self.flags & crate::abi::WARD_EXEC_HELD != 0
    }
}

/// Resumes a process the exec program stopped (`SIGCONT`). A process that is already gone
/// is not an error.
pub fn resume_held(pid: u32) -> io::Result<()> {
    let Ok(pid) = i32::try_from(pid) else {
        return Ok(());
    };
    // SAFETY: plain syscall.
    if unsafe { libc::kill(pid, libc::SIGCONT) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(e)
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/x\"), r"/x\");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    /// Runs a file this (multi-threaded) test process has just written. Another test's child,
    /// forked while the file was open for writing, can hold a copy of that fd until it execs:
    /// the exec then fails with ETXTBSY for a moment. Retried.
    fn run_fresh(exe: &std::path::Path) -> std::process::ExitStatus {
        run_fresh_counted(exe).0
    }

    /// [`run_fresh`] and how many execs it took. A file just written can be busy for a
    /// moment (ETXTBSY: another test's child, forked while the copy was open, has not
    /// exec'd yet), and an exec refused that way may already have been reported.
    fn run_fresh_counted(exe: &std::path::Path) -> (std::process::ExitStatus, usize) {
        for attempt in 1..=50 {
            match std::process::Command::new(exe).status() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                r => return (r.unwrap(), attempt),
            }
        }
        panic!("{} stayed busy (ETXTBSY)", exe.display());
    }

    /// A process that has exited long before the event is read still yields a handle on its
    /// executable (root only: fanotify needs CAP_SYS_ADMIN).
    #[test]
    fn handle_on_the_file_of_an_exited_process() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP handle_on_the_file_of_an_exited_process: not root");
            return;
        }
        let mut ef = ExecFiles::open().expect("fanotify");
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("short-lived");
        std::fs::copy("/bin/true", &exe).unwrap();
        let want = std::fs::metadata(&exe).unwrap();
        let status = run_fresh(&exe);
        assert!(status.success());
        let pid_gone = Instant::now();
        // The process is gone and its file too: the handle must still read it.
        std::fs::remove_file(&exe).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut found = None;
        ef.drain(|e| {
            if e.identity.ino == want.ino() && e.identity.dev == want.dev() {
                found = Some(e);
            }
        });
        let e = found.expect("an event for the exited process's file");
        assert!(pid_gone.elapsed() >= Duration::from_millis(50));
        let mut bytes = Vec::new();
        use std::io::Read;
        let mut f = e.file;
        f.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, std::fs::read("/bin/true").unwrap());
        assert!(ef.stats().marked > 0);
    }

    /// An ignored file is no longer reported, until it is modified (root only).
    #[test]
    fn ignored_until_modified() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP ignored_until_modified: not root");
            return;
        }
        let mut ef = ExecFiles::open().expect("fanotify");
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("ignored");
        std::fs::copy("/bin/true", &exe).unwrap();
        let ino = std::fs::metadata(&exe).unwrap().ino();
        // Events for the file, as many as execs tried (at least 1: the one that ran), or 0.
        // By inode number and change time: another test's file, deleted, can leave our file
        // its inode number while its exec events are still queued.
        let run_and_count = |ef: &mut ExecFiles| {
            let want = std::fs::metadata(&exe).unwrap();
            let ctime = (want.ctime(), want.ctime_nsec() as u32);
            let (status, attempts) = run_fresh_counted(&exe);
            assert!(status.success());
            let mut n = 0;
            let mut handle = None;
            ef.drain(|e| {
                if e.identity.ino == ino && e.identity.ctime == ctime {
                    n += 1;
                    handle = Some(e.file);
                }
            });
            assert!(n <= attempts, "{n} events for {attempts} execs");
            (n.min(1), handle)
        };
        let (n, handle) = run_and_count(&mut ef);
        assert_eq!(n, 1);
        ef.ignore(&handle.unwrap());
        assert_eq!(run_and_count(&mut ef).0, 0, "ignored");
        // Rewriting the contents clears the ignore mask.
        let bytes = std::fs::read(&exe).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&exe)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .unwrap();
        assert_eq!(run_and_count(&mut ef).0, 1, "reported again after a write");
    }
}
