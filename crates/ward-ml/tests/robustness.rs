//! Hostile input: random bytes, invalid UTF-8, deep nesting, thousands of nested encodings and
//! a 100 MB input must finish in bounded time without panicking. Runs in CI (debug build, so the
//! time bounds are generous; release is ~20x faster).
use std::io::Write;
use std::time::{Duration, Instant};

use ward_ml::features::{Extractor, DIM};

/// SplitMix64 (the same sequence as `ward_ml_train::templates::Rng`, so the inputs are the
/// ones this test always used; the inference crate has no templates).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Standard padded base64.
fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn zero_model() -> &'static ward_ml::Model {
    static M: std::sync::OnceLock<ward_ml::Model> = std::sync::OnceLock::new();
    // Threshold above any zero-weight score, so `scan` also scores every window.
    M.get_or_init(|| {
        ward_ml::Model::new(
            ward_ml::model::blank_manifest("zero", 0.99),
            0.0,
            vec![0.0; DIM],
        )
    })
}

fn check(input: &[u8], budget: Duration) {
    let t0 = Instant::now();
    let r = ward_ml::scan(zero_model(), input);
    assert!(!r.malicious && r.score.is_finite());
    let a = Extractor::new().analyze(input);
    let dt = t0.elapsed();
    assert!(dt < budget, "took {dt:?} for {} bytes", input.len());
    let f = &a.features;
    assert_eq!(f.idx.len(), f.val.len());
    assert!(
        f.idx.windows(2).all(|w| w[0] < w[1]),
        "indices sorted and unique"
    );
    assert!(f.idx.iter().all(|&i| (i as usize) < DIM));
    assert!(f.val.iter().all(|v| v.is_finite()));
    assert!(a.layers <= Extractor::new().limits.max_layers);
}

#[test]
fn random_bytes_and_invalid_utf8() {
    let mut rng = Rng::new(42);
    for n in [0usize, 1, 7, 100, 4096, 65536] {
        for _ in 0..20 {
            let v: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            check(&v, Duration::from_secs(5));
            // Mostly-text with invalid UTF-8 sprinkled in.
            let t: Vec<u8> = (0..n)
                .map(|_| match rng.below(20) {
                    0 => 0xff,
                    1 => b'\'',
                    2 => b'\\',
                    3 => b'(',
                    _ => {
                        let alphabet = b"abc =()[],'\"\n#\\x0123456789+chr";
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect();
            check(&t, Duration::from_secs(5));
        }
    }
}

#[test]
fn thousands_of_nested_encodings() {
    // 2,000 layers of zlib+base64 (size stays small because zlib compresses base64 text).
    let mut s = b"import os\nos.system('id')\n".to_vec();
    for _ in 0..2000 {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&s).unwrap();
        let z = e.finish().unwrap();
        s = format!(
            "import zlib,base64\nexec(zlib.decompress(base64.b64decode('{}')))\n",
            base64_encode(&z)
        )
        .into_bytes();
        if s.len() > 400_000 {
            break;
        }
    }
    check(&s, Duration::from_secs(20));
    // Pure base64-of-base64 nesting, bounded by size.
    let mut s = b"print('x')".to_vec();
    for _ in 0..40 {
        s = base64_encode(&s).into_bytes();
        if s.len() > 2_000_000 {
            break;
        }
    }
    check(&s, Duration::from_secs(30));
}

#[test]
fn deep_syntax_nesting() {
    for unit in [
        &b"("[..],
        b"[",
        b"[(",
        b"[-",
        b"[~",
        b"exec(",
        b"'",
        b"\"\"\"",
        b"\\",
        b"chr(1)+",
        b"[1,",
        b"[1<<",
    ] {
        let s: Vec<u8> = unit.iter().copied().cycle().take(300_000).collect();
        check(&s, Duration::from_secs(20));
    }
}

#[test]
fn huge_input_is_windowed() {
    let mut s = Vec::with_capacity(100 << 20);
    let line = b"x = base64.b64decode('aW1wb3J0IG9zOyBvcy5zeXN0ZW0oJ2lkJyk=') # filler\n";
    while s.len() < 100 << 20 {
        s.extend_from_slice(line);
    }
    let t0 = Instant::now();
    let a = Extractor::new().analyze(&s);
    assert!(a.truncated);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}
