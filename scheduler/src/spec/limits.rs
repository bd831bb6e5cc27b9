//! The maxima of a spec: every number and every list or string is bounded by what the system
//! can act on (a kernel limit, a clock, the daemon's memory), so a spec that passes validation
//! can always be run, stopped and restarted. SPEC.md ("Limits") lists them.

use std::time::Duration;

use super::problems::{field, item, Collector};
use super::quantity::{format_cpu, format_duration, format_memory};
use super::{Amount, ProbeCheck, ProbeSpec, WorkloadSpec};

/// The largest spec text, in bytes (checked before it is parsed).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// The deepest nesting of mappings and lists (the schema itself needs 4; checked before the
/// text is parsed, as a deep document costs the parser time and stack).
pub const MAX_DEPTH: usize = 32;
/// The most instances of one workload (each is a record, an event and a container).
pub const MAX_REPLICAS: u32 = 10_000;
/// The longest duration of any timing (probes, back-off, stop timeout): one day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The most cpu one instance may request or be limited to, in millicores (8192 cores: the
/// kernel's largest `NR_CPUS`).
pub const MAX_CPU_MILLIS: u64 = 8192 * 1000;
/// The most memory one instance may request or be limited to, in bytes (1 PiB).
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;
/// The most processes one instance may request or be limited to (the kernel's
/// `PID_MAX_LIMIT`: no pid namespace holds more).
pub const MAX_PIDS: u64 = 4_194_304;
/// The highest priority (and, negated, the lowest), as Kubernetes bounds user priorities.
pub const MAX_PRIORITY: i32 = 1_000_000_000;
/// The highest uid or gid: the kernel reads `(uid_t)-1` (4294967295) as "no change", and
/// runtimes (runc) refuse anything above 2^31 − 1. The agent refuses them too.
pub const MAX_ID: u32 = mini_shim::protocol::MAX_ID;
/// The most failures or successes a probe threshold may count.
pub const MAX_THRESHOLD: u32 = 1_000;
/// The most arguments of a command (the workload's or an exec probe's).
pub const MAX_ARGS: usize = 1_024;
/// The most environment variables.
pub const MAX_ENV: usize = 1_024;
/// The most entries of each list or mapping of placement terms: `node_selector`,
/// `affinity`, `anti_affinity`, `tolerations`, `depends_on`.
pub const MAX_TERMS: usize = 64;
/// The longest argument or environment entry (`NAME=value`), in bytes: the kernel's
/// `MAX_ARG_STRLEN`.
pub const MAX_ARG_BYTES: usize = 128 << 10;
/// The longest of every other string (paths, label keys and values, references), in bytes:
/// `PATH_MAX`.
pub const MAX_STRING_BYTES: usize = 4096;

/// Records every value of `spec` beyond its maximum.
pub(super) fn check(spec: &WorkloadSpec, out: &mut Collector) {
    counts_and_strings(spec, out);
    at_most(spec.replicas, MAX_REPLICAS, "replicas", out);
    if spec.priority.unsigned_abs() > MAX_PRIORITY.unsigned_abs() {
        out.add(
            "priority",
            format!(
                "{} is outside -{MAX_PRIORITY} to {MAX_PRIORITY}",
                spec.priority
            ),
        );
    }
    if let Some(user) = spec.user {
        let ids = [Some(user.uid), user.gid];
        if ids.iter().flatten().any(|&id| id > MAX_ID) {
            out.add(
                "user",
                format!(
                    "ids above {MAX_ID} are refused: the kernel reads 4294967295 as \
                     \"no change\", which would leave the process root"
                ),
            );
        }
    }
    resources(spec, out);
    if let Some(spread) = &spec.spread {
        at_most(spread.max_skew, MAX_REPLICAS, "spread.max_skew", out);
    }
    let backoff = &spec.restart.backoff;
    duration(backoff.initial, "restart.backoff.initial", out);
    duration(backoff.max, "restart.backoff.max", out);
    for (name, probe) in [("liveness", &spec.liveness), ("readiness", &spec.readiness)] {
        if let Some(probe) = probe {
            self::probe(probe, name, out);
        }
    }
    for (name, amount) in [
        ("max_surge", spec.update.max_surge),
        ("max_unavailable", spec.update.max_unavailable),
    ] {
        if let Amount::Count(n) = amount {
            at_most(n, MAX_REPLICAS, &field("update", name), out);
        }
    }
    duration(spec.stop_timeout, "stop_timeout", out);
}

fn resources(spec: &WorkloadSpec, out: &mut Collector) {
    let (requests, limits) = (&spec.resources.requests, &spec.resources.limits);
    let amounts = [
        (
            "cpu",
            requests.cpu,
            limits.cpu,
            MAX_CPU_MILLIS,
            format_cpu as fn(u64) -> String,
        ),
        (
            "memory",
            requests.memory,
            limits.memory,
            MAX_MEMORY_BYTES,
            format_memory,
        ),
        ("pids", requests.pids, limits.pids, MAX_PIDS, |n: u64| {
            n.to_string()
        }),
    ];
    for (name, request, limit, max, show) in amounts {
        for (kind, value) in [("requests", Some(request)), ("limits", limit)] {
            if let Some(value) = value.filter(|&v| v > max) {
                out.add(
                    &format!("resources.{kind}.{name}"),
                    format!("{} is more than the maximum, {}", show(value), show(max)),
                );
            }
        }
    }
}

