//! The scheduler at scale on hollow nodes (`mini-shim hollow`, kubemark's idea): the real
//! daemon and hollow nodes that joined with a token and serve the real agent API over mutual
//! TLS, with fake containers, all in one network namespace of the test's own. Every instance
//! runs; then a tenth of the nodes stop answering at once: their instances are replaced on the
//! others, no other node is declared lost, and no instance on a live node is restarted or
//! moved.
//!
//! Issue 16 asks for 200 nodes and 4,000 instances. The daemon as it is (one global lock held
//! across every store commit and every agent's answer) does not hold that on two
//! busy cores: with 200 nodes and 4,000 instances, `get instances` took 77 s to 3 minutes,
//! all 200 nodes were declared lost and 19 instances ran after 5 minutes
//! (`bench/sched_e2e.py --nodes 200 --instances 4000`). So the test runs the scale the daemon
//! handles today, 20 nodes and 200 instances; raise NODES, WORKLOADS and REPLICAS to the
//! issue's figures with the scheduler core's rework.

use mini_sched::api::{InstanceView, NodeState, NodeView, Phase};
use mini_tests::cluster::{init, mini_sched_bin};
use mini_tests::{captured_output, fixture_rootfs, ip, mini_shim_bin, unique, wait_until, TempDir};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const NODES: usize = 20;
const WORKLOADS: usize = 2;
const REPLICAS: usize = 100;
const FROZEN: usize = 2;
/// How long each phase may take (2 busy cores; the scheduler's passes grow with the cluster).
const SETTLE: Duration = Duration::from_secs(300);
const JOIN_LISTEN: &str = "127.0.0.1:7440";

/// The daemon and the hollow nodes in a network namespace of their own, killed by their pids
/// and the namespace deleted on drop.
struct Scale {
    dir: TempDir,
    netns: String,
    children: Vec<Child>,
}

