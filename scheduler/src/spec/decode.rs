//! Reading a spec from its text: YAML or JSON into a generic value, then field by field into a
//! [`WorkloadSpec`], recording a problem for every unknown field, wrong type or bad amount and
//! carrying on with a stand-in, so one pass finds them all.

use std::time::Duration;

use mini_shim::protocol::{
    ImageRef, Network, PortMapping, PortProtocol, PullPolicy, RegistryImage, Source,
};
use serde_json::Value;

use super::problems::{within, Problems};
use super::quantity::{self, show};
use super::read::{get, kind, Reader};
use super::{
    validate, Amount, Backoff, EffectSpec, Limits, ProbeCheck, ProbeSpec, Requests, ResourceSpec,
    RestartPolicy, RestartSpec, SpreadSpec, TolerationSpec, TopologySpec, UpdateSpec, User,
    WorkloadSpec, WorkloadTermSpec,
};

/// The fields of a workload, in the order SPEC.md lists them.
const WORKLOAD_FIELDS: &[&str] = &[
    "kind",
    "name",
    "labels",
    "source",
    "command",
    "env",
    "cwd",
    "user",
    "network",
    "ports",
    "resources",
    "replicas",
    "autoscale",
    "priority",
    "node_selector",
    "affinity",
    "anti_affinity",
    "spread",
    "tolerations",
    "depends_on",
    "restart",
    "liveness",
    "readiness",
    "update",
    "stop_timeout",
    "stop_drain",
];

/// How long a stopping instance is kept out of the services' endpoints before SIGTERM.
pub const DEFAULT_STOP_DRAIN: Duration = Duration::from_secs(2);

const PROBE_CHECKS: &[&str] = &["exec", "tcp", "http"];

const PROBE_FIELDS: &[&str] = &[
    "exec",
    "tcp",
    "http",
    "period",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "initial_delay",
];

/// Reads a parsed document into a spec and checks it, listing every problem.
pub(super) fn from_value(value: &Value) -> Result<WorkloadSpec, Problems> {
    let mut reader = Reader::default();
    let spec = reader.workload(value);
    let (mut problems, unread) = (reader.problems, reader.unread);
    if let Some(spec) = &spec {
        // A field that could not be read holds a stand-in: judging it would mislead.
        for problem in validate::check(spec) {
            let stand_in = unread.iter().any(|field| within(&problem.path, field));
            if !stand_in && !problems.covers(&problem.path) {
                problems.add(&problem.path, problem.message);
            }
        }
    }
    let mut problems = problems.into_vec();
    // In the order of the fields (stable: within a field, as found); unknown fields last.
    problems.sort_by_key(|p| {
        let top = p.path.split(['.', '[']).next().unwrap_or_default();
        WORKLOAD_FIELDS
            .iter()
            .position(|f| *f == top)
            .unwrap_or(WORKLOAD_FIELDS.len())
    });
    Problems::check(problems)?;
    Ok(spec.expect("a spec that could not be read has a problem"))
}

impl Reader {
    fn workload(&mut self, value: &Value) -> Option<WorkloadSpec> {
        let m = self.mapping(value, "", WORKLOAD_FIELDS)?;
        let p = "";
        Some(WorkloadSpec {
            name: self
                .required(m, p, "name", Self::string)
                .unwrap_or_default(),
            labels: self
                .optional(m, p, "labels", Self::string_map)
                .unwrap_or_default(),
            source: self
                .required(m, p, "source", Self::source)
                .unwrap_or_else(|| Source::Rootfs(String::new())),
            command: self
                .optional(m, p, "command", Self::strings)
                .unwrap_or_default(),
            env: self
                .optional(m, p, "env", Self::string_map)
                .unwrap_or_default(),
            cwd: self.optional(m, p, "cwd", Self::string),
            user: self.optional(m, p, "user", Self::user),
            network: self
                .optional(m, p, "network", Self::network)
                .unwrap_or(Network::Cluster),
            ports: self
                .optional(m, p, "ports", Self::host_ports)
                .unwrap_or_default(),
            resources: self
                .optional(m, p, "resources", Self::resources)
                .unwrap_or_default(),
            replicas: self.optional(m, p, "replicas", Self::uint).unwrap_or(1),
            autoscale: self.optional(m, p, "autoscale", Self::autoscale),
            priority: self.optional(m, p, "priority", Self::int).unwrap_or(0),
            node_selector: self
                .optional(m, p, "node_selector", Self::string_map)
                .unwrap_or_default(),
            affinity: self
                .optional(m, p, "affinity", Self::terms)
                .unwrap_or_default(),
            anti_affinity: self
                .optional(m, p, "anti_affinity", Self::terms)
                .unwrap_or_default(),
            spread: self.optional(m, p, "spread", Self::spread),
            tolerations: self
                .optional(m, p, "tolerations", Self::tolerations)
                .unwrap_or_default(),
            depends_on: self
                .optional(m, p, "depends_on", Self::strings)
                .unwrap_or_default(),
            restart: self
                .optional(m, p, "restart", Self::restart)
                .unwrap_or_default(),
            liveness: self.optional(m, p, "liveness", Self::probe),
            readiness: self.optional(m, p, "readiness", Self::probe),
            update: self
                .optional(m, p, "update", Self::update)
                .unwrap_or_default(),
            stop_timeout: self
                .optional(m, p, "stop_timeout", Self::duration)
                .unwrap_or(Duration::from_secs(10)),
            stop_drain: self
                .optional(m, p, "stop_drain", Self::duration)
                .unwrap_or(DEFAULT_STOP_DRAIN),
        })
    }

