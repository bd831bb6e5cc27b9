//! The services' nftables table ([`TABLE`], family `ip`), as `nft -j` JSON commands.
//!
//! ```text
//! table ip mini_services
//!   map services            ip daddr . l4proto . dport : goto svc_<service>_<proto><port>
//!   map node_ports          l4proto . dport : goto svc_...        (on the node's own addresses)
//!   set no_endpoints        ip daddr . l4proto . dport            (services without endpoints)
//!   set no_endpoint_node_ports  l4proto . dport
//!   chain reject_prerouting filter prerouting dstnat-10 \  new connections to a service
//!   chain reject_output     filter output dstnat-10     /  without endpoints: reject
//!   chain nat_prerouting    nat prerouting dstnat  \  jump services
//!   chain nat_output        nat output dstnat      /
//!   chain services          ip daddr . l4proto . dport vmap @services;
//!                           fib daddr type local -> jump node_port
//!   chain node_port         mark for masquerade; l4proto . dport vmap @node_ports; unmark
//!   chain nat_postrouting   nat postrouting srcnat: mark 0x4000 -> masquerade
//!   chain svc_<s>_<p>       [ip saddr @aff..._<ep> goto ep_...]  (affinity)
//!                           numgen random mod <sum of weights> vmap { 0-w1-1: goto ep_1, ... }
//!   chain ep_<s>_<p>_<addr> [mark: a local endpoint] [update @aff... { ip saddr }]
//!                           dnat to <addr>:<target_port>
//! ```
//!
//! One lookup per new connection (the nat chains see only a connection's first packet;
//! conntrack carries the rest to the same endpoint). A change to one service touches only its
//! elements and chains ([`change`]); a whole table is one transaction that deletes and
//! recreates the table ([`replace`]), so no packet sees a half-built or missing table.

use super::validate::protocol_name;
use crate::protocol::{ServiceEndpoint, ServiceEntry, ServicePort};
use serde_json::{json, Value};

/// The agent's services table (family `ip`).
pub const TABLE: &str = "mini_services";
/// The packet mark bit asking the postrouting chain to masquerade: node-port traffic (the
/// reply must come back through this node) and traffic to an endpoint on this node (the
/// bridge would otherwise carry the endpoint's reply straight to a client on the same bridge,
/// past the node's conntrack).
pub const MASQUERADE_MARK: u32 = 0x4000;

fn table() -> Value {
    json!({"family": "ip", "name": TABLE})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

/// `meta l4proto { tcp, udp }`: nft wants a transport match before `th dport`.
fn transport() -> Value {
    matches("==", meta("l4proto"), json!({"set": ["tcp", "udp"]}))
}

/// `ip daddr . meta l4proto . th dport`.
fn service_key() -> Value {
    json!({"concat": [payload("ip", "daddr"), meta("l4proto"), payload("th", "dport")]})
}

/// `meta l4proto . th dport`.
fn node_port_key() -> Value {
    json!({"concat": [meta("l4proto"), payload("th", "dport")]})
}

/// `fib daddr type local`, leaving out loopback (a DNAT there would need route_localnet).
fn local_destination() -> [Value; 2] {
    [
        matches(
            "!=",
            payload("ip", "daddr"),
            json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
        ),
        matches(
            "==",
            json!({"fib": {"result": "type", "flags": ["daddr"]}}),
            json!("local"),
        ),
    ]
}

fn set_mark(op: &str, value: u32) -> Value {
    json!({"mangle": {"key": meta("mark"), "value": {op: [meta("mark"), value]}}})
}

fn chain(name: &str) -> Value {
    json!({"family": "ip", "table": TABLE, "name": name})
}

fn base_chain(name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": "ip", "table": TABLE, "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "ip", "table": TABLE, "chain": chain, "expr": expr}}})
}

fn goto(target: &str) -> Value {
    json!({"goto": {"target": target}})
}

fn reject() -> Value {
    json!({"reject": {"type": "icmp", "expr": "port-unreachable"}})
}

