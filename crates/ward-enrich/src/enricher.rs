//! [`Enricher`]: raw sensor records in, trace-format [`Event`]s out, in the order they came.
//!
//! Cheap work happens when a record is pushed: wall-clock time, container id from the cgroup
//! id, layer from the overlay flags, script capture, and opening `/proc/PID/exe`. Slow work
//! runs on worker threads: the binary's SHA-256 ([`HashService`]) and the runtime API call
//! ([`MetadataService`]). An exec waiting for either is *parked*; events leave in arrival
//! order, so everything behind a parked exec waits with it, for at most `hash_wait` /
//! `metadata_wait` (then the exec leaves without the missing part, and the miss is counted and
//! explained in `ContainerMeta.note`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ward_event::{
    BinaryInfo, ContainerMeta, Event, ExecEvent, ExitEvent, FdEvent, FdInfo, FdKind, FdVia,
    ForkEvent, Layer, Protocol, SocketEvent, SocketInfo, SocketOp,
};
use ward_sensor::{BootClock, OverlayLayer, ProcessSnapshot, RawEvent};

use crate::cgroup::{CgroupResolver, ContainerRef};
use crate::hash::{FileKey, HashConfig, HashService, Submit};
use crate::runtime::{MetadataConfig, MetadataService};
use crate::script::CaptureConfig;

/// Configuration of the enricher.
#[derive(Debug, Clone)]
pub struct EnrichConfig {
    /// Node name put on every exec; `None` = the host name.
    pub node_name: Option<String>,
    /// Where cgroup2 is mounted; `None` = found in /proc/self/mounts.
    pub cgroup_root: Option<PathBuf>,
    pub metadata: MetadataConfig,
    /// Longest an exec waits for container metadata that is being fetched.
    pub metadata_wait: Duration,
    pub hash: HashConfig,
    /// Longest an exec waits for its binary's hash.
    pub hash_wait: Duration,
    pub script: CaptureConfig,
    /// Events parked beyond this are released at once (counted in `forced_releases`).
    pub max_parked: usize,
    /// Take a handle on each executed file from fanotify `FAN_OPEN_EXEC`
    /// (`ward_sensor::ExecFiles`), so that a process that exited before its exec was read is
    /// still hashed. Needs CAP_SYS_ADMIN; without it the enricher falls back to
    /// `/proc/PID/exe` only (logged once).
    pub exec_fanotify: bool,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            node_name: None,
            cgroup_root: None,
            metadata: MetadataConfig::default(),
            metadata_wait: Duration::from_millis(200),
            hash: HashConfig::default(),
            hash_wait: Duration::from_millis(250),
            script: CaptureConfig::default(),
            max_parked: 65536,
            exec_fanotify: true,
        }
    }
}

/// Counters of the enricher (all monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnrichStats {
    /// Shell execs with a pipe on stdin whose parent's fds were looked at (interpreter relays).
    pub stdin_writer_lookups: u64,
    pub events_in: u64,
    pub events_out: u64,
    pub execs: u64,
    /// Execs in a container.
    pub container_execs: u64,
    /// Container execs that went out without metadata (waited `metadata_wait` in vain).
    pub metadata_timeouts: u64,
    /// Container execs whose metadata could not be had (no socket, API error, not found).
    pub metadata_unavailable: u64,
    /// Execs that went out without a binary hash (sum of the reasons below).
    pub hash_misses: u64,
    /// ... because `/proc/PID/exe` could not be opened (the process was gone).
    pub hash_exe_gone: u64,
    /// ... because `/proc/PID/exe` was another file than the kernel reported (exec'd again).
    pub hash_identity_mismatch: u64,
    /// ... because the hash queue was full.
    pub hash_queue_full: u64,
    /// ... because hashing took longer than `hash_wait`, or failed.
    pub hash_timeouts: u64,
    /// Scripts that could not be read.
    pub script_errors: u64,
    /// Events released before their wait ended because too many were parked.
    pub forced_releases: u64,
    /// Hashed execs whose file came from a fanotify handle (the exec's own event).
    pub exe_from_fanotify: u64,
    /// ... from `/proc/PID/exe` (the process still ran).
    pub exe_from_proc: u64,
    /// ... through another live process's root (the same path, checked identity).
    pub exe_from_other_root: u64,
    /// fanotify handles dropped unused (the `ld.so` of each dynamic exec, failed execs).
    pub exec_handles_unused: u64,
    /// Execs of an ignored executable hashed again through the handle kept on it (its
    /// identity changed without a write, or its hash left the cache).
    pub exe_from_kept: u64,
    /// Executables the kernel no longer reports, with a handle kept on each (now).
    pub executables_ignored: u64,
    /// memfd execs the kernel held (stopped) until their exe was opened, then resumed.
    pub held_execs: u64,
    /// Scripts read through the container's root file system mounted on the host, because
    /// no process of the container was left.
    pub scripts_from_host_mount: u64,
}

struct Parked {
    event: Event,
    hash: Option<FileKey>,
    container: Option<ContainerRef>,
    arrived: Instant,
}

