//! Denial of service from the network against the real `mini-shim agent` on loopback: a
//! request whose body never arrives in full is dropped after the body timeout, and a
//! sustained flood of handshakes that never finish, from one address and more connections
//! than the agent has descriptors, does not keep an authenticated client (the scheduler)
//! from being served.

use mini_tests::flood::{closed_by_peer, connect_from, limit_open_files, loopback};
use mini_tests::free_port;
use mini_tests::{mini_shim_bin, mini_shim_ok, wait_until, ChildGuard, TempDir};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the agent may take to come up, or to react, on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// An agent process (killed by its pid on drop) and its log.
struct Agent {
    child: ChildGuard,
    log: PathBuf,
}

impl Agent {
    fn start(cmd: &mut Command, log: &Path) -> Agent {
        let file = std::fs::File::create(log).expect("agent log");
        let child = ChildGuard::start(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file));
        Agent {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.running()
    }
}

/// A client announces a 1000-byte body and sends 8 bytes of it: the agent answers 400 and
/// closes the connection once the body timeout has passed, instead of waiting forever.
#[test]
fn a_body_shorter_than_announced_is_dropped_after_the_body_timeout() {
    let dir = TempDir::new("slow-body");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut agent = Agent::start(
        Command::new(mini_shim_bin())
            .args(["agent", "--dev", "--listen", &addr.to_string()])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--body-timeout", "1s"]),
        &dir.path().join("agent.log"),
    );
    assert!(
        wait_until(PATIENCE, || TcpStream::connect(addr).is_ok()),
        "the agent did not come up: {}",
        agent.log()
    );
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(PATIENCE)).expect("timeout");
    c.write_all(
        b"POST /v1/containers HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\n\
          content-length: 1000\r\n\r\n{\"id\": ",
    )
    .expect("send the start of a request");
    let mut answer = String::new();
    let read = c.read_to_string(&mut answer);
    assert!(
        read.is_ok(),
        "the agent still holds the connection ({read:?}), having answered {answer:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive within 1s"), "{answer}");
    assert!(agent.alive(), "the agent died: {}", agent.log());
}

/// 127.0.0.2 keeps 400 connections open that never start their TLS handshake (reopening each
/// one the agent closes), under an agent with 256 descriptors; meanwhile the scheduler's
/// certificate on 127.0.0.1 gets every answer in the time the scheduler allows a
/// heartbeat, so the node does not look lost.
#[test]
fn a_handshake_flood_from_one_address_does_not_lock_out_the_scheduler() {
    let pki = TempDir::new("flood-pki");
    let d = pki.path().to_str().expect("utf-8 path");
    mini_shim_ok(&["cert", "ca", "--dir", d]);
    mini_shim_ok(&[
        "cert",
        "issue",
        "--dir",
        d,
        "--name",
        "agent",
        "--server",
        "--san",
        "127.0.0.1",
    ]);
    mini_shim_ok(&["cert", "issue", "--dir", d, "--name", "scheduler"]);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut cmd = Command::new(mini_shim_bin());
    cmd.args(["agent", "--listen", &addr.to_string()])
        .arg("--tls-cert")
        .arg(pki.path().join("agent.pem"))
        .arg("--tls-key")
        .arg(pki.path().join("agent-key.pem"))
        .arg("--client-ca")
        .arg(pki.path().join("ca.pem"))
        .arg("--state-dir")
        .arg(pki.path().join("state"));
    let mut agent = Agent::start(
        limit_open_files(&mut cmd, 256),
        &pki.path().join("agent.log"),
    );
    let version = || {
        Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
            .arg(pki.path().join("ca.pem"))
            .arg("--cert")
            .arg(pki.path().join("scheduler.pem"))
            .arg("--key")
            .arg(pki.path().join("scheduler-key.pem"))
            .arg(format!("https://{addr}/v1/version"))
            .output()
            .expect("run curl")
    };
    assert!(
        wait_until(PATIENCE, || version().status.success()),
        "the agent did not come up: {}",
        agent.log()
    );

    // The flood: up to 400 connections at once from 127.0.0.2, each closed one replaced, for
    // at most a minute and 20,000 connections.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            let mut opened = 0;
            let until = Instant::now() + PATIENCE;
            while !stop.load(Ordering::SeqCst) && Instant::now() < until && opened < 20_000 {
                held.retain(|c| !closed_by_peer(c));
                while held.len() < 400 && opened < 20_000 {
                    opened += 1;
                    match connect_from(loopback(2), addr) {
                        Ok(c) => held.push(c),
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            opened
        })
    };
    // Over more than one handshake timeout (10 s) of flood.
    let mut answered = 0;
    let mut failures = Vec::new();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(15) {
        let out = version();
        if out.status.success() {
            answered += 1;
        } else {
            failures.push(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    let opened = flood.join().expect("the flood thread");
    assert!(opened >= 400, "the flood opened only {opened} connections");
    assert!(
        failures.is_empty(),
        "{} of {} calls failed during the flood: {failures:?}\n{}",
        failures.len(),
        answered + failures.len(),
        agent.log()
    );
    assert!(agent.alive(), "the agent died: {}", agent.log());
    assert!(
        agent.log().contains("refused 127.0.0.2"),
        "the flood was not refused: {}",
        agent.log()
    );
}
