//! A mini-sched cluster on one machine for the scheduler's tests: a private "hub" network
//! namespace holding a bridge and the scheduler daemon, and one network namespace per agent
//! (`mini-shim join`) wired to the bridge by a veth pair. No interface is added to the root
//! namespace, so every cluster can use the same subnet (10.77.0.0/24): the scheduler at
//! 10.77.0.1, agent `i` (node `n<i>`) at 10.77.0.(10+i). With [`Options::routed`] the odd
//! agents sit on a second bridge and subnet instead (10.78.0.(10+i), the hub at 10.78.0.1),
//! and the hub routes between the two: those hosts reach the others only through a router.
//!
//! Everything is uniquely named and torn down on drop, even when the test panics: the daemon
//! and the agents are killed by their pids, every container the agents made is deleted
//! through the agents' own API first (with the cluster's admin certificate), then the
//! namespaces and the temporary directory go. [`Traces`] checks afterwards that nothing is
//! left.

use crate::{
    captured_output, cgroups_mentioning, ip, mounts_mentioning, processes_mentioning,
    remove_cgroups_mentioning, unique, wait_until, TempDir,
};
use mini_sched::api::{InstanceView, NodeState, NodeView, WorkloadView};
use mini_shim::protocol::ContainerList;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The scheduler's address on the hub bridge.
pub const SCHEDULER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The hub's address on the second subnet of a routed cluster ([`Options::routed`]).
pub const ROUTED_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
/// The join listener's port.
pub const JOIN_PORT: u16 = 7440;
/// The agents' port.
pub const AGENT_PORT: u16 = 7443;
/// How long the daemon or an agent may take to come up (debug builds on a busy 2-core VM).
const START: Duration = Duration::from_secs(30);

/// The mini-sched binary under test: `$MINI_SCHED_BIN`, or the release build of the workspace.
pub fn mini_sched_bin() -> PathBuf {
    crate::built_binary("MINI_SCHED_BIN", "mini-sched")
}

/// `mini-sched init --state-dir STATE --advertise ADDRESS`, which must succeed; returns the
/// join token it printed.
pub fn init(state: &Path, advertise: &str) -> String {
    init_with(state, advertise, &[])
}

/// [`init`] with `extra` arguments (`--no-masquerade` for agents in the host's own network
/// namespace, which must not get the cluster network's nftables table).
pub fn init_with(state: &Path, advertise: &str, extra: &[&str]) -> String {
    let init = captured_output(
        Command::new(mini_sched_bin())
            .arg("init")
            .arg("--state-dir")
            .arg(state)
            .arg("--advertise")
            .arg(advertise)
            .args(extra),
    );
    assert!(
        init.status.success(),
        "mini-sched init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr)
    );
    printed
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .find(|w| w.starts_with("mst1."))
        .unwrap_or_else(|| panic!("no join token in mini-sched init's output: {printed}"))
        .to_string()
}

/// How the cluster runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The daemon's `--heartbeat-interval`.
    pub heartbeat_interval: Duration,
    /// The daemon's `--node-timeout`.
    pub node_timeout: Duration,
    /// More daemon flags (`--cert-ttl 1m`, ...).
    pub daemon_args: Vec<String>,
    /// More `mini-sched init` flags (`--network-backend vxlan`, ...).
    pub init_args: Vec<String>,
    /// The odd agents on a second subnet, routed to the first by the hub.
    pub routed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat_interval: Duration::from_millis(500),
            node_timeout: Duration::from_secs(3),
            daemon_args: Vec::new(),
            init_args: Vec::new(),
            routed: false,
        }
    }
}

