//! Preemption: when no node fits, find the node where evicting the fewest, lowest-priority
//! instances, all of strictly lower priority than the newcomer, makes room for it.
//!
//! Per node: every lower-priority instance is a possible victim; starting from the most important
//! of them, each is spared if the room still suffices without evicting it. Nodes are compared by
//! the highest priority evicted, then the number of victims, then the sum of their priorities.
//! Only capacity is made by eviction: nodes that fail any other filter are not considered, and
//! instances of workloads the newcomer's affinity or spread counts on are never victims.

use crate::cluster::{Cluster, InstanceId, NodeId};
use crate::placement::cycle::Cycle;
use crate::placement::Scheduler;
use crate::resources::Resources;

/// Where to place the newcomer and whom to evict.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The node that gets the newcomer.
    pub node: NodeId,
    /// The instances to evict first.
    pub victims: Vec<InstanceId>,
}

/// The cost of a plan, smaller is better.
type Cost = (i64, usize, i64, NodeId);

/// The cheapest preemption plan for `cycle`'s instance, if any node can be freed up enough.
pub(crate) fn plan(scheduler: &Scheduler, cluster: &Cluster, cycle: &Cycle) -> Option<Plan> {
    if cluster
        .lowest_priority()
        .is_none_or(|lowest| lowest >= cycle.priority)
    {
        return None;
    }
    let mut best: Option<(Cost, Plan)> = None;
    for n in 0..cluster.nodes.len() {
        let node = NodeId(n as u32);
        if !scheduler
            .fixed_filters()
            .all(|f| f.admits(cluster, cycle, node))
        {
            continue;
        }
        let Some(victims) = victims_on(cluster, cycle, node) else {
            continue;
        };
        let cost: Cost = (
            victims
                .iter()
                .map(|&(_, p)| i64::from(p))
                .max()
                .unwrap_or(i64::MIN),
            victims.len(),
            victims.iter().map(|&(_, p)| i64::from(p)).sum(),
            node,
        );
        if best.as_ref().is_none_or(|(top, _)| cost < *top) {
            let victims = victims.into_iter().map(|(id, _)| id).collect();
            best = Some((cost, Plan { node, victims }));
        }
    }
    best.map(|(_, plan)| plan)
}

/// The fewest, least important instances on `node` whose eviction lets the instance fit, with
/// their priorities; `None` when even evicting every candidate does not make room.
fn victims_on(cluster: &Cluster, cycle: &Cycle, node: NodeId) -> Option<Vec<(InstanceId, i32)>> {
    let n = cluster.node(node);
    let evictable = |id: &InstanceId| {
        let placed = cluster.instance(*id).expect("listed instance is placed");
        (placed.spec.priority < cycle.priority && !cycle.depends_on(placed.workload))
            .then_some(placed)
    };
    // Most nodes cannot be freed up enough: find out before building the candidate list.
    let room = n
        .instances
        .iter()
        .filter_map(evictable)
        .fold(n.free(), |room, placed| room + placed.spec.requests);
    if !cycle.requests.fits_within(&room) {
        return None;
    }
    let mut candidates: Vec<(InstanceId, i32, Resources)> = n
        .instances
        .iter()
        .filter_map(|id| evictable(id).map(|p| (*id, p.spec.priority, p.spec.requests)))
        .collect();
    let mut room = room;
    // Spare the most important first; among equals, the smallest (so the large go).
    candidates.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(a.2.cpu_millis.cmp(&b.2.cpu_millis))
            .then(a.2.memory_bytes.cmp(&b.2.memory_bytes))
            .then(a.0.cmp(&b.0))
    });
    let mut victims = Vec::new();
    for (id, priority, requests) in candidates {
        let without = room.saturating_sub(&requests);
        if cycle.requests.fits_within(&without) {
            room = without;
        } else {
            victims.push((id, priority));
        }
    }
    Some(victims)
}
