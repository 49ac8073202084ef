//! Container metadata from the runtime's API over its unix socket.
//!
//! The Docker Engine API (`GET /containers/<id>/json`), which Docker serves on
//! `/run/docker.sock` and podman on `/run/podman/podman.sock` (`podman system service`). The
//! client is a minimal HTTP/1.0 `GET` (no chunked encoding, one connection per request) with a
//! connect/read timeout: metadata is fetched once per container, so connection reuse buys
//! nothing.
//!
//! [`MetadataService`] runs the requests on a worker thread; the caller owns the cache and
//! never blocks (see [`crate::Enricher`] for the bounded wait).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ward_event::{ContainerMeta, PodMeta};

use crate::cgroup::ContainerRef;

/// Largest response body accepted (an inspect answer is a few KiB).
const MAX_RESPONSE: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{socket}: {source}")]
    Io {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("{socket}: GET {path}: HTTP {status}")]
    Status {
        socket: PathBuf,
        path: String,
        status: u16,
    },
    #[error("{socket}: GET {path}: malformed response: {detail}")]
    Malformed {
        socket: PathBuf,
        path: String,
        detail: String,
    },
}

impl ApiError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { status: 404, .. })
    }
}

/// `GET path` over a unix socket; returns the body of a 200 answer.
pub fn http_get(socket: &Path, path: &str, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    let io = |source| ApiError::Io {
        socket: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: ward\r\nUser-Agent: ward\r\n\r\n"
    )
    .map_err(io)?;
    let deadline = Instant::now() + timeout;
    let mut resp = Vec::with_capacity(8192);
    let mut buf = [0u8; 16384];
    loop {
        if Instant::now() >= deadline {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "response not complete within the timeout",
            )));
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if resp.len() > MAX_RESPONSE {
                    return Err(ApiError::Malformed {
                        socket: socket.to_path_buf(),
                        path: path.into(),
                        detail: format!("response larger than {MAX_RESPONSE} bytes"),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let malformed = |detail: &str| ApiError::Malformed {
        socket: socket.to_path_buf(),
        path: path.into(),
        detail: detail.into(),
    };
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("no end of headers"))?;
    let head = std::str::from_utf8(&resp[..end]).map_err(|_| malformed("headers not UTF-8"))?;
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("no status line"))?;
    if status != 200 {
        return Err(ApiError::Status {
            socket: socket.to_path_buf(),
            path: path.into(),
            status,
        });
    }
    let mut body = resp[end + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| malformed("bad chunked body"))?;
    }
    Ok(body)
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_txt = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_txt.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Builds [`ContainerMeta`] from a Docker Engine API `GET /containers/<id>/json` answer.
/// Kubernetes pod identity comes from the labels `io.kubernetes.pod.name` and
/// `io.kubernetes.pod.namespace` (set by kubelet through cri-dockerd and by podman's
/// `play kube`).
pub fn meta_from_docker_inspect(v: &serde_json::Value) -> ContainerMeta {
    let s = |ptr: &str| {
        v.pointer(ptr)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let labels: BTreeMap<String, String> = v
        .pointer("/Config/Labels")
        .and_then(|l| l.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let pod = match (
        labels.get("io.kubernetes.pod.name"),
        labels.get("io.kubernetes.pod.namespace"),
    ) {
        (Some(name), Some(ns)) => Some(PodMeta {
            name: name.clone(),
            namespace: ns.clone(),
            labels: BTreeMap::new(),
        }),
        _ => None,
    };
    let mut image = s("/Config/Image");
    if image.is_empty() {
        image = s("/ImageName");
    }
    ContainerMeta {
        name: s("/Name").trim_start_matches('/').to_string(),
        image,
        image_id: s("/Image"),
        created: v
            .pointer("/Created")
            .and_then(|c| c.as_str())
            .and_then(ward_event::time::parse_rfc3339),
        labels,
        pod,
        note: None,
    }
}

/// Asks the Docker Engine API on `socket` about container `id`.
pub fn docker_inspect(
    socket: &Path,
    id: &str,
    timeout: Duration,
) -> Result<ContainerMeta, ApiError> {
    let path = format!("/containers/{id}/json");
    let body = http_get(socket, &path, timeout)?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| ApiError::Malformed {
        socket: socket.to_path_buf(),
        path: path.clone(),
        detail: e.to_string(),
    })?;
    Ok(meta_from_docker_inspect(&v))
}

/// Root podman's container store (`podman info --format '{{.Store.GraphRoot}}'`).
pub const DEFAULT_PODMAN_STORAGE: &str = "/var/lib/containers/storage";

/// Where and how to ask for metadata.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// Docker Engine API sockets, tried in order (docker, podman).
    pub docker_sockets: Vec<PathBuf>,
    /// CRI sockets (containerd, CRI-O), tried first for containers whose cgroup names a CRI
    /// runtime; used only when built with the `cri` feature.
    pub cri_sockets: Vec<PathBuf>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// A container whose metadata could not be had is asked again after this long.
    pub retry_after: Duration,
    /// Pending requests beyond this are refused (counted).
    pub queue: usize,
    /// Podman container stores (containers/storage roots), read when no API socket knows a
    /// docker/podman container: name, image, image id and creation time, without labels.
    pub podman_storage: Vec<PathBuf>,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            docker_sockets: vec![
                PathBuf::from("/run/docker.sock"),
                PathBuf::from("/run/podman/podman.sock"),
            ],
            cri_sockets: vec![
                PathBuf::from("/run/containerd/containerd.sock"),
                PathBuf::from("/run/crio/crio.sock"),
            ],
            request_timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(30),
            queue: 256,
            podman_storage: vec![PathBuf::from(DEFAULT_PODMAN_STORAGE)],
        }
    }
}

