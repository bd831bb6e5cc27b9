//! The rules a well-formed spec must still meet: names, paths, limits against requests,
//! probe timing, update bounds, and the maxima of [`limits`]. Every rule is checked; every
//! breach is reported.

use std::time::Duration;

use mini_shim::protocol::{Network, Source};

use super::limits;
use super::problems::{field, item, Collector, Problem, Problems};
use super::quantity::{format_cpu, format_memory};
use super::{Amount, ProbeCheck, ProbeSpec, TopologySpec, WorkloadSpec, WorkloadTermSpec};

/// The longest workload name: `<name>-<seq>` must stay a short container id.
pub const MAX_NAME_LEN: usize = 40;

/// The longest `stop_drain`.
const MAX_STOP_DRAIN: Duration = Duration::from_secs(300);

impl WorkloadSpec {
    /// Checks the rules of SPEC.md ("Validation"), listing every breach. [`super::parse`]
    /// already does; this is for specs built or changed in code.
    pub fn validate(&self) -> Result<(), Problems> {
        Problems::check(check(self))
    }
}

/// Every breach of the rules by `spec`.
pub(super) fn check(spec: &WorkloadSpec) -> Vec<Problem> {
    let mut out = Collector::default();
    if let Err(message) = workload_name(&spec.name) {
        out.add("name", message);
    }
    if let Err(message) = crate::labels::validate_all(&spec.labels) {
        out.add("labels", message);
    }
    source(&spec.source, &mut out);
    for (i, arg) in spec.command.iter().enumerate() {
        no_nul(arg, &item("command", i), &mut out);
    }
    for (name, value) in &spec.env {
        let path = field("env", name);
        if name.is_empty() || name.contains(['=', '\0']) {
            out.add(
                &path,
                "a variable name must be non-empty, without '=' or NUL",
            );
        }
        no_nul(value, &path, &mut out);
    }
    if let Some(cwd) = &spec.cwd {
        absolute(cwd, "cwd", &mut out);
    }
    ports(spec, &mut out);
    resources(spec, &mut out);
    for key in spec.node_selector.keys() {
        label_key(key, &field("node_selector", key), &mut out);
    }
    terms(&spec.affinity, "affinity", &mut out);
    terms(&spec.anti_affinity, "anti_affinity", &mut out);
    for (i, term) in spec.anti_affinity.iter().enumerate() {
        if let Some(j) = spec.affinity.iter().position(|t| t == term) {
            out.add(
                &item("anti_affinity", i),
                format!(
                    "contradicts affinity[{j}]: no node can both hold and not hold {:?}",
                    term.workload
                ),
            );
        }
    }
    if let Some(spread) = &spec.spread {
        topology(&spread.topology, "spread.topology", &mut out);
        if spread.max_skew == 0 {
            out.add("spread.max_skew", "must be at least 1");
        }
    }
    for (i, toleration) in spec.tolerations.iter().enumerate() {
        let path = item("tolerations", i);
        match &toleration.key {
            Some(key) => label_key(key, &field(&path, "key"), &mut out),
            None if toleration.value.is_some() => out.add(
                &field(&path, "value"),
                "a value needs a key: without `key` the toleration matches every taint",
            ),
            None => {}
        }
    }
    depends_on(spec, &mut out);
    let backoff = &spec.restart.backoff;
    if backoff.initial.is_zero() {
        out.add("restart.backoff.initial", "must be longer than 0s");
    } else if backoff.max < backoff.initial {
        out.add(
            "restart.backoff.max",
            "must be at least `restart.backoff.initial`",
        );
    }
    if let Some(probe) = &spec.liveness {
        self::probe(probe, "liveness", &mut out);
        if probe.success_threshold != 1 {
            out.add(
                "liveness.success_threshold",
                "must be 1 for liveness: one pass shows the instance is alive",
            );
        }
    }
    if let Some(probe) = &spec.readiness {
        self::probe(probe, "readiness", &mut out);
    }
    update(spec, &mut out);
    whole_seconds(spec.stop_timeout, "stop_timeout", &mut out);
    if spec.stop_drain > MAX_STOP_DRAIN {
        out.add(
            "stop_drain",
            "must be at most 5m: a longer drain holds every stop (and rollout) back",
        );
    }
    limits::check(spec, &mut out);
    super::autoscale::check(spec, &mut out);
    out.into_vec()
}

/// Checks a workload name: 1–40 of `[a-z0-9-]`, starting with a letter, not ending with `-`.
pub fn workload_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a workload name: use 1 to {MAX_NAME_LEN} of a-z, 0-9 and '-', \
             starting with a letter and not ending with '-'"
        ))
    }
}

/// Host ports: only on the cluster network, non-zero, each host port and protocol once.
fn ports(spec: &WorkloadSpec, out: &mut Collector) {
    if !spec.ports.is_empty() && spec.network != Network::Cluster {
        out.add(
            "ports",
            "needs network: cluster (the node's portmap plugin forwards the ports to the \
             instance's address)",
        );
    }
    for (i, p) in spec.ports.iter().enumerate() {
        let path = item("ports", i);
        if p.host_port == 0 || p.container_port == 0 {
            out.add(
                &path,
                "host_port and container_port must be from 1 to 65535",
            );
        }
        if spec.ports[..i]
            .iter()
            .any(|o| o.host_port == p.host_port && o.protocol == p.protocol)
        {
            out.add(
                &path,
                format!(
                    "host port {}/{} is given twice",
                    p.host_port,
                    p.protocol.name()
                ),
            );
        }
    }
}

