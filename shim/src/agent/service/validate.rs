//! Checks a service table before anything is programmed: bounded counts and name lengths,
//! usable addresses, ports and weights, no two services on one address and port, no node port
//! twice. Every problem is listed in the one error (the first [`MAX_LISTED`] of them).

use crate::protocol::{ServiceEntry, TransportProtocol};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

/// The most services a table holds.
pub const MAX_SERVICES: usize = 10_000;
/// The most endpoints one service holds.
pub const MAX_ENDPOINTS_PER_SERVICE: usize = 1_000;
/// The most endpoints over all services.
pub const MAX_ENDPOINTS: usize = 100_000;
/// The most ports one service holds.
pub const MAX_PORTS_PER_SERVICE: usize = 16;
/// The longest cluster domain.
pub const MAX_DOMAIN: usize = 253;
/// The longest affinity, in seconds (a day).
pub const MAX_AFFINITY_SECONDS: u32 = 86_400;
/// How many problems one error lists.
const MAX_LISTED: usize = 20;

/// A DNS label: 1–63 of `[a-z0-9-]`, not starting or ending with `-`.
fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An address a service or an endpoint can have: not 0.0.0.0, loopback, multicast or broadcast.
fn usable(address: Ipv4Addr) -> bool {
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_broadcast())
}

/// The problems of a domain.
pub fn domain(domain: &str, problems: &mut Vec<String>) {
    if domain.is_empty() || domain.len() > MAX_DOMAIN || !domain.split('.').all(dns_label) {
        problems.push(format!(
            "domain {:?} is not a DNS name (labels of a-z, 0-9 and '-', at most {MAX_DOMAIN} \
             characters)",
            truncated(domain)
        ));
    }
}

/// A name cut to 80 characters for an error message.
fn truncated(name: &str) -> String {
    name.chars().take(80).collect()
}

/// The problems of one service on its own.
fn service(s: &ServiceEntry, problems: &mut Vec<String>) {
    let name = truncated(&s.name);
    if !dns_label(&s.name) {
        problems.push(format!(
            "service name {name:?} is not a DNS label (1-63 of a-z, 0-9 and '-', not starting \
             or ending with '-')"
        ));
    }
    if !usable(s.address) {
        problems.push(format!(
            "service {name}: address {} is not usable (0.0.0.0, loopback, multicast, broadcast)",
            s.address
        ));
    }
    if s.ports.is_empty() || s.ports.len() > MAX_PORTS_PER_SERVICE {
        problems.push(format!(
            "service {name}: {} ports; a service has 1 to {MAX_PORTS_PER_SERVICE}",
            s.ports.len()
        ));
    }
    let mut seen = HashSet::new();
    for p in &s.ports {
        let protocol = protocol_name(p.protocol);
        if p.port == 0 || p.target_port == 0 || p.node_port == Some(0) {
            problems.push(format!(
                "service {name}: port {}/{protocol} (target {}): ports are 1 to 65535",
                p.port, p.target_port
            ));
        }
        if !seen.insert((p.protocol, p.port)) {
            problems.push(format!(
                "service {name}: port {}/{protocol} is listed twice",
                p.port
            ));
        }
    }
    if let Some(seconds) = s.affinity_seconds {
        if seconds == 0 || seconds > MAX_AFFINITY_SECONDS {
            problems.push(format!(
                "service {name}: affinity_seconds {seconds} is out of range 1 to \
                 {MAX_AFFINITY_SECONDS}"
            ));
        }
    }
    if s.endpoints.len() > MAX_ENDPOINTS_PER_SERVICE {
        problems.push(format!(
            "service {name}: {} endpoints; at most {MAX_ENDPOINTS_PER_SERVICE}",
            s.endpoints.len()
        ));
    }
    let mut addresses = HashSet::new();
    let mut instances = HashSet::new();
    for e in &s.endpoints {
        let instance = truncated(&e.instance);
        if let Err(why) = crate::protocol::validate_id(&e.instance) {
            problems.push(format!(
                "service {name}: endpoint instance: {}",
                why.replace("container id", "name")
            ));
        }
        if e.node.is_empty() || e.node.len() > 64 {
            problems.push(format!(
                "service {name}: endpoint {instance}: node name must be 1 to 64 characters"
            ));
        }
        if !usable(e.address) {
            problems.push(format!(
                "service {name}: endpoint {instance}: address {} is not usable",
                e.address
            ));
        }
        if !(1..=100).contains(&e.weight) {
            problems.push(format!(
                "service {name}: endpoint {instance}: weight {} is out of range 1 to 100",
                e.weight
            ));
        }
        if !addresses.insert(e.address) {
            problems.push(format!(
                "service {name}: endpoint address {} is listed twice",
                e.address
            ));
        }
        if !instances.insert(e.instance.as_str()) {
            problems.push(format!(
                "service {name}: endpoint {instance} is listed twice"
            ));
        }
    }
}

/// `tcp` or `udp`.
pub fn protocol_name(p: TransportProtocol) -> &'static str {
    match p {
        TransportProtocol::Tcp => "tcp",
        TransportProtocol::Udp => "udp",
    }
}

