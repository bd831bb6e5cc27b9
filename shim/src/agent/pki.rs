//! Certificates for the protocol's mutual TLS: a certificate authority and the server and
//! client certificates it issues (`mini-shim cert`).
//!
//! The agent trusts exactly one CA for clients (`--client-ca`) and presents a server
//! certificate from the same (or another) CA. The scheduler will hold the cluster CA and issue
//! agents their certificates when they join; until then `mini-shim cert ca` and
//! `mini-shim cert issue` make a development/test CA and its certificates. Keys are ECDSA
//! P-256; server certificates carry only the serverAuth extended key usage and client
//! certificates only clientAuth, so an agent's server certificate cannot be used to call
//! another agent.

use super::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An agent's listener (serverAuth).
    Server,
    /// A caller of agents: the scheduler, the CLI, curl (clientAuth).
    Client,
}

fn pki_error(what: &str, e: rcgen::Error) -> Error {
    Error::Pki(format!("{what}: {e}"))
}

/// A new self-signed CA named `name`.
pub fn new_ca(name: &str) -> Result<Issued, Error> {
    let key = KeyPair::generate().map_err(|e| pki_error("generating the CA key", e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| pki_error("signing the CA certificate", e))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a certificate named `name` for `role`, signed by the CA. `sans` are the DNS names
/// and IP addresses a server certificate is valid for (clients need none).
pub fn issue(ca: &Issued, name: &str, role: Role, sans: &[String]) -> Result<Issued, Error> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| pki_error("reading the CA key", e))?;
    let ca_params = CertificateParams::from_ca_cert_pem(&ca.cert_pem)
        .map_err(|e| pki_error("reading the CA certificate", e))?;
    // Re-signing the parsed parameters gives an issuer with the CA's name and key identifier;
    // the certificates it signs chain to the original CA certificate.
    let issuer = ca_params
        .self_signed(&ca_key)
        .map_err(|e| pki_error("loading the CA", e))?;
    if role == Role::Server && sans.is_empty() {
        return Err(Error::Pki(
            "a server certificate needs at least one --san (the address clients connect to)".into(),
        ));
    }
    let mut params = CertificateParams::new(sans.to_vec())
        .map_err(|e| pki_error("reading the subject alternative names", e))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![match role {
        Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(|e| pki_error("generating a key", e))?;
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| pki_error("signing the certificate", e))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The files `<dir>/<name>.pem` and `<dir>/<name>-key.pem`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    )
}

/// Writes `<dir>/<name>.pem` and `<dir>/<name>-key.pem` (mode 0600), refusing to overwrite.
pub fn write(dir: &Path, name: &str, issued: &Issued) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let (cert, key) = paths(dir, name);
    for (path, text, mode) in [
        (&cert, &issued.cert_pem, 0o644),
        (&key, &issued.key_pem, 0o600),
    ] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| Error::io("creating", path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io("writing", path, e))?;
    }
    Ok(())
}

/// The most read of a certificate or key file (PEM), or of another small cluster file.
pub const PEM_LIMIT: u64 = 1 << 20;

/// Reads `<dir>/<name>.pem` and `<dir>/<name>-key.pem` (regular files of at most
/// [`PEM_LIMIT`] bytes).
pub fn read(dir: &Path, name: &str) -> Result<Issued, Error> {
    let (cert, key) = paths(dir, name);
    let read = |p: &Path| {
        mini_run::input_file::read(p, PEM_LIMIT)
            .and_then(|d| {
                String::from_utf8(d)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|e| Error::io("reading", p, e))
    };
    Ok(Issued {
        cert_pem: read(&cert)?,
        key_pem: read(&key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_certificates_need_an_address() {
        let ca = new_ca("test").unwrap();
        let e = issue(&ca, "agent", Role::Server, &[]).unwrap_err();
        assert!(e.to_string().contains("--san"), "{e}");
        issue(&ca, "agent", Role::Server, &["127.0.0.1".into()]).unwrap();
        issue(&ca, "sched", Role::Client, &[]).unwrap();
    }
}
