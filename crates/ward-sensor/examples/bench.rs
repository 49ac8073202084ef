//! Quick measurements (root): per-exec overhead of the sensor, decode rate,
//! kernel drops.
//!
//! `cargo run --release -p ward-sensor --example bench -- [EXECS] [ROUNDS]`

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ward_sensor::{RawEvent, Sensor, SensorConfig, SensorStats};

/// CPU time (user + sys) of this process and its waited-for children.
fn cpu_time() -> Duration {
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: zeroed rusage is a valid out-parameter.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer.
        unsafe { libc::getrusage(who, &mut ru) };
        for tv in [ru.ru_utime, ru.ru_stime] {
            total += Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
        }
    }
    total
}

/// Returns (wall, cpu) for n fork+exec of /bin/true.
fn exec_loop(n: usize) -> (Duration, Duration) {
    let c = cpu_time();
    let t = Instant::now();
    for _ in 0..n {
        let st = Command::new("/bin/true").status().expect("spawn /bin/true");
        assert!(st.success());
    }
    (t.elapsed(), cpu_time() - c)
}

/// run_time_ns / run_cnt of the ward_* programs (kernel.bpf_stats_enabled=1).
fn bpf_prog_stats() -> Vec<(String, u64, u64)> {
    let Ok(out) = Command::new("bpftool").args(["prog", "show"]).output() else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = f.iter().position(|w| *w == "name") else {
            continue;
        };
        let name = f.get(i + 1).copied().unwrap_or("");
        if !name.starts_with("ward_") {
            continue;
        }
        let get = |k: &str| {
            f.iter()
                .position(|w| *w == k)
                .and_then(|j| f.get(j + 1))
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0)
        };
        v.push((name.to_string(), get("run_time_ns"), get("run_cnt")));
    }
    v
}

struct Reader {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(SensorStats, u64, Duration)>,
}

/// A dedicated reader thread: polls every 10 ms, decodes, counts.
fn start_reader(mut sensor: Sensor, busy_poll: bool) -> Reader {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let handle = thread::spawn(move || {
        let mut buf = Vec::with_capacity(4096);
        let mut execs = 0u64;
        let mut busy = Duration::ZERO;
        while !s2.load(Ordering::Relaxed) {
            buf.clear();
            if busy_poll {
                // Timed non-blocking drains (decode throughput).
                let t = Instant::now();
                if sensor.poll(&mut buf, Duration::ZERO).expect("poll") > 0 {
                    busy += t.elapsed();
                } else {
                    thread::sleep(Duration::from_millis(1));
                }
            } else {
                // The production pattern: short timed waits.
                sensor
                    .poll(&mut buf, Duration::from_millis(10))
                    .expect("poll");
            }
            execs += buf
                .iter()
                .filter(|e| matches!(e, RawEvent::Exec(_)))
                .count() as u64;
        }
        // final drain
        buf.clear();
        sensor.poll(&mut buf, Duration::ZERO).expect("poll");
        execs += buf
            .iter()
            .filter(|e| matches!(e, RawEvent::Exec(_)))
            .count() as u64;
        (sensor.stats(), execs, busy)
    });
    Reader { stop, handle }
}

