//! The HTTP side of the protocol: routes, request parsing and error answers. Every answer is
//! JSON (errors too: [`crate::protocol::ErrorBody`]) except `/metrics` (Prometheus text) and
//! log streams (JSON lines).

use super::{Agent, Error};
use crate::connection_limits::read_body;
use crate::protocol::{self, ExecRequest, KillRequest, LogLine, Probe, RunRequest, StopRequest};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;

/// The largest request body accepted.
const MAX_BODY: usize = 1 << 20;

/// A response body: a whole buffer or a stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// A log stream as a response body, one JSON line per record. Dropped by hyper when the
/// client goes away, which closes the channel and so ends the follow behind it.
struct LogBody(tokio::sync::mpsc::Receiver<LogLine>);

impl hyper::body::Body for LogBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|line| {
            line.map(|line| {
                let mut text = serde_json::to_vec(&line).expect("log lines serialize");
                text.push(b'\n');
                Ok(Frame::data(Bytes::from(text)))
            })
        })
    }
}

/// Answers one request.
pub async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Response<Body> {
    if agent.hollow().is_some_and(|h| h.frozen()) {
        // A frozen hollow node: as lost as a host that is gone, until it is thawed.
        std::future::pending::<()>().await;
    }
    agent
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match route(&agent, req).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

fn error_response(e: &Error) -> Response<Body> {
    json(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.body(),
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut text = serde_json::to_vec(value).expect("protocol types serialize");
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)).boxed())
        .expect("static response parts")
}

fn ok<T: Serialize>(value: &T) -> Result<Response<Body>, Error> {
    Ok(json(StatusCode::OK, value))
}

