//! Denial of service from the network against the real `mini-sched daemon` on loopback:
//! idle connections to the join and metrics listeners cannot exhaust its descriptors (each
//! listener caps its connections, per peer address too, and closes idle ones), a failed
//! `accept` does not end it, and an agent that answers without end cannot grow it.

use mini_sched::api::{NodeState, NodeView};
use mini_tests::cluster::{init_with, mini_sched_bin};
use mini_tests::flood::{
    closed_by_peer, connect_from, limit_open_files, loopback, peak_rss, tls_client, tls_handshake,
    EndlessServer,
};
use mini_tests::{
    captured_output, free_port, mini_shim_bin, unique, wait_until, ChildGuard, TempDir,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long the daemon may take to come up, or a flood's effects to show, on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A cluster made by `mini-sched init` and its daemon, on loopback ports of its own, started
/// with a limit on its open files and short handshake and idle timeouts.
struct Scheduler {
    dir: TempDir,
    join: SocketAddr,
    metrics: SocketAddr,
    token: String,
    child: ChildGuard,
}

impl Scheduler {
    fn start(open_files: u64, extra: &[&str]) -> Scheduler {
        let dir = TempDir::new("sched-flood");
        let join = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        // The agent of the endless-answer test runs in this host's network namespace: no
        // masquerading table for it.
        let token = init_with(
            &dir.path().join("state"),
            &join.to_string(),
            &["--no-masquerade"],
        );
        let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log");
        let mut cmd = Command::new(mini_sched_bin());
        cmd.arg("--socket")
            .arg(dir.path().join("sched.sock"))
            .arg("daemon")
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--join-listen")
            .arg(join.to_string())
            .arg("--metrics-listen")
            .arg(metrics.to_string())
            .args(["--handshake-timeout", "2s", "--idle-timeout", "2s"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        let child = ChildGuard::start(limit_open_files(&mut cmd, open_files));
        let s = Scheduler {
            dir,
            join,
            metrics,
            token,
            child,
        };
        let up = wait_until(PATIENCE, || s.cli(&["get", "nodes"]).status.success());
        assert!(up, "the daemon did not come up: {}", s.log());
        s
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new(mini_sched_bin());
        c.arg("--socket").arg(self.dir.path().join("sched.sock"));
        captured_output(c.env_remove("MINI_SCHED_SOCKET").args(args))
    }

    /// `get nodes` that must succeed; waits for the daemon's answer however long it takes
    /// (up to [`PATIENCE`]), as the CLI does.
    fn nodes(&self) -> Vec<NodeView> {
        let mut c = Command::new("timeout");
        c.arg(PATIENCE.as_secs().to_string())
            .arg(mini_sched_bin())
            .arg("--socket")
            .arg(self.dir.path().join("sched.sock"))
            .args(["get", "nodes", "-o", "json"]);
        let out = captured_output(c.env_remove("MINI_SCHED_SOCKET"));
        assert!(
            out.status.success(),
            "get nodes: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Vec::new();
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("get nodes ({e}): {text}"))
    }

    fn alive(&mut self) -> bool {
        self.child.running()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("state/pki/ca.pem")
    }

    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// `GET /metrics` on the metrics listener.
    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.metrics).expect("metrics listener");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("request");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    }
}

/// Many idle connections, from ten addresses to each TCP listener: TLS connections that
/// finished their handshake to the join listener and plain ones to the metrics listener,
/// more than the daemon has descriptors. It keeps answering its API, refuses what is over
/// its limits, and closes the idle connections after the idle timeout.
#[test]
fn idle_connections_cannot_exhaust_the_daemon() {
    let mut s = Scheduler::start(256, &[]);
    let tls = tls_client(&s.ca(), None);
    let mut held = Vec::new();
    for i in 0..150u8 {
        match tls_handshake(&tls, loopback(2 + i % 10), s.join) {
            Ok(c) => held.push(c),
            Err(e) if e.kind() == ErrorKind::TimedOut => break,
            Err(_) => {}
        }
    }
    for i in 0..300u16 {
        match connect_from(loopback(12 + (i % 10) as u8), s.metrics) {
            Ok(c) => held.push(c),
            Err(e) if e.kind() == ErrorKind::TimedOut => break,
            Err(_) => {}
        }
    }
    assert!(!held.is_empty(), "no connection was accepted");

    let nodes = s.nodes();
    assert!(nodes.is_empty(), "{nodes:?}");
    assert!(s.alive(), "the daemon died: {}", s.log());
    assert!(
        s.open_files() < 256,
        "{} files open at a limit of 256",
        s.open_files()
    );
    assert!(
        s.log().contains("refused 127.0.0."),
        "no connection over the limits was refused: {}",
        s.log()
    );

    let all_closed = wait_until(PATIENCE, || held.iter().all(closed_by_peer));
    let open = held.iter().filter(|c| !closed_by_peer(c)).count();
    assert!(
        all_closed,
        "{open} of {} idle connections are still open past the idle timeout",
        held.len()
    );
    assert!(s.alive(), "the daemon died: {}", s.log());
}

/// With connection limits above its descriptors (`--max-connections` given), a flood runs
/// the daemon out of descriptors: `accept` fails on every listener, the API socket's too.
/// The daemon backs off and goes on, and answers once the idle connections are closed.
#[test]
fn a_failed_accept_does_not_end_the_daemon() {
    let mut s = Scheduler::start(
        128,
        &[
            "--max-connections",
            "1000",
            "--max-connections-per-peer",
            "1000",
        ],
    );
    let mut held = Vec::new();
    for _ in 0..200 {
        match connect_from(loopback(1), s.metrics) {
            Ok(c) => held.push(c),
            Err(e) if e.kind() == ErrorKind::TimedOut => break,
            Err(_) => {}
        }
    }
    let exhausted = wait_until(PATIENCE, || {
        s.log()
            .contains("accepting a connection: Too many open files")
    });
    assert!(
        exhausted,
        "the flood did not exhaust the daemon: {}",
        s.log()
    );

    let nodes = s.nodes();
    assert!(nodes.is_empty(), "{nodes:?}");
    assert!(s.alive(), "the daemon died: {}", s.log());
    drop(held);
}

/// A node whose agent answers its heartbeats with a body that does not end: the daemon cuts
/// each answer off at its size limit, counts the failed call, and the node is lost; the
/// daemon's memory stays small and it keeps answering.
#[test]
fn an_agent_answering_without_end_cannot_grow_the_daemon() {
    let mut s = Scheduler::start(
        1024,
        &["--heartbeat-interval", "2s", "--node-timeout", "8s"],
    );
    // A real agent joins (so the node and its certificate are real), then an impostor with
    // its credentials takes its place.
    let agent_dir = TempDir::new("endless-agent");
    let agent_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let node = unique("endless");
    let agent_log = agent_dir.path().join("agent.log");
    let mut agent = Command::new(mini_shim_bin())
        .arg("join")
        .arg("--scheduler")
        .arg(s.join.to_string())
        .arg("--token")
        .arg(&s.token)
        .arg("--listen")
        .arg(agent_addr.to_string())
        .arg("--node-name")
        .arg(&node)
        .arg("--state-dir")
        .arg(agent_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_log).expect("the agent's log"))
        .spawn()
        .expect("spawn mini-shim join");
    let ready = wait_until(PATIENCE, || {
        s.nodes()
            .iter()
            .any(|n| n.name == node && n.state == NodeState::Ready)
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        ready,
        "the agent did not join: {}\nthe agent: {}",
        s.log(),
        std::fs::read_to_string(&agent_log).unwrap_or_default()
    );
    let pki = agent_dir.path().join("pki");
    let files = mini_shim::agent::tls::TlsFiles {
        cert: pki.join("agent.pem"),
        key: pki.join("agent-key.pem"),
        ca: pki.join("ca.pem"),
    };
    let config = mini_shim::agent::tls::server_config(&files).expect("the agent's TLS");
    let impostor = EndlessServer::start(agent_addr, config, 192 << 20);

    let answered = wait_until(PATIENCE, || impostor.answers.load(Ordering::SeqCst) >= 6);
    assert!(answered, "the daemon stopped calling the node: {}", s.log());
    let lost = wait_until(PATIENCE, || {
        s.nodes()
            .iter()
            .any(|n| n.name == node && n.state == NodeState::Lost)
    });
    assert!(lost, "the node is not lost: {:?}", s.nodes());
    let errors = s
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("mini_sched_agent_errors_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "no failed call counted: {}", s.metrics());
    let peak = peak_rss(s.child.pid());
    assert!(
        peak < 128 << 20,
        "the daemon grew to {} MiB reading endless answers",
        peak >> 20
    );
    assert!(s.alive(), "the daemon died: {}", s.log());
}
