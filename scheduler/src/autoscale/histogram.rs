//! A decaying histogram of measurements, as the VerticalPodAutoscaler's recommender keeps
//! one per container: buckets grow exponentially (5% apart), and each sample weighs twice as
//! much as one taken a half-life earlier, so old behaviour fades without being forgotten at
//! once.

use std::time::{Duration, Instant};

/// How much wider each bucket is than the one before.
const GROWTH: f64 = 1.05;
/// Weights are rescaled once they pass this, so they never overflow.
const RESCALE_ABOVE: f64 = 1e100;

/// Samples of one quantity (millicores, bytes) with exponentially decaying weights.
#[derive(Debug, Clone)]
pub struct DecayingHistogram {
    /// The upper bound of the first bucket.
    first: f64,
    /// Buckets' weights; bucket `i` holds values up to `first × GROWTH^i`.
    weights: Vec<f64>,
    /// The time weights are relative to.
    reference: Instant,
    half_life: Duration,
    total: f64,
}

impl DecayingHistogram {
    /// An empty histogram whose first bucket ends at `first` (> 0) and whose samples lose
    /// half their weight every `half_life`.
    pub fn new(first: f64, half_life: Duration, now: Instant) -> DecayingHistogram {
        DecayingHistogram {
            first,
            weights: Vec::new(),
            reference: now,
            half_life,
            total: 0.0,
        }
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.total <= 0.0
    }

    /// Adds `value` measured at `at` (not before the previous samples' reference).
    pub fn add(&mut self, value: f64, at: Instant) {
        let mut weight = self.weight_at(at);
        if weight > RESCALE_ABOVE {
            // Move the reference to `at`: every weight shrinks by the same factor.
            for w in &mut self.weights {
                *w /= weight;
            }
            self.total /= weight;
            self.reference = at;
            weight = 1.0;
        }
        let bucket = self.bucket(value);
        if self.weights.len() <= bucket {
            self.weights.resize(bucket + 1, 0.0);
        }
        self.weights[bucket] += weight;
        self.total += weight;
    }

    /// The smallest bucket bound below which a `fraction` (0–1) of the weight lies.
    pub fn percentile(&self, fraction: f64) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        let wanted = self.total * fraction.clamp(0.0, 1.0);
        let mut sum = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            sum += w;
            if sum >= wanted && *w > 0.0 {
                return Some(self.bound(i));
            }
        }
        self.weights
            .iter()
            .rposition(|&w| w > 0.0)
            .map(|i| self.bound(i))
    }

    /// The highest bucket bound holding at least `fraction` of the weight's share that a
    /// single fresh sample would have: the peak, ignoring samples faded to nothing.
    pub fn peak(&self, fraction: f64) -> Option<f64> {
        let floor = self.weights.iter().copied().fold(0.0, f64::max) * fraction;
        self.weights
            .iter()
            .rposition(|&w| w > 0.0 && w >= floor)
            .map(|i| self.bound(i))
    }

    fn weight_at(&self, at: Instant) -> f64 {
        let age = at.saturating_duration_since(self.reference).as_secs_f64();
        (age / self.half_life.as_secs_f64().max(1e-9)).exp2()
    }

    fn bucket(&self, value: f64) -> usize {
        if value <= self.first {
            return 0;
        }
        ((value / self.first).ln() / GROWTH.ln()).ceil() as usize
    }

    fn bound(&self, bucket: usize) -> f64 {
        self.first * GROWTH.powi(bucket as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_fall_on_bucket_bounds_within_five_percent() {
        let t0 = Instant::now();
        let mut h = DecayingHistogram::new(1.0, Duration::from_secs(3600), t0);
        for v in 1..=100 {
            h.add(f64::from(v), t0);
        }
        let p90 = h.percentile(0.9).unwrap();
        assert!((90.0..=90.0 * GROWTH).contains(&p90), "{p90}");
        let peak = h.peak(0.0).unwrap();
        assert!((100.0..=100.0 * GROWTH).contains(&peak), "{peak}");
    }

    #[test]
    fn old_samples_fade() {
        let t0 = Instant::now();
        let mut h = DecayingHistogram::new(1.0, Duration::from_secs(60), t0);
        for _ in 0..10 {
            h.add(1000.0, t0);
        }
        // Ten half-lives later, ten samples of 10 outweigh the old ones 1000:1 each.
        let later = t0 + Duration::from_secs(600);
        for _ in 0..10 {
            h.add(10.0, later);
        }
        let p90 = h.percentile(0.9).unwrap();
        assert!(p90 < 11.0, "{p90}");
        assert!(h.peak(0.01).unwrap() < 11.0);
        assert!(h.peak(0.0).unwrap() > 999.0);
    }

    #[test]
    fn weights_are_rescaled_before_they_overflow() {
        let t0 = Instant::now();
        let mut h = DecayingHistogram::new(1.0, Duration::from_secs(1), t0);
        for s in 0..2000 {
            h.add(5.0, t0 + Duration::from_secs(s));
        }
        assert!(h.total.is_finite());
        let p = h.percentile(0.5).unwrap();
        assert!((5.0..=5.0 * GROWTH).contains(&p), "{p}");
    }
}
