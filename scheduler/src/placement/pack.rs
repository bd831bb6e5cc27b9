//! Packing a batch node by node: with the [`MostAllocated`](crate::model::Policy::MostAllocated)
//! policy, a batch is placed bin-centric rather than instance by instance. Nodes are taken in the
//! index's packing order (used nodes with the least room first, then empty nodes largest first
//! in the resource the cluster and the batch together are short of), and each node is filled
//! with the pending instances that best match its remaining room, until none fits; then the
//! next node. The match is the dot product of the instance's requests and the node's room
//! (capacity less the larger of requests and measured usage, so a node busy in fact draws
//! smaller instances), both as fractions of the node's capacity (the "DotProduct" heuristic of Panigrahy et al.,
//! *Heuristics for Vector Bin Packing*, 2011): a node short of memory takes cpu-heavy
//! instances, a node with memory to spare takes the memory-heavy ones, so neither resource is
//! stranded by the other running out. Placing the largest items first, one at a time, instead
//! lets the first nodes opened take whatever comes, and the last nodes get what is left.
//!
//! Instances sharing a spec (the replicas of a workload) form one group, prepared once; groups
//! sit in a grid by request size, so finding the best fit for a node looks only at the cells
//! that fit it, best bound first. Instances no node takes this way go through
//! [`Scheduler::place`] one by one, which may preempt or explain.

use std::collections::HashMap;

use crate::cluster::{Cluster, NodeId};
use crate::model::InstanceSpec;
use crate::placement::cycle::Cycle;
use crate::placement::index::{cell, Order, SIDE};
use crate::placement::{Outcome, Scheduler};
use crate::resources::Resources;

/// Instances with the same spec, placed interchangeably.
struct Group {
    spec: InstanceSpec,
    cycle: Cycle,
    /// Batch positions of the instances not placed yet.
    pending: Vec<usize>,
    /// The last node (index + 1) a filter rejected the group on. What a filter rejects mostly
    /// stays rejected while that node fills up (its room only shrinks, its workloads only
    /// grow), so each group is checked once per node; an affinity that the filling meets
    /// waits for a later node.
    rejected_on: u32,
}

/// The groups with pending instances, by request size.
struct Shelf {
    cells: Vec<Vec<usize>>,
    /// Per cell, the largest cpu and memory requested by a group ever in it.
    largest: Vec<(f64, f64)>,
    /// Bit `j` of `rows[i]` is set when cell (i, j) holds a group.
    rows: [u64; SIDE],
}

impl Shelf {
    fn new(groups: &[Group]) -> Self {
        let mut shelf = Shelf {
            cells: vec![Vec::new(); SIDE * SIDE],
            largest: vec![(0.0, 0.0); SIDE * SIDE],
            rows: [0; SIDE],
        };
        for (g, group) in groups.iter().enumerate() {
            let (i, j) = cell(&group.spec.requests);
            let c = i * SIDE + j;
            shelf.cells[c].push(g);
            let r = group.spec.requests;
            let largest = &mut shelf.largest[c];
            largest.0 = largest.0.max(r.cpu_millis as f64);
            largest.1 = largest.1.max(r.memory_bytes as f64);
            shelf.rows[i] |= 1 << j;
        }
        shelf
    }

    fn remove(&mut self, g: usize, requests: &Resources) {
        let (i, j) = cell(requests);
        let c = i * SIDE + j;
        self.cells[c].retain(|&x| x != g);
        if self.cells[c].is_empty() {
            self.rows[i] &= !(1 << j);
        }
    }