/// Turns sensor records into enriched events; see the module docs.
pub struct Enricher {
    node: String,
    clock: BootClock,
    cfg: EnrichConfig,
    cgroups: CgroupResolver,
    meta: MetadataService,
    hasher: HashService,
    queue: VecDeque<Parked>,
    /// Live processes by mount namespace: their root resolves exe paths of processes in the
    /// same namespace that exited before their exec was read.
    roots: Roots,
    /// The agent's own mount namespace inode.
    own_mnt_ns: u32,
    /// fanotify `FAN_OPEN_EXEC` handles, and those read but not yet paired with an exec.
    exec_files: Option<ward_sensor::ExecFiles>,
    held: HeldFiles,
    /// How often each file's (dev, ino) handle went unused.
    unused_files: HashMap<(u64, u64), u8>,
    /// Executables the kernel no longer reports (an ignore mark, added once their hash was
    /// cached), by the real file's (dev, ino), with a handle kept on each: see
    /// [`Enricher::keep_ignored`].
    kept: HashMap<(u64, u64), File>,
    /// The same, by (size, mtime, ctime): an exec of a container's overlay file reports the
    /// overlay's device (one per container) and possibly a mapped inode number, but the real
    /// file's size and times. `None`: two kept files share them (never guessed between).
    kept_by_content: HashMap<(u64, u64, u64), Option<(u64, u64)>>,
    /// The same by the real file's inode number and size, which an overlay shows unchanged
    /// (its device is the overlay's), and which a `touch` or `chmod` leaves as they were
    /// (the times above change). `None`: two kept files share them.
    kept_by_ino: HashMap<(u64, u64), Option<(u64, u64)>>,
    /// Most entries of `kept` (a quarter of the open-files limit at most).
    kept_max: usize,
    /// When `kept` was last pruned of deleted files.
    kept_pruned: Instant,
    stats: EnrichStats,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("node", &self.node)
            .field("parked", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The host name (`/proc/sys/kernel/hostname`), or `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Enricher {
    /// Starts the worker threads. `clock` converts the sensor's boot-time stamps. With
    /// `exec_fanotify`, the fanotify watch is opened here; to miss no exec, open it before the
    /// sensor with [`open_exec_files`] and pass it to [`Enricher::with_exec_files`].
    pub fn new(cfg: EnrichConfig, clock: BootClock) -> Enricher {
        let exec_files = open_exec_files(&cfg);
        Enricher::with_exec_files(cfg, clock, exec_files)
    }

    /// [`Enricher::new`] with a fanotify watch opened by the caller (before the sensor was
    /// loaded, so that every exec record read has its event).
    pub fn with_exec_files(
        cfg: EnrichConfig,
        clock: BootClock,
        exec_files: Option<ward_sensor::ExecFiles>,
    ) -> Enricher {
        let node = cfg
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(host_name);
        let root = cfg.cgroup_root.clone().or_else(ward_sensor::cgroup2_mount);
        Enricher {
            exec_files,
            held: HeldFiles::default(),
            unused_files: HashMap::new(),
            kept: HashMap::new(),
            kept_by_content: HashMap::new(),
            kept_by_ino: HashMap::new(),
            kept_max: kept_max(),
            kept_pruned: Instant::now(),
            node,
            clock,
            cgroups: CgroupResolver::new(root),
            meta: MetadataService::start(cfg.metadata.clone()),
            hasher: HashService::start(&cfg.hash),
            queue: VecDeque::new(),
            roots: Roots::default(),
            own_mnt_ns: std::fs::metadata("/proc/self/ns/mnt")
                .map(|m| m.ino() as u32)
                .unwrap_or(0),
            stats: EnrichStats::default(),
            cfg,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn stats(&self) -> EnrichStats {
        self.stats
    }

    pub fn hash_stats(&self) -> crate::hash::HashStats {
        self.hasher.stats()
    }

    pub fn metadata_stats(&self) -> crate::runtime::MetadataStats {
        self.meta.stats()
    }

    pub fn cgroup_stats(&self) -> crate::cgroup::CgroupStats {
        self.cgroups.stats()
    }

    /// Counters of the fanotify exec watch; `None` when it is not running.
    pub fn exec_files_stats(&self) -> Option<ward_sensor::ExecFilesStats> {
        self.exec_files.as_ref().map(|f| f.stats())
    }

    /// Reads the fanotify events queued now into the held handles, and drops handles
    /// nobody claimed for [`HELD_TTL`].
    fn drain_exec_files(&mut self) {
        let Some(ef) = self.exec_files.as_mut() else {
            return;
        };
        // A file system mounted since (a container's /dev/shm) gets its mark.
        ef.refresh();
        let now = Instant::now();
        let held = &mut self.held;
        ef.drain(|f| held.add(f, now));
        let dropped = self.held.expire(now);
        self.unused(dropped);
        self.prune_kept(now);
    }

    /// `file` was executed again after its hash was cached: adds an ignore mark, so the
    /// kernel stops queueing an event (and an open file) for each of its execs, and keeps the
    /// handle, so that an exec the kernel no longer reports can still be hashed when its
    /// identity changes without a write (which the mark survives) or its hash leaves the
    /// cache. A write or truncate clears the mark: the next exec is reported again with a
    /// handle on the new contents. At most `kept_max` files; deleted ones are dropped (and
    /// their mark removed) every [`KEPT_PRUNE_EVERY`].
    fn keep_ignored(&mut self, file: File) {
        let Some(ef) = self.exec_files.as_mut() else {
            return;
        };
        let Ok(m) = file.metadata() else {
            return;
        };
        let real = (m.dev(), m.ino());
        // Already kept and reported again: written since (the write cleared the mark).
        let known = self.kept.contains_key(&real);
        if (known || self.kept.len() < self.kept_max) && ef.ignore(&file) {
            self.kept.insert(real, file);
            if self.kept_by_content.len() >= 4 * self.kept_max {
                let kept = &self.kept;
                self.kept_by_content
                    .retain(|_, r| r.is_some_and(|r| kept.contains_key(&r)));
            }
            if self.kept_by_ino.len() >= 4 * self.kept_max {
                let kept = &self.kept;
                self.kept_by_ino
                    .retain(|_, r| r.is_some_and(|r| kept.contains_key(&r)));
            }
            let e = self
                .kept_by_ino
                .entry((real.1, m.len()))
                .or_insert(Some(real));
            if *e != Some(real) {
                *e = None;
            }
            let content = (
                m.len(),
                ts_ns((m.mtime(), m.mtime_nsec() as u32)),
                ts_ns((m.ctime(), m.ctime_nsec() as u32)),
            );
            let e = self.kept_by_content.entry(content).or_insert(Some(real));
            if *e != Some(real) {
                *e = None;
            }
        } else if known {
            self.kept.remove(&real);
        }
        self.stats.executables_ignored = self.kept.len() as u64;
    }

    /// A new handle on the kept file `key` ran, if any: the same (dev, ino) (a host file, also
    /// after a `touch`), or, for an overlay file, the one kept file whose size and times are
    /// the exec's, or else (touched since it was kept: new times) the one whose inode number
    /// and size are; in both cases only when the kept file's size and times now are the
    /// exec's (it is what ran).
    ///
    /// Only asked when the kernel reported no handle for the exec, which (short of a queue
    /// overflow, counted) means the file really executed carries an ignore mark.
    fn kept_handle(&self, key: &FileKey) -> Option<File> {
        if let Some(f) = self.kept.get(&(key.dev, key.ino)) {
            return f.try_clone().ok();
        }
        // By size and times, else (an overlay file touched since it was kept) by inode number
        // and size; either way the kept file must now be what ran (its size and times).
        let real = match self.kept_by_content.get(&(key.size, key.mtime, key.ctime)) {
            Some(r) => (*r)?,
            None => (*self.kept_by_ino.get(&(key.ino, key.size))?)?,
        };
        let f = self.kept.get(&real)?;
        let m = f.metadata().ok()?;
        let same = m.len() == key.size
            && ts_ns((m.mtime(), m.mtime_nsec() as u32)) == key.mtime
            && ts_ns((m.ctime(), m.ctime_nsec() as u32)) == key.ctime;
        same.then(|| f.try_clone().ok()).flatten()
    }

    /// Drops kept handles of deleted files (an upgraded package's old binary), removing their
    /// marks: a kept handle would keep the file's blocks allocated.
    fn prune_kept(&mut self, now: Instant) {
        if now.saturating_duration_since(self.kept_pruned) < KEPT_PRUNE_EVERY {
            return;
        }
        self.kept_pruned = now;
        let Some(ef) = self.exec_files.as_mut() else {
            return;
        };
        self.kept.retain(|_, f| {
            let live = f.metadata().is_ok_and(|m| m.nlink() > 0);
            if !live {
                ef.unignore(f);
            }
            live
        });
        let kept = &self.kept;
        self.kept_by_content
            .retain(|_, r| r.is_none_or(|r| kept.contains_key(&r)));
        self.stats.executables_ignored = self.kept.len() as u64;
    }

    /// Handles nobody claimed: a file whose handle went unused [`UNUSED_BEFORE_IGNORE`] times
    /// (an `ld.so`, which every dynamic exec opens for exec too) gets an ignore mark, so the
    /// kernel stops reporting it: half the events of a dynamic exec. Modifying the file
    /// clears the mark (no `FAN_MARK_IGNORED_SURV_MODIFY`).
    ///
    /// The mark goes with a kept handle ([`Enricher::keep_ignored`]), as for an executable
    /// whose hash is cached: a handle can go unused because its exec was already answered
    /// from the hash cache before the event was read, and the same file then runs where the
    /// cache does not know it (another container's overlay of that image file, with the
    /// overlay's own device). Without the handle such an exec was only hashable through
    /// `/proc/PID/exe`, gone for a short-lived entrypoint (seen in `agent_lifetimes`'
    /// twenty-container test with 20 ms batches).
    fn unused(&mut self, dropped: Vec<ward_sensor::ExecFile>) {
        self.stats.exec_handles_unused += dropped.len() as u64;
        if self.exec_files.is_none() {
            return;
        }
        for f in dropped {
            let id = (f.identity.dev, f.identity.ino);
            if self.unused_files.len() >= 4096 {
                self.unused_files.clear();
            }
            let n = self.unused_files.entry(id).or_insert(0);
            *n += 1;
            if *n == UNUSED_BEFORE_IGNORE {
                self.unused_files.remove(&id);
                self.keep_ignored(f.file);
            }
        }
    }

    /// Events waiting for a hash or metadata.
    pub fn parked(&self) -> usize {
        self.queue.len()
    }

    /// When the oldest parked event must leave at the latest (for the poll timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue
            .front()
            .map(|p| p.arrived + self.cfg.hash_wait.max(self.cfg.metadata_wait))
    }

    fn wall_ns(&self, boot_ns: u64) -> u64 {
        self.clock.to_unix_ns(boot_ns).clamp(0, u64::MAX as i128) as u64
    }

    /// Takes in one sensor record.
    pub fn push(&mut self, raw: RawEvent) {
        self.stats.events_in += 1;
        let (event, hash, container) = match raw {
            RawEvent::Exec(e) => {
                let (ev, hash, container) = self.exec(*e);
                (Event::Exec(Box::new(ev)), hash, container)
            }
            RawEvent::Fork(f) => {
                // Prefetch: a process forked into a container we have not asked about yet.
                if f.cgroup_id != 0 {
                    if let Some(c) = self.cgroups.resolve(f.cgroup_id, f.tgid) {
                        let _ = self.meta.get_or_request(&c);
                    }
                }
                (
                    Event::Fork(ForkEvent {
                        time: self.wall_ns(f.ktime_boot_ns),
                        pid: f.tgid,
                        ppid: f.parent_tgid,
                    }),
                    None,
                    None,
                )
            }
            RawEvent::Exit(x) => {
                // A dead process's root can no longer reopen anything.
                self.roots.forget(x.tgid);
                // Handles of its execs not paired by now never will be (its ld.so's).
                let dropped = self.held.forget(x.tgid);
                self.unused(dropped);
                (
                    Event::Exit(ExitEvent {
                        time: self.wall_ns(x.ktime_boot_ns),
                        pid: x.tgid,
                        code: x
                            .exit_status()
                            .or_else(|| x.signal().map(|s| 128 + s))
                            .unwrap_or(0),
                    }),
                    None,
                    None,
                )
            }
            RawEvent::FdReplaced(f) => (
                Event::Fd(FdEvent {
                    time: self.wall_ns(f.ktime_boot_ns),
                    pid: f.tgid,
                    fd: f.fd as u8,
                    via: match f.syscall {
                        ward_sensor::DupSyscall::Dup => FdVia::Dup,
                        ward_sensor::DupSyscall::Dup2 => FdVia::Dup2,
                        ward_sensor::DupSyscall::Dup3 => FdVia::Dup3,
                        ward_sensor::DupSyscall::Fcntl => FdVia::Fcntl,
                    },
                    target: fd_info(&f.info),
                }),
                None,
                None,
            ),
            RawEvent::Connect(c) => (self.conn(&c, SocketOp::Connect), None, None),
            RawEvent::Accept(c) => (self.conn(&c, SocketOp::Accept), None, None),
        };
        self.queue.push_back(Parked {
            event,
            hash,
            container,
            arrived: Instant::now(),
        });
    }

    fn conn(&self, c: &ward_sensor::ConnEvent, op: SocketOp) -> Event {
        Event::Socket(SocketEvent {
            time: self.wall_ns(c.ktime_boot_ns),
            pid: c.tgid,
            fd: c.fd as i32,
            op,
            // The sensor's connect/accept record carries no socket inode.
            inode: 0,
            socket: socket_info(&c.socket),
        })
    }

    fn exec(
        &mut self,
        e: ward_sensor::ExecEvent,
    ) -> (ExecEvent, Option<FileKey>, Option<ContainerRef>) {
        self.stats.execs += 1;
        let held = e.held();
        let container = self.cgroups.resolve(e.cgroup_id, e.tgid);
        if let Some(c) = &container {
            self.stats.container_execs += 1;
            let _ = self.meta.get_or_request(c);
        }
        let layer = layer_of(e.exe_memfd, e.exe.nlink == 0 || e.exe_deleted, e.overlay);
        let key = FileKey {
            dev: e.exe.dev,
            ino: e.exe.ino,
            size: e.exe.size,
            mtime: ts_ns(e.exe.mtime),
            ctime: ts_ns(e.exe.ctime),
        };
        let mut ev = ExecEvent {
            time: self.wall_ns(e.ktime_boot_ns),
            node: self.node.clone(),
            pid: e.tgid,
            tgid: None,
            ppid: e.ppid,
            uid: e.uid,
            gid: e.gid,
            comm: e.comm,
            filename: e.filename,
            binary: BinaryInfo {
                path: e.exe_path,
                dev: key.dev,
                inode: key.ino,
                size: key.size,
                mtime: key.mtime,
                ctime: key.ctime,
                sha256: None,
                hashed_size: None,
                partially_hashed: false,
                layer,
            },
            argv: e.argv,
            argv_truncated: e.argv_truncated,
            env: ward_event::StrList::from_nul_vec(e.env),
            env_truncated: e.env_truncated,
            cwd: e.cwd,
            script: None,
            stdio: [
                fd_info(&e.stdio[0]),
                fd_info(&e.stdio[1]),
                fd_info(&e.stdio[2]),
            ],
            stdin_writer: None,
            cgroup_id: e.cgroup_id,
            container_id: container.as_ref().map(|c| c.id.clone()),
            container: None,
        };
        // An interactive shell (no -c, no script) reading a pipe or a socketpair: does its
        // parent hold the other end (an interpreter relay)?
        if matches!(ev.stdio[0].kind, FdKind::Pipe | FdKind::UnixSocket)
            && ev.interpreter() == Some(ward_event::script::Interpreter::Shell)
            && ward_event::script::script_target(&ev.filename, &ev.binary.path, &ev.argv).is_none()
        {
            self.stats.stdin_writer_lookups += 1;
            use crate::stdin::{pipe_writer, socketpair_holder, PipeWriter};
            let proc = Path::new("/proc");
            let found = if ev.stdio[0].kind == FdKind::Pipe {
                pipe_writer(proc, e.ppid, ev.stdio[0].inode)
            } else {
                socketpair_holder(proc, e.ppid, ev.stdio[0].inode)
            };
            match found {
                PipeWriter::Holds(_) | PipeWriter::Gone => ev.stdin_writer = Some(e.ppid),
                PipeWriter::NotHeld => {}
            }
        }
        // The script, read through the process's own root (container paths resolve); when the
        // process is already gone (a short script), through the root of another live process
        // of its mount namespace, or ours for our own namespace.
        // (Most execs run no script: no path is built for them.)
        let has_script =
            ward_event::script::script_target(&ev.filename, &ev.binary.path, &ev.argv).is_some();
        let mut captured = if has_script {
            let root = PathBuf::from(format!("/proc/{}/root", e.tgid));
            crate::script::capture(&ev, &root, &self.cfg.script)
        } else {
            Ok(None)
        };
        if matches!(captured, Err(crate::script::CaptureError::NoRoot { .. })) {
            if e.mnt_ns == self.own_mnt_ns {
                captured = crate::script::capture(&ev, Path::new("/"), &self.cfg.script);
            } else {
                let cfg = &self.cfg.script;
                let ev = &ev;
                if let Some(c) = self.roots.find_through(e.mnt_ns, e.tgid, |other| {
                    let root = PathBuf::from(format!("/proc/{other}/root"));
                    match crate::script::capture(ev, &root, cfg) {
                        Err(crate::script::CaptureError::NoRoot { .. }) => Through::Gone,
                        c => Through::Found(c),
                    }
                }) {
                    captured = c;
                }
            }
        }
        // No process of its mount namespace is left (a container's only process, a short
        // script as the entrypoint): the container's root file system as the runtime mounted
        // it on the host, found by the super block of the interpreter the kernel reported (a
        // binary of the container's own root). It stays mounted until the runtime cleans
        // the container up, after its last process exited.
        if matches!(captured, Err(crate::script::CaptureError::NoRoot { .. }))
            && e.exe.fs_magic == OVERLAYFS_SUPER_MAGIC
        {
            if let Some(m) = crate::layer::host_mount_of(e.exe.dev) {
                let mp = PathBuf::from(&m.mount_point);
                let mut c = crate::script::capture(&ev, &mp, &self.cfg.script);
                if let Ok(Some(s)) = &mut c {
                    self.stats.scripts_from_host_mount += 1;
                    // Unmounted since (the runtime's cleanup): the directories read with the
                    // mount point still classify it.
                    if s.layer == Some(Layer::Unknown) {
                        if let Some(path) = &s.path {
                            let full = crate::script::full_path(&ev.cwd, path);
                            s.layer = Some(crate::layer::classify_path(&m, &full));
                        }
                    }
                }
                captured = c;
            }
        }
        match captured {
            Ok(s) => ev.script = s,
            Err(err) => {
                self.stats.script_errors += 1;
                tracing::debug!(pid = e.tgid, error = %err, "script capture failed");
            }
        }
        // The binary's hash, through a handle on the file the process runs: /proc/PID/exe,
        // or, when the process is already gone, the same path through the root of another
        // live process of its mount namespace. Either way the handle must be the inode the
        // kernel reported.
        let pid = e.tgid;
        // fanotify's handle on the very file this exec opened (queued before the exec record,
        // so one drain here finds it if the kernel reported it).
        let (mut handle, dropped) = self.held.take(pid, &key);
        self.unused(dropped);
        let cached = self.hasher.cached(&key).is_some();
        if handle.is_none() && !cached && self.exec_files.is_some() {
            self.drain_exec_files();
            let (h, dropped) = self.held.take(pid, &key);
            self.unused(dropped);
            handle = h;
        }
        if cached {
            // Hashed before and reported again: the kernel need not report it any more.
            if let Some(h) = handle.take() {
                self.keep_ignored(h);
            }
        }
        let mut from_kept = false;
        if !cached && handle.is_none() {
            // Not reported because ignored, and its identity changed without a write (a
            // `touch`, a `chmod`) or its hash left the cache: hash it again through the kept
            // handle, which is the very inode (a write would have cleared the mark, and the
            // kernel would have reported this exec).
            if let Some(f) = self.kept_handle(&key) {
                from_kept = true;
                handle = Some(f);
            }
        }
        let from_handle = handle.is_some();
        let mut from_proc = false;
        let mnt_ns = e.mnt_ns;
        let path = ev.binary.path.clone();
        let detached = e.exe_detached || e.exe_memfd || e.exe_deleted;
        let mut why: Option<&'static str> = None;
        let own_ns = self.own_mnt_ns;
        let roots = &mut self.roots;
        let matches = |f: &File| {
            f.metadata()
                .is_ok_and(|m| m.ino() == key.ino && (key.dev == 0 || m.dev() == key.dev))
        };
        // Through another process's root, an overlay file stats with the overlay's device and
        // inode numbers, not the ones the kernel reported for the executed (real) inode; the
        // same size, mtime and ctime (ns) then identify it (a replaced file has a new ctime).
        let same_file = |f: &File| {
            matches(f)
                || f.metadata().is_ok_and(|m| {
                    key.ctime != 0
                        && m.len() == key.size
                        && ts_ns((m.mtime(), m.mtime_nsec() as u32)) == key.mtime
                        && ts_ns((m.ctime(), m.ctime_nsec() as u32)) == key.ctime
                })
        };
        let submit = self.hasher.submit(key, || {
            if let Some(f) = handle.take() {
                return Some(f);
            }
            match File::open(format!("/proc/{pid}/exe")) {
                Ok(f) if matches(&f) => {
                    from_proc = true;
                    return Some(f);
                }
                Ok(_) => why = Some("mismatch"),
                Err(err) => {
                    tracing::debug!(pid, error = %err, "cannot open /proc/PID/exe");
                    why = Some("gone");
                }
            }
            if detached || path.is_empty() {
                tracing::debug!(pid, detached, path = %path, "exe gone; no path to reopen");
                return None;
            }
            if mnt_ns == own_ns {
                // Our own namespace: our root resolves the path.
                return open_in_root(std::process::id(), &path)
                    .ok()
                    .filter(|f| same_file(f));
            }
            let Some(before) = roots.by_ns.get(&mnt_ns).cloned() else {
                tracing::debug!(pid, mnt_ns, path = %path, "exe gone; no live process known in its mount namespace");
                return None;
            };
            let found = roots.find_through(mnt_ns, pid, |other| match open_in_root(other, &path) {
                Ok(f) if same_file(&f) => Through::Found(f),
                Ok(_) | Err(OpenErr::NoFile) => Through::Missing,
                Err(OpenErr::NoRoot) => Through::Gone,
            });
            if found.is_none() {
                tracing::debug!(pid, mnt_ns, path = %path, before = ?before, candidates = ?roots.by_ns.get(&mnt_ns), "exe gone; not found (or not the same file) through the known roots");
            }
            found
        });
        if !detached && mnt_ns != 0 && mnt_ns != self.own_mnt_ns {
            self.roots.remember(mnt_ns, pid);
        }
        if held {
            // Stopped by the exec program so that /proc/PID/exe could be opened (above, unless
            // the hash was cached): let it run.
            self.stats.held_execs += 1;
            tracing::debug!(pid, path = %path, "resuming a process held at exec");
            if let Err(err) = ward_sensor::resume_held(pid) {
                tracing::warn!(pid, error = %err, "cannot resume a process held at exec");
            }
        }
        let hash = match submit {
            Submit::Cached(h) => {
                ev.binary.sha256 = Some(h.sha256);
                ev.binary.hashed_size = Some(h.hashed_size);
                ev.binary.partially_hashed = h.partial;
                None
            }
            Submit::Pending => {
                if from_kept {
                    self.stats.exe_from_kept += 1;
                } else if from_handle {
                    self.stats.exe_from_fanotify += 1;
                } else if from_proc {
                    self.stats.exe_from_proc += 1;
                } else {
                    self.stats.exe_from_other_root += 1;
                }
                Some(key)
            }
            Submit::Refused => {
                self.stats.hash_misses += 1;
                match why {
                    Some("gone") => self.stats.hash_exe_gone += 1,
                    Some(_) => self.stats.hash_identity_mismatch += 1,
                    None => self.stats.hash_queue_full += 1,
                }
                None
            }
        };
        (ev, hash, container)
    }

    fn ready(&self, p: &Parked, now: Instant) -> bool {
        let waited = now.saturating_duration_since(p.arrived);
        let hash_ok = match &p.hash {
            None => true,
            Some(k) => {
                !self.hasher.is_pending(k)
                    || self.hasher.cached(k).is_some()
                    || waited >= self.cfg.hash_wait
            }
        };
        let meta_ok = match &p.container {
            None => true,
            Some(c) => !self.meta.is_pending(&c.id) || waited >= self.cfg.metadata_wait,
        };
        hash_ok && meta_ok
    }

    /// Appends the events that are ready, in arrival order.
    pub fn release(&mut self, out: &mut Vec<Event>) {
        // Also bounds the handles held: the kernel's queue is read every loop.
        self.drain_exec_files();
        self.hasher.drain();
        self.meta.drain();
        let now = Instant::now();
        while let Some(front) = self.queue.front() {
            let forced = self.queue.len() > self.cfg.max_parked;
            if !forced && !self.ready(front, now) {
                break;
            }
            if forced {
                self.stats.forced_releases += 1;
            }
            let p = self.queue.pop_front().expect("front exists");
            out.push(self.finish(p));
        }
    }

    /// Releases everything now (at shutdown), waiting for nothing.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        self.hasher.drain();
        self.meta.drain();
        while let Some(p) = self.queue.pop_front() {
            out.push(self.finish(p));
        }
    }

    fn finish(&mut self, p: Parked) -> Event {
        self.stats.events_out += 1;
        let mut event = p.event;
        if let Event::Exec(e) = &mut event {
            if let Some(k) = &p.hash {
                match self.hasher.cached(k) {
                    Some(h) => {
                        e.binary.sha256 = Some(h.sha256);
                        e.binary.hashed_size = Some(h.hashed_size);
                        e.binary.partially_hashed = h.partial;
                    }
                    None => {
                        self.stats.hash_misses += 1;
                        self.stats.hash_timeouts += 1;
                    }
                }
            }
            if let Some(c) = &p.container {
                e.container = Some(self.container_meta(c));
            }
        }
        event
    }

    fn container_meta(&mut self, c: &ContainerRef) -> ContainerMeta {
        match self.meta.get_or_request(c) {
            Some(m) => {
                if m.note.is_some() {
                    self.stats.metadata_unavailable += 1;
                }
                Arc::unwrap_or_clone(m)
            }
            None => {
                self.stats.metadata_timeouts += 1;
                ContainerMeta {
                    note: Some(format!(
                        "container metadata not available within {} ms ({} runtime API slow or still answering)",
                        self.cfg.metadata_wait.as_millis(),
                        c.runtime.as_str()
                    )),
                    ..ContainerMeta::default()
                }
            }
        }
    }

    /// Exec events for the processes already running (`ward_sensor::snapshot_processes()`),
    /// to seed the process table: lineage and container identity. Kernel threads are left
    /// out. Waits up to `max(metadata_wait, 2 s)` for the metadata of the containers found;
    /// binaries are not hashed.
    pub fn seed(&mut self, snaps: &[ProcessSnapshot]) -> Vec<ExecEvent> {
        let mut pending: Vec<(usize, ContainerRef)> = Vec::new();
        let mut out = Vec::with_capacity(snaps.len());
        let mut asked = HashSet::new();
        for s in snaps.iter().filter(|s| !s.kernel_thread) {
            if let Some(ns) = s.mnt_ns.filter(|&ns| ns != self.own_mnt_ns) {
                self.roots.remember(ns, s.pid);
            }
            let container = self.cgroups.resolve(s.cgroup_id.unwrap_or(0), s.pid);
            if let Some(c) = &container {
                if asked.insert(c.id.clone()) {
                    let _ = self.meta.get_or_request(c);
                }
                pending.push((out.len(), c.clone()));
            }
            let exe = s.exe.unwrap_or_default();
            let path = s.exe_path.clone().unwrap_or_default();
            out.push(ExecEvent {
                time: self.wall_ns(s.start_boot_ns),
                node: self.node.clone(),
                pid: s.pid,
                tgid: None,
                ppid: s.ppid,
                uid: s.uid,
                gid: s.gid,
                comm: s.comm.clone(),
                filename: path.clone(),
                binary: BinaryInfo {
                    path,
                    dev: exe.dev,
                    inode: exe.ino,
                    size: exe.size,
                    mtime: ts_ns(exe.mtime),
                    ctime: ts_ns(exe.ctime),
                    layer: if s.exe_memfd {
                        Layer::Memfd
                    } else if s.exe_deleted {
                        Layer::Deleted
                    } else {
                        Layer::Unknown
                    },
                    ..BinaryInfo::default()
                },
                argv: s.argv.clone(),
                argv_truncated: false,
                env: ward_event::StrList::new(),
                env_truncated: false,
                cwd: s.cwd.clone().unwrap_or_default(),
                script: None,
                stdio: [
                    fd_info(&s.stdio[0]),
                    fd_info(&s.stdio[1]),
                    fd_info(&s.stdio[2]),
                ],
                stdin_writer: None,
                cgroup_id: s.cgroup_id.unwrap_or(0),
                container_id: container.map(|c| c.id),
                container: None,
            });
        }
        let deadline = Instant::now() + self.cfg.metadata_wait.max(Duration::from_secs(2));
        loop {
            self.meta.drain();
            if asked.iter().all(|id| !self.meta.is_pending(id)) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for (i, c) in pending {
            let m = self.container_meta(&c);
            out[i].container = Some(m);
        }
        out
    }
}

const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// How long a fanotify handle waits for its exec record. The event is queued before the
/// record, and both are read within one poll interval; what is left after this is an `ld.so`
/// or a failed exec.
const HELD_TTL: Duration = Duration::from_secs(2);
/// At most this many handles (open fds) are held; beyond it the oldest pid's go.
const HELD_MAX: usize = 4096;
/// How often kept handles of ignored executables are checked for deleted files.
const KEPT_PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Most ignored executables with a kept handle: 2048, or a quarter of the open-files limit
/// when that is lower (every fanotify event read is an open file too).
fn kept_max() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer.
    let cur = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        1024
    };
    (cur / 4).min(2048)
}

/// A file whose exec handle went unused this many times is ignored by the kernel from then on.
const UNUSED_BEFORE_IGNORE: u8 = 3;

/// fanotify handles read but not yet paired with an exec record, per pid in event order.
#[derive(Debug, Default)]
struct HeldFiles {
    by_pid: HashMap<u32, VecDeque<(ward_sensor::ExecFile, Instant)>>,
    count: usize,
}

impl HeldFiles {
    fn add(&mut self, f: ward_sensor::ExecFile, now: Instant) {
        if self.count >= HELD_MAX {
            // Full: drop the pid whose oldest handle is the oldest.
            if let Some(pid) = self
                .by_pid
                .iter()
                .filter_map(|(p, q)| q.front().map(|(_, t)| (*p, *t)))
                .min_by_key(|(_, t)| *t)
                .map(|(p, _)| p)
            {
                self.forget(pid);
            }
        }
        self.count += 1;
        self.by_pid.entry(f.pid).or_default().push_back((f, now));
    }

    /// The handle of `pid`'s exec of `key`: the first of its handles that is that file. The
    /// ones before it belong to this exec (a `#!` script) or to earlier ones (their `ld.so`)
    /// and are dropped. Identity: the inode and size, or size, mtime and ctime (an overlay
    /// file's inode number may be mapped; its times are the real file's).
    fn take(&mut self, pid: u32, key: &FileKey) -> (Option<File>, Vec<ward_sensor::ExecFile>) {
        let Some(q) = self.by_pid.get_mut(&pid) else {
            return (None, Vec::new());
        };
        let is = |id: &ward_sensor::FileIdentity| {
            id.size == key.size
                && (id.ino == key.ino
                    || (ts_ns(id.mtime) == key.mtime && ts_ns(id.ctime) == key.ctime))
        };
        let Some(pos) = q.iter().position(|(f, _)| is(&f.identity)) else {
            return (None, Vec::new());
        };
        let mut dropped: Vec<ward_sensor::ExecFile> = q.drain(..=pos).map(|(f, _)| f).collect();
        self.count -= pos + 1;
        let found = dropped.pop().map(|f| f.file);
        if q.is_empty() {
            self.by_pid.remove(&pid);
        }
        (found, dropped)
    }

    /// Drops `pid`'s handles, returned.
    fn forget(&mut self, pid: u32) -> Vec<ward_sensor::ExecFile> {
        let q = self.by_pid.remove(&pid).unwrap_or_default();
        self.count -= q.len();
        q.into_iter().map(|(f, _)| f).collect()
    }

    /// Drops handles older than [`HELD_TTL`], returned.
    fn expire(&mut self, now: Instant) -> Vec<ward_sensor::ExecFile> {
        let mut out = Vec::new();
        if self.count == 0 {
            return out;
        }
        self.by_pid.retain(|_, q| {
            while q
                .front()
                .is_some_and(|(_, t)| now.saturating_duration_since(*t) > HELD_TTL)
            {
                if let Some((f, _)) = q.pop_front() {
                    out.push(f);
                }
            }
            !q.is_empty()
        });
        self.count -= out.len();
        out
    }
}

/// The fanotify exec watch if `cfg.exec_fanotify` asks for it and the kernel grants it (a
/// warning is logged when not).
pub fn open_exec_files(cfg: &EnrichConfig) -> Option<ward_sensor::ExecFiles> {
    if !cfg.exec_fanotify {
        return None;
    }
    match ward_sensor::ExecFiles::open() {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, "fanotify FAN_OPEN_EXEC unavailable: binaries of processes that exit before their exec is read cannot be hashed");
            None
        }
    }
}

