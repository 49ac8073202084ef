//! Speed of feature extraction + inference (the `classify` path the agent calls).
//!
//! `cargo bench -p ward-ml --bench speed` prints p50/p99 for a 20 KB and a 1 MB script and the
//! model file size. Targets: p99 <= 2 ms (20 KB) and <= 20 ms (1 MB).
use std::path::PathBuf;
use std::time::Instant;

use ward_ml::{Model, PythonClassifier, ScriptClassifier};
use ward_ml_train::templates::{self, base64_encode};

fn script_of_size(n: usize, mixed: bool) -> Vec<u8> {
    let dir = ward_ml_train::train::templates_dir();
    let mut parts: Vec<String> = Vec::new();
    let files: &[(&str, bool)] = if mixed {
        &[
            ("benign-templates.tpl.gz", false),
            ("runtime-templates.tpl.gz", true),
        ]
    } else {
        &[("benign-templates.tpl.gz", false)]
    };
    for &(f, obf) in files {
        if let Ok(ts) = templates::load_templates(&dir.join(f)) {
            for t in &ts {
                parts.extend(
                    templates::variants(t, 3, 1, obf)
                        .into_iter()
                        .map(|v| v.text),
                );
            }
        }
    }
    // Some realistic bulk: an embedded base64 asset.
    parts.push(format!("ASSET = '{}'\n", base64_encode(&[7u8; 3000])));
    let mut out = Vec::with_capacity(n + 4096);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(parts[i % parts.len()].as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out.truncate(n);
    out
}

/// CPU time of this thread (excludes time the scheduler gave to other processes).
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/python/model.bin");
    let model = Model::load(&path).unwrap_or_else(|e| {
        eprintln!("WARNING: {e}; timing with a zero-weight model (retrain to ship)");
        Model::new(
            ward_ml::model::blank_manifest("zero", 0.5),
            0.0,
            vec![0.0; ward_ml::features::DIM],
        )
    });
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let clf = PythonClassifier::new(model);
    println!(
        "model {} ({} bytes, {:.2} MiB)",
        clf.model_id(),
        size,
        size as f64 / 1048576.0
    );
    // "mixed": benign code interleaved with malicious variants, half of them obfuscated (many
    // decodable layers: the worst realistic case); "plain": benign code only.
    for (label, n, mixed, iters) in [
        ("20 KB mixed", 20 * 1024, true, 400),
        ("20 KB plain", 20 * 1024, false, 400),
        ("1 MB plain", 1 << 20, false, 60),
        ("1 MB mixed", 1 << 20, true, 60),
        // No target: the windows are chosen over the whole script, so time grows with one
        // linear pattern pass per MB beyond the bounded analyses.
        ("10 MB plain", 10 << 20, false, 20),
    ] {
        let s = script_of_size(n, mixed);
        for _ in 0..3 {
            std::hint::black_box(clf.classify(&s));
        }
        let mut t = Vec::with_capacity(iters);
        let mut cpu = Vec::with_capacity(iters);
        let mut verdict = None;
        for _ in 0..iters {
            let c0 = thread_cpu_ms();
            let t0 = Instant::now();
            verdict = Some(std::hint::black_box(clf.classify(&s)));
            t.push(t0.elapsed().as_secs_f64() * 1e3);
            cpu.push(thread_cpu_ms() - c0);
        }
        let v = verdict.expect("ran");
        println!(
            "{label:>12}: wall p50 {:.3} ms p99 {:.3} ms | cpu p50 {:.3} ms p99 {:.3} ms | score {:.3} malicious {}",
            percentile(&mut t, 0.5),
            percentile(&mut t, 0.99),
            percentile(&mut cpu, 0.5),
            percentile(&mut cpu, 0.99),
            v.score,
            v.malicious
        );
    }
}
