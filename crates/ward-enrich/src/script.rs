//! Script capture. Which script runs is decided by `ward_event::script::script_target`; this
//! module reads it.
//!
//! Files are opened with `openat2(RESOLVE_IN_ROOT)` relative to the process's root directory
//! (`/proc/PID/root` live), so absolute paths and symlinks inside a container resolve inside
//! the container and cannot escape to the host.

use sha2::{Digest, Sha256 as Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use ward_event::script::{script_target, ScriptTarget};
use ward_event::{ExecEvent, ScriptInfo, ScriptKind, Sha256};

#[derive(Debug, Clone, Copy)]
pub struct CaptureConfig {
    /// Bytes of script text kept for display (64 KiB by default).
    pub contents_max: usize,
    /// Bytes of script kept for scoring (`ScriptInfo::scoring_text`, 16 MiB by default): the
    /// classifier sees the whole script up to this cap, whatever the display cap.
    pub scoring_max: usize,
    /// Scripts larger than this are not hashed (their `sha256` is absent).
    pub hash_max: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            contents_max: 64 * 1024,
            scoring_max: 16 << 20,
            hash_max: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("opening script {path} under root {root}: {source}")]
    Open {
        path: String,
        root: PathBuf,
        source: std::io::Error,
    },
    #[error("reading script {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The root directory itself could not be opened (live: the process is gone).
    #[error("opening root {root}: {source}")]
    NoRoot {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotAFile { path: String },
}

/// Captures the script `exec` runs, reading files relative to `root` (the process's root
/// directory) and `exec.cwd`. `Ok(None)` when the program runs no script.
pub fn capture(
    exec: &ExecEvent,
    root: &Path,
    cfg: &CaptureConfig,
) -> Result<Option<ScriptInfo>, CaptureError> {
    match script_target(&exec.filename, &exec.binary.path, &exec.argv) {
        None => Ok(None),
        Some(ScriptTarget::Inline { code }) => Ok(Some(inline(&code, cfg))),
        Some(ScriptTarget::File { kind, path }) => {
            read_file(root, &exec.cwd, &path, kind, cfg).map(Some)
        }
    }
}

/// A `-c` literal: its size, hash and capped text.
pub fn inline(code: &str, cfg: &CaptureConfig) -> ScriptInfo {
    let bytes = code.as_bytes();
    let (contents, truncated) = cap_text(bytes, cfg.contents_max);
    let scoring_text = (truncated && cfg.scoring_max > cfg.contents_max)
        .then(|| bytes[..bytes.len().min(cfg.scoring_max)].into());
    ScriptInfo {
        kind: ScriptKind::Inline,
        path: None,
        size: bytes.len() as u64,
        sha256: Some(Sha256(Hasher::digest(bytes).into())),
        contents: Some(contents),
        contents_truncated: truncated,
        layer: None,
        scoring_text,
    }
}

/// `path` made absolute against `cwd` (both in the process's root).
pub fn full_path(cwd: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", cwd.trim_end_matches('/'), path)
    }
}

