//! Output configuration: the `[output]` settings every output shares, one `[[outputs]]`
//! entry per output, and the `--output` flag's short form. Everything is checked at startup;
//! an error names the key (`outputs[1].url`) and what is wrong.

use crate::format::{self, Format, Privacy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[output]`: queues, retry, the outbox bounds and the drain rate (defaults in
/// `config/ward.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSettings {
    /// Finding states each output holds in memory (its queue); past it the output reads
    /// from the store's outbox instead.
    pub queue: usize,
    /// Most findings one write to an output carries.
    pub batch: usize,
    /// Most bytes (finding JSON) the outbox holds for outputs that have not acknowledged them.
    pub outbox_max_bytes: u64,
    /// Outbox entries older than this are dropped (counted).
    #[serde(with = "humantime_serde")]
    pub outbox_max_age: Duration,
    /// Findings per second per output read back from the outbox (a backlog after an outage
    /// or a restart).
    pub drain_rate: u32,
    /// First retry delay after a failed write; doubles (with jitter) up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// At shutdown, how long outputs get to deliver what they hold (the rest stays in the
    /// outbox for the next start).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for OutputSettings {
    fn default() -> Self {
        OutputSettings {
            queue: 1024,
            batch: 64,
            outbox_max_bytes: 256 << 20,
            outbox_max_age: Duration::from_secs(24 * 3600),
            drain_rate: 200,
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// JSON Lines (or text) on standard output.
    Stdout,
    /// JSON Lines (or text) appended to `path`.
    File,
    /// JSON POST to `url`, one finding per request.
    Webhook,
    /// Falco alert JSON POSTed to a falcosidekick `url` (its `/` endpoint).
    Falcosidekick,
    /// RFC 5424 over `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///PATH`.
    Syslog,
    /// A central Ward collector (`ward serve`): batches to its `POST /v1/ingest` with this
    /// node's token (enrolled with the collector's secret on first use).
    Central,
}

impl OutputKind {
    fn as_str(self) -> &'static str {
        match self {
            OutputKind::Stdout => "stdout",
            OutputKind::File => "file",
            OutputKind::Webhook => "webhook",
            OutputKind::Falcosidekick => "falcosidekick",
            OutputKind::Syslog => "syslog",
            OutputKind::Central => "central",
        }
    }

    pub fn is_http(self) -> bool {
        matches!(self, OutputKind::Webhook | OutputKind::Falcosidekick)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redact {
    Env,
    Args,
    Scripts,
}

/// One `[[outputs]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub kind: OutputKind,
    /// Names the output in metrics and its outbox position; default `KIND:TARGET`. Renaming
    /// an output starts it afresh at the end of the outbox.
    #[serde(default)]
    pub name: String,
    /// `scc` (default for stdout, file, webhook), `falco` (falcosidekick's only format),
    /// `ocsf`, `text` (syslog's default).
    #[serde(default)]
    pub format: Option<Format>,
    /// `file`: the file appended to.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `webhook`, `falcosidekick`: `http://` or `https://` URL; `syslog`: `udp://HOST:PORT`,
    /// `tcp://HOST:PORT` or `unix:///PATH`.
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTTP: sign each body with HMAC-SHA256 under the key in this file (trailing newline
    /// ignored) ...
    #[serde(default)]
    pub hmac_key_file: Option<PathBuf>,
    /// ... or in this environment variable.
    #[serde(default)]
    pub hmac_key_env: Option<String>,
    /// HTTP: the header carrying `sha256=<hex>` of the body.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// HTTPS: PEM CA certificates trusted besides the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// HTTP and syslog TCP: connect + answer timeout of one write.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Also send later states of a finding (same `name`, higher count); default only its
    /// first state.
    #[serde(default)]
    pub updates: bool,
    /// Leave these out of what this output sends: `env`, `args`, `scripts`.
    #[serde(default)]
    pub redact: Vec<Redact>,
    /// Syslog facility name (`local0` .. `local7`, `user`, `daemon`, `auth`, ...).
    #[serde(default = "default_facility")]
    pub facility: String,
    /// `central`: the collector's enrollment secret, exchanged for this node's token on
    /// first start (prefer `enrollment_secret_file`; `WARD_ENROLLMENT_SECRET` when neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_secret_file: Option<PathBuf>,
    /// `central`: where the node token is kept (mode 0600); default next to the agent's
    /// database (`<db>.central.token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// `central`: an empty batch at this interval when nothing else was sent, so the
    /// collector's last-seen moves without findings.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// `central`: a PEM client certificate (chain) presented to the collector, for a
    /// collector that requires one (`[api] client_ca_file`); with `client_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// `central`: the PEM private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

fn default_signature_header() -> String {
    "X-Ward-Signature".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_facility() -> String {
    "local0".into()
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(30)
}

/// A misconfigured output: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SpecError {
    pub key: String,
    pub message: String,
}

impl OutputSpec {
    pub fn new(kind: OutputKind) -> OutputSpec {
        OutputSpec {
            kind,
            name: String::new(),
            format: None,
            path: None,
            url: None,
            headers: BTreeMap::new(),
            hmac_key_file: None,
            hmac_key_env: None,
            signature_header: default_signature_header(),
            ca_file: None,
            timeout: default_timeout(),
            updates: false,
            redact: Vec::new(),
            facility: default_facility(),
            enrollment_secret: None,
            enrollment_secret_file: None,
            token_file: None,
            heartbeat: default_heartbeat(),
            client_cert_file: None,
            client_key_file: None,
        }
    }

    /// The `--output` short forms: `stdout`, `jsonl:PATH` (SCC JSON Lines), `ocsf:PATH`
    /// (OCSF JSON Lines), `webhook:URL`, `falco:URL` (falcosidekick), `syslog:URL`. `none`
    /// is handled by the caller (no outputs).
    pub fn parse_flag(s: &str) -> Result<OutputSpec, SpecError> {
        let err = |m: &str| SpecError {
            key: format!("--output {s:?}"),
            message: m.to_string(),
        };
        if s == "stdout" || s == "-" {
            return Ok(OutputSpec::new(OutputKind::Stdout));
        }
        let Some((kind, target)) = s.split_once(':') else {
            return Err(err(
                "expected stdout, none, jsonl:PATH, ocsf:PATH, webhook:URL, falco:URL, syslog:URL or central:URL[,URL...]",
            ));
        };
        if target.is_empty() {
            return Err(err("nothing after the colon"));
        }
        let mut spec = match kind {
            "jsonl" | "file" => {
                let mut o = OutputSpec::new(OutputKind::File);
                o.path = Some(PathBuf::from(target));
                o
            }
            "ocsf" => {
                let mut o = OutputSpec::new(OutputKind::File);
                o.path = Some(PathBuf::from(target));
                o.format = Some(Format::Ocsf);
                o
            }
            "webhook" | "falco" | "syslog" | "central" => {
                let k = match kind {
                    "webhook" => OutputKind::Webhook,
                    "falco" => OutputKind::Falcosidekick,
                    "central" => OutputKind::Central,
                    _ => OutputKind::Syslog,
                };
                let mut o = OutputSpec::new(k);
                o.url = Some(target.to_string());
                o
            }
            _ => {
                return Err(err(
                    "unknown output kind; expected stdout, none, jsonl:, ocsf:, webhook:, falco:, syslog: or central:",
                ))
            }
        };
        spec.check("--output").map_err(|e| err(&e.message))?;
        spec.name = spec.effective_name();
        Ok(spec)
    }

    /// `KIND:TARGET` unless `name` is set.
    pub fn effective_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let target = match self.kind {
            OutputKind::Stdout => String::new(),
            OutputKind::File => self
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            _ => self.url.clone().unwrap_or_default(),
        };
        if target.is_empty() {
            self.kind.as_str().to_string()
        } else {
            format!("{}:{target}", self.kind.as_str())
        }
    }

    pub fn effective_format(&self) -> Format {
        self.format.unwrap_or(match self.kind {
            OutputKind::Falcosidekick => Format::Falco,
            OutputKind::Syslog => Format::Text,
            _ => Format::Scc,
        })
    }

    pub fn privacy(&self) -> Privacy {
        Privacy {
            env: self.redact.contains(&Redact::Env),
            args: self.redact.contains(&Redact::Args),
            scripts: self.redact.contains(&Redact::Scripts),
        }
    }

    pub fn facility_code(&self) -> u8 {
        format::facility_code(&self.facility).unwrap_or(16)
    }

    /// Checks the keys this kind needs; `at` names the entry (`outputs[2]`).
    pub fn check(&self, at: &str) -> Result<(), SpecError> {
        let bad = |k: &str, m: String| SpecError {
            key: format!("{at}.{k}"),
            message: m,
        };
        let need_url = |schemes: &[&str]| -> Result<&str, SpecError> {
            let u = self
                .url
                .as_deref()
                .ok_or_else(|| bad("url", format!("{} needs a url", self.kind.as_str())))?;
            let ok = schemes
                .iter()
                .any(|s| u.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
            if !ok {
                return Err(bad(
                    "url",
                    format!(
                        "{u:?} is not a {} URL ({})",
                        self.kind.as_str(),
                        schemes.join(", ")
                    ),
                ));
            }
            Ok(u)
        };
        match self.kind {
            OutputKind::Stdout => {}
            OutputKind::File => {
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err(bad("path", "a file output needs a path".into()));
                }
            }
            OutputKind::Webhook | OutputKind::Falcosidekick => {
                let u = need_url(&["http://", "https://"])?;
                let host = u.split_once("://").map(|x| x.1).unwrap_or("");
                if host.starts_with('/') || host.is_empty() {
                    return Err(bad("url", format!("{u:?} names no host")));
                }
                if self.kind == OutputKind::Falcosidekick
                    && self.format.is_some_and(|f| f != Format::Falco)
                {
                    return Err(bad(
                        "format",
                        "falcosidekick takes Falco's alert JSON only (format = \"falco\")".into(),
                    ));
                }
                if self.effective_format() == Format::Text {
                    return Err(bad(
                        "format",
                        "an HTTP output sends JSON: scc, falco or ocsf".into(),
                    ));
                }
                if self.timeout.is_zero() {
                    return Err(bad("timeout", "must be more than 0".into()));
                }
                for k in self.headers.keys() {
                    if k.is_empty()
                        || !k
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
                    {
                        return Err(bad("headers", format!("{k:?} is not a header name")));
                    }
                }
            }
            OutputKind::Central => {
                let u = self
                    .url
                    .as_deref()
                    .ok_or_else(|| bad("url", "central needs the collector's url".into()))?;
                for one in u.split(',') {
                    let one = one.trim();
                    let host = one
                        .strip_prefix("http://")
                        .or_else(|| one.strip_prefix("https://"))
                        .unwrap_or("");
                    if host.is_empty() || host.starts_with('/') {
                        return Err(bad(
                            "url",
                            format!("{one:?} is not an http:// or https:// collector URL"),
                        ));
                    }
                }
                if self.format.is_some_and(|f| f != Format::Scc) {
                    return Err(bad(
                        "format",
                        "a collector takes SCC findings only (format = \"scc\")".into(),
                    ));
                }
                if self.enrollment_secret.is_some() && self.enrollment_secret_file.is_some() {
                    return Err(bad(
                        "enrollment_secret_file",
                        "set enrollment_secret or enrollment_secret_file, not both".into(),
                    ));
                }
                if self.timeout.is_zero() {
                    return Err(bad("timeout", "must be more than 0".into()));
                }
                if self.heartbeat < Duration::from_secs(1) {
                    return Err(bad("heartbeat", "must be at least 1s".into()));
                }
                match (&self.client_cert_file, &self.client_key_file) {
                    (Some(_), None) => {
                        return Err(bad(
                            "client_key_file",
                            "client_cert_file needs its client_key_file".into(),
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(bad(
                            "client_cert_file",
                            "client_key_file needs its client_cert_file".into(),
                        ))
                    }
                    _ => {}
                }
            }
            OutputKind::Syslog => {
                let u = need_url(&["udp://", "tcp://", "unix://"])?;
                if let Some(hp) = u
                    .strip_prefix("udp://")
                    .or_else(|| u.strip_prefix("tcp://"))
                {
                    let port_ok = hp
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                    if !port_ok {
                        return Err(bad("url", format!("{u:?}: expected HOST:PORT")));
                    }
                }
                if format::facility_code(&self.facility).is_none() {
                    return Err(bad(
                        "facility",
                        format!("{:?} is not a syslog facility", self.facility),
                    ));
                }
            }
        }
        if self.hmac_key_file.is_some() && self.hmac_key_env.is_some() {
            return Err(bad(
                "hmac_key_env",
                "set hmac_key_file or hmac_key_env, not both".into(),
            ));
        }
        if self.kind != OutputKind::Central
            && (self.enrollment_secret.is_some()
                || self.enrollment_secret_file.is_some()
                || self.token_file.is_some()
                || self.client_cert_file.is_some()
                || self.client_key_file.is_some())
        {
            return Err(bad(
                "kind",
                "enrollment_secret*, token_file, client_cert_file and client_key_file apply to central outputs".into(),
            ));
        }
        if self.kind == OutputKind::Central
            && (self.hmac_key_file.is_some()
                || self.hmac_key_env.is_some()
                || !self.headers.is_empty())
        {
            return Err(bad(
                "kind",
                "headers and hmac_key_* do not apply to central outputs (a node token authenticates them)".into(),
            ));
        }
        if !self.kind.is_http()
            && self.kind != OutputKind::Central
            && (self.hmac_key_file.is_some()
                || self.hmac_key_env.is_some()
                || self.ca_file.is_some()
                || !self.headers.is_empty())
        {
            return Err(bad(
                "kind",
                "headers, hmac_key_* and ca_file apply to webhook and falcosidekick outputs".into(),
            ));
        }
        Ok(())
    }

    /// The HMAC key, read now (a startup error names the key when it cannot be read).
    pub fn hmac_key(&self, at: &str) -> Result<Option<Vec<u8>>, SpecError> {
        if let Some(p) = &self.hmac_key_file {
            let k = std::fs::read(p).map_err(|e| SpecError {
                key: format!("{at}.hmac_key_file"),
                message: format!("cannot read {}: {e}", p.display()),
            })?;
            let k = k.strip_suffix(b"\n").unwrap_or(&k).to_vec();
            if k.is_empty() {
                return Err(SpecError {
                    key: format!("{at}.hmac_key_file"),
                    message: format!("{} is empty", p.display()),
                });
            }
            return Ok(Some(k));
        }
        if let Some(v) = &self.hmac_key_env {
            return match std::env::var(v) {
                Ok(k) if !k.is_empty() => Ok(Some(k.into_bytes())),
                _ => Err(SpecError {
                    key: format!("{at}.hmac_key_env"),
                    message: format!("environment variable {v} is not set"),
                }),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(
            OutputSpec::parse_flag("stdout").unwrap().kind,
            OutputKind::Stdout
        );
        let j = OutputSpec::parse_flag("jsonl:/tmp/x.jsonl").unwrap();
        assert_eq!(j.kind, OutputKind::File);
        assert_eq!(j.name, "file:/tmp/x.jsonl");
        assert_eq!(j.effective_format(), Format::Scc);
        assert_eq!(
            OutputSpec::parse_flag("ocsf:/tmp/o")
                .unwrap()
                .effective_format(),
            Format::Ocsf
        );
        let f = OutputSpec::parse_flag("falco:http://127.0.0.1:2801/").unwrap();
        assert_eq!(f.effective_format(), Format::Falco);
        assert!(OutputSpec::parse_flag("jsonl:").is_err());
        assert!(OutputSpec::parse_flag("kafka:x").is_err());
        assert!(OutputSpec::parse_flag("webhook:ftp://x").is_err());
        assert!(OutputSpec::parse_flag("webhook:http://").is_err());
        assert!(OutputSpec::parse_flag("syslog:udp://127.0.0.1").is_err());
        assert!(OutputSpec::parse_flag("syslog:unix:///dev/log").is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let mut s = OutputSpec::new(OutputKind::Webhook);
        s.url = Some("localhost:80".into());
        let e = s.check("outputs[3]").unwrap_err();
        assert_eq!(e.key, "outputs[3].url");
        let mut s = OutputSpec::new(OutputKind::Falcosidekick);
        s.url = Some("http://x/".into());
        s.format = Some(Format::Ocsf);
        assert_eq!(s.check("outputs[0]").unwrap_err().key, "outputs[0].format");
        let mut s = OutputSpec::new(OutputKind::Syslog);
        s.url = Some("udp://h:514".into());
        s.facility = "local9".into();
        assert_eq!(s.check("o").unwrap_err().key, "o.facility");
        let mut s = OutputSpec::new(OutputKind::Webhook);
        s.url = Some("http://h/".into());
        s.hmac_key_file = Some("/nonexistent/key".into());
        s.check("o").unwrap();
        assert_eq!(s.hmac_key("o").unwrap_err().key, "o.hmac_key_file");
    }
}
