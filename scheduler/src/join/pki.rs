//! The cluster CA and the certificates the scheduler holds, and the signing of agents'
//! certificate requests.

use super::Error;
use mini_shim::agent::pki::CertInfo;
use mini_shim::agent::pki::{self, Issued, Role};
use mini_shim::agent::tls::TlsFiles;
use rcgen::{KeyPair, SubjectPublicKeyInfo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use x509_parser::prelude::{FromDer, X509Certificate, X509CertificationRequest};

/// `D/cluster.json`: what the certificates do not say.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    /// The address agents join through.
    advertise: SocketAddr,
}

/// The cluster's certificates in `D/pki/` (see [`super`]).
#[derive(Clone)]
pub struct ClusterPki {
    state_dir: PathBuf,
    ca: Issued,
    ca_sha256: String,
    advertise: SocketAddr,
}

impl std::fmt::Debug for ClusterPki {
    /// Never prints the CA key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki")
            .field("state_dir", &self.state_dir)
            .field("ca_sha256", &self.ca_sha256)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

/// The certificates the scheduler holds besides the CA: name, role, subject alternative
/// names. The scheduler's and the join listener's are renewed by the daemon
/// ([`ClusterPki::renew_own`]); the admin's is made anew by `mini-sched cert admin`.
fn members(advertise: SocketAddr) -> [(&'static str, Role, Vec<String>); 3] {
    [
        (SCHEDULER, Role::Client, vec![]),
        (ADMIN, Role::Client, vec![]),
        (JOIN_SERVER, Role::Server, vec![advertise.ip().to_string()]),
    ]
}

/// The daemon's client certificate.
pub const SCHEDULER: &str = "scheduler";
/// The people's client certificate.
pub const ADMIN: &str = "admin";
/// The join listener's server certificate.
pub const JOIN_SERVER: &str = "join-server";

/// How long each certificate `init` makes lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// The scheduler's and the join listener's certificates (renewed by the daemon).
    pub own: Duration,
    /// The admin's certificate.
    pub admin: Duration,
}

impl ClusterPki {
    /// Makes the cluster CA and the scheduler's certificates in `dir/pki` and `dir/cluster.json`
    /// for agents joining through `advertise`. `dir` is a staging directory: the caller
    /// ([`super::init_cluster`]) renames it into place.
    pub(super) fn make(
        dir: &Path,
        advertise: SocketAddr,
        lifetimes: Lifetimes,
    ) -> Result<ClusterPki, Error> {
        if advertise.ip().is_unspecified() || advertise.port() == 0 {
            return Err(Error::Cluster(format!(
                "--advertise {advertise}: agents need a specific IP:PORT to join through"
            )));
        }
        let pki_dir = dir.join("pki");
        let ca = pki::new_ca("mini-sched cluster CA")?;
        pki::write(&pki_dir, "ca", &ca)?;
        for (name, role, sans) in members(advertise) {
            let lifetime = if name == ADMIN {
                lifetimes.admin
            } else {
                lifetimes.own
            };
            pki::write(
                &pki_dir,
                name,
                &pki::issue(&ca, name, role, &sans, lifetime)?,
            )?;
        }
        let text = serde_json::to_string_pretty(&ClusterFile { advertise })
            .expect("the cluster file serializes");
        let cluster_file = dir.join("cluster.json");
        std::fs::write(&cluster_file, text + "\n")
            .map_err(|e| Error::io("writing", &cluster_file, e))?;
        sync(&pki_dir)?;
        sync(dir)?;
        Self::load(dir)
    }

