//! Joining a cluster: the scheduler's join listener (the library's `serve`, in this process)
//! and the real `mini-shim join` binary, on loopback. A joined agent serves the shim protocol
//! to the scheduler's client certificate; bad, foreign and expired tokens are refused with
//! one line and leave no files behind.

use mini_sched::join::{
    self, ClusterPki, JoinServer, RegisterError, Registration, TokenSpec, Tokens,
};
use mini_tests::{free_port, mini_shim_bin, unique, wait_until, ChildGuard, TempDir};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an agent may take to join and answer, or a refused join to exit.
const START: Duration = Duration::from_secs(30);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A cluster made by `init` in a temporary state directory, its join listener running in this
/// process. The registration callback records every node and, as the daemon does, refuses a
/// name already joined from another address.
struct Scheduler {
    // Fields drop in order: the listener before the runtime it runs on.
    server: JoinServer,
    _runtime: tokio::runtime::Runtime,
    pki: ClusterPki,
    token: String,
    registered: Arc<Mutex<Vec<Registration>>>,
    state: TempDir,
}

impl Scheduler {
    fn start() -> Scheduler {
        let state = TempDir::new("sched-join");
        let addr = loopback(free_port());
        let init =
            join::init_cluster(state.path(), addr, &join::InitOptions::default()).expect("init");
        let registered: Arc<Mutex<Vec<Registration>>> = Default::default();
        let seen = registered.clone();
        let register: join::Register = Arc::new(move |r: Registration| {
            let mut seen = seen.lock().unwrap();
            if let Some(old) = seen
                .iter()
                .find(|o| o.node == r.node && o.address != r.address)
            {
                return Err(RegisterError::Conflict(format!(
                    "node {} has joined from {} already",
                    r.node, old.address
                )));
            }
            seen.push(r);
            Ok(())
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let server = runtime
            .block_on(join::serve(
                addr,
                init.pki.clone(),
                Tokens::new(&init.pki),
                join::DEFAULT_CERT_TTL,
                register,
                Default::default(),
            ))
            .expect("join listener");
        Scheduler {
            server,
            _runtime: runtime,
            pki: init.pki,
            token: init.token,
            registered,
            state,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn registered(&self) -> Vec<Registration> {
        self.registered.lock().unwrap().clone()
    }

    /// `curl` to an agent with the scheduler's client certificate (or none).
    fn curl(&self, agent: SocketAddr, path: &str, client_cert: bool) -> Result<String, String> {
        let tls = self.pki.scheduler_tls();
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail", "--max-time", "10", "--cacert"])
            .arg(&tls.ca);
        if client_cert {
            c.arg("--cert").arg(&tls.cert).arg("--key").arg(&tls.key);
        }
        let out = c
            .arg(format!("https://{agent}{path}"))
            .output()
            .expect("run curl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// One `mini-shim join` invocation.
struct Join<'a> {
    scheduler: SocketAddr,
    token: &'a str,
    node: &'a str,
    listen: SocketAddr,
    advertise: Option<SocketAddr>,
    labels: &'a [&'a str],
    state_dir: &'a Path,
    stderr: PathBuf,
}

impl Join<'_> {
    fn spawn(&self) -> ChildGuard {
        let mut c = Command::new(mini_shim_bin());
        c.arg("join")
            .arg("--scheduler")
            .arg(self.scheduler.to_string())
            .arg("--token")
            .arg(self.token)
            .arg("--node-name")
            .arg(self.node)
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--state-dir")
            .arg(self.state_dir);
        if let Some(a) = self.advertise {
            c.arg("--advertise").arg(a.to_string());
        }
        for l in self.labels {
            c.arg("--label").arg(l);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.stderr).expect("agent log"));
        ChildGuard::start(&mut c)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Runs a join that must fail; returns its one-line message, having checked that it
    /// exited non-zero and left no state directory behind.
    fn refused(&self) -> String {
        let out: Output = self
            .spawn()
            .wait_timeout(START)
            .unwrap_or_else(|| panic!("the join did not exit: {}", self.stderr()));
        let msg = self.stderr().trim().to_string();
        assert!(!out.status.success(), "the join succeeded: {msg}");
        assert!(
            !msg.is_empty() && !msg.contains('\n'),
            "not one line: {msg:?}"
        );
        assert!(
            !self.state_dir.exists(),
            "{} was left behind after: {msg}",
            self.state_dir.display()
        );
        msg
    }
}

#[test]
fn a_joined_agent_serves_the_scheduler_over_mutual_tls_and_rejoins_without_a_token() {
    let sched = Scheduler::start();
    let tmp = TempDir::new("agent-join");
    let state_dir = tmp.path().join("agent");
    let node = unique("node");
    let listen = loopback(free_port());
    let join = Join {
        scheduler: sched.addr(),
        token: &sched.token,
        node: &node,
        listen,
        advertise: None,
        labels: &["zone=a", "disk=ssd"],
        state_dir: &state_dir,
        stderr: tmp.path().join("agent.log"),
    };
    let agent = join.spawn();
    let up = wait_until(START, || sched.curl(listen, "/v1/version", true).is_ok());
    assert!(up, "the joined agent does not answer: {}", join.stderr());
    let version: serde_json::Value =
        serde_json::from_str(&sched.curl(listen, "/v1/version", true).unwrap()).unwrap();
    assert_eq!(version["node"], node.as_str(), "{version}");
    let registered: Vec<_> = sched
        .registered()
        .into_iter()
        .map(|r| (r.node, r.address, r.labels, r.presented, r.forced))
        .collect();
    assert_eq!(
        registered,
        vec![(
            node.clone(),
            listen,
            BTreeMap::from([
                ("disk".to_string(), "ssd".to_string()),
                ("zone".to_string(), "a".to_string())
            ]),
            None,
            false
        )]
    );
    // Mutual TLS: without the scheduler's client certificate the handshake fails.
    let refused = sched.curl(listen, "/v1/version", false).unwrap_err();
    assert!(!refused.is_empty());
    let key = state_dir.join("pki/agent-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    assert_eq!(
        std::fs::read_to_string(state_dir.join("pki/ca.pem")).unwrap(),
        sched.pki.ca_pem()
    );

    // The same name from another address is a conflict (the daemon's registration says so).
    let other_dir = tmp.path().join("other");
    let msg = Join {
        listen: loopback(free_port()),
        state_dir: &other_dir,
        stderr: tmp.path().join("other.log"),
        ..join
    }
    .refused();
    assert!(msg.contains("conflict") && msg.contains(&node), "{msg}");

    // A restarted agent serves with the credentials it has, without joining again: the
    // listener is gone and the token is nonsense.
    drop(agent);
    sched.server.abort();
    let bogus = format!("mst1.{}.{}", "0".repeat(32), "0".repeat(64));
    let join = Join {
        token: &bogus,
        ..join
    };
    let _agent = join.spawn();
    let up = wait_until(START, || sched.curl(listen, "/v1/version", true).is_ok());
    assert!(up, "the restarted agent does not answer: {}", join.stderr());
    assert_eq!(sched.registered().len(), 1);
}

/// A join that must be refused, with a fresh state directory and listen address.
fn refused_join(sched: &Scheduler, token: &str) -> String {
    let tmp = TempDir::new("agent-refused");
    let node = unique("node");
    Join {
        scheduler: sched.addr(),
        token,
        node: &node,
        listen: loopback(free_port()),
        advertise: None,
        labels: &[],
        state_dir: &tmp.path().join("agent"),
        stderr: tmp.path().join("agent.log"),
    }
    .refused()
}

#[test]
fn an_unknown_token_is_refused_and_leaves_nothing() {
    let sched = Scheduler::start();
    let unknown = format!("mst1.{}.{}", "0".repeat(32), sched.pki.ca_sha256());
    let msg = refused_join(&sched, &unknown);
    assert!(
        msg.contains("forbidden") && msg.contains("not valid"),
        "{msg}"
    );
    let msg = refused_join(&sched, "mst1.short");
    assert!(msg.contains("malformed"), "{msg}");
    assert!(sched.registered().is_empty());
}

#[test]
fn a_token_for_another_ca_is_refused_by_the_agent() {
    let sched = Scheduler::start();
    let other = Scheduler::start();
    // A real secret of this cluster, but the CA hash of another: the agent must not trust
    // the CA it is sent.
    let secret = sched.token.split('.').nth(1).unwrap();
    let token = format!("mst1.{secret}.{}", other.pki.ca_sha256());
    let msg = refused_join(&sched, &token);
    assert!(
        msg.contains("the scheduler's CA does not match the token"),
        "{msg}"
    );
    assert!(sched.registered().is_empty());
}

#[test]
fn an_expired_token_is_refused() {
    let sched = Scheduler::start();
    let token = Tokens::new(&sched.pki)
        .create(&TokenSpec::reusable(Duration::ZERO))
        .unwrap();
    let msg = refused_join(&sched, &token);
    assert!(
        msg.contains("forbidden") && msg.contains("expired at"),
        "{msg}"
    );
    assert!(sched.registered().is_empty());
    assert!(sched.state.path().join("tokens.json").exists());
}

#[test]
fn an_unspecified_listen_address_needs_advertise() {
    let sched = Scheduler::start();
    let tmp = TempDir::new("agent-advertise");
    let node = unique("node");
    let msg = Join {
        scheduler: sched.addr(),
        token: &sched.token,
        node: &node,
        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, free_port())),
        advertise: None,
        labels: &[],
        state_dir: &tmp.path().join("agent"),
        stderr: tmp.path().join("agent.log"),
    }
    .refused();
    assert!(msg.contains("--advertise"), "{msg}");
    assert!(sched.registered().is_empty());
}

/// `mini-sched ARGS` (the local commands: init, token, cert), its output.
fn mini_sched(args: &[&str]) -> Output {
    mini_tests::captured_output(Command::new(mini_tests::cluster::mini_sched_bin()).args(args))
}

/// The one line a failed command printed; checks that it failed and printed one line.
fn one_line_failure(out: &Output) -> String {
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success(), "it succeeded: {msg}");
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "not one line: {msg:?}"
    );
    msg
}

