//! What `describe workload`, `get workloads` and `/metrics` show of a workload's autoscaling.

use serde::{Deserialize, Serialize};

/// Decisions remembered per workload for `describe`.
pub const DECISIONS_KEPT: usize = 10;

/// The autoscaler's view of a workload, as of its last evaluation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AutoscaleStatus {
    /// The fewest instances.
    pub min: u32,
    /// The most instances.
    pub max: u32,
    /// The metric followed (`cpu`, `memory`, `pressure.cpu`, `pressure.memory`).
    pub metric: String,
    /// The target, percent (of the request for cpu and memory).
    pub target_percent: u32,
    /// The mean measured over the ready instances, percent; `None` before any measurement.
    pub measured_percent: Option<f64>,
    /// Ready instances with a measurement.
    pub measured: u32,
    /// Ready instances without one (assumed against the change).
    pub missing: u32,
    /// Instances not ready yet (counted as 0 against a scale up).
    pub unready: u32,
    /// The replica rule's count at the last evaluation.
    pub recommendation: Option<u32>,
    /// The count the windows, step limits and bounds settled on.
    pub desired: Option<u32>,
    /// The scale-up stabilization window (a duration, as the spec writes it).
    pub scale_up_window: String,
    /// The scale-down stabilization window.
    pub scale_down_window: String,
    /// Why the count does not follow the recommendation now, or why nothing was recommended.
    pub held_by: Option<String>,
    /// A `scale` by hand paused autoscaling (until the next `apply`).
    pub paused: bool,
    /// The last changes of the count, oldest first.
    pub decisions: Vec<Decision>,
}

/// A change of the replica count made by the autoscaler.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    /// When (RFC 3339).
    pub time: String,
    /// The count before.
    pub from: u32,
    /// The count after.
    pub to: u32,
    /// Why.
    pub reason: String,
}
