//! The mini-shim agent end to end, as the scheduler (here: curl with client certificates) sees
//! it: run, stop and list real containers over mutual TLS; logs and exit codes that survive
//! `kill -9` of the agent; re-adoption by a restarted agent; usage figures checked against the
//! cgroup files; refusal of unauthenticated and malformed requests; a missing rootfs; and two
//! agents in two network namespaces on one machine.

use mini_tests::{
    cgroup_left_empty, fixture_rootfs, free_port, ip, mini_shim_bin, mini_shim_ok, unique,
    wait_until, Answer, TempDir,
};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const START: Duration = Duration::from_secs(20);

/// A test CA with an agent server certificate and a client certificate, made with
/// `mini-shim cert` (the documented way), plus a second, untrusted CA with its own client.
struct Pki {
    dir: TempDir,
    rogue: TempDir,
}

impl Pki {
    /// Server certificates valid for `sans`.
    fn new(sans: &[&str]) -> Pki {
        let pki = Pki {
            dir: TempDir::new("pki"),
            rogue: TempDir::new("rogue-pki"),
        };
        let d = pki.dir.path().to_str().unwrap();
        mini_shim_ok(&["cert", "ca", "--dir", d]);
        let mut server = vec!["cert", "issue", "--dir", d, "--name", "agent", "--server"];
        for san in sans {
            server.extend(["--san", san]);
        }
        mini_shim_ok(&server);
        mini_shim_ok(&["cert", "issue", "--dir", d, "--name", "client"]);
        let r = pki.rogue.path().to_str().unwrap();
        mini_shim_ok(&["cert", "ca", "--dir", r, "--name", "rogue CA"]);
        mini_shim_ok(&["cert", "issue", "--dir", r, "--name", "client"]);
        pki
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// curl with the client certificate of the test CA, as README documents.
struct Curl {
    base: String,
    /// `--cacert`, `--cert`, `--key`.
    tls: Vec<String>,
}

impl Curl {
    fn command(&self, method: &str, path: &str) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "60", "-X", method])
            .args(&self.tls)
            .arg(format!("{}{path}", self.base));
        c
    }

    /// A request; `None` when no HTTP answer came (e.g. the TLS handshake failed), with
    /// curl's message.
    fn try_request(&self, method: &str, path: &str, body: Option<&str>) -> Result<Answer, String> {
        let mut c = self.command(method, path);
        c.args(["-w", "\n%{http_code}"]);
        if let Some(body) = body {
            c.args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                body,
            ]);
        }
        let out = c.output().expect("run curl");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        Ok(Answer {
            status: status.trim().parse().expect("http status"),
            body: body.to_string(),
        })
    }

    fn request(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"))
    }

    fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None)
    }

    fn post(&self, path: &str, body: &Value) -> Answer {
        self.request("POST", path, Some(&body.to_string()))
    }

    /// `POST /v1/containers` that must succeed.
    fn run(&self, body: Value) -> Value {
        let a = self.post("/v1/containers", &body);
        assert_eq!(a.status, 201, "run {body}: {a:?}");
        a.json()
    }

    fn info(&self, id: &str) -> Value {
        let a = self.get(&format!("/v1/containers/{id}"));
        assert_eq!(a.status, 200, "{a:?}");
        a.json()
    }

    fn ids(&self) -> Vec<String> {
        let a = self.get("/v1/containers");
        assert_eq!(a.status, 200, "{a:?}");
        a.json()["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// The texts of the container's log.
    fn log_texts(&self, id: &str) -> Vec<String> {
        let a = self.get(&format!("/v1/containers/{id}/logs"));
        assert_eq!(a.status, 200, "{a:?}");
        a.body
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("log line is JSON");
                v["text"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn wait_for_log(&self, id: &str, text: &str) {
        assert!(
            wait_until(START, || self.log_texts(id).iter().any(|t| t == text)),
            "{id}: no log line {text:?}: {:?}",
            self.log_texts(id)
        );
    }
}

/// One agent process with its own state directory. On drop every container it holds is
/// force-deleted through the protocol (restarting the agent if a test killed it), then the
/// agent is killed by its pid.
struct Agent {
    state: TempDir,
    node: String,
    addr: SocketAddr,
    /// Runs the agent in this network namespace (a name under /run/netns).
    netns: Option<String>,
    pki_files: [PathBuf; 3],
    child: Option<Child>,
    curl: Curl,
}

impl Agent {
    fn start(pki: &Pki) -> Agent {
        Agent::start_at(
            pki,
            SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())),
            None,
        )
    }

    fn start_at(pki: &Pki, addr: SocketAddr, netns: Option<String>) -> Agent {
        let files = [
            pki.file("agent.pem"),
            pki.file("agent-key.pem"),
            pki.file("ca.pem"),
        ];
        let curl = Curl {
            base: format!("https://{addr}"),
            tls: vec![
                "--cacert".into(),
                pki.file("ca.pem").display().to_string(),
                "--cert".into(),
                pki.file("client.pem").display().to_string(),
                "--key".into(),
                pki.file("client-key.pem").display().to_string(),
            ],
        };
        let mut agent = Agent {
            state: TempDir::new("agent-state"),
            node: unique("node"),
            addr,
            netns,
            pki_files: files,
            child: None,
            curl,
        };
        agent.restart();
        agent
    }

    /// Starts the agent process (again) and waits until it answers.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "the agent runs already");
        let mut c = match &self.netns {
            Some(ns) => {
                // nsenter joins only the network namespace (`ip netns exec` would also give
                // the agent a mount namespace with a fresh /sys, without the cgroup mounts).
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(mini_shim_bin());
                c
            }
            None => Command::new(mini_shim_bin()),
        };
        c.arg("agent")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--tls-cert")
            .arg(&self.pki_files[0])
            .arg("--tls-key")
            .arg(&self.pki_files[1])
            .arg("--client-ca")
            .arg(&self.pki_files[2])
            .arg("--state-dir")
            .arg(self.state.path())
            .arg("--node-name")
            .arg(&self.node)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.state.path().with_extension("log")).unwrap());
        self.child = Some(c.spawn().expect("spawn the agent"));
        let up = wait_until(START, || {
            self.curl
                .try_request("GET", "/v1/version", None)
                .is_ok_and(|a| a.status == 200)
        });
        assert!(up, "the agent did not come up: {}", self.agent_log());
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.state.path().with_extension("log")).unwrap_or_default()
    }

    /// `kill -9` of the agent.
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("a running agent");
        child.kill().expect("SIGKILL the agent");
        child.wait().expect("reap the agent");
    }

    fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The container's cgroup directory for `controller` (v1) or the unified one (v2).
    fn cgroup(&self, controller: &str, id: &str) -> PathBuf {
        cgroup_parent(controller).join(format!("{}_{id}", self.node))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.is_none() {
            // A test killed it: a fresh agent adopts what is left, so it can be deleted.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.restart())).is_err() {
                return;
            }
        }
        if let Ok(list) = self.curl.try_request("GET", "/v1/containers", None) {
            if let Some(all) = list
                .json()
                .get("containers")
                .and_then(|c| c.as_array().cloned())
            {
                for c in all {
                    let id = c["id"].as_str().unwrap_or_default();
                    let _ = self.curl.try_request(
                        "DELETE",
                        &format!("/v1/containers/{id}?force=true"),
                        None,
                    );
                }
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.state.path().with_extension("log"));
    }
}