/// A `mini-shim join` a test runs in the hub namespace besides the cluster's agents (a
/// newcomer, or an impostor): it serves on the hub's loopback and advertises `advertise`.
pub struct JoinAttempt<'a> {
    /// `--node-name`.
    pub node: &'a str,
    /// `--token`.
    pub token: &'a str,
    /// `--advertise` (IP:PORT).
    pub advertise: String,
    /// `--label`s.
    pub labels: &'a [&'a str],
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = unique("msched");
        ip(&["netns", "add", &name]);
        Netns(name)
    }

    /// `nsenter` into this namespace's network only (`ip netns exec` would also give the
    /// program a mount namespace with a fresh /sys, without the cgroup mounts agents need).
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.0)).arg(program);
        c.stdin(Stdio::null());
        c
    }

    /// `ip -n NS ARGS`, which must succeed.
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend(args);
        ip(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// SIGKILLs and reaps a child.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// One agent host: its namespace, its end of the bridge, its process.
struct Agent {
    name: String,
    ip: Ipv4Addr,
    netns: Netns,
    /// Its veth's name on the hub side (the bridge port).
    port: String,
    state: PathBuf,
    log: PathBuf,
    labels: Vec<String>,
    child: Option<Child>,
}

/// A running cluster: the scheduler daemon and `n` agents, each in its own network namespace.
pub struct Cluster {
    dir: TempDir,
    options: Options,
    token: String,
    scheduler: Option<Child>,
    agents: Vec<Agent>,
    // Dropped last (fields drop in order): the namespaces go after the processes in them.
    hub: Netns,
}

impl Cluster {
    /// Builds the network, initializes the cluster, starts the daemon and `n_agents` agents
    /// (`n<i>`, label `zone=z<i%2>`) and waits until every node is ready.
    pub fn start(n_agents: usize, options: Options) -> Cluster {
        let dir = TempDir::new("cluster");
        let hub = Netns::new();
        hub.ip(&["link", "set", "lo", "up"]);
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["addr", "add", &format!("{SCHEDULER_IP}/24"), "dev", "br0"]);
        hub.ip(&["link", "set", "br0", "up"]);
        if options.routed {
            hub.ip(&["link", "add", "br1", "type", "bridge"]);
            hub.ip(&["addr", "add", &format!("{ROUTED_GATEWAY}/24"), "dev", "br1"]);
            hub.ip(&["link", "set", "br1", "up"]);
            let forwarding = captured_output(
                hub.command(Path::new("sysctl"))
                    .args(["-w", "net.ipv4.ip_forward=1"]),
            );
            assert!(forwarding.status.success(), "{forwarding:?}");
        }
        let mut cluster = Cluster {
            dir,
            options,
            token: String::new(),
            scheduler: None,
            agents: Vec::new(),
            hub,
        };
        for i in 0..n_agents {
            cluster.add_agent_host(i);
        }
        let init_args = cluster.options.init_args.clone();
        let init_args: Vec<&str> = init_args.iter().map(String::as_str).collect();
        cluster.token = init_with(
            &cluster.state_dir(),
            &format!("{SCHEDULER_IP}:{JOIN_PORT}"),
            &init_args,
        );
        cluster.restart_scheduler();
        for i in 0..n_agents {
            cluster.restart_agent(i);
        }
        let all = n_agents;
        let ready = wait_until(START, || {
            cluster
                .nodes()
                .iter()
                .filter(|n| n.state == NodeState::Ready)
                .count()
                == all
        });
        assert!(
            ready,
            "not every node became ready: {:?}\n{}",
            cluster.nodes(),
            cluster.logs()
        );
        cluster
    }

    /// The agent host `i`: its namespace and its veth pair to the bridge.
    fn add_agent_host(&mut self, i: usize) {
        let netns = Netns::new();
        let port = format!("v{i}");
        let routed = self.options.routed && i % 2 == 1;
        let (ip, bridge, gateway) = if routed {
            (
                Ipv4Addr::new(10, 78, 0, 10 + i as u8),
                "br1",
                ROUTED_GATEWAY,
            )
        } else {
            (Ipv4Addr::new(10, 77, 0, 10 + i as u8), "br0", SCHEDULER_IP)
        };
        self.hub.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns.0,
        ]);
        self.hub.ip(&["link", "set", &port, "master", bridge, "up"]);
        netns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        netns.ip(&["link", "set", "eth0", "up"]);
        netns.ip(&["link", "set", "lo", "up"]);
        if self.options.routed {
            netns.ip(&["route", "add", "default", "via", &gateway.to_string()]);
        }
        let state = self.dir.path().join(format!("agent-{i}"));
        self.agents.push(Agent {
            name: format!("n{i}"),
            ip,
            netns,
            port,
            log: state.with_extension("log"),
            state,
            labels: vec![format!("zone=z{}", i % 2)],
            child: None,
        });
    }

    /// The cluster's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The scheduler's `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("sched")
    }

    /// The CLI's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sched.sock")
    }

    /// The join token `init` printed.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Node `i`'s name (`n<i>`).
    pub fn node(&self, i: usize) -> &str {
        &self.agents[i].name
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.agents
            .iter()
            .position(|a| a.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// How many agents there are.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether the cluster has no agents.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The daemon's log followed by each agent's, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let tail = |t: String| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        s += &format!(
            "--- scheduler log ---\n{}\n",
            tail(read(&self.dir.path().join("sched.log")))
        );
        for a in &self.agents {
            s += &format!("--- {} log ---\n{}\n", a.name, tail(read(&a.log)));
        }
        s
    }

    /// Starts the daemon (again, after [`Cluster::kill_scheduler`]) and waits until the CLI
    /// reaches it.
    pub fn restart_scheduler(&mut self) {
        assert!(self.scheduler.is_none(), "the scheduler runs already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sched.log"))
            .expect("scheduler log");
        let child = self
            .hub
            .command(&mini_sched_bin())
            .arg("daemon")
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--socket")
            .arg(self.socket())
            .arg("--join-listen")
            .arg(format!("{SCHEDULER_IP}:{JOIN_PORT}"))
            .arg("--heartbeat-interval")
            .arg(format!("{}ms", self.options.heartbeat_interval.as_millis()))
            .arg("--node-timeout")
            .arg(format!("{}ms", self.options.node_timeout.as_millis()))
            .args(&self.options.daemon_args)
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn mini-sched daemon");
        self.scheduler = Some(child);
        let up = wait_until(START, || {
            self.socket().exists() && self.cli(&["get", "nodes"]).status.success()
        });
        assert!(up, "the scheduler did not come up:\n{}", self.logs());
    }

    /// `kill -9` of the daemon (by its pid).
    pub fn kill_scheduler(&mut self) {
        let mut child = self.scheduler.take().expect("a running scheduler");
        kill(&mut child);
    }

    /// The daemon's pid.
    pub fn scheduler_pid(&self) -> u32 {
        self.scheduler.as_ref().expect("a running scheduler").id()
    }

    /// Agent `i`'s state directory (its credentials are in `pki/`).
    pub fn agent_state_dir(&self, i: usize) -> &Path {
        &self.agents[i].state
    }

    /// `program` in the hub's network namespace: a client outside every node (and outside
    /// the cluster network), on the nodes' own subnet.
    pub fn hub_command(&self, program: &Path) -> Command {
        self.hub.command(program)
    }

    /// The name of agent `i`'s network namespace (`/run/netns/NAME`): its host.
    pub fn netns_name(&self, i: usize) -> &str {
        &self.agents[i].netns.0
    }

    /// Agent `i`'s address (IP:PORT), as it advertises it.
    pub fn agent_address(&self, i: usize) -> String {
        format!("{}:{AGENT_PORT}", self.agents[i].ip)
    }

    /// Stops agent `i` if it runs and starts it with `mini-shim join --rejoin` and `labels`
    /// (kept for later restarts): it joins again with its current certificate.
    pub fn rejoin_agent(&mut self, i: usize, labels: &[&str]) {
        if let Some(mut child) = self.agents[i].child.take() {
            kill(&mut child);
        }
        self.agents[i].labels = labels.iter().map(|l| l.to_string()).collect();
        self.start_agent(i, &["--rejoin"]);
    }

    /// Runs `attempt` in the hub namespace: the agent serving once it has joined, or the
    /// one line it exited with.
    pub fn join_from_hub(&self, attempt: JoinAttempt) -> Result<crate::ChildGuard, String> {
        use std::sync::atomic::{AtomicU16, Ordering};
        static PORT: AtomicU16 = AtomicU16::new(17443);
        let state = self.dir.path().join(unique("extra-agent"));
        let log = state.with_extension("log");
        let mut c = self.hub.command(&crate::mini_shim_bin());
        c.arg("join")
            .arg("--scheduler")
            .arg(format!("{SCHEDULER_IP}:{JOIN_PORT}"))
            .arg("--token")
            .arg(attempt.token)
            .arg("--listen")
            .arg(format!(
                "127.0.0.1:{}",
                PORT.fetch_add(1, Ordering::Relaxed)
            ))
            .arg("--advertise")
            .arg(&attempt.advertise)
            .arg("--node-name")
            .arg(attempt.node)
            .arg("--state-dir")
            .arg(&state);
        for l in attempt.labels {
            c.arg("--label").arg(l);
        }
        c.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"));
        let mut guard = crate::ChildGuard::start(&mut c);
        let joined = state.join("pki/agent.pem");
        let mut exited = false;
        wait_until(START, || {
            exited = !guard.running();
            exited || joined.exists()
        });
        let said = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        if exited {
            return Err(said());
        }
        assert!(
            joined.exists(),
            "the join neither failed nor succeeded: {}",
            said()
        );
        Ok(guard)
    }

    /// Starts agent `i` (again): `mini-shim join`, which joins the first time and afterwards
    /// serves with the credentials it got. Returns once it answers on its own address.
    pub fn restart_agent(&mut self, i: usize) {
        self.start_agent(i, &[]);
    }

    /// [`Cluster::restart_agent`] with more `mini-shim join` flags.
    fn start_agent(&mut self, i: usize, extra: &[&str]) {
        let a = &self.agents[i];
        assert!(a.child.is_none(), "agent {} runs already", a.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&a.log)
            .expect("agent log");
        let mut c = a.netns.command(&crate::mini_shim_bin());
        c.arg("join")
            .arg("--scheduler")
            .arg(format!("{SCHEDULER_IP}:{JOIN_PORT}"))
            .arg("--token")
            .arg(&self.token)
            .arg("--listen")
            .arg(format!("{}:{AGENT_PORT}", a.ip))
            .arg("--node-name")
            .arg(&a.name)
            .arg("--state-dir")
            .arg(&a.state);
        for l in &a.labels {
            c.arg("--label").arg(l);
        }
        c.args(extra);
        let child = c
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn mini-shim join");
        self.agents[i].child = Some(child);
        let up = wait_until(START, || self.agent_answers(i));
        assert!(up, "agent {i} did not come up:\n{}", self.logs());
    }

    /// `kill -9` of agent `i` (by its pid); its containers keep running under their monitors.
    pub fn kill_agent(&mut self, i: usize) {
        let mut child = self.agents[i].child.take().expect("a running agent");
        kill(&mut child);
    }

    /// Takes agent `i`'s host off the network: its bridge port goes down.
    pub fn cut_link(&self, i: usize) {
        self.hub.ip(&["link", "set", &self.agents[i].port, "down"]);
    }

    /// Puts agent `i`'s host back on the network.
    pub fn restore_link(&self, i: usize) {
        self.hub.ip(&["link", "set", &self.agents[i].port, "up"]);
    }

    /// Runs `mini-sched --socket S ARGS` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new(mini_sched_bin());
        c.arg("--socket").arg(self.socket()).args(args);
        c.env_remove("MINI_SCHED_SOCKET");
        captured_output(&mut c)
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "mini-sched {args:?} failed ({}): {}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `get KIND -o json` (plus `extra`), parsed; an empty listing is an empty list.
    pub fn get<T: serde::de::DeserializeOwned>(&self, kind: &str, extra: &[&str]) -> Vec<T> {
        let mut args = vec!["get", kind, "-o", "json"];
        args.extend(extra);
        let text = self.cli_ok(&args);
        if text.trim().is_empty() {
            return Vec::new();
        }
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("`get {kind} -o json` is not a list ({e}): {text}"))
    }

    /// `get nodes -o json`, or an empty list while the daemon does not answer.
    pub fn nodes(&self) -> Vec<NodeView> {
        let out = self.cli(&["get", "nodes", "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// `get workloads -o json`.
    pub fn workloads(&self) -> Vec<WorkloadView> {
        self.get("workloads", &[])
    }

    /// `get instances --all -o json` (every workload's, ended ones too).
    pub fn instances(&self) -> Vec<InstanceView> {
        self.get("instances", &["--all"])
    }

    /// Writes `spec` (YAML or JSON) to a file in the cluster's directory and runs `apply -f`.
    pub fn apply(&self, spec: &str) -> Output {
        let file = self.dir.path().join(format!("{}.yaml", unique("spec")));
        std::fs::write(&file, spec).expect("write spec");
        self.cli(&["apply", "-f", file.to_str().expect("utf-8 path")])
    }

    /// `apply` that must succeed.
    pub fn apply_ok(&self, spec: &str) -> String {
        let out = self.apply(spec);
        assert!(
            out.status.success(),
            "apply failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A curl command run in the hub namespace with the cluster's admin certificate.
    fn curl(&self, method: &str, url: &str) -> Command {
        self.curl_in(&self.hub, method, url)
    }

    /// A curl command run in namespace `ns` with the cluster's admin certificate.
    fn curl_in(&self, ns: &Netns, method: &str, url: &str) -> Command {
        let pki = self.state_dir().join("pki");
        let mut c = ns.command(Path::new("/usr/bin/curl"));
        c.args(["-sS", "--max-time", "10", "-X", method, "--cacert"])
            .arg(pki.join("ca.pem"))
            .arg("--cert")
            .arg(pki.join("admin.pem"))
            .arg("--key")
            .arg(pki.join("admin-key.pem"))
            .arg(url);
        c
    }

    /// `GET path` on agent `i` from the hub with the admin certificate: the body, or curl's
    /// one-line error (a refused handshake, ...).
    pub fn admin_get(&self, i: usize, path: &str) -> Result<String, String> {
        let out = captured_output(&mut self.curl("GET", &self.agent_url(i, path)));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn agent_url(&self, i: usize, path: &str) -> String {
        format!("https://{}:{AGENT_PORT}{path}", self.agents[i].ip)
    }

    /// Whether agent `i` answers `GET /v1/version` from the hub.
    fn agent_answers(&self, i: usize) -> bool {
        let out = captured_output(&mut self.curl("GET", &self.agent_url(i, "/v1/version")));
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("node")
    }

    /// The containers agent `i` has (asked directly, with the admin certificate).
    pub fn agent_containers(&self, i: usize) -> ContainerList {
        let out = captured_output(&mut self.curl("GET", &self.agent_url(i, "/v1/containers")));
        assert!(
            out.status.success(),
            "listing agent {i}'s containers: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "agent {i}'s container list ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The ids of the containers agent `i` has, asked from inside its own host (so even while
    /// its link is cut).
    pub fn agent_container_ids_from_inside(&self, i: usize) -> Vec<String> {
        let url = self.agent_url(i, "/v1/containers");
        let out = captured_output(&mut self.curl_in(&self.agents[i].netns, "GET", &url));
        serde_json::from_slice::<ContainerList>(&out.stdout)
            .unwrap_or_else(|e| {
                panic!(
                    "agent {i}'s container list from inside ({e}): {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// The containers on agent `i`'s host whose monitor process is alive, seen from the host
    /// (works while the agent is dead): the directories under its `containers/` that a
    /// running process names.
    pub fn monitored_containers(&self, i: usize) -> Vec<String> {
        let dir = self.agents[i].state.join("containers");
        std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !processes_mentioning(&e.path().to_string_lossy()).is_empty())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The ids of the containers on agent `i`.
    pub fn agent_container_ids(&self, i: usize) -> Vec<String> {
        self.agent_containers(i)
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// What to look for after the cluster is gone: its directory, namespaces and containers.
    pub fn traces(&self) -> Traces {
        let mut containers = Vec::new();
        for (i, a) in self.agents.iter().enumerate() {
            if a.child.is_some() {
                for id in self.agent_container_ids(i) {
                    containers.push(format!("{}_{id}", a.name));
                }
            }
        }
        let mut netns: Vec<String> = self.agents.iter().map(|a| a.netns.0.clone()).collect();
        netns.push(self.hub.0.clone());
        Traces {
            dir: self.dir.path().to_path_buf(),
            netns,
            containers,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The scheduler first, so it starts nothing while the agents empty themselves.
        if let Some(mut s) = self.scheduler.take() {
            kill(&mut s);
        }
        let mut cgroups = Vec::new();
        for i in 0..self.agents.len() {
            let _ = Command::new("ip")
                .args(["-n", &self.hub.0, "link", "set", &self.agents[i].port, "up"])
                .status();
            if self.agents[i].child.is_none() && self.agents[i].state.join("pki").exists() {
                // A killed agent: a fresh one adopts what its containers left, to delete them.
                let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.restart_agent(i)
                }));
                if restarted.is_err() {
                    continue;
                }
            }
            // Until the list stays empty: a start the scheduler asked for just before it was
            // killed may still be under way on the agent.
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let listed =
                    captured_output(&mut self.curl("GET", &self.agent_url(i, "/v1/containers")));
                let ids: Vec<String> = serde_json::from_slice::<ContainerList>(&listed.stdout)
                    .map(|l| l.containers.into_iter().map(|c| c.id).collect())
                    .unwrap_or_default();
                if ids.is_empty() || Instant::now() > deadline {
                    break;
                }
                for id in ids {
                    let url = self.agent_url(i, &format!("/v1/containers/{id}?force=true"));
                    let _ = captured_output(&mut self.curl("DELETE", &url));
                    cgroups.push(format!("{}_{id}", self.agents[i].name));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for a in &mut self.agents {
            if let Some(mut c) = a.child.take() {
                kill(&mut c);
            }
        }
        for c in cgroups {
            remove_cgroups_mentioning(&c);
        }
    }
}

/// What a cluster leaves to check once it is dropped.
#[derive(Debug, Clone)]
pub struct Traces {
    dir: PathBuf,
    netns: Vec<String>,
    containers: Vec<String>,
}

impl Traces {
    /// Asserts that nothing of the cluster is left: no process or mount mentioning its
    /// directory (daemon, agents, monitors, container mounts), no cgroup of its containers,
    /// none of its network namespaces, and not the directory itself.
    pub fn assert_gone(&self) {
        // With the trailing slash: another cluster's directory may extend this one's name
        // (`…-17` and `…-179`).
        let dir = format!("{}/", self.dir.display());
        let left: Vec<String> = processes_mentioning(&dir)
            .into_iter()
            .map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
            .collect();
        assert_eq!(left, Vec::<String>::new(), "processes of the cluster left");
        assert_eq!(mounts_mentioning(&dir), 0, "mounts of the cluster left");
        for c in &self.containers {
            assert_eq!(
                cgroups_mentioning(c),
                Vec::<PathBuf>::new(),
                "cgroups of container {c} left"
            );
        }
        let listed = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        let listed = String::from_utf8_lossy(&listed.stdout);
        for n in &self.netns {
            assert!(
                !listed
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(n)),
                "network namespace {n} left"
            );
        }
        assert!(!self.dir.exists(), "{} left", self.dir.display());
    }
}
