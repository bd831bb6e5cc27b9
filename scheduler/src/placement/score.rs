//! Score plugins: each rates a node that passed every filter from 0 (worst) to 100 (best) for one
//! concern; the scheduler adds them up with the policy's weights.

use crate::cluster::{Cluster, NodeId};
use crate::model::TaintEffect;
use crate::placement::cycle::Cycle;

/// Rates a feasible node for the instance of a cycle.
pub trait Score: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &'static str;
    /// A rating from 0 to 100.
    fn score(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> f64;
}

/// The node's cpu and memory fractions requested once the instance is placed.
fn allocated_after(cluster: &Cluster, cycle: &Cycle, node: NodeId) -> (f64, f64) {
    let node = cluster.node(node);
    (node.allocated + cycle.requests).fractions_of(&node.spec.capacity)
}

/// Prefers nodes with the most capacity left unrequested.
pub struct LeastAllocated;

impl Score for LeastAllocated {
    fn name(&self) -> &'static str {
        "least allocated"
    }
    fn score(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> f64 {
        let (cpu, memory) = allocated_after(cluster, cycle, node);
        100.0 * (1.0 - (cpu + memory) / 2.0)
    }
}

/// Prefers nodes with the least capacity left unrequested (bin packing).
pub struct MostAllocated;

impl Score for MostAllocated {
    fn name(&self) -> &'static str {
        "most allocated"
    }
    fn score(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> f64 {
        let (cpu, memory) = allocated_after(cluster, cycle, node);
        100.0 * (cpu + memory) / 2.0
    }
}

/// Prefers nodes whose cpu and memory end up requested in equal fractions, so neither is left
/// stranded by the other running out.
pub struct BalancedAllocation;

impl Score for BalancedAllocation {
    fn name(&self) -> &'static str {
        "balanced allocation"
    }
    fn score(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> f64 {
        let (cpu, memory) = allocated_after(cluster, cycle, node);
        100.0 * (1.0 - (cpu - memory).abs().min(1.0))
    }
}

/// Prefers nodes that are idle in fact: the busiest resource's measured usage plus the request,
/// as a fraction of capacity. A node whose instances use more than they requested (or that runs
/// work the scheduler did not place) is not treated as empty.
pub struct MeasuredUsage;

impl Score for MeasuredUsage {
    fn name(&self) -> &'static str {
        "measured usage"
    }
    fn score(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> f64 {
        let node = cluster.node(node);
        let (cpu, memory) = (node.usage + cycle.requests).fractions_of(&node.spec.capacity);
        100.0 * (1.0 - cpu.max(memory).min(1.0))
    }
}

/// Prefers the domains holding the fewest of the instance's own workload (for instances with a
/// spread constraint; every node scores the same otherwise).
pub struct SpreadBalance;

impl Score for SpreadBalance {
    fn name(&self) -> &'static str {
        "spread balance"
    }
    fn score(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> f64 {
        let Some(spread) = cycle.spread else {
            return 100.0;
        };
        let domain = cluster.topologies[spread.topo.0 as usize].domain_of[node.0 as usize];
        let above_min = cluster.counts(cycle.workload, spread.topo).get(domain) - spread.min;
        100.0 * (1.0 - f64::from(above_min) / f64::from(spread.max_skew + 1))
    }
}

/// Avoids nodes with PreferNoSchedule taints the instance does not tolerate.
pub struct TaintPreference;

impl Score for TaintPreference {
    fn name(&self) -> &'static str {
        "taint preference"
    }
    fn score(&self, cluster: &Cluster, cycle: &Cycle, node: NodeId) -> f64 {
        let untolerated = cluster.node(node).taints.iter().any(|taint| {
            taint.effect == TaintEffect::PreferNoSchedule
                && !cycle
                    .tolerations
                    .iter()
                    .any(|t| t.matches(taint.key, taint.value, taint.effect))
        });
        if untolerated {
            0.0
        } else {
            100.0
        }
    }
}