    /// The cluster in `state_dir`.
    pub fn load(state_dir: &Path) -> Result<ClusterPki, Error> {
        let dir = state_dir.join("pki");
        let cluster_file = state_dir.join("cluster.json");
        if !dir.join("ca.pem").exists() || !cluster_file.exists() {
            return Err(Error::Cluster(format!(
                "{} holds no cluster: run mini-sched init --state-dir {} first",
                state_dir.display(),
                state_dir.display()
            )));
        }
        let ca = pki::read(&dir, "ca")?;
        let ca_sha256 = mini_shim::join::ca_fingerprint(&ca.cert_pem)
            .map_err(|e| Error::Cluster(format!("{}: {e}", dir.join("ca.pem").display())))?;
        let text = mini_run::input_file::read(&cluster_file, mini_shim::agent::pki::PEM_LIMIT)
            .map_err(|e| Error::io("reading", &cluster_file, e))?;
        let file: ClusterFile = serde_json::from_slice(&text)
            .map_err(|e| Error::Cluster(format!("{}: {e}", cluster_file.display())))?;
        Ok(ClusterPki {
            state_dir: state_dir.to_path_buf(),
            ca,
            ca_sha256,
            advertise: file.advertise,
        })
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The address agents join through (`init --advertise`).
    pub fn advertise(&self) -> SocketAddr {
        self.advertise
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// `D/pki/ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.pki_dir().join("ca.pem")
    }

    /// The SHA-256 (lowercase hex) of the CA certificate's DER, the last part of every token.
    pub fn ca_sha256(&self) -> &str {
        &self.ca_sha256
    }

    /// The scheduler's client certificate, key and the CA agents' certificates chain to:
    /// what the daemon calls agents with (`mini_shim::agent::tls::client_config`).
    pub fn scheduler_tls(&self) -> TlsFiles {
        self.files("scheduler")
    }

    /// The spare client certificate for people (curl `--cert`/`--key`/`--cacert`).
    pub fn admin_tls(&self) -> TlsFiles {
        self.files("admin")
    }

    /// The join listener's server certificate and key (its `ca` is the cluster CA).
    pub fn join_server_tls(&self) -> TlsFiles {
        self.files("join-server")
    }

    fn files(&self, name: &str) -> TlsFiles {
        let (cert, key) = pki::paths(&self.pki_dir(), name);
        TlsFiles {
            cert,
            key,
            ca: self.ca_path(),
        }
    }

    fn pki_dir(&self) -> PathBuf {
        self.state_dir.join("pki")
    }

    /// The public key of an agent's certificate request, whose signature must verify (proving
    /// the agent holds the key). Whatever else the request asks for (names, usages, CA
    /// rights) is ignored.
    pub fn request_key(&self, csr_pem: &str) -> Result<Vec<u8>, Error> {
        let bad =
            |why: String| Error::Request(format!("the certificate request is unusable: {why}"));
        let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .map_err(|e| bad(format!("no PEM CERTIFICATE REQUEST in it: {e}")))?;
        let (rest, csr) =
            X509CertificationRequest::from_der(&der).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the request".into()));
        }
        csr.verify_signature()
            .map_err(|_| bad("its signature does not verify".into()))?;
        let key = csr.certification_request_info.subject_pki.raw.to_vec();
        SubjectPublicKeyInfo::from_der(&key).map_err(|e| bad(format!("its public key: {e}")))?;
        Ok(key)
    }

    /// A node's server certificate (serverAuth only, never a CA) for `public_key` (a
    /// SubjectPublicKeyInfo, DER), named `node`, valid for `address`'s IP for `lifetime`.
    pub fn sign_node(
        &self,
        public_key: &[u8],
        node: &str,
        address: SocketAddr,
        lifetime: Duration,
    ) -> Result<String, Error> {
        let key = SubjectPublicKeyInfo::from_der(public_key)
            .map_err(|e| Error::Pki(format!("the node's public key: {e}")))?;
        Ok(pki::sign(
            &self.ca,
            &key,
            node,
            Role::Server,
            &[address.ip().to_string()],
            lifetime,
        )?)
    }

    /// Signs an agent's certificate request for node `node` at `address` (see
    /// [`ClusterPki::request_key`] and [`ClusterPki::sign_node`]).
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        node: &str,
        address: SocketAddr,
        lifetime: Duration,
    ) -> Result<String, Error> {
        self.sign_node(&self.request_key(csr_pem)?, node, address, lifetime)
    }

