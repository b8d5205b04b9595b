//! Two-sided one-sample Kolmogorov-Smirnov distribution D_n: its survival
//! function `kstwo_sf(n, x)` = `scipy.stats.kstwo.sf(x, n)`.
//!
//! A port of scipy/stats/_ksstats.py (`_kolmogn` with `cdf=False`), which
//! follows Simard & L'Ecuyer (2011) in choosing between Ruben-Gambino's exact
//! formulas, Durbin's matrix (`durbin.rs`), Pomeranz's recursion
//! (`pomeranz.rs`), 2 × Smirnov's one-sided tail (`smirnov.rs`) and the
//! Pelz-Good asymptotic series.

use super::{durbin::durbin_cdf, pomeranz::pomeranz_cdf, smirnov::smirnov_sf};
use std::f64::consts::PI;

/// √(2π).
const SQRT_2PI: f64 = 2.5066282746310002;
/// Pelz-Good gives up below exp(-708).
const MIN_LOG: f64 = -708.0;
/// Bernoulli-number Stirling coefficients B_{2j}/(2j)/(2j-1), j = 8..1.
const STIRLING: [f64; 8] = [
    -0.029550653594771242,
    0.00641025641025641,
    -0.0019175269175269176,
    0.0008417508417508417,
    -0.0005952380952380953,
    0.0007936507936507937,
    -0.002777777777777778,
    0.08333333333333333,
];

/// P(D_n ≥ x), = scipy.stats.kstwo.sf(x, n); NaN for n = 0 or NaN x.
pub(crate) fn kstwo_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    let nf = n as f64;
    // rv_continuous support [0.5/n, 1] is checked before _kolmogn runs.
    if x <= 0.5 / nf {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        return clip(1.0 - ruben_gambino_low_cdf(n, t));
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let nx_squared = t * x;
    if n <= 140 {
        return small_n_sf(n, x, nx_squared);
    }
    if nx_squared >= 370.0 {
        return 0.0;
    }
    if nx_squared >= 2.2 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    clip(1.0 - cdf)
}

/// n ≤ 140: Durbin for small n x², Pomeranz up to n x² = 4, then 2 × Smirnov.
fn small_n_sf(n: u64, x: f64, nx_squared: f64) -> f64 {
    if nx_squared <= 0.754693 {
        clip(1.0 - durbin_cdf(n, x))
    } else if nx_squared <= 4.0 {
        clip(1.0 - pomeranz_cdf(n, x))
    } else {
        clip(2.0 * smirnov_sf(n, x))
    }
}

/// P(D_n ≤ t/n) = n!/n^n (2t - 1)^n for 1/2 < t ≤ 1 (Ruben & Gambino).
fn ruben_gambino_low_cdf(n: u64, t: f64) -> f64 {
    let nf = n as f64;
    if n <= 140 {
        (1..=n).fold(1.0, |p, i| p * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0)))
    } else {
        (log_nfactorial_div_n_pow_n(n) + nf * (2.0 * t - 1.0).ln()).exp()
    }
}

/// ln(n! / n^n) by Stirling's series with n ln n removed up front.
fn log_nfactorial_div_n_pow_n(n: u64) -> f64 {
    let nf = n as f64;
    let rn = 1.0 / nf;
    let series = STIRLING.iter().fold(0.0, |acc, c| acc * (rn / nf) + c);
    nf.ln() / 2.0 - nf + (2.0 * PI).ln() / 2.0 + rn * series
}

/// Pelz-Good approximation to P(D_n ≤ x) (Pelz & Good 1976), as in scipy.
pub(crate) fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -PI * PI / 8.0 / z2;
    if qlog < MIN_LOG {
        return 0.0;
    }
    let q = qlog.exp();
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let (k1a, k1b) = (-z2, pi2 / 4.0);
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);

    // Horner scheme over odd m = 2k - 1 for Σ c_m q^(m²).
    let maxk = (16.0 * z / PI).ceil() as i64;
    let mut k = [0.0f64; 4];
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (ki, c) in k.iter_mut().zip(coeffs) {
            *ki = *ki * qpower + c;
        }
    }
    let divisors = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (ki, d) in k.iter_mut().zip(divisors) {
        *ki = *ki * q * SQRT_2PI / d;
    }

    // The other sums run over all integers k.
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let ks = kk as f64;
        let qp = q.powf(ks * ks);
        k2extra += ks * ks * qp;
        k3extra += (sqrt3z + PI * ks) * (sqrt3z - PI * ks) * ks * ks * qp;
    }
    k[2] += k2extra * pi2 * SQRT_2PI / (-36.0 * z3);
    k[3] += k3extra * pi2 * SQRT_2PI / (216.0 * z6);
    k.iter()
        .enumerate()
        .map(|(i, ki)| ki / nf.powf(i as f64 / 2.0))
        .sum()
}

/// Clamps a probability to [0, 1].
pub(crate) fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// x · 2^e without overflow in the power of two.
pub(crate) fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_rel, load};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        kstwo_sf: Vec<Point>,
        smirnov: Vec<Point>,
    }
    #[derive(Deserialize)]
    struct Point {
        n: u64,
        x: f64,
        sf: f64,
    }

    fn fixture() -> Fixture {
        load(include_str!("../../../tests/fixtures/stats/kstwo.json"))
    }

    #[test]
    fn kstwo_sf_matches_scipy_on_every_branch() {
        for p in fixture().kstwo_sf {
            let what = format!("kstwo.sf({}, n={})", p.x, p.n);
            assert_rel(kstwo_sf(p.n, p.x), p.sf, 1e-9, &what);
        }
    }

    #[test]
    fn smirnov_sf_matches_scipy_special_smirnov() {
        for p in fixture().smirnov {
            let what = format!("smirnov({}, {})", p.n, p.x);
            assert_rel(smirnov_sf(p.n, p.x), p.sf, 1e-9, &what);
        }
    }

    #[test]
    fn kstwo_sf_is_one_below_support_and_zero_at_one() {
        assert_eq!(kstwo_sf(10, 0.0), 1.0);
        assert_eq!(kstwo_sf(10, 0.05), 1.0);
        assert_eq!(kstwo_sf(10, 1.0), 0.0);
        assert!(kstwo_sf(0, 0.3).is_nan());
    }

    #[test]
    fn ldexp_scales_far_beyond_one_power_of_two() {
        assert_eq!(ldexp(1.5, 3), 12.0);
        assert_eq!(ldexp(2f64.powi(600), -1200), 2f64.powi(-600));
        assert_eq!(ldexp(2f64.powi(-600), 1200), 2f64.powi(600));
    }
}
