//! Ward's findings API and web console.
//!
//! * `/v1/...`: REST JSON over the [`FindingStore`] (list with the SCC-style filter grammar,
//!   get, related, `:setState`, `:setMute`, categories) and the OpenAPI 3 document at
//!   `/v1/openapi.json`. Documented in `docs/api.md`.
//! * `/`: the console, a hand-written HTML/CSS/JS app embedded in the binary
//!   (`assets/`); it renders every finding string with `textContent`, never as HTML, and the
//!   server sends a strict Content-Security-Policy.
//! * `/healthz` and `/metrics` (Prometheus text).
//!
//! Embedding: `ward serve` uses [`Server`]; the agent can run the same [`Server`] on its own
//! tokio runtime, or mount [`Server::router`] in a larger axum app.

mod auth;
mod config;
mod console;
mod error;
mod ingest;
mod limits;
mod metrics;
#[cfg(feature = "tls")]
mod mtls;
pub mod outputs;
pub mod prometheus;
mod v1;
mod wire;

pub use auth::{Auth, Denied};
pub use config::{
    ApiConfig, ConfigError, Scope, TlsConfig, TokenConfig, DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT, DEFAULT_INGEST_MAX_BODY_BYTES, DEFAULT_INGEST_MAX_FINDINGS,
    DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    DEFAULT_MAX_REQUESTS_PER_CLIENT, MIN_TOKEN_LEN,
};
pub use error::ApiError;
pub use metrics::Metrics;
pub use v1::{DEFAULT_WINDOW_MINUTES, MAX_WINDOW_MINUTES, OPENAPI_JSON};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use ward_store::{FindingStore, NodeStore};

/// Longest request URI accepted (bytes); longer ones get 414. A filter of the longest length
/// accepted (4096 bytes), every byte percent-encoded, plus a page token fits, so an overlong
/// filter gets the filter's own 400 rather than a 414.
pub const MAX_URI_LEN: usize = 16 * 1024;

/// The Content-Security-Policy sent with every response: scripts, styles and connections only
/// from this origin, no inline script or style, no eval, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// What the handlers share.
pub struct AppState {
    pub(crate) store: Arc<dyn FindingStore>,
    pub(crate) auth: Auth,
    pub(crate) metrics: Metrics,
    pub(crate) tls: bool,
    /// `totalSize` per filter, for `count_ttl`; cleared by writes through the API.
    pub(crate) counts: std::sync::Mutex<std::collections::HashMap<String, (Instant, u64)>>,
    /// How long a count is reused, in milliseconds ([`COUNT_CACHE_TTL`] unless changed with
    /// [`Server::set_count_cache_ttl`]); 0 disables the cache.
    pub(crate) count_ttl_ms: std::sync::atomic::AtomicU64,
    /// Requests in progress per client address (`max_requests_per_client`).
    pub(crate) requests: Arc<limits::PerClient>,
    pub(crate) body_timeout: std::time::Duration,
    pub(crate) max_body_bytes: usize,
    /// The node registry (a collector, `ward serve`); `None` in `ward agent --serve`.
    pub(crate) nodes: Option<Arc<dyn NodeStore>>,
    /// SHA-256 of the enrollment secret; `None`: enrollment off.
    pub(crate) enrollment_secret: Option<[u8; 32]>,
    pub(crate) ingest_max_findings: usize,
    pub(crate) ingest_max_body_bytes: usize,
    /// `[api] node_stale_after`, for `GET /v1/nodes`.
    pub(crate) node_stale_after: std::time::Duration,
}

/// How long a filter's `totalSize` is reused by default. Counts are exact and, at a million
/// findings, take from microseconds (filters on severity, state, mute and category, summed from
/// per-class counts) to tens of milliseconds (a contains filter matching a fifth of them);
/// the cache spares repeated counts while someone pages. Pages themselves stay exact (keyset);
/// only the total may lag writes made outside this server (the agent) by this much.
pub const COUNT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Most filters whose counts are kept.
const COUNT_CACHE_MAX: usize = 256;