fn rootfs() -> String {
    fixture_rootfs().display().to_string()
}

fn run_body(id: &str, script: &str) -> Value {
    json!({
        "id": id,
        "source": {"rootfs": rootfs()},
        "process": {"args": ["sh", "-c", script]},
        "labels": {"test": "shim_agent"}
    })
}

/// A script that announces itself, exits 7 on SIGTERM and otherwise runs until stopped.
const SERVE: &str = "trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.1; done";

#[test]
fn run_stop_and_list_through_the_protocol_over_mutual_tls() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let version = curl.get("/v1/version").json();
    assert_eq!(version["protocol"], 1);
    assert_eq!(version["node"], agent.node.as_str());

    // As if another agent had made the shared cgroup parent: whoever empties it removes it.
    let parent = cgroup_parent("memory");
    std::fs::create_dir_all(&parent).unwrap();

    let (a, b) = (unique("web"), unique("job"));
    let info = curl.run(run_body(&a, SERVE));
    assert_eq!(info["status"], "running", "{info}");
    assert_eq!(info["labels"]["test"], "shim_agent");
    let pid = info["pid"].as_i64().expect("pid of a running container");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    curl.run(run_body(&b, "echo done; exit 3"));

    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(curl.ids(), want);

    curl.wait_for_log(&a, "ready");
    let stopped = curl.post(
        &format!("/v1/containers/{a}/stop"),
        &json!({"timeout_secs": 20}),
    );
    assert_eq!(stopped.status, 200, "{stopped:?}");
    let stopped = stopped.json();
    assert_eq!(stopped["status"], "exited", "{stopped}");
    assert_eq!(stopped["exit"]["code"], 7, "the TERM trap ran: {stopped}");
    assert!(curl.log_texts(&a).contains(&"bye".to_string()));

    let waited = curl.post(&format!("/v1/containers/{b}/wait"), &json!({}));
    assert_eq!(waited.json()["exit"]["code"], 3, "{waited:?}");
    assert_eq!(curl.log_texts(&b), vec!["done"]);

    // A running container is not deleted without force; a stopped one is, with everything.
    let c = unique("busy");
    curl.run(run_body(&c, "sleep 1000"));
    let refused = curl.request("DELETE", &format!("/v1/containers/{c}"), None);
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (409, "conflict")
    );
    for id in [&a, &b] {
        let d = curl.request("DELETE", &format!("/v1/containers/{id}"), None);
        assert_eq!(d.status, 200, "{d:?}");
        assert!(!agent.state_dir().join("containers").join(id).exists());
        assert!(!agent.cgroup("memory", id).exists());
    }
    let forced = curl.request("DELETE", &format!("/v1/containers/{c}?force=true"), None);
    assert_eq!(forced.status, 200, "{forced:?}");
    assert!(curl.ids().is_empty());
    assert_eq!(curl.get(&format!("/v1/containers/{a}")).status, 404);
    // Other tests' agents may still have containers there, but it never stays behind empty.
    assert!(
        wait_until(Duration::from_secs(3), || !cgroup_left_empty(&parent)),
        "{} was left behind empty",
        parent.display()
    );
}

/// The agents' shared cgroup parent in `controller`'s hierarchy (v1), or in the v2 tree.
fn cgroup_parent(controller: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
    .join("mini-shim")
}