/// The table with its maps, sets and fixed chains, empty of services.
fn skeleton() -> Vec<Value> {
    let new = matches("in", json!({"ct": {"key": "state"}}), json!("new"));
    let no_endpoint = |chain: &str| {
        let [not_loopback, local] = local_destination();
        [
            rule(
                chain,
                vec![
                    transport(),
                    new.clone(),
                    matches("==", service_key(), json!("@no_endpoints")),
                    reject(),
                ],
            ),
            rule(
                chain,
                vec![
                    transport(),
                    new.clone(),
                    not_loopback,
                    local,
                    matches("==", node_port_key(), json!("@no_endpoint_node_ports")),
                    reject(),
                ],
            ),
        ]
    };
    let [not_loopback, local] = local_destination();
    let mut commands = vec![
        json!({"add": {"table": table()}}),
        json!({"add": {"map": {"family": "ip", "table": TABLE, "name": "services",
            "type": ["ipv4_addr", "inet_proto", "inet_service"], "map": "verdict"}}}),
        json!({"add": {"map": {"family": "ip", "table": TABLE, "name": "node_ports",
            "type": ["inet_proto", "inet_service"], "map": "verdict"}}}),
        json!({"add": {"set": {"family": "ip", "table": TABLE, "name": "no_endpoints",
            "type": ["ipv4_addr", "inet_proto", "inet_service"]}}}),
        json!({"add": {"set": {"family": "ip", "table": TABLE, "name": "no_endpoint_node_ports",
            "type": ["inet_proto", "inet_service"]}}}),
        base_chain("reject_prerouting", "filter", "prerouting", -110),
        base_chain("reject_output", "filter", "output", -110),
        base_chain("nat_prerouting", "nat", "prerouting", -100),
        base_chain("nat_output", "nat", "output", -100),
        base_chain("nat_postrouting", "nat", "postrouting", 100),
        json!({"add": {"chain": chain("services")}}),
        json!({"add": {"chain": chain("node_port")}}),
    ];
    commands.extend(no_endpoint("reject_prerouting"));
    commands.extend(no_endpoint("reject_output"));
    for hook in ["nat_prerouting", "nat_output"] {
        commands.push(rule(hook, vec![json!({"jump": {"target": "services"}})]));
    }
    commands.push(rule(
        "services",
        vec![
            transport(),
            json!({"vmap": {"key": service_key(), "data": "@services"}}),
        ],
    ));
    commands.push(rule(
        "services",
        vec![
            not_loopback,
            local,
            json!({"jump": {"target": "node_port"}}),
        ],
    ));
    commands.push(rule("node_port", vec![set_mark("|", MASQUERADE_MARK)]));
    commands.push(rule(
        "node_port",
        vec![
            transport(),
            json!({"vmap": {"key": node_port_key(), "data": "@node_ports"}}),
        ],
    ));
    commands.push(rule("node_port", vec![set_mark("&", !MASQUERADE_MARK)]));
    commands.push(rule(
        "nat_postrouting",
        vec![
            matches(
                "==",
                json!({"&": [meta("mark"), MASQUERADE_MARK]}),
                json!(MASQUERADE_MARK),
            ),
            json!({"masquerade": null}),
        ],
    ));
    commands
}

/// The chain of one port of a service.
fn service_chain(s: &ServiceEntry, p: &ServicePort) -> String {
    format!("svc_{}_{}{}", s.name, protocol_name(p.protocol), p.port)
}

/// The chain of one endpoint of one port of a service.
fn endpoint_chain(s: &ServiceEntry, p: &ServicePort, e: &ServiceEndpoint) -> String {
    format!(
        "ep_{}_{}{}_{}",
        s.name,
        protocol_name(p.protocol),
        p.port,
        e.address
    )
}

/// The affinity set of one endpoint (its timeout in the name: a set's timeout cannot change).
fn affinity_set(s: &ServiceEntry, p: &ServicePort, e: &ServiceEndpoint) -> Option<String> {
    s.affinity_seconds.map(|seconds| {
        format!(
            "aff{seconds}_{}_{}{}_{}",
            s.name,
            protocol_name(p.protocol),
            p.port,
            e.address
        )
    })
}

fn element(name: &str, elem: Value) -> Value {
    json!({"family": "ip", "table": TABLE, "name": name, "elem": [elem]})
}

/// The set and map elements of one service: (set or map name, element).
fn elements(s: &ServiceEntry) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for p in &s.ports {
        let proto = protocol_name(p.protocol);
        let key = json!({"concat": [s.address.to_string(), proto, p.port]});
        let node_key = p.node_port.map(|n| json!({"concat": [proto, n]}));
        if s.endpoints.is_empty() {
            out.push(("no_endpoints", key));
            if let Some(k) = node_key {
                out.push(("no_endpoint_node_ports", k));
            }
        } else {
            let target = goto(&service_chain(s, p));
            out.push(("services", json!([key, target])));
            if let Some(k) = node_key {
                out.push(("node_ports", json!([k, target])));
            }
        }
    }
    out
}

/// The chains (name and rules) and affinity sets of one service.
struct Parts {
    chains: Vec<(String, Vec<Vec<Value>>)>,
    sets: Vec<(String, u32)>,
}

