//! Preemption: when no node fits, find the node where evicting the fewest, lowest-priority
//! instances, all of strictly lower priority than the newcomer, makes room for it.
//!
//! Per node: every lower-priority instance is a possible victim; starting from the most important
//! of them, each is spared if the room still suffices without evicting it. Nodes are compared by
//! the highest priority evicted, then the number of victims, then the sum of their priorities.
//! The cluster keeps, per priority, indexes of nodes by the room evicting that priority and
//! lower would make (all of it, or a single instance), so a preemption looks only at nodes that
//! can be freed up enough.
//! Only capacity is made by eviction: nodes that fail any other filter are not considered, and
//! instances of workloads the newcomer's affinity or spread counts on are never victims.

use std::ops::ControlFlow;

use crate::cluster::{Cluster, InstanceId, NodeId};
use crate::placement::cycle::Cycle;
use crate::placement::index::Order;
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
///
/// The priorities below the newcomer's are tried lowest first, each through its room indexes
/// (nodes by the room evicting that priority and lower would make, least room first): the first
/// priority under which some node can be freed up is the lowest highest-victim priority there
/// is. Under it, a plan with a single victim is the cheapest there is, so the nodes where one
/// eviction may be enough are tried first; failing that, the cheapest of the first `sample`
/// plans found among the nodes evicting everything frees up wins.
pub(crate) fn plan(scheduler: &Scheduler, cluster: &Cluster, cycle: &Cycle) -> Option<Plan> {
    let scarce = cluster.scarce();
    for (&level, rooms) in cluster.rooms.range(..cycle.priority) {
        // The indexes hand out nodes that may be freed up evicting up to `level`; a plan for
        // one of them may still need higher priorities, and waits for their turn.
        let within = |cost: &Cost| cost.0 <= i64::from(level);
        let mut single = None;
        let mut examined = 0;
        rooms
            .one
            .candidates(&cycle.requests, Order::Tight, scarce, |node| {
                examined += 1;
                match plan_on(scheduler, cluster, cycle, node) {
                    Some((cost, plan)) if plan.victims.len() == 1 && within(&cost) => {
                        single = Some(plan);
                        ControlFlow::Break(())
                    }
                    _ if examined >= scheduler.examine_limit => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                }
            });
        if single.is_some() {
            return single;
        }
        let mut best: Option<(Cost, Plan)> = None;
        let (mut found, mut examined) = (0, 0);
        rooms
            .all
            .candidates(&cycle.requests, Order::Tight, scarce, |node| {
                examined += 1;
                let plan =
                    plan_on(scheduler, cluster, cycle, node).filter(|(cost, _)| within(cost));
                if let Some((cost, plan)) = plan {
                    found += 1;
                    if best.as_ref().is_none_or(|(top, _)| cost < *top) {
                        best = Some((cost, plan));
                    }
                }
                if found >= scheduler.sample || (found > 0 && examined >= scheduler.examine_limit) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
        if let Some((_, plan)) = best {
            return Some(plan);
        }
    }
    None
}

/// The plan freeing up `node`, with its cost, if the node passes the filters eviction cannot
/// change and evicting lower priorities makes enough room.
fn plan_on(
    scheduler: &Scheduler,
    cluster: &Cluster,
    cycle: &Cycle,
    node: NodeId,
) -> Option<(Cost, Plan)> {
    if !scheduler
        .fixed_filters()
        .all(|f| f.admits(cluster, cycle, node))
    {
        return None;
    }
    let victims = victims_on(cluster, cycle, node)?;
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
    let victims = victims.into_iter().map(|(id, _)| id).collect();
    Some((cost, Plan { node, victims }))
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
