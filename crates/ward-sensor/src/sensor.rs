//! Loading, attaching and reading the kernel programs.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use tracing::{debug, info, warn};

use crate::abi;
use crate::clock::BootClock;
use crate::error::SensorError;
use crate::event::{decode, EventKind, RawEvent};

static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ward.bpf.o"));

const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// tp_btf programs: (program, tracepoint).
const BTF_PROGRAMS: [(&str, &str); 3] = [
    ("ward_exec", "sched_process_exec"),
    ("ward_fork", "sched_process_fork"),
    ("ward_exit", "sched_process_exit"),
];

/// syscall tracepoint programs: (program, syscalls/<event>).
const SYSCALL_PROGRAMS: [(&str, &str); 7] = [
    ("ward_sys_exit_dup", "sys_exit_dup"),
    ("ward_sys_exit_dup2", "sys_exit_dup2"),
    ("ward_sys_exit_dup3", "sys_exit_dup3"),
    ("ward_sys_exit_fcntl", "sys_exit_fcntl"),
    ("ward_sys_exit_connect", "sys_exit_connect"),
    ("ward_sys_exit_accept", "sys_exit_accept"),
    ("ward_sys_exit_accept4", "sys_exit_accept4"),
];

/// How to load the sensor.
#[derive(Clone, Debug)]
pub struct SensorConfig {
    /// Ring buffer size in bytes: a power of two, multiple of the page size.
    /// Default 16 MiB (about 2200 exec records).
    pub ring_buffer_bytes: u32,
    /// The kernel wakes the reader only when this many bytes are pending;
    /// below that the reader finds events on its next timed poll. Default 1 MiB.
    pub wakeup_bytes: u64,
    /// Mount tracefs on /sys/kernel/tracing if it is not mounted. Default true.
    pub mount_tracefs: bool,
    /// Stop a process that execs a memfd (SIGSTOP from the exec program) until user space
    /// resumes it ([`crate::exec_files::resume_held`]) after taking a handle on the file.
    /// Default false; the agent turns it on (`agent.hold_memfd_execs`).
    pub hold_memfd: bool,
    /// The same hold for python running a script file (comm `python*`, argv[1] not an
    /// option), so that a script that runs for a few ms is still read through its process's
    /// root. Default false; the agent turns it on (`agent.hold_python_script_execs`).
    pub hold_scripts: bool,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            ring_buffer_bytes: 16 << 20,
            wakeup_bytes: 1 << 20,
            mount_tracefs: true,
            hold_memfd: false,
            hold_scripts: false,
        }
    }
}

/// Counters of the sensor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SensorStats {
    /// Events decoded, by kind.
    pub events: Vec<(EventKind, u64)>,
    /// Total events decoded.
    pub events_total: u64,
    /// Records that could not be decoded (skipped).
    pub decode_errors: u64,
    /// Records the kernel could not reserve (ring buffer full), summed over CPUs.
    pub kernel_drops: u64,
    /// Kernel drops by event kind.
    pub kernel_drops_by_kind: Vec<(EventKind, u64)>,
    /// Execs to hold whose SIGSTOP the kernel refused (`bpf_send_signal` failed): sent
    /// without the held flag, the process ran on.
    pub hold_failures: u64,
}

/// The loaded and attached kernel sensor. Dropping it detaches everything.
pub struct Sensor {
    ring: RingBuf<MapData>,
    /// The doorbell (`wake` in ward.bpf.c): a token for every record that asked for a
    /// forced wake-up, so that [`Sensor::wait`] can sleep between passes and still wake
    /// at once for an urgent record.
    doorbell: RingBuf<MapData>,
    drops: PerCpuArray<MapData, u64>,
    counts: [u64; 8],
    decode_errors: u64,
    clock: BootClock,
    // Owns the programs and their links; must outlive nothing else here.
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Sensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sensor")
            .field("counts", &self.counts)
            .field("decode_errors", &self.decode_errors)
            .finish_non_exhaustive()
    }
}

fn cap_eff() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn check_privileges() -> Result<(), SensorError> {
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_PERFMON: u64 = 1 << 38;
    const CAP_BPF: u64 = 1 << 39;
    let caps = cap_eff();
    if caps & CAP_SYS_ADMIN != 0 || (caps & CAP_BPF != 0 && caps & CAP_PERFMON != 0) {
        Ok(())
    } else {
        Err(SensorError::Privileges { cap_eff: caps })
    }
}

fn tracefs_events_dir() -> Option<&'static Path> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
}

