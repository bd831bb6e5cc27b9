//! The endpoints controller: which instances stand behind each service, with what weight, and
//! holding stops back until every node has stopped sending them new connections.
//!
//! [`refresh`] runs after every change of the state (at the end of [`super::Daemon::with`]):
//! it recomputes each service's entry and, when any differs from the last one, starts a new
//! generation of the table and wakes the pusher ([`crate::service::push`]), so a change
//! reaches the agents without waiting for the controllers' next pass.
//!
//! An endpoint is an instance the service's selector picks that runs, is ready (its readiness
//! probe passed, or it has none), has an address on the cluster network, is not stopping and
//! whose node is not lost. An instance that is to stop leaves the endpoints first; [`holds`]
//! keeps its stop back until every node acknowledged the table without it, then for the
//! workload's `stop_drain`.

use crate::api::Phase;
use crate::service::{Drain, Services};
use crate::spec::service::Balance;
use crate::state::{Instance, State, Usage};
use mini_shim::protocol::{ServiceEndpoint, ServiceEntry, ServicePort};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The lowest weight of a ready endpoint under `balance: load`: a busy instance still gets
/// some new connections (and so shows when it is idle again).
pub const WEIGHT_FLOOR: u8 = 10;

/// How long a stop waits at most for every node to acknowledge the endpoint's removal (an
/// unreachable node must not hold stops back for ever); `stop_drain` follows.
pub const ACK_DEADLINE: Duration = Duration::from_secs(5);

/// The weight of an endpoint: 100 under `balance: even`; under `balance: load`, its cpu
/// headroom in tenths, `100 × (1 − used / limit)` rounded to a multiple of 10 (so that
/// measurement noise does not change the table at every heartbeat), at least
/// [`WEIGHT_FLOOR`]. The limit is the cpu limit, else the cpu request; with neither, or
/// before a rate was measured, 100.
pub fn weight(balance: Balance, usage: &Usage, cpu_limit: Option<u64>) -> u8 {
    let limit = match (balance, cpu_limit) {
        (Balance::Load, Some(limit)) if limit > 0 && usage.rated => limit,
        _ => return 100,
    };
    let used = usage.cpu_millis.min(limit);
    let headroom_tenths = ((limit - used) * 10 + limit / 2) / limit;
    (headroom_tenths as u8 * 10).max(WEIGHT_FLOOR)
}

/// Why the instance is not an endpoint, or its address.
pub fn judge(state: &State, instance: &Instance) -> Result<Ipv4Addr, String> {
    let record = &instance.record;
    if record.phase != Phase::Running {
        let phase = serde_json::to_value(record.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(phase);
    }
    let node = record.node.as_deref().unwrap_or_default();
    if state.nodes.get(node).is_none_or(|n| n.record.lost) {
        return Err(format!("node {node} lost"));
    }
    if !record.ready {
        return Err("not ready (readiness probe)".into());
    }
    let Some(address) = instance.live.address.as_deref() else {
        return Err("no cluster-network address (network: cluster)".into());
    };
    address
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("address {address:?} is not IPv4"))
}

/// The instances (not ended) the service `name` selects, in id order.
pub fn selected<'a>(state: &'a State, name: &str) -> Vec<&'a Instance> {
    let Some(record) = state.services.records.get(name) else {
        return Vec::new();
    };
    let picked: Vec<&str> = state
        .workloads
        .values()
        .filter(|w| record.spec.selector.picks(&w.name, &w.spec.labels))
        .map(|w| w.name.as_str())
        .collect();
    state
        .instances
        .values()
        .filter(|i| picked.contains(&i.record.workload.as_str()))
        .filter(|i| !i.record.phase.is_final())
        .collect()
}

/// The weight of `instance` in a service balancing by `balance`.
pub fn weight_of(state: &State, instance: &Instance, balance: Balance) -> u8 {
    let limits = state.spec_of(&instance.record.id).map(|s| s.resources);
    let cpu = limits.and_then(|r| r.limits.cpu.or(Some(r.requests.cpu).filter(|&c| c > 0)));
    weight(balance, &instance.live.usage, cpu)
}