impl AppState {
    fn count_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.count_ttl_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn cached_count(&self, filter: &str) -> Option<u64> {
        let ttl = self.count_ttl();
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.get(filter)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, n)| *n)
    }

    pub(crate) fn store_count(&self, filter: &str, n: u64) {
        let ttl = self.count_ttl();
        if ttl.is_zero() {
            return;
        }
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= COUNT_CACHE_MAX {
            c.retain(|_, (at, _)| at.elapsed() < ttl);
            if c.len() >= COUNT_CACHE_MAX {
                c.clear();
            }
        }
        c.insert(filter.to_string(), (Instant::now(), n));
    }

    pub(crate) fn forget_counts(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A configured API server (not yet listening).
pub struct Server {
    config: ApiConfig,
    state: Arc<AppState>,
    ephemeral_token: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.config.listen)
            .field("auth", &self.state.auth)
            .finish()
    }
}

impl Server {
    /// Validates the configuration (tokens required off loopback, token files readable, TLS
    /// available) and resolves the tokens. With no token configured (loopback only), makes an
    /// ephemeral write token ([`Server::ephemeral_write_token`]).
    pub fn new(config: ApiConfig, store: Arc<dyn FindingStore>) -> Result<Server, ConfigError> {
        Server::with_nodes(config, store, None)
    }

    /// [`Server::new`] for a collector: with a node registry (usually the same store), it
    /// serves enrollment (when `enrollment_secret` is configured), ingest and `/v1/nodes`.
    pub fn with_nodes(
        config: ApiConfig,
        store: Arc<dyn FindingStore>,
        nodes: Option<Arc<dyn NodeStore>>,
    ) -> Result<Server, ConfigError> {
        config.validate()?;
        // mTLS: the CA file (and the certificate and key it goes with) are read now, so a
        // wrong path stops the start before it listens; `Bound::run` builds it again.
        #[cfg(feature = "tls")]
        if let (Some(tls), Some(ca)) = (&config.tls, &config.client_ca_file) {
            mtls::server_config(tls, ca)?;
        }
        let enrollment_secret = config.resolve_enrollment_secret()?.map(|s| {
            use sha2::Digest;
            let d: [u8; 32] = sha2::Sha256::digest(s.as_bytes()).into();
            d
        });
        let (auth, ephemeral_token) = if config.tokens.is_empty() {
            let (a, t) = Auth::ephemeral()?;
            (a, Some(t))
        } else {
            (Auth::from_config(&config.tokens)?, None)
        };
        if !config.listen.ip().is_loopback() && config.tls.is_none() {
            tracing::warn!(listen = %config.listen, "serving the API off loopback without TLS: tokens travel in clear text");
        }
        // `[api] default_cluster` / `default_project`: every finding written through this
        // server's store (the ingest path included) that names none gets them.
        let defaults = config.resource_defaults();
        let store: Arc<dyn FindingStore> = if defaults.is_empty() {
            store
        } else {
            Arc::new(ward_store::WithResourceDefaults::new(store, defaults))
        };
        Ok(Server {
            state: Arc::new(AppState {
                store,
                auth,
                metrics: Metrics::default(),
                tls: config.tls.is_some(),
                counts: Default::default(),
                count_ttl_ms: std::sync::atomic::AtomicU64::new(COUNT_CACHE_TTL.as_millis() as u64),
                requests: limits::PerClient::new(config.max_requests_per_client),
                body_timeout: config.body_timeout,
                max_body_bytes: config.max_body_bytes,
                nodes,
                enrollment_secret,
                ingest_max_findings: config.ingest_max_findings,
                ingest_max_body_bytes: config.ingest_max_body_bytes,
                node_stale_after: config.node_stale_after,
            }),
            config,
            ephemeral_token,
        })
    }

    /// The store as this server writes to it: with `[api] default_cluster` /
    /// `default_project` applied to every upsert (`ward_store::WithResourceDefaults`). A
    /// handler or process that adds findings through the server (ingest) writes here.
    pub fn store(&self) -> Arc<dyn FindingStore> {
        self.state.store.clone()
    }

