//! One-sided Kolmogorov-Smirnov tail P(D_n⁺ ≥ x), = scipy.special.smirnov(n, x).
//!
//! Follows scipy's (cephes) `_smirnov`: the same special cases and the
//! Birnbaum-Tingey sum, but the sum's terms are evaluated in log space in
//! plain f64 instead of double-double, and the "upper sum" shortcut for tiny
//! x is not used (the lower sum has only positive terms, so it is accurate
//! there too). Agreement is ~1e-12 relative for n up to 10^5.

use super::kolmogorov::clip;
use std::f64::consts::LN_2;

/// cephes MINLOG: exp() of anything below underflows.
const MIN_LOG: f64 = -7.451_332_191_019_412e2;
/// Above this n, cephes switches to an approximation.
const MAX_COMPUTE_N: u64 = 1_000_000;

/// P(D_n⁺ ≥ x) for the one-sided one-sample KS statistic (scipy.special.smirnov).
pub(crate) fn smirnov_sf(n: u64, x: f64) -> f64 {
    if n == 0 || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let nx = ExactProduct::new(nf, x);
    let (nxfl, alpha) = nx.floor_and_fraction();
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        return clip(1.0 - x * (1.0 + x).powf(nf - 1.0));
    }
    if -2.0 * nf * x * x < MIN_LOG {
        return 0.0;
    }
    if nxfl >= n as i64 - 1 {
        return clip((1.0 - x).powf(nf));
    }
    if n > MAX_COMPUTE_N {
        return large_n_approximation(nf, x);
    }
    // Terms v = 0 ..= floor(n(1-x)), excluding v = n(1-x) itself when it is an integer.
    let last = n as i64 - nxfl - 1;
    clip(birnbaum_tingey(n, x, &nx, last))
}

/// n x kept as an unevaluated sum hi + lo, so floor(n x) is exact.
struct ExactProduct {
    hi: f64,
    lo: f64,
}

impl ExactProduct {
    /// n · x with its rounding error recovered by a fused multiply-add.
    fn new(n: f64, x: f64) -> Self {
        let hi = n * x;
        ExactProduct {
            hi,
            lo: n.mul_add(x, -hi),
        }
    }

    /// floor(n x) and its fraction in [0, 1), rounding a fraction of 1 - ε up (as cephes).
    fn floor_and_fraction(&self) -> (i64, f64) {
        let mut fl = self.hi.floor();
        let mut alpha = (self.hi - fl) + self.lo;
        if alpha < 0.0 {
            fl -= 1.0;
            alpha += 1.0;
        }
        if alpha >= 1.0 {
            fl += 1.0;
            alpha = 0.0;
        }
        (fl as i64, alpha)
    }
}

/// cephes' p ≈ exp(-(6nx+1)²/(18n)) for n > 10^6.
fn large_n_approximation(nf: f64, x: f64) -> f64 {
    let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
    if logp < -LN_2 {
        logp.exp()
    } else {
        1.0 - (-logp.exp_m1())
    }
}

/// x Σ_{v=0}^{last} C(n,v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v), stopping once terms are negligible.
fn birnbaum_tingey(n: u64, x: f64, nx: &ExactProduct, last: i64) -> f64 {
    let nf = n as f64;
    let n_terms = last + 1;
    let vmid = n as i64 / 2;
    let mut sum = LogSum::new(nf * (-x).ln_1p() - x.ln());
    let mut ln_binomial = CompensatedSum::new(nf.ln()); // ln C(n, 1)
    for v in 1..n_terms {
        let vf = v as f64;
        let (above, below) = log_bases(nf, vf, nx);
        let ln_term = ln_binomial.value() + (vf - 1.0) * above + (nf - vf) * below;
        if ln_term == f64::NEG_INFINITY {
            if v > vmid {
                break;
            }
        } else {
            sum.add(ln_term);
            let remaining = 4.0 * (n_terms - v) as f64;
            if v != n_terms - 1 && sum.negligible(ln_term, remaining) {
                break;
            }
        }
        ln_binomial.add(((nf - vf) / (vf + 1.0)).ln());
    }
    (x.ln() + sum.ln()).exp()
}

/// (ln(x + v/n), ln(1 - x - v/n)), each computed where it keeps its relative accuracy.
fn log_bases(nf: f64, vf: f64, nx: &ExactProduct) -> (f64, f64) {
    let above = (vf + nx.hi + nx.lo) / nf;
    let below = if above < 0.5 {
        (-above).ln_1p()
    } else {
        (((nf - vf) - nx.hi - nx.lo) / nf).ln()
    };
    (above.ln(), below)
}

/// Neumaier-compensated running sum: ln C(n, v) grows to thousands over as many steps.
struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    /// A sum holding `first`.
    fn new(first: f64) -> Self {
        CompensatedSum {
            sum: first,
            compensation: 0.0,
        }
    }

    /// Adds x, keeping the lost low-order part.
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    /// The compensated total.
    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// A sum of exponentials kept as exp(max) · scaled, so no term under- or overflows.
struct LogSum {
    max: f64,
    scaled: f64,
}

impl LogSum {
    /// A sum holding exp(`first`).
    fn new(first: f64) -> Self {
        LogSum {
            max: first,
            scaled: 1.0,
        }
    }

    /// Adds exp(`ln_term`).
    fn add(&mut self, ln_term: f64) {
        if ln_term <= self.max {
            self.scaled += (ln_term - self.max).exp();
        } else {
            self.scaled = self.scaled * (self.max - ln_term).exp() + 1.0;
            self.max = ln_term;
        }
    }

    /// remaining · term < ε · sum (cephes' early exit).
    fn negligible(&self, ln_term: f64, remaining: f64) -> bool {
        remaining * (ln_term - self.max).exp() < f64::EPSILON * self.scaled
    }

    /// ln of the total.
    fn ln(&self) -> f64 {
        self.max + self.scaled.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smirnov_of_n1_is_one_minus_x() {
        assert_eq!(smirnov_sf(1, 0.3), 0.7);
    }

    #[test]
    fn smirnov_at_the_ends_is_one_and_zero() {
        assert_eq!(smirnov_sf(10, 0.0), 1.0);
        assert_eq!(smirnov_sf(10, 1.0), 0.0);
        assert!(smirnov_sf(10, 1.5).is_nan());
    }

    #[test]
    fn exact_product_floors_values_that_round_up_to_an_integer() {
        // 0.3 is stored just below 3/10: 10 × 0.3 rounds to 3.0 but its floor is 2.
        let (fl, alpha) = ExactProduct::new(10.0, 0.3).floor_and_fraction();
        assert_eq!(fl, 2);
        assert!(alpha > 0.999_999);
    }
}
