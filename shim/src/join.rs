//! Joining a cluster (`mini-shim join`): the agent's side of the scheduler's join protocol.
//!
//! The operator copies a join token from the scheduler (`mini-sched init` or
//! `mini-sched token create`): `mst1.<secret>.<sha256 of the cluster CA>`. The agent
//!
//! 1. makes its own key pair (P-256) and a certificate signing request for its address;
//! 2. fetches the cluster CA from the scheduler (`GET /v1/cluster/ca`) over TLS *without*
//!    verifying the scheduler, and accepts it only if its SHA-256 is the token's — the hash,
//!    not the connection, authenticates the CA;
//! 3. sends the token and the request (`POST /v1/join`) over TLS verified against that CA,
//!    and gets back a server certificate signed by it;
//! 4. writes `S/pki/{ca.pem,agent.pem,agent-key.pem}` and serves the shim protocol with them,
//!    clients required to present a certificate from the cluster CA (the scheduler's).
//!
//! The private key never leaves the host. An agent that has joined before (`S/pki/agent.pem`
//! exists) skips the join and serves, unless its certificate has expired (it is renewed by
//! the scheduler while the agent runs: [`crate::agent::certificate`]), which is one line and
//! a failure. `--rejoin` joins again with the same key, presenting the current certificate
//! ([`JoinRequest::current_cert`]): the scheduler lets an existing node join again only so, or
//! with a token the admin made for that node. A failed join writes nothing.
//!
//! The wire types ([`JoinRequest`], [`JoinResponse`]) and the token format ([`Token`]) are
//! shared with the scheduler's side, `mini_sched::join`.

use crate::agent::{self, tls, tls::TlsFiles, Listen};
use crate::protocol::ErrorBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The first field of every join token (the format's version).
pub const TOKEN_PREFIX: &str = "mst1";

/// How long one exchange with the scheduler (connect, TLS, request, answer) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer accepted from the scheduler.
const MAX_ANSWER: usize = 1 << 20;

/// `POST /v1/join`: an agent asks to join. Strict: unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The join token (`mst1.<secret>.<CA hash>`).
    pub token: String,
    /// The node's name (the same rules as a container id).
    pub node: String,
    /// Where the scheduler reaches the agent; the certificate is issued for its IP.
    pub address: SocketAddr,
    /// The node's labels (placement's node selectors and spread keys).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A PEM certificate signing request for the agent's own key.
    pub csr: String,
    /// On a re-join: the node's current certificate (PEM), for the key the request is signed
    /// with, proving that the caller is the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_cert: Option<String>,
}

/// The answer to a successful join.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JoinResponse {
    /// The node's name, as registered.
    pub node: String,
    /// The cluster CA certificate (PEM).
    pub ca: String,
    /// The agent's server certificate (PEM): serverAuth only, valid for the address's IP.
    pub cert: String,
}

/// A parsed join token: `mst1.<32 hex secret>.<64 hex SHA-256 of the CA certificate's DER>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The secret (32 lowercase hex digits) the scheduler keeps only a hash of.
    pub secret: String,
    /// The SHA-256 (64 lowercase hex digits) of the cluster CA certificate in DER.
    pub ca_sha256: String,
}

