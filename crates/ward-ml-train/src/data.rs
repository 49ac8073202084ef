//! Training data sources, read in memory only: the malicious pack (`.jsonl.gz`), the local CPython
//! stdlib, PyPI wheels (zip members), extra benign directories, and generated template variants.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::templates;
use crate::TrainError;
use ward_ml::model::DataSource;

/// Where a document came from (drives metrics sections, never features).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Origin {
    /// The malicious pack (`malicious.jsonl.gz`, malwi-samples).
    Pack,
    /// The second malicious source (`registry.jsonl.gz`, pypi_malregistry packages the pack
    /// never saw).
    Registry,
    /// Generated malicious runtime-template variants.
    Runtime,
    /// Real benign code (stdlib, wheels, extra dirs).
    Benign,
    /// Generated benign template variants (runtime snippets, setup.py).
    BenignTemplate,
}

/// One labelled script.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Script bytes.
    pub text: Vec<u8>,
    /// 1 = malicious.
    pub label: u8,
    /// Split group (cluster, package, stdlib module, template id).
    pub group: String,
    /// Category for error analysis (not a feature).
    pub category: String,
    /// Identifier for reports (path or template/variant).
    pub id: String,
    /// Origin.
    pub origin: Origin,
}

fn file_sha(path: &Path) -> Result<String, TrainError> {
    let mut f = std::fs::File::open(path).map_err(|e| TrainError::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| TrainError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[derive(Deserialize)]
struct PackRecord {
    path: String,
    cluster: String,
    text: String,
}

fn basename_category(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base {
        "setup.py" => "setup.py".to_string(),
        "__init__.py" => "__init__.py".to_string(),
        _ => "other".to_string(),
    }
}

/// Every `step`-th item (deterministic subsampling).
fn keep(i: usize, step: usize) -> bool {
    step <= 1 || i.is_multiple_of(step)
}

/// Reads the malicious pack. `step` keeps every step-th record (1 = all).
pub fn load_pack(path: &Path, step: usize) -> Result<(Vec<Doc>, DataSource), TrainError> {
    load_malicious(path, step, Origin::Pack)
}

/// Reads the second malicious source (`registry.jsonl.gz`: same record format as the pack,
/// `path` is `<package>/<version>/<archive>::<member>`). Its groups are `registry:<cluster>`,
/// so a cluster id never joins a pack cluster of the same id.
pub fn load_registry(path: &Path, step: usize) -> Result<(Vec<Doc>, DataSource), TrainError> {
    load_malicious(path, step, Origin::Registry)
}

fn load_malicious(
    path: &Path,
    step: usize,
    origin: Origin,
) -> Result<(Vec<Doc>, DataSource), TrainError> {
    let (tag, kind, gtag) = match origin {
        Origin::Registry => ("registry", "malicious-registry", "registry"),
        _ => ("pack", "malicious-pack", "cluster"),
    };
    let f = std::fs::File::open(path).map_err(|e| TrainError::io("open", path, e))?;
    let rd = BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let mut docs = Vec::new();
    for (i, line) in rd.lines().enumerate() {
        let line = line.map_err(|e| TrainError::io("read", path, e))?;
        if line.trim().is_empty() || !keep(i, step) {
            continue;
        }
        let r: PackRecord = serde_json::from_str(&line).map_err(|e| TrainError::BadData {
            path: path.to_path_buf(),
            why: format!("line {}: {e}", i + 1),
        })?;
        // Registry paths end in `<archive>::<member>`: the member names the file.
        let member = r.path.rsplit("::").next().unwrap_or(&r.path);
        docs.push(Doc {
            category: format!("{tag}:{}", basename_category(member)),
            text: r.text.into_bytes(),
            label: 1,
            group: format!("{gtag}:{}", r.cluster),
            id: r.path,
            origin,
        });
    }
    let shown = path.display().to_string();
    let shown = shown
        .find("shared/")
        .map_or(shown.clone(), |i| shown[i..].to_string());
    let src = DataSource {
        kind: kind.into(),
        name: shown,
        sha256: file_sha(path)?,
        scripts: docs.len(),
    };
    Ok((docs, src))
}

fn walk_py(root: &Path, out: &mut Vec<PathBuf>, skip: &[&str]) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if !skip.iter().any(|s| *s == name) {
                walk_py(&p, out, skip);
            }
        } else if ft.is_file() && name.ends_with(".py") {
            out.push(p);
        }
    }
}

const MAX_FILE: u64 = 4 << 20;