fn monitor_pid(agent: &Agent, id: &str) -> i32 {
    let path = agent
        .state_dir()
        .join("containers")
        .join(id)
        .join("monitor.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("pid")
}

fn alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn logs_and_exit_codes_survive_kill_9_of_the_agent() {
    let pki = Pki::new(&["127.0.0.1"]);
    let mut agent = Agent::start(&pki);
    let id = unique("survivor");
    let script = "trap 'echo after >&2; exit 42' USR1; echo before; while :; do sleep 0.1; done";
    let pid = agent.curl.run(run_body(&id, script))["pid"]
        .as_i64()
        .expect("pid");
    agent.curl.wait_for_log(&id, "before");
    let monitor = monitor_pid(&agent, &id);

    agent.kill9();
    // The agent is gone; the container and its monitor are not. The container now writes
    // and ends while nobody but its monitor watches.
    assert!(
        alive(monitor.into()) && alive(pid),
        "the container died with the agent"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .expect("signal the container");
    let exit_file = agent
        .state_dir()
        .join("containers")
        .join(&id)
        .join("exit.json");
    assert!(
        wait_until(START, || exit_file.exists()),
        "no exit record was written while the agent was down"
    );

    agent.restart();
    let info = agent.curl.info(&id);
    assert_eq!(info["status"], "exited", "{info}");
    assert_eq!(info["exit"]["code"], 42, "{info}");
    assert_eq!(info["exit"]["oom_killed"], false, "{info}");
    let logs = agent.curl.get(&format!("/v1/containers/{id}/logs"));
    let lines: Vec<Value> = logs
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|l: &Value| l["stream"] != "monitor")
        .collect();
    assert_eq!(lines.len(), 2, "{}", logs.body);
    assert_eq!(
        (&lines[0]["stream"], &lines[0]["text"]),
        (&json!("stdout"), &json!("before"))
    );
    assert_eq!(
        (&lines[1]["stream"], &lines[1]["text"]),
        (&json!("stderr"), &json!("after"))
    );
    assert!(lines[1]["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_restarted_agent_readopts_running_containers() {
    let pki = Pki::new(&["127.0.0.1"]);
    let mut agent = Agent::start(&pki);
    let id = unique("adopted");
    let pid = agent.curl.run(run_body(&id, SERVE))["pid"].clone();
    agent.curl.wait_for_log(&id, "ready");

    agent.kill9();
    agent.restart();

    let info = agent.curl.info(&id);
    assert_eq!(info["status"], "running", "{info}");
    assert_eq!(info["pid"], pid, "the same process, not a new one");
    assert_eq!(info["monitor_alive"], true);
    // Everything works through the adopted monitor: exec, a follow of the logs, stop.
    let exec = agent.curl.post(
        &format!("/v1/containers/{id}/exec"),
        &json!({"args": ["sh", "-c", "echo from-exec; exit 5"]}),
    );
    let exec = exec.json();
    assert_eq!(exec["exit_code"], 5, "{exec}");
    assert_eq!(exec["stdout"], "from-exec\n", "{exec}");
    let out = TempDir::new("follow");
    let follow_file = out.path().join("follow.jsonl");
    let follow = mini_tests::ChildGuard::start(
        agent
            .curl
            .command("GET", &format!("/v1/containers/{id}/logs?follow=true"))
            .stdout(std::fs::File::create(&follow_file).unwrap()),
    );
    agent.curl.wait_for_log(&id, "ready");
    let stopped = agent
        .curl
        .post(&format!("/v1/containers/{id}/stop"), &json!({}))
        .json();
    assert_eq!(stopped["exit"]["code"], 7, "{stopped}");
    assert!(
        follow.wait_timeout(START).is_some(),
        "the follow ends when the container's output does"
    );
    let text = std::fs::read_to_string(&follow_file).unwrap();
    let texts: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(texts.starts_with(&["ready".to_string()]), "{texts:?}");
    assert!(texts.contains(&"bye".to_string()), "{texts:?}");
}

/// A cumulative counter of the container's cgroup, from the files themselves: `usage_ns`,
/// `periods`, `throttled_periods`.
fn cgroup_counter(agent: &Agent, id: &str, what: &str) -> u64 {
    let stat = |dir: PathBuf, key: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join("cpu.stat"))
            .ok()?
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{key} "))
                    .map(|v| v.trim().parse().unwrap())
            })
    };
    let cpu = agent.cgroup("cpu", id);
    let v2 = cpu.join("cgroup.controllers").exists();
    match (what, v2) {
        ("usage_ns", false) => read_number(&agent.cgroup("cpuacct", id).join("cpuacct.usage")),
        ("usage_ns", true) => stat(cpu, "usage_usec").unwrap() * 1000,
        ("periods", _) => stat(cpu, "nr_periods").unwrap(),
        ("throttled_periods", _) => stat(cpu, "nr_throttled").unwrap(),
        _ => unreachable!("{what}"),
    }
}

fn read_number(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
}

