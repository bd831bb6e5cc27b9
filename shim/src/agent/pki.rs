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
//!
//! Every certificate has a bounded lifetime: the CA [`CA_LIFETIME`], the others the one they
//! are issued with (backdated by [`CLOCK_SKEW`] so a peer whose clock is a little behind
//! accepts them at once).

use super::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a CA made by [`new_ca`] is valid (ten years; a cluster's CA is not renewed).
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// How far before its issue a certificate becomes valid, for peers whose clocks lag.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The longest lifetime any certificate other than a CA is issued with (one year).
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

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
    set_validity(&mut params, CA_LIFETIME)?;
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

/// Issues a certificate named `name` for `role` with a new key, signed by the CA and valid
/// for `lifetime` from now (at most [`MAX_LIFETIME`]). `sans` are the DNS names and IP
/// addresses a server certificate is valid for (clients need none).
pub fn issue(
    ca: &Issued,
    name: &str,
    role: Role,
    sans: &[String],
    lifetime: Duration,
) -> Result<Issued, Error> {
    let key = KeyPair::generate().map_err(|e| pki_error("generating a key", e))?;
    let cert_pem = sign(ca, &key, name, role, sans, lifetime)?;
    Ok(Issued {
        cert_pem,
        key_pem: key.serialize_pem(),
    })
}

/// A certificate (PEM) for `public_key`, named `name`, for `role`, signed by the CA and valid
/// for `lifetime` from now (at most [`MAX_LIFETIME`]): what [`issue`] makes, for a key held
/// elsewhere (an agent's certificate request, or a renewal for the same key).
pub fn sign(
    ca: &Issued,
    public_key: &impl rcgen::PublicKeyData,
    name: &str,
    role: Role,
    sans: &[String],
    lifetime: Duration,
) -> Result<String, Error> {
    if lifetime > MAX_LIFETIME {
        return Err(Error::Pki(format!(
            "a certificate lifetime of {} is longer than the maximum, {}",
            format_lifetime(lifetime),
            format_lifetime(MAX_LIFETIME)
        )));
    }
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
    set_validity(&mut params, lifetime)?;
    let cert = params
        .signed_by(public_key, &issuer, &ca_key)
        .map_err(|e| pki_error("signing the certificate", e))?;
    Ok(cert.pem())
}

/// `lifetime` for people: whole days as `365days` (humantime would say `11months 30days
/// 3h 50m 24s`), anything else as humantime writes it.
pub fn format_lifetime(lifetime: Duration) -> String {
    let secs = lifetime.as_secs();
    if secs >= 86_400 && secs % 86_400 == 0 && lifetime.subsec_nanos() == 0 {
        format!("{}days", secs / 86_400)
    } else {
        humantime::format_duration(lifetime).to_string()
    }
}

/// Valid from [`CLOCK_SKEW`] ago for `lifetime` from now.
fn set_validity(params: &mut CertificateParams, lifetime: Duration) -> Result<(), Error> {
    let now = time::OffsetDateTime::now_utc();
    let until = time::Duration::try_from(lifetime)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(|| Error::Pki(format!("a lifetime of {lifetime:?} is out of range")))?;
    params.not_before = now - time::Duration::try_from(CLOCK_SKEW).expect("a minute fits");
    params.not_after = until;
    Ok(())
}

/// What [`inspect`] reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Its subject's common name.
    pub common_name: String,
    /// The end of its validity.
    pub not_after: SystemTime,
    /// Its SubjectPublicKeyInfo (DER).
    pub public_key: Vec<u8>,
    /// The DER of the certificate itself.
    pub der: Vec<u8>,
}

/// Reads the one certificate in `cert_pem` (not verifying it).
pub fn inspect(cert_pem: &str) -> Result<CertInfo, Error> {
    use rustls::pki_types::pem::PemObject;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let bad = |why: String| Error::Pki(format!("unreadable certificate: {why}"));
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let not_after = u64::try_from(cert.validity().not_after.timestamp())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .map_err(|_| bad("its notAfter is before 1970".into()))?;
    Ok(CertInfo {
        common_name,
        not_after,
        public_key: cert.tbs_certificate.subject_pki.raw.to_vec(),
        der: der.to_vec(),
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
        let day = Duration::from_secs(86_400);
        let e = issue(&ca, "agent", Role::Server, &[], day).unwrap_err();
        assert!(e.to_string().contains("--san"), "{e}");
        issue(&ca, "agent", Role::Server, &["127.0.0.1".into()], day).unwrap();
        issue(&ca, "sched", Role::Client, &[], day).unwrap();
    }

    #[test]
    fn certificates_live_as_long_as_they_are_issued_for() {
        let ca = new_ca("test").unwrap();
        let ca_end = inspect(&ca.cert_pem).unwrap().not_after;
        let now = SystemTime::now();
        assert!(
            ca_end > now + CA_LIFETIME - Duration::from_secs(3600),
            "{ca_end:?}"
        );
        assert!(
            ca_end <= now + CA_LIFETIME + Duration::from_secs(1),
            "{ca_end:?}"
        );
        let day = Duration::from_secs(86_400);
        let cert = issue(&ca, "sched", Role::Client, &[], day).unwrap();
        let info = inspect(&cert.cert_pem).unwrap();
        assert_eq!(info.common_name, "sched");
        assert!(info.not_after > now + day - Duration::from_secs(5));
        assert!(info.not_after <= now + day + Duration::from_secs(1));
        let e = issue(&ca, "sched", Role::Client, &[], MAX_LIFETIME + day).unwrap_err();
        assert!(e.to_string().contains("maximum"), "{e}");
    }
}