/// Reads `.py` files under a directory (sorted, deterministic). `group_of` maps a relative path
/// to its split group.
fn load_dir(
    root: &Path,
    kind: &str,
    skip: &[&str],
    step: usize,
    group_of: &dyn Fn(&str) -> String,
) -> Result<(Vec<Doc>, DataSource), TrainError> {
    let mut files = Vec::new();
    walk_py(root, &mut files, skip);
    let mut docs = Vec::new();
    let mut h = Sha256::new();
    for (i, p) in files.iter().enumerate() {
        if !keep(i, step) {
            continue;
        }
        let Ok(md) = std::fs::metadata(p) else {
            continue;
        };
        if md.len() > MAX_FILE {
            continue;
        }
        let Ok(text) = std::fs::read(p) else { continue };
        let rel = p
            .strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .to_string();
        h.update(rel.as_bytes());
        h.update(Sha256::digest(&text));
        docs.push(Doc {
            group: group_of(&rel),
            category: format!("{kind}:{}", basename_category(&rel)),
            label: 0,
            id: format!("{kind}:{rel}"),
            text,
            origin: Origin::Benign,
        });
    }
    let src = DataSource {
        kind: kind.into(),
        name: root.display().to_string(),
        sha256: hex::encode(h.finalize()),
        scripts: docs.len(),
    };
    Ok((docs, src))
}

/// The local CPython stdlib path (asks `python3` for `sysconfig.get_paths()["stdlib"]`).
pub fn detect_stdlib() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let p = PathBuf::from(s.trim());
    p.is_dir().then_some(p)
}

/// Reads the stdlib; groups by top-level module (the `test` package by its second component).
pub fn load_stdlib(root: &Path, step: usize) -> Result<(Vec<Doc>, DataSource), TrainError> {
    load_dir(
        root,
        "stdlib",
        &["site-packages", "__pycache__", "dist-packages"],
        step,
        &|rel| {
            let mut parts = rel.split('/');
            let first = parts.next().unwrap_or("").trim_end_matches(".py");
            if first == "test" || first == "idlelib" || first == "lib2to3" {
                let second = parts.next().unwrap_or("").trim_end_matches(".py");
                format!("stdlib:{first}/{second}")
            } else {
                format!("stdlib:{first}")
            }
        },
    )
}

/// Reads an extra benign directory; groups by the first three path components.
pub fn load_extra_dir(root: &Path, step: usize) -> Result<(Vec<Doc>, DataSource), TrainError> {
    let tag = root
        .file_name()
        .map_or("extra".into(), |n| n.to_string_lossy().to_string());
    load_dir(root, "extra", &["__pycache__"], step, &|rel| {
        let parts: Vec<&str> = rel.split('/').collect();
        let n = parts.len().saturating_sub(1).min(3);
        format!("extra:{tag}/{}", parts[..n].join("/"))
    })
}

/// A pinned benign package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Project name as written.
    pub name: String,
    /// Exact version.
    pub version: String,
}

/// Parses `NAME==VERSION` lines (`#` comments allowed).
pub fn parse_pins(s: &str) -> Result<Vec<Pinned>, String> {
    let mut out = Vec::new();
    for (i, line) in s.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let (n, v) = l
            .split_once("==")
            .ok_or_else(|| format!("line {}: expected NAME==VERSION", i + 1))?;
        out.push(Pinned {
            name: n.trim().to_string(),
            version: v.trim().to_string(),
        });
    }
    Ok(out)
}

