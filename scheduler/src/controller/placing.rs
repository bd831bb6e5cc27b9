//! Placement of pending instances with the cluster's filter and score pipeline.
//!
//! Each pass builds placement's view of the cluster from the ready nodes (capacity and measured
//! usage from their heartbeats) and the instances occupying them, then places the pending
//! instances, highest priority first. `depends_on` holds an instance back until every workload
//! it depends on has a ready instance, and is a placement *preference*: the instance is first
//! placed as if it had affinity to its dependencies' nodes, and anywhere else only when that
//! fails. Every node carries the implicit label `mini-sched/node=<name>`, which is how a
//! migration to a named node is expressed.

use super::lifecycle::run_request;
use super::{Action, Daemon};
use crate::api::{NodeVerdict, Phase};
use crate::cluster::{Cluster, InstanceId, NodeId};
use crate::model::{InstanceSpec, NodeSpec, Taint, TaintEffect, Topology, WorkloadTerm};
use crate::placement::Outcome;
use crate::resources::Resources;
use crate::state::State;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The implicit label naming each node.
pub const NODE_LABEL: &str = "mini-sched/node";

/// Processes a node offers when its agent does not say (the pids cgroup limit's scale).
pub const NODE_PIDS: u64 = 32_768;

/// Placement's view of the cluster, with the ids mapped back to names.
pub struct View {
    /// The placement cluster.
    pub cluster: Cluster,
    /// Node ids to names.
    pub nodes: HashMap<NodeId, String>,
    /// Names to node ids.
    pub node_ids: HashMap<String, NodeId>,
    /// Bound instance ids to instance names.
    pub instances: HashMap<InstanceId, String>,
}

fn effect(name: &str) -> TaintEffect {
    match name {
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        _ => TaintEffect::NoSchedule,
    }
}

/// True for phases that hold resources on their node.
pub fn occupies(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Starting | Phase::Running | Phase::BackOff | Phase::Stopping
    )
}

/// Builds placement's view from the ready nodes and the instances on them.
pub fn view(state: &State) -> View {
    let mut view = View {
        cluster: Cluster::new(),
        nodes: HashMap::new(),
        node_ids: HashMap::new(),
        instances: HashMap::new(),
    };
    for node in state.nodes.values().filter(|n| n.ready()) {
        let Some(status) = &node.live.status else {
            continue;
        };
        let capacity = Resources::new(
            u64::from(status.cpus) * 1000,
            status.memory_total_bytes,
            NODE_PIDS,
        );
        let mut labels: BTreeMap<String, String> = node.record.labels.clone();
        labels.insert(NODE_LABEL.into(), node.record.name.clone());
        let spec = NodeSpec {
            name: node.record.name.clone(),
            capacity,
            labels,
            taints: node
                .record
                .taints
                .iter()
                .map(|t| Taint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: effect(&t.effect),
                })
                .collect(),
            cordoned: node.record.cordoned,
        };
        let id = view.cluster.add_node(spec);
        let used_memory = status
            .memory_total_bytes
            .saturating_sub(status.memory_available_bytes);
        let used_cpu = (status.cpu_busy.clamp(0.0, 1.0) * capacity.cpu_millis as f64) as u64;
        view.cluster
            .set_usage(id, Resources::new(used_cpu, used_memory, 0));
        view.nodes.insert(id, node.record.name.clone());
        view.node_ids.insert(node.record.name.clone(), id);
    }
    for instance in state.instances.values() {
        let r = &instance.record;
        if !occupies(r.phase) {
            continue;
        }
        let Some(&node) = r.node.as_ref().and_then(|n| view.node_ids.get(n)) else {
            continue;
        };
        let Some(spec) = state.spec_of(&r.id) else {
            continue;
        };
        let spec = spec.instance_spec();
        // An instance too new to show in the node's measured usage counts with its requests,
        // so that a burst of placements does not herd onto the node that happened to be
        // sampled idlest (as load-aware schedulers add recently placed work to measurements).
        if !instance.live.usage.rated {
            add_usage(&mut view.cluster, node, spec.requests);
        }
        // A node that shrank may be overcommitted: its instances stay, unaccounted beyond
        // capacity, and nothing new fits there.
        if let Ok(bound) = view.cluster.bind(node, spec) {
            view.instances.insert(bound, r.id.clone());
        }
    }
    view
}

/// Adds `amount` to `node`'s measured usage in placement's view.
fn add_usage(cluster: &mut Cluster, node: NodeId, amount: Resources) {
    let usage = cluster.node(node).usage.saturating_add(&amount);
    cluster.set_usage(node, usage);
}

/// Why instance `id` may not be placed yet (a dependency without a ready instance).
fn waiting_for(state: &State, id: &str) -> Option<String> {
    let spec = state.spec_of(id)?;
    spec.depends_on
        .iter()
        .find(|dep| !state.instances_of(dep).any(|i| i.record.ready))
        .map(|dep| format!("waiting for {dep} to have a ready instance (depends_on)"))
}

/// The placement request of instance `id`: its spec, pinned to its target node if any.
fn instance_spec(state: &State, id: &str) -> Option<InstanceSpec> {
    let mut spec = state.spec_of(id)?.instance_spec();
    if let Some(target) = &state.instances[id].record.target_node {
        spec.node_selector.insert(NODE_LABEL.into(), target.clone());
    }
    Some(spec)
}

