//! The service spec (`kind: service`, scheduler/SPEC.md "Services"): a stable name and
//! virtual address in front of the ready instances a selector picks. Read like a workload:
//! every problem is listed at its field's path. What depends on the cluster (the service CIDR,
//! the node-port range, addresses and node ports other services hold) is checked when it is
//! applied ([`crate::service::check_against`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use mini_shim::protocol::TransportProtocol;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::problems::{field, item, within, Collector, Problem, Problems};
use super::quantity::show;
use super::read::{get, Reader};
use super::validate::workload_name;

/// The fields of a service, in the order SPEC.md lists them.
const SERVICE_FIELDS: &[&str] = &[
    "kind",
    "name",
    "selector",
    "ports",
    "address",
    "session_affinity",
    "balance",
];

/// The longest session affinity.
pub const MAX_AFFINITY: Duration = Duration::from_secs(24 * 60 * 60);

/// The most ports one service may have.
pub const MAX_PORTS: usize = 64;

/// One service: what it selects, the ports it offers and how it balances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    /// The service's name, a DNS label (the workload name rules): `<name>.<cluster domain>`.
    pub name: String,
    /// Which workloads' instances are its endpoints.
    pub selector: Selector,
    /// The ports it offers (at least one).
    pub ports: Vec<PortSpec>,
    /// A virtual address asked for (in the service CIDR); `None`: the scheduler picks one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// How long a client address stays with the endpoint it was first sent to (whole
    /// seconds); `None`: every new connection is balanced on its own.
    #[serde(
        serialize_with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_affinity: Option<Duration>,
    /// How new connections are shared among the endpoints (default `load`).
    pub balance: Balance,
}

impl<'de> Deserialize<'de> for ServiceSpec {
    /// Reads any self-describing form and checks it as [`parse`] does.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        from_value(&value, &|_| Vec::new()).map_err(serde::de::Error::custom)
    }
}

/// Which instances a service selects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// Every instance of the workload of this name.
    Workload(String),
    /// Every instance of the workloads carrying all these labels.
    Labels(BTreeMap<String, String>),
}

impl Selector {
    /// Whether it picks the workload `name` with `labels`.
    pub fn picks(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::Workload(w) => w == name,
            Selector::Labels(want) => want.iter().all(|(k, v)| labels.get(k) == Some(v)),
        }
    }
}

/// A port of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    /// The port on the virtual address.
    pub port: u16,
    /// The port the instances listen on (default: `port`).
    pub target_port: u16,
    /// `tcp` (default) or `udp`.
    pub protocol: TransportProtocol,
    /// The port on every node's own addresses that also leads to the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// How a service shares new connections among its endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Equal shares.
    Even,
    /// Shares that fall as an instance's measured cpu use nears its limit (the default).
    #[default]
    Load,
}

/// The problems of a service against the cluster it is applied to (see
/// [`super::parse_object_against`]).
pub type ClusterCheck<'a> = &'a dyn Fn(&ServiceSpec) -> Vec<Problem>;

/// Reads a service from a parsed document, listing every problem, those `cluster` finds
/// included (on what could be read).
pub(super) fn from_value(value: &Value, cluster: ClusterCheck) -> Result<ServiceSpec, Problems> {
    let mut reader = Reader::default();
    let spec = reader.service(value);
    let (mut problems, unread) = (reader.problems, reader.unread);
    if let Some(spec) = &spec {
        let mut rules = Collector::default();
        check(spec, &mut rules);
        let mut rules = rules.into_vec();
        rules.extend(cluster(spec));
        for problem in rules {
            let stand_in = unread.iter().any(|f| within(&problem.path, f));
            if !stand_in && !problems.covers(&problem.path) {
                problems.add(&problem.path, problem.message);
            }
        }
    }
    let mut problems = problems.into_vec();
    problems.sort_by_key(|p| {
        let top = p.path.split(['.', '[']).next().unwrap_or_default();
        SERVICE_FIELDS
            .iter()
            .position(|f| *f == top)
            .unwrap_or(SERVICE_FIELDS.len())
    });
    Problems::check(problems)?;
    Ok(spec.expect("a service that could not be read has a problem"))
}

impl Reader {
    fn service(&mut self, value: &Value) -> Option<ServiceSpec> {
        let m = self.mapping(value, "", SERVICE_FIELDS)?;
        let p = "";
        Some(ServiceSpec {
            name: self
                .required(m, p, "name", Self::string)
                .unwrap_or_default(),
            selector: self
                .required(m, p, "selector", Self::selector)
                .unwrap_or(Selector::Labels(BTreeMap::new())),
            ports: self
                .required(m, p, "ports", Self::ports)
                .unwrap_or_default(),
            address: self.optional(m, p, "address", Self::address),
            session_affinity: self.optional(m, p, "session_affinity", Self::duration),
            balance: self
                .optional(m, p, "balance", |r, v, p| {
                    r.choice(v, p, &[("even", Balance::Even), ("load", Balance::Load)])
                })
                .unwrap_or_default(),
        })
    }