enum OpenErr {
    /// The process (its root) is gone.
    NoRoot,
    /// The path does not resolve (or is not a regular file) under that root.
    NoFile,
}

/// Opens `path` read-only inside the root directory of process `pid` (`openat2` with
/// `RESOLVE_IN_ROOT`: absolute paths and symlinks stay inside).
fn open_in_root(pid: u32, path: &str) -> Result<File, OpenErr> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| OpenErr::NoRoot)?;
    let fd = rustix::fs::openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|_| OpenErr::NoFile)?;
    let f = File::from(fd);
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        _ => Err(OpenErr::NoFile),
    }
}

/// What trying a file through one live process's root gave.
enum Through<T> {
    Found(T),
    /// That process is gone (its root cannot be opened).
    Gone,
    /// Its root opened, but the file is not there (or not the same file).
    Missing,
}

/// Live processes per mount namespace, to reopen a binary or script through their root when the
/// process that ran it is already gone. Up to 4 pids per namespace without a syscall: the first
/// three seen stay (a container's init and early processes live longest), the last slot follows
/// the newest exec. A pid is forgotten at its exit, which matters because namespace inode
/// numbers are reused: a new container can get the number of a dead one.
#[derive(Debug, Default)]
struct Roots {
    by_ns: HashMap<u32, Vec<u32>>,
    ns_of: HashMap<u32, u32>,
}