/// Places instance `id` in `view`; the node of the instance it replaces (a migration) is
/// avoided. Returns the outcome.
pub fn place_one(daemon: &Daemon, state: &State, view: &mut View, id: &str) -> Option<Outcome> {
    let spec = instance_spec(state, id)?;
    let avoid = state.instances[id]
        .record
        .replaces
        .as_ref()
        .and_then(|old| state.instances.get(old))
        .and_then(|old| old.record.node.as_ref())
        .and_then(|n| view.node_ids.get(n).copied());
    let was_cordoned = avoid.map(|n| view.cluster.node(n).spec.cordoned);
    if let Some(n) = avoid {
        view.cluster.set_cordoned(n, true);
    }
    let deps = &state.spec_of(id)?.depends_on;
    let mut outcome = None;
    if !deps.is_empty() {
        let mut preferred = spec.clone();
        preferred.affinity.extend(deps.iter().map(|d| WorkloadTerm {
            workload: d.clone(),
            topology: Topology::Node,
        }));
        match daemon.scheduler.place(&mut view.cluster, preferred) {
            Outcome::Unschedulable { .. } => {}
            placed => outcome = Some(placed),
        }
    }
    let outcome = outcome.unwrap_or_else(|| daemon.scheduler.place(&mut view.cluster, spec));
    if let (Some(n), Some(c)) = (avoid, was_cordoned) {
        view.cluster.set_cordoned(n, c);
    }
    Some(outcome)
}

/// Binds instance `id` to `node` and asks the node to run it.
pub fn assign(daemon: &Daemon, state: &mut State, id: &str, node: &str, actions: &mut Vec<Action>) {
    let addr = state.nodes[node].record.address;
    state.bind(id, node);
    let Some(instance) = state.instances.get_mut(id) else {
        return;
    };
    instance.live.in_flight = true;
    state.set_phase(id, Phase::Starting, Some(format!("scheduled on {node}")));
    state.event(
        format!("instance/{id}"),
        "Scheduled",
        format!("placed on {node}"),
    );
    daemon.count(|c| c.placements += 1);
    if super::lifecycle::awaits_image_digest(state, id) {
        // Started by `restarts_due` once the first instance of its revision resolved the tag.
        let instance = state.instances.get_mut(id).expect("placed instance exists");
        instance.live.in_flight = false;
        instance.live.not_before = Some(daemon.now() + std::time::Duration::from_millis(500));
        return;
    }
    if let Some(request) = run_request(state, id) {
        actions.push(Action::Run {
            id: id.to_string(),
            addr,
            request: Box::new(request),
            replace: false,
        });
    }
}

/// Places every pending instance it can, highest priority first.
pub fn place_pending(daemon: &Daemon, state: &mut State, now: Instant, actions: &mut Vec<Action>) {
    let mut pending: Vec<(i32, String)> = state
        .instances
        .values()
        .filter(|i| i.record.phase == Phase::Pending)
        .filter(|i| i.live.not_before.is_none_or(|t| t <= now))
        .filter_map(|i| {
            let priority = state.spec_of(&i.record.id)?.priority;
            Some((priority, i.record.id.clone()))
        })
        .collect();
    if pending.is_empty() {
        return;
    }
    pending.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut view = view(state);
    for (_, id) in pending {
        if let Some(why) = waiting_for(state, &id) {
            set_reason(state, &id, why);
            continue;
        }
        let (instance, node, victims) = match place_one(daemon, state, &mut view, &id) {
            Some(Outcome::Placed { instance, node }) => (instance, node, Vec::new()),
            Some(Outcome::Preempted {
                instance,
                node,
                victims,
            }) => (instance, node, victims),
            Some(Outcome::Unschedulable { why, .. }) => {
                set_reason(state, &id, why.to_string());
                continue;
            }
            None => continue,
        };
        let requests = view
            .cluster
            .instance(instance)
            .expect("placed")
            .spec
            .requests;
        add_usage(&mut view.cluster, node, requests);
        view.instances.insert(instance, id.clone());
        let node = view.nodes[&node].clone();
        for (victim, _) in victims {
            if let Some(victim) = view.instances.remove(&victim) {
                daemon.count(|c| c.preemptions += 1);
                super::lifecycle::request_stop(
                    state,
                    &victim,
                    format!("preempted by {id} (higher priority) on {node}"),
                );
                state.event(
                    format!("instance/{victim}"),
                    "Preempted",
                    format!("evicted from {node} for {id}"),
                );
            }
        }
        assign(daemon, state, &id, &node, actions);
    }
}

fn set_reason(state: &mut State, id: &str, why: String) {
    let instance = state
        .instances
        .get_mut(id)
        .expect("pending instance exists");
    if instance.record.reason.as_deref() != Some(why.as_str()) {
        instance.record.reason = Some(why.clone());
        state.save_instance(id);
        state.event(format!("instance/{id}"), "Pending", why);
    }
}

/// Placement's verdict on every ready node for instance `id` (for `describe` of a pending one).
pub fn verdicts(daemon: &Daemon, state: &State, id: &str) -> Vec<NodeVerdict> {
    let Some(spec) = instance_spec(state, id) else {
        return Vec::new();
    };
    let mut view = view(state);
    let mut verdicts: Vec<NodeVerdict> = daemon
        .scheduler
        .verdicts(&mut view.cluster, &spec)
        .into_iter()
        .map(|(node, rejected)| NodeVerdict {
            node: view.nodes[&node].clone(),
            verdict: rejected.unwrap_or("fits").to_string(),
        })
        .collect();
    verdicts.sort_by(|a, b| a.node.cmp(&b.node));
    verdicts
}
