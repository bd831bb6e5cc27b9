//! The commands: each calls the daemon and returns what to print.

use super::client::{encode, Client};
use super::{describe, edits, json, tables, Error};
use crate::api::{
    ApplyResult, Event, InstanceDetail, InstanceView, MigrateRequest, MigrateResult, NodeDetail,
    NodeView, RebalanceResult, RollbackRequest, RolloutStatus, ScaleRequest, ServiceDetail,
    ServiceView, WorkloadDetail, WorkloadView,
};
use mini_shim::protocol::{ExecRequest, ExecResult, LogLine};
use serde::de::DeserializeOwned;
use std::io::Write;
use std::time::SystemTime;

/// What `get` and `describe` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// The cluster's nodes.
    #[value(alias = "node", alias = "no")]
    Nodes,
    /// Workloads.
    #[value(alias = "workload", alias = "wl")]
    Workloads,
    /// Instances of workloads.
    #[value(alias = "instance", alias = "inst")]
    Instances,
    /// Services.
    #[value(alias = "service", alias = "svc")]
    Services,
}

/// How `get` and `events` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// An aligned table.
    #[default]
    Table,
    /// A table with more columns.
    Wide,
    /// The JSON array the daemon sent, indented.
    Json,
}

/// What a listing prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Listing {
    /// Text for stdout.
    Text(String),
    /// Nothing to list: a note for stderr.
    Empty(String),
}

/// `cordon`, `uncordon` and `drain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAction {
    /// Take no new instances.
    Cordon,
    /// Take new instances again.
    Uncordon,
    /// Cordon and move every instance elsewhere.
    Drain,
}

/// The most `apply -f` reads of a spec file (or stdin).
pub const SPEC_FILE_LIMIT: u64 = mini_run::input_file::JSON_LIMIT;

