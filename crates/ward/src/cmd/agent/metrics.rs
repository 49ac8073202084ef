//! Health of the agent: counters gathered by the main loop, rendered as Prometheus text (served
//! on a local port by `ward_api::prometheus`) and summarised in a periodic log line.

use std::fmt::Write as _;
use std::time::Duration;

use ward_detect::EngineStats;
use ward_enrich::{EnrichStats, HashStats, MetadataStats};
use ward_sensor::SensorStats;

/// Upper bounds (seconds) of the detection latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Exec → finding written latencies: a histogram plus the last values for percentiles.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
    recent: Vec<f64>,
    next: usize,
}

impl Latency {
    const RECENT: usize = 4096;

    pub fn observe(&mut self, secs: f64) {
        let secs = secs.max(0.0);
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
        if self.recent.len() < Self::RECENT {
            self.recent.push(secs);
        } else {
            self.recent[self.next] = secs;
            self.next = (self.next + 1) % Self::RECENT;
        }
    }

    /// Quantile `q` (0..1) of the last 4096 observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.recent.is_empty() {
            return None;
        }
        let mut v = self.recent.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let idx = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[idx])
    }
}

/// Everything the health report shows.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub node: String,
    pub uptime: Duration,
    pub sensor: SensorStats,
    pub enrich: EnrichStats,
    pub hash: HashStats,
    /// fanotify exec watch; `None` when not running.
    pub exec_files: Option<ward_sensor::ExecFilesStats>,
    pub metadata: MetadataStats,
    pub engine: EngineStats,
    pub parked: usize,
    pub events_per_sec: f64,
    pub findings_written: u64,
    pub store_errors: u64,
    /// Finding updates not yet committed to the store (waiting for a batch or a retry).
    pub store_pending: u64,
    /// Finding updates given up while the store was failing (pending full).
    pub store_dropped: u64,
    /// The store's outbox (rows, bytes, drops by its bounds).
    pub outbox: ward_output::driver::StoreStats,
    /// Each output besides the store.
    pub outputs: Vec<ward_output::SinkStats>,
    pub latency: Latency,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

fn kind_name(k: ward_sensor::EventKind) -> &'static str {
    match k {
        ward_sensor::EventKind::Exec => "exec",
        ward_sensor::EventKind::Fork => "fork",
        ward_sensor::EventKind::Exit => "exit",
        ward_sensor::EventKind::FdReplaced => "fd",
        ward_sensor::EventKind::Connect => "connect",
        ward_sensor::EventKind::Accept => "accept",
    }
}

