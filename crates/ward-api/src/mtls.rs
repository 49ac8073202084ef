//! The HTTPS listener with client certificates (`[api] client_ca_file`): every client must
//! present a certificate that chains to one of the CA certificates in that file, or the TLS
//! handshake is refused before any HTTP (docs/fleet.md, "Auth").

use crate::config::{ConfigError, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The server's rustls configuration: its certificate and key from `tls`, and a verifier
/// that requires a client certificate signed by a CA of `client_ca` (PEM). Errors name the
/// file.
pub(crate) fn server_config(
    tls: &TlsConfig,
    client_ca: &Path,
) -> Result<rustls::ServerConfig, ConfigError> {
    let bad_tls = |m: String| {
        ConfigError::Tls(format!(
            "{} / {}: {m}",
            tls.cert.display(),
            tls.key.display()
        ))
    };
    let bad_ca = |m: String| ConfigError::ClientCa {
        path: client_ca.to_path_buf(),
        message: m,
    };
    let chain = read_certs(&tls.cert).map_err(bad_tls)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad_tls(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(client_ca).map_err(bad_ca)? {
        roots
            .add(c)
            .map_err(|e| bad_ca(format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| bad_ca(e.to_string()))?;
    let mut sc = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad_tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad_tls(e.to_string()))?;
    // The ALPN list of axum-server's own configuration (the listener without mTLS).
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(sc)
}

/// The PEM certificates in `path` (at least one); the error does not repeat the path.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read it: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}