fn parts(s: &ServiceEntry, node: &str) -> Parts {
    let mut parts = Parts {
        chains: Vec::new(),
        sets: Vec::new(),
    };
    if s.endpoints.is_empty() {
        return parts;
    }
    for p in &s.ports {
        let proto = protocol_name(p.protocol);
        let mut service_rules = Vec::new();
        let mut ranges = Vec::new();
        let mut start = 0u32;
        for e in &s.endpoints {
            let chain = endpoint_chain(s, p, e);
            let mut expr = vec![matches("==", meta("l4proto"), json!(proto))];
            if e.node == node {
                expr.push(set_mark("|", MASQUERADE_MARK));
            }
            if let Some(set) = affinity_set(s, p, e) {
                expr.push(json!({"set": {"op": "update",
                    "elem": payload("ip", "saddr"), "set": format!("@{set}")}}));
                service_rules.push(vec![
                    matches("==", payload("ip", "saddr"), json!(format!("@{set}"))),
                    goto(&chain),
                ]);
                parts
                    .sets
                    .push((set, s.affinity_seconds.unwrap_or_default()));
            }
            expr.push(json!({"dnat": {"addr": e.address.to_string(), "port": p.target_port}}));
            let weight = u32::from(e.weight.max(1));
            let end = start + weight - 1;
            let slot = if start == end {
                json!(start)
            } else {
                json!({"range": [start, end]})
            };
            ranges.push(json!([slot, goto(&chain)]));
            start += weight;
            parts.chains.push((chain, vec![expr]));
        }
        service_rules.push(vec![json!({"vmap": {
            "key": {"numgen": {"mode": "random", "mod": start, "offset": 0}},
            "data": {"set": ranges}}})]);
        parts.chains.push((service_chain(s, p), service_rules));
    }
    parts
}

/// Commands that add service `s` whose chains may already exist (they are flushed first).
fn add_service(s: &ServiceEntry, node: &str, commands: &mut Vec<Value>) {
    let parts = parts(s, node);
    for (set, seconds) in &parts.sets {
        commands.push(
            json!({"add": {"set": {"family": "ip", "table": TABLE, "name": set,
            "type": "ipv4_addr", "flags": ["timeout"], "timeout": seconds}}}),
        );
    }
    for (name, rules) in &parts.chains {
        commands.push(json!({"add": {"chain": chain(name)}}));
        commands.push(json!({"flush": {"chain": chain(name)}}));
        for expr in rules {
            commands.push(rule(name, expr.clone()));
        }
    }
    for (set, elem) in elements(s) {
        commands.push(json!({"add": {"element": element(set, elem)}}));
    }
}

/// One whole table, replacing whatever table there was, as one transaction.
pub fn replace<'a>(services: impl Iterator<Item = &'a ServiceEntry>, node: &str) -> Vec<Value> {
    let mut commands = vec![
        json!({"add": {"table": table()}}),
        json!({"delete": {"table": table()}}),
    ];
    commands.extend(skeleton());
    for s in services {
        add_service(s, node, &mut commands);
    }
    commands
}

/// One service changed (`old` → `new`; either may be absent), touching only its own elements,
/// chains and sets.
pub fn change(old: Option<&ServiceEntry>, new: Option<&ServiceEntry>, node: &str) -> Vec<Value> {
    let mut commands = Vec::new();
    let old_parts = old.map(|s| parts(s, node));
    if let Some(s) = old {
        for (set, elem) in elements(s) {
            commands.push(json!({"delete": {"element": element(set, elem)}}));
        }
    }
    // Flushed first, so no old rule still jumps to a chain deleted below.
    for (name, _) in old_parts.iter().flat_map(|p| &p.chains) {
        commands.push(json!({"flush": {"chain": chain(name)}}));
    }
    let new_parts = new.map(|s| parts(s, node));
    if let Some(s) = new {
        add_service(s, node, &mut commands);
    }
    let keeps_chain = |name: &str| {
        new_parts
            .iter()
            .flat_map(|p| &p.chains)
            .any(|(n, _)| n == name)
    };
    let keeps_set = |name: &str| {
        new_parts
            .iter()
            .flat_map(|p| &p.sets)
            .any(|(n, _)| n == name)
    };
    if let Some(parts) = &old_parts {
        for (name, _) in &parts.chains {
            if !keeps_chain(name) {
                commands.push(json!({"delete": {"chain": chain(name)}}));
            }
        }
        for (name, _) in &parts.sets {
            if !keeps_set(name) {
                commands.push(json!({"delete": {"set": {"family": "ip", "table": TABLE,
                    "name": name}}}));
            }
        }
    }
    commands
}

