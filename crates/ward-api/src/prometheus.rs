//! The agent's Prometheus endpoint: `GET /metrics` answers the latest text the agent rendered;
//! `GET /healthz` answers 200 `ok` once the agent has rendered its first figures (it does so
//! before it says "ready": the sensor is loaded and the running processes are seeded) and 503
//! before, so a Kubernetes readiness/liveness probe can use the metrics port.
//!
//! It lives here because `ward-api` is the crate that serves HTTP (ARCHITECTURE.md; the tidy
//! test in `crates/ward/tests/tidy.rs` checks it). It runs on its own thread with a
//! single-threaded runtime so it answers even while the agent's loop is busy, and it shares
//! nothing with the findings API (which may not be running).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The text the endpoint serves; the agent replaces it about once a second.
pub type MetricsText = Arc<Mutex<String>>;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(text): State<MetricsText>) -> impl IntoResponse {
    let body = text.lock().map(|t| t.clone()).unwrap_or_default();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

async fn healthz(State(text): State<MetricsText>) -> impl IntoResponse {
    let ready = text.lock().map(|t| !t.is_empty()).unwrap_or(false);
    let (status, body) = if ready {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found: try /metrics or /healthz\n",
    )
}

/// Binds `addr` (e.g. `127.0.0.1:9464`, port 0 for any) and serves from a background thread.
/// Returns the bound address; binding errors come back at once.
pub fn serve(addr: &str, text: MetricsText) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("ward-metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                    return;
                };
                let app = Router::new()
                    .route("/metrics", get(metrics))
                    .route("/healthz", get(healthz))
                    .fallback(not_found)
                    .with_state(text);
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            })
        })?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    }

    #[test]
    fn serves_the_latest_text_and_404_elsewhere() {
        let text: MetricsText = Arc::new(Mutex::new("ward_up 1\n".into()));
        let addr = serve("127.0.0.1:0", text.clone()).unwrap();
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("text/plain; version=0.0.4"), "{r}");
        assert!(r.ends_with("ward_up 1\n"), "{r}");
        *text.lock().unwrap() = "ward_up 2\n".into();
        assert!(get(addr, "/metrics?x=1").ends_with("ward_up 2\n"));
        let r = get(addr, "/other");
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        assert!(serve(&addr.to_string(), text).is_err(), "port in use");
    }

    #[test]
    fn healthz_is_503_until_the_first_figures_then_200() {
        let text: MetricsText = Arc::new(Mutex::new(String::new()));
        let addr = serve("127.0.0.1:0", text.clone()).unwrap();
        let r = get(addr, "/healthz");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.ends_with("starting\n"), "{r}");
        *text.lock().unwrap() = "ward_up 1\n".into();
        let r = get(addr, "/healthz");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("ok\n"), "{r}");
    }
}
