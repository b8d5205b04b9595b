//! Pomeranz's recursion (1974) for P(D_n ≤ x); a port of scipy's
//! `_kolmogn_Pomeranz`, used for n ≤ 140 and 0.754693 < n x² ≤ 4.

use super::kolmogorov::{clip, ldexp};

/// Intermediate rows are rescaled by 2^128 (as scipy) to avoid underflow.
const SCALE_EXPONENT: i64 = 128;

/// Truncated Poisson-like weights (c/n)^m / m! for the three step sizes.
struct Powers {
    g: Vec<f64>,
    two_g: Vec<f64>,
    one_minus_two_g: Vec<f64>,
}

impl Powers {
    /// The first `len` weights for steps g/n, 2g/n and (1-2g)/n.
    fn new(len: usize, g: f64, n: f64) -> Self {
        let series = |c: f64| {
            let mut out = vec![1.0; len];
            for m in 1..len {
                out[m] = out[m - 1] * c / m as f64;
            }
            out
        };
        Powers {
            g: series(g / n),
            two_g: series(2.0 * g / n),
            one_minus_two_g: series((1.0 - 2.0 * g) / n),
        }
    }
}

/// Row i's band of non-zero entries, [j1, j2] (scipy `_pomeranz_compute_j1j2`).
fn band(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (half, odd) = ((i + 1) / 2, (i + 1) % 2);
        if odd == 0 {
            if half == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1)
            }
        } else {
            (half - 1 - ll - 1, half + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// P(D_n ≤ x) by Pomeranz's recursion.
pub(crate) fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let (nf, ni) = (n as f64, n as i64);
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let powers = Powers::new(npwrs, g, nf);
    let small = 1.0 / 2f64.powi(SCALE_EXPONENT as i32);

    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut exponent = 0i64;
    let (mut j1, _) = band(0, ni, ll, ceilf, roundf);
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        let (nj1, j2) = band(i, ni, ll, ceilf, roundf);
        j1 = nj1;
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &powers.g
        } else if i % 2 == 1 {
            &powers.two_g
        } else {
            &powers.one_minus_two_g
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let start = (k1 - v0s) as usize;
            let a = &v0[start..(start + ln2 as usize).min(npwrs)];
            let b = &pwrs[..(ln2 as usize).min(npwrs)];
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1) as usize;
            convolve_into(a, b, conv_start, &mut v1[..conv_len]);
            let max = v1.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if max > 0.0 && max < small {
                v1.iter_mut().for_each(|v| *v /= small);
                exponent -= SCALE_EXPONENT;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(ni - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > 1.0 / small {
            ans *= small;
            exponent += SCALE_EXPONENT;
        }
        ans *= m as f64;
    }
    clip(ldexp(ans, exponent))
}

/// out[i] = (a ⊛ b)[offset + i], numpy's full convolution sliced.
fn convolve_into(a: &[f64], b: &[f64], offset: usize, out: &mut [f64]) {
    if a.is_empty() || b.is_empty() {
        out.fill(0.0);
        return;
    }
    for (i, o) in out.iter_mut().enumerate() {
        let k = offset + i;
        let lo = k.saturating_sub(b.len() - 1);
        let hi = k.min(a.len() - 1);
        *o = (lo..=hi).map(|j| a[j] * b[k - j]).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pomeranz_agrees_with_durbin_where_both_apply() {
        for (n, x) in [(10u64, 0.3), (50, 0.15), (140, 0.1), (7, 0.41)] {
            let p = pomeranz_cdf(n, x);
            let d = super::super::durbin::durbin_cdf(n, x);
            assert!((p - d).abs() < 1e-12, "n={n} x={x}: {p} vs {d}");
        }
    }
}
