//! Why an instance is pending: for each filter, how many nodes it was the first to reject.

use std::fmt;

use crate::cluster::{Cluster, NodeId};
use crate::placement::cycle::Cycle;
use crate::placement::filter::Filter;

/// The nodes each filter rejected (each node counted once, under the first filter rejecting it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Nodes in the cluster.
    pub nodes: u32,
    /// (filter reason, nodes rejected), in pipeline order, filters that rejected none left out.
    pub rejected: Vec<(&'static str, u32)>,
}

impl Explanation {
    /// Nodes no filter rejected.
    pub fn feasible(&self) -> u32 {
        self.nodes - self.rejected.iter().map(|(_, n)| n).sum::<u32>()
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} nodes available", self.feasible(), self.nodes)?;
        for (i, (reason, count)) in self.rejected.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            write!(f, "{sep}{count} {reason}")?;
        }
        Ok(())
    }
}

/// Runs every filter on every node.
pub(crate) fn explain(
    filters: &[Box<dyn Filter>],
    cluster: &Cluster,
    cycle: &Cycle,
) -> Explanation {
    let mut counts = vec![0u32; filters.len()];
    for n in 0..cluster.nodes.len() {
        let node = NodeId(n as u32);
        if let Some(i) = filters.iter().position(|f| !f.admits(cluster, cycle, node)) {
            counts[i] += 1;
        }
    }
    Explanation {
        nodes: cluster.nodes.len() as u32,
        rejected: filters
            .iter()
            .zip(counts)
            .filter(|&(_, count)| count > 0)
            .map(|(f, count)| (f.name(), count))
            .collect(),
    }
}
