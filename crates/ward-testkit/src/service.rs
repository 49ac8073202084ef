//! `podman system service`: podman serving the Docker Engine API on a unix socket, which is
//! what Ward's enricher talks to for container metadata.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::TestkitError;

/// A `podman system service --time=0 unix://<socket>` process, killed on drop or when the
/// test process exits.
#[derive(Debug)]
pub struct PodmanService {
    child: Child,
    socket: PathBuf,
}

impl PodmanService {
    /// Starts the service on a fresh socket under `/run/ward-test/` and waits (up to 20 s)
    /// until `GET /_ping` answers `OK`.
    pub fn start() -> Result<PodmanService, TestkitError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = PathBuf::from("/run/ward-test");
        fs::create_dir_all(&dir)
            .map_err(|e| TestkitError::io(format!("creating {}", dir.display()), e))?;
        let socket = dir.join(format!(
            "podman-{}-{}.sock",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_file(&socket);
        let mut cmd = Command::new("podman");
        cmd.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Tied to the test process too, so a service kept in a `static` (never dropped) still
        // ends with it.
        let child = crate::agent::spawn_tied(cmd)
            .map_err(|e| TestkitError::io("spawning podman system service", e))?;
        let service = PodmanService { child, socket };
        let timeout = Duration::from_secs(20);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, body)) = service.get("/_ping") {
                if body == b"OK" {
                    return Ok(service);
                }
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: format!("podman system service on {}", service.socket.display()),
                    timeout,
                    partial: String::new(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The unix socket serving the Docker Engine (and libpod) API.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// A minimal `GET <path>` over the socket (HTTP/1.0, so no chunked encoding); returns the
    /// status code and body. For example `/v1.41/containers/<id>/json`.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>), TestkitError> {
        http_get(&self.socket, path)
    }

    /// `GET <path>` parsed as JSON; fails unless the status is 200.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, TestkitError> {
        let (status, body) = self.get(path)?;
        if status != 200 {
            return Err(TestkitError::unexpected(
                format!("status of GET {path}"),
                format!("{status}: {}", String::from_utf8_lossy(&body)),
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| TestkitError::unexpected(format!("body of GET {path}"), e.to_string()))
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.socket);
    }
}

fn http_get(socket: &Path, path: &str) -> Result<(u16, Vec<u8>), TestkitError> {
    let ctx = |what: &str| format!("{what} {}", socket.display());
    let mut stream =
        UnixStream::connect(socket).map_err(|e| TestkitError::io(ctx("connect"), e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| TestkitError::io(ctx("set_read_timeout"), e))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: d\r\n\r\n")
        .map_err(|e| TestkitError::io(ctx("write"), e))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| TestkitError::io(ctx("read"), e))?;
    parse_response(&response).ok_or_else(|| {
        TestkitError::unexpected(
            format!("HTTP response to GET {path}"),
            String::from_utf8_lossy(&response),
        )
    })
}

fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, response[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_response() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nOK";
        assert_eq!(parse_response(r), Some((200, b"OK".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }
}
