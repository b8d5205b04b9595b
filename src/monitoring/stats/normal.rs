//! The standard normal distribution: CDF and quantile, accurate in the tails.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// Series and continued fractions stop at this relative change.
const EPS: f64 = f64::EPSILON;
/// Iteration cap (never reached for finite input).
const MAX_ITER: usize = 100_000;

/// Standard normal CDF Φ(z), = scipy.special.ndtr; relative accuracy in both tails.
#[allow(dead_code, reason = "for the monitor's z-scores; tested against scipy")]
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z * FRAC_1_SQRT_2)
}

/// Complementary error function: positive-term series below 2.5, continued fraction above.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 {
        1.0 - erf_series(x)
    } else {
        erfc_continued_fraction(x)
    }
}

/// erf(x) = 2/√π e^{-x²} Σ 2^n x^{2n+1} / (1·3···(2n+1)); all terms positive.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term > sum * EPS * 0.5 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / PI.sqrt() * (-x2).exp() * sum
}

/// erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) for x ≥ 2.5 (Lentz).
fn erfc_continued_fraction(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..MAX_ITER {
        let a = k as f64 / 2.0;
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < EPS {
            break;
        }
    }
    (-x * x).exp() / PI.sqrt() / f
}

/// Standard normal quantile Φ⁻¹(p), = scipy.special.ndtri (Wichura, AS 241, ~1e-16).
pub(crate) fn normal_ppf(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * poly(&AS241_A, r) / poly(&AS241_B, r);
    }
    let r = (-(if q < 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let z = if r <= 5.0 {
        poly(&AS241_C, r - 1.6) / poly(&AS241_D, r - 1.6)
    } else {
        poly(&AS241_E, r - 5.0) / poly(&AS241_F, r - 5.0)
    };
    if q < 0.0 {
        -z
    } else {
        z
    }
}

/// Horner evaluation, coefficients lowest degree first.
fn poly(coefficients: &[f64], x: f64) -> f64 {
    coefficients.iter().rev().fold(0.0, |acc, c| acc * x + c)
}

/// AS 241 PPND16 coefficients (Wichura 1988), lowest degree first: central region.
const AS241_A: [f64; 8] = [
    3.3871328727963665,
    133.14166789178438,
    1971.5909503065513,
    13731.69376550946,
    45921.95393154987,
    67265.7709270087,
    33430.57558358813,
    2509.0809287301227,
];
const AS241_B: [f64; 8] = [
    1.0,
    42.31333070160091,
    687.1870074920579,
    5394.196021424751,
    21213.794301586597,
    39307.89580009271,
    28729.085735721943,
    5226.495278852854,
];
/// Tail region r = √(-ln p) ≤ 5.
const AS241_C: [f64; 8] = [
    1.4234371107496835,
    4.630337846156546,
    5.769497221460691,
    3.6478483247632045,
    1.2704582524523684,
    0.2417807251774506,
    0.022723844989269184,
    0.0007745450142783414,
];
const AS241_D: [f64; 8] = [
    1.0,
    2.053191626637759,
    1.6763848301838038,
    0.6897673349851,
    0.14810397642748008,
    0.015198666563616457,
    0.0005475938084995345,
    1.0507500716444169e-09,
];
/// Far tail r > 5.
const AS241_E: [f64; 8] = [
    6.657904643501103,
    5.463784911164114,
    1.7848265399172913,
    0.29656057182850487,
    0.026532189526576124,
    0.0012426609473880784,
    2.7115555687434876e-05,
    2.0103343992922881e-07,
];
const AS241_F: [f64; 8] = [
    1.0,
    0.599832206555888,
    0.1369298809227358,
    0.014875361290850615,
    0.0007868691311456133,
    1.8463183175100548e-05,
    1.421511758316446e-07,
    2.0442631033899397e-15,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_rel, load};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        ndtr: Vec<NdtrCase>,
        ndtri: Vec<NdtriCase>,
    }
    #[derive(Deserialize)]
    struct NdtrCase {
        z: f64,
        p: f64,
    }
    #[derive(Deserialize)]
    struct NdtriCase {
        p: f64,
        z: f64,
    }

    fn fixture() -> Fixture {
        load(include_str!("../../../tests/fixtures/stats/special.json"))
    }

    #[test]
    fn normal_cdf_matches_scipy_ndtr_in_both_tails() {
        for c in fixture().ndtr {
            assert_rel(normal_cdf(c.z), c.p, 1e-9, &format!("ndtr({})", c.z));
        }
    }

    #[test]
    fn normal_ppf_matches_scipy_ndtri_to_1e12_relative() {
        for c in fixture().ndtri {
            assert_rel(normal_ppf(c.p), c.z, 1e-12, &format!("ndtri({})", c.p));
        }
    }

    #[test]
    fn normal_ppf_inverts_normal_cdf() {
        for z in [-8.0, -3.0, -0.5, 0.0, 0.7, 2.5] {
            assert_rel(normal_ppf(normal_cdf(z)), z, 1e-12, "ppf(cdf(z))");
        }
    }

    #[test]
    fn normal_ppf_of_0_and_1_is_infinite() {
        assert_eq!(normal_ppf(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_ppf(1.0), f64::INFINITY);
        assert!(normal_ppf(f64::NAN).is_nan());
    }
}
