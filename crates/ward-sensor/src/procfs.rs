//! Start-up seeding: the processes that were already running, from /proc.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::error::SensorError;
use crate::event::{FdInfo, FdKind, FileIdentity, InetSocket, SockType};

/// A process found in /proc at start-up; the fields mean what the same
/// fields of [`crate::ExecEvent`] mean. `None` where /proc would not tell
/// (the process exited meanwhile, or a kernel thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSnapshot {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// comm.
    pub comm: String,
    /// Executable path relative to the process's root (" (deleted)" removed).
    pub exe_path: Option<String>,
    /// Identity of the executable (stat of /proc/PID/exe).
    pub exe: Option<FileIdentity>,
    /// The executable was deleted (or is a memfd).
    pub exe_deleted: bool,
    /// The executable is a memfd.
    pub exe_memfd: bool,
    /// Arguments (empty for kernel threads).
    pub argv: Vec<String>,
    /// Working directory relative to the process's root.
    pub cwd: Option<String>,
    /// cgroup v2 id: inode of its cgroup directory.
    pub cgroup_id: Option<u64>,
    /// fds 0, 1, 2.
    pub stdio: [FdInfo; 3],
    /// pid namespace inode.
    pub pid_ns: Option<u32>,
    /// mount namespace inode.
    pub mnt_ns: Option<u32>,
    /// Start time, CLOCK_BOOTTIME ns (jiffies resolution).
    pub start_boot_ns: u64,
    /// A kernel thread (no mm, no exe).
    pub kernel_thread: bool,
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on pure v2
/// systems, `/sys/fs/cgroup/unified` on hybrid ones), from /proc/self/mounts.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount(dir)))
    })
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The cgroup v2 id of a process: the inode of its cgroup directory.
pub fn cgroup_id_of(pid: u32, cgroup2: &Path) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = cgroup2.join(rel.trim_start_matches('/'));
    fs::metadata(dir).ok().map(|m| m.ino())
}

#[derive(Clone, Copy, Debug)]
struct SockEntry {
    sock_type: SockType,
    state: u8,
    local: SocketAddr,
    remote: SocketAddr,
}

#[derive(Default)]
struct NetTables {
    inet: HashMap<u64, SockEntry>,
    unix: std::collections::HashSet<u64>,
}

fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(a, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b)).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn load_net_tables(pid: u32) -> NetTables {
    let mut t = NetTables::default();
    for (file, sock_type) in [
        ("tcp", SockType::Stream),
        ("tcp6", SockType::Stream),
        ("udp", SockType::Dgram),
        ("udp6", SockType::Dgram),
    ] {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let (Some(local), Some(remote), Ok(state), Ok(ino)) = (
                parse_hex_addr(f[1]),
                parse_hex_addr(f[2]),
                u8::from_str_radix(f[3], 16),
                f[9].parse::<u64>(),
            ) else {
                continue;
            };
            if ino != 0 {
                t.inet.insert(
                    ino,
                    SockEntry {
                        sock_type,
                        state,
                        local,
                        remote,
                    },
                );
            }
        }
    }
    if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/unix")) {
        for line in text.lines().skip(1) {
            if let Some(ino) = line.split_whitespace().nth(6).and_then(|s| s.parse().ok()) {
                t.unix.insert(ino);
            }
        }
    }
    t
}

struct Seeder {
    cgroup2: Option<PathBuf>,
    nets: HashMap<u64, NetTables>,
    clk_tck: u64,
}

