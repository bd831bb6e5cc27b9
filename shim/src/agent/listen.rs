//! Where the agent listens, and the accept loop: mutual TLS on TCP, or — explicitly, for
//! development — plain HTTP on a loopback address or a unix socket.

use super::tls::{self, TlsFiles};
use super::{api, Agent, Error};
use crate::connection_limits::{self, accept::Log, http::Tls, Accept, Gate, Limits};
use hyper::service::service_fn;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A listening endpoint.
#[derive(Debug, Clone)]
pub enum Listen {
    /// HTTPS on a TCP address; clients must present a certificate from the client CA.
    Tls {
        /// The address.
        addr: SocketAddr,
        /// Server certificate, key and client CA.
        files: TlsFiles,
    },
    /// Development mode: plain HTTP on a loopback address (anyone on the host can call it).
    DevLoopback(SocketAddr),
    /// Development mode: plain HTTP on a unix socket that only root may open (mode 0600).
    DevUnix(PathBuf),
}

impl Listen {
    /// Reads `--listen` (`ADDR:PORT` or `unix:PATH`) with `--dev` and the TLS files. Without
    /// `--dev` TLS is required; with it the address must be a unix socket or loopback.
    pub fn parse(listen: &str, dev: bool, tls: Option<TlsFiles>) -> Result<Listen, Error> {
        if let Some(path) = listen.strip_prefix("unix:") {
            if !dev {
                return Err(Error::Config(format!(
                    "--listen {listen}: a unix socket is served only in development mode; add --dev"
                )));
            }
            return Ok(Listen::DevUnix(PathBuf::from(path)));
        }
        let addr: SocketAddr = listen.parse().map_err(|_| {
            Error::Config(format!(
                "--listen {listen:?} is neither IP:PORT nor unix:PATH"
            ))
        })?;
        match (dev, tls) {
            (true, Some(_)) => Err(Error::Config(
                "--dev serves plain HTTP: leave out the TLS options or --dev".into(),
            )),
            (true, None) if addr.ip().is_loopback() => Ok(Listen::DevLoopback(addr)),
            (true, None) => Err(Error::Config(format!(
                "--dev refuses {addr}: development mode listens only on loopback or a unix socket"
            ))),
            (false, Some(files)) => Ok(Listen::Tls { addr, files }),
            (false, None) => Err(Error::Config(
                "TLS needs --tls-cert, --tls-key and --client-ca (or use --dev on loopback)".into(),
            )),
        }
    }
}

/// Serves `agent` on `listen` under `limits` until `shutdown` resolves.
pub async fn serve(
    agent: Arc<Agent>,
    listen: &Listen,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let accept = async {
        match listen {
            Listen::Tls { addr, files } => {
                let tls = Tls {
                    acceptor: tokio_rustls::TlsAcceptor::from(tls::server_config(files)?),
                    client_certificates: true,
                };
                let listener = bind_tcp(*addr).await?;
                let limits = limits.authenticated_clients();
                agent.log(&format!(
                    "listening on https://{addr} (mutual TLS; {limits})"
                ));
                serve_on(&agent, listener, limits, Some(tls)).await;
            }
            Listen::DevLoopback(addr) => {
                let listener = bind_tcp(*addr).await?;
                agent.log(&format!(
                    "DEVELOPMENT MODE: plain HTTP without authentication on http://{addr}"
                ));
                serve_on(&agent, listener, limits.local_clients(), None).await;
            }
            Listen::DevUnix(path) => {
                let listener = bind_unix(path)?;
                agent.log(&format!(
                    "DEVELOPMENT MODE: plain HTTP on unix socket {} (root only)",
                    path.display()
                ));
                serve_on(&agent, listener, limits.local_clients(), None).await;
            }
        }
        Ok(())
    };
    tokio::select! {
        r = accept => r,
        () = shutdown => Ok(()),
    }
}

/// The protocol on `listener`, for ever.
async fn serve_on<L: Accept>(agent: &Arc<Agent>, listener: L, limits: Limits, tls: Option<Tls>) {
    let log: Log = {
        let agent = agent.clone();
        Arc::new(move |line: &str| agent.log(line))
    };
    let gate = Gate::new(limits);
    // The first listener's gate is the one `/metrics` counts.
    let _ = agent.gate.set(gate.clone());
    let agent = agent.clone();
    connection_limits::serve(listener, gate, tls, log, move |_peer| {
        let agent = agent.clone();
        service_fn(move |req| {
            let agent = agent.clone();
            async move { Ok::<_, std::convert::Infallible>(api::handle(agent, req).await) }
        })
    })
    .await;
}

async fn bind_tcp(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("listening on {addr}: {e}")))
}

fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener, Error> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    // A socket left by an agent that was killed is replaced; any other file is not.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "{} exists and is not a socket; remove it or choose another path",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| Error::io("removing", path, e))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| Error::Config(format!("listening on {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("restricting", path, e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> TlsFiles {
        TlsFiles {
            cert: "c".into(),
            key: "k".into(),
            ca: "ca".into(),
        }
    }

    #[test]
    fn development_mode_stays_on_loopback() {
        assert!(matches!(
            Listen::parse("127.0.0.1:7000", true, None),
            Ok(Listen::DevLoopback(_))
        ));
        assert!(matches!(
            Listen::parse("[::1]:7000", true, None),
            Ok(Listen::DevLoopback(_))
        ));
        let e = Listen::parse("0.0.0.0:7000", true, None).unwrap_err();
        assert!(e.to_string().contains("only on loopback"), "{e}");
        assert!(Listen::parse("unix:/run/x.sock", true, None).is_ok());
    }

    #[test]
    fn without_development_mode_tls_is_required() {
        let e = Listen::parse("127.0.0.1:7000", false, None).unwrap_err();
        assert!(e.to_string().contains("--tls-cert"), "{e}");
        let e = Listen::parse("unix:/run/x.sock", false, None).unwrap_err();
        assert!(e.to_string().contains("--dev"), "{e}");
        assert!(matches!(
            Listen::parse("0.0.0.0:7000", false, Some(files())),
            Ok(Listen::Tls { .. })
        ));
        assert!(Listen::parse("127.0.0.1:7000", true, Some(files())).is_err());
    }
}
