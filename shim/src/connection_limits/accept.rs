//! The accept loop of every listener: a failed `accept` (out of descriptors, most often) is
//! logged and retried after a back-off instead of ending the listener; a connection over the
//! [`Gate`]'s limits is closed at once; every other one is served in a task of its own,
//! holding its [`Permit`](super::Permit) until it closes.

use super::http::{self, Tls};
use super::{Gate, Permit};
use hyper::body::{Body, Incoming};
use hyper::service::HttpService;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The first pause after a failed `accept`; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause after failed `accept`s.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Where a listener logs (one line per call).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A listening socket: TCP (the peer's address is known) or unix (it is not).
pub trait Accept: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Accepts the next connection.
    fn poll_accept(&self, cx: &mut Context<'_>)
        -> Poll<io::Result<(Self::Io, Option<SocketAddr>)>>;
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Io, Option<SocketAddr>)>> {
        tokio::net::TcpListener::poll_accept(self, cx).map_ok(|(io, peer)| (io, Some(peer)))
    }
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Io, Option<SocketAddr>)>> {
        tokio::net::UnixListener::poll_accept(self, cx).map_ok(|(io, _)| (io, None))
    }
}

/// Serves HTTP/1.1 on `listener` (over TLS when `tls` is given) under `gate`'s limits, with
/// the service `make_service` builds for each connection's peer. Never returns.
pub async fn serve<L, M, S, B>(
    listener: L,
    gate: Arc<Gate>,
    tls: Option<Tls>,
    log: Log,
    make_service: M,
) where
    L: Accept,
    M: Fn(Option<SocketAddr>) -> S,
    S: HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let (io, peer) = match std::future::poll_fn(|cx| listener.poll_accept(cx)).await {
            Ok(accepted) => accepted,
            Err(e) => {
                log(&format!(
                    "accepting a connection: {e}; trying again in {}ms",
                    backoff.as_millis()
                ));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        let permit = match gate.admit(peer.map(|p| p.ip())) {
            Ok(permit) => permit,
            Err(refusal) => {
                drop(io);
                if let Some(line) = gate.report(&format!("refused {}: {refusal}", who(peer))) {
                    log(&line);
                }
                continue;
            }
        };
        let service = make_service(peer);
        tokio::spawn(connection(
            io,
            peer,
            permit,
            tls.clone(),
            service,
            gate.clone(),
            log.clone(),
        ));
    }
}

/// Serves one admitted connection; its permit goes when it closes.
async fn connection<I, S, B>(
    io: I,
    peer: Option<SocketAddr>,
    mut permit: Permit,
    tls: Option<Tls>,
    service: S,
    gate: Arc<Gate>,
    log: Log,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = gate.limits();
    let Some(tls) = tls else {
        return http::serve_http(io, service, limits).await;
    };
    match http::handshake(&tls, io, limits.handshake_timeout).await {
        Ok(stream) => {
            if tls.client_certificates {
                permit.authenticated();
            }
            http::serve_http(stream, service, limits).await;
        }
        Err(e) => {
            if let Some(line) = gate.report(&format!("refused {}: TLS: {e}", who(peer))) {
                log(&line);
            }
        }
    }
}

/// The peer, for the log.
fn who(peer: Option<SocketAddr>) -> String {
    peer.map_or("a local client".to_string(), |p| p.ip().to_string())
}