#[test]
fn metrics_of_a_busy_container_match_its_cgroup_files() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let id = unique("busy");
    let mut body = run_body(&id, "echo spinning; while :; do :; done");
    body["resources"] = json!({"memory_bytes": 64 << 20, "cpu_millis": 300, "pids": 50});
    curl.run(body);
    curl.wait_for_log(&id, "spinning");
    // Long enough for the quota to throttle it.
    assert!(wait_until(START, || cgroup_counter(
        &agent,
        &id,
        "throttled_periods"
    ) > 3));

    let before: Vec<u64> = ["usage_ns", "periods", "throttled_periods"]
        .iter()
        .map(|w| cgroup_counter(&agent, &id, w))
        .collect();
    let stats = curl.get(&format!("/v1/containers/{id}/stats"));
    assert_eq!(stats.status, 200, "{stats:?}");
    let stats = stats.json();
    let after: Vec<u64> = ["usage_ns", "periods", "throttled_periods"]
        .iter()
        .map(|w| cgroup_counter(&agent, &id, w))
        .collect();
    for (i, field) in ["cpu_usage_ns", "cpu_periods", "cpu_throttled_periods"]
        .iter()
        .enumerate()
    {
        let reported = stats[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {stats}"));
        assert!(
            before[i] <= reported && reported <= after[i],
            "{field}: {} <= {reported} <= {} does not hold",
            before[i],
            after[i]
        );
    }
    assert!(
        stats["cpu_usage_ns"].as_u64().unwrap() > 100_000_000,
        "{stats}"
    );

    let memory = agent.cgroup("memory", &id);
    let pids = agent.cgroup("pids", &id);
    if memory.join("memory.limit_in_bytes").exists() {
        assert_eq!(
            stats["memory_limit_bytes"],
            read_number(&memory.join("memory.limit_in_bytes"))
        );
        let usage = read_number(&memory.join("memory.usage_in_bytes"));
        let reported = stats["memory_bytes"].as_u64().unwrap();
        assert!(
            reported.abs_diff(usage) < 2 << 20,
            "memory {reported} vs {usage}"
        );
    } else {
        assert_eq!(
            stats["memory_limit_bytes"],
            read_number(&memory.join("memory.max"))
        );
    }
    assert_eq!(stats["memory_limit_bytes"], 64 << 20);
    assert_eq!(
        stats["pids"],
        read_number(&pids.join("pids.current")),
        "{stats}"
    );
    assert_eq!(stats["pids_limit"], 50);

    // The same figures for Prometheus, labelled by container id, from the background sample
    // (taken every 5 s).
    let label = format!("id=\"{id}\"");
    let value = |body: &str, name: &str| -> Option<f64> {
        let line = body
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))?;
        line.rsplit(' ').next()?.parse().ok()
    };
    let mut metrics = curl.get("/metrics");
    assert!(
        wait_until(START, || {
            metrics = curl.get("/metrics");
            value(&metrics.body, "mini_container_cpu_usage_seconds_total").is_some_and(|v| v > 0.1)
        }),
        "no sample of {id}: {}",
        metrics.body
    );
    let sample = |name: &str| -> f64 {
        value(&metrics.body, name).unwrap_or_else(|| panic!("no {name} for {id}: {}", metrics.body))
    };
    assert_eq!(
        sample("mini_container_memory_limit_bytes"),
        (64 << 20) as f64
    );
    assert!(sample("mini_container_cpu_usage_seconds_total") > 0.1);
    assert!(
        metrics.body.contains("\nmini_node_cpus "),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("mini_shim_containers{status=\"running\"} 1"),
        "{}",
        metrics.body
    );

    let node = curl.get("/v1/node").json();
    assert!(node["cpus"].as_u64().unwrap() >= 1, "{node}");
    assert!(
        node["memory_total_bytes"].as_u64().unwrap()
            > node["memory_available_bytes"].as_u64().unwrap()
    );
    assert_eq!(node["containers_running"], 1, "{node}");
}

#[test]
fn unauthenticated_requests_are_refused_and_change_nothing() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let ca = pki.file("ca.pem").display().to_string();
    let rogue = pki.rogue.path();
    let peer = |tls: Vec<String>| Curl {
        base: agent.curl.base.clone(),
        tls,
    };
    let s = |p: PathBuf| p.display().to_string();
    let strangers = [
        (
            "no client certificate",
            peer(vec!["--cacert".into(), ca.clone()]),
        ),
        (
            "a client certificate from another CA",
            peer(vec![
                "--cacert".into(),
                ca.clone(),
                "--cert".into(),
                s(rogue.join("client.pem")),
                "--key".into(),
                s(rogue.join("client-key.pem")),
            ]),
        ),
        (
            "the agent's own server certificate as a client certificate",
            peer(vec![
                "--cacert".into(),
                ca.clone(),
                "--cert".into(),
                s(pki.file("agent.pem")),
                "--key".into(),
                s(pki.file("agent-key.pem")),
            ]),
        ),
    ];
    let id = unique("intruder");
    for (who, curl) in &strangers {
        let run = curl.try_request(
            "POST",
            "/v1/containers",
            Some(&run_body(&id, "sleep 100").to_string()),
        );
        assert!(run.is_err(), "{who}: {run:?}");
        for path in ["/v1/containers", "/metrics", "/v1/node"] {
            let r = curl.try_request("GET", path, None);
            assert!(r.is_err(), "{who}: GET {path} answered: {r:?}");
        }
    }
    // Plain HTTP to the TLS port gets no answer either.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{}/v1/containers", agent.addr))
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("containers"),
        "{plain:?}"
    );

    // Nothing was created; a trusted client sees an empty agent.
    assert!(agent.curl.ids().is_empty());
    let containers = agent.state_dir().join("containers");
    assert!(
        std::fs::read_dir(&containers).map_or(true, |mut d| d.next().is_none()),
        "{} is not empty",
        containers.display()
    );
    assert!(mini_tests::cgroups_mentioning(&agent.node).is_empty());
    assert!(
        agent.agent_log().contains("refused"),
        "{}",
        agent.agent_log()
    );
}

