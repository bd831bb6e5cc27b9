//! The cluster network (`network: cluster`) across real hosts: three agents in their own
//! network namespaces (tests/src/cluster.rs), each running the CNI reference plugins for its
//! instances and routing to the other nodes' subnets (`host-gw`). An instance fetches pages
//! from instances on the other hosts and on its own by address (busybox httpd and nc), an
//! isolated instance still has only loopback, an agent killed with -9 re-adopts its
//! instances (CHECK) while they stay reachable, a deleted node's routes go, and starting and
//! deleting many instances leaves no address, interface, route or namespace behind. With the
//! `vxlan` backend, hosts on two subnets that only a router joins reach each other's instances.
//!
//! Everything the network makes lives in the agents' namespaces (bridge, veths, routes, the
//! nftables table) and state directories (host-local's store, the namespaces' files), which
//! the harness removes even when a test fails.

use mini_sched::api::{InstanceView, Phase};
use mini_shim::protocol::ContainerList;
use mini_tests::cluster::{Cluster, Options};
use mini_tests::{captured_output, fixture_rootfs, wait_until};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long a cluster may take to converge after a change (debug builds, a busy 2-core VM).
const SETTLE: Duration = Duration::from_secs(60);

/// busybox httpd on port 8080 answering with the instance's hostname (its id).
const WEB: &str = "hostname > /tmp/index.html && exec httpd -f -p 8080 -h /tmp";

/// A workload of `replicas` web servers on `network`, one per node at most.
fn web_spec(name: &str, replicas: u32, network: &str) -> String {
    format!(
        "name: {name}\n\
         source: {{rootfs: {rootfs}}}\n\
         command: [sh, -c, {WEB:?}]\n\
         network: {network}\n\
         replicas: {replicas}\n\
         resources:\n  requests: {{cpu: 10m, memory: 8Mi, pids: 16}}\n\
         stop_timeout: 1s\n\
         anti_affinity:\n  - {{workload: {name}, topology: node}}\n",
        rootfs = fixture_rootfs().display()
    )
}

/// Waits until `n` instances of `workload` run and have an address; returns them.
fn wait_addressed(c: &Cluster, workload: &str, n: usize) -> Vec<InstanceView> {
    let mut last = Vec::new();
    // A second per instance on top: the many-instance test starts them on one busy node.
    let done = wait_until(SETTLE + Duration::from_secs(n as u64), || {
        last = c
            .instances()
            .into_iter()
            .filter(|i| i.workload == workload && !i.phase.is_final())
            .collect();
        last.len() == n
            && last
                .iter()
                .all(|i| i.phase == Phase::Running && i.address.is_some())
    });
    assert!(
        done,
        "{workload}: wanted {n} running instances with addresses, have {last:#?}\n{}",
        c.logs()
    );
    last
}