    fn source(&mut self, value: &Value, path: &str) -> Option<Source> {
        let m = self.mapping(value, path, &["rootfs", "image", "pull"])?;
        let registry = matches!(get(m, "image"), Some(Value::String(_)));
        if get(m, "pull").is_some() && !registry {
            self.problems.add(
                &format!("{path}.pull"),
                "applies only to a registry image (`image: registry/name:tag`)",
            );
        }
        match (get(m, "rootfs"), get(m, "image")) {
            (Some(_), None) => self
                .optional(m, path, "rootfs", Self::string)
                .map(Source::Rootfs),
            (None, Some(_)) if registry => {
                let reference = self.optional(m, path, "image", Self::string)?;
                let pull = self
                    .optional(m, path, "pull", Self::pull)
                    .unwrap_or_else(|| PullPolicy::default_for(&reference));
                Some(Source::Registry(RegistryImage {
                    reference,
                    pull: Some(pull),
                }))
            }
            (None, Some(_)) => self
                .optional(m, path, "image", Self::image)
                .map(Source::Image),
            (Some(_), Some(_)) => {
                self.problems
                    .add(path, "give either `rootfs` or `image`, not both");
                None
            }
            (None, None) => {
                self.problems.add(
                    path,
                    "needs `rootfs: /absolute/dir`, `image: registry/name:tag` or `image: {path: /absolute/path}`",
                );
                None
            }
        }
    }

    fn pull(&mut self, value: &Value, path: &str) -> Option<PullPolicy> {
        self.choice(
            value,
            path,
            &[
                ("if-not-present", PullPolicy::IfNotPresent),
                ("always", PullPolicy::Always),
                ("never", PullPolicy::Never),
            ],
        )
    }

    fn image(&mut self, value: &Value, path: &str) -> Option<ImageRef> {
        let m = self.mapping(value, path, &["path", "reference"])?;
        let image_path = self.required(m, path, "path", Self::string);
        let reference = self.optional(m, path, "reference", Self::string);
        Some(ImageRef {
            path: image_path?,
            reference,
        })
    }

