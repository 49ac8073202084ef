//! cgroup → container: parse container ids out of cgroup paths, and map the cgroup v2 id the
//! kernel stamps on each event (`bpf_get_current_cgroup_id()`, the inode of the cgroup's
//! directory) to its path.
//!
//! Path forms recognised (the id is always 64 lowercase hex digits):
//!
//! | runtime | cgroup path |
//! |---|---|
//! | docker, cgroupfs | `/docker/<id>` |
//! | docker, systemd | `/system.slice/docker-<id>.scope` |
//! | containerd CRI, systemd | `/kubepods.slice/.../cri-containerd-<id>.scope` |
//! | containerd CRI, cgroupfs | `/kubepods/burstable/pod<uid>/<id>` |
//! | CRI-O | `/kubepods.slice/.../crio-<id>.scope` |
//! | podman, cgroupfs | `/libpod_parent/libpod-<id>` |
//! | podman, systemd | `/machine.slice/libpod-<id>.scope` (and its `container` child) |
//!
//! The deepest component carrying an id wins (docker in docker). Runtime helpers that live
//! next to the container (`libpod-conmon-<id>.scope`, `crio-conmon-<id>.scope`) are not
//! containers.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which runtime a container id came from (decides which API to ask for metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    CriO,
    /// A bare id under a kubepods hierarchy: a CRI runtime, which one is unknown.
    Cri,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Cri => "cri",
        }
    }
}

/// A container identified from a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    /// 64 lowercase hex digits.
    pub id: String,
    pub runtime: Runtime,
}

fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The container a cgroup path belongs to, if any.
pub fn container_from_path(path: &str) -> Option<ContainerRef> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for i in (0..parts.len()).rev() {
        let comp = parts[i];
        let base = comp.strip_suffix(".scope").unwrap_or(comp);
        let prefixed = [
            ("docker-", Runtime::Docker),
            ("cri-containerd-", Runtime::Containerd),
            ("crio-", Runtime::CriO),
            ("libpod-", Runtime::Podman),
        ];
        for (prefix, runtime) in prefixed {
            if let Some(id) = base.strip_prefix(prefix) {
                if is_id(id) {
                    return Some(ContainerRef {
                        id: id.to_string(),
                        runtime,
                    });
                }
            }
        }
        if is_id(base) {
            let parent = if i > 0 { parts[i - 1] } else { "" };
            let runtime = if parent == "docker" {
                Runtime::Docker
            } else if parts[..i].iter().any(|p| p.starts_with("kubepods")) {
                Runtime::Cri
            } else if parts[..i].iter().any(|p| p.contains("libpod")) {
                Runtime::Podman
            } else {
                Runtime::Docker
            };
            return Some(ContainerRef {
                id: base.to_string(),
                runtime,
            });
        }
    }
    None
}

/// The cgroup v2 path of a process (the `0::` line of `/proc/PID/cgroup`).
pub fn proc_cgroup_v2_path(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_proc_cgroup(&text).0
}

/// Splits `/proc/PID/cgroup` text into the v2 path and a container found on any line (on
/// cgroup v1 hosts only the v1 lines name the container).
fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<ContainerRef>) {
    let mut v2 = None;
    let mut found = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(hier), Some(_ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if hier == "0" {
            v2 = Some(path.to_string());
        }
        if found.is_none() {
            found = container_from_path(path);
        }
    }
    if let Some(c) = v2.as_deref().and_then(container_from_path) {
        return (v2, Some(c));
    }
    (v2, found)
}

/// Counters of the resolver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Full walks of the cgroup2 hierarchy.
    pub scans: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups answered by `/proc/PID/cgroup`.
    pub proc_reads: u64,
    /// Lookups answered by opening the cgroup by its id (`open_by_handle_at`).
    pub handle_lookups: u64,
    /// cgroup ids that could not be mapped to a path.
    pub unresolved: u64,
}

