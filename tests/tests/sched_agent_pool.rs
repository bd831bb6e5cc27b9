//! The scheduler's calls to an agent reuse pooled connections (counted by the agent's own
//! `/metrics`), and a restarted agent — every pooled connection to it dead — is called again
//! on fresh connections without its node being lost or its container restarted.

use mini_sched::api::{NodeState, Phase};
use mini_tests::cluster::{Cluster, Options};
use mini_tests::{fixture_rootfs, wait_until};
use std::time::Duration;

/// How long a cluster may take to converge (a busy 2-core machine).
const SETTLE: Duration = Duration::from_secs(60);

/// Agent 0's `mini_shim_connections_total` and `mini_shim_requests_total`, this scrape's
/// own connection and request included.
fn counters(c: &Cluster) -> (u64, u64) {
    let text = c.admin_get(0, "/metrics").expect("scrape agent 0");
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse::<f64>()
            .unwrap() as u64
    };
    (
        value("mini_shim_connections_total"),
        value("mini_shim_requests_total"),
    )
}

/// Waits until the scheduler has made `calls` more calls to agent 0 (besides the test's own
/// scrapes), and returns how many connections they came on.
fn connections_for(c: &Cluster, calls: u64) -> (u64, u64) {
    let (c0, r0) = counters(c);
    let mut scrapes = 0;
    let mut last = (c0, r0);
    let done = wait_until(SETTLE, || {
        last = counters(c);
        scrapes += 1;
        last.1 - r0 - scrapes >= calls
    });
    assert!(done, "the scheduler does not call the agent: {last:?}");
    (last.0 - c0 - scrapes, last.1 - r0 - scrapes)
}

#[test]
fn calls_reuse_pooled_connections_and_a_restarted_agent_is_reached_again() {
    let mut c = Cluster::start(
        1,
        Options {
            node_timeout: Duration::from_secs(10),
            ..Options::default()
        },
    );
    let spec = format!(
        "name: pooled\nsource: {{rootfs: {}}}\ncommand: [sleep, '1000']\nreplicas: 1\n\
         resources:\n  requests: {{cpu: 50m, memory: 8Mi}}\nstop_timeout: 1s\n",
        fixture_rootfs().display()
    );
    c.apply_ok(&spec);
    assert!(wait_until(SETTLE, || c
        .instances()
        .iter()
        .any(|i| i.phase == Phase::Running)));

    // Two calls per heartbeat (node status and the container list) every 500 ms: 40 calls
    // on a handful of connections, not 40.
    let (connections, calls) = connections_for(&c, 40);
    assert!(
        connections <= 4,
        "{calls} calls took {connections} connections:\n{}",
        c.logs()
    );

    // A restart kills every pooled connection; the next calls open fresh ones.
    let before = c.instances();
    c.kill_agent(0);
    c.restart_agent(0);
    connections_for(&c, 10);
    let node = &c.nodes()[0];
    assert_eq!(node.state, NodeState::Ready, "{node:?}\n{}", c.logs());
    let after = c.instances();
    assert_eq!(after.len(), 1);
    assert_eq!(
        (&after[0].id, after[0].restarts, &after[0].started_at),
        (&before[0].id, before[0].restarts, &before[0].started_at),
        "the container was restarted"
    );
}