    /// Checks that `cert_pem` is a certificate of this CA for node `node`, valid now, and
    /// reads it.
    pub fn check_node_cert(&self, cert_pem: &str, node: &str) -> Result<CertInfo, Error> {
        let bad = |why: String| Error::Request(format!("the node's certificate {why}"));
        let info = pki::inspect(cert_pem).map_err(|e| bad(e.to_string()))?;
        let ca = pki::inspect(&self.ca.cert_pem)?;
        let (_, ca) = X509Certificate::from_der(&ca.der)
            .map_err(|e| Error::Pki(format!("the cluster CA: {e}")))?;
        let (_, cert) = X509Certificate::from_der(&info.der).map_err(|e| bad(e.to_string()))?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|_| bad("is not signed by this cluster's CA".into()))?;
        if !cert.validity().is_valid() {
            return Err(bad("is not valid now (expired?)".into()));
        }
        if info.common_name != node {
            return Err(bad(format!("names {:?}, not {node:?}", info.common_name)));
        }
        Ok(info)
    }

    /// The end of the validity of the scheduler's own certificate `name`
    /// ([`SCHEDULER`], [`JOIN_SERVER`]).
    pub fn own_not_after(&self, name: &str) -> Result<std::time::SystemTime, Error> {
        let (cert, _) = pki::paths(&self.pki_dir(), name);
        let pem = mini_run::input_file::read(&cert, mini_shim::agent::pki::PEM_LIMIT)
            .map_err(|e| Error::io("reading", &cert, e))?;
        Ok(pki::inspect(&String::from_utf8_lossy(&pem))?.not_after)
    }

    /// Renews the scheduler's own certificate `name` ([`SCHEDULER`] or [`JOIN_SERVER`]) for
    /// the key it has, valid for `lifetime` from now; the file is replaced atomically and the
    /// TLS configurations read it at their next handshake.
    pub fn renew_own(&self, name: &str, lifetime: Duration) -> Result<(), Error> {
        let (role, sans) = members(self.advertise)
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, role, sans)| (role, sans))
            .ok_or_else(|| Error::Pki(format!("no certificate {name} to renew")))?;
        let current = pki::read(&self.pki_dir(), name)?;
        let key = KeyPair::from_pem(&current.key_pem)
            .map_err(|e| Error::Pki(format!("the key of {name}: {e}")))?;
        let cert = pki::sign(&self.ca, &key, name, role, &sans, lifetime)?;
        let (path, _) = pki::paths(&self.pki_dir(), name);
        replace(&path, &cert, 0o644)
    }

    /// Makes a new admin certificate and key valid for `lifetime`, replacing the old pair
    /// (`mini-sched cert admin`); returns the certificate's path.
    pub fn reissue_admin(&self, lifetime: Duration) -> Result<PathBuf, Error> {
        let issued = pki::issue(&self.ca, ADMIN, Role::Client, &[], lifetime)?;
        let (cert, key) = pki::paths(&self.pki_dir(), ADMIN);
        replace(&key, &issued.key_pem, 0o600)?;
        replace(&cert, &issued.cert_pem, 0o644)?;
        Ok(cert)
    }
}

/// Replaces `path` with `text`: a temporary file beside it (`mode`), synced, renamed over it.
fn replace(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("pem.tmp");
    let write = || {
        let _ = std::fs::remove_file(&temp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io("replacing", path, e)
    })?;
    match path.parent() {
        Some(dir) => sync(dir),
        None => Ok(()),
    }
}