/// Maps cgroup ids to containers, caching every answer.
///
/// At creation it walks the cgroup2 hierarchy (inode of each directory → its path). A cgroup
/// id it does not know is looked up through `/proc/PID/cgroup` of the process that carried it
/// (checked: the directory's inode must equal the id), then by opening the directory by its id
/// (a kernfs file handle: works after the process is gone, while the cgroup exists), then by a
/// new walk (at most one per 20 ms, or per 10x the duration of the last walk on big
/// hierarchies).
#[derive(Debug)]
pub struct CgroupResolver {
    root: Option<PathBuf>,
    by_id: HashMap<u64, Option<ContainerRef>>,
    last_scan: Option<Instant>,
    rescan_interval: Duration,
    max_entries: usize,
    stats: CgroupStats,
}

impl CgroupResolver {
    /// `root`: where cgroup2 is mounted (`ward_sensor::cgroup2_mount()`); `None` on hosts
    /// without cgroup v2, where only `/proc/PID/cgroup` is used.
    pub fn new(root: Option<PathBuf>) -> Self {
        let mut r = CgroupResolver {
            root,
            by_id: HashMap::new(),
            last_scan: None,
            rescan_interval: Duration::from_millis(20),
            max_entries: 1 << 16,
            stats: CgroupStats::default(),
        };
        r.scan();
        r
    }

    pub fn stats(&self) -> CgroupStats {
        self.stats
    }

    /// Walks the hierarchy and records every directory's inode.
    pub fn scan(&mut self) {
        let start = Instant::now();
        self.last_scan = Some(start);
        let Some(root) = self.root.clone() else {
            return;
        };
        self.walk(root);
        // Rescans on misses at most every 10x the cost of a walk (at least 20 ms apart).
        self.rescan_interval = (start.elapsed() * 10).max(Duration::from_millis(20));
    }

    fn walk(&mut self, root: PathBuf) {
        self.stats.scans += 1;
        if self.by_id.len() > self.max_entries {
            self.by_id.clear();
        }
        let mut stack = vec![(root.clone(), String::new())];
        let mut budget = 200_000usize;
        while let Some((dir, rel)) = stack.pop() {
            if let Ok(md) = fs::metadata(&dir) {
                let c = if rel.is_empty() {
                    None
                } else {
                    container_from_path(&rel)
                };
                self.by_id.insert(md.ino(), c);
            }
            let Ok(rd) = fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if budget == 0 {
                    return;
                }
                budget -= 1;
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = e.file_name();
                    let rel = format!("{rel}/{}", name.to_string_lossy());
                    stack.push((e.path(), rel));
                }
            }
        }
    }

    /// The container of the process `pid` whose events carry `cgroup_id` (0 = unknown).
    pub fn resolve(&mut self, cgroup_id: u64, pid: u32) -> Option<ContainerRef> {
        if cgroup_id != 0 {
            if let Some(c) = self.by_id.get(&cgroup_id) {
                self.stats.hits += 1;
                return c.clone();
            }
        }
        // Not known: ask the process.
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            self.stats.proc_reads += 1;
            let (v2, container) = parse_proc_cgroup(&text);
            match (&self.root, v2.as_deref()) {
                (Some(root), Some(path)) if cgroup_id != 0 && path != "/" => {
                    let dir = root.join(path.trim_start_matches('/'));
                    let ino = fs::metadata(&dir).map(|m| m.ino()).ok();
                    if ino == Some(cgroup_id) {
                        self.insert(cgroup_id, container.clone());
                        return container;
                    }
                    // The process moved on (or exited) since the event: fall through.
                }
                // cgroup v1 only (the v2 id is the root's for everyone): answer per process.
                _ => return container,
            }
        }
        if cgroup_id == 0 {
            self.stats.unresolved += 1;
            return None;
        }
        // The process is gone (a container's only process that exited at once): the cgroup
        // directory is still there until the runtime cleans up. Its id is a kernfs file
        // handle: open it directly, no walk (and no rate limit to fall foul of).
        if let Some(rel) = self.root.as_deref().and_then(|r| path_of_id(r, cgroup_id)) {
            self.stats.handle_lookups += 1;
            let c = if rel.is_empty() {
                None
            } else {
                container_from_path(&rel)
            };
            self.insert(cgroup_id, c.clone());
            return c;
        }
        if self
            .last_scan
            .is_none_or(|t| t.elapsed() >= self.rescan_interval)
        {
            self.scan();
            if let Some(c) = self.by_id.get(&cgroup_id) {
                return c.clone();
            }
        }
        self.stats.unresolved += 1;
        None
    }

    fn insert(&mut self, id: u64, c: Option<ContainerRef>) {
        if self.by_id.len() >= self.max_entries {
            self.by_id.clear();
        }
        self.by_id.insert(id, c);
    }

    /// Where cgroup2 is mounted, as given.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