fn norm(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

fn find_wheel(dir: &Path, p: &Pinned) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|path| {
            path.file_name().is_some_and(|f| {
                let f = f.to_string_lossy();
                let mut it = f.split('-');
                f.ends_with(".whl")
                    && it.next().is_some_and(|n| norm(n) == norm(&p.name))
                    && it.next() == Some(p.version.as_str())
            })
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Downloads one wheel with pip (wheels only: nothing is built or run).
pub fn fetch_wheel(dir: &Path, p: &Pinned) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io("create dir", dir, e))?;
    let spec = format!("{}=={}", p.name, p.version);
    let out = Command::new("pip")
        .args([
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "any",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(&spec)
        .output()
        .map_err(|e| TrainError::Fetch {
            package: spec.clone(),
            why: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(TrainError::Fetch {
            package: spec,
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Reads the `.py` members of a wheel in memory.
pub fn load_wheel(
    path: &Path,
    p: &Pinned,
    step: usize,
) -> Result<(Vec<Doc>, DataSource), TrainError> {
    let f = std::fs::File::open(path).map_err(|e| TrainError::io("open", path, e))?;
    let mut z = zip::ZipArchive::new(f).map_err(|e| TrainError::BadData {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let mut names: Vec<(String, usize)> = Vec::new();
    for i in 0..z.len() {
        if let Ok(m) = z.by_index_raw(i) {
            let Ok(n) = m.name().map(|n| n.to_string()) else {
                continue;
            };
            if n.ends_with(".py") {
                names.push((n, i));
            }
        }
    }
    names.sort();
    let mut docs = Vec::new();
    for (k, (n, i)) in names.iter().enumerate() {
        if !keep(k, step) {
            continue;
        }
        let Ok(mut m) = z.by_index(*i) else { continue };
        if m.size() > MAX_FILE {
            continue;
        }
        let mut text = Vec::with_capacity(m.size() as usize);
        if m.read_to_end(&mut text).is_err() {
            continue;
        }
        docs.push(Doc {
            text,
            label: 0,
            group: format!("pkg:{}", norm(&p.name)),
            category: format!("wheel:{}", basename_category(n)),
            id: format!("{}=={}:{}", p.name, p.version, n),
            origin: Origin::Benign,
        });
    }
    let src = DataSource {
        kind: "wheel".into(),
        name: format!("{}=={}", p.name, p.version),
        sha256: file_sha(path)?,
        scripts: docs.len(),
    };
    Ok((docs, src))
}

/// Loads every pinned wheel from `cache/wheels`, fetching missing ones when `fetch` is set.
pub fn load_wheels(
    pins_path: &Path,
    cache: &Path,
    fetch: bool,
    step: usize,
) -> Result<(Vec<Doc>, Vec<DataSource>), TrainError> {
    let s = std::fs::read_to_string(pins_path).map_err(|e| TrainError::io("read", pins_path, e))?;
    let pins = parse_pins(&s).map_err(|why| TrainError::BadData {
        path: pins_path.to_path_buf(),
        why,
    })?;
    let dir = cache.join("wheels");
    let mut docs = Vec::new();
    let mut srcs = Vec::new();
    for p in &pins {
        let mut w = find_wheel(&dir, p);
        if w.is_none() && fetch {
            tracing::info!(package = %p.name, version = %p.version, "fetching wheel");
            fetch_wheel(&dir, p)?;
            w = find_wheel(&dir, p);
        }
        let Some(w) = w else {
            tracing::warn!(package = %p.name, version = %p.version, dir = %dir.display(), "wheel missing; skipped (use fetch)");
            continue;
        };
        let (d, s) = load_wheel(&w, p, step)?;
        docs.extend(d);
        srcs.push(s);
    }
    Ok((docs, srcs))
}

/// Generates template variants from a `.tpl.gz` file.
pub fn load_template_docs(
    path: &Path,
    label: u8,
    per_template: usize,
    seed: u64,
) -> Result<(Vec<Doc>, DataSource), TrainError> {
    let ts = templates::load_templates(path)?;
    let mut docs = Vec::new();
    for t in &ts {
        for (k, v) in templates::variants(t, per_template, seed, label == 1)
            .into_iter()
            .enumerate()
        {
            docs.push(Doc {
                text: v.text.into_bytes(),
                label,
                group: format!("tpl:{}", t.id),
                category: format!(
                    "{}:{}",
                    if label == 1 { "runtime" } else { "benign-tpl" },
                    t.category
                ),
                id: format!("tpl:{}#{k}:{}", t.id, v.wrapper),
                origin: if label == 1 {
                    Origin::Runtime
                } else {
                    Origin::BenignTemplate
                },
            });
        }
    }
    let src = DataSource {
        kind: if label == 1 {
            "runtime-templates"
        } else {
            "benign-templates"
        }
        .into(),
        name: format!(
            "crates/ward-ml/data/{} ({} templates x {per_template} variants, seed {seed})",
            path.file_name()
                .map_or(String::new(), |f| f.to_string_lossy().to_string()),
            ts.len()
        ),
        sha256: file_sha(path)?,
        scripts: docs.len(),
    };
    Ok((docs, src))
}

/// Drops exact duplicate texts (first occurrence wins; load malicious sources first).
pub fn dedup(docs: Vec<Doc>) -> Vec<Doc> {
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    docs.into_iter()
        .filter(|d| seen.insert(Sha256::digest(&d.text).into()))
        .collect()
}

/// Counts documents per group.
pub fn group_sizes(docs: &[Doc]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in docs {
        *m.entry(d.group.clone()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins() {
        let p = parse_pins("# c\nrequests==2.0 # x\n\nsh==1.2\n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].version, "1.2");
        assert!(parse_pins("requests\n").is_err());
    }

    #[test]
    fn dedup_keeps_first() {
        let d = |l: u8| Doc {
            text: b"x".to_vec(),
            label: l,
            group: String::new(),
            category: String::new(),
            id: String::new(),
            origin: Origin::Pack,
        };
        let v = dedup(vec![d(1), d(0)]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].label, 1);
    }
}
