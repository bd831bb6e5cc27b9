//! rustls configurations for the protocol's mutual TLS, on the `ring` crypto provider.
//!
//! The agent requires every client to present a certificate that chains to its client CA
//! and carries the clientAuth usage; a handshake without one fails before any HTTP is read,
//! so an unauthenticated peer can neither start, stop nor read anything.
//!
//! Both sides present their certificate through a [`ReloadingCert`]: a certificate renewed
//! on disk (an agent's by the scheduler, `POST /v1/certificate`; the scheduler's by itself)
//! is served from the next handshake on, without a restart.

use super::Error;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

/// The agent's server configuration: its certificate (read again whenever the file is
/// replaced), and client certificates required and verified against `files.ca`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&files.ca)?, provider())
        .build()
        .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(ReloadingCert::new(files)?));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration: `files.cert`/`files.key` as the client certificate (read again
/// whenever the file is replaced), servers verified against `files.ca`.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, Error> {
    let roots = Arc::try_unwrap(roots(&files.ca)?).unwrap_or_else(|r| (*r).clone());
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(ReloadingCert::new(files)?));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A certificate and its key from files, read again at the next handshake after the
/// certificate file changed (another inode, size or modification time: files are replaced by
/// renaming). A replacement that does not load (or whose key does not match) is ignored and
/// the last good pair served.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<FileStamp>, Arc<CertifiedKey>)>,
}

/// What tells a replaced file from the one read before.
type FileStamp = (u64, u64, i64, i64, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

impl ReloadingCert {
    /// Reads `files.cert` and `files.key`; fails when they are unusable or do not match.
    pub fn new(files: &TlsFiles) -> Result<ReloadingCert, Error> {
        let stamp = stamp(&files.cert);
        let key = Self::load(&files.cert, &files.key)?;
        Ok(ReloadingCert {
            cert: files.cert.clone(),
            key: files.key.clone(),
            current: Mutex::new((stamp, key)),
        })
    }

    fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, Error> {
        CertifiedKey::from_der(certs(cert)?, self::key(key)?, &provider())
            .map(Arc::new)
            .map_err(|e| {
                Error::Tls(format!(
                    "{} and {} do not form a usable certificate and key: {e}",
                    cert.display(),
                    key.display()
                ))
            })
    }

    /// The current pair, read again first if the certificate file changed.
    fn get(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.cert);
        if now.is_some() && now != current.0 {
            if let Ok(key) = Self::load(&self.cert, &self.key) {
                *current = (now, key);
            }
        }
        current.1.clone()
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl rustls::client::ResolvesClientCert for ReloadingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