fn sync(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::CustomExtension;
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose};
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;
    use x509_parser::prelude::GeneralName;

    const DAY: Duration = Duration::from_secs(86_400);

    /// A test cluster's directory, removed when dropped (also when the test fails).
    struct TempCluster(PathBuf);

    impl Drop for TempCluster {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cluster() -> (ClusterPki, TempCluster) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mini-sched-pki-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let init = super::super::init_cluster(
            &dir,
            "127.0.0.1:7440".parse().unwrap(),
            &super::super::InitOptions::default(),
        )
        .unwrap();
        (init.pki, TempCluster(dir))
    }

    /// A CSR for a fresh key, its parameters adjusted by `ask`.
    fn csr(ask: impl FnOnce(&mut CertificateParams)) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "root");
        ask(&mut params);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        (pem, key)
    }

    /// Checks that `cert_pem` chains to the cluster CA as a server certificate for `ip`, and
    /// returns its EKU (server, client) and whether it claims to be a CA.
    fn inspect(pki: &ClusterPki, cert_pem: &str, ip: std::net::IpAddr) -> (bool, bool, bool) {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap())
            .unwrap();
        // What an agent's client (the scheduler) checks: the chain to the cluster CA, the
        // serverAuth usage and the address.
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            mini_shim::agent::tls::provider(),
        )
        .build()
        .unwrap();
        verifier
            .verify_server_cert(
                &der,
                &[],
                &ServerName::IpAddress(ip.into()),
                &[],
                UnixTime::now(),
            )
            .expect("a server certificate from the cluster CA for the agent's address");

        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let sans: Vec<_> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .clone();
        let want_ip = match ip {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        assert_eq!(sans, vec![GeneralName::IPAddress(&want_ip)]);
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "n1");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        let is_ca = cert
            .basic_constraints()
            .unwrap()
            .is_some_and(|bc| bc.value.ca);
        (eku.server_auth, eku.client_auth, is_ca)
    }

    #[test]
    fn a_signed_request_chains_to_the_ca_as_a_server_certificate_for_its_address() {
        let (pki, dir) = cluster();
        let (pem, _) = csr(|_| {});
        let addr: SocketAddr = "10.77.0.2:7443".parse().unwrap();
        let cert = pki.sign_agent_csr(&pem, "n1", addr, DAY).unwrap();
        assert_eq!(inspect(&pki, &cert, addr.ip()), (true, false, false));
        drop(dir);
    }

    #[test]
    fn requests_for_a_ca_or_client_auth_get_server_auth_only() {
        let (pki, dir) = cluster();
        let (pem, _) = csr(|p| {
            // basicConstraints cA=TRUE (rcgen will not put `is_ca` into a request).
            let mut ca = CustomExtension::from_oid_content(
                &[2, 5, 29, 19],
                vec![0x30, 0x03, 0x01, 0x01, 0xff],
            );
            ca.set_criticality(true);
            p.custom_extensions = vec![ca];
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth,
            ];
        });
        let addr: SocketAddr = "[fd00::2]:7443".parse().unwrap();
        let cert = pki.sign_agent_csr(&pem, "n1", addr, DAY).unwrap();
        assert_eq!(inspect(&pki, &cert, addr.ip()), (true, false, false));
        drop(dir);
    }

    #[test]
    fn own_certificates_are_renewed_for_their_key_and_node_certificates_checked() {
        let (pki, dir) = cluster();
        let (cert, _) = mini_shim::agent::pki::paths(&pki.pki_dir(), SCHEDULER);
        let before =
            mini_shim::agent::pki::inspect(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        pki.renew_own(SCHEDULER, Duration::from_secs(3600)).unwrap();
        let after =
            mini_shim::agent::pki::inspect(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        assert_eq!(after.public_key, before.public_key);
        assert!(
            after.not_after < before.not_after,
            "a shorter lifetime was asked for"
        );
        assert_eq!(pki.own_not_after(SCHEDULER).unwrap(), after.not_after);
        // Still a usable pair for the agents' client.
        mini_shim::agent::tls::client_config(&pki.scheduler_tls()).unwrap();

        let (pem, _) = csr(|_| {});
        let addr: SocketAddr = "10.77.0.2:7443".parse().unwrap();
        let node = pki.sign_agent_csr(&pem, "n1", addr, DAY).unwrap();
        let info = pki.check_node_cert(&node, "n1").unwrap();
        assert_eq!(info.public_key, pki.request_key(&pem).unwrap());
        let e = pki.check_node_cert(&node, "n2").unwrap_err();
        assert!(e.to_string().contains("names"), "{e}");
        // A certificate of the CA for n1 that ended in 2000.
        let ca_key = KeyPair::from_pem(&pki.ca.key_pem).unwrap();
        let issuer = CertificateParams::from_ca_cert_pem(&pki.ca.cert_pem)
            .unwrap()
            .self_signed(&ca_key)
            .unwrap();
        let mut params = CertificateParams::new(vec!["10.77.0.2".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "n1");
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2000, 1, 2);
        let expired = params
            .signed_by(&KeyPair::generate().unwrap(), &issuer, &ca_key)
            .unwrap()
            .pem();
        let e = pki.check_node_cert(&expired, "n1").unwrap_err();
        assert!(e.to_string().contains("not valid now"), "{e}");
        let (other, _other_dir) = cluster();
        let foreign = other.sign_agent_csr(&pem, "n1", addr, DAY).unwrap();
        let e = pki.check_node_cert(&foreign, "n1").unwrap_err();
        assert!(e.to_string().contains("CA"), "{e}");
        drop(dir);
    }

    #[test]
    fn requests_must_be_signed_by_their_key_and_be_pem() {
        let (pki, dir) = cluster();
        let addr: SocketAddr = "10.77.0.2:7443".parse().unwrap();
        let e = pki.sign_agent_csr("hello", "n1", addr, DAY).unwrap_err();
        assert!(matches!(e, Error::Request(_)), "{e}");
        // Flip one bit of the signature (the last byte of the DER).
        let (pem, _) = csr(|_| {});
        let mut der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec();
        *der.last_mut().unwrap() ^= 1;
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        let e = pki.sign_agent_csr(&pem, "n1", addr, DAY).unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        drop(dir);
    }
}
