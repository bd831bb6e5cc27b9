//! Filter plugins: each rejects the nodes an instance must not go to, for one reason.

use crate::cluster::{Cluster, NodeId};
use crate::model::TaintEffect;
use crate::placement::cycle::Cycle;
use crate::topology::NO_DOMAIN;

/// Decides whether a node may take the instance of a cycle.
pub trait Filter: Send + Sync {
    /// The reason shown when this filter rejects nodes, e.g. in `describe`.
    fn name(&self) -> &'static str;
    /// True when `node` passes.
    fn admits(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> bool;
    /// True when evicting lower-priority instances can turn a rejection into an admission.
    fn eviction_helps(&self) -> bool {
        false
    }
}

/// The node's unrequested capacity holds the instance's requests.
pub struct ResourceFit;

impl Filter for ResourceFit {
    fn name(&self) -> &'static str {
        "insufficient resources"
    }
    fn admits(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> bool {
        cycle.requests.fits_within(&cluster.node(node).free())
    }
    fn eviction_helps(&self) -> bool {
        true
    }
}

/// Cordoned nodes take nothing new.
pub struct Cordon;

impl Filter for Cordon {
    fn name(&self) -> &'static str {
        "node cordoned"
    }
    fn admits(&self, cluster: &Cluster, _: &Cycle, node: NodeId) -> bool {
        !cluster.node(node).spec.cordoned
    }
}

/// Every NoSchedule and NoExecute taint of the node is tolerated.
pub struct TaintToleration;

impl Filter for TaintToleration {
    fn name(&self) -> &'static str {
        "untolerated taint"
    }
    fn admits(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> bool {
        cluster.node(node).taints.iter().all(|taint| {
            taint.effect == TaintEffect::PreferNoSchedule
                || cycle
                    .tolerations
                    .iter()
                    .any(|t| t.matches(taint.key, taint.value, taint.effect))
        })
    }
}

/// The node carries every label of the node selector.
pub struct NodeSelector;

impl Filter for NodeSelector {
    fn name(&self) -> &'static str {
        "node selector mismatch"
    }
    fn admits(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> bool {
        let node = cluster.node(node);
        cycle
            .selector
            .iter()
            .all(|&(key, value)| node.label(key) == Some(value))
    }
}

/// The node's domain holds an instance of every workload the instance has affinity to.
pub struct Affinity;

impl Filter for Affinity {
    fn name(&self) -> &'static str {
        "affinity unmet"
    }
    fn admits(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> bool {
        cycle.affinity.iter().all(|&(workload, topo)| {
            let domain = cluster.topologies[topo.0 as usize].domain_of[node.0 as usize];
            domain != NO_DOMAIN && cluster.counts(workload, topo).get(domain) > 0
        })
    }
}

/// The node's domain holds no instance of any workload the instance has anti-affinity to.
pub struct AntiAffinity;

impl Filter for AntiAffinity {
    fn name(&self) -> &'static str {
        "anti-affinity conflict"
    }
    fn admits(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> bool {
        cycle.anti_affinity.iter().all(|&(workload, topo)| {
            let domain = cluster.topologies[topo.0 as usize].domain_of[node.0 as usize];
            domain == NO_DOMAIN || cluster.counts(workload, topo).get(domain) == 0
        })
    }
}

/// Placing here keeps the workload's spread within its max skew; nodes outside every domain of
/// the spread's topology are rejected.
pub struct SpreadSkew;

impl Filter for SpreadSkew {
    fn name(&self) -> &'static str {
        "spread max skew exceeded"
    }
    fn admits(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> bool {
        let Some(spread) = cycle.spread else {
            return true;
        };
        let domain = cluster.topologies[spread.topo.0 as usize].domain_of[node.0 as usize];
        domain != NO_DOMAIN
            && cluster.counts(cycle.workload, spread.topo).get(domain) + 1 - spread.min
                <= spread.max_skew
    }
}
