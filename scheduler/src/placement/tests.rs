use std::collections::BTreeMap;

use super::*;
use crate::model::{NodeSpec, Spread, Taint, TaintEffect, Toleration, Topology, WorkloadTerm};
use crate::resources::Resources;

const GIB: u64 = 1 << 30;

fn node(name: &str, cores: u64, gib: u64, zone: &str) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        capacity: Resources::new(cores * 1000, gib * GIB, 1000),
        labels: BTreeMap::from([("zone".to_owned(), zone.to_owned())]),
        taints: Vec::new(),
        cordoned: false,
    }
}

fn cluster(nodes: Vec<NodeSpec>) -> Cluster {
    let mut cluster = Cluster::new();
    for n in nodes {
        cluster.add_node(n);
    }
    cluster
}

fn instance(workload: &str, cores: u64, gib: u64) -> InstanceSpec {
    InstanceSpec::new(workload, Resources::new(cores * 1000, gib * GIB, 1))
}

fn placed_on(outcome: &Outcome) -> NodeId {
    match outcome {
        Outcome::Placed { node, .. } | Outcome::Preempted { node, .. } => *node,
        Outcome::Unschedulable { why, .. } => panic!("unschedulable: {why}"),
    }
}

#[test]
fn an_instance_larger_than_any_free_room_is_unschedulable_with_the_reason() {
    let mut c = cluster(vec![node("a", 4, 8, "z1"), node("b", 4, 8, "z1")]);
    let scheduler = Scheduler::new(Policy::LeastAllocated);
    placed_on(&scheduler.place(&mut c, instance("w", 3, 1)));
    placed_on(&scheduler.place(&mut c, instance("w", 3, 1)));
    match scheduler.place(&mut c, instance("w", 2, 1)) {
        Outcome::Unschedulable { why, .. } => {
            assert_eq!(why.rejected, vec![("insufficient resources", 2)]);
            assert_eq!(
                why.to_string(),
                "0/2 nodes available: 2 insufficient resources"
            );
        }
        other => panic!("expected unschedulable, got {other:?}"),
    }
}

#[test]
fn most_allocated_packs_and_least_allocated_spreads() {
    let nodes = vec![
        node("a", 8, 32, "z1"),
        node("b", 8, 32, "z1"),
        node("c", 8, 32, "z1"),
    ];
    let mut packed = cluster(nodes.clone());
    let mut spread = cluster(nodes);
    let packer = Scheduler::new(Policy::MostAllocated);
    let spreader = Scheduler::new(Policy::LeastAllocated);
    // Instances shaped like the nodes (1 core : 4 GiB), so packing never unbalances a node.
    let on_packed: Vec<NodeId> = (0..3)
        .map(|_| placed_on(&packer.place(&mut packed, instance("w", 1, 4))))
        .collect();
    let on_spread: Vec<NodeId> = (0..3)
        .map(|_| placed_on(&spreader.place(&mut spread, instance("w", 1, 1))))
        .collect();
    assert!(
        on_packed.iter().all(|&n| n == on_packed[0]),
        "{on_packed:?}"
    );
    let mut distinct = on_spread.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{on_spread:?}");
}

#[test]
fn cordoned_nodes_take_nothing_new() {
    let mut c = cluster(vec![node("a", 8, 32, "z1"), node("b", 8, 32, "z1")]);
    c.set_cordoned(NodeId(0), true);
    let scheduler = Scheduler::new(Policy::LeastAllocated);
    for _ in 0..4 {
        assert_eq!(
            placed_on(&scheduler.place(&mut c, instance("w", 1, 1))),
            NodeId(1)
        );
    }
}

#[test]
fn a_tainted_node_needs_a_matching_toleration() {
    let mut gpu = node("gpu", 8, 32, "z1");
    gpu.taints.push(Taint {
        key: "gpu".into(),
        value: "true".into(),
        effect: TaintEffect::NoSchedule,
    });
    let mut c = cluster(vec![gpu]);
    let scheduler = Scheduler::new(Policy::LeastAllocated);
    assert!(matches!(
        scheduler.place(&mut c, instance("w", 1, 1)),
        Outcome::Unschedulable { .. }
    ));
    let mut tolerant = instance("w", 1, 1);
    tolerant.tolerations.push(Toleration {
        key: Some("gpu".into()),
        value: None,
        effect: None,
    });
    assert_eq!(placed_on(&scheduler.place(&mut c, tolerant)), NodeId(0));
}

