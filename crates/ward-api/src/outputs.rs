//! The HTTP outputs, here because `ward-api` is the one crate that speaks HTTP: a generic
//! webhook (one JSON document per POST, optional HMAC-SHA256 signature, custom headers) and
//! falcosidekick (Falco's alert JSON POSTed to its `/` endpoint). Both implement
//! `ward_output::FindingSink`; the driver runs each on its own thread, so the client is
//! blocking. A batch is acknowledged when every POST of it got a 2xx answer; anything else
//! (refused, reset, timeout, 4xx, 5xx) fails the batch, which the driver retries (a receiver
//! that took the first findings of a batch gets them again: same `name`).

use std::time::Duration;
use ward_output::format::Context;
use ward_output::local::Encoder;
use ward_output::spec::{OutputKind, OutputSpec, SpecError};
use ward_output::{FindingSink, Item, SinkError};

pub struct HttpSink {
    client: reqwest::blocking::Client,
    url: String,
    encoder: Encoder,
    headers: reqwest::header::HeaderMap,
    hmac: Option<(ring::hmac::Key, reqwest::header::HeaderName)>,
}

impl HttpSink {
    /// Builds the sink; `at` names the entry in errors (`outputs[1]`). A bad URL, header,
    /// unreadable CA file or HMAC key is an error naming its key.
    pub fn new(spec: &OutputSpec, ctx: &Context, at: &str) -> Result<HttpSink, SpecError> {
        let bad = |k: &str, m: String| SpecError {
            key: format!("{at}.{k}"),
            message: m,
        };
        spec.check(at)?;
        if !spec.kind.is_http() {
            return Err(bad("kind", "not an HTTP output".into()));
        }
        let url = spec.url.clone().unwrap_or_default();
        let parsed = reqwest::Url::parse(&url).map_err(|e| bad("url", format!("{url:?}: {e}")))?;
        if parsed.host_str().is_none() {
            return Err(bad("url", format!("{url:?} names no host")));
        }
        let client = client(spec, at)?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        for (k, v) in &spec.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad("headers", format!("{k:?}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| bad("headers", format!("{k:?}: {e}")))?;
            headers.insert(name, value);
        }
        let hmac = match spec.hmac_key(at)? {
            Some(key) => {
                let name =
                    reqwest::header::HeaderName::from_bytes(spec.signature_header.as_bytes())
                        .map_err(|e| {
                            bad(
                                "signature_header",
                                format!("{:?}: {e}", spec.signature_header),
                            )
                        })?;
                Some((ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key), name))
            }
            None => None,
        };
        Ok(HttpSink {
            client,
            url,
            encoder: Encoder::for_spec(spec, ctx),
            headers,
            hmac,
        })
    }