#[test]
fn development_mode_serves_only_a_unix_socket_or_loopback() {
    let dir = TempDir::new("dev-agent");
    let refused = Command::new(mini_shim_bin())
        .args(["agent", "--dev", "--listen", "0.0.0.0:7999", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("only on loopback"), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    let no_tls = Command::new(mini_shim_bin())
        .args(["agent", "--listen", "127.0.0.1:7999", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&no_tls.stderr).contains("--client-ca"));

    let socket = dir.path().join("agent.sock");
    let _agent = mini_tests::ChildGuard::start(
        Command::new(mini_shim_bin())
            .args(["agent", "--dev", "--listen"])
            .arg(format!("unix:{}", socket.display()))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stderr(Stdio::null()),
    );
    let version = || {
        Command::new("curl")
            .args(["-sS", "--unix-socket"])
            .arg(&socket)
            .arg("http://agent/v1/version")
            .output()
            .unwrap()
    };
    assert!(wait_until(START, || version().status.success()));
    let v: Value = serde_json::from_slice(&version().stdout).unwrap();
    assert_eq!(v["protocol"], 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A bad request and what must come back: method, path, body; status, error code, words of
/// the message.
type BadRequest = (
    &'static str,
    String,
    Option<String>,
    u16,
    &'static str,
    &'static str,
);

#[test]
fn malformed_requests_get_a_clear_error_and_change_nothing() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let id = unique("steady");
    curl.run(run_body(&id, SERVE));

    let cases: Vec<BadRequest> = vec![
        (
            "POST",
            "/v1/containers".into(),
            Some("{not json".into()),
            400,
            "bad_request",
            "malformed request body",
        ),
        (
            "POST",
            "/v1/containers".into(),
            Some(String::new()),
            400,
            "bad_request",
            "needs a JSON body",
        ),
        (
            "POST",
            "/v1/containers".into(),
            Some(json!({"id": "x", "source": {"rootfs": rootfs()}, "memory": 5}).to_string()),
            400,
            "bad_request",
            "unknown field `memory`",
        ),
        (
            "POST",
            "/v1/containers".into(),
            Some(json!({"source": {"rootfs": rootfs()}}).to_string()),
            400,
            "bad_request",
            "missing field `id`",
        ),
        (
            "POST",
            "/v1/containers".into(),
            Some(run_body("../escape", "true").to_string()),
            400,
            "bad_request",
            "container id",
        ),
        (
            "POST",
            "/v1/containers".into(),
            Some(run_body(&id, "true").to_string()),
            409,
            "conflict",
            "already exists",
        ),
        (
            "POST",
            format!("/v1/containers/{id}/kill"),
            Some(json!({"signal": "SIGNOPE"}).to_string()),
            400,
            "bad_request",
            "not a signal",
        ),
        (
            "GET",
            "/v2/containers".into(),
            None,
            404,
            "not_found",
            "protocol v1",
        ),
        (
            "GET",
            format!("/v1/containers/{id}/bogus"),
            None,
            404,
            "not_found",
            "no route",
        ),
        (
            "GET",
            "/v1/containers/nobody".into(),
            None,
            404,
            "not_found",
            "no container",
        ),
        (
            "PUT",
            "/v1/containers".into(),
            None,
            400,
            "bad_request",
            "use GET or POST",
        ),
        (
            "GET",
            format!("/v1/containers/{id}/logs?tail=many"),
            None,
            400,
            "bad_request",
            "tail",
        ),
    ];
    for (method, path, body, status, code, words) in cases {
        let a = curl.request(method, &path, body.as_deref());
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (status, code),
            "{method} {path}: {a:?}"
        );
        assert!(
            a.error_message().contains(words),
            "{method} {path}: {:?}",
            a.error_message()
        );
    }
    // Only the one good container exists, and it still runs.
    assert_eq!(curl.ids(), vec![id.clone()]);
    assert_eq!(curl.info(&id)["status"], "running");
}

/// `(uid_t)-1` is "no change" to the kernel: a container asked to run as uid or gid
/// 4294967295 would keep root. The agent refuses ids above 2^31 − 1 (as runc), and makes
/// nothing.
#[test]
fn ids_the_kernel_reads_as_no_change_are_refused() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    for (field, id) in [
        ("uid", 4294967295u32),
        ("gid", 4294967295),
        ("uid", 2147483648),
    ] {
        let mut body = run_body(&unique("nobody"), "id");
        body["process"][field] = json!(id);
        let a = curl.request("POST", "/v1/containers", Some(&body.to_string()));
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (400, "bad_request"),
            "{a:?}"
        );
        let words = format!("process.{field} {id} is refused: ids must be 0 to 2147483647");
        assert!(
            a.error_message().contains(&words),
            "{:?}",
            a.error_message()
        );
    }
    assert!(curl.ids().is_empty());
}

#[test]
fn a_missing_rootfs_fails_with_a_reason_and_leaves_nothing() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let (a, b) = (unique("norootfs"), unique("nocmd"));
    let missing = format!("/nonexistent/{}", unique("rootfs"));
    let mut body = run_body(&a, "true");
    body["source"] = json!({"rootfs": missing});
    let r = curl.post("/v1/containers", &body);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "source_unavailable"),
        "{r:?}"
    );
    assert!(
        r.error_message().contains(&missing),
        "{}",
        r.error_message()
    );
    assert!(
        r.error_message().contains("No such file"),
        "{}",
        r.error_message()
    );

    let mut body = run_body(&b, "true");
    body["process"]["args"] = json!(["/bin/no-such-program"]);
    let r = curl.post("/v1/containers", &body);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "start_failed"),
        "{r:?}"
    );
    assert!(
        r.error_message().contains("no-such-program"),
        "{}",
        r.error_message()
    );

    assert!(curl.ids().is_empty());
    for id in [&a, &b] {
        assert!(!agent.state_dir().join("containers").join(id).exists());
        assert!(
            mini_tests::cgroups_mentioning(id).is_empty(),
            "{id}: cgroup left"
        );
        assert!(
            mini_tests::processes_mentioning(id).is_empty(),
            "{id}: process left"
        );
    }
}

/// A network namespace joined to the host by a veth pair: `host_ip` on the host side,
/// `ip` inside. Deleted (with the pair) on drop.
struct NetNs {
    name: String,
    ip: Ipv4Addr,
}