    /// The write token made at start when none was configured (loopback only).
    pub fn ephemeral_write_token(&self) -> Option<&str> {
        self.ephemeral_token.as_deref()
    }

    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// How long a filter's `totalSize` is reused ([`COUNT_CACHE_TTL`] by default); zero counts
    /// on every request (the benchmark measures that).
    pub fn set_count_cache_ttl(&self, ttl: std::time::Duration) {
        self.state.count_ttl_ms.store(
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.state.forget_counts();
    }

    /// The whole app: `/v1`, `/healthz`, `/metrics` and (unless disabled) the console.
    pub fn router(&self) -> Router {
        router(self.state.clone(), &self.config)
    }

    /// Binds the listen address (port 0 picks a free port).
    pub async fn bind(self) -> Result<Bound, ServeError> {
        let addr = self.config.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = listener.local_addr()?;
        Ok(Bound {
            router: self.router(),
            local,
            listener,
            tls: self.config.tls.clone(),
            client_ca: self.config.client_ca_file.clone(),
            ephemeral_token: self.ephemeral_token,
            state: self.state,
            connections: limits::PerClient::new(self.config.max_connections_per_client),
            header_timeout: self.config.header_timeout,
        })
    }
}

/// A server bound to its address; [`Bound::run`] serves until shutdown.
pub struct Bound {
    router: Router,
    local: SocketAddr,
    listener: tokio::net::TcpListener,
    tls: Option<TlsConfig>,
    /// `[api] client_ca_file`: client certificates required and verified (mTLS).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    client_ca: Option<std::path::PathBuf>,
    ephemeral_token: Option<String>,
    state: Arc<AppState>,
    /// Open connections per client address (`max_connections_per_client`).
    connections: Arc<limits::PerClient>,
    header_timeout: std::time::Duration,
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `http(s)://addr/`, plus `#token=...` carrying the ephemeral write token (the fragment
    /// never reaches a server or a Referer; the console moves it to sessionStorage and
    /// removes it from the address bar).
    pub fn console_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = match self.local.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        let mut url = format!("{scheme}://{host}:{}/", self.local.port());
        if let Some(t) = &self.ephemeral_token {
            url.push_str("#token=");
            url.push_str(t);
        }
        url
    }

    /// Serves until `shutdown` completes, then lets open requests finish (at most 10 s).
    /// Every connection gets `header_timeout` to send each request's headers and counts
    /// against its client address's `max_connections_per_client`.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        match self.tls {
            None => {
                tracing::info!(addr = %self.local, "serving HTTP");
                limits::serve_http(
                    self.listener,
                    self.router,
                    self.state,
                    self.connections,
                    self.header_timeout,
                    shutdown,
                )
                .await?;
                Ok(())
            }
            #[cfg(feature = "tls")]
            Some(tls) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let cfg = match &self.client_ca {
                    None => {
                        axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                            .await
                            .map_err(|e| {
                                ConfigError::Tls(format!(
                                    "{} / {}: {e}",
                                    tls.cert.display(),
                                    tls.key.display()
                                ))
                            })?
                    }
                    Some(ca) => {
                        let sc = mtls::server_config(&tls, ca)?;
                        tracing::info!(client_ca = %ca.display(), "client certificates required (mTLS)");
                        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(sc))
                    }
                };
                let handle = axum_server::Handle::new();
                let h = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    h.graceful_shutdown(Some(limits::DRAIN_TIMEOUT));
                });
                tracing::info!(addr = %self.local, "serving HTTPS");
                let std_listener = self.listener.into_std()?;
                let limit = limits::LimitAcceptor {
                    connections: self.connections,
                    st: self.state.clone(),
                };
                let mut server = axum_server::from_tcp_rustls(std_listener, cfg)
                    .map(|tls| wire::JsonErrorsAcceptor {
                        inner: tls.acceptor(limit),
                        st: self.state,
                    })
                    .handle(handle);
                server
                    .http_builder()
                    .http1()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(self.header_timeout);
                server
                    .serve(
                        self.router
                            .into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .await?;
                Ok(())
            }
            #[cfg(not(feature = "tls"))]
            Some(_) => Err(ConfigError::TlsUnsupported.into()),
        }
    }
}

