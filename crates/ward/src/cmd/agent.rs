//! `ward agent`: the live pipeline. Sensor (eBPF) → enrichment → engine → sinks (JSON Lines,
//! SQLite store, optional trace recording), with health as Prometheus text and a periodic log
//! line. See `docs/agent.md`.

pub mod config;
pub mod metrics;
pub mod selftest;

use crate::cmd::replay::load_intel;
use crate::config::WardConfig;
use anyhow::{Context, Result};
use clap::Args;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ward_detect::{Engine, FindingUpdate};
use ward_enrich::{EnrichConfig, Enricher, HashConfig, MetadataConfig};
use ward_event::{Event, TraceHeader};
use ward_output::{Driver, DriverConfig};
use ward_sensor::{RawEvent, Sensor, SensorConfig};

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Store findings in this SQLite database (created if missing) [default: /var/lib/ward/ward.db].
    #[arg(long, value_name = "PATH", env = "WARD_DB")]
    pub db: Option<PathBuf>,
    /// If the database is corrupt, move it aside (to PATH.corrupt-<UTC time>) and start with
    /// an empty one instead of refusing to start.
    #[arg(long)]
    pub recreate_corrupt_db: bool,
    /// Threat-intel feed (sha256 list, HASH;COMMENT, or CSV with a sha256 column). Repeatable.
    #[arg(long = "intel", value_name = "FILE")]
    pub intel: Vec<PathBuf>,
    /// URL feed for the Malicious URL Observed rule: URLs, hosts and `*.domains` one per
    /// line, or the URLhaus CSV dump. Repeatable. Without one that rule is off.
    #[arg(long = "url-feed", value_name = "FILE")]
    pub url_feeds: Vec<PathBuf>,
    /// Where findings go besides the store (repeatable; replaces `[[outputs]]`): `stdout`
    /// (the default), `jsonl:PATH`, `ocsf:PATH`, `webhook:URL`, `falco:URL` (falcosidekick),
    /// `syslog:udp://HOST:PORT|tcp://HOST:PORT|unix:///PATH`, or `none`. See docs/outputs.md.
    #[arg(long, value_name = "SINK")]
    pub output: Vec<String>,
    /// Also write every enriched event to PATH in the trace format (`ward replay PATH`
    /// reproduces the findings).
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
    /// Configuration file (TOML); see `ward config default`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Malicious Python model file (default: the model shipped in the binary).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR (overrides `agent.metrics_addr`; `none` disables).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Node name on every event and finding (overrides `agent.node_name`). In Kubernetes the
    /// DaemonSet sets WARD_NODE_NAME from the downward API (`spec.nodeName`).
    #[arg(long, value_name = "NAME", env = "WARD_NODE_NAME")]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Also serve the findings API and web console from the agent's database, as `ward serve`
    /// does (`[api]` settings; ADDR overrides `api.listen`).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub serve: Option<String>,
}

/// The cluster and project stamped on every finding (`ward agent`, `ward replay`).
#[derive(Args, Debug, Default)]
pub struct IdentityArgs {
    /// Cluster name on every finding (overrides `agent.cluster`).
    #[arg(long, value_name = "NAME", env = "WARD_CLUSTER")]
    pub cluster: Option<String>,
    /// Project name on every finding, SCC's `project_display_name` (overrides
    /// `agent.project`).
    #[arg(long, value_name = "NAME", env = "WARD_PROJECT")]
    pub project: Option<String>,
}

