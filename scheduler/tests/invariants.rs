//! Property tests: whatever the cluster and the batch, placement keeps its promises.

use std::collections::{BTreeMap, HashMap};

use mini_sched::cluster::Placed;
use mini_sched::simulation::{self, Constraints};
use mini_sched::*;
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const ZONES: [&str; 3] = ["z1", "z2", "z3"];

/// What a generated workload asks of its instances.
#[derive(Clone, Debug)]
struct Workload {
    requests: Resources,
    priority: i32,
    zone: Option<usize>,
    tolerates_gpu: bool,
    anti_affinity: bool,
    spread: Option<u32>,
}

fn node_strategy() -> impl Strategy<Value = NodeSpec> {
    (
        1u64..=16,
        1u64..=64,
        50u64..=500,
        prop::option::of(0..ZONES.len()),
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(cores, gib, pids, zone, gpu, cordoned)| NodeSpec {
            name: String::new(),
            capacity: Resources::new(cores * 1000, gib * GIB, pids),
            labels: zone
                .map(|z| BTreeMap::from([("zone".to_owned(), ZONES[z].to_owned())]))
                .unwrap_or_default(),
            taints: if gpu {
                vec![Taint {
                    key: "gpu".into(),
                    value: "true".into(),
                    effect: TaintEffect::NoSchedule,
                }]
            } else {
                Vec::new()
            },
            cordoned,
        })
}

fn workload_strategy(priorities: i32, constrained: bool) -> impl Strategy<Value = Workload> {
    (
        (100u64..=8000, 64u64..=16384, 1u64..=50),
        0..priorities,
        prop::option::of(0..ZONES.len()),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1u32..=2),
    )
        .prop_map(
            move |((millis, mib, pids), priority, zone, tolerates_gpu, anti, spread)| Workload {
                requests: Resources::new(millis, mib << 20, pids),
                priority,
                zone: zone.filter(|_| constrained),
                tolerates_gpu,
                anti_affinity: anti && constrained,
                spread: spread.filter(|_| constrained),
            },
        )
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::LeastAllocated),
        Just(Policy::MostAllocated),
        Just(Policy::Balanced)
    ]
}

fn spec(index: usize, w: &Workload) -> InstanceSpec {
    let name = format!("w{index}");
    let mut spec = InstanceSpec::new(name.clone(), w.requests);
    spec.priority = w.priority;
    if let Some(zone) = w.zone {
        spec.node_selector.insert("zone".into(), ZONES[zone].into());
    }
    if w.tolerates_gpu {
        spec.tolerations.push(Toleration {
            key: Some("gpu".into()),
            value: None,
            effect: None,
        });
    }
    if w.anti_affinity {
        spec.anti_affinity.push(WorkloadTerm {
            workload: name,
            topology: Topology::Node,
        });
    }
    spec.spread = w.spread.map(|max_skew| Spread {
        topology: Topology::Label("zone".into()),
        max_skew,
    });
    spec
}

fn build(nodes: Vec<NodeSpec>) -> Cluster {
    let mut cluster = Cluster::new();
    for (i, mut node) in nodes.into_iter().enumerate() {
        node.name = format!("node-{i}");
        cluster.add_node(node);
    }
    cluster
}

fn batch(workloads: &[Workload], replicas: &[usize]) -> Vec<InstanceSpec> {
    workloads
        .iter()
        .zip(replicas)
        .enumerate()
        .flat_map(|(i, (w, &n))| std::iter::repeat_n(spec(i, w), n))
        .collect()
}

