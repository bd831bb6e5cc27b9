//! The cluster as placement sees it: nodes with what is allocated on them, the instances placed,
//! and the indexes kept up to date on every bind and evict.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::model::{InstanceSpec, NodeSpec, TaintEffect, Topology};
use crate::placement::index::{FreeIndex, Resource};
use crate::resources::Resources;
use crate::symbols::{Sym, Symbols};
use crate::topology::{DomainCounts, Domains, TopoId};

/// Index of a node in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// Identity of a placed instance, unique for the cluster's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub u32);

/// A taint with interned key and value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodeTaint {
    pub key: Sym,
    pub value: Sym,
    pub effect: TaintEffect,
}

/// A node and what is placed on it.
#[derive(Debug)]
pub struct Node {
    /// The node as registered.
    pub spec: NodeSpec,
    /// Sum of the requests of the instances placed here.
    pub allocated: Resources,
    /// Usage the node's agent last measured (may exceed or fall short of `allocated`).
    pub usage: Resources,
    /// Instances placed here.
    pub instances: Vec<InstanceId>,
    /// Labels as sorted (key, value) symbols.
    pub(crate) labels: Vec<(Sym, Sym)>,
    pub(crate) taints: Vec<NodeTaint>,
    /// Per priority of the instances placed here, ascending: how many and their requests summed.
    pub(crate) by_priority: Vec<(i32, u32, Resources)>,
}

impl Node {
    /// Capacity not yet requested by any instance.
    pub fn free(&self) -> Resources {
        self.spec.capacity.saturating_sub(&self.allocated)
    }

    /// The room the node would have with every instance of priority `priority` or lower evicted.
    pub(crate) fn room_evicting(&self, priority: i32) -> Resources {
        self.by_priority
            .iter()
            .take_while(|&&(p, _, _)| p <= priority)
            .fold(self.free(), |room, &(_, _, requests)| room + requests)
    }

    fn add_priority(&mut self, priority: i32, requests: Resources) {
        match self
            .by_priority
            .binary_search_by_key(&priority, |&(p, _, _)| p)
        {
            Ok(i) => {
                self.by_priority[i].1 += 1;
                self.by_priority[i].2 += requests;
            }
            Err(i) => self.by_priority.insert(i, (priority, 1, requests)),
        }
    }

    fn remove_priority(&mut self, priority: i32, requests: Resources) {
        let i = self
            .by_priority
            .binary_search_by_key(&priority, |&(p, _, _)| p)
            .expect("a placed instance's priority is summed");
        self.by_priority[i].1 -= 1;
        self.by_priority[i].2 -= requests;
        if self.by_priority[i].1 == 0 {
            self.by_priority.remove(i);
        }
    }

    pub(crate) fn label(&self, key: Sym) -> Option<Sym> {
        self.labels
            .binary_search_by_key(&key, |&(k, _)| k)
            .ok()
            .map(|i| self.labels[i].1)
    }
}

/// A placed instance.
#[derive(Debug)]
pub struct Placed {
    /// Where it runs.
    pub node: NodeId,
    /// What it is.
    pub spec: InstanceSpec,
    pub(crate) workload: Sym,
}

/// For one priority, the nodes by the room evicting instances of that priority or lower makes.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    /// By the room evicting every one of them.
    pub all: FreeIndex,
    /// By an upper bound on the room evicting one of them makes (see
    /// [`Cluster::room_evicting_one`]): where a single victim may be enough.
    pub one: FreeIndex,
}

/// Why a bind was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BindError {
    /// The node has no room for the instance's requests.
    Overcommit {
        /// The node's name.
        node: String,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Overcommit { node } => {
                write!(f, "node {node} has no room for the instance's requests")
            }
        }
    }
}

impl std::error::Error for BindError {}

