//! The controllers driven through `tick` with in-memory agents and a hand-moved clock
//! ([`super::fake`]): placing and replicas, heartbeats and node loss, restarts, migration, and
//! the races of issue 16 replayed in their worst order.

use super::fake::{FakeAgents, FakeClock};
use super::tests::Scratch;
use super::{Action, Daemon, Settings};
use crate::agents::Agents;
use crate::api::Phase;
use crate::model::Policy;
use crate::state::{Node, NodeLive, NodeRecord, State};
use crate::store::Store;
use mini_shim::protocol::Status;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(5);

/// Half of a fake node's 4 cpus per instance: placement spreads them over the nodes.
const SPREAD: &str = "name: web\nsource: {rootfs: /srv/r}\nresources: {requests: {cpu: 2}}\n";

struct Harness {
    daemon: Arc<Daemon>,
    agents: Arc<FakeAgents>,
    clock: Arc<FakeClock>,
    _scratch: Scratch,
}

fn addr(node: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + node as u16))
}

/// A daemon over `nodes` fake nodes `n0`, `n1`, ..., each heard from just now.
fn harness(nodes: usize) -> Harness {
    let scratch = Scratch::new();
    let store = Store::open(&scratch.path().join("state.redb")).unwrap();
    let settings = Settings {
        network: crate::network::Settings::default(),
        heartbeat_interval: INTERVAL,
        node_timeout: TIMEOUT,
        policy: Policy::LeastAllocated,
        rebalance_interval: Duration::ZERO,
        rebalance_threshold: 0.25,
        rebalance_cooldown: Duration::MAX,
    };
    let addrs: Vec<SocketAddr> = (0..nodes).map(addr).collect();
    let agents = FakeAgents::new(&addrs);
    let clock = FakeClock::new();
    let daemon = Daemon::new(
        State::default(),
        store,
        Agents::without_credentials(),
        settings,
    )
    .with_fakes(agents.clone(), clock.clone());
    let daemon = Arc::new(daemon);
    let now = daemon.now();
    daemon.with(|s| {
        for (i, address) in addrs.iter().enumerate() {
            let name = format!("n{i}");
            let record = NodeRecord::new(&name, *address);
            let live = NodeLive {
                joined: Some(now),
                ..NodeLive::default()
            };
            s.nodes.insert(name, Node { record, live });
        }
    });
    Harness {
        daemon,
        agents,
        clock,
        _scratch: scratch,
    }
}

impl Harness {
    /// One pass at the clock's now, each call made and recorded before the next.
    async fn pass(&self) {
        let actions = self.daemon.with(|s| self.daemon.tick(s, self.daemon.now()));
        for action in actions {
            self.daemon.clone().perform(action).await;
        }
        // Removals a heartbeat asked for run in tasks of their own.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    /// Passes a second apart for `seconds`.
    async fn run_for(&self, seconds: u64) {
        for _ in 0..seconds {
            self.clock.advance(INTERVAL);
            self.pass().await;
        }
    }

    async fn apply(&self, text: &str) {
        crate::server::workloads::apply(&self.daemon, text.to_string(), false)
            .await
            .expect("applied");
    }

    /// (id, phase, node) of every instance.
    fn instances(&self) -> Vec<(String, Phase, Option<String>)> {
        self.daemon.read(|s| {
            s.instances
                .values()
                .map(|i| (i.record.id.clone(), i.record.phase, i.record.node.clone()))
                .collect()
        })
    }

    fn running(&self) -> Vec<(String, String)> {
        self.instances()
            .into_iter()
            .filter(|(_, p, _)| *p == Phase::Running)
            .map(|(id, _, node)| (id, node.unwrap_or_default()))
            .collect()
    }

    fn phase(&self, id: &str) -> Phase {
        self.daemon.read(|s| s.instances[id].record.phase)
    }
}

fn node_addr(name: &str) -> SocketAddr {
    addr(name.trim_start_matches('n').parse().unwrap())
}

#[tokio::test]
async fn replicas_are_placed_started_spread_and_scaled_down() {
    let h = harness(3);
    h.pass().await; // the first heartbeats: the nodes are ready
    h.apply(&format!("{SPREAD}replicas: 3\n")).await;
    h.run_for(2).await;
    let running = h.running();
    assert_eq!(running.len(), 3, "{:?}", h.instances());
    let mut nodes: Vec<&String> = running.iter().map(|(_, n)| n).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "not spread: {running:?}");
    crate::server::workloads::scale(&h.daemon, "web", 1).unwrap();
    h.run_for(2).await;
    assert_eq!(h.running().len(), 1, "{:?}", h.instances());
    let left: usize = (0..3).map(|i| h.agents.containers_on(addr(i)).len()).sum();
    assert_eq!(left, 1, "the stopped instances' containers are removed");
}

