//! The join listener: HTTPS with the join-server certificate, no client certificate (the
//! token authenticates the agent), two routes:
//!
//! - `GET /v1/cluster/ca` → the CA certificate (PEM), which the agent checks against the
//!   token's hash before it trusts anything else from here;
//! - `POST /v1/join` [`JoinRequest`] → [`JoinResponse`]: the name, address and labels are
//!   checked (labels as the labels API checks them), the token too, a re-join's current
//!   certificate is checked against the CA and the request's key, the request is signed,
//!   the token's use counted and the node registered through the daemon's [`Register`],
//!   which decides whether the name and address may be had.
//!
//! Errors use the shim protocol's JSON shape (`{"error": {"code", "message"}}`) with codes
//! `bad_request` (400), `forbidden` (403: bad, unknown, expired, used-up or revoked token),
//! `not_found` (404), `conflict` (409: the name or the address belongs to another node, or a
//! re-join without the node's certificate) and `internal` (500).

use super::{ClusterPki, Error, JoinRequest, JoinResponse, TokenError, Tokens};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use mini_shim::agent::tls;
use mini_shim::connection_limits::{self, accept::Log, http::Tls, read_body, Gate, Limits};
use mini_shim::protocol::{ErrorBody, ErrorInfo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The largest join request accepted.
const MAX_BODY: usize = 64 << 10;

/// A node that joined, for the daemon to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Its name.
    pub node: String,
    /// Where its agent serves.
    pub address: SocketAddr,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The certificate issued to it now (PEM): the node's current one once recorded.
    pub certificate: String,
    /// On a re-join: the certificate it presented (DER), checked to be of this CA, valid, in
    /// the node's name and for the key the new one is issued for. The daemon accepts it as
    /// proof only if it is the node's current certificate.
    pub presented: Option<Vec<u8>>,
    /// Its token was made for this node (`token create --rejoin`): it may replace the node
    /// without its certificate.
    pub forced: bool,
}

/// Why the daemon did not register a node.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The name or the address belongs to another node, or the node exists and the join
    /// proves nothing (409 `conflict`).
    #[error("{0}")]
    Conflict(String),
    /// Recording it failed (500 `internal`).
    #[error("{0}")]
    Failed(String),
}

/// The daemon's callback that records a joined node. It runs on a blocking thread, so it may
/// write to disk.
pub type Register = Arc<dyn Fn(Registration) -> Result<(), RegisterError> + Send + Sync>;

/// A running join listener; dropping it (or [`JoinServer::abort`]) stops it.
pub struct JoinServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl JoinServer {
    /// The address it listens on (the real port when it was asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for JoinServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What every connection shares.
struct Listener {
    pki: ClusterPki,
    tokens: Tokens,
    cert_lifetime: Duration,
    register: Register,
}

/// Starts the join listener on `addr` under `limits` (within a tokio runtime); nodes get
/// certificates valid for `cert_lifetime`. Fails at once when the certificates are unusable
/// or the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    pki: ClusterPki,
    tokens: Tokens,
    cert_lifetime: Duration,
    register: Register,
    limits: Limits,
) -> Result<JoinServer, Error> {
    let files = pki.join_server_tls();
    let tls_error = |e: mini_shim::agent::Error| Error::Listen(format!("join listener TLS: {e}"));
    // The certificate is read again when the daemon renews it.
    let mut config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Listen(format!("join listener TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(
            tls::ReloadingCert::new(&files).map_err(tls_error)?,
        ));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrNotAvailable {
            format!(
                " ({} is not an address of this host: pass --join-listen 0.0.0.0:{} to \
                 listen on every address)",
                addr.ip(),
                addr.port()
            )
        } else {
            String::new()
        };
        Error::Listen(format!("join listener on {addr}: {e}{hint}"))
    })?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::Listen(format!("join listener on {addr}: {e}")))?;
    let shared = Arc::new(Listener {
        pki,
        tokens,
        cert_lifetime,
        register,
    });
    log(&format!("listening on https://{local_addr}"));
    let tls = Tls {
        acceptor,
        client_certificates: false,
    };
    let log_line: Log = Arc::new(|line: &str| log(line));
    let body_timeout = limits.body_timeout;
    let task = tokio::spawn(connection_limits::serve(
        listener,
        Gate::new(limits),
        Some(tls),
        log_line,
        move |peer| {
            let shared = shared.clone();
            let peer = peer.unwrap_or(local_addr);
            service_fn(move |req| {
                let shared = shared.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(handle(shared, req, peer, body_timeout).await)
                }
            })
        },
    ));
    Ok(JoinServer { local_addr, task })
}

fn log(msg: &str) {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    eprintln!("{now} mini-sched join: {msg}");
}

