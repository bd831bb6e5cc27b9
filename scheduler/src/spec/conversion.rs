//! From a spec to what placement and the agents take: an [`InstanceSpec`] for every instance,
//! a [`RunRequest`] to start one, a [`Probe`] to check one.

use std::collections::BTreeMap;

use mini_shim::protocol::{self, Probe, ProcessSpec, RunRequest};

use super::{EffectSpec, ProbeCheck, ProbeSpec, TopologySpec, WorkloadSpec, WorkloadTermSpec};
use crate::model::{InstanceSpec, Spread, TaintEffect, Toleration, Topology, WorkloadTerm};
use crate::resources::Resources;

/// Which of a workload's probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// `liveness`: failing it restarts the instance.
    Liveness,
    /// `readiness`: passing it makes the instance ready.
    Readiness,
}

impl WorkloadSpec {
    /// What placement needs to place one instance. Unlimited resources are 0 in `limits`.
    /// `depends_on` is not part of it: the daemon orders starts by it and passes it as an
    /// affinity preference itself. A workload with host `ports` keeps its instances on
    /// different nodes (a node's port can be forwarded to one of them only).
    pub fn instance_spec(&self) -> InstanceSpec {
        let mut anti_affinity: Vec<WorkloadTerm> = self
            .anti_affinity
            .iter()
            .map(WorkloadTermSpec::to_model)
            .collect();
        let apart = WorkloadTerm {
            workload: self.name.clone(),
            topology: Topology::Node,
        };
        if !self.ports.is_empty() && !anti_affinity.contains(&apart) {
            anti_affinity.push(apart);
        }
        let requests = &self.resources.requests;
        let limits = &self.resources.limits;
        InstanceSpec {
            workload: self.name.clone(),
            requests: Resources::new(requests.cpu, requests.memory, requests.pids),
            limits: Resources::new(
                limits.cpu.unwrap_or(0),
                limits.memory.unwrap_or(0),
                limits.pids.unwrap_or(0),
            ),
            priority: self.priority,
            node_selector: self.node_selector.clone(),
            affinity: self
                .affinity
                .iter()
                .map(WorkloadTermSpec::to_model)
                .collect(),
            anti_affinity,
            spread: self.spread.as_ref().map(|s| Spread {
                topology: s.topology.to_model(),
                max_skew: s.max_skew,
            }),
            tolerations: self
                .tolerations
                .iter()
                .map(|t| Toleration {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: t.effect.map(EffectSpec::to_model),
                })
                .collect(),
        }
    }

    /// The agent request that starts one instance as container `container_id`, limited by the
    /// spec's limits and carrying `labels`.
    pub fn run_request(&self, container_id: &str, labels: BTreeMap<String, String>) -> RunRequest {
        let limits = &self.resources.limits;
        RunRequest {
            id: container_id.to_owned(),
            source: self.source.clone(),
            process: ProcessSpec {
                args: self.command.clone(),
                env: self.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                cwd: self.cwd.clone(),
                uid: self.user.map(|u| u.uid),
                gid: self.user.and_then(|u| u.gid),
            },
            resources: protocol::Resources {
                memory_bytes: limits.memory,
                cpu_millis: limits.cpu,
                pids: limits.pids,
            },
            network: self.network,
            ports: self.ports.clone(),
            labels,
        }
    }

    /// Whether instances of `self` and `other` are interchangeable: true when they differ at
    /// most in `name`, `replicas`, `priority`, `depends_on` and `update`. Those say how many
    /// instances, in which order they start, who yields under pressure and how an update
    /// proceeds; everything else shapes the container (source, command, env, cwd, user,
    /// network, resources), where it may run (selector, affinity, spread, tolerations) or how
    /// it is kept (restart, probes, stop timeout), and a change there is a new revision that
    /// a rolling update replaces instances for. A change of `replicas` alone is a scale.
    pub fn template_eq(&self, other: &WorkloadSpec) -> bool {
        let template = |s: &WorkloadSpec| WorkloadSpec {
            name: String::new(),
            labels: Default::default(),
            stop_drain: Default::default(),
            replicas: 0,
            autoscale: None,
            priority: 0,
            depends_on: Vec::new(),
            update: Default::default(),
            ..s.clone()
        };
        template(self) == template(other)
    }

    /// The agent's form of the liveness or readiness check, if the spec has one. Its timing
    /// (period, thresholds, initial delay) is the daemon's to apply.
    pub fn probe(&self, which: ProbeKind) -> Option<Probe> {
        match which {
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
        .map(ProbeSpec::to_protocol)
    }
}

impl ProbeSpec {
    /// The agent's form of this check, with its timeout in (whole) seconds.
    pub fn to_protocol(&self) -> Probe {
        let timeout_secs = Some(self.timeout.as_secs());
        match &self.check {
            ProbeCheck::Exec { command } => Probe::Exec {
                args: command.clone(),
                timeout_secs,
            },
            ProbeCheck::Tcp { port } => Probe::Tcp {
                port: *port,
                host: None,
                timeout_secs,
            },
            ProbeCheck::Http { port, path } => Probe::Http {
                port: *port,
                path: Some(path.clone()),
                host: None,
                timeout_secs,
            },
        }
    }
}

impl TopologySpec {
    fn to_model(&self) -> Topology {
        match self {
            TopologySpec::Node => Topology::Node,
            TopologySpec::Label(key) => Topology::Label(key.clone()),
        }
    }
}

impl WorkloadTermSpec {
    fn to_model(&self) -> WorkloadTerm {
        WorkloadTerm {
            workload: self.workload.clone(),
            topology: self.topology.to_model(),
        }
    }
}

impl EffectSpec {
    fn to_model(self) -> TaintEffect {
        match self {
            EffectSpec::NoSchedule => TaintEffect::NoSchedule,
            EffectSpec::PreferNoSchedule => TaintEffect::PreferNoSchedule,
            EffectSpec::NoExecute => TaintEffect::NoExecute,
        }
    }
}
