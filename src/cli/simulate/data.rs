//! What the simulator sends: rows of the demo data resampled with a little
//! jitter, and the drift a scenario injects (`--shift`, `--flip`).
//!
//! Everything an item is follows from the seed and its number alone, so a
//! reviewer who reads an item id off the review page knows the item's true
//! label without asking anyone: no table of what was sent is kept.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// The demo data: rows, their labels and each feature's spread.
pub struct DemoData {
    pub features: Vec<String>,
    pub labels: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    /// The class of each row (an index into `labels`).
    pub classes: Vec<usize>,
    /// Population standard deviation of each feature.
    pub std: Vec<f64>,
    /// Features no row has below zero: kept at zero or above.
    pub nonnegative: Vec<bool>,
}

impl DemoData {
    /// Reads the data with the repository's loader (`ml::train`).
    pub fn read(data: &Path, feature_names: &Path) -> anyhow::Result<DemoData> {
        let set = verdict::ml::train::read_dataset(data, Some(feature_names), "label")
            .with_context(|| format!("cannot read the demo data {}", data.display()))?;
        Ok(DemoData::new(set.features, set.labels, set.x, set.y))
    }

    pub fn new(
        features: Vec<String>,
        labels: Vec<String>,
        rows: Vec<Vec<f64>>,
        classes: Vec<usize>,
    ) -> DemoData {
        let n = rows.len().max(1) as f64;
        let std = (0..features.len())
            .map(|j| {
                let mean = rows.iter().map(|r| r[j]).sum::<f64>() / n;
                (rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n).sqrt()
            })
            .collect();
        let nonnegative = (0..features.len())
            .map(|j| rows.iter().all(|r| r[j] >= 0.0))
            .collect();
        DemoData {
            features,
            labels,
            rows,
            classes,
            std,
            nonnegative,
        }
    }

    fn feature(&self, name: &str) -> anyhow::Result<usize> {
        self.features
            .iter()
            .position(|f| f == name)
            .with_context(|| {
                format!(
                    "no feature named {name:?} in the demo data; there are: {}",
                    self.features.join(", ")
                )
            })
    }
}

/// `--shift FEATURE=SIGMAS@ITEM`: from item ITEM on, FEATURE is moved by
/// SIGMAS of its standard deviation in the demo data.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    pub feature: String,
    pub sigmas: f64,
    pub from: u64,
}

impl FromStr for Shift {
    type Err = String;

    fn from_str(s: &str) -> Result<Shift, String> {
        let usage = || format!("{s:?} is not FEATURE=SIGMAS@ITEM (e.g. mean_radius=1@1500)");
        let (feature, rest) = s.split_once('=').ok_or_else(usage)?;
        let (sigmas, from) = split_at_item(rest).map_err(|_| usage())?;
        let sigmas: f64 = sigmas.trim().parse().map_err(|_| usage())?;
        if feature.trim().is_empty() || !sigmas.is_finite() {
            return Err(usage());
        }
        Ok(Shift {
            feature: feature.trim().to_string(),
            sigmas,
            from,
        })
    }
}

/// `--flip SHARE@ITEM`: from item ITEM on, the true label of a fixed share
/// of the demo rows is another label.
#[derive(Debug, Clone, PartialEq)]
pub struct Flip {
    pub share: f64,
    pub from: u64,
}

impl FromStr for Flip {
    type Err = String;

    fn from_str(s: &str) -> Result<Flip, String> {
        let usage =
            || format!("{s:?} is not SHARE@ITEM with SHARE between 0 and 1 (e.g. 0.3@2000)");
        let (share, from) = split_at_item(s).map_err(|_| usage())?;
        let share: f64 = share.trim().parse().map_err(|_| usage())?;
        if !(0.0..=1.0).contains(&share) {
            return Err(usage());
        }
        Ok(Flip { share, from })
    }
}