#[test]
fn the_node_selector_restricts_to_labelled_nodes() {
    let mut c = cluster(vec![node("a", 8, 32, "z1"), node("b", 8, 32, "z2")]);
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let mut spec = instance("w", 1, 1);
    spec.node_selector.insert("zone".into(), "z2".into());
    for _ in 0..3 {
        assert_eq!(placed_on(&scheduler.place(&mut c, spec.clone())), NodeId(1));
    }
    spec.node_selector.insert("zone".into(), "z3".into());
    match scheduler.place(&mut c, spec) {
        Outcome::Unschedulable { why, .. } => {
            assert_eq!(why.rejected, vec![("node selector mismatch", 2)])
        }
        other => panic!("expected unschedulable, got {other:?}"),
    }
}

#[test]
fn anti_affinity_keeps_replicas_on_distinct_nodes() {
    let mut c = cluster(vec![
        node("a", 8, 32, "z1"),
        node("b", 8, 32, "z1"),
        node("c", 8, 32, "z1"),
    ]);
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let mut spec = instance("db", 1, 1);
    spec.anti_affinity.push(WorkloadTerm {
        workload: "db".into(),
        topology: Topology::Node,
    });
    let mut nodes: Vec<NodeId> = (0..3)
        .map(|_| placed_on(&scheduler.place(&mut c, spec.clone())))
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec![NodeId(0), NodeId(1), NodeId(2)]);
    match scheduler.place(&mut c, spec) {
        Outcome::Unschedulable { why, .. } => {
            assert_eq!(why.rejected, vec![("anti-affinity conflict", 3)])
        }
        other => panic!("expected unschedulable, got {other:?}"),
    }
}

#[test]
fn affinity_follows_the_other_workload_into_its_zone() {
    let mut c = cluster(vec![
        node("a", 8, 32, "z1"),
        node("b", 8, 32, "z2"),
        node("c", 8, 32, "z2"),
    ]);
    let scheduler = Scheduler::new(Policy::LeastAllocated);
    let mut cache = instance("cache", 1, 1);
    cache.affinity.push(WorkloadTerm {
        workload: "db".into(),
        topology: Topology::Label("zone".into()),
    });
    assert!(matches!(
        scheduler.place(&mut c, cache.clone()),
        Outcome::Unschedulable { .. }
    ));
    c.bind(NodeId(2), instance("db", 1, 1)).unwrap();
    for _ in 0..4 {
        assert_ne!(
            placed_on(&scheduler.place(&mut c, cache.clone())),
            NodeId(0)
        );
    }
}

#[test]
fn spread_fills_every_zone_before_any_takes_two_more() {
    let mut c = cluster(vec![
        node("a", 64, 256, "z1"),
        node("b", 8, 32, "z2"),
        node("c", 8, 32, "z3"),
        node("d", 8, 32, "z3"),
    ]);
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let mut spec = instance("web", 1, 1);
    spec.spread = Some(Spread {
        topology: Topology::Label("zone".into()),
        max_skew: 1,
    });
    let mut per_zone = BTreeMap::new();
    for _ in 0..9 {
        let node = placed_on(&scheduler.place(&mut c, spec.clone()));
        *per_zone
            .entry(c.node(node).spec.labels["zone"].clone())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3]
    );
}

#[test]
fn preemption_evicts_the_fewest_lowest_priority_instances() {
    let mut c = cluster(vec![node("a", 4, 16, "z1"), node("b", 4, 16, "z1")]);
    let mut low = instance("batch", 1, 1);
    low.priority = 1;
    let mut lowest = instance("batch", 2, 1);
    lowest.priority = 0;
    // a: four priority-1 instances of 1 core; b: two priority-0 instances of 2 cores.
    for _ in 0..4 {
        c.bind(NodeId(0), low.clone()).unwrap();
    }
    let cheap: Vec<InstanceId> = (0..2)
        .map(|_| c.bind(NodeId(1), lowest.clone()).unwrap())
        .collect();
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let mut urgent = instance("api", 2, 1);
    urgent.priority = 10;
    match scheduler.place(&mut c, urgent) {
        Outcome::Preempted { node, victims, .. } => {
            assert_eq!(node, NodeId(1));
            assert_eq!(victims.len(), 1);
            assert!(cheap.contains(&victims[0].0));
            assert_eq!(victims[0].1.priority, 0);
        }
        other => panic!("expected preemption, got {other:?}"),
    }
}

