//! # ward-sensor
//!
//! The only crate of Ward that touches the kernel. It loads the CO-RE eBPF
//! programs of `bpf/ward.bpf.c` (compiled by `build.rs` with clang, loaded
//! with aya), attaches them to tracepoints only (`tp_btf/sched_process_exec`,
//! `tp_btf/sched_process_fork`, `tp_btf/sched_process_exit`,
//! `tracepoint/syscalls/sys_exit_{dup,dup2,dup3,fcntl,connect,accept,accept4}`),
//! reads their records from one BPF ring buffer and decodes them into owned
//! [`RawEvent`]s. [`ExecFiles`] (fanotify `FAN_OPEN_EXEC`) gives an open handle on
//! every executed file, so a binary is hashed even when its process is gone.
//!
//! ```no_run
//! use std::time::Duration;
//! use ward_sensor::{Sensor, SensorConfig, RawEvent};
//!
//! let mut sensor = Sensor::load(&SensorConfig::default())?;
//! let seed = ward_sensor::snapshot_processes()?; // what ran before we started
//! let mut batch = Vec::new();
//! loop {
//!     batch.clear();
//!     sensor.poll(&mut batch, Duration::from_millis(10))?;
//!     for ev in &batch {
//!         if let RawEvent::Exec(e) = ev {
//!             println!("{} {} {:?}", e.tgid, e.exe_path, e.argv);
//!         }
//!     }
//! #   break;
//! }
//! # Ok::<(), ward_sensor::SensorError>(())
//! ```
//!
//! Design points:
//! - The record layout is defined once, in `bpf/ward_abi.h`; [`abi`] mirrors
//!   it with compile-time size/offset assertions (the header asserts the same
//!   numbers).
//! - The kernel submits with `BPF_RB_NO_WAKEUP` unless
//!   [`SensorConfig::wakeup_bytes`] are pending, so [`Sensor::poll`] must be
//!   called with a short timeout (about 10 ms); a wakeup per event would cost
//!   about 15 us.
//! - Decoding never panics: a malformed record is counted
//!   ([`SensorStats::decode_errors`]) and skipped. Reserve failures in the
//!   kernel are counted per CPU ([`SensorStats::kernel_drops`]).
//! - Timestamps are CLOCK_BOOTTIME ns; [`BootClock`] converts to wall clock.
//! - [`snapshot_processes`] seeds the state of processes already running,
//!   from /proc.
//!
//! Needs root (or CAP_BPF + CAP_PERFMON), a kernel with BTF, and tracefs
//! (mounted on demand). kprobes, fentry/fexit and BPF-LSM are not used.

#![warn(missing_docs)]

pub mod abi;
mod clock;
mod error;
mod event;
pub mod exec_files;
mod procfs;
mod sensor;

pub use clock::BootClock;
pub use error::SensorError;
pub use event::{
    decode, kernel_dev_to_user, ConnEvent, DecodeError, DupSyscall, EventKind, ExecEvent,
    ExitEvent, FdEvent, FdInfo, FdKind, FileIdentity, ForkEvent, InetSocket, OverlayLayer,
    RawEvent, SockType,
};
pub use exec_files::{resume_held, ExecFile, ExecFiles, ExecFilesStats};
pub use procfs::{
    cgroup2_mount, cgroup_id_of, snapshot_process, snapshot_processes, ProcessSnapshot,
};
pub use sensor::{Sensor, SensorConfig, SensorStats};