impl Roots {
    fn remember(&mut self, mnt_ns: u32, pid: u32) {
        if self.by_ns.len() > 4096 && !self.by_ns.contains_key(&mnt_ns) {
            self.by_ns.clear();
            self.ns_of.clear();
        }
        let v = self.by_ns.entry(mnt_ns).or_default();
        if v.contains(&pid) {
            return;
        }
        if v.len() >= 4 {
            let old = std::mem::replace(&mut v[3], pid);
            self.ns_of.remove(&old);
        } else {
            v.push(pid);
        }
        self.ns_of.insert(pid, mnt_ns);
    }

    /// Tries `attempt` on the live processes remembered for `mnt_ns` (except `skip`), in
    /// order, until one finds; those found gone are forgotten. `None` when none found.
    fn find_through<T>(
        &mut self,
        mnt_ns: u32,
        skip: u32,
        mut attempt: impl FnMut(u32) -> Through<T>,
    ) -> Option<T> {
        let pids = self.by_ns.get(&mnt_ns)?.clone();
        for other in pids {
            if other == skip {
                continue;
            }
            match attempt(other) {
                Through::Found(t) => return Some(t),
                Through::Gone => self.forget_in(mnt_ns, other),
                Through::Missing => {}
            }
        }
        None
    }

    /// Forgets `pid` as a live process of `mnt_ns`.
    fn forget_in(&mut self, mnt_ns: u32, pid: u32) {
        if let Some(v) = self.by_ns.get_mut(&mnt_ns) {
            v.retain(|p| *p != pid);
            if v.is_empty() {
                self.by_ns.remove(&mnt_ns);
            }
        }
        if self.ns_of.get(&pid) == Some(&mnt_ns) {
            self.ns_of.remove(&pid);
        }
    }