/// The path (relative to `root`, the cgroup2 mount; `""` for the root itself) of the cgroup
/// whose id is `id`: cgroup ids are kernfs file handles (`FILEID_KERNFS`, the 8-byte id that
/// `name_to_handle_at` returns for a cgroup directory), so `open_by_handle_at` on the mount
/// opens the directory without walking the tree. Needs CAP_DAC_READ_SEARCH; `None` when the
/// cgroup is gone or the handle is refused.
fn path_of_id(root: &Path, id: u64) -> Option<String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    #[repr(C)]
    struct Handle {
        handle_bytes: libc::c_uint,
        handle_type: libc::c_int,
        f_handle: [u8; 8],
    }
    const FILEID_KERNFS: libc::c_int = 0xfe;
    let dir = fs::File::open(root).ok()?;
    let mut h = Handle {
        handle_bytes: 8,
        handle_type: FILEID_KERNFS,
        f_handle: id.to_ne_bytes(),
    };
    // SAFETY: `h` is a file_handle with room for its `handle_bytes`; the fd returned is owned
    // below.
    let fd = unsafe {
        libc::open_by_handle_at(
            dir.as_raw_fd(),
            (&mut h as *mut Handle).cast::<libc::file_handle>(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let f = fs::File::from(fd);
    if f.metadata().ok()?.ino() != id {
        return None;
    }
    let full = fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok()?;
    let rel = full.strip_prefix(root).ok()?;
    Some(if rel.as_os_str().is_empty() {
        String::new()
    } else {
        format!("/{}", rel.to_string_lossy())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "fdc2112ff999d8b947885af67ebc1d27d4259e4c6ac86a4c5afef8badf805734";

    fn c(path: &str) -> Option<(String, Runtime)> {
        container_from_path(path).map(|c| (c.id, c.runtime))
    }

    #[test]
    fn real_path_forms() {
        let want = |r| Some((ID.to_string(), r));
        // podman with cgroupfs, as measured on these machines (docs/containers-for-tests.md)
        assert_eq!(
            c(&format!("/libpod_parent/libpod-{ID}")),
            want(Runtime::Podman)
        );
        // podman with systemd
        assert_eq!(
            c(&format!("/machine.slice/libpod-{ID}.scope")),
            want(Runtime::Podman)
        );
        assert_eq!(
            c(&format!("/machine.slice/libpod-{ID}.scope/container")),
            want(Runtime::Podman)
        );
        // docker, cgroupfs and systemd drivers
        assert_eq!(c(&format!("/docker/{ID}")), want(Runtime::Docker));
        assert_eq!(
            c(&format!("/system.slice/docker-{ID}.scope")),
            want(Runtime::Docker)
        );
        // containerd CRI (systemd driver) on a kubelet node
        assert_eq!(
            c(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d1ac9b3_7c1f_4c4e_9a0e_2f1b0b6d3c11.slice/cri-containerd-{ID}.scope"
            )),
            want(Runtime::Containerd)
        );
        // containerd / k3s with the cgroupfs driver
        assert_eq!(
            c(&format!(
                "/kubepods/besteffort/pod5f0c3c59-3a3e-4a4f-8a32-6b0c2f3a9d10/{ID}"
            )),
            want(Runtime::Cri)
        );
        // CRI-O
        assert_eq!(
            c(&format!(
                "/kubepods.slice/kubepods-pod0e3a.slice/crio-{ID}.scope"
            )),
            want(Runtime::CriO)
        );
    }

    #[test]
    fn not_containers() {
        assert_eq!(c("/"), None);
        assert_eq!(c("/user.slice/user-0.slice/session-3.scope"), None);
        assert_eq!(c("/system.slice/ssh.service"), None);
        assert_eq!(c(&format!("/machine.slice/libpod-conmon-{ID}.scope")), None);
        assert_eq!(c(&format!("/kubepods.slice/crio-conmon-{ID}.scope")), None);
        assert_eq!(c("/libpod_parent/conmon"), None);
        // 63 hex, uppercase, non hex
        assert_eq!(c(&format!("/docker/{}", &ID[1..])), None);
        assert_eq!(c(&format!("/docker/{}", ID.to_uppercase())), None);
        assert_eq!(c(&format!("/docker/{}g", &ID[1..])), None);
    }

    #[test]
    fn deepest_id_wins() {
        let inner = "a".repeat(64);
        assert_eq!(
            c(&format!("/docker/{ID}/docker/{inner}")),
            Some((inner, Runtime::Docker))
        );
    }

    #[test]
    fn proc_cgroup_hybrid_and_v1() {
        let hybrid = format!(
            "9:name=systemd:/libpod_parent/libpod-{ID}\n1:cpu:/libpod_parent/libpod-{ID}\n0::/libpod_parent/libpod-{ID}\n"
        );
        let (v2, cont) = parse_proc_cgroup(&hybrid);
        assert_eq!(v2.as_deref(), Some(&*format!("/libpod_parent/libpod-{ID}")));
        assert_eq!(cont.unwrap().id, ID);
        let v1 = format!("4:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
        let (v2, cont) = parse_proc_cgroup(&v1);
        assert_eq!(v2, None);
        assert_eq!(cont.unwrap().runtime, Runtime::Docker);
        let host = "0::/user.slice/user-0.slice/session-1.scope\n";
        assert_eq!(parse_proc_cgroup(host).1, None);
    }

    #[test]
    fn resolver_maps_own_cgroup() {
        // Our own cgroup id (the inode of our cgroup dir) resolves, through the walk or /proc.
        let Some(root) = ward_sensor::cgroup2_mount() else {
            return;
        };
        let me = std::process::id();
        let Some(id) = ward_sensor::cgroup_id_of(me, &root) else {
            return;
        };
        let mut r = CgroupResolver::new(Some(root));
        let path = proc_cgroup_v2_path(me).unwrap();
        assert_eq!(r.resolve(id, me), container_from_path(&path));
        assert!(r.stats().scans >= 1);
    }

    /// A container cgroup whose process is already gone, created after the resolver's walk:
    /// found by its id alone (root only: creates a cgroup).
    #[test]
    fn gone_process_cgroup_is_opened_by_its_id() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP gone_process_cgroup_is_opened_by_its_id: not root");
            return;
        }
        let Some(root) = ward_sensor::cgroup2_mount() else {
            return;
        };
        let mut r = CgroupResolver::new(Some(root.clone()));
        let parent = root.join(format!("ward-test-{}", std::process::id()));
        let cid = "ab".repeat(32);
        let dir = parent.join(format!("libpod-{cid}"));
        std::fs::create_dir_all(&dir).unwrap();
        let id = std::fs::metadata(&dir).unwrap().ino();
        // A pid that does not exist: /proc/PID/cgroup cannot answer.
        let got = r.resolve(id, u32::MAX - 7);
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_dir(&parent);
        assert_eq!(got.map(|c| c.id), Some(cid));
        assert_eq!(r.stats().handle_lookups, 1);
    }
}