#[test]
fn preemption_never_evicts_equal_or_higher_priority() {
    let mut c = cluster(vec![node("a", 4, 16, "z1")]);
    let mut running = instance("batch", 4, 1);
    running.priority = 5;
    c.bind(NodeId(0), running).unwrap();
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let mut same = instance("api", 1, 1);
    same.priority = 5;
    assert!(matches!(
        scheduler.place(&mut c, same),
        Outcome::Unschedulable { .. }
    ));
    assert_eq!(c.placed().count(), 1);
}

#[test]
fn a_node_busy_in_fact_is_not_treated_as_empty() {
    let mut c = cluster(vec![node("a", 8, 32, "z1"), node("b", 8, 32, "z1")]);
    c.set_usage(NodeId(0), Resources::new(7_500, 30 * GIB, 500));
    let scheduler = Scheduler::new(Policy::LeastAllocated);
    assert_eq!(
        placed_on(&scheduler.place(&mut c, instance("w", 1, 1))),
        NodeId(1)
    );
}

#[test]
fn batches_place_higher_priority_first() {
    let mut c = cluster(vec![node("a", 4, 16, "z1")]);
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let mut important = instance("api", 3, 1);
    important.priority = 100;
    let outcomes = scheduler.place_batch(&mut c, vec![instance("batch", 3, 1), important]);
    assert!(matches!(outcomes[0], Outcome::Unschedulable { .. }));
    assert!(matches!(outcomes[1], Outcome::Placed { .. }));
}

#[test]
fn a_packed_batch_gives_memory_heavy_instances_the_node_with_memory_to_spare() {
    // Placed one by one, the cpu-heavy instances could take the memory-rich node's cpu first,
    // and the memory-heavy ones would then fit nowhere.
    let mut c = cluster(vec![node("small", 8, 8, "z1"), node("big", 8, 32, "z1")]);
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let mut batch = vec![instance("cpu", 2, 1); 4];
    batch.extend(vec![instance("memory", 2, 14); 2]);
    let outcomes = scheduler.place_batch(&mut c, batch);
    let nodes: Vec<NodeId> = outcomes.iter().map(placed_on).collect();
    assert_eq!(nodes[4..], [NodeId(1), NodeId(1)]);
    assert_eq!(
        nodes[..4].iter().filter(|&&n| n == NodeId(0)).count(),
        2,
        "{nodes:?}"
    );
}

#[test]
fn a_packed_batch_reports_every_replica_that_fits_nowhere() {
    let mut c = cluster(vec![node("a", 4, 8, "z1")]);
    let scheduler = Scheduler::new(Policy::MostAllocated);
    let outcomes = scheduler.place_batch(&mut c, vec![instance("w", 3, 1); 3]);
    assert!(matches!(outcomes[0], Outcome::Placed { .. }));
    for outcome in &outcomes[1..] {
        match outcome {
            Outcome::Unschedulable { why, .. } => {
                assert_eq!(
                    why.to_string(),
                    "0/1 nodes available: 1 insufficient resources"
                )
            }
            other => panic!("expected unschedulable, got {other:?}"),
        }
    }
}

#[test]
fn preemption_follows_binds_and_evictions() {
    let mut c = cluster(vec![node("a", 4, 16, "z1"), node("b", 4, 16, "z1")]);
    let with_priority = |workload: &str, priority: i32| {
        let mut spec = instance(workload, 4, 1);
        spec.priority = priority;
        spec
    };
    let low = c.bind(NodeId(0), with_priority("low", 1)).unwrap();
    c.bind(NodeId(1), with_priority("mid", 5)).unwrap();
    c.evict(low).unwrap();
    c.bind(NodeId(0), with_priority("high", 7)).unwrap();
    let scheduler = Scheduler::new(Policy::MostAllocated);
    // Priority 1 is gone from node a: the cheapest victim is b's priority-5 instance.
    match scheduler.place(&mut c, with_priority("urgent", 10)) {
        Outcome::Preempted { node, victims, .. } => {
            assert_eq!(node, NodeId(1));
            assert_eq!(victims.len(), 1);
            assert_eq!(victims[0].1.workload, "mid");
        }
        other => panic!("expected preemption, got {other:?}"),
    }
    // Now a holds priority 7 and b priority 10: nothing a priority-6 instance may evict.
    match scheduler.place(&mut c, with_priority("batch", 6)) {
        Outcome::Unschedulable { why, .. } => {
            assert_eq!(why.rejected, vec![("insufficient resources", 2)])
        }
        other => panic!("expected unschedulable, got {other:?}"),
    }
    assert_eq!(c.placed().count(), 2);
}