    fn forget(&mut self, pid: u32) {
        if let Some(&ns) = self.ns_of.get(&pid) {
            self.forget_in(ns, pid);
        }
    }
}

fn ts_ns((sec, nsec): (i64, u32)) -> u64 {
    if sec < 0 {
        0
    } else {
        (sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsec as u64)
    }
}

/// Where the executed file comes from, from the sensor's flags.
pub fn layer_of(memfd: bool, deleted: bool, overlay: OverlayLayer) -> Layer {
    if memfd {
        Layer::Memfd
    } else if deleted {
        Layer::Deleted
    } else {
        match overlay {
            OverlayLayer::Lower => Layer::Image,
            OverlayLayer::UpperOnly => Layer::Added,
            OverlayLayer::UpperOverLower => Layer::Modified,
            OverlayLayer::NotOverlay => Layer::NotOverlay,
        }
    }
}

fn socket_info(s: &ward_sensor::InetSocket) -> SocketInfo {
    SocketInfo {
        protocol: match s.sock_type {
            ward_sensor::SockType::Stream => Protocol::Tcp,
            ward_sensor::SockType::Dgram => Protocol::Udp,
            ward_sensor::SockType::Other(_) => Protocol::Other,
        },
        local_ip: s.local.ip(),
        local_port: s.local.port(),
        remote_ip: s.remote.ip(),
        remote_port: s.remote.port(),
    }
}

