//! What keeps one client from holding the server: a deadline for a request's headers
//! (enforced by hyper, [`ApiConfig::header_timeout`](crate::ApiConfig)), a deadline for its
//! body, and per-client-address caps on open connections and on requests being served.
//!
//! Plain HTTP is served by [`serve_http`] (hyper's HTTP/1 server with a timer, so the header
//! deadline applies); HTTPS by axum-server with the same hyper settings and
//! [`LimitAcceptor`] under the TLS acceptor.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body as _;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
#[cfg(feature = "tls")]
use {
    std::pin::Pin,
    std::task::{Context, Poll},
    tokio::io::{AsyncRead, AsyncWrite, ReadBuf},
    tokio::net::TcpStream,
};

/// How long open connections get to finish their requests once shutdown starts.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts per client IP address (connections, or requests in progress), with a cap.
#[derive(Debug)]
pub(crate) struct PerClient {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection or request; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    owner: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    pub(crate) fn new(max: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, unless it already holds `max`. An IPv4 address and its IPv6-mapped
    /// form are the same client.
    pub(crate) fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

/// Middleware: caps the requests one client address has in progress (429 beyond), and reads
/// a request body completely within the body deadline (408 when it does not arrive, 413 when
/// it is larger than allowed) before the handler runs. Requests without a known peer address
/// (the router mounted in another server) are not counted.
pub(crate) async fn limit_requests(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let _slot = match peer {
        Some(ip) => match st.requests.try_take(ip) {
            Some(s) => Some(s),
            None => {
                st.metrics.requests_limited.fetch_add(1, Ordering::Relaxed);
                return closing(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests in progress from this address; retry shortly",
                ));
            }
        },
        None => None,
    };
    // Ingest batches have their own limit (`ingest_max_body_bytes`).
    let max_body = if req.uri().path() == "/v1/ingest" {
        st.ingest_max_body_bytes
    } else {
        st.max_body_bytes
    };
    let hint = req.body().size_hint();
    if hint.lower() > max_body as u64 {
        // A Content-Length above the limit: refused before any of the body is read, not
        // after waiting for it.
        return closing(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body of {} bytes is above the limit of {} bytes",
                hint.lower(),
                max_body
            ),
        ));
    }
    if hint.exact() == Some(0) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, max_body).collect();
    let bytes = match tokio::time::timeout(st.body_timeout, read).await {
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    st.body_timeout.as_millis()
                ),
            ))
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return closing(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body above the limit of {max_body} bytes"),
            ))
        }
        Ok(Err(e)) => {
            return closing(ApiError::bad_request(format!(
                "cannot read request body: {e}"
            )))
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `err` as a response that ends the connection (`Connection: close`): it is sent before the
/// request body was read to its end, so the server will not read another request from this
/// connection, and a client that kept it for its next request would see that request fail.
fn closing(err: ApiError) -> Response {
    let mut r = err.into_response();
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}

/// Serves plain HTTP/1.1 on `listener` until `shutdown` completes, then lets open connections
/// finish (idle ones close at once) for at most [`DRAIN_TIMEOUT`].
pub(crate) async fn serve_http(
    listener: TcpListener,
    router: Router,
    st: Arc<AppState>,
    connections: Arc<PerClient>,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; `recv` returns None once all are gone.
    let (live_tx, mut live_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = connections.try_take(peer.ip()) else {
            st.metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "too many connections from this address; closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = router.clone().layer(axum::Extension(ConnectInfo(peer)));
        let service = hyper_util::service::TowerToHyperService::new(app);
        let mut stop = stop_rx.clone();
        let live = live_tx.clone();
        let conn_st = st.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _live = live;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let stream = crate::wire::JsonErrors::new(stream, conn_st);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(live_tx);
    if tokio::time::timeout(DRAIN_TIMEOUT, live_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// A connection counted against its client's cap while it is open.
#[cfg(feature = "tls")]
pub(crate) struct Counted<S> {
    inner: S,
    _slot: Slot,
}

#[cfg(feature = "tls")]
impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[cfg(feature = "tls")]
impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// axum-server acceptor (under the TLS one): closes a connection beyond its client's cap
/// before the handshake, and counts the others while they are open.
#[cfg(feature = "tls")]
#[derive(Clone)]
pub(crate) struct LimitAcceptor {
    pub(crate) connections: Arc<PerClient>,
    pub(crate) st: Arc<AppState>,
}

#[cfg(feature = "tls")]
impl<S> axum_server::accept::Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Counted<TcpStream>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted<TcpStream>, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let admitted = stream.peer_addr().and_then(|peer| {
            self.connections.try_take(peer.ip()).ok_or_else(|| {
                self.st
                    .metrics
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                io::Error::other("too many connections from this address")
            })
        });
        std::future::ready(admitted.map(|slot| {
            let _ = stream.set_nodelay(true);
            (
                Counted {
                    inner: stream,
                    _slot: slot,
                },
                service,
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_address_and_given_back() {
        let p = PerClient::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = p.try_take(a).unwrap();
        let s2 = p.try_take(mapped).unwrap();
        assert!(p.try_take(a).is_none(), "third slot for the same client");
        let s3 = p.try_take(b).unwrap();
        assert_eq!((p.held(a), p.held(b)), (2, 1));
        drop(s1);
        let s4 = p.try_take(a).unwrap();
        drop((s2, s3, s4));
        assert_eq!((p.held(a), p.held(b)), (0, 0));
        assert!(p.counts.lock().unwrap().is_empty());
    }
}
