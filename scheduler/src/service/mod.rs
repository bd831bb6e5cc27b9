//! Services: a stable name and virtual address in front of the ready instances a selector
//! picks (scheduler/SPEC.md "Services").
//!
//! A service is stored with the address it was given ([`ServiceRecord`]); the endpoints
//! controller ([`crate::controller::endpoints`]) keeps each service's table entry (its ready
//! endpoints and their weights) up to date after every change of state, and [`push`] sends the
//! changes to every agent on the cluster network, which program their nodes.

pub mod push;
pub mod settings;

use crate::spec::service::{protocol_name, ServiceSpec};
use crate::spec::Problem;
use crate::state::{now_rfc3339, State};
use crate::store::Table;
use mini_shim::protocol::ServiceEntry;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

/// The store's `meta` key of the table's generation.
pub const GENERATION_KEY: &str = "service_generation";
/// The store's `meta` key of the last address handed out.
pub const LAST_ADDRESS_KEY: &str = "service_last_address";

/// A service as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    /// The spec as applied.
    pub spec: ServiceSpec,
    /// Its virtual address, kept for its whole life.
    pub address: Ipv4Addr,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// What an agent holds of the table, as far as the scheduler knows.
#[derive(Debug, Default)]
pub struct NodePush {
    /// The generation it acknowledged; `None`: unknown, it gets the whole table.
    pub acked: Option<u64>,
    /// When it acknowledged it.
    pub acked_at: Option<Instant>,
    /// A push to it is under way.
    pub in_flight: bool,
    /// Failed pushes in a row.
    pub failures: u32,
    /// After a failure: not before this.
    pub retry_at: Option<Instant>,
    /// The heartbeat whose reported generation was last compared.
    pub judged: Option<Instant>,
    /// Why the last push failed.
    pub error: Option<String>,
}

/// An instance taken out of the endpoints because it is to stop.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// The generation that removed it.
    pub generation: u64,
    /// When it was removed.
    pub since: Instant,
    /// When every node had that generation (the drain period counts from here).
    pub acked: Option<Instant>,
}

/// Counters and the propagation histogram for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct PushStats {
    /// Pushes that succeeded (PUT and PATCH).
    pub pushes: u64,
    /// Full tables sent.
    pub full: u64,
    /// Pushes that failed.
    pub failures: u64,
    /// Propagation latencies (change to acknowledgement by one node): counts per bucket of
    /// [`LATENCY_BUCKETS`], then the sum in seconds and the count.
    pub latency: Vec<u64>,
    /// The sum of the latencies observed, seconds.
    pub latency_sum: f64,
    /// How many were observed.
    pub latency_count: u64,
}

/// The upper bounds (seconds) of the propagation histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0];

impl PushStats {
    /// Records one propagation latency, in seconds.
    pub fn observe(&mut self, seconds: f64) {
        if self.latency.len() != LATENCY_BUCKETS.len() {
            self.latency = vec![0; LATENCY_BUCKETS.len()];
        }
        for (bucket, le) in self.latency.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= le {
                *bucket += 1;
            }
        }
        self.latency_sum += seconds;
        self.latency_count += 1;
    }
}

/// Everything the daemon knows of services.
#[derive(Debug, Default)]
pub struct Services {
    /// The cluster's settings (from `init`).
    pub settings: settings::Settings,
    /// Services by name (stored).
    pub records: BTreeMap<String, ServiceRecord>,
    /// The table's generation (stored): it grows with every change.
    pub generation: u64,
    /// The last address handed out (stored), where the next search starts.
    pub last_address: Option<Ipv4Addr>,
    /// Each service's entry as last computed, with the generation that last changed it.
    pub entries: BTreeMap<String, (ServiceEntry, u64)>,
    /// Services deleted, with the generation that removed them (bounded: see `horizon`).
    pub removed: BTreeMap<String, u64>,
    /// Changes from a generation below this cannot be told as a PATCH (forgotten removals, or
    /// before a restart): such an agent gets the whole table.
    pub horizon: u64,
    /// When each recent generation was made, for the propagation latency.
    pub made_at: VecDeque<(u64, Instant)>,
    /// Per node: what it holds.
    pub nodes: BTreeMap<String, NodePush>,
    /// Instances out of the endpoints on their way to stopping.
    pub draining: BTreeMap<String, Drain>,
    /// Wakes the pusher.
    pub wake: Arc<Notify>,
    /// For `/metrics`.
    pub stats: PushStats,
}

