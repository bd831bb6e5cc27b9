//! Helpers for the denial-of-service tests (`sched_flood`, `shim_flood`): a process started
//! with few descriptors, idle connections from chosen loopback addresses, TLS clients and a
//! TLS server that answers without end. Everything stays on 127.0.0.0/8 and every flood
//! bounds its own count.

use nix::sys::resource::Resource;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a flood connection waits for a handshake or an answer before it gives up.
const PATIENCE: Duration = Duration::from_secs(5);

/// How long a connection waits to be queued by a listener.
const CONNECT_PATIENCE: Duration = Duration::from_secs(2);

/// Starts `cmd` with at most `n` open files (soft and hard limit).
pub fn limit_open_files(cmd: &mut Command, n: u64) -> &mut Command {
    crate::limit_child(cmd, Resource::RLIMIT_NOFILE, n)
}

/// The loopback address 127.0.0.`n` (every one of 127.0.0.0/8 is this host's).
pub fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// A TCP connection to `to` (on loopback) from the address `from`; an error of kind
/// `TimedOut` when the listener's queue is full, which ends a flood: more would only wait.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket, owned at once; bind and connect read the addresses we own.
    let fd = unsafe {
        let fd = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?;
        OwnedFd::from_raw_fd(fd)
    };
    let local = sockaddr(SocketAddrV4::new(from, 0));
    let remote = sockaddr(to);
    // A listener whose accept queue is full (it is out of descriptors) leaves a connect
    // waiting: Linux gives up after the send timeout.
    let patience = libc::timeval {
        tv_sec: CONNECT_PATIENCE.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: as above.
    unsafe {
        check(libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&patience as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        ))?;
        check(libc::bind(
            fd.as_raw_fd(),
            (&local as *const libc::sockaddr_in).cast(),
            len,
        ))?;
        let connected = libc::connect(
            fd.as_raw_fd(),
            (&remote as *const libc::sockaddr_in).cast(),
            len,
        );
        if connected < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EINPROGRESS | libc::EAGAIN) => std::io::Error::new(
                    ErrorKind::TimedOut,
                    format!("{to} accepts no connection (its queue is full)"),
                ),
                _ => e,
            });
        }
    }
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// Whether the other end has closed `stream` (end of file or reset); reads without
/// blocking, discarding whatever arrived (a TLS alert, say).
pub fn closed_by_peer(stream: &TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    let mut buf = [0u8; 4096];
    let closed = loop {
        match (&*stream).read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    let _ = stream.set_nonblocking(false);
    closed
}

/// A TLS client configuration trusting the CA in `ca` (PEM), with the client certificate
/// `cert`/`key` when given.
pub fn tls_client(ca: &Path, client: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in mini_shim::agent::tls::certs(ca).expect("CA certificate") {
        roots.add(cert).expect("usable CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(mini_shim::agent::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> =
                mini_shim::agent::tls::certs(cert).expect("client certificate");
            let key = mini_shim::agent::tls::key(key).expect("client key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects from `from` to `to` and completes a TLS handshake, or fails (refused, closed or
/// no handshake within a few seconds); returns the TCP connection, to be left idle.
pub fn tls_handshake(
    config: &Arc<rustls::ClientConfig>,
    from: Ipv4Addr,
    to: SocketAddr,
) -> std::io::Result<TcpStream> {
    let mut tcp = connect_from(from, to)?;
    let name = ServerName::IpAddress(to.ip().into());
    let mut tls =
        rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)?;
    }
    Ok(tcp)
}

/// A process's peak resident memory (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// A TLS server on a loopback address that answers every request with `200 OK` and a JSON
/// body that never ends: it sends until `bound` bytes have gone (a test must not hog the
/// machine) or the client hangs up. Stops when dropped.
pub struct EndlessServer {
    /// Answers begun.
    pub answers: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl EndlessServer {
    /// Serves on `addr` with `config`.
    pub fn start(addr: SocketAddr, config: Arc<rustls::ServerConfig>, bound: usize) -> Self {
        let listener = TcpListener::bind(addr).expect("bind the endless server");
        let answers = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (answers.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, count, halt) = (config.clone(), count.clone(), halt.clone());
                std::thread::spawn(move || {
                    let _ = answer_without_end(stream, config, &count, &halt, bound);
                });
            }
        });
        EndlessServer {
            answers,
            stop,
            addr,
        }
    }
}

impl Drop for EndlessServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn answer_without_end(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    answers: &AtomicUsize,
    stop: &AtomicBool,
    bound: usize,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(PATIENCE))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The request's head (its end is enough: GET requests have no body).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte)? == 0 || head.len() > 64 << 10 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    answers.fetch_add(1, Ordering::SeqCst);
    tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"containers\": [")?;
    let chunk = vec![b' '; 256 << 10];
    let mut sent = 0;
    while sent < bound && !stop.load(Ordering::SeqCst) {
        tls.write_all(&chunk)?;
        sent += chunk.len();
    }
    Ok(())
}