impl NetNs {
    fn new(subnet: u8) -> NetNs {
        let name = unique("mshns");
        // Interface names have at most 15 bytes.
        let tag = format!("{}{subnet}", std::process::id() % 100_000);
        let (host_if, ns_if) = (format!("msh{tag}h"), format!("msh{tag}n"));
        ip(&["netns", "add", &name]);
        let ns = NetNs {
            name,
            ip: Ipv4Addr::new(10, 213, subnet, 2),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("10.213.{subnet}.1/30"),
            "dev",
            &host_if,
        ]);
        ip(&["link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", ns.name.as_str()];
            all.extend(args);
            ip(&all);
        };
        inside(&[
            "addr",
            "add",
            &format!("10.213.{subnet}.2/30"),
            "dev",
            &ns_if,
        ]);
        inside(&["link", "set", &ns_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys its end of the pair, and with it the host's end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn agents_in_two_network_namespaces_serve_independently() {
    let base = (std::process::id() % 100) as u8 * 2;
    let (na, nb) = (NetNs::new(base), NetNs::new(base + 1));
    let (ipa, ipb) = (na.ip.to_string(), nb.ip.to_string());
    let pki = Pki::new(&[&ipa, &ipb]);
    // The same port in both: each agent has its own network stack.
    let a = Agent::start_at(&pki, SocketAddr::from((na.ip, 7443)), Some(na.name.clone()));
    let b = Agent::start_at(&pki, SocketAddr::from((nb.ip, 7443)), Some(nb.name.clone()));
    assert_ne!(
        a.curl.get("/v1/version").json()["node"],
        b.curl.get("/v1/version").json()["node"]
    );

    // The same container id on both, each its own container.
    let id = unique("web");
    a.curl.run(run_body(&id, &format!("echo on-a; {SERVE}")));
    b.curl.run(run_body(&id, &format!("echo on-b; {SERVE}")));
    a.curl.wait_for_log(&id, "on-a");
    b.curl.wait_for_log(&id, "on-b");
    assert!(!a.curl.log_texts(&id).contains(&"on-b".to_string()));
    assert_eq!(a.curl.ids(), vec![id.clone()]);
    assert_eq!(b.curl.ids(), vec![id.clone()]);

    let stopped = a
        .curl
        .post(&format!("/v1/containers/{id}/stop"), &json!({}))
        .json();
    assert_eq!(stopped["status"], "exited");
    assert_eq!(b.curl.info(&id)["status"], "running");
    assert_eq!(
        a.curl
            .request("DELETE", &format!("/v1/containers/{id}"), None)
            .status,
        200
    );
    assert!(a.curl.ids().is_empty());
    assert_eq!(b.curl.ids(), vec![id.clone()]);
    // Each agent's probes look into its own container's network namespace.
    let probe = b.curl.post(
        &format!("/v1/containers/{id}/probe"),
        &json!({"exec": {"args": ["true"]}}),
    );
    assert_eq!(probe.json()["healthy"], true, "{probe:?}");
}

/// The busybox fixture as an oci-archive, the way `podman save --format oci-archive` writes
/// it, with an image config (Cmd, Env, WorkingDir) of its own. Podman works in a private
/// store under `dir`.
fn fixture_oci_archive(dir: &Path) -> PathBuf {
    let image = format!("localhost/{}:1", unique("shim-busybox"));
    let podman = |args: &[&str]| {
        let mut c = mini_tests::private_podman(dir);
        c.args(args);
        c
    };
    let mut tar = Command::new("tar")
        .args(["-C", &rootfs(), "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let out = podman(&[
        "import",
        "--change",
        r#"CMD ["sh", "-c", "echo from-image-cmd"]"#,
        "--change",
        "ENV GREETING=hello-from-env",
        "--change",
        "WORKDIR /root",
        "-",
        &image,
    ])
    .stdin(tar.stdout.take().expect("piped"))
    .output()
    .expect("podman is installed (.ci/run installs it)");
    let _ = tar.wait();
    assert!(out.status.success(), "podman import: {out:?}");
    let archive = dir.join("image.tar");
    let out = podman(&["save", "--format", "oci-archive", "-o"])
        .arg(&archive)
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "podman save: {out:?}");
    let _ = podman(&["rmi", "-f", &image]).output();
    archive
}

#[test]
fn an_oci_archive_runs_with_its_config_and_a_writable_layer_per_container() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let work = TempDir::new("oci");
    let archive = fixture_oci_archive(work.path());
    let image = json!({"image": {"path": archive}});