/// Deleted services remembered for PATCHes.
const REMOVED_KEPT: usize = 1000;
/// Generations whose time of making is remembered.
const MADE_KEPT: usize = 4096;

impl Services {
    /// Starts a new generation (saved with the state's batch) and returns it.
    pub fn next_generation(state: &mut State, now: Instant) -> u64 {
        let s = &mut state.services;
        s.generation += 1;
        s.made_at.push_back((s.generation, now));
        while s.made_at.len() > MADE_KEPT {
            s.made_at.pop_front();
        }
        while s.removed.len() > REMOVED_KEPT {
            let oldest = s
                .removed
                .iter()
                .min_by_key(|(_, g)| **g)
                .map(|(n, g)| (n.clone(), *g));
            if let Some((name, g)) = oldest {
                s.removed.remove(&name);
                s.horizon = s.horizon.max(g);
            }
        }
        let generation = s.generation;
        state.batch.put(Table::Meta, GENERATION_KEY, &generation);
        generation
    }
}

/// Records the service `name` for the store (or its removal).
pub fn save(state: &mut State, name: &str) {
    match state.services.records.get(name) {
        Some(r) => state.batch.put(Table::Services, name, r),
        None => state.batch.remove(Table::Services, name),
    }
}

/// The problems of `spec` against the cluster: its address in the service CIDR and free, its
/// node ports in the range and free (other services' are taken).
pub fn check_against(
    settings: &settings::Settings,
    records: &BTreeMap<String, ServiceRecord>,
    spec: &ServiceSpec,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let others = || records.values().filter(|r| r.spec.name != spec.name);
    if let Some(address) = spec.address {
        if !settings.usable(address) {
            problems.push(problem(
                "address",
                format!(
                    "{address} is not a usable address of the service CIDR {}",
                    settings.service_cidr
                ),
            ));
        } else if let Some(r) = others().find(|r| r.address == address) {
            problems.push(problem(
                "address",
                format!("{address} is taken by service {}", r.spec.name),
            ));
        } else if let Some(current) = records.get(&spec.name) {
            if current.address != address {
                problems.push(problem(
                    "address",
                    format!(
                        "service {} holds {}: an address is kept for a service's whole life \
                         (delete the service to change it)",
                        spec.name, current.address
                    ),
                ));
            }
        }
    }
    let range = settings.node_ports();
    for (i, port) in spec.ports.iter().enumerate() {
        let Some(node_port) = port.node_port else {
            continue;
        };
        let at = format!("ports[{i}].node_port");
        if node_port == 0 {
            continue;
        }
        if !range.contains(&node_port) {
            problems.push(problem(
                &at,
                format!(
                    "{node_port} is outside the node-port range {}-{} (mini-sched init \
                     --node-port-range)",
                    range.start(),
                    range.end()
                ),
            ));
        } else if let Some(r) = others().find(|r| {
            r.spec
                .ports
                .iter()
                .any(|p| p.node_port == Some(node_port) && p.protocol == port.protocol)
        }) {
            problems.push(problem(
                &at,
                format!(
                    "{} {node_port} is taken by service {}",
                    protocol_name(port.protocol),
                    r.spec.name
                ),
            ));
        }
    }
    problems
}

fn problem(path: &str, message: String) -> Problem {
    Problem {
        path: path.into(),
        message,
    }
}

