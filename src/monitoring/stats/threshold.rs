//! Calibrating a drift statistic's alarm threshold on the reference itself:
//! the statistic's spread between two windows that are known not to drift.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Null distribution summary of a statistic and the threshold mean + 3 sd.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibrated {
    pub mean: f64,
    /// Sample standard deviation over the draws (divisor draws - 1).
    pub sd: f64,
    pub threshold: f64,
}

/// Resamples `draws` pairs of `window`-sized samples from `reference` and
/// summarises `statistic(first, second)` over them.
///
/// With at least 2 × window reference values the two samples of a draw are
/// disjoint (drawn without replacement); with fewer they are drawn
/// independently with replacement. Both samples are passed sorted ascending,
/// so a statistic may use `ks_statistic_sorted` or `PsiBins::from_sorted`
/// directly. Deterministic for a given `seed` with the locked rand version
/// (`SmallRng` and its range sampling may change between rand releases and
/// differ between 32- and 64-bit targets). `None` when `reference` is empty,
/// `window` is 0 or `draws` < 2.
pub fn calibrate(
    reference: &[f64],
    window: usize,
    draws: usize,
    seed: u64,
    mut statistic: impl FnMut(&[f64], &[f64]) -> f64,
) -> Option<Calibrated> {
    if reference.is_empty() || window == 0 || draws < 2 {
        return None;
    }
    debug_assert!(!reference.iter().any(|x| x.is_nan()));
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut sampler = PairSampler::new(reference, window);
    let values: Vec<f64> = (0..draws)
        .map(|_| {
            let (a, b) = sampler.draw(&mut rng);
            statistic(a, b)
        })
        .collect();
    let mean = super::mean(&values)?;
    let sd = super::std_dev(&values)?;
    Some(Calibrated {
        mean,
        sd,
        threshold: mean + 3.0 * sd,
    })
}

/// Draws pairs of sorted windows, reusing its buffers between draws.
struct PairSampler<'a> {
    reference: &'a [f64],
    window: usize,
    /// A permutation of reference indices; its first 2 × window are shuffled per draw.
    order: Vec<usize>,
    first: Vec<f64>,
    second: Vec<f64>,
}

impl<'a> PairSampler<'a> {
    /// A sampler over `reference` for windows of `window` values.
    fn new(reference: &'a [f64], window: usize) -> Self {
        PairSampler {
            reference,
            window,
            order: (0..reference.len()).collect(),
            first: Vec::with_capacity(window),
            second: Vec::with_capacity(window),
        }
    }

    /// The next pair of windows, each sorted ascending.
    fn draw(&mut self, rng: &mut SmallRng) -> (&[f64], &[f64]) {
        self.first.clear();
        self.second.clear();
        if self.reference.len() >= 2 * self.window {
            self.draw_disjoint(rng);
        } else {
            self.draw_with_replacement(rng);
        }
        super::sort_ascending(&mut self.first);
        super::sort_ascending(&mut self.second);
        (&self.first, &self.second)
    }

    /// Partial Fisher-Yates: the first 2 × window positions become a uniform sample.
    fn draw_disjoint(&mut self, rng: &mut SmallRng) {
        let n = self.order.len();
        for i in 0..2 * self.window {
            let j = rng.random_range(i..n);
            self.order.swap(i, j);
        }
        let (a, b) = self.order[..2 * self.window].split_at(self.window);
        self.first.extend(a.iter().map(|&i| self.reference[i]));
        self.second.extend(b.iter().map(|&i| self.reference[i]));
    }

    /// Two independent samples with replacement (reference smaller than 2 × window).
    fn draw_with_replacement(&mut self, rng: &mut SmallRng) {
        let n = self.reference.len();
        for _ in 0..self.window {
            self.first.push(self.reference[rng.random_range(0..n)]);
            self.second.push(self.reference[rng.random_range(0..n)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::Rng as Splitmix;
    use crate::monitoring::stats::normal::normal_ppf;
    use crate::monitoring::stats::{ks_statistic_sorted, PsiBins};

    fn normal(seed: u64, n: usize, shift: f64) -> Vec<f64> {
        let mut rng = Splitmix::new(seed);
        (0..n)
            .map(|_| shift + normal_ppf(rng.uniform().max(1e-300)))
            .collect()
    }

    fn ks(a: &[f64], b: &[f64]) -> f64 {
        ks_statistic_sorted(a, b).unwrap()
    }

    fn psi10(a: &[f64], b: &[f64]) -> f64 {
        PsiBins::from_sorted(a, 10).unwrap().apply(b).unwrap().value
    }

    fn sorted(mut xs: Vec<f64>) -> Vec<f64> {
        crate::monitoring::stats::sort_ascending(&mut xs);
        xs
    }

    #[test]
    fn same_seed_gives_the_same_threshold() {
        let reference = normal(1, 2000, 0.0);
        let a = calibrate(&reference, 300, 50, 7, ks).unwrap();
        let b = calibrate(&reference, 300, 50, 7, ks).unwrap();
        let c = calibrate(&reference, 300, 50, 8, ks).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn undrifted_windows_stay_below_and_shifted_windows_exceed_the_threshold() {
        let reference = sorted(normal(2, 5000, 0.0));
        for statistic in [ks as fn(&[f64], &[f64]) -> f64, psi10] {
            let cal = calibrate(&reference, 500, 200, 3, statistic).unwrap();
            assert_eq!(cal.threshold, cal.mean + 3.0 * cal.sd);
            let below = (0..50)
                .filter(|&s| {
                    statistic(&reference, &sorted(normal(100 + s, 500, 0.0))) < cal.threshold
                })
                .count();
            assert!(below >= 45, "only {below}/50 fresh windows below {cal:?}");
            let shifted = sorted(normal(999, 500, 1.0));
            assert!(statistic(&reference, &shifted) > cal.threshold);
        }
    }

    #[test]
    fn small_reference_is_resampled_with_replacement() {
        let reference = [1.0, 2.0, 3.0];
        let cal = calibrate(&reference, 5, 20, 1, |a, b| {
            assert_eq!((a.len(), b.len()), (5, 5));
            ks(a, b)
        });
        assert!(cal.unwrap().sd >= 0.0);
    }

    #[test]
    fn disjoint_draws_never_share_a_reference_value() {
        let reference: Vec<f64> = (0..20).map(f64::from).collect();
        calibrate(&reference, 10, 30, 5, |a, b| {
            assert!(a.iter().all(|x| !b.contains(x)));
            0.0
        })
        .unwrap();
    }

    #[test]
    fn impossible_inputs_give_none() {
        assert_eq!(calibrate(&[], 5, 10, 1, ks), None);
        assert_eq!(calibrate(&[1.0], 0, 10, 1, ks), None);
        assert_eq!(calibrate(&[1.0, 2.0], 1, 1, 1, ks), None);
    }
}
