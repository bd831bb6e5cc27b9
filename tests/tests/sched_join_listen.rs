//! Where the daemon's join listener listens: by default where the cluster was advertised
//! (`init --advertise`), with a warning when `--join-listen` says otherwise and a one-line
//! error, leaving nothing behind, when the advertised address is not on this host.

use mini_tests::cluster::{init, mini_sched_bin};
use mini_tests::{free_port, wait_until, ChildGuard, TempDir};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the daemon may take to listen, or to fail.
const START: Duration = Duration::from_secs(30);

/// `mini-sched daemon` on the cluster in `dir`, with `args`, its output in `dir/daemon.log`.
fn daemon(dir: &Path, args: &[&str]) -> ChildGuard {
    let log = std::fs::File::create(dir.join("daemon.log")).expect("the log");
    ChildGuard::start(
        Command::new(mini_sched_bin())
            .arg("daemon")
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(socket(dir))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log),
    )
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("sched.sock")
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Waits until the daemon in `dir` listens on `addr` (it must stay up).
fn wait_listening(dir: &Path, d: &mut ChildGuard, addr: SocketAddr) {
    let up = wait_until(START, || listening(addr) || !d.running());
    assert!(
        up && d.running(),
        "the daemon does not listen on {addr}: {}",
        log(dir)
    );
}

#[test]
fn without_join_listen_the_daemon_listens_where_the_cluster_was_advertised() {
    let dir = TempDir::new("sched-join-listen");
    let advertise = SocketAddr::from(([127, 0, 0, 1], free_port()));
    init(&dir.path().join("state"), &advertise.to_string());
    let mut d = daemon(dir.path(), &[]);
    wait_listening(dir.path(), &mut d, advertise);
    let text = log(dir.path());
    assert!(
        text.contains(&format!("joins on {advertise}")),
        "the daemon does not say where agents join: {text}"
    );
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn a_join_listen_agents_cannot_reach_is_warned_about() {
    let dir = TempDir::new("sched-join-listen");
    let advertise = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let elsewhere = SocketAddr::from(([127, 0, 0, 1], free_port()));
    init(&dir.path().join("state"), &advertise.to_string());
    let mut d = daemon(dir.path(), &["--join-listen", &elsewhere.to_string()]);
    wait_listening(dir.path(), &mut d, elsewhere);
    let text = log(dir.path());
    let warning = text
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no warning: {text}"));
    assert!(
        warning.contains(&advertise.to_string()) && warning.contains(&elsewhere.to_string()),
        "the warning names neither address: {warning}"
    );
    assert!(
        !listening(advertise),
        "nothing should listen on {advertise}"
    );
}

#[test]
fn an_advertised_address_of_another_host_fails_in_one_line_and_leaves_nothing() {
    let dir = TempDir::new("sched-join-listen");
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
    let advertise = "192.0.2.7:7440";
    init(&dir.path().join("state"), advertise);
    let d = daemon(dir.path(), &[]);
    let out = d
        .wait_timeout(START)
        .unwrap_or_else(|| panic!("the daemon did not fail: {}", log(dir.path())));
    assert!(!out.status.success(), "{}", log(dir.path()));
    let text = log(dir.path());
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {text}");
    assert!(
        lines[0].contains("192.0.2.7:7440") && lines[0].contains("--join-listen 0.0.0.0:7440"),
        "the error does not say what to do: {text}"
    );
    assert!(
        !socket(dir.path()).exists(),
        "the API socket was left behind"
    );
}