/// Builds the app on a shared state.
fn router(state: Arc<AppState>, config: &ApiConfig) -> Router {
    let guarded = Router::new()
        .route("/v1/findings", get(v1::list_findings))
        .route(
            "/v1/findings/{id}",
            get(v1::get_finding).post(v1::finding_action),
        )
        .route("/v1/findings/{id}/related", get(v1::related))
        .route("/v1/categories", get(v1::categories))
        .route("/v1/nodes", get(ingest::list_nodes))
        .route("/v1/nodes/{name}", post(ingest::node_action))
        .route("/metrics", get(metrics_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(v1::openapi))
        // Fleet: their own credentials (the enrollment secret, a node token).
        .route("/v1/enroll", post(ingest::enroll))
        .route(
            "/v1/ingest",
            post(ingest::ingest).layer(DefaultBodyLimit::max(config.ingest_max_body_bytes)),
        )
        .merge(guarded);
    if config.console {
        app = app.merge(console::routes());
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_requests,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn metrics_handler(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

/// Reads need `read` (when tokens are configured), anything else needs `write`.
async fn require_token(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let needed = if req.method() == Method::GET || req.method() == Method::HEAD {
        Scope::Read
    } else {
        Scope::Write
    };
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match st.auth.check(authz, needed) {
        Ok(()) => next.run(req).await,
        Err(d) => {
            st.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            match d {
                Denied::Unauthenticated => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    format!(
                        "a bearer token with the '{}' scope is required",
                        needed.as_str()
                    ),
                ),
                Denied::Forbidden => ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("this token lacks the '{}' scope", needed.as_str()),
                ),
            }
            .into_response()
        }
    }
}

/// Loopback host names (with an optional port): `localhost`, `127.x.x.x`, `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// The security headers every response carries (HSTS only over TLS); `Cache-Control` is
/// added separately, only where a response sets none.
pub(crate) fn security_headers(
    tls: bool,
) -> impl Iterator<Item = (header::HeaderName, HeaderValue)> {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
    .into_iter()
    .chain(tls.then(|| {
        (
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    }))
}

/// True for `/v1/findings/{id}:setState` and `:setMute` (axum routes them as `/v1/findings/{id}`).
pub(crate) fn is_custom_method_path(path: &str) -> bool {
    path.strip_prefix("/v1/findings/")
        .is_some_and(|rest| !rest.contains('/') && rest.rsplit_once(':').is_some())
}

/// A 405 names the methods the resource has (RFC 9110 section 15.5.6): `POST` on a custom
/// method, `GET, HEAD` on a finding (whose POST needs a custom method); elsewhere axum's own.
fn set_allow(path: &str, resp: &mut Response) {
    let allow = if is_custom_method_path(path) {
        "POST"
    } else if path
        .strip_prefix("/v1/findings/")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    {
        "GET,HEAD"
    } else {
        return;
    };
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
}

/// RFC 9112 section 3.2: exactly one `Host` on HTTP/1.1, at most one on HTTP/1.0.
fn host_error(req: &Request) -> Option<ApiError> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        Some(ApiError::bad_request(format!(
            "{hosts} Host header fields; a request carries exactly one"
        )))
    } else if hosts == 0 && req.version() >= axum::http::Version::HTTP_11 {
        Some(ApiError::bad_request(
            "an HTTP/1.1 request must carry a Host header field",
        ))
    } else {
        None
    }
}

/// Longest error body read back from a non-JSON error response (axum's extractor rejections
/// are one line of text).
const MAX_REJECTION_BYTES: usize = 4096;

/// An error response that is not JSON yet (an axum extractor's rejection: a path segment
/// that is not UTF-8, say) rewritten into the documented error shape, its text as the message.
async fn as_json_error(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), MAX_REJECTION_BYTES).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
    };
    ApiError::new(status, text).into_response()
}

/// Outermost layer: URI length, `Host` rules, DNS-rebinding guard, error shape, security
/// headers, metrics.
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    st.metrics.start();
    let mut resp = if req.uri().to_string().len() > MAX_URI_LEN {
        ApiError::new(StatusCode::URI_TOO_LONG, "request URI too long").into_response()
    } else if let Some(e) = host_error(&req) {
        e.into_response()
    } else if !st.auth.reads_need_token()
        && req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| !is_loopback_host(h))
    {
        // With open reads (loopback, no configured token) a page on another site could reach
        // us through DNS rebinding; such requests carry that site's host name.
        ApiError::new(
            StatusCode::FORBIDDEN,
            "this server answers only loopback host names (configure tokens to serve others)",
        )
        .into_response()
    } else {
        as_json_error(next.run(req).await).await
    };
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        set_allow(&path, &mut resp);
    }
    let route = route
        .or_else(|| {
            resp.extensions()
                .get::<MatchedPath>()
                .map(|m| m.as_str().to_string())
        })
        .unwrap_or_else(|| "unmatched".to_string());
    let h = resp.headers_mut();
    for (name, value) in security_headers(st.tls) {
        h.insert(name, value);
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    st.metrics.finish(
        method.as_str(),
        &route,
        resp.status().as_u16(),
        start.elapsed(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "[::1]",
            "127.1.2.3:9",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil:80",
            "[::2]:80",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
