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
        let client = b
            .build()
            .map_err(|e| bad("url", format!("cannot build the HTTP client: {e}")))?;
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

/// Builds the HTTP sink for a webhook or falcosidekick entry; `None` for other kinds.
pub fn build(
    spec: &OutputSpec,
    ctx: &Context,
    at: &str,
) -> Option<Result<Box<dyn FindingSink>, SpecError>> {
    match spec.kind {
        OutputKind::Webhook | OutputKind::Falcosidekick => {
            Some(HttpSink::new(spec, ctx, at).map(|s| Box::new(s) as Box<dyn FindingSink>))
        }
        _ => None,
    }
}
