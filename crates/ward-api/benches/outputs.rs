//! Findings through four outputs at once (issue 14's numbers): a SCC JSON Lines file, a
//! webhook to a local receiver, Falco JSON to a local falcosidekick-style receiver, and an OCSF
//! file, all behind the shared driver on a real SQLite store.
//!
//! ```sh
//! cargo bench -p ward-api --bench outputs            # 100k findings (WARD_BENCH_FINDINGS=N)
//! ```
//!
//! Prints throughput (findings/s until all four outputs acknowledged everything), p50/p99
//! enqueue-to-ack latency per output (from `Driver::push` to the sink's successful write), and
//! the process RSS after a second run of N findings with the webhook receiver down (the
//! outbox full of what it has not acknowledged). Needs a quiet machine for its figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ward_event::Finding;
use ward_output::driver::NamedSink;
use ward_output::format::Context;
use ward_output::spec::{OutputKind, OutputSpec};
use ward_output::{Driver, DriverConfig, FindingSink, Item, OutputSettings, SinkError};
use ward_store::SqliteStore;
use ward_testkit::receiver::{HttpReceiver, Request};

type Pushed = Arc<Mutex<HashMap<String, Instant>>>;

struct Timed {
    inner: Box<dyn FindingSink>,
    pushed: Pushed,
    lat: Arc<Mutex<Vec<f64>>>,
}

impl FindingSink for Timed {
    fn write_batch(&mut self, batch: &[Item]) -> Result<(), SinkError> {
        self.inner.write_batch(batch)?;
        let now = Instant::now();
        let p = self.pushed.lock().unwrap();
        let mut l = self.lat.lock().unwrap();
        for i in batch {
            if let Some(t) = p.get(&i.finding.name) {
                l.push(now.duration_since(*t).as_secs_f64());
            }
        }
        Ok(())
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn finding(template: &Finding, i: usize) -> Finding {
    let mut f = template.clone();
    f.name = format!("{}-{i:07}", template.name);
    f
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|p| (p * 4096) >> 20)
        .unwrap_or(0)
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

fn main() {
    let n: usize = std::env::var("WARD_BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let template: Finding = serde_json::from_str(
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ward-output/tests/golden/input.jsonl"
        ))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ok = Arc::new(|_: &Request| 200u16);
    // The receivers run in this process: what they received is dropped as it comes (counted),
    // so the RSS below is the driver's and the store's, not 200k request bodies kept here.
    let received: Arc<Mutex<Vec<Request>>> = Arc::default();
    let hook = HttpReceiver::start_with_log(0, ok.clone(), received.clone()).unwrap();
    let falco = HttpReceiver::start_with_log(0, ok, received.clone()).unwrap();
    let received_total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (received, total) = (received.clone(), received_total.clone());
        std::thread::spawn(move || loop {
            let n = std::mem::take(&mut *received.lock().unwrap()).len();
            total.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        });
    }
    let rss_at_start = rss_mib();
    let ctx = Context::default();
    let mut specs = Vec::new();
    let mut file = OutputSpec::new(OutputKind::File);
    file.path = Some(dir.path().join("scc.jsonl"));
    specs.push(("file", file));
    let mut wh = OutputSpec::new(OutputKind::Webhook);
    wh.url = Some(hook.url("/hook"));
    specs.push(("webhook", wh));
    let mut fs = OutputSpec::new(OutputKind::Falcosidekick);
    fs.url = Some(falco.url("/"));
    specs.push(("falco", fs));
    let mut oc = OutputSpec::new(OutputKind::File);
    oc.path = Some(dir.path().join("ocsf.jsonl"));
    oc.format = Some(ward_output::Format::Ocsf);
    specs.push(("ocsf", oc));
    let pushed: Pushed = Arc::default();
    let mut lats = Vec::new();
    let mut sinks = Vec::new();
    for (name, s) in &specs {
        let inner = ward_api::outputs::build(s, &ctx, name)
            .or_else(|| ward_output::local::build(s, &ctx, name))
            .unwrap()
            .unwrap();
        let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
        lats.push((name.to_string(), lat.clone()));
        sinks.push(NamedSink {
            name: name.to_string(),
            updates: false,
            sink: Box::new(Timed {
                inner,
                pushed: pushed.clone(),
                lat,
            }),
        });
    }
    let settings = OutputSettings {
        outbox_max_bytes: 64 << 30,
        drain_rate: 1_000_000,
        ..OutputSettings::default()
    };
    let mut d = Driver::new(
        Some(SqliteStore::open(dir.path().join("w.db")).unwrap()),
        sinks,
        DriverConfig {
            flush_interval: Duration::from_millis(100),
            settings,
            program: "bench",
            new_at_once: true,
        },
    )
    .unwrap();
    let t0 = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        for &i in chunk {
            let f = finding(&template, i);
            pushed
                .lock()
                .unwrap()
                .insert(f.name.clone(), Instant::now());
            d.push(f, true);
        }
        d.tick();
    }
    while d.sink_stats().iter().any(|s| s.sent < n as u64) {
        d.tick();
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "outputs: {n} findings through 4 outputs in {secs:.2} s: {:.0} findings/s (all acknowledged)",
        n as f64 / secs
    );
    for (name, l) in &lats {
        let mut v = l.lock().unwrap().clone();
        println!(
            "  {name:8} enqueue-to-ack p50 {:.1} ms, p99 {:.1} ms",
            pct(&mut v, 0.5) * 1e3,
            pct(&mut v, 0.99) * 1e3
        );
    }
    println!(
        "  rss after the run: {} MiB ({} MiB at the start; {} requests received and dropped)",
        rss_mib(),
        rss_at_start,
        received_total.load(std::sync::atomic::Ordering::Relaxed)
    );
    // The webhook receiver down: its outbox fills with a second run.
    drop(hook);
    for i in n..2 * n {
        d.push(finding(&template, i), true);
        if i % 64 == 0 {
            d.tick();
        }
    }
    d.commit();
    d.save_positions();
    let st = d.store_stats();
    println!(
        "  webhook down for {n} more findings: outbox {} findings, {} MiB; rss {} MiB",
        st.outbox_rows,
        st.outbox_bytes >> 20,
        rss_mib()
    );
}