/// The entry of service `name` as things stand.
fn entry(state: &State, name: &str) -> Option<ServiceEntry> {
    let record = state.services.records.get(name)?;
    let spec = &record.spec;
    let endpoints = selected(state, name)
        .into_iter()
        .filter_map(|i| {
            let address = judge(state, i).ok()?;
            Some(ServiceEndpoint {
                instance: i.record.id.clone(),
                node: i.record.node.clone().unwrap_or_default(),
                address,
                weight: weight_of(state, i, spec.balance),
            })
        })
        .collect();
    Some(ServiceEntry {
        name: name.to_string(),
        address: record.address,
        ports: spec
            .ports
            .iter()
            .map(|p| ServicePort {
                port: p.port,
                target_port: p.target_port,
                protocol: p.protocol,
                node_port: p.node_port,
            })
            .collect(),
        affinity_seconds: spec
            .session_affinity
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
        endpoints,
    })
}

/// Recomputes every service's entry after a change; a difference starts a new generation
/// and wakes the pusher. Instances that left an entry while they are on their way to stop
/// start draining.
pub fn refresh(state: &mut State, now: Instant) {
    // Without services (and none left to remove) there is nothing to keep up to date: a
    // cluster that uses none pays nothing here.
    if state.services.records.is_empty() && state.services.entries.is_empty() {
        return;
    }
    judge_heartbeats(state);
    let names: Vec<String> = state.services.records.keys().cloned().collect();
    let mut changed: BTreeMap<String, Option<ServiceEntry>> = BTreeMap::new();
    for name in &names {
        let new = entry(state, name);
        if state.services.entries.get(name).map(|(e, _)| e) != new.as_ref() {
            changed.insert(name.clone(), new);
        }
    }
    let gone: Vec<String> = state
        .services
        .entries
        .keys()
        .filter(|n| !state.services.records.contains_key(*n))
        .cloned()
        .collect();
    for name in gone {
        changed.insert(name, None);
    }
    if changed.is_empty() {
        return;
    }
    let generation = Services::next_generation(state, now);
    for (name, new) in changed {
        let old = match new {
            Some(entry) => {
                state.services.removed.remove(&name);
                state
                    .services
                    .entries
                    .insert(name, (entry.clone(), generation))
                    .map(|(e, _)| (e, Some(entry)))
            }
            None => {
                state.services.removed.insert(name.clone(), generation);
                state.services.entries.remove(&name).map(|(e, _)| (e, None))
            }
        };
        // A deleted service sends nothing anywhere: its endpoints need no drain.
        let Some((old, Some(new))) = old else {
            continue;
        };
        for left in old
            .endpoints
            .iter()
            .filter(|e| !new.endpoints.iter().any(|x| x.instance == e.instance))
        {
            let stopping = state
                .instances
                .get(&left.instance)
                .is_some_and(|i| i.record.phase == Phase::Stopping);
            if stopping {
                state.services.draining.insert(
                    left.instance.clone(),
                    Drain {
                        generation,
                        since: now,
                        acked: None,
                    },
                );
            }
        }
    }
    state.services.wake.notify_one();
}

/// The nodes whose agents program services: on the cluster network, heard from, not lost.
pub fn targets(state: &State) -> Vec<String> {
    state
        .nodes
        .values()
        .filter(|n| n.ready() && n.record.subnet.is_some())
        .map(|n| n.record.name.clone())
        .collect()
}

/// Compares what each agent reported at its last heartbeat with what it acknowledged: an
/// agent that holds less (a restarted one holds nothing) gets the whole table again.
fn judge_heartbeats(state: &mut State) {
    for node in state.nodes.values() {
        let (Some(heard), Some(status)) = (node.live.last_heartbeat, &node.live.status) else {
            continue;
        };
        let push = state
            .services
            .nodes
            .entry(node.record.name.clone())
            .or_default();
        if push.judged == Some(heard) || push.in_flight {
            continue;
        }
        // Only a heartbeat whose call began after the acknowledgement tells what the agent
        // holds now (a later poll under way makes `last_poll` newer than `heard`: wait).
        let began = node.live.last_poll.filter(|&p| p <= heard);
        let (Some(began), Some(acked), Some(acked_at)) = (began, push.acked, push.acked_at) else {
            continue;
        };
        push.judged = Some(heard);
        if acked_at < began && status.services_generation != acked {
            push.acked = None;
            state.services.wake.notify_one();
        }
    }
}