/// Reads a script file through `root`, resolving relative paths against `cwd`.
pub fn read_file(
    root: &Path,
    cwd: &str,
    path: &str,
    kind: ScriptKind,
    cfg: &CaptureConfig,
) -> Result<ScriptInfo, CaptureError> {
    let full = full_path(cwd, path);
    let open_err = |source: std::io::Error| CaptureError::Open {
        path: full.clone(),
        root: root.to_path_buf(),
        source,
    };
    let root_fd = rustix::fs::open(
        root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| CaptureError::NoRoot {
        root: root.to_path_buf(),
        source: e.into(),
    })?;
    let fd = rustix::fs::openat2(
        &root_fd,
        full.trim_start_matches('/'),
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::CLOEXEC
            | rustix::fs::OFlags::NOCTTY
            | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| open_err(e.into()))?;
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| CaptureError::Read {
        path: full.clone(),
        source: e,
    })?;
    if !meta.is_file() {
        return Err(CaptureError::NotAFile { path: full });
    }
    let mut hasher = Hasher::new();
    let keep_max = cfg.contents_max.max(cfg.scoring_max) + 3;
    let mut kept: Vec<u8> = Vec::with_capacity(keep_max.min(meta.len() as usize + 4));
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(CaptureError::Read {
                    path: full,
                    source: e,
                })
            }
        };
        total += n as u64;
        if total <= cfg.hash_max {
            hasher.update(&buf[..n]);
        }
        // Keep up to 3 bytes past the cap so a character cut at the cap can be completed, and
        // up to the scoring cap for the classifier.
        let room = keep_max.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        if total > cfg.hash_max && kept.len() + 3 >= keep_max {
            // Unhashable anyway: count the rest from the size.
            total = total.max(meta.len());
            break;
        }
    }
    let (contents, cut) = cap_text(&kept, cfg.contents_max);
    let scoring_text = (kept.len() > cfg.contents_max && cfg.scoring_max > cfg.contents_max)
        .then(|| kept[..kept.len().min(cfg.scoring_max)].into());
    // The process's own mount table when `root` is `/proc/PID/root`; else `root` is a
    // directory in our own namespace.
    let layer = match root.strip_prefix("/proc").ok().and_then(|r| {
        let mut c = r.components();
        let pid = c.next()?;
        (c.as_path() == Path::new("root")).then(|| Path::new("/proc").join(pid).join("mountinfo"))
    }) {
        Some(info) => crate::layer::layer_of(&file, &full, &info),
        None => crate::layer::layer_of(
            &file,
            &root.join(full.trim_start_matches('/')).to_string_lossy(),
            Path::new("/proc/self/mountinfo"),
        ),
    };
    Ok(ScriptInfo {
        kind,
        path: Some(path.to_string()),
        size: total,
        sha256: (total <= cfg.hash_max).then(|| Sha256(hasher.finalize().into())),
        contents: Some(contents),
        contents_truncated: cut || total as usize > kept.len().min(cfg.contents_max),
        layer: Some(layer),
        scoring_text,
    })
}