fn probe(probe: &ProbeSpec, at: &str, out: &mut Collector) {
    for (name, value) in [
        ("period", probe.period),
        ("timeout", probe.timeout),
        ("initial_delay", probe.initial_delay),
    ] {
        duration(value, &field(at, name), out);
    }
    for (name, value) in [
        ("failure_threshold", probe.failure_threshold),
        ("success_threshold", probe.success_threshold),
    ] {
        at_most(value, MAX_THRESHOLD, &field(at, name), out);
    }
    match &probe.check {
        ProbeCheck::Exec { command } => args(command, &field(at, "exec.command"), out),
        ProbeCheck::Http { path, .. } => string(path, &field(at, "http.path"), out),
        ProbeCheck::Tcp { .. } => {}
    }
}

fn counts_and_strings(spec: &WorkloadSpec, out: &mut Collector) {
    string(&spec.name, "name", out);
    match &spec.source {
        mini_shim::protocol::Source::Rootfs(dir) => string(dir, "source.rootfs", out),
        mini_shim::protocol::Source::Image(image) => {
            string(&image.path, "source.image.path", out);
            if let Some(reference) = &image.reference {
                string(reference, "source.image.reference", out);
            }
        }
        mini_shim::protocol::Source::Registry(image) => {
            string(&image.reference, "source.image", out);
        }
    }
    args(&spec.command, "command", out);
    count(spec.env.len(), MAX_ENV, "env", out);
    for (name, value) in &spec.env {
        if name.len() + 1 + value.len() > MAX_ARG_BYTES {
            out.add(
                &field("env", &truncated(name)),
                format!("NAME=value is longer than {MAX_ARG_BYTES} bytes"),
            );
        }
    }
    if let Some(cwd) = &spec.cwd {
        string(cwd, "cwd", out);
    }
    count(spec.node_selector.len(), MAX_TERMS, "node_selector", out);
    for (key, value) in &spec.node_selector {
        string(key, "node_selector", out);
        string(value, &field("node_selector", &truncated(key)), out);
    }
    for (name, terms) in [
        ("affinity", &spec.affinity),
        ("anti_affinity", &spec.anti_affinity),
    ] {
        count(terms.len(), MAX_TERMS, name, out);
        for (i, term) in terms.iter().enumerate() {
            if let super::TopologySpec::Label(key) = &term.topology {
                string(key, &field(&item(name, i), "topology"), out);
            }
        }
    }
    if let Some(super::TopologySpec::Label(key)) = spec.spread.as_ref().map(|s| &s.topology) {
        string(key, "spread.topology", out);
    }
    count(spec.tolerations.len(), MAX_TERMS, "tolerations", out);
    for (i, toleration) in spec.tolerations.iter().enumerate() {
        for (name, value) in [("key", &toleration.key), ("value", &toleration.value)] {
            if let Some(value) = value {
                string(value, &field(&item("tolerations", i), name), out);
            }
        }
    }
    count(spec.depends_on.len(), MAX_TERMS, "depends_on", out);
}

/// A list of arguments: at most [`MAX_ARGS`], each at most [`MAX_ARG_BYTES`].
fn args(args: &[String], at: &str, out: &mut Collector) {
    count(args.len(), MAX_ARGS, at, out);
    for (i, arg) in args.iter().enumerate() {
        if arg.len() > MAX_ARG_BYTES {
            out.add(
                &item(at, i),
                format!("is longer than {MAX_ARG_BYTES} bytes"),
            );
        }
    }
}

fn string(text: &str, at: &str, out: &mut Collector) {
    if text.len() > MAX_STRING_BYTES {
        out.add(at, format!("is longer than {MAX_STRING_BYTES} bytes"));
    }
}

fn count(len: usize, max: usize, at: &str, out: &mut Collector) {
    if len > max {
        out.add(at, format!("has {len} entries; at most {max} are allowed"));
    }
}

fn at_most(value: u32, max: u32, at: &str, out: &mut Collector) {
    if value > max {
        out.add(at, format!("{value} is more than the maximum, {max}"));
    }
}

fn duration(value: Duration, at: &str, out: &mut Collector) {
    if value > MAX_DURATION {
        out.add(
            at,
            format!(
                "{} is longer than the maximum, {}",
                format_duration(value),
                format_duration(MAX_DURATION)
            ),
        );
    }
}

