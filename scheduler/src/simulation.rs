//! Seeded, deterministic clusters and workloads for the placement benchmark and tests, and the
//! packing-quality measures the benchmark reports.

use std::collections::BTreeMap;

use crate::cluster::Cluster;
use crate::model::{InstanceSpec, NodeSpec, Spread, Taint, TaintEffect, Topology, WorkloadTerm};
use crate::resources::Resources;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// A small deterministic generator (SplitMix64): the same seed always gives the same cluster.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// Picks an index with probability proportional to `weights`.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.next_u64() % weights.iter().sum::<u64>();
        for (i, &w) in weights.iter().enumerate() {
            if roll < w {
                return i;
            }
            roll -= w;
        }
        unreachable!("roll is below the total weight")
    }
}

/// Zones the generated nodes are spread over.
pub const ZONES: u64 = 3;
/// The taint carried by the generated GPU nodes.
pub const GPU_TAINT: &str = "gpu";

/// `count` nodes of a few cloud-like shapes (general purpose, cpu- and memory-optimized, large),
/// labelled `zone` and `shape`; one in fifty is a GPU node tainted `gpu=true:NoSchedule`.
pub fn nodes(seed: u64, count: usize) -> Vec<NodeSpec> {
    // (name, cores, GiB, weight)
    const SHAPES: [(&str, u64, u64, u64); 5] = [
        ("general-16", 16, 64, 40),
        ("general-32", 32, 128, 25),
        ("cpu-32", 32, 64, 15),
        ("memory-16", 16, 128, 15),
        ("large-64", 64, 256, 5),
    ];
    let weights: Vec<u64> = SHAPES.iter().map(|s| s.3).collect();
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let (shape, cores, gib, _) = SHAPES[rng.weighted(&weights)];
            let mut labels = BTreeMap::new();
            labels.insert(
                "zone".to_owned(),
                format!("zone-{}", rng.between(0, ZONES - 1)),
            );
            labels.insert("shape".to_owned(), shape.to_owned());
            let taints = if rng.between(0, 49) == 0 {
                vec![Taint {
                    key: GPU_TAINT.to_owned(),
                    value: "true".to_owned(),
                    effect: TaintEffect::NoSchedule,
                }]
            } else {
                Vec::new()
            };
            NodeSpec {
                name: format!("node-{i:05}"),
                capacity: Resources::new(cores * 1000, gib * GIB, 32_768),
                labels,
                taints,
                cordoned: false,
            }
        })
        .collect()
}

/// Which placement constraints the generated instances carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraints {
    /// Requests only.
    None,
    /// Each workload spread over zones with max skew 1.
    Spread,
    /// At most one instance of a workload per node.
    AntiAffinity,
    /// Both of the above.
    SpreadAndAntiAffinity,
}

/// `count` instances grouped into workloads of 1 to 40 replicas sharing a request size: half
/// small, a third medium, and some cpu-heavy, memory-heavy and large ones, with priority 0.
pub fn instances(seed: u64, count: usize, constraints: Constraints) -> Vec<InstanceSpec> {
    // (millicores low..high, MiB low..high, weight)
    const SIZES: [(u64, u64, u64, u64, u64); 5] = [
        (100, 500, 128, 512, 50),
        (1000, 2000, 2048, 4096, 30),
        (4000, 8000, 2048, 4096, 10),
        (500, 1000, 16384, 32768, 8),
        (8000, 16000, 32768, 65536, 2),
    ];
    let weights: Vec<u64> = SIZES.iter().map(|s| s.4).collect();
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut out = Vec::with_capacity(count);
    let mut workload = 0;
    while out.len() < count {
        let (cpu_low, cpu_high, mib_low, mib_high, _) = SIZES[rng.weighted(&weights)];
        let requests = Resources::new(
            rng.between(cpu_low / 50, cpu_high / 50) * 50,
            rng.between(mib_low / 64, mib_high / 64) * 64 * MIB,
            rng.between(8, 64),
        );
        let replicas = rng.between(1, 40) as usize;
        let name = format!("workload-{workload}");
        workload += 1;
        let mut spec = InstanceSpec::new(name.clone(), requests);
        if matches!(
            constraints,
            Constraints::Spread | Constraints::SpreadAndAntiAffinity
        ) {
            spec.spread = Some(Spread {
                topology: Topology::Label("zone".to_owned()),
                max_skew: 1,
            });
        }
        if matches!(
            constraints,
            Constraints::AntiAffinity | Constraints::SpreadAndAntiAffinity
        ) {
            spec.anti_affinity = vec![WorkloadTerm {
                workload: name,
                topology: Topology::Node,
            }];
        }
        for _ in 0..replicas.min(count - out.len()) {
            out.push(spec.clone());
        }
    }
    out
}

/// How well instances are packed onto nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Packing {
    /// Nodes holding at least one instance.
    pub nodes_used: usize,
    /// The fewest nodes whose capacity could hold every placed request, resource by resource
    /// (the bound: max over resources of total requests / capacity, largest nodes first).
    pub lower_bound: usize,
    /// The fewest nodes that could hold every placed request in cpu and memory at once, even
    /// split fractionally: tighter than `lower_bound` when node shapes differ.
    pub shape_bound: usize,
    /// Free cpu on used nodes whose memory is (almost) exhausted, as a fraction of their cpu.
    pub stranded_cpu: f64,
    /// Free memory on used nodes whose cpu is (almost) exhausted, as a fraction of their memory.
    pub stranded_memory: f64,
}

/// Free capacity below this fraction counts as exhausted for [`Packing`]'s stranded figures.
const EXHAUSTED: f64 = 0.05;

