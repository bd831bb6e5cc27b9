//! Node identity in a real cluster (the daemon and agents in network namespaces,
//! tests/src/cluster.rs): an address belongs to one node, an existing node joins again only
//! with its own certificate or a token the admin made for it, `delete node` forgets a node
//! and replaces its instances, certificates are renewed before they expire, and an expired
//! admin certificate is refused by the agents.

use mini_sched::api::{Event, NodeState, Phase};
use mini_tests::cluster::{Cluster, JoinAttempt, Options};
use mini_tests::{fixture_rootfs, unique, wait_until};
use std::time::{Duration, SystemTime};

/// How long the cluster may take to converge (debug builds, a busy 2-core VM).
const SETTLE: Duration = Duration::from_secs(45);

/// One instance that keeps running.
fn sleeper(name: &str) -> String {
    format!(
        "name: {name}\n\
         source: {{rootfs: {rootfs}}}\n\
         command: [sh, -c, \"exec sleep 1000\"]\n\
         replicas: 1\n\
         resources:\n  requests: {{cpu: 50m, memory: 8Mi, pids: 16}}\n\
         stop_timeout: 2s\n",
        rootfs = fixture_rootfs().display()
    )
}

/// The running instance of `workload` (waits for there to be exactly one).
fn running(c: &Cluster, workload: &str) -> mini_sched::api::InstanceView {
    let mut last = Vec::new();
    let one = wait_until(SETTLE, || {
        last = c
            .instances()
            .into_iter()
            .filter(|i| i.workload == workload && !i.phase.is_final())
            .collect();
        last.len() == 1 && last[0].phase == Phase::Running
    });
    assert!(one, "{workload}: {last:#?}\n{}", c.logs());
    last.remove(0)
}

/// A new join token from the CLI (`token create ARGS`).
fn token(c: &Cluster, args: &[&str]) -> String {
    let dir = c.state_dir();
    let mut all = vec!["token", "create", "--state-dir", dir.to_str().unwrap()];
    all.extend(args);
    let out = c.cli_ok(&all);
    out.split_whitespace()
        .find(|w| w.starts_with("mst1."))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_string()
}

#[test]
fn an_address_belongs_to_one_node_and_a_rejoin_needs_the_nodes_certificate() {
    let mut c = Cluster::start(1, Options::default());
    let w = unique("w");
    c.apply_ok(&sleeper(&w));
    let before = running(&c, &w);
    let n0 = c.node(0).to_string();

    // An impostor with a token, at n0's address under another name.
    let msg = c
        .join_from_hub(JoinAttempt {
            node: "impostor",
            token: c.token(),
            advertise: c.agent_address(0),
            labels: &[],
        })
        .map(|_| ())
        .expect_err("a join at a taken address");
    assert!(
        msg.contains("conflict") && msg.contains(&format!("belongs to node {n0}")),
        "{msg}"
    );
    // ... and under n0's own name, without n0's certificate.
    let msg = c
        .join_from_hub(JoinAttempt {
            node: &n0,
            token: c.token(),
            advertise: c.agent_address(0),
            labels: &["zone=evil"],
        })
        .map(|_| ())
        .expect_err("a re-join without the certificate");
    assert!(
        msg.contains("conflict") && msg.contains("current certificate"),
        "{msg}"
    );
    let nodes = c.nodes();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].labels.get("zone").map(String::as_str), Some("z0"));

    // The node itself joins again with its certificate (new labels), and its instance runs
    // on, never fenced.
    c.rejoin_agent(0, &["zone=z0", "disk=ssd"]);
    let relabelled = wait_until(SETTLE, || {
        c.nodes()
            .iter()
            .any(|n| n.labels.get("disk").map(String::as_str) == Some("ssd"))
    });
    assert!(relabelled, "{:?}\n{}", c.nodes(), c.logs());
    let after = running(&c, &w);
    assert_eq!((after.id, after.restarts), (before.id.clone(), 0));
    assert_eq!(c.agent_container_ids(0), vec![before.id.clone()]);

    // A token the admin made for n0 lets a fresh agent replace it; once.
    let forced = token(&c, &["--rejoin", &n0]);
    let _replacement = c
        .join_from_hub(JoinAttempt {
            node: &n0,
            token: &forced,
            advertise: c.agent_address(0),
            labels: &[],
        })
        .expect("a join with a token made for the node");
    let msg = c
        .join_from_hub(JoinAttempt {
            node: &n0,
            token: &forced,
            advertise: c.agent_address(0),
            labels: &[],
        })
        .map(|_| ())
        .expect_err("the token's one use is spent");
    assert!(msg.contains("forbidden"), "{msg}");
}

