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
    // The 429 connections above are closed by the server a moment before their slots are
    // given back, so an idle connection made at once may still be refused: retry until one
    // stays open.
    let start = Instant::now();
    let idle = loop {
        let mut c = TcpStream::connect(&a).await.unwrap();
        let mut b = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(200), c.read(&mut b))
            .await
            .is_err()
        {
            break c;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "idle refused");
    };
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

/// A raw request on a fresh connection: the response's status, lower-cased head and body.
async fn raw(a: &str, request: &[u8]) -> (u16, String, String) {
    let mut c = TcpStream::connect(a).await.unwrap();
    // The server may answer and close before it has read everything (a head too large).
    let _ = c.write_all(request).await;
    let (resp, closed) = read_to_close(&mut c, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "no answer within 10 s: {resp:?}");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    (
        code.unwrap_or_else(|| panic!("no status line in {resp:?}")),
        head.to_ascii_lowercase(),
        body.to_string(),
    )
}

/// An error as docs/api.md promises: the status, JSON in the documented shape with that code,
/// and the security headers.
fn assert_json_error(what: &str, got: &(u16, String, String), status: u16) {
    let (code, head, body) = got;
    assert_eq!(*code, status, "{what}: {head}\n{body}");
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{what}: {head}"
    );
    for h in [
        "content-security-policy: default-src 'none'",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
    ] {
        assert!(head.contains(h), "{what}: no {h} in {head}");
    }
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body:?}"));
    assert_eq!(v["error"]["code"], status, "{what}: {body}");
    assert!(v["error"]["status"].is_string(), "{what}: {body}");
    assert!(
        !v["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{what}: {body}"
    );
}

/// Requests that hyper or axum refuse before a handler runs (bad bytes in the request line or
/// the path, a URI or head too large, a Content-Length that is no number) get the same JSON
/// errors and security headers as the handlers' own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors() {
    let (_d, s) = server(ApiConfig {
        tokens: tokens(),
        ..ApiConfig::default()
    })
    .await;
    let a = addr(&s);
    let auth = format!("Authorization: Bearer {READ_TOKEN}\r\n");
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{extra}Connection: close\r\n\r\n")
            .into_bytes()
    };
    // A path id that is not UTF-8 once decoded (axum's rejection is text/plain).
    let got = raw(&a, &get("/v1/findings/%FF%FE", "")).await;
    assert_json_error("id not UTF-8", &got, 400);
    // URIs too long: above our 16 KiB (the guard) and above hyper's 65,534 bytes.
    for n in [17_000, 70_000] {
        let path = format!("/v1/findings?filter={}", "a".repeat(n));
        let got = raw(&a, &get(&path, "")).await;
        assert_json_error(&format!("URI of {n}"), &got, 414);
    }
    // Header fields too large: more fields than hyper takes, and one field above its buffer.
    let many: String = (0..150).map(|i| format!("X-F{i}: v\r\n")).collect();
    assert_json_error("150 fields", &raw(&a, &get("/healthz", &many)).await, 431);
    let long = format!("X-Long: {}\r\n", "v".repeat(500 * 1024));
    assert_json_error(
        "500 KiB field",
        &raw(&a, &get("/healthz", &long)).await,
        431,
    );
    // Garbage for a request line.
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"HELLO\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /hea lthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ] {
        let got = raw(&a, garbage).await;
        assert_json_error(
            &format!("{:?}", String::from_utf8_lossy(garbage)),
            &got,
            400,
        );
    }
    // Content-Length that is not a number, or two that disagree.
    for cl in [
        "Content-Length: abc\r\n",
        "Content-Length: 2\r\nContent-Length: 3\r\n",
    ] {
        let req = format!(
            "POST /v1/findings/x:setState HTTP/1.1\r\nHost: 127.0.0.1\r\n{cl}\
             Content-Type: application/json\r\n\r\n{{}}"
        );
        assert_json_error(cl, &raw(&a, req.as_bytes()).await, 400);
    }
    // The server still serves, and counted what hyper refused (URI above 64 KiB, two heads
    // too large, four request lines, two Content-Lengths) apart from routed requests.
    assert_eq!(status_of(&a, HEALTH).await, 200);
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
        metrics.contains("ward_api_requests_unparsed_total 9\n"),
        "{metrics}"
    );
    s.stop().await;
}

/// A Content-Length above `max_body_bytes` is refused from the head alone, long before the
/// body deadline: the client need not send (and the server does not wait for) the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_content_length_is_a_413_at_once() {
    let (_d, s) = server(ApiConfig {
        tokens: tokens(),
        body_timeout: Duration::from_secs(10),
        ..ApiConfig::default()
    })
    .await;
    let a = addr(&s);
    let req = format!(
        "POST /v1/findings/x:setState HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {WRITE_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000\r\n\r\n{{\"state\":"
    );
    let start = Instant::now();
    let got = raw(&a, req.as_bytes()).await;
    assert_json_error("Content-Length 10 MB", &got, 413);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "413 after {:?}",
        start.elapsed()
    );
    s.stop().await;
}

/// RFC 9112 section 3.2: an HTTP/1.1 request carries exactly one Host; more than one, or
/// none, is a 400 (never a request checked against the first Host alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_must_be_exactly_one() {
    let (_d, s) = server(ApiConfig::default()).await;
    let a = addr(&s);
    let two = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    assert_json_error("two Hosts", &raw(&a, two).await, 400);
    let two_same =
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    assert_json_error("two equal Hosts", &raw(&a, two_same).await, 400);
    let none = b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_json_error("no Host", &raw(&a, none).await, 400);
    // HTTP/1.0 predates Host: none is fine there, two are not.
    let old = b"GET /healthz HTTP/1.0\r\n\r\n";
    assert_eq!(raw(&a, old).await.0, 200);
    let old_two = b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_json_error("two Hosts, HTTP/1.0", &raw(&a, old_two).await, 400);
    assert_eq!(status_of(&a, HEALTH).await, 200);
    s.stop().await;
}