/// `VALUE@ITEM` into its parts; without `@ITEM` the drift starts at item 0.
fn split_at_item(s: &str) -> Result<(&str, u64), ()> {
    match s.split_once('@') {
        Some((value, item)) => Ok((value, item.trim().parse().map_err(|_| ())?)),
        None => Ok((s, 0)),
    }
}

/// One item as the simulator sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub number: u64,
    /// The demo row it was drawn from.
    pub row: usize,
    pub input: Map<String, Value>,
    /// What a careful reviewer answers: the row's label, flipped when the
    /// row is in the `--flip` sub-population and the flip has begun.
    pub true_label: usize,
}

/// The demo data with a seed, jitter and drift: item `n` is the same
/// whenever it is asked for.
pub struct Scenario {
    pub data: DemoData,
    pub seed: u64,
    /// Jitter as a share of each feature's standard deviation (uniform,
    /// ±jitter·σ).
    pub jitter: f64,
    /// Shifts by feature index.
    shifts: Vec<(usize, f64, u64)>,
    flip: Option<(Vec<bool>, u64)>,
}

impl Scenario {
    pub fn new(
        data: DemoData,
        seed: u64,
        jitter: f64,
        shifts: &[Shift],
        flip: Option<&Flip>,
    ) -> anyhow::Result<Scenario> {
        if !(0.0..=1.0).contains(&jitter) {
            bail!("--jitter is a share of each feature's standard deviation: between 0 and 1");
        }
        let shifts = shifts
            .iter()
            .map(|s| Ok((data.feature(&s.feature)?, s.sigmas, s.from)))
            .collect::<anyhow::Result<_>>()?;
        let flip = flip.map(|f| (flipped_rows(data.rows.len(), f.share), f.from));
        Ok(Scenario {
            data,
            seed,
            jitter,
            shifts,
            flip,
        })
    }

    /// Item number `n`: a row drawn at random (seeded by the seed and `n`),
    /// each feature moved by up to ±jitter·σ and by the shifts begun, kept
    /// non-negative where the data is, rounded to 5 significant digits.
    pub fn item(&self, n: u64) -> Item {
        let data = &self.data;
        let mut stream = Stream::new(self.seed, n);
        let row = (stream.next() % data.rows.len() as u64) as usize;
        let mut input = Map::with_capacity(data.features.len());
        for (j, name) in data.features.iter().enumerate() {
            let noise = (stream.unit() * 2.0 - 1.0) * self.jitter * data.std[j];
            let shift: f64 = self
                .shifts
                .iter()
                .filter(|&&(f, _, from)| f == j && n >= from)
                .map(|&(_, sigmas, _)| sigmas * data.std[j])
                .sum();
            let mut value = round_significant(data.rows[row][j] + noise + shift, 5);
            if data.nonnegative[j] && value < 0.0 {
                value = 0.0;
            }
            input.insert(name.clone(), Value::from(value));
        }
        Item {
            number: n,
            row,
            input,
            true_label: self.true_label(n, row),
        }
    }

    fn true_label(&self, n: u64, row: usize) -> usize {
        let class = self.data.classes[row];
        match &self.flip {
            Some((rows, from)) if n >= *from && rows[row] => (class + 1) % self.data.labels.len(),
            _ => class,
        }
    }

    /// The true label of item `n` by name.
    pub fn true_label_of(&self, n: u64) -> &str {
        let mut stream = Stream::new(self.seed, n);
        let row = (stream.next() % self.data.rows.len() as u64) as usize;
        &self.data.labels[self.true_label(n, row)]
    }
}

/// The rows a flip of `share` changes: the `round(share × rows)` rows whose
/// index hashes lowest. Independent of the seed, so the same rows flip in
/// every run, and a larger share contains a smaller one.
pub fn flipped_rows(rows: usize, share: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by_key(|&i| (mix(FLIP_SALT ^ i as u64), i));
    let take = (share * rows as f64).round() as usize;
    let mut flipped = vec![false; rows];
    for &i in order.iter().take(take) {
        flipped[i] = true;
    }
    flipped
}