    // A corrupt image is refused with the reason, and leaves nothing. (First: a layer already in
    // the store is not read again, so its blob is verified only when it is unpacked.)
    let layout = work.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    let blob = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut data = std::fs::read(&blob).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let bad = unique("img-corrupt");
    let r = curl.post(
        "/v1/containers",
        &json!({"id": bad, "source": {"image": {"path": layout}}}),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "source_unavailable"),
        "{r:?}"
    );
    assert!(r.error_message().contains("digest mismatch"), "{r:?}");
    assert!(curl.ids().is_empty());

    // The image's Cmd, Env and WorkingDir apply when the request leaves them out.
    let plain = unique("img-cmd");
    curl.run(json!({"id": plain, "source": image}));
    curl.wait_for_log(&plain, "from-image-cmd");
    let writer = unique("img-writer");
    curl.run(json!({
        "id": writer,
        "source": image,
        "process": {"args": ["sh", "-c",
            "echo $GREETING; pwd; head -c 300000 /dev/zero > /written; echo wrote; sleep 1000"]}
    }));
    curl.wait_for_log(&writer, "wrote");
    let texts = curl.log_texts(&writer);
    assert!(
        texts.starts_with(&["hello-from-env".into(), "/root".into()]),
        "{texts:?}"
    );
    let stats = curl.get(&format!("/v1/containers/{writer}/stats")).json();
    assert!(stats["disk_bytes"].as_u64().unwrap() >= 300_000, "{stats}");

    // Another container of the image has a layer of its own; the image is untouched.
    let other = unique("img-other");
    curl.run(json!({"id": other, "source": image, "process": {"args": ["sleep", "1000"]}}));
    let exec = curl
        .post(
            &format!("/v1/containers/{other}/exec"),
            &json!({"args": ["test", "-e", "/written"]}),
        )
        .json();
    assert_eq!(exec["exit_code"], 1, "{exec}");
    let other_disk = curl.get(&format!("/v1/containers/{other}/stats")).json()["disk_bytes"]
        .as_u64()
        .unwrap();
    assert!(other_disk < 300_000, "{other_disk}");

    // Deleting them unmounts and removes their layers.
    let state = agent.state_dir().display().to_string();
    assert!(mini_tests::mounts_mentioning(&state) >= 2);
    for id in [&plain, &writer, &other] {
        let d = curl.request("DELETE", &format!("/v1/containers/{id}?force=true"), None);
        assert_eq!(d.status, 200, "{d:?}");
    }
    assert_eq!(mini_tests::mounts_mentioning(&state), 0);
}

#[test]
fn probes_look_into_the_container_and_its_network_namespace() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let id = unique("web");
    // A port nothing on the host uses, so a probe that missed the container's namespace fails.
    let port = free_port();
    // busybox httpd on the container's own loopback (which the runtime brings up), serving /etc.
    let script = "echo up; exec httpd -f -p 127.0.0.1:$PORT -h /etc";
    let mut body = run_body(&id, script);
    body["process"]["env"] = json!([format!("PORT={port}")]);
    curl.run(body);
    curl.wait_for_log(&id, "up");
    let probe = |body: Value| {
        let a = curl.post(&format!("/v1/containers/{id}/probe"), &body);
        assert_eq!(a.status, 200, "{a:?}");
        a.json()
    };
    let ok = |p: &Value| p["healthy"].as_bool().unwrap();
    assert!(
        wait_until(START, || ok(&probe(json!({"tcp": {"port": port}})))),
        "httpd never listened"
    );
    let http = probe(json!({"http": {"port": port, "path": "/passwd"}}));
    assert!(
        ok(&http) && http["detail"].as_str().unwrap().contains("200"),
        "{http}"
    );
    let missing = probe(json!({"http": {"port": port, "path": "/no-such-file"}}));
    assert!(
        !ok(&missing) && missing["detail"].as_str().unwrap().contains("404"),
        "{missing}"
    );
    let closed = probe(json!({"tcp": {"port": port + 1, "timeout_secs": 2}}));
    assert!(!ok(&closed), "{closed}");
    assert!(ok(&probe(
        json!({"exec": {"args": ["test", "-f", "/etc/passwd"]}})
    )));
    assert!(!ok(&probe(json!({"exec": {"args": ["false"]}}))));
    // The port is the container's: nothing listens on the agent's own loopback there.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    let bad = curl.post(
        &format!("/v1/containers/{id}/probe"),
        &json!({"http": {"port": port, "path": "no-slash"}}),
    );
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (400, "bad_request")
    );
    let unknown = curl.post(&format!("/v1/containers/{id}/probe"), &json!({"udp": {}}));
    assert_eq!(unknown.status, 400, "{unknown:?}");
}

#[test]
fn container_specs_environments_and_logs_are_private_to_root() {
    const SECRET: &str = "agent-secret-4711";
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let state = agent.state_dir();
    // The test made the state directory 0755, as an older agent left it; the agent narrowed it.
    mini_tests::assert_private(state, 0o700, None);

    // A non-root process on a shared rootfs, and one on an image's overlay rootfs, which lives
    // in the private container directory: both start, and the second writes to its layer.
    let work = TempDir::new("private-oci");
    let archive = fixture_oci_archive(work.path());
    let (shared, layered) = (unique("private"), unique("private-img"));
    let script = "trap 'exit 0' TERM; echo $PASSWORD; id -u; echo w > /tmp/w && echo wrote; \
                  while :; do sleep 0.1; done";
    for (id, source) in [
        (&shared, json!({"rootfs": rootfs()})),
        (&layered, json!({"image": {"path": archive}})),
    ] {
        curl.run(json!({
            "id": id,
            "source": source,
            "process": {
                "args": ["sh", "-c", script],
                "env": [format!("PASSWORD={SECRET}")],
                // The image's WorkingDir is /root, which is root's own.
                "cwd": "/",
                "uid": 1000,
                "gid": 1000,
            },
        }));
        curl.wait_for_log(id, "wrote");
        let texts = curl.log_texts(id);
        assert!(
            texts.starts_with(&[SECRET.into(), "1000".into()]),
            "{texts:?}"
        );
    }

    for sub in ["containers", "runtime", "images"] {
        mini_tests::assert_private(&state.join(sub), 0o700, None);
    }
    for id in [&shared, &layered] {
        let dir = state.join("containers").join(id);
        mini_tests::assert_private(&dir, 0o700, None);
        mini_tests::assert_private(&dir.join("bundle"), 0o700, None);
        mini_tests::assert_private(&dir.join("bundle/config.json"), 0o600, Some(SECRET));
        mini_tests::assert_private(&dir.join("meta.json"), 0o600, Some(SECRET));
        mini_tests::assert_private(&dir.join("log.jsonl"), 0o600, Some(SECRET));
        for file in [
            "monitor.json",
            "monitor.log",
            "monitor.pid",
            ".exit.json.reserve",
        ] {
            mini_tests::assert_private(&dir.join(file), 0o600, None);
        }
        let runtime = state.join("runtime").join(id);
        mini_tests::assert_private(&runtime, 0o700, None);
        mini_tests::assert_private(&runtime.join("state.json"), 0o600, Some(SECRET));
    }
    // The image's overlay keeps the image's own modes inside the container.
    assert_eq!(
        mini_tests::mode_of(
            &state
                .join("containers")
                .join(&layered)
                .join("rootfs/merged/tmp")
        ),
        0o1777
    );

    let stopped = curl.post(
        &format!("/v1/containers/{shared}/stop"),
        &json!({"timeout_secs": 20}),
    );
    assert_eq!(stopped.status, 200, "{stopped:?}");
    let exit = state.join("containers").join(&shared).join("exit.json");
    mini_tests::assert_private(&exit, 0o600, None);
}

