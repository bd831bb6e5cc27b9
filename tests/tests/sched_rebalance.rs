//! The rebalancer across real hosts (tests/src/cluster.rs): instances that burn cpu are moved,
//! make-before-break, from the node they crowd to idle ones by their *measured* usage (their
//! requests are tiny), and once the loads are within the threshold nothing moves any more.

use mini_sched::api::{InstanceView, Phase};
use mini_tests::cluster::{Cluster, Options};
use mini_tests::{fixture_rootfs, unique, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(60);

/// Running, ready instances of `workload`, by node.
fn by_node(c: &Cluster, workload: &str) -> BTreeMap<String, Vec<InstanceView>> {
    let mut map: BTreeMap<String, Vec<InstanceView>> = BTreeMap::new();
    for i in c.instances() {
        if i.workload == workload && i.phase == Phase::Running && i.ready {
            map.entry(i.node.clone().unwrap_or_default())
                .or_default()
                .push(i);
        }
    }
    map
}

#[test]
fn measured_cpu_moves_work_off_a_hot_node_and_then_stays_put() {
    let c = Cluster::start(3, Options::default());
    // Both burners go to the first node: the others take nothing new for now.
    for i in 1..3 {
        c.cli_ok(&["cordon", c.node(i)]);
    }
    let w = unique("burn");
    c.apply_ok(&format!(
        "name: {w}\n\
         source: {{rootfs: {rootfs}}}\n\
         command: [sh, -c, 'while :; do :; done']\n\
         replicas: 2\n\
         resources:\n  requests: {{cpu: 10m, memory: 8Mi}}\n  limits: {{cpu: 500m, memory: 32Mi}}\n\
         stop_timeout: 1s\n",
        rootfs = fixture_rootfs().display()
    ));
    let hot = c.node(0).to_string();
    let placed = wait_until(SETTLE, || {
        by_node(&c, &w).get(&hot).is_some_and(|v| v.len() == 2)
    });
    assert!(placed, "the burners did not start on {hot}:\n{}", c.logs());
    for i in 1..3 {
        c.cli_ok(&["uncordon", c.node(i)]);
    }
    // By requests (10m each) the nodes are equally empty; by measurement the first is busy:
    // 2 × 500m of its 2 cpus. Usage needs two heartbeats; ask until a move starts.
    let mut said = String::new();
    let moved = wait_until(SETTLE, || {
        said = c.cli_ok(&["rebalance"]);
        said.contains("moving to")
    });
    assert!(
        moved,
        "the rebalancer never moved a burner: {said}\n{}",
        c.logs()
    );
    let spread = wait_until(SETTLE, || {
        let map = by_node(&c, &w);
        map.values().map(Vec::len).sum::<usize>() == 2 && map.len() == 2
    });
    assert!(
        spread,
        "the burners did not end on two nodes: {:#?}\n{}",
        by_node(&c, &w),
        c.logs()
    );
    // Each burner's measured usage is shown by describe.
    let burner = by_node(&c, &w)
        .values()
        .flatten()
        .next()
        .unwrap()
        .id
        .clone();
    let mut described = String::new();
    let measured = wait_until(SETTLE, || {
        described = c.cli_ok(&["describe", "instance", &burner]);
        described.contains("(measured)")
    });
    assert!(measured, "no measured usage in describe: {described}");
    // Balanced now (500m against 500m: 0.25 against 0.25 of capacity): asking again, and
    // again after the cool-down of measurements, moves nothing.
    let before: Vec<String> = by_node(&c, &w)
        .values()
        .flatten()
        .map(|i| i.id.clone())
        .collect();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(1));
        let out = c.cli_ok(&["rebalance"]);
        assert!(!out.contains("moving to"), "it moved again: {out}");
    }
    let after: Vec<String> = by_node(&c, &w)
        .values()
        .flatten()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(before, after, "instances changed without a move");
    c.cli_ok(&["delete", "workload", &w]);
    let gone = wait_until(SETTLE, || c.workloads().iter().all(|x| x.name != w));
    assert!(gone, "the workload was not deleted:\n{}", c.logs());
}