/// Removes the table (absent is fine).
pub fn remove() -> Vec<Value> {
    vec![
        json!({"add": {"table": table()}}),
        json!({"delete": {"table": table()}}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TransportProtocol;

    fn web(endpoints: &[([u8; 4], u8)]) -> ServiceEntry {
        ServiceEntry {
            name: "web".into(),
            address: [10, 96, 0, 1].into(),
            ports: vec![ServicePort {
                port: 80,
                target_port: 8080,
                protocol: TransportProtocol::Tcp,
                node_port: Some(30080),
            }],
            affinity_seconds: None,
            endpoints: endpoints
                .iter()
                .enumerate()
                .map(|(i, (address, weight))| ServiceEndpoint {
                    instance: format!("web-{i}"),
                    node: "n1".into(),
                    address: (*address).into(),
                    weight: *weight,
                })
                .collect(),
        }
    }

    fn ops(commands: &[Value]) -> Vec<String> {
        commands
            .iter()
            .map(|c| {
                let (op, body) = c.as_object().unwrap().iter().next().unwrap();
                let (kind, what) = body.as_object().unwrap().iter().next().unwrap();
                let name = what
                    .get("name")
                    .or_else(|| what.get("chain"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                format!("{op} {kind} {name}")
            })
            .collect()
    }

    #[test]
    fn one_endpoint_change_is_a_few_operations_on_that_service() {
        let before = web(&[([10, 88, 1, 2], 50), ([10, 88, 1, 3], 50)]);
        let after = web(&[([10, 88, 1, 2], 50), ([10, 88, 1, 4], 50)]);
        let commands = change(Some(&before), Some(&after), "n2");
        let ops = ops(&commands);
        assert!(ops.len() <= 20, "{ops:#?}");
        assert!(ops.iter().all(|o| !o.contains("table")), "{ops:#?}");
        assert!(
            ops.contains(&"delete chain ep_web_tcp80_10.88.1.3".to_string()),
            "{ops:#?}"
        );
        assert!(
            ops.contains(&"add chain ep_web_tcp80_10.88.1.4".to_string()),
            "{ops:#?}"
        );
        assert!(
            !ops.iter()
                .any(|o| o == "delete chain ep_web_tcp80_10.88.1.2"),
            "{ops:#?}"
        );
        assert!(
            ops.contains(&"add element services".to_string()),
            "{ops:#?}"
        );
        assert!(
            ops.contains(&"add element node_ports".to_string()),
            "{ops:#?}"
        );
    }

    #[test]
    fn weights_become_numgen_intervals_and_every_endpoint_gets_one() {
        let s = web(&[([10, 88, 1, 2], 1), ([10, 88, 1, 3], 99)]);
        let parts = parts(&s, "n1");
        let (name, rules) = parts.chains.last().unwrap();
        assert_eq!(name, "svc_web_tcp80");
        let vmap = &rules[0][0]["vmap"];
        assert_eq!(vmap["key"]["numgen"]["mod"], 100);
        assert_eq!(vmap["data"]["set"][0][0], 0);
        assert_eq!(vmap["data"]["set"][1][0]["range"], json!([1, 99]));
        // Local endpoints are marked for masquerading.
        assert!(parts.chains[0].1[0]
            .iter()
            .any(|e| e.get("mangle").is_some()));
    }

    #[test]
    fn a_service_without_endpoints_is_only_in_the_reject_sets() {
        let s = web(&[]);
        let sets: Vec<&str> = elements(&s).into_iter().map(|(n, _)| n).collect();
        assert_eq!(sets, ["no_endpoints", "no_endpoint_node_ports"]);
        assert!(parts(&s, "n1").chains.is_empty());
        // Losing the last endpoint moves the keys from the maps to the reject sets.
        let ops = ops(&change(Some(&web(&[([10, 88, 1, 2], 1)])), Some(&s), "n1"));
        for needle in [
            "delete element services",
            "delete element node_ports",
            "add element no_endpoints",
            "delete chain svc_web_tcp80",
        ] {
            assert!(ops.iter().any(|o| o == needle), "{needle} not in {ops:#?}");
        }
    }

    #[test]
    fn a_whole_table_is_one_transaction_that_recreates_it() {
        let s = web(&[([10, 88, 1, 2], 1)]);
        let ops = ops(&replace([&s].into_iter(), "n1"));
        assert_eq!(ops[0], "add table mini_services");
        assert_eq!(ops[1], "delete table mini_services");
        assert_eq!(ops[2], "add table mini_services");
    }
}
