//! The scheduler as the agents' client: the shim protocol over mutual TLS.
//!
//! Calls reuse pooled connections: each agent's idle HTTP/1.1 connections (TCP, TLS with the
//! scheduler's client certificate) are kept for [`POOL_IDLE`] — well under the agents' idle
//! timeout (30 s by default), so the pool lets a connection go before the agent closes it —
//! at most [`POOL_PER_AGENT`] of them. A call takes the most recently used live one, or opens
//! a new one. A pooled connection may still have died meanwhile (the agent restarted, or
//! closed it as the call began): a call that fails on a reused connection before any answer
//! came is made once more on a fresh connection, so a dead pooled connection is never taken
//! for an unreachable node by itself; only a fresh connection's failure is. Every call has one
//! deadline for all of it (connecting, the retry and the answer's body included), and the
//! body may be at most [`MAX_ANSWER`] bytes. Log streams use connections of their own, which
//! are never pooled.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mini_shim::agent::tls::{client_config, TlsFiles};
use mini_shim::connection_limits::{read_limited, BodyError};
use mini_shim::protocol::ErrorBody;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest answer read from an agent: a container list with usage for thousands of
/// containers fits many times over; an agent that answers without end is cut off here.
pub const MAX_ANSWER: usize = 8 << 20;

/// How long an idle connection is kept in the pool.
pub const POOL_IDLE: Duration = Duration::from_secs(10);

/// The most idle connections kept per agent.
pub const POOL_PER_AGENT: usize = 8;

/// How long a log stream's answer head may take.
const STREAM_START: Duration = Duration::from_secs(10);

/// Why a call to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The agent could not be reached or the connection broke: the node may be down.
    #[error("agent {0} unreachable: {1}")]
    Unreachable(SocketAddr, String),
    /// The agent answered with an error.
    #[error("agent {addr}: {code}: {message}")]
    Refused {
        /// The agent.
        addr: SocketAddr,
        /// HTTP status.
        status: u16,
        /// The protocol's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer did not parse.
    #[error("agent {0} answered something unreadable: {1}")]
    Garbled(SocketAddr, String),
}

impl CallError {
    /// The protocol error code, when the agent answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client for every agent of the cluster, authenticated by the scheduler's certificate.
/// Clones share one connection pool.
#[derive(Clone)]
pub struct Agents {
    connector: TlsConnector,
    pool: Arc<Pool>,
}

/// The sending half of one HTTP/1.1 connection.
type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle connections by agent, each with the time it was last used.
#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(Sender, Instant)>>>,
}

impl Agents {
    /// A client presenting `files.cert`/`files.key` and trusting agents whose certificates chain
    /// to `files.ca`.
    pub fn new(files: &TlsFiles) -> Result<Agents, mini_shim::agent::Error> {
        Ok(Agents {
            connector: TlsConnector::from(client_config(files)?),
            pool: Default::default(),
        })
    }

