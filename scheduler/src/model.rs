//! What placement works on: nodes, the instances to place on them, and the cluster policy.

use std::collections::BTreeMap;

use crate::resources::Resources;

/// What a taint does to instances that do not tolerate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    /// Never place an intolerant instance here.
    NoSchedule,
    /// Place an intolerant instance here only if nothing else fits (a scoring penalty).
    PreferNoSchedule,
    /// Never place here, and evict running intolerant instances (eviction is the controllers' job).
    NoExecute,
}

/// A mark on a node that repels instances without a matching toleration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    /// The taint's key, e.g. `gpu`.
    pub key: String,
    /// The taint's value (may be empty).
    pub value: String,
    /// What the taint does.
    pub effect: TaintEffect,
}

/// Lets an instance onto nodes carrying matching taints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    /// The taint key tolerated; `None` tolerates every key.
    pub key: Option<String>,
    /// The value that must match; `None` tolerates any value (the `Exists` operator).
    pub value: Option<String>,
    /// The effect tolerated; `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
}

/// A node as registered: what it offers and how it is marked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Unique node name.
    pub name: String,
    /// What the node offers to instances.
    pub capacity: Resources,
    /// Labels such as `zone=a`.
    pub labels: BTreeMap<String, String>,
    /// Taints repelling intolerant instances.
    pub taints: Vec<Taint>,
    /// A cordoned node takes no new instances; running ones stay.
    pub cordoned: bool,
}

/// Where a count of instances is kept: per node, or per value of a node label (e.g. per zone).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Each node is its own domain.
    Node,
    /// Nodes sharing a value of this label form one domain; nodes without it belong to none.
    Label(String),
}

/// "Instances of `workload` in the same `topology` domain", the subject of (anti-)affinity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadTerm {
    /// The workload whose instances are counted.
    pub workload: String,
    /// The domain in which they are counted.
    pub topology: Topology,
}

/// Spread an instance's own workload evenly over the domains of `topology`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spread {
    /// The domains spread over; every node carrying the label is a domain member.
    pub topology: Topology,
    /// The largest allowed difference between the fullest domain after placement and the emptiest.
    pub max_skew: u32,
}

/// One instance of a workload, to be placed on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSpec {
    /// The workload it belongs to; (anti-)affinity and spread count instances by workload.
    pub workload: String,
    /// What placement reserves on the node.
    pub requests: Resources,
    /// What the runtime enforces (cgroup limits); placement reserves `requests` only.
    pub limits: Resources,
    /// Higher runs first and may preempt strictly lower priorities.
    pub priority: i32,
    /// Labels the node must carry, all of them.
    pub node_selector: BTreeMap<String, String>,
    /// The node's domain must already hold an instance of each of these workloads.
    pub affinity: Vec<WorkloadTerm>,
    /// The node's domain must hold no instance of any of these workloads.
    pub anti_affinity: Vec<WorkloadTerm>,
    /// Keep this workload's instances evenly spread.
    pub spread: Option<Spread>,
    /// Taints this instance accepts.
    pub tolerations: Vec<Toleration>,
}

impl InstanceSpec {
    /// An instance of `workload` requesting `requests` (also its limits), with no constraints.
    pub fn new(workload: impl Into<String>, requests: Resources) -> Self {
        InstanceSpec {
            workload: workload.into(),
            requests,
            limits: requests,
            priority: 0,
            node_selector: BTreeMap::new(),
            affinity: Vec::new(),
            anti_affinity: Vec::new(),
            spread: None,
            tolerations: Vec::new(),
        }
    }
}

/// How the cluster prefers to use its nodes when several fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Prefer the emptiest nodes: spreads load, leaves headroom everywhere.
    LeastAllocated,
    /// Prefer the fullest nodes that fit, keeping their cpu and memory used in step: packs
    /// tightly, leaves whole nodes free.
    MostAllocated,
    /// Prefer nodes whose cpu and memory end up equally used, then the emptiest.
    Balanced,
}
