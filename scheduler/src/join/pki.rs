//! The cluster CA and the certificates the scheduler holds, and the signing of agents'
//! certificate requests.

use super::Error;
use mini_shim::agent::pki::{self, Issued, Role};
use mini_shim::agent::tls::TlsFiles;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    SubjectPublicKeyInfo,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

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

/// The certificates `init` makes besides the CA: name, role, subject alternative names.
fn members(advertise: SocketAddr) -> [(&'static str, Role, Vec<String>); 3] {
    [
        ("scheduler", Role::Client, vec![]),
        ("admin", Role::Client, vec![]),
        (
            "join-server",
            Role::Server,
            vec![advertise.ip().to_string()],
        ),
    ]
}

impl ClusterPki {
    /// Makes the cluster CA and the scheduler's certificates in `state_dir/pki`, for agents
    /// joining through `advertise`. Refuses a state directory that holds a cluster already.
    /// The files are made in a temporary directory renamed into place, so a failure leaves
    /// nothing behind.
    pub fn init(state_dir: &Path, advertise: SocketAddr) -> Result<ClusterPki, Error> {
        let dir = state_dir.join("pki");
        let cluster_file = state_dir.join("cluster.json");
        if dir.exists() || cluster_file.exists() {
            return Err(Error::Exists(format!(
                "{} already holds a cluster ({} exists): use it (mini-sched token create makes a join token), or remove the directory to start over",
                state_dir.display(),
                if dir.exists() { &dir } else { &cluster_file }.display()
            )));
        }
        if advertise.ip().is_unspecified() || advertise.port() == 0 {
            return Err(Error::Cluster(format!(
                "--advertise {advertise}: agents need a specific IP:PORT to join through"
            )));
        }
        let made_dir = !state_dir.exists();
        std::fs::create_dir_all(state_dir).map_err(|e| Error::io("creating", state_dir, e))?;
        let staging = state_dir.join(format!(".pki-init-{}", std::process::id()));
        let result = Self::make(state_dir, &staging, &dir, advertise);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
            if made_dir {
                let _ = std::fs::remove_dir(state_dir);
            }
        }
        result
    }

    fn make(
        state_dir: &Path,
        staging: &Path,
        dir: &Path,
        advertise: SocketAddr,
    ) -> Result<ClusterPki, Error> {
        let ca = pki::new_ca("mini-sched cluster CA")?;
        pki::write(staging, "ca", &ca)?;
        for (name, role, sans) in members(advertise) {
            pki::write(staging, name, &pki::issue(&ca, name, role, &sans)?)?;
        }
        let text = serde_json::to_string_pretty(&ClusterFile { advertise })
            .expect("the cluster file serializes");
        let cluster_file = staging.join("cluster.json");
        std::fs::write(&cluster_file, text + "\n")
            .map_err(|e| Error::io("writing", &cluster_file, e))?;
        sync(staging)?;
        // cluster.json goes first: a pki/ directory marks a cluster whose files are complete.
        let final_cluster_file = state_dir.join("cluster.json");
        std::fs::rename(&cluster_file, &final_cluster_file)
            .map_err(|e| Error::io("renaming", &cluster_file, e))?;
        if let Err(e) = std::fs::rename(staging, dir) {
            let _ = std::fs::remove_file(&final_cluster_file);
            return Err(Error::io("renaming", staging, e));
        }
        sync(state_dir)?;
        Self::load(state_dir)
    }

    /// Removes what [`ClusterPki::init`] made (for a failed `init` only).
    pub(super) fn remove(&self) {
        let _ = std::fs::remove_dir_all(self.state_dir.join("pki"));
        let _ = std::fs::remove_file(self.state_dir.join("cluster.json"));
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
        let text = std::fs::read_to_string(&cluster_file)
            .map_err(|e| Error::io("reading", &cluster_file, e))?;
        let file: ClusterFile = serde_json::from_str(&text)
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

    /// Signs an agent's certificate request: a server certificate (serverAuth only, never a
    /// CA) for the request's public key, named `node`, valid for `address`'s IP. Whatever
    /// else the request asks for (names, usages, CA rights) is ignored; its signature must
    /// verify, proving the agent holds the key.
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        node: &str,
        address: SocketAddr,
    ) -> Result<String, Error> {
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
        let public_key =
            SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
                .map_err(|e| bad(format!("its public key: {e}")))?;

        let rcgen_error = |what: &str, e: rcgen::Error| Error::Pki(format!("{what}: {e}"));
        let mut params = CertificateParams::new(vec![address.ip().to_string()])
            .map_err(|e| rcgen_error("the agent's address", e))?;
        params.distinguished_name.push(DnType::CommonName, node);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let ca_key =
            KeyPair::from_pem(&self.ca.key_pem).map_err(|e| rcgen_error("the CA key", e))?;
        let issuer = CertificateParams::from_ca_cert_pem(&self.ca.cert_pem)
            .and_then(|p| p.self_signed(&ca_key))
            .map_err(|e| rcgen_error("loading the CA", e))?;
        let cert = params
            .signed_by(&public_key, &issuer, &ca_key)
            .map_err(|e| rcgen_error("signing the agent's certificate", e))?;
        Ok(cert.pem())
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
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;
    use x509_parser::prelude::{GeneralName, X509Certificate};

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
        let pki = ClusterPki::init(&dir, "127.0.0.1:7440".parse().unwrap()).unwrap();
        (pki, TempCluster(dir))
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
        let cert = pki.sign_agent_csr(&pem, "n1", addr).unwrap();
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
        let cert = pki.sign_agent_csr(&pem, "n1", addr).unwrap();
        assert_eq!(inspect(&pki, &cert, addr.ip()), (true, false, false));
        drop(dir);
    }

    #[test]
    fn requests_must_be_signed_by_their_key_and_be_pem() {
        let (pki, dir) = cluster();
        let addr: SocketAddr = "10.77.0.2:7443".parse().unwrap();
        let e = pki.sign_agent_csr("hello", "n1", addr).unwrap_err();
        assert!(matches!(e, Error::Request(_)), "{e}");
        // Flip one bit of the signature (the last byte of the DER).
        let (pem, _) = csr(|_| {});
        let mut der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec();
        *der.last_mut().unwrap() ^= 1;
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        let e = pki.sign_agent_csr(&pem, "n1", addr).unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        drop(dir);
    }
}
