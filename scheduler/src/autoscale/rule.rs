//! Kubernetes' replica rule: `desired = ceil(current × measured / target)`, computed over the
//! instances that have a measurement, with missing measurements assumed against the direction
//! of the change (the HorizontalPodAutoscaler's `GetResourceReplicas`).

/// What the instances of a workload show, in percent of the target's basis (of the request
/// for cpu and memory, absolute for pressure).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurement {
    /// One value per ready instance that has a fresh measurement.
    pub values: Vec<f64>,
    /// Ready instances without a fresh measurement (too new, or their node went quiet).
    pub missing: u32,
    /// Instances that count toward the replicas but are not ready (pending, starting, failing
    /// readiness).
    pub unready: u32,
}

impl Measurement {
    /// The mean of the measured values, if any.
    pub fn mean(&self) -> Option<f64> {
        (!self.values.is_empty())
            .then(|| self.values.iter().sum::<f64>() / self.values.len() as f64)
    }
}

/// What the rule says.
#[derive(Clone, Debug, PartialEq)]
pub enum Proposal {
    /// No recommendation can be made (and none is recorded): why.
    Unknown(String),
    /// Keep `current`: the metric is within the tolerance, or the conservative assumptions
    /// about missing instances would turn the change around.
    Keep,
    /// Run this many instances.
    Replicas(u32),
}

/// The tolerance band: no change while `measured / target` is within
/// `[1 − down, 1 + up]` (fractions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Above the target.
    pub up: f64,
    /// Below the target.
    pub down: f64,
}

impl Tolerance {
    fn within(&self, ratio: f64) -> bool {
        (1.0 - self.down..=1.0 + self.up).contains(&ratio)
    }
}

/// The replicas `m` calls for when `current` run and the target is `target` (> 0).
pub fn propose(current: u32, m: &Measurement, target: f64, tolerance: Tolerance) -> Proposal {
    let Some(mean) = m.mean() else {
        return Proposal::Unknown("no ready instance has a measurement yet".into());
    };
    let ratio = mean / target;
    // Unready instances count only against a scale up (as 0): their load will land on the
    // others once they are ready, or they never take any.
    let count_unready = m.unready > 0 && ratio > 1.0;
    if !count_unready && m.missing == 0 {
        if tolerance.within(ratio) {
            return Proposal::Keep;
        }
        return Proposal::Replicas(ceil(ratio * m.values.len() as f64));
    }
    // Missing instances: assumed at the target when shrinking, at 0 when growing, so the
    // change they allow is the smallest.
    let mut sum: f64 = m.values.iter().sum();
    let mut n = m.values.len() as f64 + f64::from(m.missing);
    if ratio < 1.0 {
        sum += f64::from(m.missing) * target;
    }
    if count_unready {
        n += f64::from(m.unready);
    }
    let new_ratio = sum / n / target;
    if tolerance.within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Proposal::Keep;
    }
    let replicas = ceil(new_ratio * n);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Proposal::Keep;
    }
    Proposal::Replicas(replicas)
}

/// `x` rounded up to a count (a tiny excess from float arithmetic does not add an instance).
fn ceil(x: f64) -> u32 {
    let rounded = (x - 1e-9).ceil().max(0.0);
    if rounded >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        rounded as u32
    }
}
