//! A `ward agent` process for end-to-end tests and benchmarks: started on a private database,
//! findings file and config in a temporary directory, ready once its log says so, read
//! through its findings file, log and Prometheus endpoint, stopped with SIGTERM.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::TestkitError;

/// How to start the agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Intel feeds (`--intel`).
    pub feeds: Vec<PathBuf>,
    /// URL feeds (`--url-feed`).
    pub url_feeds: Vec<PathBuf>,
    /// Extra TOML: top-level sections, or keys of `[agent]` when `agent_keys` is set.
    pub toml: String,
    /// `toml` holds keys of `[agent]` (appended after the options this module sets there).
    pub agent_keys: bool,
    /// `[agent] health_log_interval`.
    pub health_log_interval: String,
    /// `--serve 127.0.0.1:0`: the API and console inside the agent.
    pub serve: bool,
    /// `--record DIR/recording.jsonl`.
    pub record: bool,
    /// Kill the agent when the test process dies (PR_SET_PDEATHSIG through a thread that lives
    /// as long as the process).
    pub tied: bool,
    /// How long to wait for "ward agent: ready".
    pub ready_timeout: Duration,
    /// Extra environment variables for the agent.
    pub env: Vec<(String, String)>,
    /// Extra `--output` flags besides the JSON Lines file (which is always the first).
    pub outputs: Vec<String>,
    /// Outputs come from `[[outputs]]` in `toml` instead: the JSON Lines file is then added
    /// as one more `[[outputs]]` entry and no `--output` flag is passed.
    pub outputs_in_config: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            feeds: Vec::new(),
            url_feeds: Vec::new(),
            toml: String::new(),
            agent_keys: false,
            health_log_interval: "0s".into(),
            serve: false,
            record: false,
            tied: true,
            ready_timeout: Duration::from_secs(30),
            env: Vec::new(),
            outputs: Vec::new(),
            outputs_in_config: false,
        }
    }
}

/// A running `ward agent`.
pub struct WardAgent {
    child: Child,
    dir: tempfile::TempDir,
    /// `host:port` of the Prometheus endpoint.
    metrics_addr: String,
}

impl WardAgent {
    /// Starts `ward` (the binary) as `ward agent` and waits until it is ready.
    pub fn start(ward: &Path, opts: &AgentOptions) -> Result<WardAgent, TestkitError> {
        let dir = tempfile::tempdir().map_err(|e| TestkitError::io("tempdir", e))?;
        Self::start_in(ward, opts, dir)
    }

    /// [`start`](Self::start) in the directory of an earlier agent (its database, findings
    /// file and config): a restart.
    pub fn start_in(
        ward: &Path,
        opts: &AgentOptions,
        dir: tempfile::TempDir,
    ) -> Result<WardAgent, TestkitError> {
        let cfg = dir.path().join("ward.toml");
        let agent_section = format!(
            "[agent]\nmetrics_addr = \"127.0.0.1:0\"\nhealth_log_interval = \"{}\"\n",
            opts.health_log_interval
        );
        let mut text = if opts.agent_keys {
            format!("{agent_section}{}\n", opts.toml)
        } else {
            format!("{}\n{agent_section}", opts.toml)
        };
        let jsonl = dir.path().join("findings.jsonl");
        if opts.outputs_in_config {
            text.push_str(&format!(
                "\n[[outputs]]\nkind = \"file\"\npath = \"{}\"\n",
                jsonl.display()
            ));
        }
        std::fs::write(&cfg, text).map_err(|e| TestkitError::io(cfg.display().to_string(), e))?;
        let log_path = dir.path().join("agent.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| TestkitError::io(log_path.display().to_string(), e))?;
        let mut cmd = Command::new(ward);
        cmd.arg("agent").arg("--db").arg(dir.path().join("ward.db"));
        if !opts.outputs_in_config {
            cmd.arg("--output")
                .arg(format!("jsonl:{}", jsonl.display()));
            for o in &opts.outputs {
                cmd.arg("--output").arg(o);
            }
        }
        cmd.arg("--config")
            .arg(&cfg)
            .env_remove("WARD_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        for f in &opts.feeds {
            cmd.arg("--intel").arg(f);
        }
        for f in &opts.url_feeds {
            cmd.arg("--url-feed").arg(f);
        }
        if opts.serve {
            cmd.arg("--serve").arg("127.0.0.1:0");
        }
        if opts.record {
            cmd.arg("--record").arg(dir.path().join("recording.jsonl"));
        }
        let child = if opts.tied {
            spawn_tied(cmd)
        } else {
            cmd.spawn()
        }
        .map_err(|e| TestkitError::io(format!("starting {} agent", ward.display()), e))?;
        let mut agent = WardAgent {
            child,
            dir,
            metrics_addr: String::new(),
        };
        let deadline = Instant::now() + opts.ready_timeout;
        loop {
            let log = agent.log();
            if let Some(line) = log.lines().find(|l| l.starts_with("ward agent: ready")) {
                agent.metrics_addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("http://"))
                    .and_then(|w| w.split('/').next())
                    .unwrap_or_default()
                    .to_string();
                return Ok(agent);
            }
            if let Ok(Some(st)) = agent.child.try_wait() {
                return Err(TestkitError::Unexpected {
                    what: "ward agent exit".into(),
                    detail: format!("exited with {st} before it was ready:\n{log}"),
                });
            }
            if Instant::now() >= deadline {
                let _ = agent.child.kill();
                let _ = agent.child.wait();
                return Err(TestkitError::Timeout {
                    what: "ward agent: ready".into(),
                    timeout: opts.ready_timeout,
                    partial: log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's temporary directory (database, findings, log, recording).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the agent wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The findings written so far (JSON Lines; a partly written last line is skipped).
    pub fn findings(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("findings.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The Prometheus text of the agent's metrics endpoint.
    pub fn scrape(&self) -> Result<String, TestkitError> {
        let io = |e| TestkitError::io(format!("GET http://{}/metrics", self.metrics_addr), e);
        let mut s = std::net::TcpStream::connect(&self.metrics_addr).map_err(io)?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_addr
        )
        .map_err(io)?;
        let mut r = String::new();
        s.read_to_string(&mut r).map_err(io)?;
        Ok(r)
    }

    /// The sum of the samples of metric lines starting with `name` (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        self.scrape()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGTERM, then waits up to 20 s; returns the exit status and the directory.
    pub fn stop(mut self) -> Result<(ExitStatus, tempfile::TempDir), TestkitError> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self
                .child
                .try_wait()
                .map_err(|e| TestkitError::io("waiting for ward agent", e))?
            {
                return Ok((st, self.dir));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return Err(TestkitError::Timeout {
                    what: "ward agent to stop on SIGTERM".into(),
                    timeout: Duration::from_secs(20),
                    partial: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to the agent.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), 0 when unreadable.
pub fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` with PR_SET_PDEATHSIG = SIGKILL from a thread that never exits (the signal is
/// tied to the spawning thread), so the child dies with the test process.
pub fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::spawn(move || {
            for (mut cmd, back) in rx {
                // SAFETY: prctl is async-signal-safe; nothing else runs in pre_exec.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = back.send(cmd.spawn());
            }
            loop {
                std::thread::park();
            }
        });
        Mutex::new(tx)
    });
    let (back, rx) = mpsc::channel();
    tx.lock()
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))?
        .send((cmd, back))
        .map_err(|_| std::io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread gone"))?
}
