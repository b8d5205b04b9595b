//! Statistics the drift monitor uses, each checked against an independent
//! implementation on the fixtures in `tests/fixtures/stats/` (regenerate with
//! `python scripts/stats_fixtures.py`; versions are recorded in each file):
//!
//! | item | matches |
//! | --- | --- |
//! | [`ks_2samp`], [`ks_2samp_sorted`] | `scipy.stats.ks_2samp` (two-sided, `method='auto'`, or [`KsMode`]) |
//! | [`psi`], [`PsiBins`] | PSI on numpy reference-quantile bins (formula in `psi.rs`) |
//! | [`chisquare`] | `scipy.stats.chisquare` with expected rescaled to the observed total |
//! | [`wilson`] | `scipy.stats.binomtest(k, n).proportion_ci(method='wilson')` |
//! | [`PageHinkley`] | `river.drift.PageHinkley(mode="up")` |
//! | [`Isotonic`], [`cbpe`], [`Atc`] | sklearn `IsotonicRegression(out_of_bounds="clip")`; numpy formulas |
//! | [`calibrate`] | (no reference: seeded resampling, tested for behaviour) |
//!
//! Tests assert to 1e-9 or tighter: p-values relatively (so a p-value of 1e-200
//! must agree in its leading 9 digits; values below 1e-290 only need to be
//! below 1e-290 too), statistics and proportions absolutely.
//!
//! Usage per model version: sort each feature's reference once
//! ([`sort_ascending`]) and build its [`PsiBins`] once; per window, sort the
//! window once and call [`ks_2samp_sorted`] and [`PsiBins::apply_sorted`].
//!
//! NaN policy: callers filter NaN out first. Functions `debug_assert!` that
//! their inputs hold no NaN; in release builds a NaN gives an unspecified (but
//! memory-safe) result. Impossible inputs (empty samples, `n = 0`, ...) give
//! `None`.

mod calibration;
mod chi2;
mod durbin;
mod kolmogorov;
mod ks;
mod ks_exact;
pub(crate) mod normal;
mod page_hinkley;
mod pomeranz;
mod psi;
mod smirnov;
pub(crate) mod special;
mod threshold;
mod wilson;

pub use calibration::{cbpe, Atc, Isotonic};
pub use chi2::{chisquare, merge_sparse_bins, ChiSquare};
pub use ks::{
    ks_2samp, ks_2samp_sorted, ks_2samp_sorted_mode, ks_statistic_sorted, Ks, KsMethod, KsMode,
};
pub use page_hinkley::{PageHinkley, PageHinkleyParams};
pub use psi::{psi, Psi, PsiBins, PSI_EPSILON};
pub use threshold::{calibrate, Calibrated};
pub use wilson::wilson;

/// Arithmetic mean; `None` for an empty slice.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation (divisor n - 1, numpy `std(ddof=1)`); `None` below two values.
pub fn std_dev(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// Sorts ascending in IEEE total order (-0.0 before 0.0), via order-preserving u64
/// keys: about twice as fast as `sort_unstable_by(f64::total_cmp)` on 10^4 values.
pub fn sort_ascending(xs: &mut [f64]) {
    const SIGN: u64 = 1 << 63;
    let mut keys: Vec<u64> = xs
        .iter()
        .map(|x| {
            let bits = x.to_bits();
            if bits & SIGN != 0 {
                !bits
            } else {
                bits | SIGN
            }
        })
        .collect();
    keys.sort_unstable();
    for (x, k) in xs.iter_mut().zip(keys) {
        *x = f64::from_bits(if k & SIGN != 0 { k & !SIGN } else { !k });
    }
}

/// True when `xs` is sorted ascending and holds no NaN (for `debug_assert!`).
pub(crate) fn is_sorted_without_nan(xs: &[f64]) -> bool {
    xs.windows(2).all(|w| w[0] <= w[1]) && !xs.iter().any(|x| x.is_nan())
}

/// Shared test helpers: fixture loading and the fixture generator's RNG.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde::Deserialize;

    /// SplitMix64, bit-identical to `Rng` in scripts/stats_fixtures.py.
    pub struct Rng(u64);

    impl Rng {
        /// Generator seeded like the Python one.
        pub fn new(seed: u64) -> Self {
            Rng(seed)
        }

        /// Next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1) from the top 53 bits.
        pub fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 * 2f64.powi(-53)
        }
    }

    /// A sample written out in the fixture, or described by a generator spec.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Sample {
        Values(Vec<f64>),
        Generated(Spec),
    }

    #[derive(Deserialize)]
    pub struct Spec {
        seed: u64,
        n: usize,
        shape: String,
        loc: f64,
        scale: f64,
        levels: u32,
    }

    impl Sample {
        /// The values, replaying the generator exactly as the Python script does.
        pub fn values(&self) -> Vec<f64> {
            match self {
                Sample::Values(v) => v.clone(),
                Sample::Generated(spec) => spec.generate(),
            }
        }
    }

    impl Spec {
        /// The spec's n values: loc + scale · z, z by `shape`.
        fn generate(&self) -> Vec<f64> {
            let mut rng = Rng::new(self.seed);
            (0..self.n)
                .map(|_| {
                    let z = match self.shape.as_str() {
                        "normal" => (0..12).fold(0.0, |s, _| s + rng.uniform()) - 6.0,
                        "uniform" => rng.uniform(),
                        "levels" => (rng.uniform() * f64::from(self.levels)).floor(),
                        other => panic!("unknown shape {other}"),
                    };
                    self.loc + self.scale * z
                })
                .collect()
        }
    }

    /// Parses a fixture file's text.
    pub fn load<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).expect("fixture parses")
    }

    /// Below this, f64 is near or in its subnormal range and keeps few significant bits.
    const TINY: f64 = 1e-290;

    /// Asserts |actual - expected| <= rel * |expected|; values below 1e-290
    /// (near-subnormal) only need the other to be below 1e-290 too.
    pub fn assert_rel(actual: f64, expected: f64, rel: f64, what: &str) {
        let both_tiny = actual.abs() < TINY && expected.abs() < TINY;
        let ok = both_tiny || (actual - expected).abs() <= rel * expected.abs();
        assert!(
            ok,
            "{what}: got {actual:e}, want {expected:e} (rel {rel:e})"
        );
    }

    /// Asserts |actual - expected| <= abs.
    pub fn assert_abs(actual: f64, expected: f64, abs: f64, what: &str) {
        let ok = (actual - expected).abs() <= abs;
        assert!(
            ok,
            "{what}: got {actual:e}, want {expected:e} (abs {abs:e})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_dev_match_numpy_ddof1() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), Some(5.0));
        fixtures::assert_rel(std_dev(&xs).unwrap(), 2.138_089_935_299_395, 1e-15, "sd");
    }

    #[test]
    fn sort_ascending_orders_negatives_zeros_and_infinities() {
        let mut xs = [
            3.0,
            -0.0,
            f64::INFINITY,
            -2.5,
            0.0,
            f64::NEG_INFINITY,
            1e-300,
            -1e-300,
        ];
        sort_ascending(&mut xs);
        let want = [
            f64::NEG_INFINITY,
            -2.5,
            -1e-300,
            -0.0,
            0.0,
            1e-300,
            3.0,
            f64::INFINITY,
        ];
        assert_eq!(xs.map(f64::to_bits), want.map(f64::to_bits));
    }

    #[test]
    fn mean_and_std_dev_of_too_few_values_are_none() {
        assert_eq!(mean(&[]), None);
        assert_eq!(std_dev(&[1.0]), None);
    }
}