fn per_exec_us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(5000);
    let rounds = args.get(1).copied().unwrap_or(3);

    // Warm up the page cache and the allocator.
    exec_loop(200);

    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
    println!("fork+exec /bin/true x {n}, {rounds} rounds (interleaved)");
    let (mut wall_b, mut wall_w, mut cpu_b, mut cpu_w) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        let (bw, bc) = exec_loop(n);
        let sensor = Sensor::load(&SensorConfig::default()).expect("load sensor");
        let reader = start_reader(sensor, false);
        let (ww, wc) = exec_loop(n);
        let progs = bpf_prog_stats();
        thread::sleep(Duration::from_millis(50));
        reader.stop.store(true, Ordering::Relaxed);
        let (stats, execs, _) = reader.handle.join().unwrap();
        println!(
            "round {r}: wall {:.1} -> {:.1} us/exec, cpu {:.1} -> {:.1} us/exec; exec events {execs}, kernel drops {}, decode errors {}",
            per_exec_us(bw, n), per_exec_us(ww, n), per_exec_us(bc, n), per_exec_us(wc, n),
            stats.kernel_drops, stats.decode_errors
        );
        for (name, ns, cnt) in progs.iter().filter(|p| p.2 > 0) {
            println!(
                "    {name}: {cnt} runs, {:.2} us/run",
                *ns as f64 / 1e3 / *cnt as f64
            );
        }
        wall_b.push(per_exec_us(bw, n));
        wall_w.push(per_exec_us(ww, n));
        cpu_b.push(per_exec_us(bc, n));
        cpu_w.push(per_exec_us(wc, n));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (b, w) = (med(&mut wall_b), med(&mut wall_w));
    let (cb, cw) = (med(&mut cpu_b), med(&mut cpu_w));
    println!(
        "median wall: without {b:.1}, with {w:.1} us/exec ({:+.1}%); median cpu: without {cb:.1}, with {cw:.1} us/exec ({:+.1}%)",
        (w / b - 1.0) * 100.0,
        (cw / cb - 1.0) * 100.0
    );

    // Decode throughput: a storm of dup2(fd, 1) (one FdReplaced record each)
    // from this process, read by the reader thread.
    let sensor = Sensor::load(&SensorConfig::default()).expect("load sensor");
    let reader = start_reader(sensor, true);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: plain fd syscall.
    let saved = unsafe { libc::dup(1) };
    let storm = 2_000_000u64;
    let t = Instant::now();
    for _ in 0..storm {
        // SAFETY: plain fd syscalls on valid fds.
        unsafe { libc::dup2(devnull.as_raw_fd(), 1) };
    }
    let gen = t.elapsed();
    // SAFETY: restore stdout.
    unsafe {
        libc::dup2(saved, 1);
        libc::close(saved);
    }
    thread::sleep(Duration::from_millis(100));
    reader.stop.store(true, Ordering::Relaxed);
    let t_all = t.elapsed();
    let (stats, _, busy) = reader.handle.join().unwrap();
    let got = stats
        .events
        .iter()
        .find(|(k, _)| *k == ward_sensor::EventKind::FdReplaced)
        .map(|(_, n)| *n)
        .unwrap_or(0);
    println!(
        "dup2 storm: {storm} dup2 in {:.2} s ({:.0}/s generated), {got} fd events decoded, kernel drops {}, reader busy {:.2} s => {:.0} events/s decoded while busy ({:.2} s wall incl. 100 ms tail)",
        gen.as_secs_f64(),
        storm as f64 / gen.as_secs_f64(),
        stats.kernel_drops,
        busy.as_secs_f64(),
        got as f64 / busy.as_secs_f64().max(1e-9),
        t_all.as_secs_f64()
    );

    // Decode cost of a realistic exec record (paths, 20 args, socket stdio).
    let rec = synthetic_exec_record();
    let iters = 200_000;
    let t = Instant::now();
    let mut ok = 0usize;
    for _ in 0..iters {
        ok += ward_sensor::decode(std::hint::black_box(&rec)).is_ok() as usize;
    }
    let d = t.elapsed();
    assert_eq!(ok, iters);
    println!(
        "exec record decode: {:.0} records/s ({:.2} us each, {} bytes)",
        iters as f64 / d.as_secs_f64(),
        d.as_secs_f64() * 1e6 / iters as f64,
        rec.len()
    );
}

fn synthetic_exec_record() -> Vec<u8> {
    use ward_sensor::abi::*;
    // SAFETY: all-zero is a valid ward_exec_head (integers and arrays).
    let mut h: ward_exec_head = unsafe { std::mem::zeroed() };
    h.hdr.kind = WARD_EV_EXEC;
    h.hdr.abi_version = WARD_ABI_VERSION;
    let filename: &[u8] = b"/usr/local/bin/python3";
    let exe_path: &[u8] = b"python3.11\0bin\0local\0usr\0";
    let cwd: &[u8] = b"app\0srv\0";
    let argv: Vec<u8> = (0..20)
        .flat_map(|i| format!("--option-{i}=value\0").into_bytes())
        .collect();
    h.filename_len = filename.len() as u16;
    h.exe_path_len = exe_path.len() as u16;
    h.cwd_len = cwd.len() as u16;
    h.argv_len = argv.len() as u16;
    h.hdr.size =
        (WARD_EXEC_HEAD_SIZE + filename.len() + exe_path.len() + cwd.len() + argv.len()) as u32;
    h.argc = 20;
    h.fds[0].kind = WARD_FD_INET;
    h.fds[0].sock_type = 1;
    h.fds[0].local.family = 2;
    h.fds[0].remote.family = 2;
    h.comm[..7].copy_from_slice(b"python3");
    // SAFETY: reading the bytes of a repr(C) struct without padding.
    let mut rec = unsafe {
        std::slice::from_raw_parts(
            (&h as *const ward_exec_head).cast::<u8>(),
            std::mem::size_of_val(&h),
        )
    }
    .to_vec();
    for part in [filename, exe_path, cwd, &argv[..]] {
        rec.extend_from_slice(part);
    }
    rec
}
