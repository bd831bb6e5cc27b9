//! Priority, preemption and dependencies across real hosts (tests/src/cluster.rs): a
//! higher-priority workload that fits nowhere evicts a lower-priority instance, whose
//! replacement then waits with placement's reason; a workload that depends on another waits for
//! it to be ready and is placed beside it; /metrics counts what happened.

use mini_sched::api::{InstanceView, Phase};
use mini_tests::cluster::{Cluster, Options};
use mini_tests::{fixture_rootfs, unique, wait_until};
use std::process::Command;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(60);

fn spec(name: &str, replicas: u32, priority: i32, cpu: &str, script: &str, extra: &str) -> String {
    format!(
        "name: {name}\n\
         source: {{rootfs: {rootfs}}}\n\
         command: [sh, -c, {script:?}]\n\
         replicas: {replicas}\n\
         priority: {priority}\n\
         resources:\n  requests: {{cpu: {cpu}, memory: 8Mi}}\n\
         stop_timeout: 1s\n\
         {extra}",
        rootfs = fixture_rootfs().display()
    )
}

fn of(c: &Cluster, workload: &str) -> Vec<InstanceView> {
    c.instances()
        .into_iter()
        .filter(|i| i.workload == workload)
        .collect()
}

fn running(c: &Cluster, workload: &str) -> Vec<InstanceView> {
    of(c, workload)
        .into_iter()
        .filter(|i| i.phase == Phase::Running && i.ready)
        .collect()
}

fn metrics(c: &Cluster) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(c.socket())
        .arg("http://scheduler/metrics")
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("text")
}

#[test]
fn a_higher_priority_instance_preempts_and_the_victim_waits_with_the_reason() {
    let c = Cluster::start(3, Options::default());
    let capacity = c.nodes()[0].capacity.cpu_millis;
    assert!(
        c.nodes().iter().all(|n| n.capacity.cpu_millis == capacity),
        "the agents share one host: equal capacity"
    );
    // Three low-priority instances that each take three quarters of a node's cpu.
    let low = unique("low");
    let big = format!("{}m", capacity * 3 / 4);
    c.apply_ok(&spec(&low, 3, 0, &big, "exec sleep 1000", ""));
    let placed = wait_until(SETTLE, || running(&c, &low).len() == 3);
    assert!(
        placed,
        "low did not start: {:#?}\n{}",
        of(&c, &low),
        c.logs()
    );
    // Half a node: fits nowhere without evicting one of them.
    let high = unique("high");
    let half = format!("{}m", capacity / 2);
    c.apply_ok(&spec(&high, 1, 100, &half, "exec sleep 1000", ""));
    let mut last = Vec::new();
    let preempted = wait_until(SETTLE, || {
        last = of(&c, &low);
        running(&c, &high).len() == 1
            && last.iter().filter(|i| i.phase == Phase::Running).count() == 2
            && last
                .iter()
                .any(|i| i.phase == Phase::Pending && i.reason.is_some())
            && last.iter().any(|i| i.phase == Phase::Stopped)
    });
    assert!(
        preempted,
        "no preemption: high {:#?}\nlow {last:#?}\n{}",
        of(&c, &high),
        c.logs()
    );
    let victim = last
        .iter()
        .find(|i| i.phase == Phase::Stopped)
        .expect("the evicted instance is remembered");
    assert!(
        victim
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("preempted by"),
        "{victim:#?}"
    );
    let pending = last.iter().find(|i| i.phase == Phase::Pending).unwrap();
    let why = pending.reason.clone().unwrap();
    assert!(
        why.contains("0/3 nodes available") && why.contains("insufficient resources"),
        "{why}"
    );
    let described = c.cli_ok(&["describe", "instance", &pending.id]);
    assert!(described.contains("insufficient resources"), "{described}");
    // Which filter rejected which node: every node, by name.
    for node in c.nodes() {
        assert!(
            described
                .lines()
                .any(|l| l.split_whitespace().next() == Some(node.name.as_str())
                    && l.ends_with("insufficient resources")),
            "no verdict for {}: {described}",
            node.name
        );
    }
    let text = metrics(&c);
    let preemptions: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mini_sched_preemptions_total "))
        .expect("the preemption counter")
        .parse()
        .unwrap();
    assert!(preemptions >= 1.0, "{text}");
    assert!(
        text.contains(&format!(
            "mini_sched_instances{{workload=\"{low}\",phase=\"pending\"}} 1"
        )),
        "{text}"
    );
    for w in [&high, &low] {
        c.cli_ok(&["delete", "workload", w]);
    }
    let gone = wait_until(SETTLE, || c.workloads().is_empty());
    assert!(gone, "not deleted:\n{}", c.logs());
}

#[test]
fn a_dependent_waits_for_its_dependency_and_is_placed_beside_it() {
    let c = Cluster::start(3, Options::default());
    let db = unique("db");
    let app = unique("app");
    c.apply_ok(&spec(
        &app,
        1,
        0,
        "10m",
        "exec sleep 1000",
        &format!("depends_on: [{db}]\n"),
    ));
    let waiting = wait_until(SETTLE, || {
        of(&c, &app).iter().any(|i| {
            i.phase == Phase::Pending
                && i.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("waiting for"))
        })
    });
    assert!(waiting, "app did not wait for db: {:#?}", of(&c, &app));
    // The dependency turns ready only after a few seconds.
    c.apply_ok(&spec(
        &db,
        1,
        0,
        "10m",
        "sleep 3; touch /tmp/ready; exec sleep 1000",
        "readiness:\n  exec: {command: [test, -f, /tmp/ready]}\n  period: 500ms\n",
    ));
    let ready = wait_until(SETTLE, || running(&c, &app).len() == 1);
    assert!(ready, "app never ran: {:#?}\n{}", of(&c, &app), c.logs());
    let db_instance = running(&c, &db).pop().expect("db is ready before app runs");
    let app_instance = running(&c, &app).pop().unwrap();
    assert_eq!(
        app_instance.node, db_instance.node,
        "depends_on prefers the dependency's node"
    );
    for w in [&app, &db] {
        c.cli_ok(&["delete", "workload", w]);
    }
    let gone = wait_until(SETTLE, || c.workloads().is_empty());
    assert!(gone, "not deleted:\n{}", c.logs());
}
