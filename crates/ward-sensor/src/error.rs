//! Errors of the sensor.

use std::io;
use std::path::PathBuf;

/// Why the sensor could not start or read.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// Not root and missing CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN).
    #[error(
        "insufficient privileges to load eBPF programs: run as root or grant CAP_BPF and \
         CAP_PERFMON (or CAP_SYS_ADMIN); effective capabilities are {cap_eff:#x}"
    )]
    Privileges {
        /// CapEff from /proc/self/status.
        cap_eff: u64,
    },
    /// The kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y needed for CO-RE and tp_btf).
    #[error(
        "kernel BTF not available at {path}: the kernel needs CONFIG_DEBUG_INFO_BTF=y ({detail})"
    )]
    BtfMissing {
        /// Path tried.
        path: PathBuf,
        /// Underlying error.
        detail: String,
    },
    /// tracefs is not mounted and could not be mounted.
    #[error(
        "tracefs is not mounted (needed for the syscalls/sys_exit_* tracepoints) and mounting \
         it failed: {source}; mount it with `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    Tracefs {
        /// mount(2) error.
        #[source]
        source: io::Error,
    },
    /// A tracepoint the sensor needs does not exist in this kernel.
    #[error(
        "tracepoint {0} not found under tracefs events/ (kernel needs CONFIG_FTRACE_SYSCALLS=y)"
    )]
    MissingTracepoint(String),
    /// The BPF object could not be parsed, relocated or its maps created.
    #[error("loading the BPF object failed: {0}")]
    Object(#[source] aya::EbpfError),
    /// A program (or map) the loader expects is missing from the object.
    #[error("the BPF object has no {what} named {name}")]
    Missing {
        /// "program" or "map".
        what: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// The kernel rejected a program.
    #[error("BPF program {program} failed to load: {source}{hint}\nverifier log (tail):\n{verifier_log_tail}")]
    ProgramLoad {
        /// Program name.
        program: &'static str,
        /// bpf(2) error.
        #[source]
        source: io::Error,
        /// Last lines of the verifier log.
        verifier_log_tail: String,
        /// Hint about the likely cause.
        hint: &'static str,
    },
    /// Any other load/attach failure of a program.
    #[error("BPF program {program} ({target}): {source}")]
    Program {
        /// Program name.
        program: &'static str,
        /// Hook it attaches to.
        target: &'static str,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map operation failed.
    #[error("BPF map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// An I/O error with context.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl SensorError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SensorError::Io {
            context: context.into(),
            source,
        }
    }
}
