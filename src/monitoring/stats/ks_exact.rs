//! Exact two-sided p-value of the two-sample KS statistic D = h / lcm(n1, n2),
//! a port of scipy's `_attempt_exact_2kssamp` (two-sided branch).

/// P(D ≥ h/lcm) under H0, or `None` where scipy's exact computation fails
/// (a result outside [0, 1]) and it falls back to the asymptotic p-value.
pub(crate) fn exact_pvalue(n1: u64, n2: u64, h: u64) -> Option<f64> {
    if h == 0 {
        return Some(1.0);
    }
    let prob = if n1 == n2 {
        prob_outside_square(n1 as i64, h as i64)
    } else {
        let g = gcd(n1, n2);
        outer_prob_inside(n1 as i64, n2 as i64, g as i64, h as i64)
    };
    (0.0..=1.0).contains(&prob).then_some(prob)
}

/// Greatest common divisor.
pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Equal sizes: 2 Σ_k (-1)^(k+1) C(2n, n-kh) / C(2n, n) in Horner form
/// (scipy `_compute_prob_outside_square`); O(n + h).
fn prob_outside_square(n: i64, h: i64) -> f64 {
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// Unequal sizes: proportion of lattice paths from (0,0) to (m,n) leaving the band
/// |x/m - y/n| < h/lcm, by Hodges' inside method computing 1 - p directly
/// (Viehmann 2021; scipy `_compute_outer_prob_inside_method`). O(m · band width).
///
/// scipy's cell update is A ← (A_prev · i + A_left · j) / (i + j). Here it is
/// split into A ← c_j + b_j · A_left with c_j = A_prev · i/(i+j) and
/// b_j = j/(i+j) from a table of reciprocals, and the scan over j runs in
/// blocks of 4 so that the serial chain is one multiply-add per block. All
/// terms are non-negative, so this only moves rounding at the 1e-16 level.
/// Cells below `f64::MIN_POSITIVE` are flushed to 0: subnormal arithmetic is
/// many times slower, and as every update is a convex combination this moves
/// the result by at most m · 2.2e-308 (so only p-values below ~1e-300).
fn outer_prob_inside(m: i64, n: i64, g: i64, h: i64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = (m / g, n / g);
    let mut minj = 0i64;
    let mut maxj = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    a[minj as usize..maxj as usize].fill(0.0);
    let reciprocal: Vec<f64> = (0..=m + n).map(|k| 1.0 / k as f64).collect();
    let as_float: Vec<f64> = (0..=n).map(|j| j as f64).collect();
    let (mut c, mut b) = (vec![0.0; len_a], vec![0.0; len_a]);
    // floor((ng·i - h)/mg) and ceil((ng·i + h)/mg), stepped by ng/mg per column.
    let (mut low, mut high) = (
        Quotient::new(ng - h, mg),
        Quotient::new(ng + h + mg - 1, mg),
    );
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (low.q + 1).max(0).min(n);
        maxj = high.q.min(n + 1);
        low.add(ng);
        high.add(ng);
        if maxj <= minj {
            return 1.0;
        }
        let len = (maxj - minj) as usize;
        let shift = (minj - lastminj) as usize;
        let fi = i as f64;
        let r = &reciprocal[(i + minj) as usize..(i + maxj) as usize];
        let js = &as_float[minj as usize..maxj as usize];
        let prev = &a[shift..shift + len];
        for (((c, b), (&prev, &r)), &j) in c
            .iter_mut()
            .zip(b.iter_mut())
            .zip(prev.iter().zip(r))
            .zip(js)
        {
            *c = prev * (fi * r);
            *b = j * r;
        }
        let first = if minj == 0 { 0.0 } else { 1.0 };
        linear_scan(&c[..len], &b[..len], first, &mut a[..len]);
        curlen = maxj - minj;
        if lastlen > curlen {
            let end = (len + (lastlen - curlen) as usize).min(len_a);
            a[len.min(len_a)..end].fill(1.0);
        }
    }
    a[(maxj - minj - 1) as usize]
}

