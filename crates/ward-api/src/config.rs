//! The API server's configuration: the `[api]` table of Ward's TOML configuration file.
//!
//! ```toml
//! [api]
//! listen = "0.0.0.0:8443"      # default 127.0.0.1:8080
//! max_body_bytes = 65536       # larger request bodies are refused with 413
//! header_timeout = "10s"       # a request's headers must arrive within this (slow-loris)
//! body_timeout = "10s"         # a request body must arrive within this, else 408
//! max_connections_per_client = 64   # per client IP address; more are closed at once
//! max_requests_per_client = 16      # served at once per client IP address; more get 429
//! default_cluster = "prod-eu"  # for findings written here that name no cluster
//! default_project = "shop"     # ... and no project
//!
//! [[api.tokens]]
//! name = "console"             # shown in logs, never the secret
//! scope = "write"              # "read" or "write" (write includes read)
//! token_file = "/etc/ward/console.token"   # or: token = "..." (at least 16 characters)
//!
//! [api.tls]                    # HTTPS (rustls); both files PEM
//! cert = "/etc/ward/tls/cert.pem"
//! key = "/etc/ward/tls/key.pem"
//! ```
//!
//! Tokens may also come from the environment: `WARD_API_READ_TOKEN` and
//! `WARD_API_WRITE_TOKEN` ([`ApiConfig::add_env_tokens`]).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default request body limit (bytes).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Shortest accepted token (characters).
pub const MIN_TOKEN_LEN: usize = 16;
/// Default time a client has to send a request's method, path and headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send a request's body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default most open connections per client IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// Default most requests served at once per client IP address.
pub const DEFAULT_MAX_REQUESTS_PER_CLIENT: usize = 16;
/// Default most findings in one `POST /v1/ingest` batch.
pub const DEFAULT_INGEST_MAX_FINDINGS: usize = 1000;
/// Default largest `POST /v1/ingest` body (bytes): a full batch of large findings.
pub const DEFAULT_INGEST_MAX_BODY_BYTES: usize = 16 << 20;
/// Default time after a node's last batch or heartbeat when `GET /v1/nodes` calls it stale:
/// three heartbeats of the central output's default interval (30 s), so one lost or late
/// heartbeat does not mark a node.
pub const DEFAULT_NODE_STALE_AFTER: Duration = Duration::from_secs(90);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// List and read findings, metrics.
    Read,
    /// Everything `Read` allows, plus set state and mute.
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A label for logs (never the secret itself).
    #[serde(default)]
    pub name: String,
    pub scope: Scope,
    /// The secret, inline. Prefer `token_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the secret (surrounding whitespace is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// Serve the web console at `/` (the API is always served).
    pub console: bool,
    pub tokens: Vec<TokenConfig>,
    pub tls: Option<TlsConfig>,
    /// A client must send a request's method, path and headers within this, counted from
    /// when the server starts waiting for them; an idle keep-alive connection is closed after
    /// it too. Stops slow-loris clients from holding connections open.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request body must arrive completely within this, else 408.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Most connections one client IP address may hold open; further ones are closed as soon
    /// as they are accepted.
    pub max_connections_per_client: usize,
    /// Most requests of one client IP address served at the same time; further ones are
    /// answered 429 with `Retry-After: 1`.
    pub max_requests_per_client: usize,
    /// Cluster given to findings written through this server's store that name none.
    pub default_cluster: String,
    /// Project given to findings written through this server's store that name none.
    pub default_project: String,
    /// The secret agents exchange for a node token at `POST /v1/enroll` (at least 16
    /// characters). Neither this nor `enrollment_secret_file`: enrollment is off (nodes
    /// enrolled before keep their tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment_secret: Option<String>,
    /// A file holding the enrollment secret (surrounding whitespace ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment_secret_file: Option<PathBuf>,
    /// Most findings one `POST /v1/ingest` batch may carry; more get 413.
    pub ingest_max_findings: usize,
    /// Largest `POST /v1/ingest` body in bytes (the other routes keep `max_body_bytes`).
    pub ingest_max_body_bytes: usize,
    /// A node not seen (no batch, no heartbeat) for longer than this is `stale` in
    /// `GET /v1/nodes` and marked so in the console. Keep it a few times the agents'
    /// central output `heartbeat`.
    #[serde(with = "humantime_serde")]
    pub node_stale_after: Duration,
    /// mTLS: PEM CA certificates; with it, the HTTPS listener (`[api.tls]` required) asks
    /// every client for a certificate and refuses the TLS handshake unless one signed by
    /// these CAs is presented. Tokens are still required on top.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            console: true,
            tokens: Vec::new(),
            tls: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            max_requests_per_client: DEFAULT_MAX_REQUESTS_PER_CLIENT,
            default_cluster: String::new(),
            default_project: String::new(),
            enrollment_secret: None,
            enrollment_secret_file: None,
            ingest_max_findings: DEFAULT_INGEST_MAX_FINDINGS,
            ingest_max_body_bytes: DEFAULT_INGEST_MAX_BODY_BYTES,
            node_stale_after: DEFAULT_NODE_STALE_AFTER,
            client_ca_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token '{name}' has neither `token` nor `token_file`")]
    TokenMissing { name: String },
    #[error("token '{name}' sets both `token` and `token_file`; keep one")]
    TokenTwice { name: String },
    #[error("token '{name}' is {len} characters; at least {MIN_TOKEN_LEN} are required")]
    TokenTooShort { name: String, len: usize },
    #[error("refusing to listen on {listen} (not a loopback address) without API tokens: configure [[api.tokens]] or set WARD_API_READ_TOKEN / WARD_API_WRITE_TOKEN")]
    TokensRequired { listen: SocketAddr },
    #[error("TLS is configured but this build of Ward has no TLS support (cargo feature `tls`)")]
    TlsUnsupported,
    #[error("invalid TLS certificate or key: {0}")]
    Tls(String),
    #[error("cannot get randomness from the OS: {0}")]
    Random(String),
    #[error("max_body_bytes must be at least 1024 (got {0})")]
    BodyLimit(usize),
    #[error("api.enrollment_secret and api.enrollment_secret_file are both set; keep one")]
    EnrollmentSecretTwice,
    #[error(
        "the enrollment secret ({from}) is {len} characters; at least {MIN_TOKEN_LEN} are required"
    )]
    EnrollmentSecretTooShort { from: String, len: usize },
    #[error("api.client_ca_file needs HTTPS: configure [api.tls] (cert, key) too")]
    ClientCaWithoutTls,
    #[error("api.client_ca_file {}: {message}", path.display())]
    ClientCa { path: PathBuf, message: String },
    #[error("{key} must be {what}")]
    Limit {
        key: &'static str,
        what: &'static str,
    },
}

