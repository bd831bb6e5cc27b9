//! One connection under the listener's timeouts: the TLS handshake within the handshake
//! timeout, then HTTP/1.1 with hyper's header read timeout as the idle timeout (hyper starts
//! it again after every answer, so a kept-alive connection that sends nothing is closed), and
//! the whole connection within its lifetime when it has one.

use super::Limits;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A listener's TLS.
#[derive(Clone)]
pub struct Tls {
    /// The server configuration.
    pub acceptor: TlsAcceptor,
    /// Whether it requires client certificates: a connection that completes the handshake is
    /// then authenticated.
    pub client_certificates: bool,
}

/// The TLS handshake on `io`, within `timeout`.
pub async fn handshake<I>(tls: &Tls, io: I, timeout: Duration) -> Result<TlsStream<I>, String>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, tls.acceptor.accept(io)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no handshake within {} (--handshake-timeout)",
            humantime::format_duration(timeout)
        )),
    }
}

/// Serves HTTP/1.1 on `io` until the peer closes, stays idle past the idle timeout, or the
/// connection's lifetime ends. Errors are the peer's doing, with nobody left to tell.
pub async fn serve_http<I, S, B>(io: I, service: S, limits: &Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    match limits.max_lifetime {
        Some(lifetime) => drop(tokio::time::timeout(lifetime, connection).await),
        None => drop(connection.await),
    }
}