impl Token {
    /// Reads a token, checking its shape (not whether any scheduler knows it).
    pub fn parse(text: &str) -> Result<Token, String> {
        let malformed = || {
            format!(
                "the join token is malformed: expected {TOKEN_PREFIX}.<32 hex digits>.<64 hex digits>, as `mini-sched token create` prints it"
            )
        };
        let mut parts = text.trim().split('.');
        let (Some(TOKEN_PREFIX), Some(secret), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let hex = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(secret, 32) || !hex(hash, 64) {
            return Err(malformed());
        }
        Ok(Token {
            secret: secret.to_ascii_lowercase(),
            ca_sha256: hash.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}.{}.{}", self.secret, self.ca_sha256)
    }
}

impl fmt::Debug for Token {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({TOKEN_PREFIX}.<secret>.{})", self.ca_sha256)
    }
}

/// Lowercase hex of SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 (lowercase hex) of the DER of the one certificate in `ca_pem`: what a join
/// token names the cluster CA by.
pub fn ca_fingerprint(ca_pem: &str) -> Result<String, String> {
    let certs = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA is not PEM: {e}"))?;
    match certs.as_slice() {
        [cert] => Ok(sha256_hex(cert.as_ref())),
        _ => Err(format!(
            "the CA must be exactly one PEM certificate, found {}",
            certs.len()
        )),
    }
}

/// Checks a node name: 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`
/// (agents use it in cgroup names).
pub fn validate_node_name(node: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if node.is_empty()
        || node.len() > 64
        || node.starts_with(['.', '-'])
        || !node.chars().all(ok_char)
    {
        return Err(format!(
            "node name {node:?} must be 1 to 64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The options are unusable.
    #[error("{0}")]
    Usage(String),
    /// The scheduler could not be reached or did not speak the protocol.
    #[error("joining through {addr}: {reason}")]
    Unreachable {
        /// The scheduler's join address.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The CA the scheduler presented is not the one the token names.
    #[error("the scheduler's CA does not match the token: it hashes to {got}, the token names {want}; check --scheduler and the token (`mini-sched token create` prints a fresh one)")]
    CaMismatch {
        /// The CA's hash.
        got: String,
        /// The token's.
        want: String,
    },
    /// The scheduler answered with an error.
    #[error("the scheduler refused the join ({code}): {message}")]
    Refused {
        /// The protocol's error code (`forbidden`, `conflict`, `bad_request`, ...).
        code: String,
        /// Its message.
        message: String,
    },
    /// Keys, files or the agent itself failed.
    #[error("{0}")]
    Agent(#[from] agent::Error),
}

/// How `mini-shim join` runs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The scheduler's join listener.
    pub scheduler: SocketAddr,
    /// The join token.
    pub token: String,
    /// Where the agent serves.
    pub listen: SocketAddr,
    /// Where the scheduler reaches the agent (default: `listen`, which must then be a
    /// specific address).
    pub advertise: Option<SocketAddr>,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
    /// The node's name.
    pub node: String,
    /// The agent's state directory; credentials go to `pki/` in it.
    pub state_dir: PathBuf,
    /// Join again although credentials exist (`--rejoin`).
    pub rejoin: bool,
    /// What the agent's listener allows its peers.
    pub limits: crate::connection_limits::Limits,
    /// Remove the cluster network's routes, table and bridge on stop (`--cleanup`).
    pub cleanup: bool,
    /// How the agent reaches image registries.
    pub registries: crate::registry::RegistryOptions,
}

impl JoinOptions {
    /// The files the agent serves with: `S/pki/{agent.pem,agent-key.pem,ca.pem}`.
    pub fn tls_files(&self) -> TlsFiles {
        let (cert, key) = agent::pki::paths(&self.pki_dir(), "agent");
        TlsFiles {
            cert,
            key,
            ca: self.pki_dir().join("ca.pem"),
        }
    }

    fn pki_dir(&self) -> PathBuf {
        self.state_dir.join("pki")
    }

    /// The address given to the scheduler.
    fn advertised(&self) -> Result<SocketAddr, JoinError> {
        let addr = self.advertise.unwrap_or(self.listen);
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(JoinError::Usage(format!(
                "{addr} is not an address the scheduler can reach: add --advertise IP:PORT (this host's address for the agent)"
            )));
        }
        Ok(addr)
    }
}

/// Joins the cluster unless this agent has joined before, then serves exactly as
/// `mini-shim agent` with the joined credentials does, until SIGTERM or SIGINT.
pub fn run(options: JoinOptions) -> Result<(), JoinError> {
    let files = credentials(&options)?;
    agent::run(agent::Config {
        listen: Listen::Tls {
            addr: options.listen,
            files,
        },
        state_dir: options.state_dir,
        node: options.node,
        limits: options.limits,
        cleanup: options.cleanup,
        registries: options.registries,
    })?;
    Ok(())
}

/// The agent's credentials: those of an earlier join (still valid), or new ones from joining
/// now.
pub fn credentials(options: &JoinOptions) -> Result<TlsFiles, JoinError> {
    let files = options.tls_files();
    let current = if files.cert.exists() {
        let pem = std::fs::read_to_string(&files.cert)
            .map_err(|e| agent::Error::io("reading", &files.cert, e))?;
        let info = agent::pki::inspect(&pem)?;
        let valid = info.not_after > std::time::SystemTime::now();
        if !options.rejoin {
            if valid {
                return Ok(files);
            }
            return Err(JoinError::Usage(format!(
                "this agent's certificate {} expired at {} (the scheduler renews it only while the agent runs): have the cluster admin make a token with mini-sched token create --rejoin {} and run mini-shim join --rejoin with it",
                files.cert.display(),
                humantime::format_rfc3339_seconds(info.not_after),
                options.node
            )));
        }
        let key = std::fs::read_to_string(&files.key)
            .map_err(|e| agent::Error::io("reading", &files.key, e))?;
        Some((valid.then_some(pem), key))
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| JoinError::Usage(format!("starting the async runtime: {e}")))?;
    let joined = runtime.block_on(join(options, current))?;
    write_credentials(options, &joined)?;
    Ok(files)
}

/// What a join brings home.
struct Joined {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// Joins; `current` is a re-join's certificate (when still valid) and key (PEM).
async fn join(
    options: &JoinOptions,
    current: Option<(Option<String>, String)>,
) -> Result<Joined, JoinError> {
    let token = Token::parse(&options.token).map_err(JoinError::Usage)?;
    validate_node_name(&options.node).map_err(JoinError::Usage)?;
    let address = options.advertised()?;
    let pki_error = |what: &str, e: rcgen::Error| agent::Error::Pki(format!("{what}: {e}"));
    let (current_cert, key) = match current {
        Some((cert, key)) => (
            cert,
            KeyPair::from_pem(&key).map_err(|e| pki_error("reading the agent's key", e))?,
        ),
        None => (
            None,
            KeyPair::generate().map_err(|e| pki_error("generating the agent's key", e))?,
        ),
    };
    let mut params = CertificateParams::new(vec![address.ip().to_string()])
        .map_err(|e| pki_error("the agent's address", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, options.node.as_str());
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| pki_error("making the certificate request", e))?;

    let scheduler = options.scheduler;
    let unreachable = |reason: String| JoinError::Unreachable {
        addr: scheduler,
        reason,
    };
    let (status, body) = exchange(scheduler, unverified(), Method::GET, "/v1/cluster/ca", None)
        .await
        .map_err(unreachable)?;
    if status != StatusCode::OK {
        return Err(refusal(status, &body));
    }
    let ca_pem = String::from_utf8(body.to_vec())
        .map_err(|_| unreachable("the CA it sent is not text".into()))?;
    let got = ca_fingerprint(&ca_pem).map_err(unreachable)?;
    if got != token.ca_sha256 {
        return Err(JoinError::CaMismatch {
            got,
            want: token.ca_sha256,
        });
    }

    let request = JoinRequest {
        token: token.to_string(),
        node: options.node.clone(),
        address,
        labels: options.labels.clone(),
        csr,
        current_cert,
    };
    let body = serde_json::to_vec(&request).expect("join requests serialize");
    let (status, body) = exchange(
        scheduler,
        verified_by(&ca_pem).map_err(unreachable)?,
        Method::POST,
        "/v1/join",
        Some(body),
    )
    .await
    .map_err(unreachable)?;
    if status != StatusCode::OK {
        return Err(refusal(status, &body));
    }
    let answer: JoinResponse = serde_json::from_slice(&body)
        .map_err(|e| unreachable(format!("malformed join answer: {e}")))?;
    Ok(Joined {
        ca_pem,
        cert_pem: answer.cert,
        key_pem: key.serialize_pem(),
    })
}

/// The scheduler's error answer as a [`JoinError::Refused`].
fn refusal(status: StatusCode, body: &[u8]) -> JoinError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => JoinError::Refused {
            code: e.error.code,
            message: e.error.message,
        },
        Err(_) => JoinError::Refused {
            code: status.as_u16().to_string(),
            message: String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        },
    }
}

/// One HTTP/1.1 request over TLS to `addr`, with its status and body.
async fn exchange(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("building the request: {e}"))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = answer.status();
        let body = Limited::new(answer.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer to {path}: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {}s", EXCHANGE_TIMEOUT.as_secs()))?
}

/// A client configuration that accepts any server certificate: only for fetching the CA,
/// which the token's hash then authenticates. Handshake signatures are still checked.
fn unverified() -> Arc<ClientConfig> {
    let provider = tls::provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client configuration that trusts only `ca_pem`, without a client certificate.
fn verified_by(ca_pem: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the CA is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA is unusable: {e}"))?;
    }
    let mut config = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts every server certificate (see [`unverified`]).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Writes the credentials into `S/pki/`, each file first under a temporary name; they are
/// checked as a server configuration, then renamed into place with `agent.pem` (the mark of
/// a joined agent) last. On failure nothing is left: neither files nor the directories this
/// made (a re-join's failure leaves the files it was to replace, which hold the same CA and
/// key).
fn write_credentials(options: &JoinOptions, joined: &Joined) -> Result<(), JoinError> {
    let dir = options.pki_dir();
    let made = missing_dirs(&dir);
    let files = options.tls_files();
    let staged: [(&Path, &str, u32); 3] = [
        (&files.ca, &joined.ca_pem, 0o644),
        (&files.key, &joined.key_pem, 0o600),
        (&files.cert, &joined.cert_pem, 0o644),
    ];
    let temp = |p: &Path| p.with_extension("pem.tmp");
    let mut placed = Vec::new();
    let mut place = || {
        std::fs::create_dir_all(&dir).map_err(|e| agent::Error::io("creating", &dir, e))?;
        for (path, text, mode) in staged {
            // A temporary file left by a join that was killed is replaced.
            let _ = std::fs::remove_file(temp(path));
            write_new(&temp(path), text, mode)?;
        }
        tls::server_config(&TlsFiles {
            cert: temp(&files.cert),
            key: temp(&files.key),
            ca: temp(&files.ca),
        })?;
        for (path, _, _) in staged {
            let existed = path.exists();
            std::fs::rename(temp(path), path).map_err(|e| agent::Error::io("renaming", path, e))?;
            if !existed {
                placed.push(path);
            }
        }
        sync_dir(&dir)
    };
    let result = place();
    if result.is_err() {
        for (path, _, _) in staged {
            let _ = std::fs::remove_file(temp(path));
        }
        for path in placed {
            let _ = std::fs::remove_file(path);
        }
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
    Ok(result?)
}

/// `dir` and those of its ancestors that do not exist yet, outermost first: what to remove
/// after a failure to leave nothing behind.
pub fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// Creates `path` (which must not exist) with `mode`, writes `text` and syncs it.
pub(crate) fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), agent::Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| agent::Error::io("creating", path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| agent::Error::io("writing", path, e))
}

/// Syncs the directory `dir` (after a rename in it).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), agent::Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| agent::Error::io("syncing", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_print_back() {
        let text = format!("mst1.{}.{}", "A".repeat(32), "b".repeat(64));
        let token = Token::parse(&text).unwrap();
        assert_eq!(token.secret, "a".repeat(32));
        assert_eq!(token.to_string(), text.to_ascii_lowercase());
        assert!(!format!("{token:?}").contains(&token.secret));
        for bad in [
            "",
            "mst1",
            &format!("mst2.{}.{}", "a".repeat(32), "b".repeat(64)),
            &format!("mst1.{}.{}", "a".repeat(31), "b".repeat(64)),
            &format!("mst1.{}.{}", "g".repeat(32), "b".repeat(64)),
            &format!("mst1.{}.{}.x", "a".repeat(32), "b".repeat(64)),
        ] {
            let e = Token::parse(bad).unwrap_err();
            assert!(e.contains("malformed"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_ca_fingerprint_is_the_sha256_of_its_der() {
        let ca = agent::pki::new_ca("test").unwrap();
        let der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let fp = ca_fingerprint(&ca.cert_pem).unwrap();
        assert_eq!(fp, sha256_hex(der.as_ref()));
        assert_eq!(fp.len(), 64);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let two = format!("{}{}", ca.cert_pem, ca.cert_pem);
        assert!(ca_fingerprint(&two).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn an_unspecified_listen_address_needs_an_advertised_one() {
        let mut options = JoinOptions {
            scheduler: "127.0.0.1:7440".parse().unwrap(),
            token: String::new(),
            listen: "0.0.0.0:7443".parse().unwrap(),
            advertise: None,
            labels: BTreeMap::new(),
            node: "n1".into(),
            state_dir: "/nonexistent".into(),
            rejoin: false,
            limits: Default::default(),
            cleanup: false,
            registries: Default::default(),
        };
        let e = options.advertised().unwrap_err();
        assert!(e.to_string().contains("--advertise"), "{e}");
        options.advertise = Some("10.0.0.2:7443".parse().unwrap());
        assert_eq!(options.advertised().unwrap(), options.advertise.unwrap());
    }

    #[test]
    fn an_expired_certificate_stops_the_agent_with_what_to_do() {
        let state_dir =
            std::env::temp_dir().join(format!("mini-shim-expired-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let options = JoinOptions {
            scheduler: "127.0.0.1:7440".parse().unwrap(),
            token: String::new(),
            listen: "127.0.0.1:7443".parse().unwrap(),
            advertise: None,
            labels: BTreeMap::new(),
            node: "n1".into(),
            state_dir: state_dir.clone(),
            rejoin: false,
            limits: Default::default(),
            cleanup: false,
            registries: Default::default(),
        };
        // A certificate that ended in 2000.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2000, 1, 2);
        let expired = agent::pki::Issued {
            cert_pem: params.self_signed(&key).unwrap().pem(),
            key_pem: key.serialize_pem(),
        };
        agent::pki::write(&options.pki_dir(), "agent", &expired).unwrap();
        let e = credentials(&options).unwrap_err();
        std::fs::remove_dir_all(&state_dir).unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("expired") && msg.contains("token create --rejoin n1"),
            "{msg}"
        );
    }

    #[test]
    fn node_names_follow_the_id_rules() {
        validate_node_name("n-1.a_b").unwrap();
        for bad in ["", "-n", ".n", "n/1", &"n".repeat(65)] {
            assert!(validate_node_name(bad).is_err(), "{bad}");
        }
    }
}