/// A join with a fresh state directory and listen address that must succeed: the agent,
/// serving.
fn accepted_join(sched: &Scheduler, token: &str, tmp: &Path) -> ChildGuard {
    let node = unique("node");
    let listen = loopback(free_port());
    let join = Join {
        scheduler: sched.addr(),
        token,
        node: &node,
        listen,
        advertise: None,
        labels: &[],
        state_dir: &tmp.join(&node),
        stderr: tmp.join(format!("{node}.log")),
    };
    let agent = join.spawn();
    let up = wait_until(START, || sched.curl(listen, "/v1/version", true).is_ok());
    assert!(up, "the agent did not join: {}", join.stderr());
    agent
}

#[test]
fn a_one_use_token_joins_once_and_a_revoked_token_not_at_all() {
    let sched = Scheduler::start();
    let tmp = TempDir::new("agent-uses");
    let dir = sched.state.path().to_str().unwrap().to_string();
    let out = mini_sched(&["token", "create", "--state-dir", &dir, "--uses", "1"]);
    assert!(out.status.success(), "{out:?}");
    let once = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("mst1."))
        .expect("a token")
        .to_string();
    let _first = accepted_join(&sched, &once, tmp.path());
    let msg = refused_join(&sched, &once);
    assert!(msg.contains("forbidden") && msg.contains("used 1"), "{msg}");
    assert_eq!(sched.registered().len(), 1);
    let list = String::from_utf8_lossy(&mini_sched(&["token", "list", "--state-dir", &dir]).stdout)
        .to_string();
    assert!(list.contains(" 1/1 ") && list.contains("used"), "{list}");

    // The init token, reusable, revoked: refused from then on.
    let id = Tokens::new(&sched.pki).verify(&sched.token).unwrap().id;
    let out = mini_sched(&["token", "revoke", "--state-dir", &dir, &id]);
    assert!(out.status.success(), "{out:?}");
    let msg = refused_join(&sched, &sched.token);
    assert!(
        msg.contains("forbidden") && msg.contains("not valid"),
        "{msg}"
    );
    let msg = one_line_failure(&mini_sched(&["token", "revoke", "--state-dir", &dir, &id]));
    assert!(msg.contains("no join token"), "{msg}");
    assert_eq!(sched.registered().len(), 1);
}

