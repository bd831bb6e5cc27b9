//! TCP and HTTP health probes, made from inside the container's network namespace: a
//! dedicated thread enters it (setns affects only the calling thread), connects, and exits,
//! so the agent's own threads never change namespace. Exec probes go through the monitor.

use super::{Agent, Error};
use crate::protocol::{ExecRequest, Probe, ProbeResult, Status};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// Where and how long to probe.
#[derive(Debug, Clone)]
pub struct Target {
    /// The network namespace to probe from (`/proc/<pid>/ns/net`), or the agent's own.
    pub netns: Option<PathBuf>,
    /// The address.
    pub addr: SocketAddr,
    /// How long the whole probe may take.
    pub timeout: Duration,
}

/// The default probe timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Agent {
    /// `POST /v1/containers/{id}/probe`: runs one probe against a running container.
    pub async fn probe(&self, id: &str, probe: Probe) -> Result<ProbeResult, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_probe(h, id, &probe);
        }
        let info = self.info(id).await?;
        let (Status::Running, Some(pid)) = (info.status, info.pid) else {
            return Ok(ProbeResult {
                healthy: false,
                detail: format!("container {id:?} is not running"),
            });
        };
        let timeout = |secs: Option<u64>| secs.map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let netns = |host: Option<&str>, port: u16, secs: Option<u64>| {
            Ok::<_, Error>(Target {
                netns: Some(PathBuf::from(format!("/proc/{pid}/ns/net"))),
                addr: SocketAddr::new(self::host(host).map_err(Error::BadRequest)?, port),
                timeout: timeout(secs),
            })
        };
        Ok(match probe {
            Probe::Exec { args, timeout_secs } => {
                let request = ExecRequest {
                    args,
                    env: Vec::new(),
                    timeout_secs: Some(timeout(timeout_secs).as_secs()),
                };
                match self.exec(id, request).await {
                    Ok(r) => ProbeResult {
                        healthy: r.exit_code == 0,
                        detail: format!("exit code {}", r.exit_code),
                    },
                    Err(Error::BadRequest(m)) => return Err(Error::BadRequest(m)),
                    Err(e) => ProbeResult {
                        healthy: false,
                        detail: e.to_string(),
                    },
                }
            }
            Probe::Tcp {
                port,
                host,
                timeout_secs,
            } => tcp(netns(host.as_deref(), port, timeout_secs)?).await,
            Probe::Http {
                port,
                path,
                host,
                timeout_secs,
            } => {
                let path = path.unwrap_or_else(|| "/".into());
                if !path.starts_with('/') || path.contains([' ', '\r', '\n']) {
                    return Err(Error::BadRequest(format!(
                        "probe path {path:?} must start with / and hold no spaces or line breaks"
                    )));
                }
                http(netns(host.as_deref(), port, timeout_secs)?, path).await
            }
        })
    }
}

/// Parses a probe's `host` (default 127.0.0.1).
pub fn host(host: Option<&str>) -> Result<IpAddr, String> {
    host.unwrap_or("127.0.0.1")
        .parse()
        .map_err(|_| format!("probe host {host:?} is not an IP address"))
}

/// Healthy when a connection is accepted.
pub async fn tcp(target: Target) -> ProbeResult {
    in_namespace(target, |stream, addr| {
        drop(stream);
        Ok(format!("connected to {addr}"))
    })
    .await
}

/// Healthy when `GET path` answers with a status from 200 to 399.
pub async fn http(target: Target, path: String) -> ProbeResult {
    let timeout = target.timeout;
    let result = in_namespace(target, move |mut stream, addr| {
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| e.to_string())?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: mini-shim-probe\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.contains(&b'\n') && head.len() < 4096 {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("reading the answer: {e}")),
            }
        }
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or("").trim().to_string();
        let status: Option<u16> = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        match status {
            Some(code) if (200..400).contains(&code) => Ok(line),
            Some(_) => Err(line),
            None => Err(format!("not an HTTP answer: {line:?}")),
        }
    })
    .await;
    result
}

async fn in_namespace<F>(target: Target, check: F) -> ProbeResult
where
    F: FnOnce(TcpStream, SocketAddr) -> Result<String, String> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let result = enter(target.netns.as_deref()).and_then(|()| {
                let stream = TcpStream::connect_timeout(&target.addr, target.timeout)
                    .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
                check(stream, target.addr)
            });
            let _ = tx.send(result);
        });
    let result = match spawned {
        Ok(_) => rx
            .await
            .unwrap_or_else(|_| Err("the probe thread failed".into())),
        Err(e) => Err(format!("starting a probe thread: {e}")),
    };
    match result {
        Ok(detail) => ProbeResult {
            healthy: true,
            detail,
        },
        Err(detail) => ProbeResult {
            healthy: false,
            detail,
        },
    }
}

fn enter(netns: Option<&std::path::Path>) -> Result<(), String> {
    let Some(path) = netns else {
        return Ok(());
    };
    let file = std::fs::File::open(path).map_err(|e| {
        format!(
            "opening the container's network namespace {}: {e}",
            path.display()
        )
    })?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering the container's network namespace: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probe_sees_a_listener_and_its_absence() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Target {
            netns: None,
            addr,
            timeout: Duration::from_secs(2),
        };
        assert!(tcp(target.clone()).await.healthy);
        drop(listener);
        let r = tcp(target).await;
        assert!(!r.healthy && r.detail.contains("connecting"), "{r:?}");
    }

    #[tokio::test]
    async fn http_probe_reads_the_status_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.0 204 No Content\r\n\r\n",
                "HTTP/1.0 503 Busy\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        let target = Target {
            netns: None,
            addr,
            timeout: Duration::from_secs(2),
        };
        let ok = http(target.clone(), "/healthz".into()).await;
        assert!(ok.healthy && ok.detail.contains("204"), "{ok:?}");
        let bad = http(target, "/healthz".into()).await;
        assert!(!bad.healthy && bad.detail.contains("503"), "{bad:?}");
        server.join().unwrap();
    }
}
