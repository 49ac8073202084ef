//! The test images: built once per machine by the scripts, found again through `images.env`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use crate::error::TestkitError;

/// The images Ward's tests run and the harmless "malicious" payloads they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// `localhost/ward-test-busybox:latest`: busybox-static with applet symlinks.
    pub busybox: String,
    /// Image id (64 hex) of `busybox`.
    pub busybox_id: String,
    /// `localhost/ward-test-debian:latest`: Debian 12 minbase + python3, perl, tcc,
    /// netcat-traditional (`nc` has `-e`), netcat-openbsd, socat, bash, procps.
    pub debian: String,
    /// Image id (64 hex) of `debian`.
    pub debian_id: String,
    /// Path of the payload inside both images: `/usr/local/bin/ward-test-payload`.
    pub payload_path: String,
    /// sha256 (lowercase hex) of that payload; put it in a test intel feed.
    pub payload_sha256: String,
    /// A host copy of the same payload.
    pub payload_host_copy: PathBuf,
    /// sha256 of a second payload that is in no image, for added-binary tests.
    pub added_payload_sha256: String,
    /// Host copy of the added payload (copy it into a running container).
    pub added_payload_host_copy: PathBuf,
    /// A `HASH;COMMENT` intel feed listing both payload hashes.
    pub intel_feed: PathBuf,
}

/// The repository root (where `scripts/containers/` lives).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The image cache directory: `$WARD_IMAGE_CACHE`, default `/var/cache/ward-images`.
fn cache_dir() -> PathBuf {
    std::env::var_os("WARD_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/ward-images"))
}

/// Makes sure podman works and the test images exist, then describes them.
///
/// Runs `scripts/containers/setup.sh` and `scripts/containers/build-images.sh` (both idempotent,
/// about 1 s together when everything is in place; about 1 minute on a fresh machine, mostly
/// debootstrap) once per process; their progress goes to stderr. Needs root. Concurrent callers
/// in one process wait for the first; concurrent processes are serialised by the script's lock.
pub fn ensure_images() -> Result<Images, TestkitError> {
    static ONCE: OnceLock<Result<Images, String>> = OnceLock::new();
    ONCE.get_or_init(|| prepare().map_err(|e| e.to_string()))
        .clone()
        .map_err(TestkitError::Setup)
}

fn prepare() -> Result<Images, TestkitError> {
    let started = Instant::now();
    let scripts = repo_root().join("scripts/containers");
    for script in ["setup.sh", "build-images.sh"] {
        let path = scripts.join(script);
        let status = Command::new("bash")
            .arg(&path)
            .status()
            .map_err(|e| TestkitError::io(format!("running {}", path.display()), e))?;
        if !status.success() {
            return Err(TestkitError::Command {
                command: path.display().to_string(),
                status: status.to_string(),
                stderr: "see the script's output above".into(),
            });
        }
    }
    crate::container::remove_stale_containers();
    let images = read_images_env(&cache_dir().join("images.env"))?;
    eprintln!(
        "ward-testkit: images ready in {:.1} s ({}, {})",
        started.elapsed().as_secs_f64(),
        images.busybox,
        images.debian
    );
    Ok(images)
}

/// Parses the `images.env` file that build-images.sh writes.
pub(crate) fn read_images_env(path: &Path) -> Result<Images, TestkitError> {
    let text = fs::read_to_string(path)
        .map_err(|e| TestkitError::io(format!("reading {}", path.display()), e))?;
    parse_images_env(&text).map_err(|missing| {
        TestkitError::unexpected(
            format!("content of {}", path.display()),
            format!("missing or empty {missing}"),
        )
    })
}

fn parse_images_env(text: &str) -> Result<Images, String> {
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |k: &str| -> Result<String, String> {
        match vars.get(k) {
            Some(v) if !v.is_empty() => Ok((*v).to_string()),
            _ => Err(k.to_string()),
        }
    };
    Ok(Images {
        busybox: get("WARD_TEST_BUSYBOX_IMAGE")?,
        busybox_id: get("WARD_TEST_BUSYBOX_IMAGE_ID")?,
        debian: get("WARD_TEST_DEBIAN_IMAGE")?,
        debian_id: get("WARD_TEST_DEBIAN_IMAGE_ID")?,
        payload_path: get("WARD_TEST_PAYLOAD_PATH")?,
        payload_sha256: get("WARD_TEST_PAYLOAD_SHA256")?,
        payload_host_copy: get("WARD_TEST_PAYLOAD_HOST_COPY")?.into(),
        added_payload_sha256: get("WARD_TEST_ADDED_PAYLOAD_SHA256")?,
        added_payload_host_copy: get("WARD_TEST_ADDED_PAYLOAD_HOST_COPY")?.into(),
        intel_feed: get("WARD_TEST_INTEL_FEED")?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# comment\n\
        WARD_TEST_BUSYBOX_IMAGE=localhost/ward-test-busybox:latest\n\
        WARD_TEST_BUSYBOX_IMAGE_ID=aa\n\
        WARD_TEST_DEBIAN_IMAGE=localhost/ward-test-debian:latest\n\
        WARD_TEST_DEBIAN_IMAGE_ID=bb\n\
        WARD_TEST_PAYLOAD_PATH=/usr/local/bin/ward-test-payload\n\
        WARD_TEST_PAYLOAD_SHA256=cc\n\
        WARD_TEST_PAYLOAD_HOST_COPY=/c/p\n\
        WARD_TEST_ADDED_PAYLOAD_SHA256=dd\n\
        WARD_TEST_ADDED_PAYLOAD_HOST_COPY=/c/a\n\
        WARD_TEST_INTEL_FEED=/c/i\n";

    #[test]
    fn parses_images_env() {
        let images = parse_images_env(SAMPLE).unwrap();
        assert_eq!(images.debian, "localhost/ward-test-debian:latest");
        assert_eq!(images.payload_sha256, "cc");
        assert_eq!(images.added_payload_host_copy, PathBuf::from("/c/a"));
    }

    #[test]
    fn empty_value_is_missing() {
        let text = SAMPLE.replace("WARD_TEST_DEBIAN_IMAGE_ID=bb", "WARD_TEST_DEBIAN_IMAGE_ID=");
        assert_eq!(
            parse_images_env(&text).unwrap_err(),
            "WARD_TEST_DEBIAN_IMAGE_ID"
        );
    }

    #[test]
    fn scripts_exist_where_repo_root_says() {
        let scripts = repo_root().join("scripts/containers");
        assert!(scripts.join("setup.sh").is_file());
        assert!(scripts.join("build-images.sh").is_file());
    }
}