/// Creates or updates the service of `spec` (already checked with [`check_against`]);
/// answers what happened (`created`, `configured`, `unchanged`) and its address, or why no
/// address is free.
pub fn apply(
    state: &mut State,
    spec: ServiceSpec,
    dry_run: bool,
) -> Result<(String, Ipv4Addr), String> {
    let name = spec.name.clone();
    if let Some(current) = state.services.records.get(&name) {
        let address = current.address;
        if current.spec == spec {
            return Ok(("unchanged".into(), address));
        }
        if !dry_run {
            state.services.records.get_mut(&name).expect("exists").spec = spec;
            save(state, &name);
            state.event(
                format!("service/{name}"),
                "Updated",
                format!("address {address}"),
            );
        }
        return Ok(("configured".into(), address));
    }
    let s = &state.services;
    let address = match spec.address {
        Some(a) => a,
        None => s
            .settings
            .allocate(s.last_address, |a| {
                s.records.values().any(|r| r.address == a)
            })
            .ok_or_else(|| {
                format!(
                    "the service CIDR {} has no free address left ({} services hold them): \
                     delete a service, or make the cluster with a larger --service-cidr",
                    s.settings.service_cidr,
                    s.records.len()
                )
            })?,
    };
    if dry_run {
        return Ok(("created".into(), address));
    }
    if spec.address.is_none() {
        state.services.last_address = Some(address);
        state.batch.put(Table::Meta, LAST_ADDRESS_KEY, &address);
    }
    let record = ServiceRecord {
        spec,
        address,
        created_at: now_rfc3339(),
    };
    state.services.records.insert(name.clone(), record);
    save(state, &name);
    state.event(
        format!("service/{name}"),
        "Created",
        format!("address {address}"),
    );
    Ok(("created".into(), address))
}

/// Deletes the service `name`; false when there is none.
pub fn delete(state: &mut State, name: &str) -> bool {
    let Some(record) = state.services.records.remove(name) else {
        return false;
    };
    save(state, name);
    state.event(
        format!("service/{name}"),
        "Deleted",
        format!("address {} freed", record.address),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_object, Object};

    fn spec(text: &str) -> ServiceSpec {
        match parse_object(text).unwrap() {
            Object::Service(s) => s,
            Object::Workload(w) => panic!("{w:?}"),
        }
    }

    #[test]
    fn addresses_are_kept_and_node_ports_and_addresses_not_shared() {
        let mut state = State::default();
        let web = spec("kind: service\nname: web\nselector: {workload: web}\nports: [{port: 80, node_port: 30080}]\n");
        let (action, a) = apply(&mut state, web.clone(), false).unwrap();
        assert_eq!(
            (action.as_str(), a),
            ("created", Ipv4Addr::new(10, 96, 0, 1))
        );
        let (action, again) = apply(&mut state, web, false).unwrap();
        assert_eq!((action.as_str(), again), ("unchanged", a));
        let db = spec("kind: service\nname: db\nselector: {workload: db}\nports: [{port: 5432, node_port: 30080}, {port: 5433, node_port: 29999}, {port: 53, protocol: udp, node_port: 30080}]\naddress: 10.96.0.1\n");
        let found: Vec<String> =
            check_against(&state.services.settings, &state.services.records, &db)
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(
            found,
            [
                "address: 10.96.0.1 is taken by service web",
                "ports[0].node_port: tcp 30080 is taken by service web",
                "ports[1].node_port: 29999 is outside the node-port range 30000-32767 (mini-sched init --node-port-range)",
            ]
        );
        let outside = spec("kind: service\nname: db\nselector: {workload: db}\nports: [{port: 1}]\naddress: 10.97.0.1\n");
        let s = &state.services;
        assert_eq!(check_against(&s.settings, &s.records, &outside).len(), 1);
        // Deleted, its address is not the next one handed out.
        assert!(delete(&mut state, "web"));
        let other =
            spec("kind: service\nname: other\nselector: {workload: web}\nports: [{port: 80}]\n");
        let (_, b) = apply(&mut state, other, false).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 96, 0, 2));
        assert!(!delete(&mut state, "web"));
    }
}