    fn selector(&mut self, value: &Value, path: &str) -> Option<Selector> {
        let m = self.mapping(value, path, &["workload", "labels"])?;
        match (get(m, "workload"), get(m, "labels")) {
            (Some(_), None) => self
                .optional(m, path, "workload", Self::string)
                .map(Selector::Workload),
            (None, Some(_)) => self
                .optional(m, path, "labels", Self::string_map)
                .map(Selector::Labels),
            _ => {
                self.problems.add(
                    path,
                    "give either `workload: NAME` or `labels: {key: value}`, one of them",
                );
                None
            }
        }
    }

    fn ports(&mut self, value: &Value, path: &str) -> Option<Vec<PortSpec>> {
        self.list(value, path, "[{port: 80, target_port: 8080}]", |r, v, p| {
            let m = r.mapping(v, p, &["port", "target_port", "protocol", "node_port"])?;
            let port = r.required(m, p, "port", Self::port);
            let target_port = r.optional(m, p, "target_port", Self::port);
            let protocol = r
                .optional(m, p, "protocol", |r, v, p| {
                    r.choice(
                        v,
                        p,
                        &[
                            ("tcp", TransportProtocol::Tcp),
                            ("udp", TransportProtocol::Udp),
                        ],
                    )
                })
                .unwrap_or(TransportProtocol::Tcp);
            let node_port = r.optional(m, p, "node_port", Self::port);
            // An unreadable port stands in as 0 (its problem recorded) so that the other
            // ports are still checked.
            let port = port.unwrap_or(0);
            Some(PortSpec {
                port,
                target_port: target_port.unwrap_or(port),
                protocol,
                node_port,
            })
        })
    }

    fn address(&mut self, value: &Value, path: &str) -> Option<Ipv4Addr> {
        let address = value.as_str().and_then(|s| s.parse().ok());
        if address.is_none() {
            self.problems.add(
                path,
                format!(
                    "{} is not an IPv4 address: give one of the service CIDR, e.g. 10.96.0.10",
                    show(value)
                ),
            );
        }
        address
    }
}

/// The rules a service must meet on its own, each breach recorded.
fn check(spec: &ServiceSpec, out: &mut Collector) {
    if let Err(message) = workload_name(&spec.name) {
        out.add("name", message.replace("workload name", "service name"));
    }
    match &spec.selector {
        Selector::Workload(name) => {
            if let Err(message) = workload_name(name) {
                out.add("selector.workload", message);
            }
        }
        Selector::Labels(labels) if labels.is_empty() => out.add(
            "selector.labels",
            "must hold at least one label: an empty selector would pick every workload",
        ),
        Selector::Labels(labels) => {
            if let Err(message) = crate::labels::validate_all(labels) {
                out.add("selector.labels", message);
            }
        }
    }
    if spec.ports.is_empty() {
        out.add("ports", "must list at least one port");
    }
    if spec.ports.len() > MAX_PORTS {
        out.add("ports", format!("lists more than {MAX_PORTS} ports"));
    }
    for (i, port) in spec.ports.iter().enumerate() {
        let at = item("ports", i);
        for (name, value) in [
            ("port", Some(port.port)),
            ("target_port", Some(port.target_port)),
            ("node_port", port.node_port),
        ] {
            if value == Some(0) {
                out.add(&field(&at, name), "must be a port from 1 to 65535");
            }
        }
        let earlier = &spec.ports[..i];
        if earlier
            .iter()
            .any(|e| e.port == port.port && e.protocol == port.protocol)
        {
            out.add(
                &field(&at, "port"),
                format!(
                    "{} {} is listed twice",
                    protocol_name(port.protocol),
                    port.port
                ),
            );
        }
        if let Some(node_port) = port.node_port.filter(|&n| n > 0) {
            if earlier
                .iter()
                .any(|e| e.node_port == Some(node_port) && e.protocol == port.protocol)
            {
                out.add(
                    &field(&at, "node_port"),
                    format!("{node_port} is listed twice"),
                );
            }
        }
    }
    if let Some(affinity) = spec.session_affinity {
        if affinity.is_zero() || affinity.subsec_nanos() != 0 || affinity > MAX_AFFINITY {
            out.add(
                "session_affinity",
                "must be whole seconds from 1s to 24h (e.g. \"10m\")",
            );
        }
    }
}