/// Measures the packing of `cluster`.
pub fn packing(cluster: &Cluster) -> Packing {
    let nodes = cluster.nodes();
    let total = nodes
        .iter()
        .fold(Resources::ZERO, |sum, n| sum + n.allocated);
    let specs: Vec<NodeSpec> = nodes.iter().map(|n| n.spec.clone()).collect();
    let (mut cpu_capacity, mut memory_capacity, mut stranded_cpu, mut stranded_memory) =
        (0, 0, 0, 0);
    let mut used = 0;
    for node in nodes.iter().filter(|n| !n.instances.is_empty()) {
        used += 1;
        let capacity = node.spec.capacity;
        let free = node.free();
        let (free_cpu, free_memory) = free.fractions_of(&capacity);
        cpu_capacity += capacity.cpu_millis;
        memory_capacity += capacity.memory_bytes;
        if free_memory < EXHAUSTED {
            stranded_cpu += free.cpu_millis;
        }
        if free_cpu < EXHAUSTED {
            stranded_memory += free.memory_bytes;
        }
    }
    Packing {
        nodes_used: used,
        lower_bound: lower_bound(&specs, &total),
        shape_bound: shape_bound(&specs, &total),
        stranded_cpu: stranded_cpu as f64 / cpu_capacity.max(1) as f64,
        stranded_memory: stranded_memory as f64 / memory_capacity.max(1) as f64,
    }
}

/// The fewest of `nodes` that could hold `total`: for each resource, how many nodes taken
/// largest first it needs, and the most of those over the resources.
pub fn lower_bound(nodes: &[NodeSpec], total: &Resources) -> usize {
    let needed = |amount: u64, capacity: fn(&Resources) -> u64| {
        let mut sizes: Vec<u64> = nodes.iter().map(|n| capacity(&n.capacity)).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let mut covered = 0;
        sizes
            .iter()
            .take_while(|&&size| {
                let short = covered < amount;
                covered += size;
                short
            })
            .count()
    };
    needed(total.cpu_millis, |r| r.cpu_millis)
        .max(needed(total.memory_bytes, |r| r.memory_bytes))
        .max(needed(total.pids, |r| r.pids))
}

/// A lower bound on the nodes needed to hold `total` cpu and memory together, from linear
/// programming duality: with any prices `y` on cpu and memory, a node can "pay" for at most
/// `max(1, y . capacity)` of the demand's price `y . total`, so at least
/// `y . total - sum over nodes of max(0, y . capacity - 1)` nodes are needed. The prices are
/// searched on a grid, coarse then fine; any prices give a valid bound, a better search a tighter one.
pub fn shape_bound(nodes: &[NodeSpec], total: &Resources) -> usize {
    let mut shapes: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    for node in nodes {
        *shapes
            .entry((node.capacity.cpu_millis, node.capacity.memory_bytes))
            .or_default() += 1.0;
    }
    // Prices are searched in units of what makes the smallest node pay in full.
    let unit_cpu = shapes.keys().map(|s| s.0).min().unwrap_or(0).max(1) as f64;
    let unit_memory = shapes.keys().map(|s| s.1).min().unwrap_or(0).max(1) as f64;
    let bound = |a: f64, b: f64| {
        let (y_cpu, y_memory) = (a / unit_cpu, b / unit_memory);
        let paid: f64 = shapes
            .iter()
            .map(|(&(cpu, memory), &count)| {
                count * (y_cpu * cpu as f64 + y_memory * memory as f64 - 1.0).max(0.0)
            })
            .sum();
        y_cpu * total.cpu_millis as f64 + y_memory * total.memory_bytes as f64 - paid
    };
    let search = |center: (f64, f64), radius: f64, steps: u32| {
        let mut best = (f64::MIN, center);
        for i in 0..=steps {
            for j in 0..=steps {
                let a =
                    (center.0 - radius + 2.0 * radius * f64::from(i) / f64::from(steps)).max(0.0);
                let b =
                    (center.1 - radius + 2.0 * radius * f64::from(j) / f64::from(steps)).max(0.0);
                let value = bound(a, b);
                if value > best.0 {
                    best = (value, (a, b));
                }
            }
        }
        best
    };
    let (_, coarse) = search((0.5, 0.5), 0.5, 100);
    let (value, _) = search(coarse, 0.01, 80);
    // Rounding guards against float error making the bound claim a node too many.
    (value - 1e-6).ceil().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(cores: u64, gib: u64) -> NodeSpec {
        NodeSpec {
            name: String::new(),
            capacity: Resources::new(cores * 1000, gib * GIB, 1000),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            cordoned: false,
        }
    }

    #[test]
    fn bounds_agree_on_identical_nodes() {
        let nodes = vec![shape(10, 10); 100];
        let total = Resources::new(255_000, 120 * GIB, 0);
        assert_eq!(lower_bound(&nodes, &total), 26);
        assert_eq!(shape_bound(&nodes, &total), 26);
    }

    #[test]
    fn the_shape_bound_sees_that_no_node_is_large_in_both_resources() {
        // Half the nodes are cpu-rich, half memory-rich; a demand of 10 cores and 10 GiB per
        // node needs 20 nodes though each resource alone fits on 10.
        let mut nodes = vec![shape(20, 2,); 50];
        nodes.extend(vec![shape(2, 20); 50]);
        let total = Resources::new(200_000, 200 * GIB, 0);
        assert_eq!(lower_bound(&nodes, &total), 10);
        assert_eq!(shape_bound(&nodes, &total), 19);
    }

    #[test]
    fn the_generator_is_deterministic() {
        assert_eq!(nodes(7, 50), nodes(7, 50));
        assert_eq!(
            instances(7, 500, Constraints::Spread),
            instances(7, 500, Constraints::Spread)
        );
        assert_ne!(
            instances(7, 500, Constraints::None),
            instances(8, 500, Constraints::None)
        );
    }
}
