//! Load and lookup benchmark for ward-intel, with a `HashSet<[u8; 32]>`
//! baseline. Run: `cargo bench -p ward-intel --bench load`.
//! Optional argument: number of plain hashes (default 10 000 000).

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Instant;

use ward_intel::{Feed, FeedFormat};

const PLAIN_N: usize = 10_000_000;
const COMMENT_N: usize = 1_000_000;
const LOOKUPS: usize = 1_000_000;
const FAMILIES: usize = 2_000;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th pseudo-random digest of a stream: random access, so hits can
/// be regenerated without keeping the list.
fn digest(seed: u64, i: u64) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (k, chunk) in d.chunks_exact_mut(8).enumerate() {
        let w =
            splitmix64(seed ^ (i.wrapping_mul(4) + k as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    d
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, d: &[u8; 32]) {
    for &b in d {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Baseline decoder: the first 64 bytes of a line as hex.
fn decode(line: &[u8]) -> Option<[u8; 32]> {
    let hexpart = line.get(..64)?;
    let mut d = [0u8; 32];
    for (o, p) in d.iter_mut().zip(hexpart.chunks_exact(2)) {
        *o = (unhex(p[0])? << 4) | unhex(p[1])?;
    }
    Some(d)
}

/// (VmRSS, VmHWM) in bytes.
fn mem() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); returns whether it did.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

struct Phase {
    rss0: u64,
    peak_reset: bool,
    t: Instant,
}

impl Phase {
    fn start() -> Phase {
        let peak_reset = reset_peak();
        Phase {
            rss0: mem().0,
            peak_reset,
            t: Instant::now(),
        }
    }

    /// (seconds, peak RSS delta, retained RSS delta)
    fn end(self) -> (f64, u64, u64) {
        let secs = self.t.elapsed().as_secs_f64();
        let (rss, hwm) = mem();
        let peak = if self.peak_reset {
            hwm.saturating_sub(self.rss0)
        } else {
            rss.saturating_sub(self.rss0)
        };
        (secs, peak, rss.saturating_sub(self.rss0))
    }
}

fn time_lookups(
    name: &str,
    n: usize,
    mut f: impl FnMut(&[u8; 32]) -> bool,
    keys: &[[u8; 32]],
    expect: bool,
) {
    // Warm-up pass over a prefix.
    for k in keys.iter().take(10_000) {
        black_box(f(black_box(k)));
    }
    let t = Instant::now();
    let mut found = 0usize;
    for k in keys {
        found += f(black_box(k)) as usize;
    }
    let ns = t.elapsed().as_nanos() as f64 / keys.len() as f64;
    let want = if expect { keys.len() } else { 0 };
    println!(
        "  {name:<28} {ns:>8.1} ns/op   ({found}/{} found, expected {want}; index of {n})",
        keys.len()
    );
    assert_eq!(found, want, "{name}: wrong number of matches");
}

fn hashset_baseline(input: &[u8], n: usize, hits: &[[u8; 32]], misses: &[[u8; 32]]) {
    let ph = Phase::start();
    let mut set: HashSet<[u8; 32]> = HashSet::new();
    for line in input.split(|&b| b == b'\n') {
        if let Some(d) = decode(line) {
            set.insert(d);
        }
    }
    let (secs, peak, retained) = ph.end();
    // hashbrown: power-of-two buckets at 7/8 load, 32 bytes + 1 control
    // byte each (plus a group of trailing control bytes).
    let buckets = (set.capacity() * 8 / 7).next_power_of_two();
    let est = buckets * 33 + 16;
    println!(
        "  HashSet<[u8;32]> load        {secs:>8.3} s     {:>6.2} M hashes/s   ({} hashes)",
        set.len() as f64 / secs / 1e6,
        set.len()
    );
    println!(
        "  HashSet<[u8;32]> memory      {:>8.1} MB est. table ({buckets} buckets); peak RSS +{:.1} MB, retained RSS +{:.1} MB",
        mb(est as u64),
        mb(peak),
        mb(retained)
    );
    time_lookups("HashSet lookup (hit)", n, |k| set.contains(k), hits, true);
    time_lookups(
        "HashSet lookup (miss)",
        n,
        |k| set.contains(k),
        misses,
        false,
    );
}

fn ward_load(
    name: &str,
    input: &[u8],
    expect_format: FeedFormat,
    n: usize,
    hits: &[[u8; 32]],
    misses: &[[u8; 32]],
) {
    let ph = Phase::start();
    let feed = Feed::parse(name, input, None).expect("bench feed loads");
    let (secs, peak, retained) = ph.end();
    let r = feed.report();
    assert_eq!(r.format, expect_format);
    assert_eq!(r.malformed, 0);
    println!(
        "  ward-intel load              {secs:>8.3} s     {:>6.2} M hashes/s, {:.0} MB/s input   ({} hashes, {} duplicates)",
        r.hashes as f64 / secs / 1e6,
        input.len() as f64 / secs / 1e6,
        r.hashes,
        r.duplicates
    );
    println!(
        "  ward-intel memory            {:>8.1} MB index ({:.2} bytes/hash: 16-byte entries + bucket table + comments); peak RSS +{:.1} MB, retained RSS +{:.1} MB",
        mb(feed.memory_bytes() as u64),
        feed.memory_bytes() as f64 / feed.len().max(1) as f64,
        mb(peak),
        mb(retained)
    );
    time_lookups(
        "ward-intel lookup (hit)",
        n,
        |k| feed.contains(k),
        hits,
        true,
    );
    time_lookups(
        "ward-intel lookup (miss)",
        n,
        |k| feed.contains(k),
        misses,
        false,
    );
    // Comment resolution path, as used for findings.
    let t = Instant::now();
    let mut with_comment = 0usize;
    for k in hits {
        if let Some(m) = feed.lookup(black_box(k)) {
            with_comment += m.comment.is_some() as usize;
        }
    }
    println!(
        "  ward-intel lookup+comment    {:>8.1} ns/op   ({with_comment} with comment)",
        t.elapsed().as_nanos() as f64 / hits.len() as f64
    );
}

fn keys(seed: u64, n: usize) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
    let stride = (n / LOOKUPS.min(n)).max(1) as u64;
    let count = LOOKUPS.min(n) as u64;
    let hits = (0..count)
        .map(|i| digest(seed, (i * stride + 7) % n as u64))
        .collect();
    let misses = (0..LOOKUPS as u64)
        .map(|i| digest(seed, n as u64 + i))
        .collect();
    (hits, misses)
}

fn main() {
    // `cargo bench` passes `--bench`; take the first numeric argument.
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(PLAIN_N);

    println!(
        "ward-intel load benchmark (entry size {} bytes, key {} bytes)",
        16,
        ward_intel::KEY_BYTES
    );

    // --- plain format ---
    let seed = 0x5EED_0001;
    let t = Instant::now();
    let mut input = Vec::with_capacity(n * 65);
    for i in 0..n as u64 {
        push_hex(&mut input, &digest(seed, i));
        input.push(b'\n');
    }
    let (hits, misses) = keys(seed, n);
    println!(
        "\n[plain] {n} sha256 lines, {:.1} MB input (generated in {:.2} s)",
        mb(input.len() as u64),
        t.elapsed().as_secs_f64()
    );
    ward_load("plain", &input, FeedFormat::Plain, n, &hits, &misses);
    hashset_baseline(&input, n, &hits, &misses);
    drop(input);

    // --- HASH;COMMENT format ---
    let n = COMMENT_N;
    let seed = 0x5EED_0002;
    let families: Vec<String> = (0..FAMILIES)
        .map(|k| format!("Win.Trojan.Family{k:04} - sample from campaign {}", k % 37))
        .collect();
    let mut input = Vec::with_capacity(n * 120);
    for i in 0..n as u64 {
        push_hex(&mut input, &digest(seed, i));
        input.push(b';');
        input.extend_from_slice(families[(splitmix64(i) % FAMILIES as u64) as usize].as_bytes());
        input.push(b'\n');
    }
    let (hits, misses) = keys(seed, n);
    println!(
        "\n[hash-comment] {n} HASH;COMMENT lines, {FAMILIES} distinct comments, {:.1} MB input",
        mb(input.len() as u64)
    );
    ward_load(
        "hash-comment",
        &input,
        FeedFormat::HashComment,
        n,
        &hits,
        &misses,
    );
    hashset_baseline(&input, n, &hits, &misses);
}