/// Counters of the metadata service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataStats {
    pub requests: u64,
    pub found: u64,
    /// Requests that ended without metadata (no socket, error, not found).
    pub failed: u64,
    /// Requests refused because the queue was full.
    pub queue_full: u64,
}

enum Slot {
    Pending,
    Done {
        meta: Arc<ContainerMeta>,
        /// When a failed answer may be retried.
        retry_at: Option<Instant>,
    },
}

/// Fetches container metadata on a worker thread; the owner keeps the cache.
pub struct MetadataService {
    tx: Option<SyncSender<ContainerRef>>,
    rx: Receiver<(String, ContainerMeta, bool)>,
    cache: HashMap<String, Slot>,
    retry_after: Duration,
    stats: MetadataStats,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MetadataService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataService")
            .field("cached", &self.cache.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl MetadataService {
    pub fn start(cfg: MetadataConfig) -> MetadataService {
        let (tx, req_rx) = mpsc::sync_channel::<ContainerRef>(cfg.queue.max(1));
        let (res_tx, rx) = mpsc::channel();
        let retry_after = cfg.retry_after;
        let worker = std::thread::Builder::new()
            .name("ward-metadata".into())
            .spawn(move || {
                for c in req_rx {
                    let (meta, ok) = fetch(&cfg, &c);
                    if res_tx.send((c.id, meta, ok)).is_err() {
                        break;
                    }
                }
            })
            .ok();
        MetadataService {
            tx: Some(tx),
            rx,
            cache: HashMap::new(),
            retry_after,
            stats: MetadataStats::default(),
            worker,
        }
    }

    pub fn stats(&self) -> MetadataStats {
        self.stats
    }

    /// Takes in finished requests.
    pub fn drain(&mut self) {
        while let Ok((id, meta, ok)) = self.rx.try_recv() {
            if ok {
                self.stats.found += 1;
            } else {
                self.stats.failed += 1;
            }
            let retry_at = (!ok).then(|| Instant::now() + self.retry_after);
            self.cache.insert(
                id,
                Slot::Done {
                    meta: Arc::new(meta),
                    retry_at,
                },
            );
        }
    }

    /// Metadata of `c` if known; otherwise starts fetching it (once) and returns `None`.
    /// A failed answer (with its note) is returned until it may be retried; then it is
    /// refetched in the background while the old answer is still served.
    pub fn get_or_request(&mut self, c: &ContainerRef) -> Option<Arc<ContainerMeta>> {
        let mut refetch = false;
        let out = match self.cache.get(&c.id) {
            Some(Slot::Done { meta, retry_at }) => {
                if retry_at.is_some_and(|t| Instant::now() >= t) {
                    refetch = true;
                }
                Some(meta.clone())
            }
            Some(Slot::Pending) => return None,
            None => {
                refetch = true;
                None
            }
        };
        if refetch {
            self.request(c);
        }
        out
    }

    /// Whether a request for `id` is in flight.
    pub fn is_pending(&self, id: &str) -> bool {
        matches!(self.cache.get(id), Some(Slot::Pending))
    }

    fn request(&mut self, c: &ContainerRef) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(c.clone()) {
            Ok(()) => {
                self.stats.requests += 1;
                if self.cache.len() > 16384 {
                    self.cache.retain(|_, s| matches!(s, Slot::Pending));
                }
                // Keep serving an old answer while a retry is in flight.
                if !self.cache.contains_key(&c.id) {
                    self.cache.insert(c.id.clone(), Slot::Pending);
                } else if let Some(Slot::Done { retry_at, .. }) = self.cache.get_mut(&c.id) {
                    *retry_at = None;
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.queue_full += 1;
            }
        }
    }
}

impl Drop for MetadataService {
    fn drop(&mut self) {
        // Closing the channel ends the worker after its current request; it is not joined
        // (a request may be stuck for up to the request timeout).
        self.tx = None;
        drop(self.worker.take());
    }
}

/// One request: the first socket that knows the container answers.
fn fetch(cfg: &MetadataConfig, c: &ContainerRef) -> (ContainerMeta, bool) {
    let mut problems = Vec::new();
    let cri_runtime = matches!(
        c.runtime,
        crate::cgroup::Runtime::Containerd
            | crate::cgroup::Runtime::CriO
            | crate::cgroup::Runtime::Cri
    );
    if cri_runtime {
        for sock in &cfg.cri_sockets {
            if !sock.exists() {
                problems.push(format!("{}: no such socket", sock.display()));
                continue;
            }
            #[cfg(feature = "cri")]
            match crate::cri::cri_inspect(sock, &c.id, cfg.request_timeout) {
                Ok(meta) => return (meta, true),
                Err(e) if e.is_not_found() => {
                    problems.push(format!("{}: container not found", sock.display()))
                }
                Err(e) => problems.push(e.to_string()),
            }
            #[cfg(not(feature = "cri"))]
            problems.push(format!(
                "{}: this build has no CRI client (cargo feature `cri`)",
                sock.display()
            ));
        }
    }
    for sock in &cfg.docker_sockets {
        if !sock.exists() {
            problems.push(format!("{}: no such socket", sock.display()));
            continue;
        }
        match docker_inspect(sock, &c.id, cfg.request_timeout) {
            Ok(meta) => return (meta, true),
            Err(e) if e.is_not_found() => {
                problems.push(format!("{}: container not found", sock.display()))
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if cfg.docker_sockets.is_empty() {
        problems.push("no runtime API socket configured".into());
    }
    // No socket answered: podman keeps names and images on disk.
    if !cri_runtime {
        for root in &cfg.podman_storage {
            match crate::podman_store::lookup(root, &c.id) {
                Ok(Some(meta)) => {
                    tracing::debug!(container = %c.id, store = %root.display(), "metadata from podman's container store");
                    return (meta, true);
                }
                Ok(None) => problems.push(format!(
                    "{}: container not in podman's store",
                    root.display()
                )),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    let note = format!(
        "container metadata unavailable ({} container): {}",
        c.runtime.as_str(),
        problems.join("; ")
    );
    tracing::debug!(container = %c.id, %note, "metadata lookup failed");
    (
        ContainerMeta {
            note: Some(note),
            ..ContainerMeta::default()
        },
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_json_to_meta() {
        // Trimmed answer of podman 4.3's Docker API, as measured (docs/containers-for-tests.md).
        let v: serde_json::Value = serde_json::from_str(
            r#"{
  "Id": "16f9f102768fec3f601bedb4e0e6d59ec1dced965b8c02ecca699aae683d97f8",
  "Created": "2026-11-21T23:19:12.316030612Z",
  "Name": "/docfacts",
  "Image": "sha256:48154f175f0de27c8426caab001fe1322a90ae81a5ff54be8999c01e7bc9e23d",
  "State": { "Status": "running", "Pid": 3262 },
  "Config": {
    "Image": "localhost/ward-test-debian:latest",
    "Labels": { "app": "demo", "io.kubernetes.pod.name": "web-0",
                "io.kubernetes.pod.namespace": "shop" }
  }
}"#,
        )
        .unwrap();
        let m = meta_from_docker_inspect(&v);
        assert_eq!(m.name, "docfacts");
        assert_eq!(m.image, "localhost/ward-test-debian:latest");
        assert!(m.image_id.starts_with("sha256:48154f"));
        assert_eq!(m.labels["app"], "demo");
        assert!(m.created.is_some());
        let pod = m.pod.unwrap();
        assert_eq!(
            (pod.name.as_str(), pod.namespace.as_str()),
            ("web-0", "shop")
        );
        assert_eq!(m.note, None);
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n").unwrap(),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
        assert_eq!(dechunk(b"10\r\nshort"), None);
    }

    #[test]
    fn missing_socket_gives_a_note_without_waiting() {
        let mut svc = MetadataService::start(MetadataConfig {
            docker_sockets: vec![PathBuf::from("/nonexistent/ward-test.sock")],
            ..MetadataConfig::default()
        });
        let c = ContainerRef {
            id: "a".repeat(64),
            runtime: crate::cgroup::Runtime::Podman,
        };
        assert!(svc.get_or_request(&c).is_none());
        let start = Instant::now();
        let meta = loop {
            svc.drain();
            if let Some(m) = svc.get_or_request(&c) {
                break m;
            }
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(2));
        };
        let note = meta.note.as_deref().unwrap();
        assert!(note.contains("/nonexistent/ward-test.sock"), "{note}");
        assert_eq!(svc.stats().failed, 1);
    }

    #[test]
    fn slow_socket_times_out() {
        // A unix socket that accepts and never answers.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.sock");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let start = Instant::now();
        let e = docker_inspect(&path, &"b".repeat(64), Duration::from_millis(150)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2), "{e}");
    }
}
