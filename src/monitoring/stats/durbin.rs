//! Durbin's matrix algorithm for P(D_n ≤ d), as computed by Marsaglia, Tsang
//! & Wang (2003); a port of scipy's `_kolmogn_DMTW`. O(m³ log n) with
//! m = 2⌈nd⌉ - 1, so only used where n d^1.5 is small.

use super::kolmogorov::{clip, ldexp};

/// Intermediate results are rescaled by 2^128 (as scipy) to stay within range.
const SCALE_EXPONENT: i64 = 128;

/// P(D_n ≤ d), two-sided one-sample KS CDF (scipy `_kolmogn_DMTW`).
pub(crate) fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let (p, exponent) = kth_diagonal_of_power(&initial_matrix(k, h), k, n);
    let (p, exponent) = times_nfactorial_over_n_pow_n(p, exponent, n);
    clip(ldexp(p, exponent))
}

/// Square matrix stored row-major.
struct Matrix {
    m: usize,
    a: Vec<f64>,
}

impl Matrix {
    /// The m × m identity.
    fn identity(m: usize) -> Self {
        let mut a = vec![0.0; m * m];
        (0..m).for_each(|i| a[i * m + i] = 1.0);
        Matrix { m, a }
    }

    /// Entry (i, j).
    fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.m + j]
    }

    /// Matrix product self · other.
    fn mul(&self, other: &Matrix) -> Matrix {
        let m = self.m;
        let mut a = vec![0.0; m * m];
        for i in 0..m {
            for l in 0..m {
                let x = self.at(i, l);
                if x == 0.0 {
                    continue;
                }
                let row = &other.a[l * m..(l + 1) * m];
                for (out, y) in a[i * m..(i + 1) * m].iter_mut().zip(row) {
                    *out += x * y;
                }
            }
        }
        Matrix { m, a }
    }
}

/// Durbin's H (m = 2k - 1) for d = (k - h)/n.
fn initial_matrix(k: usize, h: f64) -> Matrix {
    let m = 2 * k - 1;
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = Matrix {
        m,
        a: vec![0.0; m * m],
    };
    for i in 1..m {
        for r in (i - 1)..m {
            hm.a[r * m + i] = w[r + 1 - i];
        }
    }
    for (r, &vr) in v.iter().enumerate() {
        hm.a[r * m] = vr;
    }
    for (c, &vr) in v.iter().rev().enumerate() {
        hm.a[(m - 1) * m + c] = vr;
    }
    hm
}

/// (H^n)[k-1, k-1] as mantissa and binary exponent, rescaling H as it grows.
fn kth_diagonal_of_power(h: &Matrix, k: usize, n: u64) -> (f64, i64) {
    let big = 2f64.powi(SCALE_EXPONENT as i32);
    let mut h = Matrix {
        m: h.m,
        a: h.a.clone(),
    };
    let mut power = Matrix::identity(h.m);
    let (mut exponent, mut h_exponent) = (0i64, 0i64);
    let mut nn = n;
    while nn > 0 {
        if nn % 2 == 1 {
            power = power.mul(&h);
            exponent += h_exponent;
        }
        h = h.mul(&h);
        h_exponent *= 2;
        if h.at(k - 1, k - 1).abs() > big {
            h.a.iter_mut().for_each(|x| *x /= big);
            h_exponent += SCALE_EXPONENT;
        }
        nn /= 2;
    }
    (power.at(k - 1, k - 1), exponent)
}

/// p · n!/n^n, keeping p away from underflow with a separate exponent.
fn times_nfactorial_over_n_pow_n(mut p: f64, mut exponent: i64, n: u64) -> (f64, i64) {
    let big = 2f64.powi(SCALE_EXPONENT as i32);
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < 1.0 / big {
            p *= big;
            exponent -= SCALE_EXPONENT;
        }
    }
    (p, exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durbin_cdf_of_n1_is_2d_minus_1() {
        // D_1 = max(U, 1 - U): P(D_1 ≤ d) = 2d - 1.
        assert!((durbin_cdf(1, 0.75) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn durbin_cdf_is_0_at_or_below_half_over_n_and_1_at_1() {
        assert_eq!(durbin_cdf(10, 0.05), 0.0);
        assert_eq!(durbin_cdf(10, 1.0), 1.0);
    }
}
