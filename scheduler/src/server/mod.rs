//! The daemon's API for the CLI: HTTP/1.1 + JSON on a root-only unix socket (routes in
//! [`crate::api`]).

pub mod metrics;
pub mod services;
pub mod views;
pub mod workloads;

use crate::api::{
    ErrorBody, ErrorInfo, LabelsRequest, MigrateRequest, RebalanceResult, RollbackRequest,
    ScaleRequest, TaintsRequest,
};
use crate::controller::migration::{self, MigrateError};
use crate::controller::{Action, Daemon};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use mini_shim::connection_limits::{self, accept::Log, read_body, Gate, Limits};
use mini_shim::protocol::{ExecRequest, ExecResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The largest request body the API reads (a workload spec, mostly).
pub const MAX_REQUEST_BODY: usize = 4 << 20;

/// A response body: JSON, text, or a stream proxied from an agent.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A failed request: status, code and one-line message.
#[derive(Debug)]
pub struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "bad_request", message.into())
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, "not_found", message.into())
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError(StatusCode::CONFLICT, "conflict", message.into())
    }
    /// 502: an agent failed.
    pub fn agent(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_GATEWAY, "agent_unavailable", message.into())
    }
}

impl From<MigrateError> for ApiError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::NotFound(m) => ApiError::not_found(m),
            MigrateError::Conflict(m) => ApiError::conflict(m),
        }
    }
}

type Answer = Result<Response<Body>, ApiError>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// A JSON answer with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value).expect("answers serialize");
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("valid response")
}

fn ok<T: Serialize>(value: &T) -> Answer {
    Ok(json(StatusCode::OK, value))
}

fn metrics_response(daemon: &Daemon) -> Response<Body> {
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(full(metrics::render(daemon)))
        .expect("valid response")
}

fn error_response(e: ApiError) -> Response<Body> {
    json(
        e.0,
        &ErrorBody {
            error: ErrorInfo {
                code: e.1.into(),
                message: e.2,
            },
        },
    )
}

