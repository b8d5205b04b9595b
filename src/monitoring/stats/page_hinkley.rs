//! Page-Hinkley test for an increase in the mean of a stream (e.g. 0/1 errors),
//! = `river.drift.PageHinkley(mode="up")`.
//!
//! Per value x: the running mean m is updated, then
//! S ← α S + (x − m) − δ and M ← min(M, S); drift when S − M > λ, once at
//! least `min_instances` values were seen. As in river, the state is reset at
//! the start of the update that follows a detection.

/// Page-Hinkley parameters (river's names; defaults are the monitor's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageHinkleyParams {
    /// Magnitude of change tolerated per value (δ).
    pub delta: f64,
    /// Detection threshold (λ).
    pub threshold: f64,
    /// Forgetting factor applied to the cumulative sum (α).
    pub alpha: f64,
    /// Values to see before a detection can fire.
    pub min_instances: u64,
}

impl Default for PageHinkleyParams {
    /// δ = 0.005, λ = 10, α = 0.9999, 30 instances.
    fn default() -> Self {
        PageHinkleyParams {
            delta: 0.005,
            threshold: 10.0,
            alpha: 0.9999,
            min_instances: 30,
        }
    }
}

/// Page-Hinkley detector in river's "up" mode.
#[derive(Debug, Clone, PartialEq)]
pub struct PageHinkley {
    params: PageHinkleyParams,
    count: u64,
    mean: f64,
    sum: f64,
    min_sum: f64,
    drift: bool,
}

impl PageHinkley {
    /// A detector with no values seen.
    pub fn new(params: PageHinkleyParams) -> Self {
        PageHinkley {
            params,
            count: 0,
            mean: 0.0,
            sum: 0.0,
            min_sum: f64::INFINITY,
            drift: false,
        }
    }

    /// Feeds one value; true when drift is detected at this value.
    pub fn update(&mut self, x: f64) -> bool {
        debug_assert!(!x.is_nan());
        if self.drift {
            *self = Self::new(self.params);
        }
        self.count += 1;
        self.mean += (1.0 / self.count as f64) * (x - self.mean);
        self.sum = self.params.alpha * self.sum + (x - self.mean) - self.params.delta;
        self.min_sum = self.min_sum.min(self.sum);
        if self.count >= self.params.min_instances {
            self.drift = self.statistic() > self.params.threshold;
        }
        self.drift
    }

    /// Current test statistic S − min S (0 before the first value).
    pub fn statistic(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum - self.min_sum
        }
    }

    /// Whether the last update detected drift.
    pub fn drift_detected(&self) -> bool {
        self.drift
    }

    /// Values seen since the last reset.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_abs, load, Rng};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        params: Params,
        streams: Vec<Stream>,
    }
    #[derive(Deserialize)]
    struct Params {
        min_instances: u64,
        delta: f64,
        threshold: f64,
        alpha: f64,
    }
    #[derive(Deserialize)]
    struct Stream {
        name: String,
        seed: u64,
        segments: Vec<(usize, f64)>,
        detections: Vec<usize>,
        statistic: Vec<f64>,
    }

    /// The fixture's 0/1 stream: x = 1 when uniform() < the segment's error rate.
    fn errors(seed: u64, segments: &[(usize, f64)]) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for &(len, rate) in segments {
            out.extend((0..len).map(|_| if rng.uniform() < rate { 1.0 } else { 0.0 }));
        }
        out
    }

    /// Detection indices exactly; the statistic trace to 1e-9 absolute.
    #[test]
    fn detections_and_statistic_match_river() {
        let fixture: Fixture = load(include_str!(
            "../../../tests/fixtures/stats/page_hinkley.json"
        ));
        let p = fixture.params;
        let params = PageHinkleyParams {
            delta: p.delta,
            threshold: p.threshold,
            alpha: p.alpha,
            min_instances: p.min_instances,
        };
        assert_eq!(params, PageHinkleyParams::default());
        for s in fixture.streams {
            let mut ph = PageHinkley::new(params);
            let mut detections = Vec::new();
            for (i, x) in errors(s.seed, &s.segments).into_iter().enumerate() {
                if ph.update(x) {
                    detections.push(i);
                }
                if let Some(&want) = s.statistic.get(i) {
                    assert_abs(ph.statistic(), want, 1e-9, &format!("{} step {i}", s.name));
                }
            }
            assert_eq!(detections, s.detections, "{}", s.name);
        }
    }

    #[test]
    fn no_detection_before_min_instances() {
        let mut ph = PageHinkley::new(PageHinkleyParams {
            threshold: 0.1,
            ..PageHinkleyParams::default()
        });
        let fired: Vec<bool> = (0..40)
            .map(|i| ph.update(if i < 5 { 0.0 } else { 1.0 }))
            .collect();
        assert!(!fired[..29].iter().any(|&f| f));
        assert!(fired[29]);
    }

    #[test]
    fn state_resets_on_the_update_after_a_detection() {
        let mut ph = PageHinkley::new(PageHinkleyParams {
            threshold: 0.1,
            min_instances: 2,
            ..PageHinkleyParams::default()
        });
        ph.update(0.0);
        assert!(ph.update(1.0));
        assert_eq!(ph.count(), 2);
        assert!(!ph.update(1.0));
        assert_eq!(ph.count(), 1);
        assert_eq!(ph.statistic(), 0.0);
    }
}
