//! Services against the real daemon (issue 15, scheduler side): `apply` of a `kind: service`
//! file, `get services` (table and JSON), `describe service`, `delete service`; bad input
//! with every problem listed (against the cluster too: node-port range, addresses and node
//! ports other services hold) and nothing changed; addresses kept across a daemon restart and
//! never handed out twice. The daemon runs on loopback without agents: the workload's
//! instances stay pending, so the services have no ready endpoints.

use mini_sched::api::ServiceView;
use mini_tests::lone_daemon::{run_init, LoneDaemon};
use mini_tests::TempDir;

/// The services the daemon lists (`get services -o json`).
fn listed(daemon: &LoneDaemon) -> Vec<ServiceView> {
    daemon.json(&["get", "services", "-o", "json"])
}

const WEB: &str = "name: web\nlabels: {app: web}\nsource: {rootfs: /srv/none}\nnetwork: cluster\nreplicas: 2\nstop_drain: 1s\n";

#[test]
fn a_service_is_applied_listed_described_and_deleted() {
    let mut daemon = LoneDaemon::init("sched-services", &[]);
    daemon.start();
    assert!(daemon.apply(WEB).status.success());
    let out = daemon.apply(
        "kind: service\nname: web\nselector: {labels: {app: web}}\nports: [{port: 80, target_port: 8080, node_port: 30080}]\nbalance: even\n",
    );
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("service/web created (address 10.96.0.1)"),
        "{said}"
    );
    let services = listed(&daemon);
    assert_eq!(services.len(), 1);
    let web = &services[0];
    assert_eq!(web.address, "10.96.0.1");
    assert_eq!(web.dns_name, "web.cluster.local");
    assert_eq!((web.ready, web.total), (0, 2), "{web:?}");
    assert_eq!(web.balance, "even");
    assert_eq!(web.ports[0].node_port, Some(30080));
    let table = daemon.ok(&["get", "services"]);
    assert!(table.contains("ADDRESS"), "{table}");
    assert!(table.contains("80:8080/tcp(node 30080)"), "{table}");
    assert!(table.contains("0/2"), "{table}");
    // Applying it again changes nothing; a new setting keeps the address.
    let again = daemon.apply(
        "kind: service\nname: web\nselector: {labels: {app: web}}\nports: [{port: 80, target_port: 8080, node_port: 30080}]\nbalance: even\n",
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"));
    let changed = daemon.apply(
        "kind: service\nname: web\nselector: {workload: web}\nports: [{port: 80, target_port: 8080}]\n",
    );
    assert!(
        String::from_utf8_lossy(&changed.stdout)
            .contains("service/web configured (address 10.96.0.1)"),
        "{changed:?}"
    );
    let text = daemon.ok(&["describe", "service", "web"]);
    for needle in [
        "10.96.0.1",
        "web.cluster.local",
        "workload=web",
        "web-1",
        "web-2",
        "pending",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    // Each selected instance is listed, not ready, with why.
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("web-"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows.iter()
            .all(|r| r.contains("no") && r.contains("pending")),
        "{text}"
    );
    let events = daemon.ok(&["events"]);
    assert!(events.contains("service/web"), "{events}");
    let deleted = daemon.ok(&["delete", "service", "web"]);
    assert!(deleted.contains("service/web deleted"), "{deleted}");
    assert!(listed(&daemon).is_empty());
    let missing = daemon.cli(&["describe", "service", "web"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no service web"));
}

#[test]
fn bad_services_list_every_problem_and_change_nothing() {
    let mut daemon = LoneDaemon::init("sched-services", &["--node-port-range", "30000-30100"]);
    daemon.start();
    let first = daemon.apply(
        "kind: service\nname: db\nselector: {workload: db}\nports: [{port: 5432, node_port: 30050}]\naddress: 10.96.0.50\n",
    );
    assert!(first.status.success(), "{first:?}");
    let bad = daemon.apply(
        "kind: service\nname: web\nselector: {workload: web}\nports:\n  - {port: 70000}\n  - {port: 80, protocol: sctp}\n  - {port: 81, node_port: 30050}\n  - {port: 82, node_port: 31000}\naddress: 10.96.0.50\n",
    );
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    for needle in [
        "ports[0].port: 70000 is not a port number",
        "ports[1].protocol: \"sctp\" is not one of tcp, udp",
        "ports[2].node_port: tcp 30050 is taken by service db",
        "ports[3].node_port: 31000 is outside the node-port range 30000-30100",
        "address: 10.96.0.50 is taken by service db",
    ] {
        assert!(said.contains(needle), "{needle} missing:\n{said}");
    }
    let names: Vec<String> = listed(&daemon).into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["db"]);
    // A selector matching nothing is fine.
    let lonely = daemon.apply(
        "kind: service\nname: lonely\nselector: {labels: {app: nobody}}\nports: [{port: 53, protocol: udp}]\n",
    );
    assert!(lonely.status.success(), "{lonely:?}");
    // init refuses a service CIDR overlapping the cluster network.
    let dir = TempDir::new("sched-services-init");
    let init = run_init(
        &dir.path().join("state"),
        &["--service-cidr", "10.88.0.0/20"],
    );
    assert!(!init.status.success());
    let said = String::from_utf8_lossy(&init.stderr);
    assert!(said.contains("overlaps the cluster CIDR"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");
}

#[test]
fn addresses_survive_a_restart_and_are_never_handed_out_twice() {
    let mut daemon = LoneDaemon::init("sched-services", &["--service-cidr", "10.100.0.0/24"]);
    daemon.start();
    let service = |name: &str| {
        format!(
            "kind: service\nname: {name}\nselector: {{workload: {name}}}\nports: [{{port: 80}}]\n"
        )
    };
    for name in ["a", "b", "c"] {
        assert!(daemon.apply(&service(name)).status.success());
    }
    let before: Vec<(String, String)> = listed(&daemon)
        .into_iter()
        .map(|s| (s.name, s.address))
        .collect();
    assert_eq!(
        before,
        [
            ("a".to_string(), "10.100.0.1".to_string()),
            ("b".into(), "10.100.0.2".into()),
            ("c".into(), "10.100.0.3".into())
        ]
    );
    daemon.ok(&["delete", "service", "b"]);
    daemon.stop();
    daemon.start();
    let after: Vec<(String, String)> = listed(&daemon)
        .into_iter()
        .map(|s| (s.name, s.address))
        .collect();
    assert_eq!(after, [before[0].clone(), before[2].clone()]);
    // The next one is not b's freed address, nor any address held.
    assert!(daemon.apply(&service("d")).status.success());
    let d = listed(&daemon)
        .into_iter()
        .find(|s| s.name == "d")
        .expect("d");
    assert_eq!(d.address, "10.100.0.4");
}