    /// The group whose instance best matches `node`'s room and passes every filter.
    fn best(
        &self,
        scheduler: &Scheduler,
        cluster: &Cluster,
        groups: &mut [Group],
        node: NodeId,
        bounds: &mut Vec<(f64, usize)>,
    ) -> Option<usize> {
        let n = cluster.node(node);
        let free = n.free();
        let capacity = n.spec.capacity;
        // Room as the node has it in fact: measured usage above the requests counts as taken.
        let room = capacity.saturating_sub(&n.allocated.max(&n.usage));
        let weight = |amount: u64, capacity: u64| {
            if capacity == 0 {
                0.0
            } else {
                amount as f64 / (capacity as f64 * capacity as f64)
            }
        };
        let (a, b) = (
            weight(room.cpu_millis, capacity.cpu_millis),
            weight(room.memory_bytes, capacity.memory_bytes),
        );
        let (ci, mj) = cell(&free);
        bounds.clear();
        for i in 0..=ci {
            let mut row = self.rows[i] & (u64::MAX >> (63 - mj));
            while row != 0 {
                let j = row.trailing_zeros() as usize;
                row &= row - 1;
                let c = i * SIDE + j;
                let (cpu, memory) = self.largest[c];
                bounds.push((a * cpu + b * memory, c));
            }
        }
        bounds.sort_unstable_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let mut best: Option<(f64, usize)> = None;
        for &(bound, c) in bounds.iter() {
            if best.is_some_and(|(top, _)| bound < top) {
                break;
            }
            for &g in &self.cells[c] {
                let requests = groups[g].spec.requests;
                if !requests.fits_within(&free) {
                    continue;
                }
                let score = a * requests.cpu_millis as f64 + b * requests.memory_bytes as f64;
                if best.is_some_and(|(top, at)| score < top || (score == top && g > at)) {
                    continue;
                }
                let group = &mut groups[g];
                if group.rejected_on == node.0 + 1 {
                    continue;
                }
                group.cycle.refresh(cluster);
                if scheduler.admits(cluster, &group.cycle, node) {
                    best = Some((score, g));
                } else {
                    group.rejected_on = node.0 + 1;
                }
            }
        }
        best.map(|(_, g)| g)
    }
}

/// Places `batch` (positions and specs, all of one priority) node by node, reporting each
/// outcome with the instance's position.
pub(crate) fn pack(
    scheduler: &Scheduler,
    cluster: &mut Cluster,
    batch: Vec<(usize, InstanceSpec)>,
    each: &mut impl FnMut(usize, Outcome),
) {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<(String, Resources), Vec<usize>> = HashMap::new();
    let mut demand = Resources::ZERO;
    let mut smallest: Option<Resources> = None;
    for (position, spec) in batch {
        demand += spec.requests;
        smallest = Some(smallest.map_or(spec.requests, |s| s.min(&spec.requests)));
        // Replicas of a workload are mostly next to each other in the batch's order.
        if let Some(last) = groups.last_mut().filter(|g| g.spec == spec) {
            last.pending.push(position);
            continue;
        }
        let same = by_key
            .entry((spec.workload.clone(), spec.requests))
            .or_default();
        if let Some(&g) = same.iter().find(|&&g| groups[g].spec == spec) {
            groups[g].pending.push(position);
            continue;
        }
        same.push(groups.len());
        let cycle = Cycle::prepare(cluster, &spec);
        groups.push(Group {
            spec,
            cycle,
            pending: vec![position],
            rejected_on: 0,
        });
    }
    let Some(smallest) = smallest else { return };
    for group in &mut groups {
        // Replicas go in batch order.
        group.pending.reverse();
    }
    let mut shelf = Shelf::new(&groups);
    let mut nodes = Vec::new();
    cluster.free_index.candidates(
        &smallest,
        Order::Tight,
        cluster.scarce_with(&demand),
        |node| {
            nodes.push(node);
            std::ops::ControlFlow::Continue(())
        },
    );
    let mut bounds = Vec::new();
    let mut left: usize = groups.iter().map(|g| g.pending.len()).sum();
    for node in nodes {
        if left == 0 {
            break;
        }
        while let Some(g) = shelf.best(scheduler, cluster, &mut groups, node, &mut bounds) {
            let group = &mut groups[g];
            let position = group.pending.pop().expect("shelved groups have instances");
            if group.pending.is_empty() {
                shelf.remove(g, &group.spec.requests);
            }
            let instance = cluster
                .bind(node, group.spec.clone())
                .expect("the node admits the instance");
            left -= 1;
            each(position, Outcome::Placed { instance, node });
        }
    }
    for group in groups {
        let mut pending = group.pending.into_iter().rev();
        while let Some(position) = pending.next() {
            let outcome = scheduler.place(cluster, group.spec.clone());
            if let Outcome::Unschedulable { why, .. } = &outcome {
                // The replicas left are the same instance facing the same cluster.
                let why = why.clone();
                each(position, outcome);
                for position in pending.by_ref() {
                    let spec = Box::new(group.spec.clone());
                    let why = why.clone();
                    each(position, Outcome::Unschedulable { spec, why });
                }
            } else {
                each(position, outcome);
            }
        }
    }
}