/// A failed request: status, code and message.
struct Refusal(StatusCode, &'static str, String);

impl Refusal {
    fn bad_request(message: String) -> Refusal {
        Refusal(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn internal(message: String) -> Refusal {
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

async fn handle(
    shared: Arc<Listener>,
    req: Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Duration,
) -> Response<Full<Bytes>> {
    let answer = match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/cluster/ca") => Ok(respond(
            StatusCode::OK,
            "application/x-pem-file",
            shared.pki.ca_pem().as_bytes().to_vec(),
        )),
        (&Method::POST, "/v1/join") => join(shared, req, peer, body_timeout).await,
        (method, path @ ("/v1/cluster/ca" | "/v1/join")) => Err(Refusal::bad_request(format!(
            "{method} {path}: wrong method (see the join protocol: GET /v1/cluster/ca, POST /v1/join)"
        ))),
        (method, path) => Err(Refusal(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {method} {path} on the join listener"),
        )),
    };
    answer.unwrap_or_else(|Refusal(status, code, message)| {
        let body = ErrorBody {
            error: ErrorInfo {
                code: code.to_string(),
                message,
            },
        };
        respond(status, "application/json", json(&body))
    })
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut text = serde_json::to_vec(value).expect("join answers serialize");
    text.push(b'\n');
    text
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

/// `POST /v1/join`.
async fn join(
    shared: Arc<Listener>,
    req: Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Duration,
) -> Result<Response<Full<Bytes>>, Refusal> {
    let bytes = read_body(req.into_body(), MAX_BODY, body_timeout)
        .await
        .map_err(|e| Refusal::bad_request(format!("reading the request body: {e}")))?;
    let request: JoinRequest = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::bad_request(format!("malformed join request: {e}")))?;
    let node = request.node.clone();
    let result = tokio::task::spawn_blocking(move || admit(&shared, request))
        .await
        .unwrap_or_else(|e| Err(Refusal::internal(format!("the join failed: {e}"))));
    match &result {
        Ok(answer) => log(&format!(
            "node {node} joined from {peer} (certificate for {})",
            answer.node
        )),
        Err(Refusal(_, code, message)) => log(&format!(
            "refused node {node:?} from {peer}: {code}: {message}"
        )),
    }
    Ok(respond(StatusCode::OK, "application/json", json(&result?)))
}

/// Checks a join request, signs its certificate and registers the node.
fn admit(shared: &Listener, request: JoinRequest) -> Result<JoinResponse, Refusal> {
    mini_shim::join::validate_node_name(&request.node).map_err(Refusal::bad_request)?;
    if request.address.ip().is_unspecified() || request.address.port() == 0 {
        return Err(Refusal::bad_request(format!(
            "address {} is not one the scheduler can reach: advertise the agent's IP:PORT",
            request.address
        )));
    }
    crate::labels::validate_all(&request.labels).map_err(Refusal::bad_request)?;
    let token_refused = |e: TokenError| match e {
        TokenError::Store(e) => Refusal::internal(e.to_string()),
        e => Refusal(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
    };
    shared
        .tokens
        .verify(&request.token)
        .map_err(token_refused)?;
    let request_error = |e: Error| match e {
        Error::Request(message) => Refusal::bad_request(message),
        e => Refusal::internal(e.to_string()),
    };
    let key = shared
        .pki
        .request_key(&request.csr)
        .map_err(request_error)?;
    let presented = match &request.current_cert {
        Some(pem) => {
            let info = shared
                .pki
                .check_node_cert(pem, &request.node)
                .map_err(request_error)?;
            if info.public_key != key {
                return Err(Refusal::bad_request(
                    "the current certificate is not for the key of the certificate request".into(),
                ));
            }
            Some(info.der)
        }
        None => None,
    };
    let cert = shared
        .pki
        .sign_node(&key, &request.node, request.address, shared.cert_lifetime)
        .map_err(request_error)?;
    let token = shared
        .tokens
        .consume(&request.token, &request.node)
        .map_err(token_refused)?;
    let registered = (shared.register)(super::Registration {
        node: request.node.clone(),
        address: request.address,
        labels: request.labels,
        certificate: cert.clone(),
        presented,
        forced: token.rejoin.as_deref() == Some(request.node.as_str()),
    });
    if let Err(e) = registered {
        // The join failed: its use of the token is given back.
        if let Err(release) = shared.tokens.release(&token.id) {
            log(&format!(
                "giving back a use of token {}: {release}",
                token.id
            ));
        }
        return Err(match e {
            super::RegisterError::Conflict(message) => {
                Refusal(StatusCode::CONFLICT, "conflict", message)
            }
            super::RegisterError::Failed(message) => Refusal::internal(message),
        });
    }
    Ok(JoinResponse {
        node: request.node,
        ca: shared.pki.ca_pem().to_string(),
        cert,
    })
}
