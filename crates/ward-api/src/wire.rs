//! The answers hyper gives on its own, made to look like every other error.
//!
//! hyper's HTTP/1 server answers some malformed requests before any service sees them: a
//! request line, header or `Content-Length` it cannot parse (400), a URI above 65,534 bytes
//! (414), a head larger than its read buffer or with more than 100 fields (431). It writes a
//! bare head (`HTTP/1.1 400 Bad Request`, `content-length: 0`, no body, none of our headers)
//! and closes the connection. hyper 1.x has no hook for these responses (`Role::on_error` is
//! private; the connection future only returns the error after the bytes are written), so
//! [`JsonErrors`] wraps the connection's byte stream under hyper: a write that starts a
//! response head with one of those statuses and lacks the `Content-Security-Policy` field,
//! which every response from the router carries (the guard adds it), can only be hyper's
//! own, and is replaced by the documented JSON error with the security headers. hyper flushes
//! each response before it reads the next request head, so its automatic head always starts
//! a write.

use crate::error::ApiError;
use crate::AppState;
use axum::http::StatusCode;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The statuses hyper writes by itself (`hyper::proto::h1::role::Server::on_error`).
const HYPER_STATUSES: [StatusCode; 3] = [
    StatusCode::BAD_REQUEST,
    StatusCode::URI_TOO_LONG,
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
];

/// A connection's byte stream whose hyper-made error heads are replaced by JSON errors.
pub(crate) struct JsonErrors<S> {
    inner: S,
    /// For `tls` (HSTS) and the `requests_unparsed` counter.
    st: Arc<AppState>,
    /// The replacement response, and how much of it is written.
    pending: Vec<u8>,
    sent: usize,
}

impl<S> JsonErrors<S> {
    pub(crate) fn new(inner: S, st: Arc<AppState>) -> JsonErrors<S> {
        JsonErrors {
            inner,
            st,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

/// The status of a response head hyper wrote by itself, if `buf` starts one.
pub(crate) fn hypers_own(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    if !HYPER_STATUSES.contains(&status) {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = buf[..end].to_ascii_lowercase();
    let ours = head
        .windows(b"\ncontent-security-policy:".len())
        .any(|w| w == b"\ncontent-security-policy:");
    (!ours).then_some(status)
}

/// The whole response sent instead of hyper's head for `status`.
pub(crate) fn replacement(status: StatusCode, tls: bool) -> Vec<u8> {
    let message = match status {
        StatusCode::URI_TOO_LONG => "request URI too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "request header fields too large (too many or too long)"
        }
        _ => "malformed HTTP request: the request line, a header field or Content-Length cannot be parsed",
    };
    let body = ApiError::new(status, message).body_json();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    for (name, value) in crate::security_headers(tls) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes over `first` (and the rest of the write, `len` bytes in all) when it is hyper's.
    fn intercept(&mut self, first: &[u8]) -> bool {
        match hypers_own(first) {
            Some(status) => {
                tracing::debug!(status = status.as_u16(), "hyper refused a request head");
                self.st
                    .metrics
                    .requests_unparsed
                    .fetch_add(1, Ordering::Relaxed);
                self.pending = replacement(status, self.st.tls);
                self.sent = 0;
                true
            }
            None => false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_pending(cx))?;
        if me.intercept(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut me.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_pending(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if me.intercept(first) {
                return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
            }
        }
        Pin::new(&mut me.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_pending(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_pending(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

/// axum-server acceptor (over the TLS one) that wraps each decrypted stream in [`JsonErrors`].
#[cfg(feature = "tls")]
#[derive(Clone)]
pub(crate) struct JsonErrorsAcceptor<A> {
    pub(crate) inner: A,
    pub(crate) st: Arc<AppState>,
}

#[cfg(feature = "tls")]
impl<A, I, S> axum_server::accept::Accept<I, S> for JsonErrorsAcceptor<A>
where
    A: axum_server::accept::Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = JsonErrors<A::Stream>;
    type Service = A::Service;
    type Future = Pin<
        Box<dyn std::future::Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>,
    >;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let st = self.st.clone();
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((JsonErrors::new(stream, st), service))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_error_heads_are_taken() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hypers_own(hyper), Some(StatusCode::BAD_REQUEST));
        let h414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hypers_own(h414), Some(StatusCode::URI_TOO_LONG));
        // The router's responses carry the CSP; 100 Continue and 200s are never taken.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     content-security-policy: default-src 'none'\r\n\r\n{}";
        assert_eq!(hypers_own(ours), None);
        assert_eq!(hypers_own(b"HTTP/1.1 100 Continue\r\n\r\n"), None);
        assert_eq!(hypers_own(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(hypers_own(b"{\"error\":1}"), None);
        // A head not complete in this write is not hyper's (it writes its head whole).
        assert_eq!(hypers_own(b"HTTP/1.1 400 Bad Request\r\n"), None);
        let r = String::from_utf8(replacement(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            false,
        ))
        .unwrap();
        assert!(
            r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{r}"
        );
        assert!(
            r.contains("\r\ncontent-security-policy: default-src 'none'"),
            "{r}"
        );
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{r}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], 431);
    }
}