/// out[k] = c[k] + b[k] · out[k-1] with out[-1] = `first`, four steps per serial
/// multiply-add; subnormal results are flushed to 0.
fn linear_scan(c: &[f64], b: &[f64], first: f64, out: &mut [f64]) {
    let flush = |x: f64| if x < f64::MIN_POSITIVE { 0.0 } else { x };
    let mut y = first;
    let blocks = c.len() / 4;
    for ((c, b), out) in c
        .chunks_exact(4)
        .zip(b.chunks_exact(4))
        .zip(out.chunks_exact_mut(4))
    {
        // out[k] = t_k + s_k · y, with t, s the block's own prefix (independent of y).
        let (t1, s1) = (c[1] + b[1] * c[0], b[1] * b[0]);
        let (t2, s2) = (c[2] + b[2] * t1, b[2] * s1);
        let (t3, s3) = (c[3] + b[3] * t2, b[3] * s2);
        out[0] = flush(c[0] + b[0] * y);
        out[1] = flush(t1 + s1 * y);
        out[2] = flush(t2 + s2 * y);
        out[3] = flush(t3 + s3 * y);
        y = out[3];
    }
    for k in 4 * blocks..c.len() {
        y = flush(c[k] + b[k] * y);
        out[k] = y;
    }
}

/// ⌊x / d⌋ kept with its remainder so that adding to x needs no division.
struct Quotient {
    q: i64,
    r: i64,
    d: i64,
}

impl Quotient {
    /// ⌊x / d⌋ for d > 0.
    fn new(x: i64, d: i64) -> Self {
        Quotient {
            q: floor_div(x, d),
            r: x.rem_euclid(d),
            d,
        }
    }

    /// x += step, for 0 ≤ step ≤ d.
    fn add(&mut self, step: i64) {
        self.r += step;
        if self.r >= self.d {
            self.r -= self.d;
            self.q += 1;
        }
    }
}

/// ⌊a / b⌋ for b > 0.
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// ⌈a / b⌉ for b > 0.
fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_quotient_tracks_floor_division() {
        let mut q = Quotient::new(-17, 5);
        for x in -17..40 {
            assert_eq!(q.q, floor_div(x, 5), "x={x}");
            q.add(1);
        }
    }

    #[test]
    fn gcd_of_coprime_and_shared_factors() {
        assert_eq!(gcd(365, 500), 5);
        assert_eq!(gcd(97, 101), 1);
        assert_eq!(gcd(10_000, 500), 500);
    }

    #[test]
    fn floor_and_ceil_division_round_towards_minus_and_plus_infinity() {
        assert_eq!(floor_div(-7, 2), -4);
        assert_eq!(floor_div(7, 2), 3);
        assert_eq!(ceil_div(7, 2), 4);
        assert_eq!(ceil_div(-7, 2), -3);
        assert_eq!(ceil_div(8, 2), 4);
    }

    #[test]
    fn blocked_linear_scan_equals_the_serial_recurrence() {
        let c: Vec<f64> = (0..11).map(|k| 0.1 * k as f64).collect();
        let b: Vec<f64> = (0..11).map(|k| 1.0 / (k as f64 + 2.0)).collect();
        let mut out = vec![0.0; 11];
        linear_scan(&c, &b, 1.0, &mut out);
        let mut y = 1.0;
        for k in 0..11 {
            y = c[k] + b[k] * y;
            assert!((out[k] - y).abs() <= 1e-15 * y, "{k}: {} vs {y}", out[k]);
        }
    }

    #[test]
    fn linear_scan_flushes_subnormal_cells_to_zero() {
        let mut out = vec![1.0; 6];
        linear_scan(&[1e-310; 6], &[0.5; 6], 0.0, &mut out);
        assert_eq!(out, vec![0.0; 6]);
    }

    #[test]
    fn largest_possible_distance_has_the_smallest_pvalue() {
        // D = 1 for sizes 3 and 4: only the 2 fully separated orderings of C(7,3) = 35.
        let p = exact_pvalue(3, 4, 12).unwrap();
        assert!((p - 2.0 / 35.0).abs() < 1e-15, "{p}");
    }
}