/// Makes sure tracefs is mounted (aya looks it up at the first attach).
fn ensure_tracefs(mount_it: bool) -> Result<&'static Path, SensorError> {
    if let Some(p) = tracefs_events_dir() {
        return Ok(p);
    }
    if !mount_it {
        return Err(SensorError::Tracefs {
            source: io::Error::other("not mounted and SensorConfig::mount_tracefs is false"),
        });
    }
    info!("mounting tracefs on /sys/kernel/tracing");
    // SAFETY: NUL-terminated constant strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(SensorError::Tracefs {
            source: io::Error::last_os_error(),
        });
    }
    tracefs_events_dir().ok_or_else(|| SensorError::Tracefs {
        source: io::Error::other("mounted, but events/ is missing"),
    })
}

fn verifier_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn program_error(program: &'static str, target: &'static str, e: ProgramError) -> SensorError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let hint = match io_error.raw_os_error() {
                Some(libc::EPERM) => {
                    " (EPERM: missing CAP_BPF/CAP_PERFMON, or this program type is disabled by the kernel or lockdown)"
                }
                Some(libc::E2BIG) => " (E2BIG: program too large for the verifier)",
                Some(libc::EINVAL) => " (EINVAL: rejected by the verifier or unknown attach target)",
                _ => "",
            };
            SensorError::ProgramLoad {
                program,
                source: io_error,
                verifier_log_tail: verifier_tail(&verifier_log.to_string(), 25),
                hint,
            }
        }
        source => SensorError::Program {
            program,
            target,
            source,
        },
    }
}

impl Sensor {
    /// Loads the BPF object, attaches every program and opens the ring buffer.
    ///
    /// Needs root (or CAP_BPF + CAP_PERFMON), kernel BTF, and tracefs (mounted
    /// on demand). bpffs is not needed: nothing is pinned.
    pub fn load(config: &SensorConfig) -> Result<Sensor, SensorError> {
        check_privileges()?;
        let btf = Btf::from_sys_fs().map_err(|e| SensorError::BtfMissing {
            path: BTF_PATH.into(),
            detail: e.to_string(),
        })?;
        let tracefs = ensure_tracefs(config.mount_tracefs)?;
        for (_, event) in SYSCALL_PROGRAMS {
            if !tracefs.join("events/syscalls").join(event).is_dir() {
                return Err(SensorError::MissingTracepoint(format!("syscalls/{event}")));
            }
        }

        let wakeup = config.wakeup_bytes;
        let hold_memfd = u32::from(config.hold_memfd);
        let hold_scripts = u32::from(config.hold_scripts);
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .map_max_entries("events", config.ring_buffer_bytes)
            .map_max_entries("wake", page_size())
            .override_global("wakeup_bytes", &wakeup, true)
            .override_global("hold_memfd", &hold_memfd, true)
            .override_global("hold_scripts", &hold_scripts, true)
            .load(BPF_OBJECT)
            .map_err(SensorError::Object)?;

        // Diagnostics for cost breakdowns (docs/agent.md): WARD_SENSOR_NOOP=1 starts with the
        // `ward_pause` switch on: every program attached, returning at once.
        if std::env::var("WARD_SENSOR_NOOP").is_ok_and(|v| v == "1") {
            let map = ebpf.map_mut("ward_pause").ok_or(SensorError::Missing {
                what: "map",
                name: "ward_pause",
            })?;
            let map_error = |source| SensorError::Map {
                name: "ward_pause",
                source,
            };
            let mut pause: Array<_, u32> = Array::try_from(map).map_err(map_error)?;
            pause.set(0, 1, 0).map_err(map_error)?;
            warn!("WARD_SENSOR_NOOP=1: the programs are attached but paused (return at once)");
        }
        // Diagnostics for cost breakdowns (docs/agent.md): WARD_SENSOR_ATTACH=ward_exec,...
        // loads every program but attaches only the ones named.
        let only: Option<Vec<String>> = std::env::var("WARD_SENSOR_ATTACH")
            .ok()
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
        let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
        if let Some(o) = &only {
            warn!(programs = ?o, "WARD_SENSOR_ATTACH set: attaching only these programs");
        }
        for (name, tp) in BTF_PROGRAMS {
            let prog: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or(SensorError::Missing {
                    what: "program",
                    name,
                })?
                .try_into()
                .map_err(|e| program_error(name, tp, e))?;
            prog.load(tp, &btf)
                .map_err(|e| program_error(name, tp, e))?;
            if !wanted(name) {
                continue;
            }
            prog.attach().map_err(|e| program_error(name, tp, e))?;
            debug!(program = name, tracepoint = tp, "attached tp_btf");
        }
        for (name, event) in SYSCALL_PROGRAMS {
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or(SensorError::Missing {
                    what: "program",
                    name,
                })?
                .try_into()
                .map_err(|e| program_error(name, event, e))?;
            prog.load().map_err(|e| program_error(name, event, e))?;
            if !wanted(name) {
                continue;
            }
            prog.attach("syscalls", event)
                .map_err(|e| program_error(name, event, e))?;
            debug!(program = name, tracepoint = event, "attached tracepoint");
        }

        let ring_map = ebpf.take_map("events").ok_or(SensorError::Missing {
            what: "map",
            name: "events",
        })?;
        let ring = RingBuf::try_from(ring_map).map_err(|source| SensorError::Map {
            name: "events",
            source,
        })?;
        let wake_map = ebpf.take_map("wake").ok_or(SensorError::Missing {
            what: "map",
            name: "wake",
        })?;
        let doorbell = RingBuf::try_from(wake_map).map_err(|source| SensorError::Map {
            name: "wake",
            source,
        })?;
        let drops_map = ebpf.take_map("drops").ok_or(SensorError::Missing {
            what: "map",
            name: "drops",
        })?;
        let drops = PerCpuArray::try_from(drops_map).map_err(|source| SensorError::Map {
            name: "drops",
            source,
        })?;
        info!(
            ring_buffer_bytes = config.ring_buffer_bytes,
            wakeup_bytes = config.wakeup_bytes,
            "ward sensor attached"
        );
        Ok(Sensor {
            ring,
            doorbell,
            drops,
            counts: [0; 8],
            decode_errors: 0,
            clock: BootClock::new(),
            _ebpf: ebpf,
        })
    }

