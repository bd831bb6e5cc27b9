//! Incremental counts of each workload's instances per topology domain (per node, per zone ...),
//! kept up to date on every bind and evict so that spread and (anti-)affinity cost O(1) per node.

use std::collections::HashMap;

use crate::symbols::Sym;

/// Index of a registered topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TopoId(pub(crate) u32);

/// Marks a node that belongs to no domain of a label topology (it lacks the label).
pub const NO_DOMAIN: u32 = u32::MAX;

/// The domains of one topology: which domain each node is in.
#[derive(Debug)]
pub struct Domains {
    /// The label key, or `None` for the per-node topology.
    pub key: Option<Sym>,
    /// Domain of each node (by node index), or [`NO_DOMAIN`].
    pub domain_of: Vec<u32>,
    /// Domain id of each label value (label topologies only).
    by_value: HashMap<Sym, u32>,
    /// Number of domains.
    pub len: u32,
}

impl Domains {
    /// A topology over `key` (or per node), for no nodes yet.
    pub fn new(key: Option<Sym>) -> Self {
        Domains {
            key,
            domain_of: Vec::new(),
            by_value: HashMap::new(),
            len: 0,
        }
    }

    /// Records a new node whose value for this topology's label is `value`; returns true if the
    /// node opened a new domain.
    pub fn add_node(&mut self, value: Option<Sym>) -> bool {
        let (domain, new) = match (self.key, value) {
            (None, _) => (self.len, true),
            (Some(_), None) => (NO_DOMAIN, false),
            (Some(_), Some(value)) => match self.by_value.get(&value) {
                Some(&d) => (d, false),
                None => {
                    self.by_value.insert(value, self.len);
                    (self.len, true)
                }
            },
        };
        if new {
            self.len += 1;
        }
        self.domain_of.push(domain);
        new
    }
}

/// How many instances of one workload each domain of one topology holds, with the minimum over
/// domains maintained in O(1) through a histogram of counts.
#[derive(Clone, Debug, Default)]
pub struct DomainCounts {
    per_domain: Vec<u32>,
    /// `histogram[c]` = number of domains holding exactly `c` instances.
    histogram: Vec<u32>,
    min: u32,
}

impl DomainCounts {
    /// Counts, all zero, over `domains` domains.
    pub fn new(domains: u32) -> Self {
        let mut counts = DomainCounts::default();
        for _ in 0..domains {
            counts.add_domain();
        }
        counts
    }

    /// Adds an empty domain.
    pub fn add_domain(&mut self) {
        self.per_domain.push(0);
        if self.histogram.is_empty() {
            self.histogram.push(0);
        }
        self.histogram[0] += 1;
        self.min = 0;
    }

    /// Instances in `domain`.
    pub fn get(&self, domain: u32) -> u32 {
        self.per_domain[domain as usize]
    }

    /// The fewest instances any domain holds (0 when there are no domains).
    pub fn min(&self) -> u32 {
        self.min
    }

    /// One more instance in `domain`.
    pub fn increment(&mut self, domain: u32) {
        let count = self.per_domain[domain as usize];
        self.per_domain[domain as usize] = count + 1;
        self.histogram[count as usize] -= 1;
        if self.histogram.len() <= count as usize + 1 {
            self.histogram.push(0);
        }
        self.histogram[count as usize + 1] += 1;
        if count == self.min && self.histogram[count as usize] == 0 {
            self.min = count + 1;
        }
    }

    /// One instance fewer in `domain`.
    pub fn decrement(&mut self, domain: u32) {
        let count = self.per_domain[domain as usize];
        self.per_domain[domain as usize] = count - 1;
        self.histogram[count as usize] -= 1;
        self.histogram[count as usize - 1] += 1;
        self.min = self.min.min(count - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_follows_increments_and_decrements() {
        let mut counts = DomainCounts::new(3);
        counts.increment(0);
        counts.increment(1);
        assert_eq!(counts.min(), 0);
        counts.increment(2);
        assert_eq!(counts.min(), 1);
        counts.increment(2);
        assert_eq!(counts.min(), 1);
        counts.decrement(0);
        assert_eq!(counts.min(), 0);
        counts.add_domain();
        assert_eq!((counts.get(3), counts.min()), (0, 0));
    }

    #[test]
    fn label_domains_group_nodes_by_value_and_skip_unlabelled_nodes() {
        let mut domains = Domains::new(Some(Sym(0)));
        assert!(domains.add_node(Some(Sym(1))));
        assert!(!domains.add_node(Some(Sym(1))));
        assert!(!domains.add_node(None));
        assert!(domains.add_node(Some(Sym(2))));
        assert_eq!(domains.domain_of, vec![0, 0, NO_DOMAIN, 1]);
        assert_eq!(domains.len, 2);
    }
}