impl Health {
    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self) -> String {
        let mut s = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, String)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        metric(
            "ward_agent_info",
            "gauge",
            "The node this agent reports as.",
            &[(
                format!("{{node=\"{}\"}}", self.node.replace(['"', '\\', '\n'], "_")),
                "1".into(),
            )],
        );
        metric(
            "ward_sensor_events_total",
            "counter",
            "Events decoded from the BPF ring buffer, by kind.",
            &self
                .sensor
                .events
                .iter()
                .map(|(k, n)| (format!("{{kind=\"{}\"}}", kind_name(*k)), n.to_string()))
                .collect::<Vec<_>>(),
        );
        metric(
            "ward_kernel_drops_total",
            "counter",
            "Records the kernel could not put in the ring buffer (full), by kind.",
            &self
                .sensor
                .kernel_drops_by_kind
                .iter()
                .map(|(k, n)| (format!("{{kind=\"{}\"}}", kind_name(*k)), n.to_string()))
                .collect::<Vec<_>>(),
        );
        metric(
            "ward_sensor_hold_failures_total",
            "counter",
            "Execs to hold at exec (memfd, python scripts) whose SIGSTOP the kernel refused: they ran on unheld.",
            &one(self.sensor.hold_failures.to_string()),
        );
        metric(
            "ward_userspace_drops_total",
            "counter",
            "Records dropped in user space (malformed ring buffer records).",
            &one(self.sensor.decode_errors.to_string()),
        );
        metric(
            "ward_events_per_second",
            "gauge",
            "Events per second over the last metrics interval.",
            &one(format!("{:.1}", self.events_per_sec)),
        );
        metric(
            "ward_enrich_parked_events",
            "gauge",
            "Events waiting for a hash or container metadata.",
            &one(self.parked.to_string()),
        );
        let e = &self.enrich;
        metric(
            "ward_enrich_container_execs_total",
            "counter",
            "Execs inside a container.",
            &one(e.container_execs.to_string()),
        );
        metric(
            "ward_enrich_stdin_writer_lookups_total",
            "counter",
            "Interactive shell execs on a pipe whose parent's fds were read (interpreter relays).",
            &one(e.stdin_writer_lookups.to_string()),
        );
        metric(
            "ward_enrich_metadata_misses_total",
            "counter",
            "Container execs emitted without runtime metadata, by reason.",
            &[
                (
                    "{reason=\"timeout\"}".into(),
                    e.metadata_timeouts.to_string(),
                ),
                (
                    "{reason=\"unavailable\"}".into(),
                    e.metadata_unavailable.to_string(),
                ),
            ],
        );
        metric(
            "ward_enrich_hash_misses_total",
            "counter",
            "Execs emitted without a binary hash, by reason.",
            &[
                ("{reason=\"exe_gone\"}".into(), e.hash_exe_gone.to_string()),
                (
                    "{reason=\"identity_mismatch\"}".into(),
                    e.hash_identity_mismatch.to_string(),
                ),
                (
                    "{reason=\"queue_full\"}".into(),
                    e.hash_queue_full.to_string(),
                ),
                ("{reason=\"timeout\"}".into(), e.hash_timeouts.to_string()),
            ],
        );
        metric(
            "ward_enrich_exec_files_total",
            "counter",
            "Hashed execs by where the file handle came from: fanotify FAN_OPEN_EXEC, the handle kept on an executable fanotify no longer reports, /proc/PID/exe, another process's root.",
            &[
                (
                    "{source=\"fanotify\"}".into(),
                    e.exe_from_fanotify.to_string(),
                ),
                ("{source=\"kept\"}".into(), e.exe_from_kept.to_string()),
                ("{source=\"proc_exe\"}".into(), e.exe_from_proc.to_string()),
                (
                    "{source=\"other_root\"}".into(),
                    e.exe_from_other_root.to_string(),
                ),
            ],
        );
        let f = self.exec_files.unwrap_or_default();
        metric(
            "ward_fanotify_up",
            "gauge",
            "1 when the fanotify exec watch runs (agent.exec_fanotify and CAP_SYS_ADMIN).",
            &one(u8::from(self.exec_files.is_some()).to_string()),
        );
        metric(
            "ward_fanotify_events_total",
            "counter",
            "FAN_OPEN_EXEC events read (an exec of a dynamic ELF gives two: the program and ld.so).",
            &one(f.events.to_string()),
        );
        metric(
            "ward_fanotify_overflows_total",
            "counter",
            "Times the kernel's fanotify queue overflowed (those execs fall back to /proc/PID/exe).",
            &one(f.overflows.to_string()),
        );
        metric(
            "ward_fanotify_read_errors_total",
            "counter",
            "fanotify reads that failed (e.g. out of file descriptors; the event is lost).",
            &one(f.read_errors.to_string()),
        );
        metric(
            "ward_fanotify_ignored_files",
            "gauge",
            "Ignore marks added (exec events no longer queued): an ld.so whose handle went unused 3 times, or an executable run again after its hash was cached; a write to the file clears its mark.",
            &one(f.ignored.to_string()),
        );
        metric(
            "ward_enrich_ignored_executables",
            "gauge",
            "Executables fanotify no longer reports, with a handle kept on each to hash them again if their identity changes without a write (at most 2048; deleted ones are dropped every 30 s).",
            &one(e.executables_ignored.to_string()),
        );
        metric(
            "ward_fanotify_marked_filesystems",
            "gauge",
            "File systems marked for FAN_OPEN_EXEC.",
            &one(f.marked.to_string()),
        );
        metric(
            "ward_enrich_scripts_from_host_mount_total",
            "counter",
            "Scripts read through the container's root mounted on the host: no process of the container was left.",
            &one(e.scripts_from_host_mount.to_string()),
        );
        metric(
            "ward_enrich_held_execs_total",
            "counter",
            "memfd execs stopped at exec until the agent opened their exe (agent.hold_memfd_execs).",
            &one(e.held_execs.to_string()),
        );
        metric(
            "ward_enrich_script_errors_total",
            "counter",
            "Scripts that could not be read.",
            &one(e.script_errors.to_string()),
        );
        metric(
            "ward_hash_files_total",
            "counter",
            "Binaries hashed (cache misses).",
            &one(self.hash.hashed.to_string()),
        );
        metric(
            "ward_hash_cache_hits_total",
            "counter",
            "Binary hashes answered from the cache.",
            &one(self.hash.cache_hits.to_string()),
        );
        metric(
            "ward_metadata_requests_total",
            "counter",
            "Runtime API requests, by outcome.",
            &[
                (
                    "{outcome=\"found\"}".into(),
                    self.metadata.found.to_string(),
                ),
                (
                    "{outcome=\"failed\"}".into(),
                    self.metadata.failed.to_string(),
                ),
                (
                    "{outcome=\"refused\"}".into(),
                    self.metadata.queue_full.to_string(),
                ),
            ],
        );
        metric(
            "ward_findings_total",
            "counter",
            "New findings.",
            &one(self.engine.findings_new.to_string()),
        );
        metric(
            "ward_finding_repeats_total",
            "counter",
            "Repeats folded into existing findings.",
            &one(self.engine.findings_repeated.to_string()),
        );
        metric(
            "ward_store_errors_total",
            "counter",
            "Failed writes to the finding store.",
            &one(self.store_errors.to_string()),
        );
        metric(
            "ward_store_pending_findings",
            "gauge",
            "Finding updates not yet committed to the store.",
            &one(self.store_pending.to_string()),
        );
        metric(
            "ward_store_dropped_total",
            "counter",
            "Finding updates given up while the store kept failing.",
            &one(self.store_dropped.to_string()),
        );
        let per_output = |v: &dyn Fn(&ward_output::SinkStats) -> u64| -> Vec<(String, String)> {
            self.outputs
                .iter()
                .map(|o| {
                    (
                        format!("{{output=\"{}\"}}", label(&o.name)),
                        v(o).to_string(),
                    )
                })
                .collect()
        };
        metric(
            "ward_output_sent_total",
            "counter",
            "Finding states each output's receiver acknowledged.",
            &per_output(&|o| o.sent),
        );
        metric(
            "ward_output_failed_total",
            "counter",
            "Failed writes per output (each retried with backoff).",
            &per_output(&|o| o.failed),
        );
        metric(
            "ward_output_dropped_total",
            "counter",
            "Finding states an output will never get (dropped by the outbox bounds before it had them).",
            &per_output(&|o| o.dropped),
        );
        metric(
            "ward_output_queue_depth",
            "gauge",
            "Finding states handed to an output and not yet acknowledged.",
            &per_output(&|o| o.queued),
        );
        metric(
            "ward_output_backlog",
            "gauge",
            "1 while an output catches up from the outbox (after an outage, a full queue or a restart).",
            &per_output(&|o| u64::from(o.backlog)),
        );
        metric(
            "ward_outbox_findings",
            "gauge",
            "Findings in the store's outbox that some output has not acknowledged.",
            &one(self.outbox.outbox_rows.to_string()),
        );
        metric(
            "ward_outbox_bytes",
            "gauge",
            "Bytes of finding JSON in the outbox.",
            &one(self.outbox.outbox_bytes.to_string()),
        );
        metric(
            "ward_outbox_dropped_total",
            "counter",
            "Outbox entries dropped by its bounds (bytes: lowest severity first; age), over the store's lifetime.",
            &one(self.outbox.outbox_dropped.to_string()),
        );
        metric(
            "ward_process_table_size",
            "gauge",
            "Processes in the process table.",
            &one(self.engine.table.processes.to_string()),
        );
        metric(
            "ward_process_table_evictions_total",
            "counter",
            "Processes evicted from the full process table.",
            &one(self.engine.table.evicted.to_string()),
        );
        let mut rows: Vec<(String, String)> = LATENCY_BUCKETS
            .iter()
            .zip(self.latency.buckets.iter())
            .map(|(b, n)| (format!("_bucket{{le=\"{b}\"}}"), n.to_string()))
            .collect();
        rows.push((
            "_bucket{le=\"+Inf\"}".into(),
            self.latency.count.to_string(),
        ));
        rows.push(("_sum".into(), format!("{:.6}", self.latency.sum)));
        rows.push(("_count".into(), self.latency.count.to_string()));
        metric(
            "ward_detection_latency_seconds",
            "histogram",
            "From the triggering event (kernel time) to the new finding committed to the store, before any output sees it.",
            &rows,
        );
        let q = |q: f64| {
            self.latency
                .quantile(q)
                .map(|v| format!("{v:.6}"))
                .unwrap_or_else(|| "NaN".into())
        };
        metric(
            "ward_detection_latency_recent_seconds",
            "gauge",
            "Quantiles of the last 4096 detection latencies.",
            &[
                ("{quantile=\"0.5\"}".into(), q(0.5)),
                ("{quantile=\"0.99\"}".into(), q(0.99)),
            ],
        );
        metric(
            "ward_resident_memory_bytes",
            "gauge",
            "Resident set size of the agent.",
            &one(self.rss_bytes.to_string()),
        );
        metric(
            "ward_cpu_seconds_total",
            "counter",
            "User + system CPU time of the agent.",
            &one(format!("{:.3}", self.cpu_seconds)),
        );
        metric(
            "ward_uptime_seconds",
            "gauge",
            "Seconds since the agent started.",
            &one(format!("{:.1}", self.uptime.as_secs_f64())),
        );
        s
    }

    /// One line for the log.
    pub fn log_line(&self) -> String {
        let e = &self.enrich;
        let mut outputs = String::new();
        for o in &self.outputs {
            let _ = write!(
                outputs,
                "; output {}: sent {}, failed {}, dropped {}, queued {}{}{}",
                o.name,
                o.sent,
                o.failed,
                o.dropped,
                o.queued,
                if o.backlog { ", catching up" } else { "" },
                o.health
                    .as_deref()
                    .map(|h| format!(", {h}"))
                    .unwrap_or_default()
            );
        }
        if self.outbox.outbox_rows > 0 || self.outbox.outbox_dropped > 0 {
            let _ = write!(
                outputs,
                "; outbox {} findings ({} KiB), dropped {}",
                self.outbox.outbox_rows,
                self.outbox.outbox_bytes >> 10,
                self.outbox.outbox_dropped
            );
        }
        let line = format!(
            "ward agent: health: events {} ({:.1}/s), kernel drops {}, user-space drops {}, \
             metadata misses {} (timeout {}, unavailable {}), hash misses {} (exe gone {}, \
             identity mismatch {}, queue full {}, timeout {}), findings {} \
             (+{} repeats), detection latency p99 {}, parked {}, rss {} MiB",
            self.sensor.events_total,
            self.events_per_sec,
            self.sensor.kernel_drops,
            self.sensor.decode_errors,
            e.metadata_timeouts + e.metadata_unavailable,
            e.metadata_timeouts,
            e.metadata_unavailable,
            e.hash_misses,
            e.hash_exe_gone,
            e.hash_identity_mismatch,
            e.hash_queue_full,
            e.hash_timeouts,
            self.engine.findings_new,
            self.engine.findings_repeated,
            self.latency
                .quantile(0.99)
                .map(|v| format!("{:.1} ms", v * 1e3))
                .unwrap_or_else(|| "n/a".into()),
            self.parked,
            self.rss_bytes >> 20,
        );
        line + &outputs
    }

    /// The counters the central output sends with each batch (the collector shows them per
    /// node in `GET /v1/nodes`).
    pub fn summary(&self) -> serde_json::Map<String, serde_json::Value> {
        let e = &self.enrich;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: u64| {
            m.insert(k.to_string(), v.into());
        };
        put("uptime_seconds", self.uptime.as_secs());
        put("events", self.sensor.events_total);
        put("kernel_drops", self.sensor.kernel_drops);
        put("decode_errors", self.sensor.decode_errors);
        put(
            "metadata_misses",
            e.metadata_timeouts + e.metadata_unavailable,
        );
        put("hash_misses", e.hash_misses);
        put("findings", self.engine.findings_new);
        put("store_errors", self.store_errors);
        put("store_dropped", self.store_dropped);
        put("outbox_rows", self.outbox.outbox_rows);
        put("outbox_bytes", self.outbox.outbox_bytes);
        put("outbox_dropped", self.outbox.outbox_dropped);
        put(
            "output_failures",
            self.outputs.iter().map(|o| o.failed).sum(),
        );
        put("rss_bytes", self.rss_bytes);
        m
    }
}

/// A Prometheus label value: quotes, backslashes and newlines would end it.
fn label(s: &str) -> String {
    s.replace(['"', '\\', '\n'], "_")
}

/// Resident set size and CPU seconds of this process.
pub fn self_usage() -> (u64, f64) {
    let page = 4096u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|p| p * page)
        .unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest[0] is field 3 (state): utime is field 14, stime 15.
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map(|t| t / tck)
        .unwrap_or(0.0);
    (rss, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histogram_and_quantiles() {
        let mut l = Latency::default();
        for i in 1..=100 {
            l.observe(i as f64 / 1000.0);
        }
        assert_eq!(l.quantile(0.99), Some(0.099));
        assert_eq!(l.quantile(0.5), Some(0.05));
        let h = Health {
            latency: l,
            ..Health::default()
        };
        let text = h.prometheus();
        assert!(text.contains("ward_detection_latency_seconds_bucket{le=\"0.01\"} 10\n"));
        assert!(text.contains("ward_detection_latency_seconds_count 100\n"));
        assert!(text.contains("# TYPE ward_kernel_drops_total counter"));
    }

    #[test]
    fn self_usage_reads_proc() {
        let (rss, _cpu) = self_usage();
        assert!(rss > 0);
    }
}
