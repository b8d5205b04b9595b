//! Population Stability Index on reference-quantile bins.
//!
//! Bins: the edges are the reference minimum, its `bins - 1` inner quantiles
//! (numpy's default linear quantile: deciles for `bins = 10`) and its maximum,
//! deduplicated. Inner bins are [e_{i-1}, e_i), the last one closed at the
//! maximum; two overflow bins hold values below the reference minimum and
//! above its maximum. With a constant reference there is one inner bin,
//! {min}. PSI = Σ (c_i − r_i) ln(c_i / r_i) over all bins, with each share
//! floored at [`PSI_EPSILON`] so that empty bins stay finite.

/// Floor applied to both shares of a bin before the PSI sum (not renormalised).
pub const PSI_EPSILON: f64 = 1e-4;

/// A PSI result: the value and the bins behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Psi {
    pub value: f64,
    /// Reference min, deduplicated inner quantiles, reference max.
    pub edges: Vec<f64>,
    /// Raw (unfloored) shares; index 0 is below `edges[0]`, the last is above the last edge.
    pub reference_share: Vec<f64>,
    pub current_share: Vec<f64>,
}

/// Bins built once from a reference, then applied to many windows.
#[derive(Debug, Clone, PartialEq)]
pub struct PsiBins {
    edges: Vec<f64>,
    reference_counts: Vec<u64>,
    reference_len: usize,
}

/// PSI of `current` against `reference` with `bins` quantile bins; `None` if
/// either sample is empty or `bins` is 0.
pub fn psi(reference: &[f64], current: &[f64], bins: usize) -> Option<Psi> {
    PsiBins::new(reference, bins)?.apply(current)
}

impl PsiBins {
    /// Bins from an unsorted reference (sorts a copy); `None` if empty or `bins == 0`.
    pub fn new(reference: &[f64], bins: usize) -> Option<Self> {
        let mut sorted = reference.to_vec();
        super::sort_ascending(&mut sorted);
        Self::from_sorted(&sorted, bins)
    }

    /// Bins from a reference sorted ascending; `None` if empty or `bins == 0`.
    pub fn from_sorted(reference: &[f64], bins: usize) -> Option<Self> {
        if reference.is_empty() || bins == 0 {
            return None;
        }
        debug_assert!(super::is_sorted_without_nan(reference));
        let mut edges = Vec::with_capacity(bins + 1);
        edges.push(reference[0]);
        edges.extend((1..bins).map(|i| quantile_sorted(reference, i as f64 / bins as f64)));
        edges.push(reference[reference.len() - 1]);
        edges.dedup();
        let mut this = PsiBins {
            edges,
            reference_counts: Vec::new(),
            reference_len: reference.len(),
        };
        this.reference_counts = this.counts_sorted(reference);
        Some(this)
    }

    /// Bin edges (see the module documentation).
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Number of bins including the two overflow bins.
    pub fn bin_count(&self) -> usize {
        self.inner_bins() + 2
    }

    /// Reference counts per bin (the overflow bins are always 0).
    pub fn reference_counts(&self) -> &[u64] {
        &self.reference_counts
    }

    /// Reference share per bin: the expected frequencies for a chi-squared test on
    /// [`PsiBins::counts_sorted`] (merge with `merge_sparse_bins` first: the
    /// overflow bins' share is 0).
    pub fn reference_share(&self) -> Vec<f64> {
        shares(&self.reference_counts, self.reference_len)
    }

    /// Count of `values` per bin.
    pub fn counts(&self, values: &[f64]) -> Vec<u64> {
        debug_assert!(!values.iter().any(|x| x.is_nan()));
        let mut counts = vec![0u64; self.bin_count()];
        for &x in values {
            counts[self.bin_of(x)] += 1;
        }
        counts
    }

    /// Count of `sorted` (ascending) values per bin, by binary search at each edge.
    pub fn counts_sorted(&self, sorted: &[f64]) -> Vec<u64> {
        debug_assert!(super::is_sorted_without_nan(sorted));
        let (first, last) = (self.edges[0], self.edges[self.edges.len() - 1]);
        // Bin k ends where values reach the next edge; the last inner bin and the
        // overflow bin end at the reference maximum (inclusive) and at the end.
        let mut ends: Vec<usize> = vec![sorted.partition_point(|&x| x < first)];
        let inner_ends = &self.edges[1..self.edges.len().max(2) - 1];
        ends.extend(
            inner_ends
                .iter()
                .map(|&e| sorted.partition_point(|&x| x < e)),
        );
        ends.push(sorted.partition_point(|&x| x <= last));
        ends.push(sorted.len());
        let mut start = 0;
        ends.iter()
            .map(|&end| {
                let count = (end - start) as u64;
                start = end;
                count
            })
            .collect()
    }

    /// PSI of `current` against the reference; `None` if `current` is empty.
    pub fn apply(&self, current: &[f64]) -> Option<Psi> {
        self.psi_from_counts(self.counts(current), current.len())
    }