#[test]
fn a_deleted_node_is_forgotten_and_its_instances_are_replaced() {
    let c = Cluster::start(2, Options::default());
    let w = unique("w");
    c.apply_ok(&sleeper(&w));
    let first = running(&c, &w);
    let gone = first.node.clone().expect("placed");
    let out = c.cli_ok(&["delete", "node", &gone]);
    assert!(out.contains("deleted"), "{out}");
    let replaced = running(&c, &w);
    assert_ne!(replaced.id, first.id);
    assert_ne!(replaced.node.as_deref(), Some(gone.as_str()));
    let names: Vec<String> = c.nodes().into_iter().map(|n| n.name).collect();
    assert!(!names.contains(&gone), "{names:?}");
    let out = c.cli(&["delete", "node", &gone]);
    assert!(!out.status.success(), "a second delete succeeded");
    // The address is free again: a new node (with a token) may have it.
    let i = c.index_of(&gone);
    let _newcomer = c
        .join_from_hub(JoinAttempt {
            node: "newcomer",
            token: c.token(),
            advertise: c.agent_address(i),
            labels: &[],
        })
        .expect("a join at a deleted node's address");
}

#[test]
fn certificates_are_renewed_before_they_expire_and_an_expired_admin_certificate_is_refused() {
    let options = Options {
        daemon_args: ["--cert-ttl", "1m", "--cert-renew-before", "50s"]
            .map(String::from)
            .to_vec(),
        ..Options::default()
    };
    let c = Cluster::start(1, options);
    let cert = c.agent_state_dir(0).join("pki/agent.pem");
    let not_after = || {
        let pem = std::fs::read_to_string(&cert).expect("the agent's certificate");
        mini_shim::agent::pki::inspect(&pem).unwrap().not_after
    };
    let joined = not_after();
    let left = joined.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(left <= Duration::from_secs(61), "issued for {left:?}");
    // Renewed about 10 s after the join, before it expires.
    let mut renewed = joined;
    let done = wait_until(Duration::from_secs(60), || {
        renewed = not_after();
        renewed != joined
    });
    assert!(done, "not renewed\n{}", c.logs());
    assert!(SystemTime::now() < joined, "renewed only after it expired");
    assert!(renewed > joined);
    let events: Vec<Event> =
        serde_json::from_str(&c.cli_ok(&["events", "-o", "json"])).expect("events as JSON");
    assert!(
        events.iter().any(|e| e.reason == "CertificateRenewed"),
        "{events:#?}"
    );
    // Past the first certificate's end (and a node timeout), the node is still heard from:
    // the agent serves the renewed one.
    let past = joined + Duration::from_secs(5);
    wait_until(Duration::from_secs(90), || SystemTime::now() > past);
    let ready = wait_until(SETTLE, || {
        c.nodes()
            .first()
            .is_some_and(|n| n.state == NodeState::Ready && n.last_heartbeat.is_some())
    });
    assert!(ready, "{:?}\n{}", c.nodes(), c.logs());
    assert!(!c
        .cli_ok(&["describe", "node", c.node(0)])
        .contains("NodeLost"));

    // An admin certificate lives as long as it was made for.
    let dir = c.state_dir();
    let dir = dir.to_str().unwrap();
    c.admin_get(0, "/v1/version")
        .expect("the admin certificate works");
    c.cli_ok(&["cert", "admin", "--state-dir", dir, "--ttl", "1s"]);
    let mut error = String::new();
    let refused = wait_until(SETTLE, || match c.admin_get(0, "/v1/version") {
        Ok(_) => false,
        Err(e) => {
            error = e;
            true
        }
    });
    assert!(refused, "an expired admin certificate is accepted");
    assert!(error.contains("expired"), "{error}");
    c.cli_ok(&["cert", "admin", "--state-dir", dir, "--ttl", "1h"]);
    c.admin_get(0, "/v1/version")
        .expect("a new admin certificate works");
}