/// An HTTP GET of `http://ADDRESS:8080/` from inside instance `from` with busybox nc (the
/// fixture's static busybox wget crashes looking up the `http` service): the page (the last
/// line of the answer), or why not.
fn fetch(c: &Cluster, from: &str, address: &str) -> Result<String, String> {
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} 8080");
    let out = c.cli(&["exec", from, "--", "sh", "-c", &get]);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && text.starts_with("HTTP/1.") {
        Ok(text.lines().last().unwrap_or_default().trim().to_string())
    } else {
        Err(format!(
            "{} {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Asserts that `from` fetches `to`'s page (its id) at `to`'s address, retrying while routes
/// follow the node list.
fn assert_reaches(c: &Cluster, from: &InstanceView, to: &InstanceView) {
    let address = to.address.as_deref().expect("an address");
    let mut last = Err(String::new());
    let ok = wait_until(SETTLE, || {
        last = fetch(c, &from.id, address);
        last.as_deref() == Ok(to.id.as_str())
    });
    if !ok {
        let inside = |id: &str, args: &[&str]| {
            let mut all = vec!["exec", id, "--"];
            all.extend(args);
            let out = c.cli(&all);
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let hosts: Vec<String> = (0..c.len())
            .map(|i| {
                format!(
                    "{}: {}{}",
                    c.node(i),
                    host_ip(c, i, &["route"]),
                    host_ip(c, i, &["-br", "addr"])
                )
            })
            .collect();
        panic!(
            "{} ({:?}) cannot reach {} at {address}: {last:?}\nfrom inside: {}{}\nhosts:\n{}\n{}",
            from.id,
            from.node,
            to.id,
            inside(&from.id, &["ip", "addr"]),
            inside(&from.id, &["ip", "route"]),
            hosts.join("\n"),
            c.logs()
        );
    }
}

/// The `ip` output of agent `i`'s host namespace for `args` (`route`, `link`, ...).
fn host_ip(c: &Cluster, i: usize, args: &[&str]) -> String {
    host_tool(c, i, "ip", args)
}

/// The output of `tool ARGS` in agent `i`'s host namespace (`ip`, `bridge`).
fn host_tool(c: &Cluster, i: usize, tool: &str, args: &[&str]) -> String {
    let out = captured_output(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", c.netns_name(i)))
            .arg(tool)
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The addresses host-local holds on agent `i` (its store's files named after addresses).
fn allocated(c: &Cluster, i: usize) -> Vec<String> {
    let dir = c.agent_state_dir(i).join("network/ipam/mini-cluster");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        .collect()
}

#[test]
fn instances_reach_each_other_by_address_across_hosts_and_on_one_host() {
    let c = Cluster::start(3, Options::default());
    // Every node has its own subnet of the default cluster CIDR.
    let subnets: BTreeSet<String> = c.nodes().into_iter().filter_map(|n| n.subnet).collect();
    assert_eq!(subnets.len(), 3, "{:?}", c.nodes());
    c.apply_ok(&web_spec("web", 3, "cluster"));
    let web = wait_addressed(&c, "web", 3);
    let nodes: BTreeSet<_> = web.iter().map(|i| i.node.clone()).collect();
    assert_eq!(nodes.len(), 3, "one instance per node: {web:#?}");
    for from in &web {
        for to in &web {
            if from.id != to.id {
                assert_reaches(&c, from, to);
            }
        }
    }
    // Two instances on one node talk over its bridge.
    c.apply_ok(&web_spec("peer", 1, "cluster").replace(
        "anti_affinity:\n  - {workload: peer, topology: node}\n",
        "node_selector: {zone: z0}\n",
    ));
    let peer = wait_addressed(&c, "peer", 1).remove(0);
    let neighbour = web
        .iter()
        .find(|i| i.node == peer.node)
        .expect("a web instance on the peer's node");
    assert_reaches(&c, &peer, neighbour);
    assert_reaches(&c, neighbour, &peer);
    // The address is shown where people look.
    let wide = c.cli_ok(&["get", "instances", "-o", "wide"]);
    assert!(wide.contains(peer.address.as_deref().unwrap()), "{wide}");
    let described = c.cli_ok(&["describe", "instance", &peer.id]);
    assert!(
        described.contains(peer.address.as_deref().unwrap()),
        "{described}"
    );
    let node = c.cli_ok(&["describe", "node", peer.node.as_deref().unwrap()]);
    assert!(node.contains("Subnet:"), "{node}");
    let i = c.index_of(peer.node.as_deref().unwrap());
    let metrics = c.admin_get(i, "/metrics").expect("metrics");
    assert!(
        metrics.contains("mini_shim_cni_calls_total{command=\"ADD\"}"),
        "{metrics}"
    );
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}

#[test]
fn vxlan_joins_hosts_that_are_only_routed_to_each_other() {
    // n1 sits on another subnet than n0 and n2, behind the hub as a router that knows no
    // route to the cluster CIDR: only encapsulated traffic between the hosts' own addresses
    // passes (a host-gw route to a peer that is not on-link cannot even be made).
    let options = Options {
        routed: true,
        init_args: vec!["--network-backend".into(), "vxlan".into()],
        ..Options::default()
    };
    let c = Cluster::start(3, options);
    c.apply_ok(&web_spec("web", 3, "cluster"));
    let web = wait_addressed(&c, "web", 3);
    let on = |node: &str| {
        web.iter()
            .find(|i| i.node.as_deref() == Some(node))
            .unwrap_or_else(|| panic!("no web instance on {node}: {web:#?}"))
    };
    let (a, b, cc) = (on(c.node(1)), on(c.node(0)), on(c.node(2)));
    assert_reaches(&c, a, b);
    assert_reaches(&c, a, cc);
    assert_reaches(&c, b, a);
    let link = host_ip(&c, 1, &["-d", "link", "show", "mini-vxlan"]);
    assert!(link.contains("vxlan id 1"), "{link}");
    // The deleted node's forwarding entry, neighbour and route go from the others.
    let gone_host = c.agent_address(2);
    let gone_host = gone_host.split(':').next().unwrap();
    let gone_subnet = c
        .nodes()
        .into_iter()
        .find(|n| n.name == c.node(2))
        .and_then(|n| n.subnet)
        .expect("a subnet");
    let entries = || {
        (
            host_tool(&c, 1, "bridge", &["fdb", "show", "dev", "mini-vxlan"]),
            host_ip(&c, 1, &["route"]),
        )
    };
    let (fdb, routes) = entries();
    assert!(fdb.contains(gone_host), "{fdb}");
    assert!(routes.contains(&gone_subnet), "{routes}");
    c.cli_ok(&["delete", "node", c.node(2)]);
    let mut last = entries();
    let cleaned = wait_until(SETTLE, || {
        last = entries();
        !last.0.contains(gone_host) && !last.1.contains(&gone_subnet)
    });
    assert!(cleaned, "the deleted node's entries stay: {last:?}");
    // The remaining peers keep theirs.
    assert_reaches(&c, a, b);
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}

#[test]
fn a_host_port_forwards_the_nodes_address_to_the_instance() {
    let c = Cluster::start(2, Options::default());
    let spec = format!(
        "{}ports:\n  - {{container_port: 8080, host_port: 30080}}\n",
        web_spec("published", 2, "cluster")
    );
    c.apply_ok(&spec);
    let published = wait_addressed(&c, "published", 2);
    // From the hub: a client on the nodes' own network, outside the cluster network, that
    // knows only the nodes' addresses.
    for instance in &published {
        let i = c.index_of(instance.node.as_deref().unwrap());
        let url = format!("http://{}/", c.agent_address(i).replace(":7443", ":30080"));
        let mut last = String::new();
        let served = wait_until(SETTLE, || {
            let out = captured_output(c.hub_command(Path::new("curl")).args([
                "-s",
                "--max-time",
                "5",
                &url,
            ]));
            last = format!(
                "{} {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim() == instance.id
        });
        assert!(
            served,
            "{url} does not serve {}: {last}\n{}",
            instance.id,
            c.logs()
        );
    }
    // Ports outside the cluster network are refused with the reason.
    let out = c.apply(&format!(
        "{}ports:\n  - {{container_port: 8080, host_port: 30081}}\n",
        web_spec("isolated-ports", 1, "isolated")
    ));
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("needs network: cluster"), "{said}");
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}

#[test]
fn isolated_stays_loopback_only_and_host_sees_the_nodes_interfaces() {
    let c = Cluster::start(1, Options::default());
    c.apply_ok(&web_spec("iso", 1, "isolated"));
    c.apply_ok(&web_spec("hostnet", 1, "host"));
    let ok = wait_until(SETTLE, || {
        c.instances()
            .iter()
            .filter(|i| i.phase == Phase::Running)
            .count()
            == 2
    });
    assert!(ok, "{:#?}\n{}", c.instances(), c.logs());
    let links = |id: &str| c.cli_ok(&["exec", id, "--", "ip", "-o", "link"]);
    let iso = c
        .instances()
        .into_iter()
        .find(|i| i.workload == "iso")
        .unwrap();
    assert_eq!(iso.address, None);
    let iso_links = links(&iso.id);
    assert_eq!(iso_links.lines().count(), 1, "only loopback: {iso_links}");
    let host = c
        .instances()
        .into_iter()
        .find(|i| i.workload == "hostnet")
        .unwrap();
    assert!(links(&host.id).contains("eth0"), "the node's interfaces");
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}

#[test]
fn a_killed_agent_re_adopts_its_instances_which_stay_reachable() {
    // The node must not be declared lost while its agent is down (its instance would be
    // replaced and fenced): a node timeout far beyond the restart.
    let options = Options {
        node_timeout: Duration::from_secs(300),
        ..Options::default()
    };
    let mut c = Cluster::start(2, options);
    c.apply_ok(&web_spec("web", 2, "cluster"));
    let web = wait_addressed(&c, "web", 2);
    assert_reaches(&c, &web[0], &web[1]);
    let i = c.index_of(web[1].node.as_deref().unwrap());
    c.kill_agent(i);
    // Its instance keeps serving while its agent is dead...
    assert_reaches(&c, &web[0], &web[1]);
    c.restart_agent(i);
    // ...and after the restart, which CHECKed its attachment.
    assert_reaches(&c, &web[0], &web[1]);
    assert_reaches(&c, &web[1], &web[0]);
    let metrics = c.admin_get(i, "/metrics").expect("metrics");
    assert!(
        metrics.contains("mini_shim_cni_calls_total{command=\"CHECK\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mini_shim_cni_failures_total{command=\"CHECK\"} 0"),
        "{metrics}"
    );
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}

#[test]
fn a_deleted_nodes_route_goes_from_the_other_nodes() {
    let c = Cluster::start(2, Options::default());
    let subnet_of = |name: &str| {
        c.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .and_then(|n| n.subnet)
            .expect("a subnet")
    };
    let gone = subnet_of(c.node(1));
    let has_route = || host_ip(&c, 0, &["route"]).contains(&gone);
    assert!(
        wait_until(SETTLE, has_route),
        "{}",
        host_ip(&c, 0, &["route"])
    );
    c.cli_ok(&["delete", "node", c.node(1)]);
    assert!(
        wait_until(SETTLE, || !has_route()),
        "the deleted node's route stays: {}",
        host_ip(&c, 0, &["route"])
    );
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}

#[test]
fn many_instances_started_and_deleted_leave_no_address_interface_or_namespace() {
    const N: u32 = 200;
    // Heartbeats listing many containers while they start take longer than the default node
    // timeout on a busy machine; the node must not be declared lost meanwhile.
    let options = Options {
        node_timeout: Duration::from_secs(120),
        ..Options::default()
    };
    let c = Cluster::start(1, options);
    let spec = web_spec("many", N, "cluster")
        .replace("anti_affinity:\n  - {workload: many, topology: node}\n", "")
        .replace(
            "requests: {cpu: 10m, memory: 8Mi, pids: 16}",
            "requests: {cpu: 1m, memory: 4Mi, pids: 16}\n  limits: {cpu: 500m, memory: 32Mi, pids: 16}",
        );
    c.apply_ok(&spec);
    let many = wait_addressed(&c, "many", N as usize);
    let addresses: BTreeSet<_> = many.iter().filter_map(|i| i.address.clone()).collect();
    assert_eq!(addresses.len(), N as usize, "every address differs");
    assert_eq!(allocated(&c, 0).len(), N as usize);
    c.cli_ok(&["delete", "workload", "many"]);
    // Asked with a tolerant call: the agent busy deleting 200 containers may answer a
    // listing slower than curl's limit.
    let no_containers = || {
        c.admin_get(0, "/v1/containers")
            .ok()
            .and_then(|text| serde_json::from_str::<ContainerList>(&text).ok())
            .is_some_and(|l| l.containers.is_empty())
    };
    let clean = wait_until(SETTLE * 2, || {
        no_containers() && allocated(&c, 0).is_empty()
    });
    assert!(
        clean,
        "left: {:?} {:?}",
        c.agent_container_ids(0),
        allocated(&c, 0)
    );
    let links = host_ip(&c, 0, &["-o", "link"]);
    assert!(!links.contains("veth"), "interfaces left: {links}");
    let namespaces = c.agent_state_dir(0).join("containers");
    let left: Vec<_> = std::fs::read_dir(&namespaces)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left, Vec::<std::path::PathBuf>::new());
    assert!(!Path::new(&namespaces).join("netns").exists());
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}