const FLIP_SALT: u64 = 0x666c_6970_2d72_6f77; // "flip-row"

/// SplitMix64's finaliser: a stable 64-bit hash (the same on every
/// platform and in every version, unlike `rand`'s generators).
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) from a hash.
pub fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64: the random numbers of one item.
struct Stream(u64);

impl Stream {
    fn new(seed: u64, n: u64) -> Stream {
        Stream(mix(seed) ^ mix(n.wrapping_add(0x5EED)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    fn unit(&mut self) -> f64 {
        unit(self.next())
    }
}

/// `v` rounded to `digits` significant digits (readable on the review page).
pub fn round_significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let places = digits - 1 - v.abs().log10().floor() as i32;
    if places >= 0 {
        let scale = 10f64.powi(places);
        (v * scale).round() / scale
    } else {
        let scale = 10f64.powi(-places);
        (v / scale).round() * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> DemoData {
        // Two features, four rows; `b` goes negative, `a` does not.
        DemoData::new(
            vec!["a".into(), "b".into()],
            vec!["yes".into(), "no".into()],
            vec![
                vec![1.0, -1.0],
                vec![2.0, 1.0],
                vec![3.0, -1.0],
                vec![4.0, 1.0],
            ],
            vec![0, 1, 0, 1],
        )
    }

    #[test]
    fn spread_and_sign_come_from_the_data() {
        let d = data();
        assert!((d.std[0] - 1.25f64.sqrt()).abs() < 1e-12);
        assert!((d.std[1] - 1.0).abs() < 1e-12);
        assert_eq!(d.nonnegative, [true, false]);
    }

    #[test]
    fn shift_and_flip_options_parse_and_refuse_nonsense() {
        assert_eq!(
            "mean_radius=1@1500".parse::<Shift>(),
            Ok(Shift {
                feature: "mean_radius".into(),
                sigmas: 1.0,
                from: 1500
            })
        );
        assert_eq!(
            "a=-0.5".parse::<Shift>().unwrap(),
            Shift {
                feature: "a".into(),
                sigmas: -0.5,
                from: 0
            }
        );
        for bad in ["mean_radius", "=1@2", "a=x@2", "a=1@-3", "a=NaN@1", "a=1@"] {
            assert!(bad.parse::<Shift>().is_err(), "{bad}");
        }
        assert_eq!(
            "0.3@2000".parse::<Flip>(),
            Ok(Flip {
                share: 0.3,
                from: 2000
            })
        );
        for bad in ["1.5@1", "-0.1@1", "x@1", "0.3@x"] {
            assert!(bad.parse::<Flip>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unknown_shift_feature_is_named_with_the_known_ones() {
        let shift: Shift = "radius=1@0".parse().unwrap();
        let e = Scenario::new(data(), 1, 0.01, &[shift], None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"radius\"") && e.contains("a, b"), "{e}");
    }

    #[test]
    fn items_are_the_same_for_the_same_seed_and_differ_between_seeds() {
        let one = Scenario::new(data(), 1, 0.01, &[], None).unwrap();
        let again = Scenario::new(data(), 1, 0.01, &[], None).unwrap();
        let other = Scenario::new(data(), 2, 0.01, &[], None).unwrap();
        let items = |s: &Scenario| (0..50).map(|n| s.item(n)).collect::<Vec<_>>();
        assert_eq!(items(&one), items(&again));
        assert_ne!(items(&one), items(&other));
        // Every row is drawn at some point.
        let mut seen = [false; 4];
        items(&one).iter().for_each(|i| seen[i.row] = true);
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn jitter_stays_within_its_share_of_the_spread_and_above_zero_where_the_data_is() {
        let s = Scenario::new(data(), 7, 0.01, &[], None).unwrap();
        for n in 0..500 {
            let item = s.item(n);
            for (j, name) in s.data.features.iter().enumerate() {
                let v = item.input[name].as_f64().unwrap();
                let base = s.data.rows[item.row][j];
                assert!(
                    (v - base).abs() <= 0.01 * s.data.std[j] + 1e-4,
                    "{name}: {v} from {base}"
                );
            }
            assert_eq!(s.item(n).true_label, s.data.classes[item.row]);
        }
        // A shift of −10σ would take `a` below zero: it stops at zero,
        // while `b` (negative in the data) may go below.
        let shifts = ["a=-10@0".parse().unwrap(), "b=-10@0".parse().unwrap()];
        let s = Scenario::new(data(), 7, 0.01, &shifts, None).unwrap();
        let item = s.item(3);
        assert_eq!(item.input["a"].as_f64(), Some(0.0));
        assert!(item.input["b"].as_f64().unwrap() < -9.0);
    }

    #[test]
    fn a_shift_moves_its_feature_by_sigmas_from_its_item_on() {
        let plain = Scenario::new(data(), 3, 0.0, &[], None).unwrap();
        let shift = "a=2@10".parse().unwrap();
        let shifted = Scenario::new(data(), 3, 0.0, &[shift], None).unwrap();
        for n in 0..20 {
            let (p, s) = (plain.item(n), shifted.item(n));
            assert_eq!(p.row, s.row, "the same rows are drawn");
            assert_eq!(p.input["b"], s.input["b"]);
            let moved = s.input["a"].as_f64().unwrap() - p.input["a"].as_f64().unwrap();
            let expected = if n >= 10 { 2.0 * 1.25f64.sqrt() } else { 0.0 };
            assert!((moved - expected).abs() < 1e-3, "item {n}: {moved}");
        }
    }

    #[test]
    fn the_flipped_sub_population_is_a_fixed_share_chosen_by_row() {
        let a = flipped_rows(569, 0.3);
        assert_eq!(a, flipped_rows(569, 0.3), "the same rows every time");
        assert_eq!(a.iter().filter(|&&f| f).count(), 171); // round(0.3 × 569)
        let smaller = flipped_rows(569, 0.1);
        assert!(
            (0..569).all(|i| !smaller[i] || a[i]),
            "a larger share contains a smaller one"
        );
        assert!(flipped_rows(569, 0.0).iter().all(|&f| !f));
        assert!(flipped_rows(569, 1.0).iter().all(|&f| f));
        // Spread over the rows, not a block at the start.
        assert!(a[..285].iter().any(|&f| f) && a[285..].iter().any(|&f| f));
    }

    #[test]
    fn a_flip_changes_the_true_label_of_its_rows_from_its_item_on() {
        let flip = Flip {
            share: 0.5,
            from: 100,
        };
        let s = Scenario::new(data(), 5, 0.01, &[], Some(&flip)).unwrap();
        let rows = flipped_rows(4, 0.5);
        for n in 0..300 {
            let item = s.item(n);
            let class = s.data.classes[item.row];
            let expected = if n >= 100 && rows[item.row] {
                1 - class
            } else {
                class
            };
            assert_eq!(item.true_label, expected, "item {n}");
            assert_eq!(s.true_label_of(n), s.data.labels[expected]);
        }
    }

    #[test]
    fn values_are_rounded_to_five_significant_digits() {
        assert_eq!(round_significant(17.993_726, 5), 17.994);
        assert_eq!(round_significant(0.006_399_49, 5), 0.006_399_5);
        assert_eq!(round_significant(254_321.7, 5), 254_320.0);
        assert_eq!(round_significant(-1.234_567, 5), -1.2346);
        assert_eq!(round_significant(0.0, 5), 0.0);
    }

    #[test]
    fn the_stable_hash_does_not_change() {
        // SplitMix64's published first output for state 0.
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
        assert!((0..1000)
            .map(|i| unit(mix(i)))
            .all(|u| (0.0..1.0).contains(&u)));
    }
}