/// Every node holds exactly the requests of its instances, within its capacity.
fn assert_no_overcommit(cluster: &Cluster) {
    for (n, node) in cluster.nodes().iter().enumerate() {
        let sum = node
            .instances
            .iter()
            .map(|&id| cluster.instance(id).expect("listed instance is placed"))
            .inspect(|p| assert_eq!(p.node, NodeId(n as u32)))
            .fold(Resources::ZERO, |sum, p| sum + p.spec.requests);
        assert_eq!(sum, node.allocated);
        assert!(
            node.allocated.fits_within(&node.spec.capacity),
            "{} overcommitted",
            node.spec.name
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn placements_respect_capacity_cordon_taints_selectors_and_anti_affinity(
        nodes in prop::collection::vec(node_strategy(), 1..12),
        workloads in prop::collection::vec(workload_strategy(3, true), 1..6),
        replicas in prop::collection::vec(1usize..8, 6),
        policy in policy_strategy(),
    ) {
        let mut cluster = build(nodes);
        let scheduler = Scheduler::new(policy);
        let outcomes = scheduler.place_batch(&mut cluster, batch(&workloads, &replicas));
        assert_no_overcommit(&cluster);
        for outcome in &outcomes {
            if let Outcome::Preempted { node, victims, .. } = outcome {
                for (id, victim) in victims {
                    prop_assert!(cluster.instance(*id).is_none());
                    let placed = cluster.nodes()[node.0 as usize].instances.iter().filter_map(|&i| cluster.instance(i));
                    let top = placed.map(|p| p.spec.priority).max().unwrap();
                    prop_assert!(victim.priority < top);
                }
            }
        }
        let mut per_node: HashMap<(String, NodeId), u32> = HashMap::new();
        for (_, placed) in cluster.placed() {
            let node = &cluster.nodes()[placed.node.0 as usize];
            prop_assert!(!node.spec.cordoned);
            prop_assert!(node.spec.taints.is_empty() || !placed.spec.tolerations.is_empty());
            for (key, value) in &placed.spec.node_selector {
                prop_assert_eq!(node.spec.labels.get(key), Some(value));
            }
            if !placed.spec.anti_affinity.is_empty() {
                *per_node.entry((placed.spec.workload.clone(), placed.node)).or_default() += 1;
            }
        }
        prop_assert!(per_node.values().all(|&n| n == 1), "anti-affinity broken: {per_node:?}");
    }

    #[test]
    fn spread_never_exceeds_its_max_skew(
        nodes in prop::collection::vec(node_strategy(), 1..12),
        workloads in prop::collection::vec(workload_strategy(1, true), 1..6),
        replicas in prop::collection::vec(1usize..10, 6),
        policy in policy_strategy(),
    ) {
        let mut cluster = build(nodes);
        let zones: Vec<String> = {
            let mut z: Vec<String> = cluster.nodes().iter().filter_map(|n| n.spec.labels.get("zone").cloned()).collect();
            z.sort();
            z.dedup();
            z
        };
        Scheduler::new(policy).place_batch(&mut cluster, batch(&workloads, &replicas));
        for (i, w) in workloads.iter().enumerate() {
            let Some(max_skew) = w.spread else { continue };
            let name = format!("w{i}");
            let mut counts: BTreeMap<&str, u32> = zones.iter().map(|z| (z.as_str(), 0)).collect();
            for (_, placed) in cluster.placed().filter(|(_, p)| p.spec.workload == name) {
                let zone = cluster.nodes()[placed.node.0 as usize].spec.labels.get("zone");
                let zone = zone.expect("spread instances land on labelled nodes");
                *counts.get_mut(zone.as_str()).unwrap() += 1;
            }
            let (Some(min), Some(max)) = (counts.values().min(), counts.values().max()) else {
                // No labelled node, so no domain: nothing of the workload may be placed.
                prop_assert_eq!(cluster.placed().filter(|(_, p)| p.spec.workload == name).count(), 0);
                continue;
            };
            prop_assert!(max - min <= max_skew, "{name}: {counts:?} skew over {max_skew}");
        }
    }

    #[test]
    fn preemption_evicts_only_strictly_lower_priorities_and_makes_room(
        nodes in prop::collection::vec(node_strategy(), 1..8),
        fill in prop::collection::vec(workload_strategy(3, false), 1..5),
        replicas in prop::collection::vec(1usize..12, 5),
        urgent in workload_strategy(1, false),
    ) {
        let mut cluster = build(nodes);
        let scheduler = Scheduler::new(Policy::MostAllocated);
        scheduler.place_batch(&mut cluster, batch(&fill, &replicas));
        let mut newcomer = spec(99, &urgent);
        newcomer.priority = 2;
        let before: HashMap<InstanceId, i32> = cluster.placed().map(|(id, p)| (id, p.spec.priority)).collect();
        match scheduler.place(&mut cluster, newcomer.clone()) {
            Outcome::Preempted { victims, node, instance } => {
                prop_assert!(!victims.is_empty());
                for (id, spec) in &victims {
                    prop_assert!(spec.priority < newcomer.priority);
                    prop_assert_eq!(before[id], spec.priority);
                }
                prop_assert_eq!(cluster.instance(instance).unwrap().node, node);
                assert_no_overcommit(&cluster);
            }
            Outcome::Placed { .. } => assert_no_overcommit(&cluster),
            Outcome::Unschedulable { .. } => {
                // Nothing moved, and no admissible node could be freed up.
                prop_assert_eq!(cluster.placed().count(), before.len());
                for node in cluster.nodes() {
                    if node.spec.cordoned || !node.spec.taints.is_empty() && newcomer.tolerations.is_empty() {
                        continue;
                    }
                    let evictable = node.instances.iter().filter_map(|&i| cluster.instance(i))
                        .filter(|p| p.spec.priority < newcomer.priority)
                        .fold(node.free(), |room, p| room + p.spec.requests);
                    prop_assert!(!newcomer.requests.fits_within(&evictable));
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_placements(seed in any::<u64>(), policy in policy_strategy()) {
        let run = || {
            let mut cluster = build(simulation::nodes(seed, 60));
            let batch = simulation::instances(seed, 600, Constraints::SpreadAndAntiAffinity);
            Scheduler::new(policy)
                .place_batch(&mut cluster, batch)
                .iter()
                .map(|o| match o {
                    Outcome::Placed { node, .. } | Outcome::Preempted { node, .. } => Some(*node),
                    Outcome::Unschedulable { .. } => None,
                })
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(run(), run());
    }

    #[test]
    fn preemption_evicts_no_more_important_instances_than_some_node_needs(
        nodes in prop::collection::vec(node_strategy(), 1..10),
        running in prop::collection::vec((workload_strategy(6, false), 0usize..10, any::<bool>()), 1..40),
        urgent in workload_strategy(1, false),
        priority in 1i32..7,
    ) {
        // Instances of random priorities bound where they fit, some evicted again: the room
        // indexes preemption reads follow every bind and eviction.
        let mut cluster = build(nodes);
        let count = cluster.nodes().len();
        for (i, (w, node, evict)) in running.iter().enumerate() {
            if let Ok(id) = cluster.bind(NodeId((node % count) as u32), spec(i, w)) {
                if *evict {
                    cluster.evict(id);
                }
            }
        }
        let mut newcomer = spec(99, &urgent);
        newcomer.priority = priority;
        // Per node the newcomer may go to, the lowest priority that evicting up to makes room.
        let cheapest = cluster
            .nodes()
            .iter()
            .filter(|n| !n.spec.cordoned && (n.spec.taints.is_empty() || !newcomer.tolerations.is_empty()))
            .filter_map(|n| {
                let mut placed: Vec<&Placed> = n.instances.iter().filter_map(|&i| cluster.instance(i)).collect();
                placed.sort_by_key(|p| p.spec.priority);
                let mut room = n.free();
                placed
                    .iter()
                    .take_while(|p| p.spec.priority < priority)
                    .find_map(|p| {
                        room += p.spec.requests;
                        newcomer.requests.fits_within(&room).then_some(p.spec.priority)
                    })
            })
            .min();
        let before = cluster.placed().count();
        match Scheduler::new(Policy::MostAllocated).place(&mut cluster, newcomer.clone()) {
            Outcome::Preempted { victims, .. } => {
                let top = victims.iter().map(|(_, v)| v.priority).max();
                prop_assert!(top.is_some_and(|top| top < priority));
                prop_assert_eq!(top, cheapest);
                prop_assert_eq!(cluster.placed().count(), before + 1 - victims.len());
            }
            Outcome::Placed { .. } => {}
            Outcome::Unschedulable { .. } => {
                prop_assert_eq!(cheapest, None);
                prop_assert_eq!(cluster.placed().count(), before);
            }
        }
        assert_no_overcommit(&cluster);
    }

    #[test]
    fn what_a_batch_leaves_unschedulable_fits_nowhere_after_it(
        nodes in prop::collection::vec(node_strategy(), 1..12),
        workloads in prop::collection::vec(workload_strategy(3, true), 1..6),
        replicas in prop::collection::vec(1usize..10, 6),
        policy in policy_strategy(),
    ) {
        let mut cluster = build(nodes);
        let scheduler = Scheduler::new(policy);
        let outcomes = scheduler.place_batch(&mut cluster, batch(&workloads, &replicas));
        assert_no_overcommit(&cluster);
        for outcome in outcomes {
            if let Outcome::Unschedulable { spec, why } = outcome {
                prop_assert_eq!(why.feasible(), 0);
                let now = scheduler.explain(&mut cluster, &spec);
                prop_assert_eq!(now.feasible(), 0, "{} fits now: {}", spec.workload, now);
            }
        }
    }
}
