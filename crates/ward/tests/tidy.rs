//! ARCHITECTURE.md's invariants as checks (in the spirit of rust-analyzer's `tidy`): each test
//! reads the workspace's manifests or sources and fails, naming the file, when a change breaks
//! a rule. Changing a rule means changing the table here and the prose in ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every crate of the workspace and the workspace crates it may depend on (`[dependencies]`
/// and `[build-dependencies]`). Dependencies point one way: a crate only names crates above
/// it in this list.
const LAYERS: &[(&str, &[&str])] = &[
    ("ward-event", &[]),
    ("ward-proctable", &["ward-event"]),
    ("ward-intel", &["ward-event"]),
    ("ward-rules", &["ward-event"]),
    (
        "ward-detect",
        &["ward-event", "ward-proctable", "ward-intel", "ward-rules"],
    ),
    ("ward-store", &["ward-event"]),
    ("ward-output", &["ward-event", "ward-store"]),
    ("ward-sensor", &[]),
    ("ward-enrich", &["ward-event", "ward-sensor"]),
    ("ward-ml", &["ward-event"]),
    ("ward-ml-train", &["ward-ml"]),
    ("ward-api", &["ward-event", "ward-store", "ward-output"]),
    ("ward-testkit", &[]),
    ("ward-bench-agent", &["ward-testkit"]),
    (
        "ward",
        &[
            "ward-event",
            "ward-proctable",
            "ward-intel",
            "ward-detect",
            "ward-store",
            "ward-output",
            "ward-sensor",
            "ward-enrich",
            "ward-ml",
            "ward-ml-train",
            "ward-rules",
            "ward-api",
        ],
    ),
];

/// Crates that speak HTTP. Only `ward-api` serves or sends HTTP; `ward-enrich` is the one
/// exception, as a client of the local container runtime's own API (the Docker Engine API
/// over its unix socket, and CRI's gRPC behind the `cri` feature), because enrichment must
/// not depend on the server crate.
const HTTP_CRATES: &[&str] = &[
    "axum",
    "axum-server",
    "hyper",
    "hyper-util",
    "http",
    "http-body",
    "http-body-util",
    "h2",
    "reqwest",
    "ureq",
    "tonic",
    "warp",
    "actix-web",
    "tower-http",
    "isahc",
    "attohttpc",
    "surf",
];
/// The crate that speaks HTTP, and the one exception (a runtime API client, see above).
const HTTP_CRATE: &str = "ward-api";
const HTTP_RUNTIME_CLIENT: &str = "ward-enrich";
/// Source files outside `ward-api` allowed to write HTTP by hand (the runtime client).
const HTTP_FILES: &[&str] = &[
    "crates/ward-enrich/src/runtime.rs",
    "crates/ward-enrich/src/cri.rs",
];

/// The inference crate (what the agent links) and what it must never pull in, directly or
/// through any dependency: the training crate and the crates only training needs.
const INFERENCE_CRATE: &str = "ward-ml";
const TRAINING_ONLY: &[&str] = &["ward-ml-train", "forust-ml", "zip", "indicatif"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

struct Manifest {
    name: String,
    path: PathBuf,
    /// (dependency, section, optional)
    deps: Vec<(String, &'static str, bool)>,
}

fn manifests() -> Vec<Manifest> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let path = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: not TOML: {e}", path.display()));
        let name = doc["package"]["name"].as_str().unwrap().to_string();
        let mut deps = Vec::new();
        let mut collect = |table: Option<&toml::Value>, section: &'static str| {
            if let Some(t) = table.and_then(|t| t.as_table()) {
                for (k, v) in t {
                    let optional = v.get("optional").and_then(|o| o.as_bool()) == Some(true);
                    let real = v.get("package").and_then(|p| p.as_str()).unwrap_or(k);
                    deps.push((real.to_string(), section, optional));
                }
            }
        };
        collect(doc.get("dependencies"), "dependencies");
        collect(doc.get("build-dependencies"), "build-dependencies");
        collect(doc.get("dev-dependencies"), "dev-dependencies");
        if let Some(targets) = doc.get("target").and_then(|t| t.as_table()) {
            for t in targets.values() {
                collect(t.get("dependencies"), "dependencies");
                collect(t.get("build-dependencies"), "build-dependencies");
                collect(t.get("dev-dependencies"), "dev-dependencies");
            }
        }
        out.push(Manifest { name, path, deps });
    }
    out
}

/// Non-test Rust sources of a crate: `src/**/*.rs`, without `tests.rs` / `*_tests.rs` files
/// and without the inline `#[cfg(test)] mod tests` at the end of a file.
fn sources(crate_dir: &Path) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&crate_dir.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f != "tests.rs" && !f.ends_with("_tests.rs")
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let body = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (p, body)
        })
        .collect()
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn every_crate_has_a_layer_and_a_line_in_the_code_map() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let layers: BTreeMap<&str, _> = LAYERS.iter().copied().collect();
    for m in manifests() {
        assert!(
            layers.contains_key(m.name.as_str()),
            "{}: crate {} is not in tidy.rs LAYERS: give it a place in the dependency order \
             (and ARCHITECTURE.md's code map)",
            rel(&m.path),
            m.name
        );
        assert!(
            arch.contains(&format!("| `{}` |", m.name)),
            "ARCHITECTURE.md's code map has no row for crate {}",
            m.name
        );
    }
}