    /// PSI of a window sorted ascending (faster than [`PsiBins::apply`]); `None` if empty.
    pub fn apply_sorted(&self, current: &[f64]) -> Option<Psi> {
        self.psi_from_counts(self.counts_sorted(current), current.len())
    }

    /// PSI from the window's bin counts and size; `None` for an empty window.
    fn psi_from_counts(&self, counts: Vec<u64>, len: usize) -> Option<Psi> {
        if len == 0 {
            return None;
        }
        let reference_share = self.reference_share();
        let current_share = shares(&counts, len);
        let value = reference_share
            .iter()
            .zip(&current_share)
            .map(|(&r, &c)| psi_term(r, c))
            .sum();
        Some(Psi {
            value,
            edges: self.edges.clone(),
            reference_share,
            current_share,
        })
    }

    /// Bins between the reference minimum and maximum (at least 1).
    fn inner_bins(&self) -> usize {
        (self.edges.len() - 1).max(1)
    }

    /// Bin index: 0 below the minimum, 1..=inner for [e_{i-1}, e_i), last above the maximum.
    fn bin_of(&self, x: f64) -> usize {
        let inner = self.inner_bins();
        if x < self.edges[0] {
            0
        } else if x > self.edges[self.edges.len() - 1] {
            inner + 1
        } else {
            let at_or_below = self.edges.partition_point(|&e| e <= x);
            1 + (at_or_below - 1).min(inner - 1)
        }
    }
}

/// One bin's PSI contribution with both shares floored at [`PSI_EPSILON`].
fn psi_term(reference: f64, current: f64) -> f64 {
    let (r, c) = (reference.max(PSI_EPSILON), current.max(PSI_EPSILON));
    (c - r) * (c / r).ln()
}

/// Counts as shares of `total`.
fn shares(counts: &[u64], total: usize) -> Vec<f64> {
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// Quantile of sorted data, = numpy.quantile(method='linear') including its lerp rounding.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    if virtual_index >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    let lo = virtual_index.floor();
    let gamma = virtual_index - lo;
    let (a, b) = (sorted[lo as usize], sorted[lo as usize + 1]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_abs, load, Sample};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        epsilon: f64,
        cases: Vec<Case>,
    }
    #[derive(Deserialize)]
    struct Case {
        name: String,
        reference: Sample,
        current: Sample,
        bins: usize,
        value: f64,
        edges: Vec<f64>,
        reference_share: Vec<f64>,
        current_share: Vec<f64>,
    }

    /// Edges and shares exactly; the value to 1e-9 absolute (PSI is a sum of O(1) terms).
    #[test]
    fn psi_matches_numpy_reference_formula() {
        let fixture: Fixture = load(include_str!("../../../tests/fixtures/stats/psi.json"));
        assert_eq!(fixture.epsilon, PSI_EPSILON);
        for c in fixture.cases {
            let got = psi(&c.reference.values(), &c.current.values(), c.bins).unwrap();
            assert_eq!(got.edges, c.edges, "{}: edges", c.name);
            assert_eq!(
                got.reference_share, c.reference_share,
                "{}: reference",
                c.name
            );
            assert_eq!(got.current_share, c.current_share, "{}: current", c.name);
            assert_abs(got.value, c.value, 1e-9, &c.name);
            let mut current = c.current.values();
            crate::monitoring::stats::sort_ascending(&mut current);
            let bins = PsiBins::new(&c.reference.values(), c.bins).unwrap();
            assert_eq!(bins.apply_sorted(&current), Some(got), "{}: sorted", c.name);
        }
    }

    #[test]
    fn identical_samples_have_zero_psi() {
        let xs: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(psi(&xs, &xs, 10).unwrap().value, 0.0);
    }

    #[test]
    fn values_outside_the_reference_land_in_the_overflow_bins() {
        let bins = PsiBins::new(&[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert_eq!(bins.edges(), &[1.0, 2.5, 4.0]);
        assert_eq!(bins.counts(&[0.0, 1.0, 2.5, 4.0, 9.0]), vec![1, 1, 2, 1]);
        assert_eq!(bins.reference_counts(), &[0, 2, 2, 0]);
    }

    #[test]
    fn constant_reference_has_one_inner_bin() {
        let bins = PsiBins::new(&[2.0; 5], 10).unwrap();
        assert_eq!(bins.bin_count(), 3);
        assert_eq!(bins.counts(&[1.0, 2.0, 3.0]), vec![1, 1, 1]);
    }

    #[test]
    fn empty_inputs_or_zero_bins_give_none() {
        assert_eq!(psi(&[], &[1.0], 10), None);
        assert_eq!(psi(&[1.0], &[], 10), None);
        assert_eq!(psi(&[1.0], &[1.0], 0), None);
    }

    #[test]
    fn quantile_matches_numpy_linear() {
        let xs = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_sorted(&xs, 0.5), 3.0);
        assert_eq!(quantile_sorted(&xs, 0.25), 1.75);
        assert_eq!(quantile_sorted(&xs, 1.0), 8.0);
    }
}