/// The request body as JSON, `None` when it is empty (or only white space). It must arrive
/// within the listener's body timeout: a client that announces more than it sends is not
/// waited for forever.
async fn json_body<T: DeserializeOwned>(
    agent: &Agent,
    req: Request<Incoming>,
    limit: usize,
) -> Result<Option<T>, Error> {
    let timeout = agent.config.limits.body_timeout;
    let bytes = read_body(req.into_body(), limit, timeout)
        .await
        .map_err(|e| Error::BadRequest(format!("reading the request body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::BadRequest(format!("malformed request body: {e}")))
}

/// A JSON body the request must have.
async fn body<T: DeserializeOwned>(agent: &Agent, req: Request<Incoming>) -> Result<T, Error> {
    json_body(agent, req, MAX_BODY)
        .await?
        .ok_or_else(|| Error::BadRequest("the request needs a JSON body (see PROTOCOL.md)".into()))
}

/// A service table or changes: a required body, larger than other requests' (see
/// [`super::service::MAX_TABLE_BYTES`]).
async fn table_body<T: DeserializeOwned>(
    agent: &Agent,
    req: Request<Incoming>,
) -> Result<T, Error> {
    json_body(agent, req, super::service::MAX_TABLE_BYTES as usize)
        .await?
        .ok_or_else(|| Error::BadRequest("the request needs a JSON body (see PROTOCOL.md)".into()))
}

/// A body that may be left out (`{}` is the same as none).
async fn optional_body<T: DeserializeOwned + Default>(
    agent: &Agent,
    req: Request<Incoming>,
) -> Result<T, Error> {
    Ok(json_body(agent, req, MAX_BODY).await?.unwrap_or_default())
}

/// The query parameters of a request.
struct Query(Vec<(String, String)>);

impl Query {
    fn of(req: &Request<Incoming>, allowed: &[&str]) -> Result<Query, Error> {
        let mut pairs = Vec::new();
        for part in req.uri().query().unwrap_or("").split('&') {
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if !allowed.contains(&k) {
                return Err(Error::BadRequest(format!(
                    "unknown query parameter {k:?} (this route takes: {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(Query(pairs))
    }

    fn flag(&self, name: &str) -> Result<bool, Error> {
        match self
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
        {
            None | Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(v) => Err(Error::BadRequest(format!(
                "query parameter {name}={v:?}: use true or false"
            ))),
        }
    }

    fn number(&self, name: &str) -> Result<Option<usize>, Error> {
        match self.0.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => v.parse().map(Some).map_err(|_| {
                Error::BadRequest(format!("query parameter {name}={v:?}: not a number"))
            }),
        }
    }
}

fn method_not_allowed(method: &Method, path: &str, allowed: &str) -> Error {
    Error::BadRequest(format!("{method} {path} is not served; use {allowed}"))
}

async fn route(agent: &Arc<Agent>, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/metrics" {
        Query::of(&req, &[])?;
        if method != Method::GET {
            return Err(method_not_allowed(&method, &path, "GET"));
        }
        let text = agent.metrics().await;
        return Ok(Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(text)).boxed())
            .expect("static response parts"));
    }
    let Some(rest) = path.strip_prefix(protocol::PREFIX) else {
        return Err(Error::NotFound(format!(
            "no route {path}; this agent speaks protocol v{} under {}/ (see PROTOCOL.md)",
            protocol::VERSION,
            protocol::PREFIX
        )));
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (segments.as_slice(), &method) {
        (["version"], &Method::GET) => ok(&agent.version()),
        (["node"], &Method::GET) => ok(&agent.node_status().await),
        (["network"], &Method::GET) => ok(&agent.network_state()),
        (["network"], &Method::POST) => ok(&agent.set_network(body(agent, req).await?).await?),
        (["network"], _) => Err(method_not_allowed(&method, &path, "GET or POST")),
        (["services"], &Method::GET) => ok(&agent.services_state().await),
        (["services"], &Method::PUT) => {
            ok(&agent.put_services(table_body(agent, req).await?).await?)
        }
        (["services"], &Method::PATCH) => {
            ok(&agent.patch_services(table_body(agent, req).await?).await?)
        }
        (["services"], _) => Err(method_not_allowed(&method, &path, "GET, PUT or PATCH")),
        (["certificate"], &Method::POST) => {
            ok(&agent.renew_certificate(body(agent, req).await?).await?)
        }
        (["certificate"], _) => Err(method_not_allowed(&method, &path, "POST")),
        (["containers"], &Method::GET) => {
            let stats = Query::of(&req, &["stats"])?.flag("stats")?;
            ok(&agent.list(stats).await)
        }
        (["containers"], &Method::POST) => {
            let request: RunRequest = body(agent, req).await?;
            let info = agent.run(request).await?;
            Ok(json(StatusCode::CREATED, &info))
        }
        (["containers"], _) => Err(method_not_allowed(&method, &path, "GET or POST")),
        (["containers", id], &Method::GET) => ok(&agent.info(id).await?),
        (["containers", id], &Method::DELETE) => {
            let force = Query::of(&req, &["force"])?.flag("force")?;
            agent.delete(id, force).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({"deleted": id})))
        }
        (["containers", _], _) => Err(method_not_allowed(&method, &path, "GET or DELETE")),
        (["containers", id, action], _) => {
            let id = id.to_string();
            container_action(agent, &id, action, req).await
        }
        _ => Err(Error::NotFound(format!(
            "no route {method} {path} (see PROTOCOL.md)"
        ))),
    }
}

async fn container_action(
    agent: &Arc<Agent>,
    id: &str,
    action: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match (action, &method) {
        ("stop", &Method::POST) => {
            let request: StopRequest = optional_body(agent, req).await?;
            ok(&agent.stop(id, request).await?)
        }
        ("kill", &Method::POST) => {
            let request: KillRequest = body(agent, req).await?;
            agent.kill(id, &request.signal).await?;
            ok(&agent.info(id).await?)
        }
        ("wait", &Method::POST) => ok(&agent.wait(id).await?),
        ("exec", &Method::POST) => {
            let request: ExecRequest = body(agent, req).await?;
            ok(&agent.exec(id, request).await?)
        }
        ("probe", &Method::POST) => {
            let probe: Probe = body(agent, req).await?;
            ok(&agent.probe(id, probe).await?)
        }
        ("stats", &Method::GET) => ok(&agent.stats(id).await?),
        ("logs", &Method::GET) => {
            let query = Query::of(&req, &["follow", "tail"])?;
            let follow = query.flag("follow")?;
            let tail = query.number("tail")?;
            let lines = agent.logs(id, follow, tail).await?;
            Ok(Response::builder()
                .header("content-type", "application/x-ndjson")
                .body(LogBody(lines).boxed())
                .expect("static response parts"))
        }
        ("stop" | "kill" | "wait" | "exec" | "probe", _) => {
            Err(method_not_allowed(&method, &path, "POST"))
        }
        ("stats" | "logs", _) => Err(method_not_allowed(&method, &path, "GET")),
        _ => Err(Error::NotFound(format!(
            "no route {method} {path} (see PROTOCOL.md)"
        ))),
    }
}
