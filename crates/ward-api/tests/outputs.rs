//! The HTTP outputs against real local receivers: what counts as delivered (2xx only, the
//! answer's body is not read for meaning), what fails (5xx, a reset, no answer within the
//! timeout, an untrusted certificate), HMAC signatures, custom headers, HTTPS with a CA file.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_api::outputs::HttpSink;
use ward_event::Finding;
use ward_output::format::Context;
use ward_output::spec::{OutputKind, OutputSpec};
use ward_output::{FindingSink, Item};
use ward_testkit::receiver::{HttpReceiver, Request};

fn finding() -> Finding {
    let line = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ward-output/tests/golden/input.jsonl"
    ))
    .unwrap();
    serde_json::from_str(line.lines().nth(1).unwrap()).unwrap()
}

fn items() -> Vec<Item> {
    vec![Item {
        seq: 1,
        finding: Arc::new(finding()),
    }]
}

fn sink(kind: OutputKind, url: &str, edit: impl FnOnce(&mut OutputSpec)) -> HttpSink {
    let mut s = OutputSpec::new(kind);
    s.url = Some(url.to_string());
    s.timeout = Duration::from_millis(500);
    edit(&mut s);
    HttpSink::new(&s, &Context::default(), "outputs[0]").unwrap()
}

#[test]
fn only_a_2xx_answer_is_an_acknowledgement() {
    for (status, ok) in [
        (200u16, true),
        (204, true),
        (500, false),
        (503, false),
        (400, false),
    ] {
        let r = HttpReceiver::start(0, Arc::new(move |_: &Request| status)).unwrap();
        let mut s = sink(OutputKind::Webhook, &r.url("/x"), |_| {});
        assert_eq!(s.write_batch(&items()).is_ok(), ok, "status {status}");
    }
}

#[test]
fn a_reset_or_a_silent_receiver_fails_within_the_timeout() {
    // Accepts and closes at once (a reset before any answer).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            drop(c);
        }
    });
    let mut s = sink(OutputKind::Webhook, &url, |_| {});
    let e = s.write_batch(&items()).unwrap_err().to_string();
    assert!(e.contains("POST failed"), "{e}");
    // Accepts, reads, never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut c in l.incoming().flatten() {
            let mut b = [0u8; 4096];
            let _ = c.read(&mut b);
            held.push(c);
        }
    });
    let mut s = sink(OutputKind::Webhook, &url, |_| {});
    let t = Instant::now();
    assert!(s.write_batch(&items()).is_err());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = sink(
        OutputKind::Webhook,
        &format!("http://127.0.0.1:{port}/"),
        |_| {},
    );
    assert!(s.write_batch(&items()).is_err());
}

#[test]
fn a_webhook_signs_the_body_and_sends_the_headers() {
    let r = HttpReceiver::start(0, Arc::new(|_: &Request| 200)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "secret-key\n").unwrap();
    let mut s = sink(OutputKind::Webhook, &r.url("/hook"), |s| {
        s.hmac_key_file = Some(key.clone());
        s.headers
            .insert("Authorization".into(), "Bearer abc".into());
    });
    s.write_batch(&items()).unwrap();
    let req = r.requests().pop().unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    assert_eq!(req.header("authorization"), Some("Bearer abc"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret-key"),
        &req.body,
    );
    assert_eq!(
        req.header("x-ward-signature").unwrap(),
        format!("sha256={}", hex::encode(tag.as_ref()))
    );
    let v = req.json().unwrap();
    assert_eq!(v["name"], finding().name.as_str(), "SCC JSON by default");
}

#[test]
fn falcosidekick_gets_falco_alert_json_at_its_root() {
    let r = HttpReceiver::start(0, Arc::new(|_: &Request| 200)).unwrap();
    let mut s = sink(OutputKind::Falcosidekick, &r.url("/"), |_| {});
    s.write_batch(&items()).unwrap();
    let req = r.requests().pop().unwrap();
    assert_eq!(req.path, "/");
    let v = req.json().unwrap();
    assert_eq!(v["priority"], "Critical");
    assert_eq!(v["rule"], "Reverse Shell");
    assert_eq!(v["output_fields"]["fd.rport"], 4444);
}

#[cfg(feature = "tls")]
#[test]
fn https_trusts_the_ca_file_and_refuses_an_unknown_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (cp, kp) = (cert_pem.clone(), key_pem.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let cfg =
                axum_server::tls_rustls::RustlsConfig::from_pem(cp.into_bytes(), kp.into_bytes())
                    .await
                    .unwrap();
            let app = axum::Router::new().route("/in", axum::routing::post(|| async { "ok" }));
            axum_server::from_tcp_rustls(listener, cfg)
                .serve(app.into_make_service())
                .await
                .unwrap();
        });
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let url = format!("https://localhost:{}/in", addr.port());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut trusted = sink(OutputKind::Webhook, &url, |s| s.ca_file = Some(ca.clone()));
    while trusted.write_batch(&items()).is_err() {
        assert!(
            Instant::now() < deadline,
            "the HTTPS receiver never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut untrusted = sink(OutputKind::Webhook, &url, |_| {});
    let e = untrusted.write_batch(&items()).unwrap_err().to_string();
    assert!(e.to_ascii_lowercase().contains("certificate"), "{e}");
}

#[test]
fn a_webhook_can_post_ocsf() {
    let r = HttpReceiver::start(0, Arc::new(|_: &Request| 200)).unwrap();
    let mut s = sink(OutputKind::Webhook, &r.url("/ocsf"), |s| {
        s.format = Some(ward_output::Format::Ocsf)
    });
    s.write_batch(&items()).unwrap();
    let v = r.requests().pop().unwrap().json().unwrap();
    assert_eq!(v["class_uid"], 2004);
    assert_eq!(v["unmapped"]["scc_name"], finding().name.as_str());
}