#[tokio::test]
async fn an_exit_is_restarted_after_its_back_off() {
    let h = harness(1);
    h.pass().await;
    h.apply("name: web\nsource: {rootfs: /srv/r}\n").await;
    h.run_for(1).await;
    let (id, node) = h.running().pop().expect("running");
    h.agents.exit(node_addr(&node), &id, 3);
    h.run_for(1).await;
    assert_eq!(h.phase(&id), Phase::BackOff);
    h.run_for(2).await;
    assert_eq!(h.phase(&id), Phase::Running);
    assert_eq!(h.daemon.read(|s| s.instances[&id].record.restarts), 1);
    assert_eq!(h.agents.count("run", &id), 2);
}

/// Race: a heartbeat's container list is taken while the old process is exited, the restart
/// finishes, and only then does the list arrive. The new process must stay running.
#[tokio::test]
async fn a_list_taken_before_a_restart_finished_does_not_stop_the_new_process() {
    let h = harness(1);
    h.pass().await;
    h.apply("name: web\nsource: {rootfs: /srv/r}\n").await;
    h.run_for(1).await;
    let (id, node) = h.running().pop().expect("running");
    let at = node_addr(&node);
    h.agents.exit(at, &id, 3);
    h.run_for(1).await;
    assert_eq!(h.phase(&id), Phase::BackOff);
    // The back-off is over and a heartbeat is due in the same pass; the node holds its list.
    h.clock.advance(Duration::from_secs(2));
    h.agents.hold_lists(at);
    let actions = h.daemon.with(|s| h.daemon.tick(s, h.daemon.now()));
    let (polls, others): (Vec<Action>, Vec<Action>) = actions
        .into_iter()
        .partition(|a| matches!(a, Action::Poll { .. }));
    assert_eq!(polls.len(), 1);
    let poll = tokio::spawn(h.daemon.clone().perform(polls.into_iter().next().unwrap()));
    for _ in 0..8 {
        tokio::task::yield_now().await; // the list is taken: the old process, exited
    }
    for action in others {
        h.daemon.clone().perform(action).await; // the restart
    }
    assert_eq!(h.phase(&id), Phase::Running);
    h.agents.release(at);
    poll.await.unwrap();
    assert_eq!(
        h.phase(&id),
        Phase::Running,
        "the stale exit sent it to back-off"
    );
    // Later heartbeats see it running.
    h.run_for(3).await;
    assert_eq!(h.phase(&id), Phase::Running);
    assert_eq!(h.agents.count("run", &id), 2);
}

/// Node loss: a silent node's instance is replaced on a live one within the timeout, no
/// instance on a live node is restarted, and the old copy is removed when the node returns.
#[tokio::test]
async fn a_silent_nodes_instances_are_replaced_and_fenced_when_it_returns() {
    let h = harness(2);
    h.pass().await;
    h.apply(&format!("{SPREAD}replicas: 2\n")).await;
    h.run_for(2).await;
    let before = h.running();
    assert_eq!(before.len(), 2, "{:?}", h.instances());
    let (lost_id, lost_node) = before.iter().find(|(_, n)| n == "n0").cloned().unwrap();
    let (kept_id, _) = before.iter().find(|(_, n)| n == "n1").cloned().unwrap();
    h.agents.set_silent(addr(0), true);
    h.run_for(TIMEOUT.as_secs() + 2).await;
    assert!(h.daemon.read(|s| s.nodes["n0"].record.lost));
    assert_ne!(h.phase(&lost_id), Phase::Running);
    let after = h.running();
    assert_eq!(after.len(), 2, "{:?}", h.instances());
    assert!(after.iter().all(|(_, n)| n == "n1"), "{after:?}");
    assert_eq!(
        h.agents.count("run", &kept_id),
        1,
        "a live node's instance restarted"
    );
    assert_eq!(h.phase(&kept_id), Phase::Running);
    // It returns (within the lost node's back-off): its stale copy is removed.
    h.agents.set_silent(addr(0), false);
    h.run_for(40).await;
    assert!(!h.daemon.read(|s| s.nodes[&lost_node].record.lost));
    assert!(h.agents.containers_on(addr(0)).is_empty(), "not fenced");
    assert_eq!(h.running().len(), 2);
}

#[tokio::test]
async fn a_migration_starts_the_copy_before_it_stops_the_original() {
    let h = harness(2);
    h.pass().await;
    h.apply("name: web\nsource: {rootfs: /srv/r}\n").await;
    h.run_for(1).await;
    let (id, node) = h.running().pop().expect("running");
    let target = if node == "n0" { "n1" } else { "n0" };
    let actions = h.daemon.with(|s| {
        let mut actions = Vec::new();
        super::migration::migrate(&h.daemon, s, &id, Some(target), &mut actions).unwrap();
        actions
    });
    for action in actions {
        h.daemon.clone().perform(action).await;
    }
    h.run_for(3).await;
    let running = h.running();
    assert_eq!(running.len(), 1, "{:?}", h.instances());
    assert_eq!(running[0].1, target);
    assert_ne!(running[0].0, id);
    assert!(h.agents.containers_on(node_addr(&node)).is_empty());
    assert_eq!(
        h.agents.containers_on(node_addr(target)),
        [(running[0].0.clone(), Status::Running)]
    );
}