/// The request body: at most [`MAX_REQUEST_BODY`] bytes, all within the body timeout.
async fn body_bytes(req: Request<Incoming>, limits: &Limits) -> Result<Bytes, ApiError> {
    read_body(req.into_body(), MAX_REQUEST_BODY, limits.body_timeout)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

async fn body_json<T: DeserializeOwned + Default>(
    req: Request<Incoming>,
    limits: &Limits,
) -> Result<T, ApiError> {
    let bytes = body_bytes(req, limits).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

fn spawn(daemon: &Arc<Daemon>, actions: Vec<Action>) {
    daemon.spawn(actions);
    daemon.wake.notify_one();
}

/// Answers one request.
pub async fn handle(
    daemon: Arc<Daemon>,
    req: Request<Incoming>,
    limits: &Limits,
) -> Response<Body> {
    match route(daemon, req, limits).await {
        Ok(response) => response,
        Err(e) => error_response(e),
    }
}

async fn route(daemon: Arc<Daemon>, req: Request<Incoming>, limits: &Limits) -> Answer {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let d = &daemon;
    match (&method, parts.as_slice()) {
        (&Method::GET, ["metrics"]) => Ok(metrics_response(d)),
        (&Method::POST, ["v1", "apply"]) => {
            let dry_run = query(&req).get("dry_run").is_some_and(|v| v == "true");
            let text = body_bytes(req, limits).await?;
            let text = String::from_utf8(text.to_vec())
                .map_err(|_| ApiError::bad_request("the spec is not UTF-8 text"))?;
            let result = workloads::apply(d, text, dry_run).await?;
            d.wake.notify_one();
            ok(&result)
        }
        (&Method::GET, ["v1", "nodes"]) => ok(&d.read(|s| {
            s.nodes
                .values()
                .map(|n| views::node_view(s, n))
                .collect::<Vec<_>>()
        })),
        (&Method::GET, ["v1", "nodes", name]) => d.read(|s| {
            let node = s.nodes.get(*name).ok_or_else(|| no_node(name))?;
            ok(&views::node_detail(s, node))
        }),
        (&Method::DELETE, ["v1", "nodes", name]) => {
            let deleted = d.with(|s| crate::controller::heartbeat::delete_node(d, s, name));
            if !deleted {
                return Err(no_node(name));
            }
            d.wake.notify_one();
            ok(&serde_json::json!({ "deleted": name }))
        }
        (&Method::POST, ["v1", "nodes", name, op @ ("cordon" | "uncordon" | "drain")]) => {
            let (view, actions) = d.with(|s| {
                let mut actions = Vec::new();
                if !s.nodes.contains_key(*name) {
                    return Err(no_node(name));
                }
                match *op {
                    "drain" => migration::drain(d, s, name, &mut actions)?,
                    op => {
                        let cordon = op == "cordon";
                        s.nodes.get_mut(*name).expect("checked").record.cordoned = cordon;
                        s.save_node(name);
                        let reason = if cordon { "Cordoned" } else { "Uncordoned" };
                        s.event(format!("node/{name}"), reason, format!("{op}ed by request"));
                    }
                }
                Ok((views::node_view(s, &s.nodes[*name]), actions))
            })?;
            spawn(d, actions);
            ok(&view)
        }
        (&Method::POST, ["v1", "nodes", name, "labels"]) => {
            let request: LabelsRequest = body_json(req, limits).await?;
            d.with(|s| {
                crate::labels::validate_all(&request.set).map_err(ApiError::bad_request)?;
                let node = s.nodes.get_mut(*name).ok_or_else(|| no_node(name))?;
                for key in &request.remove {
                    node.record.labels.remove(key);
                }
                for (k, v) in &request.set {
                    node.record.labels.insert(k.clone(), v.clone());
                }
                s.save_node(name);
                s.event(format!("node/{name}"), "Labelled", format!("{request:?}"));
                ok(&views::node_view(s, &s.nodes[*name]))
            })
        }
        (&Method::POST, ["v1", "nodes", name, "taints"]) => {
            let request: TaintsRequest = body_json(req, limits).await?;
            for t in &request.add {
                if !matches!(
                    t.effect.as_str(),
                    "NoSchedule" | "PreferNoSchedule" | "NoExecute"
                ) {
                    return Err(ApiError::bad_request(format!(
                        "taint {}: effect {:?} is not NoSchedule, PreferNoSchedule or NoExecute",
                        t.key, t.effect
                    )));
                }
            }
            d.with(|s| {
                let node = s.nodes.get_mut(*name).ok_or_else(|| no_node(name))?;
                let taints = &mut node.record.taints;
                taints.retain(|t| {
                    !request.remove.contains(&t.key) && !request.add.iter().any(|a| a.key == t.key)
                });
                taints.extend(request.add.iter().cloned());
                s.save_node(name);
                s.event(format!("node/{name}"), "Tainted", format!("{request:?}"));
                ok(&views::node_view(s, &s.nodes[*name]))
            })
        }
        (&Method::GET, ["v1", "workloads"]) => ok(&d.read(|s| {
            s.workloads
                .values()
                .map(|w| views::workload_view(s, w))
                .collect::<Vec<_>>()
        })),
        (&Method::GET, ["v1", "workloads", name]) => d.read(|s| {
            let w = s.workloads.get(*name).ok_or_else(|| no_workload(name))?;
            ok(&views::workload_detail(s, w))
        }),
        (&Method::DELETE, ["v1", "workloads", name]) => {
            let view = workloads::delete(d, name)?;
            d.wake.notify_one();
            ok(&view)
        }
        (&Method::POST, ["v1", "workloads", name, "scale"]) => {
            let request: ScaleRequest = body_json_required(req, limits).await?;
            let view = workloads::scale(d, name, request.replicas)?;
            d.wake.notify_one();
            ok(&view)
        }
        (&Method::GET, ["v1", "workloads", name, "rollout"]) => d.read(|s| {
            let w = s.workloads.get(*name).ok_or_else(|| no_workload(name))?;
            ok(&views::rollout(s, w))
        }),
        (&Method::POST, ["v1", "workloads", name, "rollback"]) => {
            let request: RollbackRequest = body_json(req, limits).await?;
            let status = workloads::rollback(d, name, request.revision)?;
            d.wake.notify_one();
            ok(&status)
        }
        (&Method::GET, ["v1", "instances"]) => {
            let q = query(&req);
            let workload = q.get("workload");
            // Superseded instances (stopped, lost and replaced) only when asked for.
            let all = q.get("all").is_some_and(|v| v == "true");
            ok(&d.read(|s| {
                let selected: Box<dyn Iterator<Item = &crate::state::Instance>> = match workload {
                    Some(w) => Box::new(s.instances_of(w)),
                    None => Box::new(s.instances.values()),
                };
                let mut rows: Vec<_> = selected
                    .filter(|i| all || !i.record.phase.is_ended())
                    .map(views::instance_view)
                    .collect();
                rows.sort_by_key(|i| (i.workload.clone(), crate::state::sequence(&i.id)));
                rows
            }))
        }
        (&Method::GET, ["v1", "instances", id]) => d.read(|s| {
            let i = s.instances.get(*id).ok_or_else(|| no_instance(id))?;
            let mut detail = views::instance_detail(s, i);
            if i.record.phase == crate::api::Phase::Pending {
                detail.placement = crate::controller::placing::verdicts(d, s, id);
            }
            ok(&detail)
        }),
        (&Method::POST, ["v1", "instances", id, "migrate"]) => {
            let request: MigrateRequest = body_json(req, limits).await?;
            let (result, actions) = d.with(|s| {
                let mut actions = Vec::new();
                let r = migration::migrate(d, s, id, request.node.as_deref(), &mut actions);
                (r, actions)
            });
            spawn(d, actions);
            ok(&result?)
        }
        (&Method::GET, ["v1", "instances", id, "logs"]) => {
            let query = req.uri().query().unwrap_or("").to_string();
            let addr = instance_addr(d, id)?;
            let path = format!("/v1/containers/{id}/logs?{query}");
            let body = d
                .agents
                .stream(addr, &path)
                .await
                .map_err(|e| ApiError::agent(e.to_string()))?;
            Ok(Response::builder()
                .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
                .body(body.boxed())
                .expect("valid response"))
        }
        (&Method::POST, ["v1", "instances", id, "exec"]) => {
            let request: ExecRequest = body_json_required(req, limits).await?;
            let addr = instance_addr(d, id)?;
            let timeout =
                Duration::from_secs(request.timeout_secs.unwrap_or(30).saturating_add(10));
            let result: ExecResult = d
                .agents
                .post(
                    addr,
                    &format!("/v1/containers/{id}/exec"),
                    &request,
                    timeout,
                )
                .await
                .map_err(|e| ApiError::agent(e.to_string()))?;
            ok(&result)
        }
        (&Method::POST, ["v1", "rebalance"]) => {
            let (result, actions): (RebalanceResult, _) = d.with(|s| {
                let mut actions = Vec::new();
                let r = migration::rebalance(d, s, &mut actions);
                (r, actions)
            });
            spawn(d, actions);
            ok(&result)
        }
        (&Method::GET, ["v1", "services"]) => ok(&d.with(|s| services::list(s))),
        (&Method::GET, ["v1", "services", name]) => d.with(|s| ok(&services::detail(s, name)?)),
        (&Method::DELETE, ["v1", "services", name]) => d.with(|s| ok(&services::delete(s, name)?)),
        (&Method::GET, ["v1", "events"]) => {
            let q = query(&req);
            let workload = q.get("workload").cloned();
            ok(&d.read(|s| match &workload {
                Some(w) => views::events_about(s, &[format!("workload/{w}")], Some(w)),
                None => s.events.iter().cloned().collect(),
            }))
        }
        _ => Err(ApiError::not_found(format!("no route {method} {path}"))),
    }
}

async fn body_json_required<T: DeserializeOwned>(
    req: Request<Incoming>,
    limits: &Limits,
) -> Result<T, ApiError> {
    let bytes = body_bytes(req, limits).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

fn no_node(name: &str) -> ApiError {
    ApiError::not_found(format!("no node {name} (see `mini-sched get nodes`)"))
}

/// The error for an unknown workload.
pub fn no_workload(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no workload {name} (see `mini-sched get workloads`)"
    ))
}

fn no_instance(id: &str) -> ApiError {
    ApiError::not_found(format!("no instance {id} (see `mini-sched get instances`)"))
}

fn instance_addr(d: &Daemon, id: &str) -> Result<std::net::SocketAddr, ApiError> {
    d.read(|s| {
        let i = s.instances.get(id).ok_or_else(|| no_instance(id))?;
        let node =
            i.record.node.as_ref().ok_or_else(|| {
                ApiError::conflict(format!("instance {id} is not placed on a node"))
            })?;
        Ok(s.nodes
            .get(node)
            .ok_or_else(|| no_node(node))?
            .record
            .address)
    })
}

/// Serves `GET /metrics` alone, plain HTTP, on `listener` under `limits` (for Prometheus,
/// which cannot scrape a unix socket); anything else is 404.
pub async fn serve_metrics(daemon: Arc<Daemon>, listener: tokio::net::TcpListener, limits: Limits) {
    connection_limits::serve(listener, Gate::new(limits), None, log(), move |_| {
        let daemon = daemon.clone();
        service_fn(move |req: Request<Incoming>| {
            let daemon = daemon.clone();
            async move {
                let response = if req.method() == Method::GET && req.uri().path() == "/metrics" {
                    metrics_response(&daemon)
                } else {
                    error_response(ApiError::not_found("only GET /metrics is served here"))
                };
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    })
    .await;
}

/// Serves the API on the unix socket `path` (mode 0600) under `limits` until the process
/// ends; the caller has claimed the path ([`crate::socket::claim`]). Fails only when the
/// socket cannot be made.
pub async fn serve(daemon: Arc<Daemon>, path: &Path, limits: Limits) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let limits = limits.local_clients();
    connection_limits::serve(listener, Gate::new(limits), None, log(), move |_| {
        let daemon = daemon.clone();
        service_fn(move |req| {
            let daemon = daemon.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(daemon, req, &limits).await) }
        })
    })
    .await;
    Ok(())
}

/// The daemon's log for its listeners.
fn log() -> Log {
    Arc::new(|line: &str| {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        eprintln!("{now} mini-sched: {line}");
    })
}