impl Seeder {
    fn classify_fd(&mut self, pid: u32, fd: u32) -> FdInfo {
        let path = format!("/proc/{pid}/fd/{fd}");
        let Ok(md) = fs::metadata(&path) else {
            // Closed, or a dangling link we cannot stat.
            return if fs::symlink_metadata(&path).is_ok() {
                FdInfo {
                    kind: FdKind::Other,
                    ..FdInfo::default()
                }
            } else {
                FdInfo::default()
            };
        };
        let ft = md.file_type();
        let mut info = FdInfo {
            ino: md.ino(),
            ..FdInfo::default()
        };
        if ft.is_file() {
            info.kind = FdKind::Regular;
        } else if ft.is_fifo() {
            let link = fs::read_link(&path).unwrap_or_default();
            info.kind = if link.to_string_lossy().starts_with("pipe:") {
                FdKind::Pipe
            } else {
                FdKind::Fifo
            };
        } else if ft.is_char_device() {
            info.kind = FdKind::CharDevice;
            let rdev = md.rdev();
            info.rdev = Some((libc::major(rdev), libc::minor(rdev)));
        } else if ft.is_socket() {
            let netns = fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.ino())
                .unwrap_or(0);
            let tables = self
                .nets
                .entry(netns)
                .or_insert_with(|| load_net_tables(pid));
            if let Some(s) = tables.inet.get(&info.ino) {
                info.kind = FdKind::InetSocket;
                info.socket = Some(InetSocket {
                    sock_type: s.sock_type,
                    state: s.state,
                    local: s.local,
                    remote: s.remote,
                });
            } else if tables.unix.contains(&info.ino) {
                info.kind = FdKind::UnixSocket;
            } else {
                info.kind = FdKind::Other;
            }
        } else {
            info.kind = FdKind::Other;
        }
        info
    }

    fn snapshot(&mut self, pid: u32) -> Option<ProcessSnapshot> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_string();
        let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
        // rest[0] = state (field 3), rest[1] = ppid (4), rest[19] = starttime (22)
        let ppid = rest.get(1)?.parse().ok()?;
        let start_ticks: u64 = rest.get(19)?.parse().ok()?;
        let flags: u64 = rest.get(6)?.parse().unwrap_or(0);
        let kernel_thread = flags & 0x0020_0000 != 0; // PF_KTHREAD

        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let id_field = |key: &str| -> u32 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(u32::MAX)
        };
        let (uid, gid) = (id_field("Uid:"), id_field("Gid:"));

        let root = fs::read_link(format!("/proc/{pid}/root"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let relative = |p: String| -> String {
            match root.as_deref() {
                Some(r) if r != "/" && p.starts_with(r) => {
                    let rel = &p[r.len()..];
                    if rel.is_empty() {
                        "/".to_string()
                    } else {
                        rel.to_string()
                    }
                }
                _ => p,
            }
        };

        let mut exe_deleted = false;
        let exe_path = fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| {
            let mut s = p.to_string_lossy().into_owned();
            if let Some(stripped) = s.strip_suffix(" (deleted)") {
                exe_deleted = true;
                s = stripped.to_string();
            }
            relative(s)
        });
        let exe_memfd = exe_path
            .as_deref()
            .is_some_and(|p| p.starts_with("/memfd:"));
        let exe = fs::metadata(format!("/proc/{pid}/exe"))
            .ok()
            .map(|m| FileIdentity {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec() as u32),
                ctime: (m.ctime(), m.ctime_nsec() as u32),
                nlink: m.nlink() as u32,
                fs_magic: 0,
            });
        if exe.is_some_and(|e| e.nlink == 0) {
            exe_deleted = true;
        }
        let argv = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                let body = b.strip_suffix(&[0]).unwrap_or(&b);
                if body.is_empty() {
                    Vec::new()
                } else {
                    body.split(|&c| c == 0)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                }
            })
            .unwrap_or_default();
        let cwd = fs::read_link(format!("/proc/{pid}/cwd"))
            .ok()
            .map(|p| relative(p.to_string_lossy().into_owned()));
        let ns = |name: &str| -> Option<u32> {
            fs::metadata(format!("/proc/{pid}/ns/{name}"))
                .ok()
                .map(|m| m.ino() as u32)
        };
        let cgroup_id = self.cgroup2.as_deref().and_then(|c| cgroup_id_of(pid, c));
        let stdio = [
            self.classify_fd(pid, 0),
            self.classify_fd(pid, 1),
            self.classify_fd(pid, 2),
        ];
        Some(ProcessSnapshot {
            pid,
            ppid,
            uid,
            gid,
            comm,
            exe_path,
            exe,
            exe_deleted,
            exe_memfd,
            argv,
            cwd,
            cgroup_id,
            stdio,
            pid_ns: ns("pid"),
            mnt_ns: ns("mnt"),
            start_boot_ns: start_ticks.saturating_mul(1_000_000_000) / self.clk_tck.max(1),
            kernel_thread,
        })
    }
}

/// Walks /proc and returns a snapshot of every running process (kernel
/// threads included, flagged), sorted by pid. Processes that exit during the
/// walk are skipped.
pub fn snapshot_processes() -> Result<Vec<ProcessSnapshot>, SensorError> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut seeder = Seeder {
        cgroup2: cgroup2_mount(),
        nets: HashMap::new(),
        clk_tck,
    };
    let dir = fs::read_dir("/proc").map_err(|e| SensorError::io("reading /proc", e))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        match seeder.snapshot(pid) {
            Some(s) => out.push(s),
            None => debug!(pid, "process vanished during the /proc walk"),
        }
    }
    out.sort_by_key(|s| s.pid);
    Ok(out)
}

/// Snapshot of one process, `None` if it does not exist (any more).
pub fn snapshot_process(pid: u32) -> Option<ProcessSnapshot> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Seeder {
        cgroup2: cgroup2_mount(),
        nets: HashMap::new(),
        clk_tck,
    }
    .snapshot(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_addresses() {
        assert_eq!(
            parse_hex_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_hex_addr("00000000000000000000000001000000:0016"),
            Some("[::1]:22".parse().unwrap())
        );
        assert_eq!(
            parse_hex_addr("0000000000000000FFFF00000100007F:0050"),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(parse_hex_addr("zz"), None);
    }

    #[test]
    fn snapshot_of_self() {
        let me = snapshot_process(std::process::id()).expect("own process");
        assert_eq!(me.pid, std::process::id());
        assert!(me.exe_path.is_some());
        assert!(!me.argv.is_empty());
        assert!(!me.kernel_thread);
        let all = snapshot_processes().unwrap();
        assert!(all.iter().any(|p| p.pid == 1));
    }
}