    /// A new connection to `addr`.
    async fn connect(&self, addr: SocketAddr) -> Result<Sender, CallError> {
        let unreachable = |e: String| CallError::Unreachable(addr, e);
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// The most recently used live idle connection to `addr`; expired and closed ones are
    /// dropped on the way.
    fn take(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.pool.idle.lock().expect("agent connection pool");
        let list = idle.get_mut(&addr)?;
        let mut found = None;
        while let Some((sender, since)) = list.pop() {
            if since.elapsed() < POOL_IDLE && !sender.is_closed() && sender.is_ready() {
                found = Some(sender);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(&addr);
        }
        found
    }

    /// Puts a connection whose answer was read whole back into the pool.
    fn give_back(&self, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.pool.idle.lock().expect("agent connection pool");
        let list = idle.entry(addr).or_default();
        list.retain(|(s, since)| since.elapsed() < POOL_IDLE && !s.is_closed());
        if list.len() >= POOL_PER_AGENT {
            list.remove(0);
        }
        list.push((sender, Instant::now()));
    }

    /// Sends the request `make` builds on a pooled connection, or a fresh one, and returns
    /// the answer's head with the connection it came on; the caller bounds the time. A
    /// reused connection that fails before an answer came is tried once more on a fresh one.
    async fn send(
        &self,
        addr: SocketAddr,
        make: impl Fn() -> Request<Full<Bytes>>,
        pooled: bool,
    ) -> Result<(Response<Incoming>, Sender), CallError> {
        let unreachable = |e: hyper::Error| CallError::Unreachable(addr, e.to_string());
        if let Some(mut sender) = pooled.then(|| self.take(addr)).flatten() {
            if let Ok(response) = sender.try_send_request(make()).await {
                return Ok((response, sender));
            }
            // The connection had died: the agent restarted, or closed it as it was taken.
        }
        let mut sender = self.connect(addr).await?;
        let response = sender.send_request(make()).await.map_err(unreachable)?;
        Ok((response, sender))
    }

    /// One request whose whole answer, body included, must arrive within `timeout` and be
    /// at most [`MAX_ANSWER`] bytes.
    async fn call<T: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let make = || request(addr, method.clone(), path, body.clone());
        let exchange = async {
            let (response, sender) = self.send(addr, make, true).await?;
            let status = response.status();
            let bytes = read_limited(response.into_body(), MAX_ANSWER)
                .await
                .map_err(|e| match e {
                    BodyError::Broken(e) => CallError::Unreachable(addr, e),
                    e => CallError::Garbled(addr, e.to_string()),
                })?;
            self.give_back(addr, sender);
            Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| CallError::Unreachable(addr, no_answer(timeout)))??;
        if !status.is_success() {
            return Err(refused(addr, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Garbled(addr, e.to_string()))
    }

    /// `GET path`, the answer parsed as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.call(addr, Method::GET, path, None, timeout).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(body).expect("request types serialize");
        self.call(addr, Method::POST, path, Some(body), timeout)
            .await
    }

    /// `method path` with `body` as JSON (`PUT` and `PATCH /v1/services`).
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(body).expect("request types serialize");
        self.call(addr, method, path, Some(body), timeout).await
    }

    /// `DELETE path`.
    pub async fn delete(
        &self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, CallError> {
        self.call(addr, Method::DELETE, path, None, timeout).await
    }

    /// `GET path` as a stream of body chunks (logs with `follow`); the caller reads it, as
    /// slowly as its own client. The answer's head (or a whole error answer) must arrive
    /// within [`STREAM_START`].
    pub async fn stream(&self, addr: SocketAddr, path: &str) -> Result<Incoming, CallError> {
        let start = async {
            let (response, _connection) = self
                .send(addr, || request(addr, Method::GET, path, None), false)
                .await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response.into_body());
            }
            let bytes = read_limited(response.into_body(), MAX_ANSWER)
                .await
                .unwrap_or_default();
            Err(refused(addr, status, &bytes))
        };
        tokio::time::timeout(STREAM_START, start)
            .await
            .map_err(|_| CallError::Unreachable(addr, no_answer(STREAM_START)))?
    }
}

fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    if body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("a request from a valid path")
}

fn no_answer(timeout: Duration) -> String {
    format!(
        "no whole answer within {}",
        humantime::format_duration(timeout)
    )
}

fn refused(addr: SocketAddr, status: StatusCode, bytes: &[u8]) -> CallError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => CallError::Refused {
            addr,
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => CallError::Refused {
            addr,
            status: status.as_u16(),
            code: "http".into(),
            message: format!("status {status}: {}", String::from_utf8_lossy(bytes)),
        },
    }
}

/// Shared handle, as the controllers and the API hold it.
pub type SharedAgents = Arc<Agents>;

#[cfg(test)]
impl Agents {
    /// A client without credentials, for controller tests whose agents are unreachable.
    pub(crate) fn without_credentials() -> Agents {
        let config = rustls::ClientConfig::builder_with_provider(mini_shim::agent::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("the provider's protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Agents {
            connector: TlsConnector::from(Arc::new(config)),
            pool: Default::default(),
        }
    }
}