fn source(source: &Source, out: &mut Collector) {
    match source {
        Source::Rootfs(dir) => absolute(dir, "source.rootfs", out),
        Source::Image(image) => {
            absolute(&image.path, "source.image.path", out);
            if image.reference.as_deref() == Some("") {
                out.add(
                    "source.image.reference",
                    "must not be empty: leave it out when the image holds one manifest",
                );
            }
        }
        Source::Registry(image) => {
            if let Err(e) = mini_shim::registry::reference::parse(&image.reference) {
                out.add("source.image", e);
            }
        }
    }
}

fn absolute(path: &str, at: &str, out: &mut Collector) {
    if !path.starts_with('/') {
        out.add(at, format!("{path:?} must be an absolute path"));
    }
    no_nul(path, at, out);
}

fn no_nul(text: &str, at: &str, out: &mut Collector) {
    if text.contains('\0') {
        out.add(at, "must not contain a NUL character");
    }
}

/// A node label key: non-empty, without whitespace, `=` or `,` (which `k=v,k2=v2` selectors
/// and `--label k=v` use as separators).
fn label_key(key: &str, at: &str, out: &mut Collector) {
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '=' || c == ',') {
        out.add(
            at,
            format!("{key:?} is not a label key: non-empty, without spaces, '=' or ','"),
        );
    }
}

fn topology(topology: &TopologySpec, at: &str, out: &mut Collector) {
    if let TopologySpec::Label(key) = topology {
        label_key(key, at, out);
    }
}

fn terms(terms: &[WorkloadTermSpec], at: &str, out: &mut Collector) {
    for (i, term) in terms.iter().enumerate() {
        let path = item(at, i);
        if let Err(message) = workload_name(&term.workload) {
            out.add(&field(&path, "workload"), message);
        }
        topology(&term.topology, &field(&path, "topology"), out);
    }
}

fn depends_on(spec: &WorkloadSpec, out: &mut Collector) {
    for (i, name) in spec.depends_on.iter().enumerate() {
        let path = item("depends_on", i);
        if let Err(message) = workload_name(name) {
            out.add(&path, message);
        } else if *name == spec.name {
            out.add(&path, "a workload cannot depend on itself");
        } else if spec.depends_on[..i].contains(name) {
            out.add(&path, format!("{name:?} is listed twice"));
        }
    }
}

fn resources(spec: &WorkloadSpec, out: &mut Collector) {
    let requests = &spec.resources.requests;
    let limits = &spec.resources.limits;
    let pairs = [
        (
            "cpu",
            requests.cpu,
            limits.cpu,
            format_cpu as fn(u64) -> String,
        ),
        ("memory", requests.memory, limits.memory, format_memory),
        ("pids", requests.pids, limits.pids, |n: u64| n.to_string()),
    ];
    for (name, request, limit, show) in pairs {
        let path = field("resources.limits", name);
        match limit {
            Some(0) => out.add(
                &path,
                "a limit of 0 leaves nothing to run with: leave it out for no limit",
            ),
            Some(limit) if limit < request => out.add(
                &path,
                format!(
                    "{} is less than the request ({}): a limit must be at least the request",
                    show(limit),
                    show(request)
                ),
            ),
            _ => {}
        }
    }
}

fn probe(probe: &ProbeSpec, at: &str, out: &mut Collector) {
    match &probe.check {
        ProbeCheck::Exec { command } => {
            let path = field(at, "exec.command");
            if command.is_empty() {
                out.add(&path, "must name a command");
            }
            for (i, arg) in command.iter().enumerate() {
                no_nul(arg, &item(&path, i), out);
            }
        }
        ProbeCheck::Tcp { port } => nonzero_port(*port, &field(at, "tcp.port"), out),
        ProbeCheck::Http { port, path } => {
            nonzero_port(*port, &field(at, "http.port"), out);
            if !path.starts_with('/') {
                out.add(
                    &field(at, "http.path"),
                    format!("{path:?} must start with '/'"),
                );
            }
        }
    }
    if probe.period.is_zero() {
        out.add(&field(at, "period"), "must be longer than 0s");
    }
    if probe.timeout < Duration::from_secs(1) {
        out.add(&field(at, "timeout"), "must be at least 1s");
    } else {
        whole_seconds(probe.timeout, &field(at, "timeout"), out);
    }
    for (name, threshold) in [
        ("failure_threshold", probe.failure_threshold),
        ("success_threshold", probe.success_threshold),
    ] {
        if threshold == 0 {
            out.add(&field(at, name), "must be at least 1");
        }
    }
}

fn nonzero_port(port: u16, at: &str, out: &mut Collector) {
    if port == 0 {
        out.add(at, "must be a port from 1 to 65535");
    }
}

/// The agent counts probe and stop timeouts in whole seconds.
fn whole_seconds(duration: Duration, at: &str, out: &mut Collector) {
    if duration.subsec_nanos() != 0 {
        out.add(
            at,
            "must be whole seconds: the agent counts this timeout in seconds",
        );
    }
}

fn update(spec: &WorkloadSpec, out: &mut Collector) {
    let update = &spec.update;
    for (name, amount) in [
        ("max_surge", update.max_surge),
        ("max_unavailable", update.max_unavailable),
    ] {
        if let Amount::Percent(p) = amount {
            if p > 100 {
                out.add(&field("update", name), format!("{p}% is more than 100%"));
            }
        }
    }
    let zero = |amount: Amount| matches!(amount, Amount::Count(0) | Amount::Percent(0));
    if zero(update.max_surge) && zero(update.max_unavailable) {
        out.add(
            "update",
            "max_surge and max_unavailable cannot both be 0: an update could never replace an instance",
        );
    }
}