/// Sends SIGCONT to a process on drop, so a test that stopped a monitor leaves it running
/// even when it fails.
struct Continued(i32);

impl Drop for Continued {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGCONT,
        );
    }
}

/// Whether the process is stopped (state `T` in /proc/PID/stat).
fn stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
        .unwrap_or(false)
}

#[test]
fn a_stopped_monitor_does_not_stall_the_list_and_its_container_shows_as_unknown() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let (stuck, fine) = (unique("stuck"), unique("fine"));
    curl.run(run_body(&stuck, "sleep 1000"));
    curl.run(run_body(&fine, "sleep 1000"));
    // The real monitor of `stuck`, by the pid it recorded, stops answering.
    let monitor = monitor_pid(&agent, &stuck);
    let _continued = Continued(monitor);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    assert!(wait_until(START, || stopped(monitor)));

    // The list answers (curl gives up after 60 s: a list that waits on the monitor never
    // would), with `stuck` in it as unknown and `fine` as running.
    for path in ["/v1/containers", "/v1/containers?stats=true"] {
        let list = curl.get(path);
        assert_eq!(list.status, 200, "{list:?}");
        let list = list.json();
        let find = |id: &str| {
            list["containers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("{id} is missing from the list: {list}"))
        };
        let s = find(&stuck);
        assert_eq!(s["status"], "unknown", "{s}");
        assert!(
            s["reason"].as_str().unwrap().contains("did not answer"),
            "{s}"
        );
        assert_eq!(s["labels"]["test"], "shim_agent", "{s}");
        assert_eq!(find(&fine)["status"], "running", "{list}");
    }
    let node = curl.get("/v1/node").json();
    assert_eq!(node["containers"], 2, "{node}");
    assert_eq!(node["containers_running"], 1, "{node}");
    // Once it answers again, it is running as before.
    drop(_continued);
    assert!(wait_until(START, || curl.info(&stuck)["status"] == "running"));
}

/// The access time of `path` in seconds since the epoch.
fn atime(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().atime()
}

#[test]
fn lists_and_scrapes_read_sampled_usage_and_never_walk_a_writable_layer() {
    let pki = Pki::new(&["127.0.0.1"]);
    let agent = Agent::start(&pki);
    let curl = &agent.curl;
    let work = TempDir::new("oci");
    let image = json!({"image": {"path": fixture_oci_archive(work.path())}});
    let id = unique("big-layer");
    curl.run(json!({
        "id": id,
        "source": image,
        "process": {"args": ["sh", "-c",
            "mkdir /big && cd /big && i=0; while [ $i -lt 3000 ]; do echo x > f$i; i=$((i+1)); done; echo wrote; sleep 1000"]}
    }));
    curl.wait_for_log(&id, "wrote");
    let meta: Value = serde_json::from_slice(
        &std::fs::read(
            agent
                .state_dir()
                .join("containers")
                .join(&id)
                .join("meta.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let big = Path::new(meta["writable_layer"].as_str().expect("a writable layer")).join("big");
    let disk = |list: &Value| -> Option<u64> {
        list["containers"]
            .as_array()?
            .iter()
            .find(|c| c["id"] == id)?["stats"]["disk_bytes"]
            .as_u64()
    };
    // The background sample walks the layer once it holds the files (its first walk may
    // have come before the container wrote them).
    assert!(
        wait_until(Duration::from_secs(60), || disk(
            &curl.get("/v1/containers?stats=true").json()
        )
        .is_some_and(|d| d >= 3000 * 512)),
        "no sample of the layer's disk usage"
    );

    // A directory the walk reads gets a new access time (relatime: an access time older than
    // the change time is always updated). Lists and scrapes must not read it: the next
    // background walk is DISK_SAMPLE (30 s) after the last.
    let old = 946_684_800; // 2000-01-01
    let st = Command::new("touch")
        .args(["-a", "-d", &format!("@{old}")])
        .arg(&big)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(atime(&big), old);
    for _ in 0..3 {
        let list = curl.get("/v1/containers?stats=true").json();
        assert!(disk(&list).is_some_and(|d| d >= 3000 * 512), "{list}");
        let metrics = curl.get("/metrics");
        assert!(
            metrics
                .body
                .contains("mini_container_writable_layer_bytes{"),
            "{}",
            metrics.body
        );
        curl.get("/v1/node");
    }
    assert_eq!(
        atime(&big),
        old,
        "a list or a scrape walked the writable layer"
    );
    // The single container's stats are read when asked: that walk does update it.
    curl.get(&format!("/v1/containers/{id}/stats"));
    assert_ne!(
        atime(&big),
        old,
        "the walk does not show in the access time"
    );
}
