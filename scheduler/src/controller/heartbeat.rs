//! Heartbeats: nodes are polled for their capacity, usage and containers; a node silent for
//! the node timeout is lost and its instances are replaced elsewhere; when it answers again,
//! every container on it that no live instance assigned to it owns is stopped and removed
//! (fencing), so a returning node never adds a duplicate.

use super::{lifecycle, Action, Daemon};
use crate::agents::CallError;
use crate::api::Phase;
use crate::state::{Node, State};
use mini_shim::protocol::{ContainerInfo, NodeStatus, Status};
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

/// The label carrying the instance id on the agent's containers.
pub const INSTANCE_LABEL: &str = "mini-sched/instance";
/// The label carrying the workload name.
pub const WORKLOAD_LABEL: &str = "mini-sched/workload";
/// The label carrying the revision.
pub const REVISION_LABEL: &str = "mini-sched/revision";

/// Polls every node whose heartbeat is due.
pub fn due(daemon: &Daemon, state: &mut State, now: Instant, actions: &mut Vec<Action>) {
    give_subnets(daemon, state);
    let mut polls = Vec::new();
    for (name, node) in &mut state.nodes {
        let interval = poll_interval(daemon.settings.heartbeat_interval, node);
        let due = node
            .live
            .last_poll
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        if due && !node.live.polling {
            node.live.polling = true;
            node.live.last_poll = Some(now);
            if node.record.lost {
                node.live.lost_polls = node.live.lost_polls.saturating_add(1);
            }
            polls.push((name.clone(), node.record.address));
        }
    }
    for (node, addr) in polls {
        let network = daemon.settings.network.for_node(state, &node).map(Box::new);
        actions.push(Action::Poll {
            node,
            addr,
            network,
        });
    }
}

/// The longest wait between two polls of a lost node.
pub const LOST_POLL_MAX: Duration = Duration::from_secs(30);

/// How often `node` is polled: every `interval` while it is not lost; a lost node's polls
/// back off, doubling from `interval` up to [`LOST_POLL_MAX`] (a node gone for good costs
/// one failed call per half minute, not one a second forever; one that returns is heard
/// within that).
pub fn poll_interval(interval: Duration, node: &Node) -> Duration {
    if !node.record.lost {
        return interval;
    }
    let doubled = interval.saturating_mul(1u32 << node.live.lost_polls.min(16));
    doubled.min(LOST_POLL_MAX.max(interval))
}

/// Gives a subnet to every node without one (a node of a cluster made before the network
/// existed; joins get theirs at once): the first free one, while any is left.
fn give_subnets(daemon: &Daemon, state: &mut State) {
    let without: Vec<String> = state
        .nodes
        .values()
        .filter(|n| n.record.subnet.is_none())
        .map(|n| n.record.name.clone())
        .collect();
    for name in without {
        let Ok(subnet) = daemon.settings.network.allocate(state) else {
            return; // exhausted: reported when a node joins
        };
        if let Some(node) = state.nodes.get_mut(&name) {
            node.record.subnet = Some(subnet.to_string());
        }
        state.save_node(&name);
    }
}

/// Declares nodes lost that have been silent for the node timeout (counted from the daemon's
/// start for nodes not heard from since), and their instances with them.
pub fn detect_lost(daemon: &Daemon, state: &mut State, now: Instant) {
    let timeout = daemon.settings.node_timeout;
    let lost: Vec<String> = state
        .nodes
        .values()
        .filter(|n| !n.record.lost)
        .filter(|n| {
            let heard = n
                .live
                .last_heartbeat
                .max(daemon.heard(&n.record.name))
                .or(n.live.joined);
            now.saturating_duration_since(heard.unwrap_or(daemon.started)) > timeout
        })
        .map(|n| n.record.name.clone())
        .collect();
    for name in lost {
        if let Some(node) = state.nodes.get_mut(&name) {
            node.record.lost = true;
        }
        state.save_node(&name);
        state.event(
            format!("node/{name}"),
            "NodeLost",
            format!("no heartbeat for {timeout:?}: its instances are replaced elsewhere"),
        );
        daemon.count(|c| c.nodes_lost += 1);
        lose_instances(daemon, state, &name, &format!("node {name} lost"));
    }
}

/// Marks every instance on node `name` lost, for the replica controller to replace.
fn lose_instances(daemon: &Daemon, state: &mut State, name: &str, reason: &str) {
    let on_node: Vec<String> = state
        .instances_on(name)
        .filter(|i| !i.record.phase.is_final())
        .map(|i| i.record.id.clone())
        .collect();
    for id in on_node {
        daemon.count(|c| c.instances_lost += 1);
        if let Some(instance) = state.instances.get_mut(&id) {
            instance.live.in_flight = false;
        }
        state.set_phase(&id, Phase::Lost, Some(reason.to_string()));
    }
}

/// `mini-sched delete node`: forgets node `name` (its address and certificate with it, so a
/// join in its name is a new join that needs a token) and replaces its instances elsewhere,
/// as for a lost node. Returns false when there is no such node.
pub fn delete_node(daemon: &Daemon, state: &mut State, name: &str) -> bool {
    if state.nodes.remove(name).is_none() {
        return false;
    }
    daemon.forget(name);
    state.save_node(name);
    state.event(
        format!("node/{name}"),
        "NodeDeleted",
        "deleted by request: its instances are replaced elsewhere".into(),
    );
    lose_instances(daemon, state, name, &format!("node {name} deleted"));
    true
}

