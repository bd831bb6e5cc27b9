//! Amounts of the resources a node offers and an instance requests.

use std::ops::{Add, AddAssign, Sub, SubAssign};

/// CPU, memory and process counts, the three resources placement accounts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// CPU in millicores (1000 = one core).
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Number of processes (the pids cgroup limit).
    pub pids: u64,
}

impl Resources {
    /// Nothing of anything.
    pub const ZERO: Resources = Resources {
        cpu_millis: 0,
        memory_bytes: 0,
        pids: 0,
    };

    /// A new amount.
    pub const fn new(cpu_millis: u64, memory_bytes: u64, pids: u64) -> Self {
        Resources {
            cpu_millis,
            memory_bytes,
            pids,
        }
    }

    /// True when every resource of `self` is at most that of `other`.
    pub fn fits_within(&self, other: &Resources) -> bool {
        self.cpu_millis <= other.cpu_millis
            && self.memory_bytes <= other.memory_bytes
            && self.pids <= other.pids
    }

    /// `self - other`, each resource floored at zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            pids: self.pids.saturating_sub(other.pids),
        }
    }

    /// `self + other`, each resource capped at its largest value.
    pub fn saturating_add(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            pids: self.pids.saturating_add(other.pids),
        }
    }

    /// Per resource, the larger of the two amounts.
    pub fn max(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
            pids: self.pids.max(other.pids),
        }
    }

    /// Per resource, the smaller of the two amounts.
    pub fn min(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.min(other.cpu_millis),
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            pids: self.pids.min(other.pids),
        }
    }

    /// The fractions of `capacity` this amount takes, for cpu and memory (0 when the capacity is 0).
    pub fn fractions_of(&self, capacity: &Resources) -> (f64, f64) {
        (
            fraction(self.cpu_millis, capacity.cpu_millis),
            fraction(self.memory_bytes, capacity.memory_bytes),
        )
    }
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis + other.cpu_millis,
            memory_bytes: self.memory_bytes + other.memory_bytes,
            pids: self.pids + other.pids,
        }
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, other: Resources) {
        *self = *self + other;
    }
}

/// Panics on underflow: subtracting more than was added is an accounting bug.
impl Sub for Resources {
    type Output = Resources;
    fn sub(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis - other.cpu_millis,
            memory_bytes: self.memory_bytes - other.memory_bytes,
            pids: self.pids - other.pids,
        }
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, other: Resources) {
        *self = *self - other;
    }
}