impl ApiConfig {
    /// The enrollment secret (read from its file when configured so); `None`: enrollment off.
    pub fn resolve_enrollment_secret(&self) -> Result<Option<String>, ConfigError> {
        let (secret, from) = match (&self.enrollment_secret, &self.enrollment_secret_file) {
            (Some(_), Some(_)) => return Err(ConfigError::EnrollmentSecretTwice),
            (Some(s), None) => (s.trim().to_string(), "api.enrollment_secret".to_string()),
            (None, Some(p)) => (
                std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read {
                        what: "enrollment secret file",
                        path: p.clone(),
                        source,
                    })?
                    .trim()
                    .to_string(),
                p.display().to_string(),
            ),
            (None, None) => return Ok(None),
        };
        let len = secret.chars().count();
        if len < MIN_TOKEN_LEN {
            return Err(ConfigError::EnrollmentSecretTooShort { from, len });
        }
        Ok(Some(secret))
    }

    /// Adds tokens from `WARD_API_READ_TOKEN` and `WARD_API_WRITE_TOKEN` when set.
    pub fn add_env_tokens(&mut self) {
        for (var, scope) in [
            ("WARD_API_READ_TOKEN", Scope::Read),
            ("WARD_API_WRITE_TOKEN", Scope::Write),
        ] {
            if let Ok(v) = std::env::var(var) {
                if !v.trim().is_empty() {
                    self.tokens.push(TokenConfig {
                        name: var.to_string(),
                        scope,
                        token: Some(v.trim().to_string()),
                        token_file: None,
                    });
                }
            }
        }
    }

    /// `default_cluster` / `default_project` as the store applies them.
    pub fn resource_defaults(&self) -> ward_store::ResourceDefaults {
        ward_store::ResourceDefaults {
            cluster: self.default_cluster.trim().to_string(),
            project: self.default_project.trim().to_string(),
        }
    }

    /// Checks what can be checked without the network: limits, tokens present and long
    /// enough, tokens required off loopback.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::BodyLimit(self.max_body_bytes));
        }
        let between = Duration::from_millis(10)..=Duration::from_secs(3600);
        for (key, d) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if !between.contains(&d) {
                return Err(ConfigError::Limit {
                    key,
                    what: "between 10ms and 1h",
                });
            }
        }
        for (key, n) in [
            (
                "max_connections_per_client",
                self.max_connections_per_client,
            ),
            ("max_requests_per_client", self.max_requests_per_client),
        ] {
            if n == 0 {
                return Err(ConfigError::Limit {
                    key,
                    what: "at least 1",
                });
            }
        }
        if self.ingest_max_findings == 0 {
            return Err(ConfigError::Limit {
                key: "ingest_max_findings",
                what: "at least 1",
            });
        }
        if self.ingest_max_body_bytes < 1024 {
            return Err(ConfigError::Limit {
                key: "ingest_max_body_bytes",
                what: "at least 1024",
            });
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&self.node_stale_after)
        {
            return Err(ConfigError::Limit {
                key: "node_stale_after",
                what: "between 1s and 1d",
            });
        }
        if self.enrollment_secret.is_some() && self.enrollment_secret_file.is_some() {
            return Err(ConfigError::EnrollmentSecretTwice);
        }
        if !self.listen.ip().is_loopback() && self.tokens.is_empty() {
            return Err(ConfigError::TokensRequired {
                listen: self.listen,
            });
        }
        if self.tls.is_some() && !cfg!(feature = "tls") {
            return Err(ConfigError::TlsUnsupported);
        }
        if self.client_ca_file.is_some() && self.tls.is_none() {
            return Err(ConfigError::ClientCaWithoutTls);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let c: ApiConfig = toml::from_str(
            "listen = \"0.0.0.0:9443\"\nmax_body_bytes = 4096\n[[tokens]]\nname = \"ci\"\nscope = \"read\"\ntoken = \"0123456789abcdef-read\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(c.max_body_bytes, 4096);
        assert_eq!(c.tokens[0].scope, Scope::Read);
        assert_eq!(c.tls.as_ref().unwrap().cert, PathBuf::from("/c.pem"));
        c.validate().unwrap();
        assert_eq!(
            toml::from_str::<ApiConfig>("").unwrap(),
            ApiConfig::default()
        );
        let c: ApiConfig = toml::from_str(
            "header_timeout = \"2s\"\nbody_timeout = \"500ms\"\nmax_connections_per_client = 8\nmax_requests_per_client = 2\n",
        )
        .unwrap();
        assert_eq!(c.header_timeout, Duration::from_secs(2));
        assert_eq!(c.body_timeout, Duration::from_millis(500));
        assert_eq!(
            (c.max_connections_per_client, c.max_requests_per_client),
            (8, 2)
        );
        c.validate().unwrap();
        for bad in [
            "header_timeout = \"0s\"",
            "body_timeout = \"2h\"",
            "max_requests_per_client = 0",
            "node_stale_after = \"0s\"",
            "node_stale_after = \"2d\"",
        ] {
            let c: ApiConfig = toml::from_str(bad).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{e}");
        }
        assert!(toml::from_str::<ApiConfig>("lisen = 2").is_err());
    }

    #[test]
    fn non_loopback_needs_tokens() {
        let c = ApiConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..ApiConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TokensRequired { .. })
        ));
        let c = ApiConfig {
            listen: "[::1]:8080".parse().unwrap(),
            ..ApiConfig::default()
        };
        c.validate().unwrap();
    }
}