    fn post(&self, body: String) -> Result<(), SinkError> {
        let mut req = self.client.post(&self.url).headers(self.headers.clone());
        if let Some((key, name)) = &self.hmac {
            let tag = ring::hmac::sign(key, body.as_bytes());
            req = req.header(
                name.clone(),
                format!("sha256={}", hex::encode(tag.as_ref())),
            );
        }
        let resp = req.body(body).send().map_err(|e| SinkError::Rejected {
            target: self.url.clone(),
            message: format!("POST failed: {}", error_chain(&e)),
        })?;
        let status = resp.status();
        // Read the answer so the connection can be reused; its content is not checked (a 2xx
        // is the acknowledgement).
        let _ = resp.bytes();
        if status.is_success() {
            Ok(())
        } else {
            Err(SinkError::Rejected {
                target: self.url.clone(),
                message: format!("answered {status}"),
            })
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl FindingSink for HttpSink {
    fn write_batch(&mut self, batch: &[Item]) -> Result<(), SinkError> {
        for i in batch {
            self.post(self.encoder.encode(&i.finding))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// Builds the HTTP sink for a webhook, falcosidekick or central entry; `None` for other
/// kinds.
pub fn build(
    spec: &OutputSpec,
    ctx: &Context,
    at: &str,
) -> Option<Result<Box<dyn FindingSink>, SpecError>> {
    match spec.kind {
        OutputKind::Webhook | OutputKind::Falcosidekick => {
            Some(HttpSink::new(spec, ctx, at).map(|s| Box::new(s) as Box<dyn FindingSink>))
        }
        OutputKind::Central => {
            Some(CentralSink::new(spec, ctx, at).map(|s| Box::new(s) as Box<dyn FindingSink>))
        }
        _ => None,
    }
}

/// The HTTP client the HTTP outputs share: timeouts, no redirects, rustls with the web
/// roots plus `ca_file`.
fn client(spec: &OutputSpec, at: &str) -> Result<reqwest::blocking::Client, SpecError> {
    let bad = |k: &str, m: String| SpecError {
        key: format!("{at}.{k}"),
        message: m,
    };
    let mut b = reqwest::blocking::Client::builder()
        .timeout(spec.timeout)
        .connect_timeout(spec.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ward/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30));
    if let Some(ca) = &spec.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| bad("ca_file", format!("cannot read {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad("ca_file", format!("{}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(bad(
                "ca_file",
                format!("{}: no PEM certificate in it", ca.display()),
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    // A client certificate for a collector that requires one (mTLS, `[api] client_ca_file`);
    // `OutputSpec::check` made sure both files or neither are named.
    if let (Some(cert), Some(key)) = (&spec.client_cert_file, &spec.client_key_file) {
        let read = |k: &str, p: &std::path::Path| {
            std::fs::read(p).map_err(|e| bad(k, format!("cannot read {}: {e}", p.display())))
        };
        let mut pem = read("client_key_file", key)?;
        pem.push(b'\n');
        pem.extend(read("client_cert_file", cert)?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
            bad(
                "client_cert_file",
                format!("{} / {}: {e}", cert.display(), key.display()),
            )
        })?;
        b = b.identity(id);
    }
    b.build()
        .map_err(|e| bad("url", format!("cannot build the HTTP client: {e}")))
}

/// The `central` output: this node's findings to a Ward collector's `POST /v1/ingest`.
///
/// * **Identity.** The node token is read from `token_file`; without one, the first write
///   (or heartbeat) enrolls at `POST /v1/enroll` with the enrollment secret and stores the
///   token there (mode 0600, written aside and renamed). A refused token (401: revoked or
///   unknown) is reported in the sink's health and retried with the driver's backoff; the
///   sink never enrolls again by itself (revocation would mean nothing), the operator removes
///   the token file.
/// * **Delivery.** A batch is one POST; the collector writes it whole or not at all, so a
///   retry after any failure is safe (same names, idempotent). A 400 or 403 for a batch is
///   retried finding by finding, and a single finding the collector refuses is skipped
///   (counted in its health): one bad record never stops the output.
/// * **Failover.** `url` may list several collectors (comma-separated) over one database; a
///   connection failure, a timeout or a 5xx moves to the next for the next attempt.
/// * **Heartbeat.** An empty batch every `heartbeat` when nothing else was sent.
pub struct CentralSink {
    client: reqwest::blocking::Client,
    urls: Vec<String>,
    current: usize,
    node: String,
    version: String,
    privacy: ward_output::Privacy,
    token: Option<String>,
    token_file: Option<std::path::PathBuf>,
    secret: Option<String>,
    heartbeat: Duration,
    last_sent: Option<std::time::Instant>,
    board: ward_output::format::HealthBoard,
    status: String,
    skipped: u64,
    heartbeats: u64,
}

/// Why a POST to the collector failed.
enum Refusal {
    /// Not reachable, a timeout, a 5xx, 429: try another collector, retry later.
    Unavailable(String),
    /// 401: the token is not (or no longer) valid.
    Unauthorized(String),
    /// 400/403/413 and other 4xx: this request will not be accepted as it is.
    Rejected(u16, String),
    /// No token could be had (enrollment refused or impossible): nothing to send with.
    Enroll(String),
}

impl CentralSink {
    pub fn new(spec: &OutputSpec, ctx: &Context, at: &str) -> Result<CentralSink, SpecError> {
        let bad = |k: &str, m: String| SpecError {
            key: format!("{at}.{k}"),
            message: m,
        };
        spec.check(at)?;
        let urls: Vec<String> = spec
            .url
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .collect();
        for u in &urls {
            let p = reqwest::Url::parse(u).map_err(|e| bad("url", format!("{u:?}: {e}")))?;
            if p.host_str().is_none() {
                return Err(bad("url", format!("{u:?} names no host")));
            }
        }
        if ctx.hostname.is_empty() {
            return Err(bad(
                "kind",
                "a central output needs this node's name (ward agent --node-name, ward replay --node-name)".into(),
            ));
        }
        ward_store::check_node_name(&ctx.hostname).map_err(|m| bad("kind", m))?;
        let secret = match (&spec.enrollment_secret, &spec.enrollment_secret_file) {
            (Some(s), _) => Some(s.trim().to_string()),
            (None, Some(p)) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| {
                        bad(
                            "enrollment_secret_file",
                            format!("cannot read {}: {e}", p.display()),
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => std::env::var("WARD_ENROLLMENT_SECRET")
                .ok()
                .map(|s| s.trim().to_string()),
        }
        .filter(|s| !s.is_empty());
        let token_file = spec.token_file.clone().or_else(|| {
            ctx.state_path.as_ref().map(|db| {
                let mut p = db.as_os_str().to_owned();
                p.push(".central.token");
                std::path::PathBuf::from(p)
            })
        });
        let token = match &token_file {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(bad(
                        "token_file",
                        format!("cannot read {}: {e}", p.display()),
                    ))
                }
            },
            None => None,
        };
        if token.is_none() && secret.is_none() {
            return Err(bad(
                "enrollment_secret",
                format!(
                    "no node token{} and no enrollment secret to get one (enrollment_secret, enrollment_secret_file or WARD_ENROLLMENT_SECRET)",
                    token_file
                        .as_ref()
                        .map(|p| format!(" in {}", p.display()))
                        .unwrap_or_default()
                ),
            ));
        }
        if token_file.is_none() {
            tracing::warn!(output = %at, "central output without a token_file or database: the node token is kept in memory only, the next start enrolls again (and gets 409 until the node is revoked)");
        }
        Ok(CentralSink {
            client: client(spec, at)?,
            urls,
            current: 0,
            node: ctx.hostname.clone(),
            version: ctx.version.clone(),
            privacy: spec.privacy(),
            token,
            token_file,
            secret,
            heartbeat: spec.heartbeat,
            last_sent: None,
            board: ctx.health.clone(),
            status: "starting".into(),
            skipped: 0,
            heartbeats: 0,
        })
    }

    fn url(&self) -> &str {
        &self.urls[self.current]
    }

    fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Refusal> {
        let url = format!("{}{path}", self.url());
        let mut req = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .map_err(|e| Refusal::Unavailable(format!("POST {url}: {}", error_chain(&e))))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let msg = v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(200).collect());
        let msg = format!("POST {url} answered {status}: {msg}");
        Err(match status.as_u16() {
            401 => Refusal::Unauthorized(msg),
            408 | 429 => Refusal::Unavailable(msg),
            _ if status.is_server_error() => Refusal::Unavailable(msg),
            s => Refusal::Rejected(s, msg),
        })
    }

    /// The node token: the one held, else one enrolled for now and stored.
    fn token(&mut self) -> Result<String, Refusal> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let Some(secret) = self.secret.clone() else {
            return Err(Refusal::Enroll(
                "no node token and no enrollment secret; configure enrollment_secret".into(),
            ));
        };
        let body = serde_json::json!({
            "node": self.node,
            "secret": secret,
            "agentVersion": self.version,
        });
        let v = match self.post_json("/v1/enroll", None, &body) {
            Ok(v) => v,
            Err(Refusal::Unavailable(m)) => return Err(Refusal::Unavailable(m)),
            Err(Refusal::Rejected(409, m)) => {
                return Err(Refusal::Enroll(format!(
                    "node '{}' is already enrolled at the collector but this agent has no token ({m}); revoke it there (POST /v1/nodes/{}:revoke) to enroll again",
                    self.node, self.node
                )))
            }
            Err(Refusal::Rejected(_, m) | Refusal::Unauthorized(m) | Refusal::Enroll(m)) => {
                return Err(Refusal::Enroll(format!("enrollment refused: {m}")))
            }
        };
        let Some(token) = v["token"].as_str().map(str::to_string) else {
            return Err(Refusal::Enroll(format!(
                "{}: enrollment answer without a token",
                self.url()
            )));
        };
        if let Some(p) = &self.token_file {
            if let Err(e) = write_private(p, &token) {
                // Kept in memory: the node works until it restarts.
                tracing::error!(file = %p.display(), error = %e, "cannot store the node token");
                self.status = format!(
                    "enrolled, but cannot store the token in {}: {e}",
                    p.display()
                );
            }
        }
        tracing::info!(node = %self.node, collector = %self.url(), "enrolled with the collector");
        self.token = Some(token.clone());
        Ok(token)
    }

    fn rejected(&mut self, message: String) -> SinkError {
        self.status = message.clone();
        SinkError::Rejected {
            target: self.describe(),
            message,
        }
    }

    /// Turns a refusal into the sink's error and health; an unavailable collector moves
    /// the next attempt to the next URL.
    fn refused(&mut self, r: Refusal, doing: &str) -> SinkError {
        let message = match r {
            Refusal::Unavailable(m) => {
                self.current = (self.current + 1) % self.urls.len();
                format!("collector unavailable while {doing}: {m}")
            }
            Refusal::Unauthorized(m) => format!(
                "node token refused (revoked or unknown) while {doing}: {m}; findings stay in the outbox; remove {} and restart to enroll again",
                self.token_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the token file".into())
            ),
            Refusal::Rejected(_, m) => format!("{doing}: {m}"),
            Refusal::Enroll(m) => m,
        };
        self.rejected(message)
    }

    fn health_now(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut h = self.board.get();
        h.insert("central_skipped".into(), self.skipped.into());
        h
    }

    /// One POST of these findings (empty: a heartbeat).
    fn send(&mut self, findings: &[&Item]) -> Result<(), Refusal> {
        let token = self.token()?;
        let list: Vec<serde_json::Value> = findings
            .iter()
            .filter_map(|i| {
                serde_json::to_value(
                    ward_output::format::redact(&i.finding, &self.privacy).as_ref(),
                )
                .ok()
            })
            .collect();
        let body = serde_json::json!({
            "node": self.node,
            "agentVersion": self.version,
            "findings": list,
            "health": self.health_now(),
        });
        self.post_json("/v1/ingest", Some(&token), &body)
            .map(|_| ())
    }

    fn delivered(&mut self) {
        self.last_sent = Some(std::time::Instant::now());
        self.status = format!("connected to {}", self.url());
    }
}

/// Writes `text` to `path` with mode 0600: a temp file beside it, fsynced, renamed over.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl FindingSink for CentralSink {
    fn write_batch(&mut self, batch: &[Item]) -> Result<(), SinkError> {
        let all: Vec<&Item> = batch.iter().collect();
        match self.send(&all) {
            Ok(()) => {
                self.delivered();
                Ok(())
            }
            // The collector refuses this batch as it is (a malformed finding, another
            // node's finding, too large): finding by finding, skipping what it refuses.
            Err(Refusal::Rejected(_, m)) => {
                for i in &all {
                    match self.send(std::slice::from_ref(i)) {
                        Ok(()) => {}
                        Err(Refusal::Rejected(_, m)) => {
                            self.skipped += 1;
                            tracing::error!(finding = %i.finding.name, error = %m, "the collector refuses this finding; skipped");
                        }
                        Err(r) => return Err(self.refused(r, "sending findings")),
                    }
                }
                tracing::warn!(error = %m, "a batch was sent finding by finding");
                self.delivered();
                Ok(())
            }
            Err(r) => Err(self.refused(r, "sending findings")),
        }
    }

    fn idle(&mut self) {
        let due = self.last_sent.is_none_or(|t| t.elapsed() >= self.heartbeat);
        if !due {
            return;
        }
        // The next attempt waits a full interval whatever happens (no retry storm).
        self.last_sent = Some(std::time::Instant::now());
        match self.send(&[]) {
            Ok(()) => {
                self.heartbeats += 1;
                self.delivered();
            }
            Err(r) => {
                let e = self.refused(r, "sending a heartbeat");
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    }

    fn describe(&self) -> String {
        format!("central:{}", self.urls.join(","))
    }

    fn health(&self) -> Option<String> {
        let mut s = self.status.clone();
        if self.skipped > 0 {
            s.push_str(&format!(
                "; {} findings refused by the collector and skipped",
                self.skipped
            ));
        }
        Some(s)
    }
}
