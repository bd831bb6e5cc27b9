//! The API of services: apply (from `POST /v1/apply` with `kind: service`), list, describe
//! and delete. The endpoints controller and the pusher do the rest.

use super::ApiError;
use crate::api::{
    ApplyResult, EndpointView, ServiceDetail, ServiceNodeView, ServicePortView, ServiceView,
};
use crate::controller::endpoints;
use crate::controller::Daemon;
use crate::service::{self, ServiceRecord};
use crate::spec::service::{protocol_name, Balance, Selector, ServiceSpec};
use crate::state::State;

/// The answer to a spec with `problems` (one per line, under a heading).
pub fn invalid(problems: Vec<String>) -> ApiError {
    ApiError::bad_request(format!(
        "the spec is invalid:\n{}",
        problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// `apply` of a service: checked against the cluster (address, node ports), then created
/// (with a new address unless it asks for one) or updated; nothing changes on any problem.
pub fn apply(daemon: &Daemon, spec: ServiceSpec, dry_run: bool) -> Result<ApplyResult, ApiError> {
    daemon.with(|s| {
        // Checked again under the lock: another apply may have taken an address or port.
        let problems = service::check_against(&s.services.settings, &s.services.records, &spec);
        if !problems.is_empty() {
            return Err(invalid(problems.iter().map(ToString::to_string).collect()));
        }
        let name = spec.name.clone();
        let (action, address) = service::apply(s, spec, dry_run).map_err(ApiError::conflict)?;
        Ok(ApplyResult {
            kind: "service".into(),
            workload: name,
            address: Some(address.to_string()),
            revision: 0,
            action,
        })
    })
}

/// `get services`.
pub fn list(state: &State) -> Vec<ServiceView> {
    state
        .services
        .records
        .values()
        .map(|r| view(state, r))
        .collect()
}

fn view(state: &State, record: &ServiceRecord) -> ServiceView {
    let spec = &record.spec;
    let ready = state
        .services
        .entries
        .get(&spec.name)
        .map_or(0, |(e, _)| e.endpoints.len());
    let total = endpoints::selected(state, &spec.name).len();
    ServiceView {
        name: spec.name.clone(),
        address: record.address.to_string(),
        dns_name: format!("{}.{}", spec.name, state.services.settings.domain),
        ports: spec
            .ports
            .iter()
            .map(|p| ServicePortView {
                port: p.port,
                target_port: p.target_port,
                protocol: protocol_name(p.protocol).into(),
                node_port: p.node_port,
            })
            .collect(),
        selector: match &spec.selector {
            Selector::Workload(w) => format!("workload={w}"),
            Selector::Labels(labels) => labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        },
        balance: match spec.balance {
            Balance::Even => "even",
            Balance::Load => "load",
        }
        .into(),
        ready: u32::try_from(ready).unwrap_or(u32::MAX),
        total: u32::try_from(total).unwrap_or(u32::MAX),
        created_at: record.created_at.clone(),
    }
}

fn no_service(name: &str) -> ApiError {
    ApiError::not_found(format!("no service {name} (see `mini-sched get services`)"))
}

/// `describe service NAME`.
pub fn detail(state: &State, name: &str) -> Result<ServiceDetail, ApiError> {
    let record = state
        .services
        .records
        .get(name)
        .ok_or_else(|| no_service(name))?;
    let listed = state.services.entries.get(name).map(|(e, _)| e);
    let endpoints = endpoints::selected(state, name)
        .into_iter()
        .map(|i| {
            let id = &i.record.id;
            let live = listed.and_then(|e| e.endpoints.iter().find(|x| &x.instance == id));
            let reason = match live {
                Some(_) => None,
                None => Some(match endpoints::judge(state, i) {
                    Err(why) => why,
                    // Judged fit since the last refresh: it is in the next table.
                    Ok(_) => "joining".into(),
                }),
            };
            EndpointView {
                instance: id.clone(),
                node: i.record.node.clone(),
                address: i.live.address.clone(),
                ready: live.is_some(),
                reason,
                weight: live.map(|e| e.weight),
            }
        })
        .collect();
    let nodes = endpoints::targets(state)
        .into_iter()
        .map(|node| {
            let push = state.services.nodes.get(&node);
            ServiceNodeView {
                generation: push.and_then(|p| p.acked),
                error: push.and_then(|p| p.error.clone()),
                node,
            }
        })
        .collect();
    Ok(ServiceDetail {
        service: view(state, record),
        session_affinity_seconds: record.spec.session_affinity.map(|d| d.as_secs()),
        endpoints,
        generation: state.services.generation,
        nodes,
        events: super::views::events_about(state, &[format!("service/{name}")], None),
    })
}

/// `delete service NAME`: the agents drop it with the next push.
pub fn delete(state: &mut State, name: &str) -> Result<ServiceView, ApiError> {
    let record = state
        .services
        .records
        .get(name)
        .ok_or_else(|| no_service(name))?;
    let view = view(state, record);
    service::delete(state, name);
    Ok(view)
}

/// The services' part of `/metrics`: services and endpoints, pushes, push failures and the
/// propagation latency (a change to its acknowledgement by one agent).
pub fn metrics(state: &State) -> String {
    use std::fmt::Write;
    let s = &state.services;
    let endpoints: usize = s.entries.values().map(|(e, _)| e.endpoints.len()).sum();
    let stats = &s.stats;
    let mut out = String::new();
    for (name, kind, help, value) in [
        ("services", "gauge", "Services.", s.records.len() as f64),
        (
            "service_endpoints",
            "gauge",
            "Ready endpoints over all services.",
            endpoints as f64,
        ),
        (
            "service_table_generation",
            "gauge",
            "The service table's generation.",
            s.generation as f64,
        ),
        (
            "service_pushes_total",
            "counter",
            "Service table pushes agents acknowledged.",
            stats.pushes as f64,
        ),
        (
            "service_full_pushes_total",
            "counter",
            "Of those, whole tables (PUT).",
            stats.full as f64,
        ),
        (
            "service_push_failures_total",
            "counter",
            "Service table pushes that failed.",
            stats.failures as f64,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP mini_sched_{name} {help}\n# TYPE mini_sched_{name} {kind}\nmini_sched_{name} {value}"
        );
    }
    let name = "mini_sched_service_propagation_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From a change of the endpoints to its acknowledgement by an agent.\n# TYPE {name} histogram"
    );
    for (i, le) in service::LATENCY_BUCKETS.iter().enumerate() {
        let count = stats.latency.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
        stats.latency_count, stats.latency_sum, stats.latency_count
    );
    out
}