/// Text of at most `max` bytes, cut at a character boundary; invalid UTF-8 is replaced.
fn cap_text(bytes: &[u8], max: usize) -> (String, bool) {
    if bytes.len() <= max {
        return (String::from_utf8_lossy(bytes).into_owned(), false);
    }
    let mut cut = max;
    // Step back over UTF-8 continuation bytes so a character is not split.
    while cut > 0 && cut > max.saturating_sub(3) && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    (String::from_utf8_lossy(&bytes[..cut]).into_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_event::build::ExecBuilder;

    fn cfg(max: usize) -> CaptureConfig {
        CaptureConfig {
            contents_max: max,
            scoring_max: 0,
            hash_max: 1 << 20,
        }
    }

    fn sha(b: &[u8]) -> Sha256 {
        Sha256(Hasher::digest(b).into())
    }

    #[test]
    fn reads_script_files_inside_the_root_with_cwd() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("app")).unwrap();
        let body = b"import os\nprint(os.getcwd())\n";
        std::fs::write(root.path().join("app/run.py"), body).unwrap();
        let mut e = ExecBuilder::new(1, 10, 1, "/usr/bin/python3")
            .args(&["python3", "run.py"])
            .build();
        e.cwd = "/app".into();
        let s = capture(&e, root.path(), &cfg(1024)).unwrap().unwrap();
        assert_eq!(s.kind, ScriptKind::File);
        assert_eq!(s.path.as_deref(), Some("run.py"));
        assert_eq!(s.size, body.len() as u64);
        assert_eq!(s.sha256, Some(sha(body)));
        assert_eq!(
            s.contents.as_deref(),
            Some(std::str::from_utf8(body).unwrap())
        );
        assert!(!s.contents_truncated);
    }

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.py"), b"host file").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.py"),
            root.path().join("link.py"),
        )
        .unwrap();
        let e = ExecBuilder::new(1, 10, 1, "/usr/bin/python3")
            .args(&["python3", "/link.py"])
            .build();
        // The absolute symlink target resolves inside the root, where it does not exist.
        assert!(matches!(
            capture(&e, root.path(), &cfg(1024)),
            Err(CaptureError::Open { .. })
        ));
    }

    #[test]
    fn truncates_contents_but_hashes_everything() {
        let root = tempfile::tempdir().unwrap();
        let body = "é".repeat(100); // 200 bytes
        std::fs::write(root.path().join("big.py"), &body).unwrap();
        let e = ExecBuilder::new(1, 10, 1, "/usr/bin/python3")
            .args(&["python3", "/big.py"])
            .build();
        let s = capture(&e, root.path(), &cfg(51)).unwrap().unwrap();
        assert_eq!(s.size, 200);
        assert_eq!(s.sha256, Some(sha(body.as_bytes())));
        assert_eq!(
            s.contents.as_deref().unwrap().len(),
            50,
            "cut before a split character"
        );
        assert!(s.contents_truncated);
        assert!(
            s.scoring_text.is_none(),
            "no scoring cap above the display cap"
        );
    }

    #[test]
    fn scoring_text_holds_the_script_past_the_display_cap() {
        let root = tempfile::tempdir().unwrap();
        let body: String = (0..2000).map(|i| format!("X_{i} = {i}\n")).collect();
        std::fs::write(root.path().join("big.py"), &body).unwrap();
        let e = ExecBuilder::new(1, 10, 1, "/usr/bin/python3")
            .args(&["python3", "/big.py"])
            .build();
        let c = CaptureConfig {
            scoring_max: 10_000,
            ..cfg(100)
        };
        let s = capture(&e, root.path(), &c).unwrap().unwrap();
        assert_eq!(s.contents.as_deref().unwrap().len(), 100);
        assert_eq!(s.scoring_text.as_deref(), Some(&body.as_bytes()[..10_000]));
        assert_eq!(s.sha256, Some(sha(body.as_bytes())), "hashes everything");
        let all = CaptureConfig {
            scoring_max: 1 << 20,
            ..cfg(100)
        };
        let s = capture(&e, root.path(), &all).unwrap().unwrap();
        assert_eq!(s.scoring_text.as_deref(), Some(body.as_bytes()));
        let code = "x".repeat(300);
        let i = inline(&code, &c);
        assert_eq!(i.contents.as_deref().map(str::len), Some(100));
        assert_eq!(i.scoring_text.as_deref(), Some(code.as_bytes()));
        // Short scripts carry no second copy.
        let i = inline("print(1)", &c);
        assert!(i.scoring_text.is_none());
    }

    #[test]
    fn inline_shebang_and_no_script() {
        let e = ExecBuilder::new(1, 10, 1, "/usr/bin/python3")
            .args(&["python3", "-c", "print(42)"])
            .build();
        let s = capture(&e, Path::new("/"), &cfg(4)).unwrap().unwrap();
        assert_eq!(
            (s.kind, s.path.as_deref(), s.size),
            (ScriptKind::Inline, None, 9)
        );
        assert_eq!(s.contents.as_deref(), Some("prin"));
        assert!(s.contents_truncated);
        assert_eq!(s.sha256, Some(sha(b"print(42)")));

        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("tool"), b"#!/bin/sh\necho hi\n").unwrap();
        let e = ExecBuilder::new(1, 10, 1, "/tool")
            .binary_path("/bin/dash")
            .args(&["/bin/sh", "/tool"])
            .build();
        let s = capture(&e, root.path(), &cfg(1024)).unwrap().unwrap();
        assert_eq!(s.kind, ScriptKind::Shebang);

        let e = ExecBuilder::new(1, 10, 1, "/bin/ls")
            .args(&["ls", "-l"])
            .build();
        assert!(capture(&e, root.path(), &cfg(1024)).unwrap().is_none());
    }

    #[test]
    fn non_utf8_and_directories() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("bin.py"), [0xff, 0xfe, b'a']).unwrap();
        std::fs::create_dir(root.path().join("dir.py")).unwrap();
        let s = read_file(root.path(), "/", "bin.py", ScriptKind::File, &cfg(100)).unwrap();
        assert_eq!(s.contents.as_deref(), Some("\u{fffd}\u{fffd}a"));
        assert!(matches!(
            read_file(root.path(), "/", "dir.py", ScriptKind::File, &cfg(100)),
            Err(CaptureError::NotAFile { .. })
        ));
    }
}