    fn user(&mut self, value: &Value, path: &str) -> Option<User> {
        let text = match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => {
                self.problems.add(
                    path,
                    format!("must be \"uid\" or \"uid:gid\", found {}", kind(other)),
                );
                return None;
            }
        };
        let (uid, gid) = match text.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (text.as_str(), None),
        };
        let id = |s: &str| {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse::<u32>().ok()
            } else {
                None
            }
        };
        match (id(uid), gid.map(id)) {
            (Some(uid), None) => Some(User { uid, gid: None }),
            (Some(uid), Some(Some(gid))) => Some(User {
                uid,
                gid: Some(gid),
            }),
            _ => {
                self.problems.add(
                    path,
                    format!(
                        "{} is not a numeric \"uid\" or \"uid:gid\" (names are not looked up)",
                        show(value)
                    ),
                );
                None
            }
        }
    }

    fn network(&mut self, value: &Value, path: &str) -> Option<Network> {
        self.choice(
            value,
            path,
            &[
                ("isolated", Network::Isolated),
                ("host", Network::Host),
                ("cluster", Network::Cluster),
            ],
        )
    }

    fn host_ports(&mut self, value: &Value, path: &str) -> Option<Vec<PortMapping>> {
        self.list(
            value,
            path,
            "[{container_port: 8080, host_port: 30080, protocol: tcp}]",
            |r, v, p| {
                let m = r.mapping(v, p, &["container_port", "host_port", "protocol"])?;
                let protocols = [("tcp", PortProtocol::Tcp), ("udp", PortProtocol::Udp)];
                let container_port = r.required(m, p, "container_port", Self::port);
                let host_port = r.required(m, p, "host_port", Self::port);
                // Read before the ports are unwrapped, so its problem is listed with theirs.
                let protocol = r
                    .optional(m, p, "protocol", |r, v, p| r.choice(v, p, &protocols))
                    .unwrap_or_default();
                Some(PortMapping {
                    container_port: container_port?,
                    host_port: host_port?,
                    protocol,
                })
            },
        )
    }

    fn resources(&mut self, value: &Value, path: &str) -> Option<ResourceSpec> {
        let m = self.mapping(value, path, &["requests", "limits"])?;
        let requests = self
            .optional(m, path, "requests", Self::amounts)
            .unwrap_or_default();
        let limits = self
            .optional(m, path, "limits", Self::amounts)
            .unwrap_or_default();
        // A limit left out is the request (unless that is 0: no limit); a request left out is
        // the limit.
        let limit = |limit: Option<u64>, request: Option<u64>| limit.or(request.filter(|&r| r > 0));
        Some(ResourceSpec {
            requests: Requests {
                cpu: requests.cpu.or(limits.cpu).unwrap_or(0),
                memory: requests.memory.or(limits.memory).unwrap_or(0),
                pids: requests.pids.or(limits.pids).unwrap_or(0),
            },
            limits: Limits {
                cpu: limit(limits.cpu, requests.cpu),
                memory: limit(limits.memory, requests.memory),
                pids: limit(limits.pids, requests.pids),
            },
        })
    }

    /// `{cpu, memory, pids}`, each as written (absent stays `None`).
    fn amounts(&mut self, value: &Value, path: &str) -> Option<Limits> {
        let m = self.mapping(value, path, &["cpu", "memory", "pids"])?;
        Some(Limits {
            cpu: self.optional(m, path, "cpu", |r, v, p| {
                r.parsed(v, p, quantity::parse_cpu)
            }),
            memory: self.optional(m, path, "memory", |r, v, p| {
                r.parsed(v, p, quantity::parse_memory)
            }),
            pids: self.optional(m, path, "pids", |r, v, p| {
                r.parsed(v, p, quantity::parse_pids)
            }),
        })
    }

    fn topology(&mut self, value: &Value, path: &str) -> Option<TopologySpec> {
        self.string(value, path).map(|key| match key.as_str() {
            "node" => TopologySpec::Node,
            _ => TopologySpec::Label(key),
        })
    }

    fn terms(&mut self, value: &Value, path: &str) -> Option<Vec<WorkloadTermSpec>> {
        self.list(
            value,
            path,
            "[{workload: db, topology: node}]",
            |r, v, p| {
                let m = r.mapping(v, p, &["workload", "topology"])?;
                let workload = r.required(m, p, "workload", Self::string);
                let topology = r
                    .optional(m, p, "topology", Self::topology)
                    .unwrap_or(TopologySpec::Node);
                Some(WorkloadTermSpec {
                    workload: workload?,
                    topology,
                })
            },
        )
    }

    fn spread(&mut self, value: &Value, path: &str) -> Option<SpreadSpec> {
        let m = self.mapping(value, path, &["topology", "max_skew"])?;
        Some(SpreadSpec {
            topology: self
                .optional(m, path, "topology", Self::topology)
                .unwrap_or(TopologySpec::Node),
            max_skew: self.optional(m, path, "max_skew", Self::uint).unwrap_or(1),
        })
    }

    fn tolerations(&mut self, value: &Value, path: &str) -> Option<Vec<TolerationSpec>> {
        self.list(
            value,
            path,
            "[{key: gpu, effect: NoSchedule}]",
            |r, v, p| {
                let m = r.mapping(v, p, &["key", "value", "effect"])?;
                let effects = [
                    ("NoSchedule", EffectSpec::NoSchedule),
                    ("PreferNoSchedule", EffectSpec::PreferNoSchedule),
                    ("NoExecute", EffectSpec::NoExecute),
                ];
                Some(TolerationSpec {
                    key: r.optional(m, p, "key", Self::string),
                    value: r.optional(m, p, "value", Self::string),
                    effect: r.optional(m, p, "effect", |r, v, p| r.choice(v, p, &effects)),
                })
            },
        )
    }

    fn restart(&mut self, value: &Value, path: &str) -> Option<RestartSpec> {
        let m = self.mapping(value, path, &["policy", "backoff"])?;
        let policies = [
            ("always", RestartPolicy::Always),
            ("on-failure", RestartPolicy::OnFailure),
            ("never", RestartPolicy::Never),
        ];
        Some(RestartSpec {
            policy: self
                .optional(m, path, "policy", |r, v, p| r.choice(v, p, &policies))
                .unwrap_or_default(),
            backoff: self
                .optional(m, path, "backoff", Self::backoff)
                .unwrap_or_default(),
        })
    }

    fn backoff(&mut self, value: &Value, path: &str) -> Option<Backoff> {
        let m = self.mapping(value, path, &["initial", "max"])?;
        let default = Backoff::default();
        Some(Backoff {
            initial: self
                .optional(m, path, "initial", Self::duration)
                .unwrap_or(default.initial),
            max: self
                .optional(m, path, "max", Self::duration)
                .unwrap_or(default.max),
        })
    }

    fn probe(&mut self, value: &Value, path: &str) -> Option<ProbeSpec> {
        let m = self.mapping(value, path, PROBE_FIELDS)?;
        let given: Vec<&str> = PROBE_CHECKS
            .iter()
            .copied()
            .filter(|k| get(m, k).is_some())
            .collect();
        let check = match given[..] {
            [one] => self.optional(m, path, one, Self::probe_check),
            [] => {
                self.problems
                    .add(path, "needs one check: `exec`, `tcp` or `http`");
                None
            }
            _ => {
                self.problems.add(
                    path,
                    format!("give one check, not several ({})", given.join(", ")),
                );
                None
            }
        };
        let period = self.optional(m, path, "period", Self::duration);
        let timeout = self.optional(m, path, "timeout", Self::duration);
        let failure_threshold = self.optional(m, path, "failure_threshold", Self::uint);
        let success_threshold = self.optional(m, path, "success_threshold", Self::uint);
        let initial_delay = self.optional(m, path, "initial_delay", Self::duration);
        Some(ProbeSpec {
            check: check?,
            period: period.unwrap_or(Duration::from_secs(2)),
            timeout: timeout.unwrap_or(Duration::from_secs(1)),
            failure_threshold: failure_threshold.unwrap_or(3),
            success_threshold: success_threshold.unwrap_or(1),
            initial_delay: initial_delay.unwrap_or(Duration::ZERO),
        })
    }

    /// The value of the `exec`, `tcp` or `http` key of a probe (`path` ends with that key).
    fn probe_check(&mut self, value: &Value, path: &str) -> Option<ProbeCheck> {
        let kind = path.rsplit('.').next().unwrap_or_default();
        match kind {
            "exec" => {
                let m = self.mapping(value, path, &["command"])?;
                let command = self.required(m, path, "command", Self::strings)?;
                Some(ProbeCheck::Exec { command })
            }
            "tcp" => {
                let m = self.mapping(value, path, &["port"])?;
                let port = self.required(m, path, "port", Self::port)?;
                Some(ProbeCheck::Tcp { port })
            }
            _ => {
                let m = self.mapping(value, path, &["port", "path"])?;
                let port = self.required(m, path, "port", Self::port);
                let http_path = self
                    .optional(m, path, "path", Self::string)
                    .unwrap_or_else(|| "/".into());
                Some(ProbeCheck::Http {
                    port: port?,
                    path: http_path,
                })
            }
        }
    }

    fn update(&mut self, value: &Value, path: &str) -> Option<UpdateSpec> {
        let m = self.mapping(value, path, &["max_surge", "max_unavailable"])?;
        let default = UpdateSpec::default();
        Some(UpdateSpec {
            max_surge: self
                .optional(m, path, "max_surge", Self::amount)
                .unwrap_or(default.max_surge),
            max_unavailable: self
                .optional(m, path, "max_unavailable", Self::amount)
                .unwrap_or(default.max_unavailable),
        })
    }

    /// A count (`2`) or a percentage (`"25%"`).
    pub(super) fn amount(&mut self, value: &Value, path: &str) -> Option<Amount> {
        let amount = match value {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Amount::Count),
            Value::String(s) => s
                .strip_suffix('%')
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
                .map(Amount::Percent),
            _ => None,
        };
        if amount.is_none() {
            self.problems.add(
                path,
                format!(
                    "{} is neither a count of instances (1) nor a percentage (\"25%\")",
                    show(value)
                ),
            );
        }
        amount
    }
}