/// The sensor's classification of an fd in the trace format's terms.
pub fn fd_info(f: &ward_sensor::FdInfo) -> FdInfo {
    use ward_sensor::FdKind as K;
    let kind = match f.kind {
        K::None => FdKind::Closed,
        K::Regular => FdKind::File,
        K::Pipe => FdKind::Pipe,
        K::Fifo => FdKind::Fifo,
        K::CharDevice if f.is_tty() => FdKind::Tty,
        K::CharDevice => FdKind::Char,
        K::UnixSocket => FdKind::UnixSocket,
        K::InetSocket => FdKind::InetSocket,
        K::Other => FdKind::Other,
    };
    FdInfo {
        kind,
        inode: f.ino,
        path: None,
        socket: f.socket.as_ref().map(socket_info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers() {
        assert_eq!(layer_of(false, false, OverlayLayer::Lower), Layer::Image);
        assert_eq!(
            layer_of(false, false, OverlayLayer::UpperOnly),
            Layer::Added
        );
        assert_eq!(
            layer_of(false, false, OverlayLayer::UpperOverLower),
            Layer::Modified
        );
        assert_eq!(
            layer_of(false, false, OverlayLayer::NotOverlay),
            Layer::NotOverlay
        );
        assert_eq!(layer_of(true, true, OverlayLayer::NotOverlay), Layer::Memfd);
        assert_eq!(layer_of(false, true, OverlayLayer::Lower), Layer::Deleted);
    }

    #[test]
    fn fd_kinds() {
        let tty = ward_sensor::FdInfo {
            kind: ward_sensor::FdKind::CharDevice,
            ino: 3,
            rdev: Some((136, 0)),
            socket: None,
        };
        assert_eq!(fd_info(&tty).kind, FdKind::Tty);
        let null = ward_sensor::FdInfo {
            rdev: Some((1, 3)),
            ..tty
        };
        assert_eq!(fd_info(&null).kind, FdKind::Char);
        let sock = ward_sensor::FdInfo {
            kind: ward_sensor::FdKind::InetSocket,
            ino: 9,
            rdev: None,
            socket: Some(ward_sensor::InetSocket {
                sock_type: ward_sensor::SockType::Stream,
                state: 1,
                local: "127.0.0.1:5000".parse().unwrap(),
                remote: "127.0.0.1:4444".parse().unwrap(),
            }),
        };
        let f = fd_info(&sock);
        assert!(f.remote_stream_peer().is_some());
        assert_eq!(f.socket.unwrap().remote_port, 4444);
    }

    #[test]
    fn seeding_own_process() {
        let mut en = Enricher::new(
            EnrichConfig {
                node_name: Some("node-x".into()),
                metadata: MetadataConfig {
                    docker_sockets: vec![],
                    ..MetadataConfig::default()
                },
                ..EnrichConfig::default()
            },
            BootClock::new(),
        );
        let snaps = ward_sensor::snapshot_processes().unwrap();
        let seeds = en.seed(&snaps);
        let me = seeds
            .iter()
            .find(|e| e.pid == std::process::id())
            .expect("own process seeded");
        assert_eq!(me.node, "node-x");
        assert!(!me.argv.is_empty());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(me.time <= now && me.time > now - 3600 * 1_000_000_000 * 24 * 365);
    }
}

#[cfg(test)]
mod roots_tests {
    use super::Roots;

    #[test]
    fn exited_pids_free_their_slot_for_a_reused_namespace_number() {
        let mut r = Roots::default();
        // A first container in mount namespace 7 runs four processes, then exits.
        for pid in [10, 11, 12, 13] {
            r.remember(7, pid);
        }
        for pid in [10, 11, 12, 13] {
            r.forget(pid);
        }
        assert!(!r.by_ns.contains_key(&7));
        // A new container gets the same namespace number: its init is remembered and stays
        // while later short-lived execs come and go.
        r.remember(7, 20);
        for pid in 21..40 {
            r.remember(7, pid);
            r.forget(pid);
        }
        assert_eq!(r.by_ns[&7], vec![20]);
        // The last slot follows the newest exec once the first three are taken.
        for pid in [41, 42, 43, 44] {
            r.remember(7, pid);
        }
        assert_eq!(r.by_ns[&7], vec![20, 41, 42, 44]);
        assert!(!r.ns_of.contains_key(&43), "a replaced pid is forgotten");
    }
}