    /// Appends every pending event to `out`; if none is pending, waits up to
    /// `timeout` (use about 10 ms: the kernel usually does not wake the
    /// reader, see [`SensorConfig::wakeup_bytes`]) and drains again.
    /// Malformed records are counted in [`SensorStats::decode_errors`] and
    /// skipped. Returns the number of events appended.
    pub fn poll(
        &mut self,
        out: &mut Vec<RawEvent>,
        timeout: Duration,
    ) -> Result<usize, SensorError> {
        let n = self.drain(out);
        if n > 0 || timeout.is_zero() {
            return Ok(n);
        }
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(SensorError::io("poll on the ring buffer", err));
            }
        }
        Ok(self.drain(out))
    }

    /// Sleeps up to `timeout` between passes, returning early when the kernel rings the
    /// doorbell: an urgent record (a network socket on stdio, an exec it holds stopped) or
    /// the wake-up threshold of pending bytes, committed since the last [`poll`](Self::poll).
    /// Records that did not ask for a wake-up do not end the sleep (polling the ring itself
    /// would: it is readable while any record is pending). Returns whether it was rung.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: self.doorbell.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd. EINTR (a signal) ends the sleep early, as a ring would.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        rc > 0
    }

    fn drain(&mut self, out: &mut Vec<RawEvent>) -> usize {
        // Tokens first: one rung after this belongs to a record this drain may miss, so the
        // next `wait` returns at once.
        while self.doorbell.next().is_some() {}
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            match decode(&item) {
                Ok(ev) => {
                    let k = ev.kind().abi_kind() as usize;
                    self.counts[k & 7] += 1;
                    out.push(ev);
                    n += 1;
                }
                Err(e) => {
                    self.decode_errors += 1;
                    if self.decode_errors <= 10 || self.decode_errors.is_power_of_two() {
                        warn!(error = %e, total = self.decode_errors, "skipping malformed ring buffer record");
                    }
                }
            }
        }
        n
    }

    /// Counters: events decoded by kind, decode errors, kernel drops.
    pub fn stats(&self) -> SensorStats {
        let mut by_kind = Vec::new();
        let mut total = 0;
        let mut events = Vec::new();
        for kind in EventKind::ALL {
            let slot = kind.abi_kind() as u32;
            let dropped: u64 = match self.drops.get(&slot, 0) {
                Ok(values) => values.iter().sum(),
                Err(e) => {
                    warn!(error = %e, "reading the drops map");
                    0
                }
            };
            total += dropped;
            by_kind.push((kind, dropped));
            events.push((kind, self.counts[slot as usize]));
        }
        SensorStats {
            events_total: events.iter().map(|(_, n)| n).sum(),
            events,
            decode_errors: self.decode_errors,
            kernel_drops: total,
            kernel_drops_by_kind: by_kind,
            hold_failures: self
                .drops
                .get(&abi::WARD_SLOT_HOLD_FAILED, 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0),
        }
    }

    /// Boot-time to wall-clock converter sampled at load.
    pub fn clock(&self) -> &BootClock {
        &self.clock
    }
}

// Keep the drop slots in sync with the ABI.
const _: () = assert!(abi::WARD_DROP_SLOTS as usize == 8);

/// The system page size: a BPF ring buffer's size is a multiple of it (the doorbell is one page).
fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}