/// Reads a spec from `file`, `-` meaning stdin; returns how to name it and its text. Only a
/// regular file (or stdin) of at most [`SPEC_FILE_LIMIT`] bytes is read.
pub fn read_spec(file: &str) -> Result<(String, String), Error> {
    use mini_run::input_file;
    let what = if file == "-" { "stdin" } else { file };
    let data = if file == "-" {
        input_file::read_from(std::io::stdin().lock(), SPEC_FILE_LIMIT)
    } else {
        input_file::read(std::path::Path::new(file), SPEC_FILE_LIMIT)
    };
    let text = data
        .and_then(|d| {
            String::from_utf8(d)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .map_err(|source| Error::Read {
            what: what.to_string(),
            source,
        })?;
    Ok((what.to_string(), text))
}

async fn apply_call(
    client: &Client,
    what: &str,
    text: String,
    dry_run: bool,
) -> Result<ApplyResult, Error> {
    // Checked here first, as the daemon will: every problem is reported even without a
    // daemon to ask. A service is left to the daemon, which lists its problems against the
    // cluster (addresses and node ports taken) with the others.
    if !crate::spec::is_service(&text) {
        if let Err(problems) = crate::spec::parse_object(&text) {
            return Err(Error::Invalid {
                what: what.to_string(),
                problems: problems.list().iter().map(ToString::to_string).collect(),
            });
        }
    }
    let path = if dry_run {
        "/v1/apply?dry_run=true"
    } else {
        "/v1/apply"
    };
    match client.post_text(path, text).await {
        Err(Error::Api {
            status: 400,
            message,
            ..
        }) => {
            let mut problems: Vec<String> = message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            // The daemon's own heading ("the spec is invalid:") repeats ours.
            if problems.len() > 1 && problems[0].ends_with(':') {
                problems.remove(0);
            }
            Err(Error::Invalid {
                what: what.to_string(),
                problems,
            })
        }
        other => other,
    }
}

/// `apply -f`: sends the spec `text` (read from `what`).
pub async fn apply(
    client: &Client,
    what: &str,
    text: String,
    dry_run: bool,
) -> Result<String, Error> {
    let r = apply_call(client, what, text, dry_run).await?;
    let dry = if dry_run { " (dry run)" } else { "" };
    if let Some(address) = &r.address {
        return Ok(format!(
            "{}/{} {} (address {address}){dry}",
            r.kind, r.workload, r.action
        ));
    }
    Ok(format!(
        "workload/{} {} (revision {}){dry}",
        r.workload, r.action, r.revision
    ))
}

/// Fetches a list, and with `-o json` prints it as received.
async fn list<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    output: Output,
) -> Result<Result<Vec<T>, String>, Error> {
    let raw = client.get_raw(path).await?;
    let unreadable = |e: serde_json::Error| Error::Unreadable {
        request: format!("GET {path}"),
        detail: e.to_string(),
    };
    if output == Output::Json {
        return Ok(Err(json::pretty(&raw).map_err(unreadable)?));
    }
    Ok(Ok(serde_json::from_slice(&raw).map_err(unreadable)?))
}

fn listing(table: super::table::Table, what: &str) -> Listing {
    if table.is_empty() {
        Listing::Empty(format!("No {what} found."))
    } else {
        Listing::Text(table.render())
    }
}

/// `get nodes|workloads|instances`; `workload` narrows instances to one workload, and `all`
/// lists superseded instances (stopped, lost and replaced) too.
pub async fn get(
    client: &Client,
    kind: Kind,
    workload: Option<&str>,
    all: bool,
    output: Output,
) -> Result<Listing, Error> {
    let now = SystemTime::now();
    let wide = output == Output::Wide;
    if workload.is_some() && kind != Kind::Instances {
        return Err(Error::Usage(
            "-w/--workload narrows `get instances` only".into(),
        ));
    }
    if all && kind != Kind::Instances {
        return Err(Error::Usage(
            "--all lists ended instances: it goes with `get instances` only".into(),
        ));
    }
    Ok(match kind {
        Kind::Nodes => match list::<NodeView>(client, "/v1/nodes", output).await? {
            Ok(rows) => listing(tables::nodes(&rows, wide, now), "nodes"),
            Err(json) => Listing::Text(json),
        },
        Kind::Workloads => match list::<WorkloadView>(client, "/v1/workloads", output).await? {
            Ok(rows) => listing(tables::workloads(&rows, now), "workloads"),
            Err(json) => Listing::Text(json),
        },
        Kind::Services => match list::<ServiceView>(client, "/v1/services", output).await? {
            Ok(rows) => listing(tables::services(&rows, now), "services"),
            Err(json) => Listing::Text(json),
        },
        Kind::Instances => {
            let mut query = Vec::new();
            if let Some(w) = workload {
                query.push(format!("workload={}", encode(w)));
            }
            if all {
                query.push("all=true".to_string());
            }
            let path = format!("/v1/instances?{}", query.join("&"));
            match list::<InstanceView>(client, &path, output).await? {
                Ok(rows) => listing(tables::instances(&rows, wide, now), "instances"),
                Err(json) => Listing::Text(json),
            }
        }
    })
}

/// `events [-w W]`.
pub async fn events(
    client: &Client,
    workload: Option<&str>,
    output: Output,
) -> Result<Listing, Error> {
    let path = match workload {
        Some(w) => format!("/v1/events?workload={}", encode(w)),
        None => "/v1/events".to_string(),
    };
    Ok(match list::<Event>(client, &path, output).await? {
        Ok(rows) => listing(tables::events(&rows, SystemTime::now()), "events"),
        Err(json) => Listing::Text(json),
    })
}

/// `describe node|workload|instance NAME`.
pub async fn describe(client: &Client, kind: Kind, name: &str) -> Result<String, Error> {
    let now = SystemTime::now();
    let name = encode(name);
    Ok(match kind {
        Kind::Nodes => {
            let d: NodeDetail = client.get(&format!("/v1/nodes/{name}")).await?;
            describe::node(&d, now)
        }
        Kind::Workloads => {
            let d: WorkloadDetail = client.get(&format!("/v1/workloads/{name}")).await?;
            describe::workload(&d, now)
        }
        Kind::Instances => {
            let d: InstanceDetail = client.get(&format!("/v1/instances/{name}")).await?;
            describe::instance(&d, now)
        }
        Kind::Services => {
            let d: ServiceDetail = client.get(&format!("/v1/services/{name}")).await?;
            describe::service(&d, now)
        }
    })
}

/// `scale WORKLOAD N`.
pub async fn scale(client: &Client, workload: &str, replicas: u32) -> Result<String, Error> {
    let w: WorkloadView = client
        .post(
            &format!("/v1/workloads/{}/scale", encode(workload)),
            Some(&ScaleRequest { replicas }),
        )
        .await?;
    Ok(format!("workload/{} scaled to {}", w.name, w.replicas))
}

/// `rightsize W [--apply]`: the recommendation's changes to the spec, applied with `apply`.
pub async fn rightsize(client: &Client, workload: &str, apply: bool) -> Result<String, Error> {
    let d: WorkloadDetail = client
        .get(&format!("/v1/workloads/{}", encode(workload)))
        .await?;
    let Some(r) = d.rightsizing else {
        return Err(Error::Usage(format!(
            "workload {workload} has no measurements yet: wait until its instances have run for a few heartbeats"
        )));
    };
    let (changes, spec) = super::autoscale::rightsize(&d.spec, &r);
    if changes.is_empty() {
        return Ok(format!("workload/{workload} already requests what it uses"));
    }
    let mut out = changes.join("\n");
    if apply {
        let text = serde_json::to_string(&spec).expect("a spec serializes");
        out.push('\n');
        out.push_str(&self::apply(client, workload, text, false).await?);
    }
    Ok(out)
}

/// `delete workload W`.
pub async fn delete_workload(client: &Client, workload: &str) -> Result<String, Error> {
    let w: WorkloadView = client
        .delete(&format!("/v1/workloads/{}", encode(workload)))
        .await?;
    Ok(format!("workload/{} deleted", w.name))
}

/// `delete node N`: forgets the node; its instances are replaced elsewhere.
pub async fn delete_node(client: &Client, node: &str) -> Result<String, Error> {
    let _: serde_json::Value = client
        .delete(&format!("/v1/nodes/{}", encode(node)))
        .await?;
    Ok(format!(
        "node/{node} deleted (its instances are replaced elsewhere; it joins again only with a new token)"
    ))
}

/// `delete service S`.
pub async fn delete_service(client: &Client, service: &str) -> Result<String, Error> {
    let s: ServiceView = client
        .delete(&format!("/v1/services/{}", encode(service)))
        .await?;
    Ok(format!(
        "service/{} deleted (address {} freed)",
        s.name, s.address
    ))
}

/// `delete -f FILE`: deletes the workload or service the spec names (learned from a dry-run
/// apply).
pub async fn delete_spec(client: &Client, what: &str, text: String) -> Result<String, Error> {
    let r = apply_call(client, what, text, true).await?;
    if r.kind == "service" {
        return delete_service(client, &r.workload).await;
    }
    delete_workload(client, &r.workload).await
}

/// `rollout undo W [--to-revision N]`.
pub async fn rollback(
    client: &Client,
    workload: &str,
    revision: Option<u64>,
) -> Result<String, Error> {
    let s: RolloutStatus = client
        .post(
            &format!("/v1/workloads/{}/rollback", encode(workload)),
            Some(&RollbackRequest { revision }),
        )
        .await?;
    Ok(format!(
        "workload/{} rolled back: revision {} is rolling out ({})",
        s.workload, s.revision, s.message
    ))
}

/// `rollout history W`.
pub async fn history(client: &Client, workload: &str) -> Result<String, Error> {
    let d: WorkloadDetail = client
        .get(&format!("/v1/workloads/{}", encode(workload)))
        .await?;
    Ok(tables::revisions(&d.revisions, d.workload.revision, SystemTime::now()).render())
}

/// `migrate INSTANCE [--to NODE]`.
pub async fn migrate(client: &Client, instance: &str, to: Option<String>) -> Result<String, Error> {
    let m: MigrateResult = client
        .post(
            &format!("/v1/instances/{}/migrate", encode(instance)),
            Some(&MigrateRequest { node: to }),
        )
        .await?;
    Ok(format!(
        "instance/{} migrating: {} starts on {}; {} stops once it is ready",
        m.instance, m.replacement, m.node, m.instance
    ))
}

/// `rebalance`.
pub async fn rebalance(client: &Client) -> Result<String, Error> {
    let r: RebalanceResult = client.post::<(), _>("/v1/rebalance", None).await?;
    let mut out = String::new();
    for m in &r.moves {
        out.push_str(&format!(
            "instance/{} moving to {} as {}\n",
            m.instance, m.node, m.replacement
        ));
    }
    if !r.message.is_empty() {
        out.push_str(&r.message);
        out.push('\n');
    }
    Ok(out)
}

/// `cordon`, `uncordon`, `drain NODE`.
pub async fn node_action(client: &Client, node: &str, action: NodeAction) -> Result<String, Error> {
    let verb = match action {
        NodeAction::Cordon => "cordon",
        NodeAction::Uncordon => "uncordon",
        NodeAction::Drain => "drain",
    };
    let n: NodeView = client
        .post::<(), _>(&format!("/v1/nodes/{}/{verb}", encode(node)), None)
        .await?;
    Ok(match action {
        NodeAction::Cordon => format!("node/{} cordoned", n.name),
        NodeAction::Uncordon => format!("node/{} uncordoned", n.name),
        NodeAction::Drain if n.instances == 0 => format!("node/{} drained", n.name),
        NodeAction::Drain => format!(
            "node/{} cordoned and draining: {} instances are moving elsewhere",
            n.name, n.instances
        ),
    })
}

/// `label node N k=v… k-…`.
pub async fn label(client: &Client, node: &str, args: &[String]) -> Result<String, Error> {
    let request = edits::labels(args)?;
    let n: NodeView = client
        .post(
            &format!("/v1/nodes/{}/labels", encode(node)),
            Some(&request),
        )
        .await?;
    Ok(format!(
        "node/{} labeled (labels: {})",
        n.name,
        super::format::labels(&n.labels)
    ))
}

/// `taint node N k=v:Effect… k-…`.
pub async fn taint(client: &Client, node: &str, args: &[String]) -> Result<String, Error> {
    let request = edits::taints(args)?;
    let n: NodeView = client
        .post(
            &format!("/v1/nodes/{}/taints", encode(node)),
            Some(&request),
        )
        .await?;
    Ok(format!(
        "node/{} tainted (taints: {})",
        n.name,
        super::format::taints(&n.taints)
    ))
}

/// `exec INSTANCE -- CMD ARGS…`.
pub async fn exec(client: &Client, instance: &str, args: Vec<String>) -> Result<ExecResult, Error> {
    let request = ExecRequest {
        args,
        env: Vec::new(),
        timeout_secs: None,
    };
    client
        .post(
            &format!("/v1/instances/{}/exec", encode(instance)),
            Some(&request),
        )
        .await
}

/// `logs INSTANCE [-f] [--tail N]`: copies the log's stdout lines to `out` and its stderr
/// (and the monitor's notes) to `err` as they arrive.
pub async fn logs(
    client: &Client,
    instance: &str,
    follow: bool,
    tail: Option<u64>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<(), Error> {
    let mut path = format!("/v1/instances/{}/logs?follow={follow}", encode(instance));
    if let Some(n) = tail {
        path.push_str(&format!("&tail={n}"));
    }
    let mut stream = client.stream(&path).await?;
    let mut pending = Vec::new();
    while let Some(chunk) = stream.next().await? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            write_log_line(&line[..end], &path, out, err)?;
        }
        out.flush()?;
        err.flush()?;
    }
    if !pending.iter().all(u8::is_ascii_whitespace) {
        write_log_line(&pending, &path, out, err)?;
    }
    out.flush()?;
    err.flush()?;
    Ok(())
}

