//! Latency samples (whole microseconds) and the arithmetic on them, without floats where a
//! count is involved and without lossy casts.

use std::time::{Duration, Instant};

/// Latencies in microseconds, merged from every client task.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u32>,
    sorted: bool,
}

impl Samples {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, elapsed: Duration) {
        self.micros.push(micros(elapsed));
        self.sorted = false;
    }

    /// Records the time since `start` and returns it.
    pub fn since(&mut self, start: Instant) -> Duration {
        let elapsed = start.elapsed();
        self.record(elapsed);
        elapsed
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// The nearest-rank percentile `per_mille` / 1000 (500 = median, 990 = p99), in µs.
    pub fn percentile(&mut self, per_mille: usize) -> Option<u32> {
        if self.micros.is_empty() {
            return None;
        }
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
        let count = self.micros.len();
        let rank = per_mille.saturating_mul(count).div_ceil(1000).max(1);
        self.micros.get(rank.min(count) - 1).copied()
    }

    /// `p50=…ms p99=…ms` with `label` before each, or `n/a` when there is nothing.
    pub fn summary(&mut self, label: &str) -> String {
        let p50 = self.percentile(500);
        let p99 = self.percentile(990);
        let prefix = if label.is_empty() {
            String::new()
        } else {
            format!("{label} ")
        };
        format!("{prefix}p50={} p99={}", millis(p50), millis(p99))
    }
}

/// Whole microseconds, saturating at about 71 minutes.
pub fn micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

/// A latency in milliseconds with enough digits to compare sub-millisecond figures.
pub fn millis(micros: Option<u32>) -> String {
    match micros {
        None => "n/a".to_owned(),
        Some(value) => {
            let ms = f64::from(value) / 1000.0;
            if ms < 10.0 {
                format!("{ms:.2}ms")
            } else {
                format!("{ms:.1}ms")
            }
        }
    }
}

/// A count as a float (counts here stay far below 2^32; larger ones saturate).
pub fn count_f64(count: usize) -> f64 {
    f64::from(u32::try_from(count).unwrap_or(u32::MAX))
}

/// Events or requests per second.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        0.0
    } else {
        count_f64(count) / seconds
    }
}

/// A ratio for the figure lines, `n/a` without a baseline.
pub fn ratio(value: f64, baseline: Option<f64>) -> String {
    match baseline {
        Some(base) if base > 0.0 => format!("{:.3}", value / base),
        _ => "n/a".to_owned(),
    }
}

/// A cheap, seedable generator for picking ids at random (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn from_entropy() -> Self {
        Self::seeded(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let bound64 = u64::try_from(bound).unwrap_or(u64::MAX).max(1);
        usize::try_from(value % bound64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::new();
        for value in 1..=100_u64 {
            samples.record(Duration::from_micros(value));
        }
        assert_eq!(samples.percentile(500), Some(50));
        assert_eq!(samples.percentile(990), Some(99));
        assert_eq!(samples.percentile(1000), Some(100));
        assert_eq!(samples.percentile(0), Some(1));
        assert_eq!(Samples::new().percentile(500), None);
    }

    #[test]
    fn picks_stay_in_bounds() {
        let mut rng = Rng::seeded(7);
        for _ in 0..1000 {
            assert!(rng.below(13) < 13);
        }
    }
}