/// Nodes, placed instances and the indexes placement reads.
#[derive(Debug, Default)]
pub struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) instances: Vec<Option<Placed>>,
    pub(crate) symbols: Symbols,
    pub(crate) free_index: FreeIndex,
    pub(crate) topologies: Vec<Domains>,
    topology_ids: HashMap<Option<Sym>, TopoId>,
    /// Per workload: the topologies its instances are counted in, with the counts.
    pub(crate) counts: HashMap<Sym, Vec<(TopoId, DomainCounts)>>,
    /// Placed instances per workload.
    live: HashMap<Sym, u32>,
    /// Placed instances per priority.
    priorities: BTreeMap<i32, u32>,
    /// For each priority with placed instances, the nodes by the room evicting instances of
    /// that priority or lower would make: preemption looks there for nodes to free up instead
    /// of going through every node.
    pub(crate) rooms: BTreeMap<i32, Rooms>,
    capacity: Resources,
    allocated: Resources,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Cluster::default()
    }

    /// Registers a node.
    pub fn add_node(&mut self, spec: NodeSpec) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        let mut labels: Vec<(Sym, Sym)> = spec
            .labels
            .iter()
            .map(|(k, v)| (self.symbols.intern(k), self.symbols.intern(v)))
            .collect();
        labels.sort_unstable();
        let taints = spec
            .taints
            .iter()
            .map(|t| NodeTaint {
                key: self.symbols.intern(&t.key),
                value: self.symbols.intern(&t.value),
                effect: t.effect,
            })
            .collect();
        let node = Node {
            spec,
            allocated: Resources::ZERO,
            usage: Resources::ZERO,
            instances: Vec::new(),
            labels,
            taints,
            by_priority: Vec::new(),
        };
        for (t, domains) in self.topologies.iter_mut().enumerate() {
            let value = domains.key.and_then(|key| node.label(key));
            if domains.add_node(value) {
                for counts in self.counts.values_mut() {
                    for (topo, c) in counts.iter_mut() {
                        if topo.0 as usize == t {
                            c.add_domain();
                        }
                    }
                }
            }
        }
        self.capacity += node.spec.capacity;
        self.free_index.add(id, &node.free(), true);
        for rooms in self.rooms.values_mut() {
            rooms.all.add(id, &node.free(), false);
            rooms.one.add(id, &node.free(), false);
        }
        self.nodes.push(node);
        id
    }

    /// All nodes, by [`NodeId`].
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// Records the usage a node's agent measured.
    pub fn set_usage(&mut self, id: NodeId, usage: Resources) {
        self.nodes[id.0 as usize].usage = usage;
    }

    /// Cordons or uncordons a node.
    pub fn set_cordoned(&mut self, id: NodeId, cordoned: bool) {
        self.nodes[id.0 as usize].spec.cordoned = cordoned;
    }

    /// A placed instance, if it is still placed.
    pub fn instance(&self, id: InstanceId) -> Option<&Placed> {
        self.instances.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// All placed instances.
    pub fn placed(&self) -> impl Iterator<Item = (InstanceId, &Placed)> {
        self.instances
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (InstanceId(i as u32), p)))
    }

    /// Places `spec` on `node`, refusing if its requests do not fit. Placement constraints other
    /// than capacity are the scheduler's business; this is also how known placements are restored.
    pub fn bind(&mut self, node: NodeId, spec: InstanceSpec) -> Result<InstanceId, BindError> {
        let n = &mut self.nodes[node.0 as usize];
        if !spec.requests.fits_within(&n.free()) {
            return Err(BindError::Overcommit {
                node: n.spec.name.clone(),
            });
        }
        n.allocated += spec.requests;
        n.add_priority(spec.priority, spec.requests);
        self.allocated += spec.requests;
        let id = InstanceId(self.instances.len() as u32);
        n.instances.push(id);
        self.free_index.update(node, &n.free(), false);
        let priority = spec.priority;
        let workload = self.symbols.intern(&spec.workload);
        *self.live.entry(workload).or_default() += 1;
        if let Some(counts) = self.counts.get_mut(&workload) {
            for (topo, c) in counts {
                let domain = self.topologies[topo.0 as usize].domain_of[node.0 as usize];
                if domain != crate::topology::NO_DOMAIN {
                    c.increment(domain);
                }
            }
        }
        self.instances.push(Some(Placed {
            node,
            spec,
            workload,
        }));
        let placed_here = self.priorities.entry(priority).or_default();
        *placed_here += 1;
        if *placed_here == 1 {
            let mut rooms = Rooms::default();
            for (i, n) in self.nodes.iter().enumerate() {
                let id = NodeId(i as u32);
                rooms.all.add(id, &n.room_evicting(priority), false);
                rooms
                    .one
                    .add(id, &self.room_evicting_one(n, priority), false);
            }
            self.rooms.insert(priority, rooms);
        }
        self.update_rooms(node, priority);
        Ok(id)
    }

    /// Removes a placed instance, returning its spec, or `None` if it is not placed.
    pub fn evict(&mut self, id: InstanceId) -> Option<InstanceSpec> {
        let placed = self.instances.get_mut(id.0 as usize)?.take()?;
        let n = &mut self.nodes[placed.node.0 as usize];
        n.allocated -= placed.spec.requests;
        n.remove_priority(placed.spec.priority, placed.spec.requests);
        self.allocated -= placed.spec.requests;
        let count = self
            .priorities
            .get_mut(&placed.spec.priority)
            .expect("a placed instance's priority is counted");
        *count -= 1;
        if *count == 0 {
            self.priorities.remove(&placed.spec.priority);
            self.rooms.remove(&placed.spec.priority);
        }
        n.instances.retain(|&i| i != id);
        self.free_index
            .update(placed.node, &n.free(), n.instances.is_empty());
        self.update_rooms(placed.node, placed.spec.priority);
        *self
            .live
            .get_mut(&placed.workload)
            .expect("placed workload is live") -= 1;
        if let Some(counts) = self.counts.get_mut(&placed.workload) {
            for (topo, c) in counts {
                let domain = self.topologies[topo.0 as usize].domain_of[placed.node.0 as usize];
                if domain != crate::topology::NO_DOMAIN {
                    c.decrement(domain);
                }
            }
        }
        Some(placed.spec)
    }

    /// Records in the room indexes that an instance of `priority` came to or left `node`.
    fn update_rooms(&mut self, node: NodeId, priority: i32) {
        let n = &self.nodes[node.0 as usize];
        let mut rooms = std::mem::take(&mut self.rooms);
        for (&level, index) in rooms.iter_mut() {
            // Evicting everything at `priority` or above, the instance makes no difference.
            if level < priority {
                index.all.update(node, &n.room_evicting(level), false);
            }
            index
                .one
                .update(node, &self.room_evicting_one(n, level), false);
        }
        self.rooms = rooms;
    }

    /// An upper bound on the room evicting one instance of `priority` or lower from `node`
    /// would make: its free room plus, per resource, the largest such request.
    fn room_evicting_one(&self, node: &Node, priority: i32) -> Resources {
        let largest = node
            .instances
            .iter()
            .filter_map(|&id| self.instance(id))
            .filter(|placed| placed.spec.priority <= priority)
            .fold(Resources::ZERO, |largest, placed| {
                largest.max(&placed.spec.requests)
            });
        node.free() + largest
    }

    /// The lowest priority among placed instances.
    pub fn lowest_priority(&self) -> Option<i32> {
        self.priorities.keys().next().copied()
    }

    /// The resource of which the cluster has requested the larger fraction.
    pub(crate) fn scarce(&self) -> Resource {
        self.scarce_with(&Resources::ZERO)
    }

    /// The resource of which the cluster would have requested the larger fraction with `more`.
    pub(crate) fn scarce_with(&self, more: &Resources) -> Resource {
        let (cpu, memory) = (self.allocated + *more).fractions_of(&self.capacity);
        if memory > cpu {
            Resource::Memory
        } else {
            Resource::Cpu
        }
    }

    /// The id of `topology`, registering it (and the domain of every node) on first use.
    pub(crate) fn topology(&mut self, topology: &Topology) -> TopoId {
        let key = match topology {
            Topology::Node => None,
            Topology::Label(key) => Some(self.symbols.intern(key)),
        };
        if let Some(&id) = self.topology_ids.get(&key) {
            return id;
        }
        let id = TopoId(self.topologies.len() as u32);
        let mut domains = Domains::new(key);
        for node in &self.nodes {
            domains.add_node(key.and_then(|k| node.label(k)));
        }
        self.topologies.push(domains);
        self.topology_ids.insert(key, id);
        id
    }

    /// Starts counting `workload`'s instances per domain of `topo`, if not already counted.
    pub(crate) fn count(&mut self, workload: Sym, topo: TopoId) {
        let counted = self.counts.entry(workload).or_default();
        if counted.iter().any(|(t, _)| *t == topo) {
            return;
        }
        let domains = &self.topologies[topo.0 as usize];
        let mut counts = DomainCounts::new(domains.len);
        if self.live.get(&workload).copied().unwrap_or(0) > 0 {
            for placed in self.instances.iter().flatten() {
                let domain = domains.domain_of[placed.node.0 as usize];
                if placed.workload == workload && domain != crate::topology::NO_DOMAIN {
                    counts.increment(domain);
                }
            }
        }
        counted.push((topo, counts));
    }

    /// The counts of `workload` over `topo`; registered by [`Cluster::count`] beforehand.
    pub(crate) fn counts(&self, workload: Sym, topo: TopoId) -> &DomainCounts {
        let counted = &self.counts[&workload];
        &counted
            .iter()
            .find(|(t, _)| *t == topo)
            .expect("counted topology")
            .1
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every node is filed in the free index and in each priority's room index where its
    /// current allocations put it, and the room indexes are those of the priorities placed.
    fn assert_indexes_agree(cluster: &Cluster) {
        for (i, node) in cluster.nodes.iter().enumerate() {
            let id = NodeId(i as u32);
            assert!(cluster
                .free_index
                .files(id, &node.free(), node.instances.is_empty()));
            for (&priority, rooms) in &cluster.rooms {
                let evictable: Vec<Resources> = node
                    .instances
                    .iter()
                    .filter_map(|&i| cluster.instance(i))
                    .filter(|p| p.spec.priority <= priority)
                    .map(|p| p.spec.requests)
                    .collect();
                let all = evictable.iter().fold(node.free(), |room, &r| room + r);
                let largest = evictable.iter().fold(Resources::ZERO, |m, r| m.max(r));
                let one = node.free() + largest;
                assert!(
                    rooms.all.files(id, &all, false),
                    "node {i}, priority {priority}"
                );
                assert!(
                    rooms.one.files(id, &one, false),
                    "node {i}, priority {priority}"
                );
            }
        }
        let placed: std::collections::BTreeSet<i32> =
            cluster.placed().map(|(_, p)| p.spec.priority).collect();
        assert!(cluster.rooms.keys().copied().eq(placed));
    }

    proptest! {
        #[test]
        fn indexes_follow_binds_and_evictions(
            ops in prop::collection::vec((0u32..4, 1u64..=8, 1u64..=16, 0i32..4, 0usize..64), 1..80),
        ) {
            let mut cluster = Cluster::new();
            for n in 0..4 {
                cluster.add_node(NodeSpec {
                    name: format!("n{n}"),
                    capacity: Resources::new(16_000, 32 << 30, 1000),
                    labels: BTreeMap::new(),
                    taints: Vec::new(),
                    cordoned: false,
                });
            }
            let mut live = Vec::new();
            for (node, cores, gib, priority, evict) in ops {
                // One operation in three evicts an earlier instance, the others bind.
                if evict % 3 == 0 && !live.is_empty() {
                    let id = live.swap_remove(evict % live.len());
                    cluster.evict(id).expect("live instance");
                } else {
                    let mut spec = InstanceSpec::new("w", Resources::new(cores * 1000, gib << 30, 1));
                    spec.priority = priority;
                    if let Ok(id) = cluster.bind(NodeId(node), spec) {
                        live.push(id);
                    }
                }
                assert_indexes_agree(&cluster);
            }
        }
    }
}