impl IdentityArgs {
    /// The flags over `[agent] cluster`/`project` (an empty flag keeps the file's value).
    pub fn resolve(&self, cfg: &config::AgentConfig) -> ward_event::finding::ResourceIdentity {
        let pick = |flag: &Option<String>, file: &str| {
            flag.as_deref()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(file)
                .trim()
                .to_string()
        };
        ward_event::finding::ResourceIdentity {
            cluster: pick(&self.cluster, &cfg.cluster),
            project: pick(&self.project, &cfg.project),
        }
    }
}

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is zero-initialised then filled.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`); empty when unreadable, which still
/// names findings by boot time, just without telling boots apart.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn wall_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn enrich_config(cfg: &WardConfig) -> EnrichConfig {
    let a = &cfg.agent;
    EnrichConfig {
        node_name: (!a.node_name.is_empty()).then(|| a.node_name.clone()),
        cgroup_root: None,
        metadata: MetadataConfig {
            docker_sockets: a.docker_sockets.clone(),
            cri_sockets: a.cri_sockets.clone(),
            podman_storage: a.podman_storage.clone(),
            request_timeout: a.metadata_timeout,
            retry_after: a.metadata_retry,
            ..MetadataConfig::default()
        },
        metadata_wait: a.metadata_wait,
        hash: HashConfig {
            max_bytes: a.hash_max_bytes,
            workers: a.hash_workers,
            small_lane_max: a.hash_small_lane_max,
            queue: a.hash_queue,
            cache_entries: a.hash_cache_entries,
        },
        hash_wait: a.hash_wait,
        exec_fanotify: a.exec_fanotify,
        script: ward_enrich::script::CaptureConfig {
            contents_max: cfg.engine.script_contents_max,
            ..ward_enrich::script::CaptureConfig::default()
        },
        ..EnrichConfig::default()
    }
}

/// Everything downstream of the enricher.
struct Pipeline {
    engine: Engine,
    /// The store first, then every output (`ward_output::Driver`).
    driver: Driver,
    record: Option<BufWriter<File>>,
    record_path: Option<PathBuf>,
    record_errors: u64,
    updates: Vec<FindingUpdate>,
    latencies: Vec<u64>,
    findings_written: u64,
    latency: metrics::Latency,
    /// `[agent] cluster`/`project`, stamped on every finding.
    identity: ward_event::finding::ResourceIdentity,
}

impl Pipeline {
    fn record(&mut self, ev: &Event) {
        if let Some(r) = self.record.as_mut() {
            let line = ward_event::trace::to_line(ev);
            if r.write_all(line.as_bytes())
                .and_then(|_| r.write_all(b"\n"))
                .is_err()
            {
                self.record_errors += 1;
                if self.record_errors == 1 {
                    eprintln!(
                        "ward agent: error: writing the recording {}; recording stopped",
                        self.record_path
                            .as_deref()
                            .unwrap_or(Path::new(""))
                            .display()
                    );
                }
                self.record = None;
            }
        }
    }

    fn process(&mut self, events: &mut Vec<Event>) -> Result<()> {
        for ev in events.drain(..) {
            self.record(&ev);
            let t = ev.time();
            self.engine.process(ev, &mut self.updates);
            for mut u in self.updates.drain(..) {
                if u.is_new {
                    self.latencies.push(t);
                    self.findings_written += 1;
                }
                u.finding.apply_resource_defaults(&self.identity);
                self.driver.push(u.finding, u.is_new);
            }
        }
        // The store first: new findings (one latency sample each) are committed at once, in
        // one transaction with their outbox entries, before any output sees them.
        self.driver.tick();
        if !self.latencies.is_empty() {
            let now = wall_now_ns();
            for t in self.latencies.drain(..) {
                self.latency.observe(now.saturating_sub(t) as f64 / 1e9);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        // Rule decisions still waiting for container metadata are decided now (they alert).
        self.engine.finish(&mut self.updates);
        for mut u in self.updates.drain(..) {
            u.finding.apply_resource_defaults(&self.identity);
            self.driver.push(u.finding, u.is_new);
        }
        self.driver.tick();
        self.driver.finish();
        if let Some(r) = self.record.as_mut() {
            r.flush().context("writing the recording")?;
        }
        Ok(())
    }
}

pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let mut cfg = WardConfig::load_or_default(args.config.as_deref())?;
    if let Some(n) = args.node_name.as_ref().filter(|n| !n.is_empty()) {
        cfg.agent.node_name = n.clone();
    }
    let output_specs = crate::cmd::outputs::specs(&cfg, &args.output, true)?;
    // Every output is opened (files, sockets, HTTP clients, keys, CA files) before the
    // sensor loads: a misconfigured one is a startup error naming its key.
    let node_name = if cfg.agent.node_name.is_empty() {
        ward_enrich::host_name()
    } else {
        cfg.agent.node_name.clone()
    };
    let db_path = args.db.clone().unwrap_or_else(crate::default_db);
    let board = ward_output::format::HealthBoard::default();
    let sinks = crate::cmd::outputs::sinks(
        &output_specs,
        &crate::cmd::outputs::context(&node_name, Some(&db_path), board.clone()),
    )?;
    let intel = load_intel(&args.intel, &args.url_feeds)?;
    let url_feeds = crate::cmd::rules::url_feeds(&intel);
    // Rule files that do not load stop the agent here, with every problem's file and line.
    let rules = crate::cmd::rules::configured(&cfg.detectors.rules, url_feeds)?;
    if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // One writer per store, taken before anything else so a second agent fails at once.
    let _writer_lock = ward_store::WriterLock::acquire(&db_path, "ward agent")?;
    let store = crate::cmd::db::open_store(&db_path, args.recreate_corrupt_db)?;
    let record = match &args.record {
        Some(p) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("creating recording {}", p.display()))?,
        )),
        None => None,
    };
    let metrics_addr = args
        .metrics_addr
        .clone()
        .unwrap_or_else(|| cfg.agent.metrics_addr.clone());

    install_signal_handlers();
    // The fanotify watch before the sensor: every exec record then has its event.
    let enrich_cfg = enrich_config(&cfg);
    let exec_files = ward_enrich::enricher::open_exec_files(&enrich_cfg);
    let mut sensor = Sensor::load(&SensorConfig {
        ring_buffer_bytes: cfg.agent.ring_buffer_bytes,
        hold_memfd: cfg.agent.hold_memfd_execs,
        hold_scripts: cfg.agent.hold_python_script_execs,
        ..SensorConfig::default()
    })
    .context("loading the eBPF sensor")?;
    let started = Instant::now();
    let mut enricher = Enricher::with_exec_files(enrich_cfg, *sensor.clock(), exec_files);
    let node = enricher.node().to_string();
    // Finding ids hash the kernel's boot-time stamps on this boot, not wall-clock times from
    // this process's own offset (`ward_event::time::IdClock`).
    let id_clock = ward_event::time::IdClock {
        boot_id: boot_id(),
        offset_ns: sensor.clock().offset_ns() as i64,
    };

    let driver = Driver::new(
        Some(store),
        sinks,
        DriverConfig {
            flush_interval: cfg.agent.store_flush_interval,
            settings: cfg.output.clone(),
            new_at_once: true,
            program: "ward agent",
        },
    )
    .with_context(|| format!("starting the outputs on {}", db_path.display()))?;
    let mut pipe = Pipeline {
        engine: Engine::new(
            &cfg.engine_config(),
            &cfg.detectors,
            Arc::new(intel),
            crate::cmd::model::classifier_for(&cfg, args.model.as_deref())?,
        ),
        driver,
        record,
        record_path: args.record.clone(),
        record_errors: 0,
        updates: Vec::new(),
        latencies: Vec::new(),
        findings_written: 0,
        latency: metrics::Latency::default(),
        identity: args.identity.resolve(&cfg.agent),
    };

    pipe.engine.set_id_clock(Some(id_clock.clone()));
    if let Some(r) = rules {
        pipe.engine.set_rules(r)?;
    }

    // What already runs: lineage and container identity. Loaded after the sensor, so nothing
    // started in between is missed (it may be seen twice, which the table tolerates).
    let snaps = ward_sensor::snapshot_processes().context("reading /proc to seed")?;
    let seeds = enricher.seed(&snaps);
    if let Some(r) = pipe.record.as_mut() {
        let mut header = TraceHeader::new(Some(node.clone()), "ward agent");
        header.seeds = seeds.len() as u64;
        header.boot_id = Some(id_clock.boot_id.clone());
        header.clock_offset_ns = Some(id_clock.offset_ns);
        writeln!(r, "{}", ward_event::trace::to_line(&header)).context("writing the recording")?;
    }
    let n_seeds = seeds.len();
    for s in seeds {
        // Recorded as exec events, counted in the header, so a replay seeds them too.
        let ev = Event::Exec(Box::new(s));
        pipe.record(&ev);
        if let Event::Exec(e) = ev {
            pipe.engine.seed(*e);
        }
    }

    // Loading parsed the kernel's BTF and seeding read all of /proc: give that heap back.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory at the top of the heap / unused pages.
    unsafe {
        libc::malloc_trim(0);
    }

    let metrics_text = Arc::new(Mutex::new(String::new()));
    let metrics_where = if metrics_addr.is_empty() || metrics_addr == "none" {
        "disabled".to_string()
    } else {
        let a = ward_api::prometheus::serve(&metrics_addr, metrics_text.clone())
            .with_context(|| format!("serving metrics on {metrics_addr}"))?;
        format!("http://{a}/metrics")
    };
    let api = match &args.serve {
        Some(addr) => {
            let mut api_cfg = cfg.api.clone();
            if !addr.is_empty() {
                api_cfg.listen = addr.parse().with_context(|| {
                    format!("--serve {addr:?} is not an address like 127.0.0.1:8080")
                })?;
            }
            api_cfg.add_env_tokens();
            let (url, handle) = crate::cmd::serve::spawn_background(api_cfg, &db_path, || {
                STOP.load(Ordering::SeqCst)
            })?;
            eprintln!("ward agent: console: {url}");
            Some(handle)
        }
        None => None,
    };
    // /metrics answers with real figures from the moment the agent says it is ready, not
    // empty until the first one-second refresh.
    let mut health = metrics::Health {
        node: node.clone(),
        ..metrics::Health::default()
    };
    fill_health(&mut health, sensor.stats(), &enricher, &pipe, started);
    if let Ok(mut t) = metrics_text.lock() {
        *t = health.prometheus();
    }
    board.set(health.summary());
    eprintln!(
        "ward agent: ready: node {node}, {n_seeds} running processes seeded, metrics {metrics_where}, findings to {}, store {}{}",
        crate::cmd::outputs::describe(&output_specs),
        db_path.display(),
        args.record
            .as_ref()
            .map(|p| format!(", recording to {}", p.display()))
            .unwrap_or_default()
    );

    let mut raw: Vec<RawEvent> = Vec::with_capacity(4096);
    let mut events: Vec<Event> = Vec::with_capacity(4096);
    let mut last_metrics = Instant::now();
    let mut last_log = Instant::now();
    let mut last_events = 0u64;
    let mut poll_errors = 0u64;
    let log_every = cfg.agent.health_log_interval;

    let batch = cfg.agent.batch_interval;
    let mut pass_started = Instant::now();
    let mut last_pass_busy = false;
    let result: Result<()> = (|| {
        while !STOP.load(Ordering::SeqCst) {
            // Events kept coming: let a batch gather (the ring buffer is readable as soon as
            // one record is in it, so poll alone would return at once, pass after pass). The
            // sleep is on the sensor's doorbell: an urgent record (a socket on stdio, an exec
            // held stopped) or a filling ring ends it at once.
            if last_pass_busy {
                let since = pass_started.elapsed();
                if since < batch {
                    sensor.wait(batch - since);
                }
            }
            pass_started = Instant::now();
            let timeout = if enricher.parked() > 0 {
                Duration::from_millis(1)
            } else {
                // Bounded: 0 would spin, a long one would hold findings back.
                cfg.agent
                    .poll_interval
                    .clamp(Duration::from_millis(1), Duration::from_secs(1))
            };
            if let Err(e) = sensor.poll(&mut raw, timeout) {
                poll_errors += 1;
                if poll_errors <= 10 || poll_errors.is_power_of_two() {
                    eprintln!("ward agent: error: reading the ring buffer: {e}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            last_pass_busy = !raw.is_empty();
            for r in raw.drain(..) {
                enricher.push(r);
            }
            enricher.release(&mut events);
            pipe.process(&mut events)?;

            if last_metrics.elapsed() >= Duration::from_secs(1) {
                let dt = last_metrics.elapsed().as_secs_f64();
                last_metrics = Instant::now();
                let s = sensor.stats();
                health.events_per_sec = (s.events_total - last_events) as f64 / dt;
                last_events = s.events_total;
                fill_health(&mut health, s, &enricher, &pipe, started);
                if let Ok(mut t) = metrics_text.lock() {
                    *t = health.prometheus();
                }
                board.set(health.summary());
                if !log_every.is_zero() && last_log.elapsed() >= log_every {
                    last_log = Instant::now();
                    eprintln!("{}", health.log_line());
                }
                if let Some(r) = pipe.record.as_mut() {
                    let _ = r.flush();
                }
            }
        }
        Ok(())
    })();

    // Shutdown (signal or fatal sink error): drain what the kernel still holds and flush.
    let _ = sensor.poll(&mut raw, Duration::ZERO);
    for r in raw.drain(..) {
        enricher.push(r);
    }
    enricher.flush(&mut events);
    let drained = pipe.process(&mut events);
    let finished = pipe.finish();
    fill_health(&mut health, sensor.stats(), &enricher, &pipe, started);
    eprintln!("{}", health.log_line());
    STOP.store(true, Ordering::SeqCst);
    if let Some(h) = api {
        let _ = h.join();
    }
    result?;
    drained?;
    finished?;
    eprintln!("ward agent: stopped");
    Ok(ExitCode::SUCCESS)
}

fn fill_health(
    h: &mut metrics::Health,
    sensor: ward_sensor::SensorStats,
    enricher: &Enricher,
    pipe: &Pipeline,
    started: Instant,
) {
    h.uptime = started.elapsed();
    h.sensor = sensor;
    h.enrich = enricher.stats();
    h.hash = enricher.hash_stats();
    h.exec_files = enricher.exec_files_stats();
    h.metadata = enricher.metadata_stats();
    h.engine = pipe.engine.stats();
    h.parked = enricher.parked();
    h.findings_written = pipe.findings_written;
    let st = pipe.driver.store_stats();
    h.store_errors = st.errors;
    h.store_pending = st.pending;
    h.store_dropped = st.dropped;
    h.outbox = st;
    h.outputs = pipe.driver.sink_stats();
    h.latency = pipe.latency.clone();
    let (rss, cpu) = metrics::self_usage();
    h.rss_bytes = rss;
    h.cpu_seconds = cpu;
}