/// `tcp` or `udp`.
pub fn protocol_name(protocol: TransportProtocol) -> &'static str {
    match protocol {
        TransportProtocol::Tcp => "tcp",
        TransportProtocol::Udp => "udp",
    }
}

fn opt_duration<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => serializer.serialize_str(&super::quantity::format_duration(*d)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_object, Object};
    use super::*;

    fn service(text: &str) -> Result<ServiceSpec, Vec<String>> {
        match parse_object(text) {
            Ok(Object::Service(s)) => Ok(s),
            Ok(Object::Workload(w)) => panic!("read as a workload: {w:?}"),
            Err(p) => Err(p.list().iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn a_service_reads_with_its_defaults_and_round_trips() {
        let s = service(
            "kind: service\nname: web\nselector: {workload: web}\nports: [{port: 80, target_port: 8080}]\n",
        )
        .unwrap();
        assert_eq!(s.selector, Selector::Workload("web".into()));
        assert_eq!(
            s.ports,
            [PortSpec {
                port: 80,
                target_port: 8080,
                protocol: TransportProtocol::Tcp,
                node_port: None
            }]
        );
        assert_eq!(s.balance, Balance::Load);
        assert_eq!(s.address, None);
        let json = serde_json::to_string(&s).unwrap();
        let back: ServiceSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let s = service(
            "kind: service\nname: dns\nselector: {labels: {app: dns}}\nports: [{port: 53, protocol: udp, node_port: 30053}]\naddress: 10.96.0.10\nsession_affinity: 10m\nbalance: even\n",
        )
        .unwrap();
        assert_eq!(s.ports[0].target_port, 53);
        assert_eq!(s.ports[0].node_port, Some(30053));
        assert_eq!(s.session_affinity, Some(Duration::from_secs(600)));
        assert_eq!(s.balance, Balance::Even);
        let back: ServiceSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn every_problem_is_listed_at_its_field() {
        let problems = service(
            "kind: service\nname: Web\nselector: {workload: web, labels: {a: b}}\nports:\n  - {port: 70000}\n  - {port: 80, protocol: sctp, node_port: 0}\n  - {port: 81, target_port: 0}\naddress: nowhere\nsession_affinity: 500ms\nbalance: random\ncolour: blue\n",
        )
        .unwrap_err();
        let has = |needle: &str| problems.iter().any(|p| p.starts_with(needle));
        assert!(has("name: \"Web\" is not a service name"), "{problems:#?}");
        assert!(has("selector: give either"), "{problems:#?}");
        assert!(
            has("ports[0].port: 70000 is not a port number"),
            "{problems:#?}"
        );
        assert!(
            has("ports[1].protocol: \"sctp\" is not one of tcp, udp"),
            "{problems:#?}"
        );
        assert!(has("ports[2].target_port: must be a port"), "{problems:#?}");
        assert!(
            has("address: \"nowhere\" is not an IPv4 address"),
            "{problems:#?}"
        );
        assert!(
            has("session_affinity: must be whole seconds"),
            "{problems:#?}"
        );
        assert!(
            has("balance: \"random\" is not one of even, load"),
            "{problems:#?}"
        );
        assert!(has("colour: unknown field"), "{problems:#?}");
        // node_port 0 sits beside the protocol problem of the same port.
        assert!(has("ports[1].node_port: must be a port"), "{problems:#?}");
    }

    #[test]
    fn ports_and_node_ports_are_not_listed_twice() {
        let problems = service(
            "kind: service\nname: web\nselector: {labels: {}}\nports:\n  - {port: 80, node_port: 30080}\n  - {port: 80, node_port: 30080}\n  - {port: 80, protocol: udp}\n",
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "selector.labels: must hold at least one label: an empty selector would pick every workload",
                "ports[1].port: tcp 80 is listed twice",
                "ports[1].node_port: 30080 is listed twice",
            ]
        );
    }

    #[test]
    fn the_kind_chooses_the_object_and_an_unknown_kind_is_a_problem() {
        let problems = service("kind: pod\nname: web\n").unwrap_err();
        assert_eq!(problems, ["kind: \"pod\" is not one of workload, service"]);
        match parse_object("kind: workload\nname: web\nsource: {rootfs: /x}\n").unwrap() {
            Object::Workload(w) => assert_eq!(w.name, "web"),
            Object::Service(s) => panic!("{s:?}"),
        }
        let e = super::super::parse(
            "kind: service\nname: web\nselector: {workload: web}\nports: [{port: 80}]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("kind: service"), "{e}");
    }
}