/// The problems of a whole table (each service, then what services share: addresses, node
/// ports, the totals). `changed` names the services to check one by one (`None`: all), so a
/// change to one service of thousands costs that service, plus the table-wide checks.
pub fn table(
    services: &BTreeMap<String, ServiceEntry>,
    changed: Option<&[&ServiceEntry]>,
    problems: &mut Vec<String>,
) {
    match changed {
        Some(list) => list.iter().for_each(|s| service(s, problems)),
        None => services.values().for_each(|s| service(s, problems)),
    }
    if services.len() > MAX_SERVICES {
        problems.push(format!(
            "{} services; a table holds at most {MAX_SERVICES}",
            services.len()
        ));
    }
    let endpoints: usize = services.values().map(|s| s.endpoints.len()).sum();
    if endpoints > MAX_ENDPOINTS {
        problems.push(format!(
            "{endpoints} endpoints over all services; at most {MAX_ENDPOINTS}"
        ));
    }
    let mut addresses: HashMap<Ipv4Addr, &str> = HashMap::new();
    let mut node_ports: HashMap<(TransportProtocol, u16), &str> = HashMap::new();
    for s in services.values() {
        if let Some(other) = addresses.insert(s.address, &s.name) {
            problems.push(format!(
                "services {other} and {} have the same address {}",
                s.name, s.address
            ));
        }
        for p in &s.ports {
            let Some(node_port) = p.node_port else {
                continue;
            };
            if let Some(other) = node_ports.insert((p.protocol, node_port), &s.name) {
                if other != s.name {
                    problems.push(format!(
                        "services {other} and {} have the same node port {node_port}/{}",
                        s.name,
                        protocol_name(p.protocol)
                    ));
                } else {
                    problems.push(format!(
                        "service {other}: node port {node_port}/{} is listed twice",
                        protocol_name(p.protocol)
                    ));
                }
            }
        }
    }
}

/// The problems as one error message, or `Ok` when there are none.
pub fn verdict(what: &str, problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        return Ok(());
    }
    let count = problems.len();
    let mut listed = problems
        .into_iter()
        .take(MAX_LISTED)
        .collect::<Vec<_>>()
        .join("; ");
    if count > MAX_LISTED {
        listed.push_str(&format!("; and {} more", count - MAX_LISTED));
    }
    Err(format!(
        "{what} has {count} problem{}: {listed}; nothing was changed",
        if count == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ServiceEndpoint, ServicePort};

    pub(crate) fn entry(name: &str, address: [u8; 4]) -> ServiceEntry {
        ServiceEntry {
            name: name.into(),
            address: address.into(),
            ports: vec![ServicePort {
                port: 80,
                target_port: 8080,
                protocol: TransportProtocol::Tcp,
                node_port: None,
            }],
            affinity_seconds: None,
            endpoints: vec![ServiceEndpoint {
                instance: format!("{name}-1"),
                node: "n1".into(),
                address: [10, 88, 1, 2].into(),
                weight: 10,
            }],
        }
    }

    fn problems(services: Vec<ServiceEntry>) -> Vec<String> {
        let map = services.into_iter().map(|s| (s.name.clone(), s)).collect();
        let mut problems = Vec::new();
        table(&map, None, &mut problems);
        problems
    }

    #[test]
    fn a_good_table_has_no_problems() {
        assert!(problems(vec![
            entry("web", [10, 96, 0, 1]),
            entry("db", [10, 96, 0, 2])
        ])
        .is_empty());
    }

    #[test]
    fn every_problem_is_listed() {
        let mut bad = entry("Web_", [127, 0, 0, 1]);
        bad.ports[0].port = 0;
        bad.ports.push(bad.ports[0].clone());
        bad.endpoints[0].weight = 0;
        bad.endpoints.push(bad.endpoints[0].clone());
        bad.affinity_seconds = Some(0);
        let found = problems(vec![bad]);
        for needle in [
            "not a DNS label",
            "not usable",
            "ports are 1 to 65535",
            "listed twice",
            "weight 0",
            "affinity_seconds 0",
            "endpoint address 10.88.1.2 is listed twice",
        ] {
            assert!(
                found.iter().any(|p| p.contains(needle)),
                "{needle:?} not in {found:?}"
            );
        }
        let message = verdict("the table", found).unwrap_err();
        assert!(message.contains("problems"), "{message}");
        assert!(message.ends_with("nothing was changed"), "{message}");
    }

    #[test]
    fn shared_addresses_and_node_ports_are_refused() {
        let mut a = entry("a", [10, 96, 0, 1]);
        let mut b = entry("b", [10, 96, 0, 1]);
        a.ports[0].node_port = Some(30080);
        b.ports[0].node_port = Some(30080);
        let found = problems(vec![a, b]);
        assert!(
            found.iter().any(|p| p.contains("same address")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("same node port 30080/tcp")),
            "{found:?}"
        );
    }

    #[test]
    fn counts_are_bounded_and_the_message_is_cut() {
        let mut many = entry("many", [10, 96, 0, 1]);
        many.endpoints = (0..=MAX_ENDPOINTS_PER_SERVICE as u32)
            .map(|i| ServiceEndpoint {
                instance: format!("i{i}"),
                node: "n".into(),
                address: Ipv4Addr::from(0x0a58_0000 + i + 1),
                weight: 0,
            })
            .collect();
        let found = problems(vec![many]);
        assert!(
            found.iter().any(|p| p.contains("at most 1000")),
            "{found:?}"
        );
        let message = verdict("the table", found).unwrap_err();
        assert!(message.contains("more; nothing was changed"), "{message}");
    }

    #[test]
    fn domains_are_dns_names() {
        let mut found = Vec::new();
        domain("cluster.local", &mut found);
        assert!(found.is_empty());
        domain("Cluster..local", &mut found);
        domain("", &mut found);
        assert_eq!(found.len(), 2);
    }
}
