//! Services on one node, driven through the agent's protocol (`PUT`/`PATCH /v1/services`) with
//! real nftables and real traffic: an agent (development mode, a unix socket) in a network
//! namespace of its own with the cluster network, busybox httpd instances as endpoints, and a
//! client namespace outside the cluster joined to the node by a veth pair. Everything (the
//! namespaces, the instances, the agent) is removed even when a test fails.

use mini_shim::protocol::ExecResult;
use mini_tests::{captured_output, fixture_rootfs, mini_shim_bin, unique, wait_until, TempDir};
use serde_json::{json, Value};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a change may take to show (a busy 2-core machine).
const SETTLE: Duration = Duration::from_secs(30);
/// busybox httpd on port 8080 answering with the instance's hostname (its id).
const WEB: &str = "hostname > /tmp/index.html && exec httpd -f -p 8080 -h /tmp";
/// The node's address towards the outside client, and the client's.
const NODE_IP: &str = "192.168.77.1";
const CLIENT_IP: &str = "192.168.77.2";
/// The node's cluster subnet; its first address is the bridge (the instances' gateway).
const SUBNET: &str = "10.88.1.0/24";

fn ip(args: &[&str]) {
    let out = captured_output(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command in namespace `ns` (its network only).
fn inside(ns: &str, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}")).arg(program);
    c.stdin(Stdio::null());
    c
}

/// One node: its namespace and agent, the outside client's namespace, the instances.
struct Node {
    /// The node's name (unique: it is in the containers' cgroup paths).
    name: String,
    ns: String,
    client: String,
    dir: TempDir,
    agent: Option<Child>,
    instances: Vec<String>,
}

impl Node {
    fn start() -> Node {
        let (ns, client) = (unique("msvc"), unique("msvcc"));
        ip(&["netns", "add", &ns]);
        let node = Node {
            name: unique("n"),
            ns,
            client,
            dir: TempDir::new("msvc"),
            agent: None,
            instances: Vec::new(),
        };
        ip(&["netns", "add", &node.client]);
        ip(&[
            "-n",
            &node.ns,
            "link",
            "add",
            "out0",
            "type",
            "veth",
            "peer",
            "name",
            "in0",
            "netns",
            &node.client,
        ]);
        for (ns, dev, addr) in [
            (&node.ns, "out0", NODE_IP),
            (&node.client, "in0", CLIENT_IP),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // The client reaches service addresses through the node, as a router would send them.
        ip(&[
            "-n",
            &node.client,
            "route",
            "add",
            "10.96.0.0/16",
            "via",
            NODE_IP,
        ]);
        let mut node = node;
        node.start_agent();
        let network = json!({"cluster_cidr": "10.88.0.0/16", "subnet": SUBNET,
            "masquerade": false, "peers": []});
        node.ok("POST", "/v1/network", Some(&network));
        node
    }

    fn socket(&self) -> String {
        self.dir.path().join("agent.sock").display().to_string()
    }

    fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("agent log");
        let child = inside(&self.ns, &mini_shim_bin().display().to_string())
            .args([
                "agent",
                "--dev",
                "--cleanup",
                "--node-name",
                &self.name,
                "--listen",
            ])
            .arg(format!("unix:{}", self.socket()))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the agent");
        self.agent = Some(child);
        let up = wait_until(SETTLE, || self.request("GET", "/v1/version", None).is_ok());
        assert!(up, "the agent did not answer: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// One request: (status, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-m",
            "60",
            "-X",
            method,
            "--unix-socket",
            &self.socket(),
        ]);
        c.args(["-w", "\n%{http_code}"]);
        if let Some(b) = body {
            c.args([
                "-H",
                "content-type: application/json",
                "--data-binary",
                &b.to_string(),
            ]);
        }
        c.arg(format!("http://agent{path}"));
        let out = captured_output(&mut c);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').ok_or_else(|| text.clone())?;
        let code: u16 = code.trim().parse().map_err(|_| text.clone())?;
        if code == 0 {
            return Err(format!(
                "no answer: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok((code, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (code, answer) = self.request(method, path, body).expect("the agent answers");
        assert!(
            (200..300).contains(&code),
            "{method} {path}: {code} {answer}\n{}",
            self.log()
        );
        answer
    }

    /// Runs a web instance; its address.
    fn web(&mut self, id: &str) -> String {
        let run = json!({"id": id, "source": {"rootfs": fixture_rootfs()},
            "process": {"args": ["sh", "-c", WEB]}, "network": "cluster"});
        self.instances.push(id.to_string());
        let info = self.ok("POST", "/v1/containers", Some(&run));
        let address = info["address"].as_str().expect("an address").to_string();
        // Up once it answers on its own address.
        let up = wait_until(SETTLE, || {
            self.fetch(id, &address, 8080).as_deref() == Ok(id)
        });
        assert!(
            up,
            "{id} does not serve: {:?}",
            self.fetch(id, &address, 8080)
        );
        address
    }

    fn exec(&self, id: &str, script: &str) -> ExecResult {
        let body = json!({"args": ["sh", "-c", script], "timeout_secs": 20});
        serde_json::from_value(self.ok("POST", &format!("/v1/containers/{id}/exec"), Some(&body)))
            .expect("an exec result")
    }

    /// GET / from inside instance `from` with busybox nc: the page's last line, or why not.
    fn fetch(&self, from: &str, address: &str, port: u16) -> Result<String, String> {
        let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {address} {port}");
        let r = self.exec(from, &get);
        if r.exit_code == 0 && r.stdout.starts_with("HTTP/1.") {
            Ok(r.stdout
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string())
        } else {
            Err(format!("exit {}: {}{}", r.exit_code, r.stdout, r.stderr))
        }
    }

    /// A TCP connection from the outside client to `to`, with a generous timeout: Ok, or the
    /// error's kind.
    fn connect_from_outside(&self, to: SocketAddr) -> Result<(), ErrorKind> {
        let path = format!("/run/netns/{}", self.client);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(path).expect("the client namespace");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            TcpStream::connect_timeout(&to, Duration::from_secs(8))
                .map(drop)
                .map_err(|e| e.kind())
        })
        .join()
        .expect("the client thread")
    }

    /// An HTTP GET from the outside client (busybox wget is not there: nc of the host's
    /// busybox through nsenter).
    fn fetch_from_outside(&self, address: &str, port: u16) -> Result<String, String> {
        let out = captured_output(inside(&self.client, "sh").args([
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {address} {port}"),
        ]));
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if text.starts_with("HTTP/1.") {
            Ok(text.lines().last().unwrap_or_default().trim().to_string())
        } else {
            Err(format!(
                "{} {text} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `nft` in the node's namespace: its stdout, or None when it failed.
    fn nft(&self, args: &[&str]) -> Option<String> {
        let out = captured_output(inside(&self.ns, "nft").args(args));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for id in &self.instances {
            let _ = self.request("DELETE", &format!("/v1/containers/{id}?force=true"), None);
        }
        if let Some(mut child) = self.agent.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if !wait_until(Duration::from_secs(20), || {
                matches!(child.try_wait(), Ok(Some(_)))
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        for ns in [&self.ns, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn endpoint(node: &Node, instance: &str, address: &str, weight: u8) -> Value {
    json!({"instance": instance, "node": node.name, "address": address, "weight": weight})
}

fn service(name: &str, address: &str, node_port: Option<u16>, endpoints: Vec<Value>) -> Value {
    let mut port = json!({"port": 80, "target_port": 8080, "protocol": "tcp"});
    if let Some(n) = node_port {
        port["node_port"] = json!(n);
    }
    json!({"name": name, "address": address, "ports": [port], "endpoints": endpoints})
}

/// Which instances answer `count` fetches through `address:port` from `from`.
fn answers(
    node: &Node,
    from: &str,
    address: &str,
    count: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..count {
        let who = node
            .fetch(from, address, 80)
            .unwrap_or_else(|e| format!("error {e}"));
        *seen.entry(who).or_insert(0) += 1;
    }
    seen
}

#[test]
fn traffic_through_a_service_reaches_its_endpoints_and_follows_changes() {
    let mut node = Node::start();
    let a = node.web("web-a");
    let b = node.web("web-b");
    node.web("client");
    let table = json!({"generation": 1, "domain": "cluster.local", "services": [
        service("web", "10.96.0.10", Some(30080), vec![endpoint(&node, "web-a", &a, 50), endpoint(&node, "web-b", &b, 50)]),
        service("empty", "10.96.0.11", Some(30081), vec![]),
    ]});
    let state = node.ok("PUT", "/v1/services", Some(&table));
    assert_eq!(state["generation"], 1);
    assert_eq!(state["endpoints"], 2);
    let status = node.ok("GET", "/v1/node", None);
    assert_eq!(status["services_generation"], 1);
    // Both endpoints answer through the virtual address, from an instance on the bridge.
    let seen = answers(&node, "client", "10.96.0.10", 30);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["web-a", "web-b"],
        "{seen:?}"
    );
    // A change moves every new connection to web-b only.
    let change = json!({"from": 1, "generation": 2, "upsert": [
        service("web", "10.96.0.10", Some(30080), vec![endpoint(&node, "web-b", &b, 100)])]});
    node.ok("PATCH", "/v1/services", Some(&change));
    let seen = answers(&node, "client", "10.96.0.10", 15);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["web-b"],
        "{seen:?}"
    );
    // A stale change is refused and changes nothing.
    let (code, body) = node
        .request("PATCH", "/v1/services", Some(&change))
        .unwrap();
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("generation_mismatch")),
        "{body}"
    );
    // No endpoints: refused at once, from an instance and from outside (virtual address and
    // node port), never left to time out.
    let refused = node.fetch("client", "10.96.0.11", 80).unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    for to in ["10.96.0.11:80", &format!("{NODE_IP}:30081")] {
        let r = node.connect_from_outside(to.parse().unwrap());
        assert_eq!(r, Err(ErrorKind::ConnectionRefused), "{to}");
    }
    // The node port and the virtual address from a client outside the cluster.
    assert_eq!(
        node.fetch_from_outside(NODE_IP, 30080).as_deref(),
        Ok("web-b")
    );
    assert_eq!(
        node.fetch_from_outside("10.96.0.10", 80).as_deref(),
        Ok("web-b")
    );
    // Every problem of a bad table is listed, and nothing changes.
    let bad = json!({"generation": 3, "domain": "cluster.local", "services": [
        service("Bad", "10.96.0.10", None, vec![endpoint(&node, "x", &a, 0)]),
        service("web", "10.96.0.10", Some(30080), vec![])]});
    let (code, body) = node.request("PUT", "/v1/services", Some(&bad)).unwrap();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(code, 400, "{body}");
    for needle in ["not a DNS label", "weight 0", "same address"] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert_eq!(node.ok("GET", "/v1/services", None)["generation"], 2);
    let metrics = captured_output(Command::new("curl").args([
        "-s",
        "--unix-socket",
        &node.socket(),
        "http://agent/metrics",
    ]));
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.contains("mini_shim_services 2"), "{metrics}");
    assert!(
        metrics.contains("mini_shim_service_endpoints 1"),
        "{metrics}"
    );
}

#[test]
fn a_killed_agent_keeps_serving_until_the_next_table_and_cleanup_leaves_nothing() {
    let mut node = Node::start();
    let a = node.web("web-a");
    node.web("client");
    let table = json!({"generation": 5, "domain": "cluster.local",
        "services": [service("web", "10.96.0.10", None, vec![endpoint(&node, "web-a", &a, 1)])]});
    node.ok("PUT", "/v1/services", Some(&table));
    assert_eq!(
        node.fetch("client", "10.96.0.10", 80).as_deref(),
        Ok("web-a")
    );
    // kill -9 and a new agent: the table stays and serves; the agent reports generation 0 and
    // refuses changes until the whole table comes.
    let mut child = node.agent.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    node.start_agent();
    assert_eq!(
        node.fetch("client", "10.96.0.10", 80).as_deref(),
        Ok("web-a")
    );
    assert_eq!(node.ok("GET", "/v1/node", None)["services_generation"], 0);
    let change = json!({"from": 5, "generation": 6, "remove": ["web"]});
    let (code, _) = node
        .request("PATCH", "/v1/services", Some(&change))
        .unwrap();
    assert_eq!(code, 409);
    // The next table replaces it: the old address is gone, the new one serves.
    let table = json!({"generation": 7, "domain": "cluster.local",
        "services": [service("web2", "10.96.0.20", None, vec![endpoint(&node, "web-a", &a, 1)])]});
    node.ok("PUT", "/v1/services", Some(&table));
    assert_eq!(
        node.fetch("client", "10.96.0.20", 80).as_deref(),
        Ok("web-a")
    );
    assert!(node.fetch("client", "10.96.0.10", 80).is_err());
    let listed = node
        .nft(&["list", "table", "ip", "mini_services"])
        .expect("the table");
    assert!(
        listed.contains("10.96.0.20") && !listed.contains("10.96.0.10"),
        "{listed}"
    );
    // A connection tracked to the service address...
    let tracked = |node: &Node| {
        let out = captured_output(inside(&node.ns, "conntrack").args(["-L", "-d", "10.96.0.20"]));
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert!(
        tracked(&node) > 0,
        "no conntrack entry for the service address"
    );
    // ...and the table go with the agent's --cleanup.
    let mut child = node.agent.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(
        node.nft(&["list", "table", "ip", "mini_services"]),
        None,
        "{}",
        node.log()
    );
    assert_eq!(tracked(&node), 0, "{}", node.log());
    assert!(!node.dir.path().join("state/services/table.json").exists());
    node.start_agent(); // to delete the instances
}