#[test]
fn workspace_dependencies_point_one_way() {
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let workspace: Vec<String> = manifests().into_iter().map(|m| m.name).collect();
    let mut problems = Vec::new();
    for m in manifests() {
        let allowed = layers.get(m.name.as_str()).copied().unwrap_or(&[]);
        for (dep, section, _) in &m.deps {
            if !workspace.contains(dep) {
                continue;
            }
            let ok = match *section {
                // Tests may use the test kit and any crate below them, never the binary.
                "dev-dependencies" => dep == "ward-testkit" || dep != "ward",
                _ => allowed.contains(&dep.as_str()),
            };
            if !ok {
                problems.push(format!(
                    "{}: {} may not depend on {dep} ({section}); allowed: {allowed:?}",
                    rel(&m.path),
                    m.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_api_crate_speaks_http() {
    let mut problems = Vec::new();
    for m in manifests() {
        for (dep, section, optional) in &m.deps {
            if *section == "dev-dependencies" || !HTTP_CRATES.contains(&dep.as_str()) {
                continue;
            }
            let ok = m.name == HTTP_CRATE || (m.name == HTTP_RUNTIME_CLIENT && *optional);
            if !ok {
                problems.push(format!(
                    "{}: {} depends on the HTTP crate {dep}; only ward-api speaks HTTP (ward-enrich \
                     only behind its optional cri feature)",
                    rel(&m.path),
                    m.name
                ));
            }
        }
        let dir = m.path.parent().unwrap();
        if m.name == HTTP_CRATE || m.name == "ward-testkit" {
            continue; // the server crate; and the dev-only test kit (talks to test servers)
        }
        for (file, text) in sources(dir) {
            let r = rel(&file);
            if HTTP_FILES.contains(&r.as_str()) {
                continue;
            }
            if let Some((n, line)) = text
                .lines()
                .enumerate()
                .find(|(_, l)| l.contains("HTTP/1.") || l.contains("HTTP/2"))
            {
                problems.push(format!(
                    "{r}:{}: writes HTTP by hand ({}); HTTP belongs in ward-api",
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_sensor_touches_the_kernel_and_only_the_binary_uses_anyhow() {
    let mut problems = Vec::new();
    for m in manifests() {
        for (dep, section, _) in &m.deps {
            if *section == "dev-dependencies" {
                continue;
            }
            // The benchmark flips the sensor's ward_pause map: a dev tool, not the product.
            let bpf = matches!(dep.as_str(), "aya" | "aya-obj" | "libbpf-rs" | "libbpf-sys")
                && !matches!(m.name.as_str(), "ward-sensor" | "ward-bench-agent");
            let anyhow = dep == "anyhow" && !matches!(m.name.as_str(), "ward" | "ward-bench-agent");
            if bpf || anyhow {
                problems.push(format!(
                    "{}: {} may not depend on {dep}",
                    rel(&m.path),
                    m.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn detectors_do_no_io() {
    let dir = root().join("crates/ward-detect");
    let banned = [
        "std::fs",
        "File::open",
        "File::create",
        "OpenOptions",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "UnixStream",
        "std::process::Command",
        "std::env::var",
    ];
    let mut problems = Vec::new();
    for (file, text) in sources(&dir) {
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if let Some(b) = banned.iter().find(|b| line.contains(*b)) {
                problems.push(format!("{}:{}: {b}: detectors do no IO", rel(&file), n + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every package `name` depends on in Cargo.lock, transitively (all targets and features the
/// lock file knows: a superset of what any build links).
fn locked_closure(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let lock: toml::Table = toml::from_str(&text).expect("Cargo.lock is TOML");
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in lock["package"].as_array().unwrap() {
        let pname = p["name"].as_str().unwrap().to_string();
        let list = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    // "name" or "name version" (when several versions are locked).
                    .map(|d| d.as_str().unwrap().split(' ').next().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        deps.entry(pname).or_default().extend(list);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        for d in deps.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
            if !seen.contains(d) {
                seen.push(d.clone());
                todo.push(d.clone());
            }
        }
    }
    seen.sort();
    seen
}

#[test]
fn the_inference_crate_links_no_training_code() {
    let closure = locked_closure(INFERENCE_CRATE);
    assert!(
        closure.iter().any(|d| d == "ward-event"),
        "Cargo.lock: {INFERENCE_CRATE}'s dependencies were not found ({closure:?})"
    );
    let bad: Vec<_> = closure
        .iter()
        .filter(|d| TRAINING_ONLY.contains(&d.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "crates/{INFERENCE_CRATE}/Cargo.toml: the inference crate (what the agent links) depends, \
         directly or through a dependency, on {bad:?}; training code belongs in ward-ml-train"
    );
    // The binary reaches the training crate only behind its optional `train` feature.
    for m in manifests() {
        for (dep, section, optional) in &m.deps {
            if dep == "ward-ml-train" && *section != "dev-dependencies" && !optional {
                panic!(
                    "{}: {} depends on ward-ml-train unconditionally; the agent's build must \
                     carry inference only (make it optional, as ward's `train` feature)",
                    rel(&m.path),
                    m.name
                );
            }
        }
    }
}