/// Whether the stop of instance `id` must wait: while it is an endpoint (the next refresh
/// takes it out), until every node acknowledged its removal (at most [`ACK_DEADLINE`]), then
/// for its workload's `stop_drain`.
pub fn holds(state: &mut State, id: &str, now: Instant) -> bool {
    let listed = state
        .services
        .entries
        .values()
        .any(|(e, _)| e.endpoints.iter().any(|x| x.instance == id));
    if listed {
        return true;
    }
    let Some(drain) = state.services.draining.get(id).copied() else {
        return false;
    };
    let acked = drain.acked.or_else(|| {
        let everywhere = targets(state).iter().all(|n| {
            state
                .services
                .nodes
                .get(n)
                .and_then(|p| p.acked)
                .is_some_and(|g| g >= drain.generation)
        });
        (everywhere || now >= drain.since + ACK_DEADLINE).then_some(now)
    });
    let Some(acked) = acked else {
        return true;
    };
    let stop_drain = state
        .spec_of(id)
        .map_or(crate::spec::DEFAULT_STOP_DRAIN, |s| s.stop_drain);
    if now < acked + stop_drain {
        state.services.draining.insert(
            id.to_string(),
            Drain {
                acked: Some(acked),
                ..drain
            },
        );
        return true;
    }
    state.services.draining.remove(id);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{self, ServiceRecord};
    use crate::spec::service::ServiceSpec;
    use crate::spec::{parse_object, Object};
    use crate::state::{InstanceLive, InstanceRecord, Node, NodeLive, NodeRecord, WorkloadRecord};

    fn node(name: &str) -> Node {
        Node {
            record: NodeRecord {
                subnet: Some("10.88.0.0/24".into()),
                ..NodeRecord::new(name, "192.0.2.1:7443".parse().unwrap())
            },
            live: NodeLive {
                last_heartbeat: Some(Instant::now()),
                ..NodeLive::default()
            },
        }
    }

    fn instance(id: &str, workload: &str, node: &str, address: &str) -> Instance {
        Instance {
            record: InstanceRecord {
                node: Some(node.into()),
                phase: Phase::Running,
                ready: true,
                ..InstanceRecord::pending(id, workload, 1)
            },
            live: InstanceLive {
                address: Some(address.into()),
                ..InstanceLive::default()
            },
        }
    }

    fn service(text: &str) -> ServiceSpec {
        match parse_object(text).unwrap() {
            Object::Service(s) => s,
            Object::Workload(w) => panic!("{w:?}"),
        }
    }

    /// Nodes a and b; workload web (labelled app=web, cpu limit 1) with web-1..4 running on
    /// them; a service `web` selecting it by label.
    fn cluster() -> State {
        let mut state = State::default();
        state.nodes.insert("a".into(), node("a"));
        state.nodes.insert("b".into(), node("b"));
        let spec = crate::spec::parse(
            "name: web\nlabels: {app: web}\nsource: {rootfs: /x}\nresources: {limits: {cpu: 1}}\nreplicas: 4\n",
        )
        .unwrap();
        state
            .workloads
            .insert("web".into(), WorkloadRecord::new(spec, 1, 5));
        for (i, n) in ["a", "a", "b", "b"].iter().enumerate() {
            let id = format!("web-{}", i + 1);
            let address = format!("10.88.0.{}/24", i + 2);
            state
                .instances
                .insert(id.clone(), instance(&id, "web", n, &address));
        }
        let spec = service(
            "kind: service\nname: web\nselector: {labels: {app: web}}\nports: [{port: 80}]\n",
        );
        service::apply(&mut state, spec, false).unwrap();
        state
    }

    fn endpoints(state: &State) -> Vec<String> {
        state.services.entries["web"]
            .0
            .endpoints
            .iter()
            .map(|e| e.instance.clone())
            .collect()
    }

    #[test]
    fn weights_fall_with_load_to_a_floor() {
        let usage = |cpu_millis| Usage {
            cpu_millis,
            rated: true,
            ..Usage::default()
        };
        assert_eq!(weight(Balance::Even, &usage(900), Some(1000)), 100);
        assert_eq!(weight(Balance::Load, &usage(0), Some(1000)), 100);
        assert_eq!(weight(Balance::Load, &usage(500), Some(1000)), 50);
        assert_eq!(weight(Balance::Load, &usage(740), Some(1000)), 30);
        assert_eq!(weight(Balance::Load, &usage(960), Some(1000)), WEIGHT_FLOOR);
        assert_eq!(
            weight(Balance::Load, &usage(5000), Some(1000)),
            WEIGHT_FLOOR
        );
        // Nothing to compare with, or nothing measured yet: full weight.
        assert_eq!(weight(Balance::Load, &usage(500), None), 100);
        assert_eq!(weight(Balance::Load, &Usage::default(), Some(1000)), 100);
    }

    #[test]
    fn only_running_ready_addressed_instances_on_live_nodes_are_endpoints() {
        let mut state = cluster();
        refresh(&mut state, Instant::now());
        assert_eq!(endpoints(&state), ["web-1", "web-2", "web-3", "web-4"]);
        let first = state.services.generation;
        assert_eq!(
            state.services.entries["web"].0.endpoints[0]
                .address
                .to_string(),
            "10.88.0.2"
        );
        // Nothing changed: no new generation.
        refresh(&mut state, Instant::now());
        assert_eq!(state.services.generation, first);
        state.instances.get_mut("web-1").unwrap().record.ready = false;
        state.instances.get_mut("web-2").unwrap().live.address = None;
        state.nodes.get_mut("b").unwrap().record.lost = true;
        refresh(&mut state, Instant::now());
        assert_eq!(endpoints(&state), Vec::<String>::new());
        assert_eq!(state.services.generation, first + 1);
        let why = |id: &str| judge(&state, &state.instances[id]).unwrap_err();
        assert_eq!(why("web-1"), "not ready (readiness probe)");
        assert!(why("web-2").contains("no cluster-network address"));
        assert_eq!(why("web-3"), "node b lost");
        // A workload without the label is not picked.
        state.workloads.get_mut("web").unwrap().spec.labels.clear();
        assert!(selected(&state, "web").is_empty());
    }

    #[test]
    fn a_stopping_instance_leaves_first_and_stops_after_every_node_acked_and_the_drain() {
        let mut state = cluster();
        let t0 = Instant::now();
        refresh(&mut state, t0);
        crate::controller::lifecycle::request_stop(&mut state, "web-1", "scale down".into());
        // Still listed: held.
        assert!(holds(&mut state, "web-1", t0));
        refresh(&mut state, t0);
        assert_eq!(endpoints(&state), ["web-2", "web-3", "web-4"]);
        assert!(state.services.draining.contains_key("web-1"));
        // Not acknowledged anywhere: held, until the deadline.
        assert!(holds(&mut state, "web-1", t0 + Duration::from_secs(1)));
        let generation = state.services.generation;
        for n in ["a", "b"] {
            let push = state.services.nodes.entry(n.into()).or_default();
            push.acked = Some(generation);
        }
        let t1 = t0 + Duration::from_secs(2);
        assert!(holds(&mut state, "web-1", t1), "the drain period starts");
        assert!(holds(&mut state, "web-1", t1 + Duration::from_millis(1900)));
        assert!(!holds(&mut state, "web-1", t1 + Duration::from_secs(2)));
        assert!(!state.services.draining.contains_key("web-1"));
        // An instance in no service stops at once.
        crate::controller::lifecycle::request_stop(&mut state, "web-2", "x".into());
        state.services.records.clear();
        refresh(&mut state, t1);
        assert!(state.services.removed.contains_key("web"));
        assert!(!holds(&mut state, "web-2", t1));
        // An unreachable node holds a stop back no longer than the deadline.
        let mut state = cluster();
        refresh(&mut state, t0);
        crate::controller::lifecycle::request_stop(&mut state, "web-3", "x".into());
        refresh(&mut state, t0);
        assert!(holds(
            &mut state,
            "web-3",
            t0 + ACK_DEADLINE - Duration::from_millis(1)
        ));
        assert!(holds(&mut state, "web-3", t0 + ACK_DEADLINE));
        assert!(!holds(
            &mut state,
            "web-3",
            t0 + ACK_DEADLINE + Duration::from_secs(2)
        ));
    }

    #[test]
    fn a_service_record_reads_back() {
        let state = cluster();
        let record: &ServiceRecord = &state.services.records["web"];
        let json = serde_json::to_string(record).unwrap();
        let back: ServiceRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, record);
    }
}
