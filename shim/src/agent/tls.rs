//! rustls configurations for the protocol's mutual TLS, on the `ring` crypto provider.
//!
//! The agent requires every client to present a certificate that chains to its client CA
//! and carries the clientAuth usage; a handshake without one fails before any HTTP is read,
//! so an unauthenticated peer can neither start, stop nor read anything.

use super::Error;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files of a TLS endpoint: its certificate chain and key, and the CA it trusts for peers.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The endpoint's certificate (PEM; the chain if intermediates exist).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA certificate (PEM) peers' certificates must chain to.
    pub ca: PathBuf,
}

/// The crypto provider every configuration uses (`ring`).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM certificates in `path` (at least one).
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("reading certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The PEM private key in `path`.
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::Tls(format!("reading the private key {}: {e}", path.display())))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("CA certificate {}: {e}", path.display())))?;
    }
    Ok(Arc::new(roots))
}

/// The agent's server configuration: its certificate, and client certificates required and
/// verified against `files.ca`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&files.ca)?, provider())
        .build()
        .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| {
            Error::Tls(format!(
                "{} and {} do not form a usable certificate and key: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration: `files.cert`/`files.key` as the client certificate, servers
/// verified against `files.ca`.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, Error> {
    let roots = Arc::try_unwrap(roots(&files.ca)?).unwrap_or_else(|r| (*r).clone());
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
