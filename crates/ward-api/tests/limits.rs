//! Clients that try to hold the server: slow headers (slow-loris), slow bodies, too many
//! connections or requests at once from one address. Raw TCP, so the test controls every
//! byte and its timing.

mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ward_api::ApiConfig;
use ward_store::SqliteStore;

async fn server(cfg: ApiConfig) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("ward.db")).unwrap());
    (dir, TestServer::start(cfg, store).await)
}

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Reads until the peer closes (or `limit` passes); returns what arrived and when it ended.
async fn read_to_close(c: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), c.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&out).into(), Some(start.elapsed()))
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One complete request on a fresh connection; the response's status code, if any (a
/// connection refused by the per-address cap is closed without one).
async fn try_status_of(a: &str, request: &str) -> Option<u16> {
    let mut c = TcpStream::connect(a).await.unwrap();
    let _ = c.write_all(request.as_bytes()).await;
    let (resp, _) = read_to_close(&mut c, Duration::from_secs(10)).await;
    resp.split(' ').nth(1).and_then(|s| s.parse().ok())
}

async fn status_of(a: &str, request: &str) -> u16 {
    try_status_of(a, request).await.expect("a response")
}

const HEALTH: &str = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let (_d, s) = server(ApiConfig {
        header_timeout: Duration::from_millis(300),
        ..ApiConfig::default()
    })
    .await;
    let a = addr(&s);
    // Half a request head, then silence: closed after the header timeout, not served.
    let mut c = TcpStream::connect(&a).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let (got, closed) = read_to_close(&mut c, Duration::from_secs(5)).await;
    let closed = closed.expect("the server must close a connection whose headers stall");
    assert!(closed >= Duration::from_millis(250), "{closed:?}");
    assert!(!got.contains("\"ok\""), "{got}");
    // Trickling one byte at a time does not reset the deadline.
    let mut c = TcpStream::connect(&a).await.unwrap();
    let start = Instant::now();
    let mut cut = false;
    for b in HEALTH.as_bytes() {
        if c.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if start.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let (got, closed) = read_to_close(&mut c, Duration::from_secs(5)).await;
    assert!(cut || closed.is_some(), "still open after trickling: {got}");
    assert!(!got.contains("\"ok\""), "{got}");
    assert!(start.elapsed() < Duration::from_secs(6));
    // A connection that says nothing is closed too.
    let mut c = TcpStream::connect(&a).await.unwrap();
    assert!(read_to_close(&mut c, Duration::from_secs(5))
        .await
        .1
        .is_some());
    // Normal requests are unaffected.
    assert_eq!(status_of(&a, HEALTH).await, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_is_a_408() {
    let (_d, s) = server(ApiConfig {
        tokens: tokens(),
        body_timeout: Duration::from_millis(300),
        ..ApiConfig::default()
    })
    .await;
    let a = addr(&s);
    let mut c = TcpStream::connect(&a).await.unwrap();
    c.write_all(
        format!(
            "POST /v1/findings/x:setState HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {WRITE_TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"state\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let start = Instant::now();
    let (resp, _) = read_to_close(&mut c, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("DEADLINE_EXCEEDED"), "{resp}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // Oversized bodies are still 413, complete small ones reach the handler (404: no such
    // finding).
    let big = "x".repeat(70 * 1024);
    let req = format!(
        "POST /v1/findings/x:setState HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {WRITE_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{big}",
        big.len()
    );
    assert_eq!(status_of(&a, &req).await, 413);
    let body = r#"{"state":"INACTIVE"}"#;
    let req = format!(
        "POST /v1/findings/x:setState HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {WRITE_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(status_of(&a, &req).await, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_a_bounded_share() {
    let (_d, s) = server(ApiConfig {
        tokens: tokens(),
        body_timeout: Duration::from_secs(20),
        max_requests_per_client: 2,
        max_connections_per_client: 3,
        ..ApiConfig::default()
    })
    .await;
    let a = addr(&s);
    // Two requests in progress (their bodies are still coming).
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(&a).await.unwrap();
        c.write_all(
            format!(
                "POST /v1/findings/x:setMute HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Authorization: Bearer {WRITE_TOKEN}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        slow.push(c);
    }
    // A third request from the same address: 429 with Retry-After, at once (as soon as the
    // server has read the two heads).
    let start = Instant::now();
    let resp = loop {
        let mut c = TcpStream::connect(&a).await.unwrap();
        c.write_all(HEALTH.as_bytes()).await.unwrap();
        let (resp, _) = read_to_close(&mut c, Duration::from_secs(5)).await;
        if resp.starts_with("HTTP/1.1 429") || start.elapsed() > Duration::from_secs(5) {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("retry-after: 1"),
        "{resp}"
    );
    assert!(resp.contains("RESOURCE_EXHAUSTED"), "{resp}");

    // Connections: two open (the slow ones) plus one idle makes three; a fourth is closed
    // before anything is read.
    let idle = TcpStream::connect(&a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = TcpStream::connect(&a).await.unwrap();
    let _ = fourth.write_all(HEALTH.as_bytes()).await;
    let (resp, closed) = read_to_close(&mut fourth, Duration::from_secs(5)).await;
    assert!(closed.is_some() && resp.is_empty(), "{resp:?}");

    // Giving back connections and requests lets the address in again.
    drop(slow);
    drop(idle);
    let start = Instant::now();
    loop {
        // The server notices the closed connections a moment later.
        let code = try_status_of(&a, HEALTH).await;
        if code == Some(200) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still {code:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", s.base))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ward_api_requests_limited_total 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("ward_api_connections_refused_total 0"),
        "{metrics}"
    );
    s.stop().await;
}