impl Scale {
    fn start() -> Scale {
        let netns = unique("msscale");
        ip(&["netns", "add", &netns]);
        let mut scale = Scale {
            dir: TempDir::new("sched-scale"),
            netns,
            children: Vec::new(),
        };
        ip(&["-n", &scale.netns, "link", "set", "lo", "up"]);
        let token = init(&scale.state(), JOIN_LISTEN);
        let daemon = scale
            .command(&mini_sched_bin())
            .arg("daemon")
            .arg("--state-dir")
            .arg(scale.state())
            .arg("--socket")
            .arg(scale.socket())
            .arg("--join-listen")
            .arg(JOIN_LISTEN)
            .args(["--heartbeat-interval", "1s", "--node-timeout", "10s"])
            .stdout(Stdio::null())
            .stderr(scale.log("sched.log"))
            .spawn()
            .expect("spawn mini-sched daemon");
        scale.children.push(daemon);
        assert!(
            wait_until(Duration::from_secs(30), || scale
                .cli(&["get", "nodes"])
                .status
                .success()),
            "the scheduler did not come up: {}",
            scale.logs()
        );
        let hollow = scale
            .command(&mini_shim_bin())
            .args([
                "hollow",
                "--count",
                &NODES.to_string(),
                "--join",
                JOIN_LISTEN,
            ])
            .args(["--token", &token, "--max-connections", "64"])
            .arg("--state-dir")
            .arg(scale.hollow_dir())
            .stdout(Stdio::null())
            .stderr(scale.log("hollow.log"))
            .spawn()
            .expect("spawn mini-shim hollow");
        scale.children.push(hollow);
        scale
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns))
            .arg(program)
            .stdin(Stdio::null());
        c
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("sched")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sched.sock")
    }

    fn hollow_dir(&self) -> PathBuf {
        self.dir.path().join("hollow")
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.dir.path().join(name)).expect("log file")
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["sched.log", "hollow.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s += &format!(
                "--- {name} ---\n{}\n",
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        s
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new(mini_sched_bin());
        c.arg("--socket").arg(self.socket()).args(args);
        c.env_remove("MINI_SCHED_SOCKET");
        captured_output(&mut c)
    }

    fn get<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> Option<Vec<T>> {
        let out = self.cli(args);
        if !out.status.success() {
            return None;
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Some(Vec::new());
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn nodes(&self) -> Vec<NodeView> {
        self.get(&["get", "nodes", "-o", "json"])
            .unwrap_or_default()
    }

    /// The instances, without those lost with their nodes (listed until they are fenced).
    fn instances(&self) -> Vec<InstanceView> {
        let all: Vec<InstanceView> = self
            .get(&["get", "instances", "-o", "json"])
            .unwrap_or_default();
        all.into_iter().filter(|i| i.phase != Phase::Lost).collect()
    }

    /// Waits until every workload's instances all run, and returns them.
    fn all_running(&self, what: &str) -> Vec<InstanceView> {
        let mut last = Vec::new();
        let done = wait_until(SETTLE, || {
            last = self.instances();
            last.len() == WORKLOADS * REPLICAS && last.iter().all(|i| i.phase == Phase::Running)
        });
        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
        for i in &last {
            *phases.entry(format!("{:?}", i.phase)).or_default() += 1;
        }
        assert!(
            done,
            "{what}: not all {} instances run: {phases:?}\n{}",
            WORKLOADS * REPLICAS,
            self.logs()
        );
        last
    }
}

impl Drop for Scale {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

#[test]
fn hollow_nodes_run_every_instance_and_lose_a_tenth_without_false_alarms() {
    let scale = Scale::start();
    let mut nodes = Vec::new();
    assert!(
        wait_until(SETTLE, || {
            nodes = scale.nodes();
            nodes.len() == NODES && nodes.iter().all(|n| n.state == NodeState::Ready)
        }),
        "not all {NODES} hollow nodes are ready: {} are\n{}",
        nodes.iter().filter(|n| n.state == NodeState::Ready).count(),
        scale.logs()
    );

    for w in 0..WORKLOADS {
        let spec = format!(
            "name: scale{w}\n\
             source: {{rootfs: {rootfs}}}\n\
             command: [sleep, '1000']\n\
             replicas: {REPLICAS}\n\
             resources:\n  requests: {{cpu: 50m, memory: 8Mi}}\n\
             stop_timeout: 1s\n",
            rootfs = fixture_rootfs().display()
        );
        let file = scale.dir.path().join(format!("scale{w}.yaml"));
        std::fs::write(&file, spec).unwrap();
        let out = scale.cli(&["apply", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "apply: {out:?}");
    }
    let before = scale.all_running("after the apply");

    // 20 nodes stop answering at once.
    let frozen: HashSet<String> = nodes.iter().take(FROZEN).map(|n| n.name.clone()).collect();
    let list: Vec<&str> = frozen.iter().map(String::as_str).collect();
    std::fs::write(scale.hollow_dir().join("frozen"), list.join("\n")).unwrap();
    assert!(
        wait_until(SETTLE, || scale
            .nodes()
            .iter()
            .filter(|n| n.state == NodeState::Lost)
            .count()
            == FROZEN),
        "the frozen nodes were not all declared lost: {:?}\n{}",
        scale
            .nodes()
            .iter()
            .map(|n| (&n.name, n.state))
            .collect::<Vec<_>>(),
        scale.logs()
    );
    let replaced = wait_until(SETTLE, || {
        let all = scale.instances();
        all.len() == WORKLOADS * REPLICAS
            && all.iter().all(|i| {
                i.phase == Phase::Running && !frozen.contains(i.node.as_deref().unwrap_or_default())
            })
    });
    assert!(
        replaced,
        "the frozen nodes' instances were not all replaced\n{}",
        scale.logs()
    );
    let after = scale.all_running("after the loss");

    // No false loss: exactly the frozen nodes are lost, every other node is ready.
    for n in scale.nodes() {
        let want = if frozen.contains(&n.name) {
            NodeState::Lost
        } else {
            NodeState::Ready
        };
        assert_eq!(n.state, want, "node {}", n.name);
    }
    // No instance on a live node was restarted or moved.
    let now: BTreeMap<&str, &InstanceView> = after.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut kept = 0;
    for i in before
        .iter()
        .filter(|i| !frozen.contains(i.node.as_deref().unwrap_or_default()))
    {
        let still = now
            .get(i.id.as_str())
            .unwrap_or_else(|| panic!("instance {} on a live node is gone", i.id));
        assert_eq!(
            (&still.node, still.restarts, &still.started_at),
            (&i.node, i.restarts, &i.started_at),
            "instance {} on a live node was restarted or moved",
            i.id
        );
        kept += 1;
    }
    assert!(kept > 0);
}