/// A key as shown in a path: long keys are cut, so a message stays one readable line.
fn truncated(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const BASE: &str = "name: web\nsource: {rootfs: /srv/busybox}\n";

    /// The paths of the problems of `BASE + extra` (none when it is accepted).
    fn paths(extra: &str) -> Vec<String> {
        match parse(&format!("{BASE}{extra}")) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.list().iter().map(|p| p.path.clone()).collect(),
        }
    }

    /// `at_max` is accepted; each of `beyond` is refused with a problem at `path`.
    fn bounded(at_max: &str, beyond: &[&str], path: &str) {
        assert_eq!(paths(at_max), Vec::<String>::new(), "{at_max}");
        for extra in beyond {
            let found = paths(extra);
            assert!(found.iter().any(|p| p == path), "{extra}\n→ {found:?}");
        }
    }

    #[test]
    fn numbers_are_bounded_by_what_the_system_can_do() {
        bounded(
            "replicas: 10000",
            &["replicas: 10001", "replicas: 4294967295"],
            "replicas",
        );
        bounded(
            "priority: -1000000000",
            &[
                "priority: 1000000001",
                "priority: -1000000001",
                "priority: -2147483648",
            ],
            "priority",
        );
        bounded(
            "resources: {limits: {pids: 4194304}}",
            &[
                "resources: {limits: {pids: 4194305}}",
                "resources: {limits: {pids: 18446744073709551615}}",
            ],
            "resources.limits.pids",
        );
        bounded(
            "resources: {requests: {memory: 1024Ti}}",
            &["resources: {requests: {memory: 1025Ti}}"],
            "resources.requests.memory",
        );
        bounded(
            "resources: {limits: {cpu: 8192}}",
            &[
                "resources: {limits: {cpu: 8193}}",
                "resources: {limits: {cpu: 18446744073709551}}",
            ],
            "resources.limits.cpu",
        );
        bounded(
            "user: \"2147483647:2147483647\"",
            &[
                "user: 4294967295",
                "user: \"0:4294967295\"",
                "user: 2147483648",
            ],
            "user",
        );
        bounded(
            "spread: {max_skew: 10000}",
            &["spread: {max_skew: 10001}"],
            "spread.max_skew",
        );
        bounded(
            "update: {max_surge: 10000}",
            &["update: {max_surge: 4294967295}"],
            "update.max_surge",
        );
        bounded(
            "update: {max_unavailable: 10000}",
            &["update: {max_unavailable: 10001}"],
            "update.max_unavailable",
        );
    }

    #[test]
    fn durations_are_at_most_a_day() {
        let huge = "18446744073709551615s";
        bounded(
            "stop_timeout: 24h",
            &["stop_timeout: 25h", &format!("stop_timeout: {huge}")],
            "stop_timeout",
        );
        bounded(
            "restart: {backoff: {initial: 24h, max: 24h}}",
            &[&format!(
                "restart: {{backoff: {{initial: 1s, max: {huge}}}}}"
            )],
            "restart.backoff.max",
        );
        for field in ["period", "timeout", "initial_delay"] {
            for probe in ["liveness", "readiness"] {
                bounded(
                    &format!("{probe}: {{tcp: {{port: 80}}, {field}: 24h}}"),
                    &[&format!("{probe}: {{tcp: {{port: 80}}, {field}: {huge}}}")],
                    &format!("{probe}.{field}"),
                );
            }
        }
        bounded(
            "readiness: {tcp: {port: 80}, failure_threshold: 1000, success_threshold: 1000}",
            &["readiness: {tcp: {port: 80}, failure_threshold: 1001}"],
            "readiness.failure_threshold",
        );
    }

    #[test]
    fn lists_and_strings_are_bounded() {
        type Entry = fn(usize) -> String;
        // (the path, the text around the entries, the i-th entry, the most entries)
        let lists: [(&str, &str, &str, Entry, usize); 6] = [
            ("command", "command: [", "]", |_| "a".into(), 1024),
            ("env", "env: {", "}", |i| format!("V{i}: x"), 1024),
            ("depends_on", "depends_on: [", "]", |i| format!("w{i}"), 64),
            (
                "tolerations",
                "tolerations: [",
                "]",
                |_| "{key: k}".into(),
                64,
            ),
            (
                "node_selector",
                "node_selector: {",
                "}",
                |i| format!("k{i}: v"),
                64,
            ),
            (
                "readiness.exec.command",
                "readiness: {exec: {command: [",
                "]}}",
                |_| "a".into(),
                1024,
            ),
        ];
        for (path, open, close, entry, max) in lists {
            let text = |n: usize| {
                let entries: Vec<String> = (0..n).map(entry).collect();
                format!("{open}{}{close}", entries.join(", "))
            };
            bounded(&text(max), &[&text(max + 1)], path);
        }
        let long = |n: usize| format!("/{}", "a".repeat(n - 1));
        bounded(
            &format!("cwd: {}", long(4096)),
            &[&format!("cwd: {}", long(4097))],
            "cwd",
        );
        let arg = |n: usize| "a".repeat(n);
        bounded(
            &format!("command: [{}]", arg(128 << 10)),
            &[&format!("command: [{}]", arg((128 << 10) + 1))],
            "command[0]",
        );
    }
}
