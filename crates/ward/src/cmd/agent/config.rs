//! The `[agent]` section of the configuration file (documented in `config/ward.toml`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Node name on every event and finding; empty = the host name.
    pub node_name: String,
    /// Cluster name on every finding (`cluster`, the resource's `cluster`); empty = none.
    pub cluster: String,
    /// Project name on every finding (`projectDisplayName`, the resource's
    /// `project_display_name`); empty = none.
    pub project: String,
    /// Prometheus text on `http://<addr>/metrics`; empty disables.
    pub metrics_addr: String,
    /// A health line on stderr this often; 0 disables.
    #[serde(with = "humantime_serde")]
    pub health_log_interval: Duration,
    /// Docker Engine API sockets (docker, `podman system service`), tried in order.
    pub docker_sockets: Vec<PathBuf>,
    /// CRI sockets (containerd, CRI-O), asked first for containers whose cgroup names a CRI
    /// runtime; needs a build with the `cri` feature.
    pub cri_sockets: Vec<PathBuf>,
    /// Podman container stores read for names and images when no runtime socket answers.
    pub podman_storage: Vec<PathBuf>,
    /// Longest an exec waits for container metadata being fetched.
    #[serde(with = "humantime_serde")]
    pub metadata_wait: Duration,
    /// Timeout of one runtime API request.
    #[serde(with = "humantime_serde")]
    pub metadata_timeout: Duration,
    /// A container whose metadata could not be had is asked again after this long.
    #[serde(with = "humantime_serde")]
    pub metadata_retry: Duration,
    /// Longest an exec waits for its binary's hash.
    #[serde(with = "humantime_serde")]
    pub hash_wait: Duration,
    /// Binaries larger than this are hashed over their first `hash_max_bytes` bytes.
    pub hash_max_bytes: u64,
    /// Hashing threads for any file.
    pub hash_workers: usize,
    /// One more hashing thread takes only binaries up to this size (0 = none), so small
    /// binaries are not stuck behind a large one.
    pub hash_small_lane_max: u64,
    /// Hash jobs waiting beyond this are refused (counted as misses).
    pub hash_queue: usize,
    /// Hashes cached by file identity.
    pub hash_cache_entries: usize,
    /// Take a handle on every executed file through fanotify `FAN_OPEN_EXEC` (a notification:
    /// the exec never waits), so that a process that exits before its exec is read is still
    /// hashed. Off = `/proc/PID/exe` only.
    pub exec_fanotify: bool,
    /// A process that execs a memfd (fileless) is stopped by the kernel program until the
    /// agent has opened its exe (well under a millisecond of an agent wake-up), then resumed:
    /// the only way to hash a memfd binary that exits at once. If the agent is killed hard
    /// (SIGKILL) in that window, the process stays stopped until sent SIGCONT.
    pub hold_memfd_execs: bool,
    /// The same hold for python running a script file (`python3 FILE`, `#!` python scripts):
    /// its script is read through the live process's root even if it runs for a few ms.
    /// Costs each such exec one agent wake-up before python starts (measured in docs/agent.md).
    pub hold_python_script_execs: bool,
    /// Put each process's environment at exec (as the sensor captured it, the first 2 KiB)
    /// into findings: `processes[].envVariables` and `envVariablesTruncated` (Google's
    /// REPORT_ENVIRONMENT_VARIABLES). Off by default: environments hold secrets. Rules see the
    /// environment either way; an output's `redact = ["env"]` drops it again.
    pub report_environment_variables: bool,
    /// BPF ring buffer size (power of two, multiple of the page size). The agent maps it twice,
    /// so it counts double in RSS.
    pub ring_buffer_bytes: u32,
    /// Store writes are batched for at most this long.
    #[serde(with = "humantime_serde")]
    pub store_flush_interval: Duration,
    /// How often the agent reads the ring buffer when nothing wakes it (the kernel wakes it
    /// early once 1 MiB is pending, and at once for a network socket on a process's stdio: the
    /// shape of a remote shell; events waiting for metadata or a hash are looked at every
    /// millisecond). Longer = fewer wake-ups, later findings.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// While events keep coming, the loop reads the ring buffer at most this often, so each
    /// pass handles a batch rather than one or two records (a pass has a fixed cost: reading
    /// fanotify, the hash and metadata replies, clocks, and the wake-up itself). 0 = at once.
    /// Adds at most this much to a finding's latency; urgent records (a socket on stdio, an
    /// exec held stopped) and a filling ring end the wait at once (the sensor's doorbell).
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        // Runtime sockets and request timing: the enrichment crate's defaults.
        let meta = ward_enrich::MetadataConfig::default();
        AgentConfig {
            node_name: String::new(),
            cluster: String::new(),
            project: String::new(),
            metrics_addr: "127.0.0.1:9464".into(),
            health_log_interval: Duration::from_secs(60),
            docker_sockets: meta.docker_sockets,
            cri_sockets: meta.cri_sockets,
            podman_storage: meta.podman_storage,
            metadata_wait: Duration::from_millis(200),
            metadata_timeout: meta.request_timeout,
            metadata_retry: meta.retry_after,
            hash_wait: Duration::from_millis(250),
            hash_max_bytes: 64 << 20,
            hash_workers: 1,
            hash_small_lane_max: 1 << 20,
            hash_queue: 1024,
            hash_cache_entries: 16384,
            exec_fanotify: true,
            hold_memfd_execs: true,
            hold_python_script_execs: false,
            report_environment_variables: false,
            ring_buffer_bytes: 8 << 20,
            store_flush_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(50),
            batch_interval: Duration::from_millis(20),
        }
    }
}