/// Records whether node `name` applied its cluster network: a new failure (or the recovery
/// from one) becomes an event, a repeated one does not.
pub fn network_outcome(state: &mut State, name: &str, outcome: Result<(), String>) {
    let Some(node) = state.nodes.get_mut(name) else {
        return;
    };
    let error = outcome.err();
    if node.live.network_error == error {
        return;
    }
    node.live.network_error = error.clone();
    let (reason, message) = match error {
        Some(e) => ("NetworkFailed", format!("the cluster network: {e}")),
        None => ("NetworkReady", "the cluster network is applied".to_string()),
    };
    state.event(format!("node/{name}"), reason, message);
}

/// When a heartbeat call was made and when its answer arrived.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// When the call began: what its container list says may predate anything done since.
    pub began: Instant,
    /// When its answer arrived: the node was alive then, however long the answer then
    /// waited for the state.
    pub arrived: Instant,
}

/// Records a heartbeat's outcome; returns the removals of stale containers it calls for.
pub fn record(
    daemon: &Daemon,
    state: &mut State,
    name: &str,
    timing: Timing,
    result: Result<(NodeStatus, Vec<ContainerInfo>), CallError>,
) -> Vec<Action> {
    let Some(node) = state.nodes.get_mut(name) else {
        return Vec::new();
    };
    node.live.polling = false;
    let Ok((status, containers)) = result else {
        return Vec::new();
    };
    node.live.last_heartbeat = Some(timing.arrived);
    node.live.lost_polls = 0;
    node.live.last_heartbeat_at = Some(SystemTime::now());
    node.live.status = Some(status);
    if node.record.lost {
        node.record.lost = false;
        state.save_node(name);
        state.event(
            format!("node/{name}"),
            "NodeReturned",
            "heartbeats again: stale copies of its instances are stopped".into(),
        );
    }
    follow(daemon, state, name, timing, &containers)
}

/// Compares the node's containers with the instances assigned to it.
fn follow(
    daemon: &Daemon,
    state: &mut State,
    node: &str,
    timing: Timing,
    containers: &[ContainerInfo],
) -> Vec<Action> {
    let Timing { began, arrived } = timing;
    let addr = state.nodes[node].record.address;
    let mut actions = Vec::new();
    let mut seen = HashSet::new();
    for container in containers {
        let Some(id) = container.labels.get(INSTANCE_LABEL) else {
            continue;
        };
        seen.insert(id.clone());
        let stale = match state.instances.get(id) {
            None => true,
            Some(i) => {
                i.record.node.as_deref() != Some(node)
                    || matches!(i.record.phase, Phase::Lost | Phase::Replaced)
                    || (i.record.phase == Phase::Stopped && container.status == Status::Running)
            }
        };
        if stale {
            if state
                .removing
                .insert((node.to_string(), container.id.clone()))
            {
                actions.push(Action::Remove {
                    node: node.to_string(),
                    addr,
                    container: container.id.clone(),
                });
            }
            continue;
        }
        let Some(instance) = state.instances.get_mut(id) else {
            continue;
        };
        if instance.live.in_flight || instance.live.start_issued.is_some_and(|t| began <= t) {
            // A call about it is under way, or the list began before its current start was
            // asked for: what it says is about the process before (an `Exited` seen just
            // before a restart finished would otherwise send the new process to back-off).
            continue;
        }
        if container.status != Status::Unknown {
            instance.live.unknown_since = None;
        }
        if instance.live.address != container.address {
            instance.live.address = container.address.clone();
        }
        if let Some(stats) = &container.stats {
            instance
                .live
                .usage
                .sample(stats.cpu_usage_ns, stats.memory_working_set_bytes, arrived);
        }
        let instance = &state.instances[id];
        match (instance.record.phase, container.status) {
            (Phase::Starting, Status::Running) => {
                lifecycle::started(state, id, container.started_at.clone(), arrived);
            }
            (Phase::Running, Status::Running) if instance.live.started.is_none() => {
                // Known from before a restart of the daemon: probes count from now.
                state.instances.get_mut(id).expect("looked up").live.started = Some(arrived);
            }
            (Phase::Running | Phase::Starting, Status::Exited) => {
                lifecycle::exited(daemon, state, id, container.exit.as_ref(), "exited");
            }
            (Phase::Running, Status::Unknown) => {
                // Its node cannot read its state: a hung monitor or a transient failure says
                // nothing about the process, so it is restarted only when its state stays
                // unknown for a node timeout (its monitor gone for good).
                let since = instance.live.unknown_since.unwrap_or(arrived);
                state
                    .instances
                    .get_mut(id)
                    .expect("looked up")
                    .live
                    .unknown_since = Some(since);
                if arrived.saturating_duration_since(since) >= daemon.settings.node_timeout {
                    let why = container
                        .reason
                        .clone()
                        .unwrap_or_else(|| "its monitor is gone".into());
                    let what = format!(
                        "state unknown for {:?}: {why}",
                        daemon.settings.node_timeout
                    );
                    lifecycle::exited(daemon, state, id, None, &what);
                }
            }
            _ => {}
        }
    }
    let vanished: Vec<String> = state
        .instances_on(node)
        .filter(|i| i.record.phase == Phase::Running && !i.live.in_flight)
        .filter(|i| !seen.contains(&i.record.id))
        .filter(|i| i.live.started.is_none_or(|s| s < began))
        .map(|i| i.record.id.clone())
        .collect();
    for id in vanished {
        lifecycle::exited(
            daemon,
            state,
            &id,
            None,
            "its container vanished from the node",
        );
    }
    actions
}