#[test]
fn labels_from_a_join_are_checked_as_the_labels_api_checks_them() {
    let sched = Scheduler::start();
    for label in ["mini-sched/node=n0", "a b=c", "zone=a b"] {
        let tmp = TempDir::new("agent-labels");
        let node = unique("node");
        let msg = Join {
            scheduler: sched.addr(),
            token: &sched.token,
            node: &node,
            listen: loopback(free_port()),
            advertise: None,
            labels: &[label],
            state_dir: &tmp.path().join("agent"),
            stderr: tmp.path().join("agent.log"),
        }
        .refused();
        assert!(
            msg.contains("bad_request") && msg.contains("label"),
            "{label}: {msg}"
        );
    }
    assert!(sched.registered().is_empty());
}

#[test]
fn lifetimes_past_their_maximum_fail_in_one_line_and_leave_nothing() {
    let tmp = TempDir::new("sched-init");
    let dir = tmp.path().join("cluster");
    let dir_arg = dir.to_str().unwrap();
    for flag in ["--ttl", "--admin-ttl"] {
        let msg = one_line_failure(&mini_sched(&[
            "init",
            "--state-dir",
            dir_arg,
            "--advertise",
            "127.0.0.1:7440",
            flag,
            "8000y",
        ]));
        assert!(
            msg.contains(flag) && msg.contains("at most") || msg.contains("to "),
            "{msg}"
        );
        assert!(!dir.exists(), "{flag}: {} was left", dir.display());
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{flag}: left {left:?}");
    }
    let out = mini_sched(&[
        "init",
        "--state-dir",
        dir_arg,
        "--advertise",
        "127.0.0.1:7440",
    ]);
    assert!(out.status.success(), "{out:?}");
    let tokens = std::fs::read_to_string(dir.join("tokens.json")).unwrap();
    for args in [
        &["token", "create", "--ttl", "8000y"][..],
        &["cert", "admin", "--ttl", "8000y"][..],
    ] {
        let mut all = args.to_vec();
        all.extend(["--state-dir", dir_arg]);
        let msg = one_line_failure(&mini_sched(&all));
        assert!(msg.contains("--ttl"), "{args:?}: {msg}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("tokens.json")).unwrap(),
        tokens
    );
}