fn write_log_line(
    raw: &[u8],
    path: &str,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<(), Error> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let line: LogLine = serde_json::from_slice(raw).map_err(|e| Error::Unreadable {
        request: format!("GET {path}"),
        detail: format!("{e}: {}", String::from_utf8_lossy(raw)),
    })?;
    let sink: &mut dyn Write = if line.stream == "stdout" { out } else { err };
    sink.write_all(line.text.as_bytes())?;
    if !line.partial {
        sink.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_go_to_their_stream() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        for raw in [
            r#"{"timestamp":"t","stream":"stdout","text":"hello"}"#,
            r#"{"timestamp":"t","stream":"stderr","text":"oops"}"#,
            r#"{"timestamp":"t","stream":"stdout","text":"par","partial":true}"#,
            r#"{"timestamp":"t","stream":"stdout","text":"tial"}"#,
            r#"{"timestamp":"t","stream":"monitor","text":"3 lines dropped"}"#,
            "",
        ] {
            write_log_line(raw.as_bytes(), "/logs", &mut out, &mut err).unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "hello\npartial\n");
        assert_eq!(String::from_utf8(err).unwrap(), "oops\n3 lines dropped\n");
    }

    #[test]
    fn an_unreadable_log_line_is_an_error() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let e = write_log_line(b"not json", "/logs", &mut out, &mut err).unwrap_err();
        assert!(e.to_string().contains("not json"), "{e}");
    }
}
