//! One scheduling cycle's view of the instance being placed: its constraints resolved to interned
//! symbols and registered topology counts, computed once before any node is looked at (the
//! PreFilter step of kube-scheduler's framework).

use crate::cluster::Cluster;
use crate::model::{InstanceSpec, TaintEffect};
use crate::resources::Resources;
use crate::symbols::Sym;
use crate::topology::TopoId;

/// A toleration with interned key and value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tolerates {
    pub key: Option<Sym>,
    pub value: Option<Sym>,
    pub effect: Option<TaintEffect>,
}

impl Tolerates {
    pub fn matches(&self, key: Sym, value: Sym, effect: TaintEffect) -> bool {
        self.key.is_none_or(|k| k == key)
            && self.value.is_none_or(|v| v == value)
            && self.effect.is_none_or(|e| e == effect)
    }
}

/// The spread constraint, with the emptiest domain's count at the start of the cycle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpreadState {
    pub topo: TopoId,
    pub max_skew: u32,
    pub min: u32,
}

/// The instance being placed, prepared for the filter and score plugins.
#[derive(Debug)]
pub struct Cycle {
    pub(crate) requests: Resources,
    pub(crate) priority: i32,
    pub(crate) workload: Sym,
    pub(crate) selector: Vec<(Sym, Sym)>,
    pub(crate) tolerations: Vec<Tolerates>,
    pub(crate) affinity: Vec<(Sym, TopoId)>,
    pub(crate) anti_affinity: Vec<(Sym, TopoId)>,
    pub(crate) spread: Option<SpreadState>,
}

impl Cycle {
    /// Resolves `spec` against `cluster`, registering the topology counts it needs.
    pub fn prepare(cluster: &mut Cluster, spec: &InstanceSpec) -> Cycle {
        let workload = cluster.symbols.intern(&spec.workload);
        let selector = spec
            .node_selector
            .iter()
            .map(|(k, v)| (cluster.symbols.intern(k), cluster.symbols.intern(v)))
            .collect();
        let tolerations = spec
            .tolerations
            .iter()
            .map(|t| Tolerates {
                key: t.key.as_deref().map(|k| cluster.symbols.intern(k)),
                value: t.value.as_deref().map(|v| cluster.symbols.intern(v)),
                effect: t.effect,
            })
            .collect();
        let mut terms = |terms: &[crate::model::WorkloadTerm]| -> Vec<(Sym, TopoId)> {
            terms
                .iter()
                .map(|term| {
                    let other = cluster.symbols.intern(&term.workload);
                    let topo = cluster.topology(&term.topology);
                    cluster.count(other, topo);
                    (other, topo)
                })
                .collect()
        };
        let affinity = terms(&spec.affinity);
        let anti_affinity = terms(&spec.anti_affinity);
        let spread = spec.spread.as_ref().map(|spread| {
            let topo = cluster.topology(&spread.topology);
            cluster.count(workload, topo);
            SpreadState {
                topo,
                max_skew: spread.max_skew,
                min: cluster.counts(workload, topo).min(),
            }
        });
        Cycle {
            requests: spec.requests,
            priority: spec.priority,
            workload,
            selector,
            tolerations,
            affinity,
            anti_affinity,
            spread,
        }
    }

    /// Brings what the cycle read from the cluster up to date after other placements.
    pub(crate) fn refresh(&mut self, cluster: &Cluster) {
        if let Some(spread) = &mut self.spread {
            spread.min = cluster.counts(self.workload, spread.topo).min();
        }
    }

    /// True when `workload` is one this instance's affinity or spread depends on, so evicting its
    /// instances could undo the placement's own constraints.
    pub(crate) fn depends_on(&self, workload: Sym) -> bool {
        (self.spread.is_some() && workload == self.workload)
            || self.affinity.iter().any(|&(w, _)| w == workload)
    }
}
