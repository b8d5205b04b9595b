//! Reading the training data (a CSV with a header, scikit-learn's bundled
//! format, or a label export as CSV or JSONL) and splitting it.

use std::path::Path;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// A labelled table.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub features: Vec<String>,
    pub labels: Vec<String>,
    pub x: Vec<Vec<f64>>,
    pub y: Vec<usize>,
}

/// Reads a CSV: either a header of feature names plus the label column, or
/// scikit-learn's bundled format with the names given separately.
pub fn read_dataset(
    path: &Path,
    feature_names: Option<&Path>,
    label_column: &str,
) -> anyhow::Result<Dataset> {
    if starts_with_object(path)? {
        return read_jsonl(path, label_column);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = reader.records();
    let header = records
        .next()
        .context("the data file is empty")?
        .context("cannot parse the first line")?;
    let bundled = header.len() >= 4
        && header[0].trim().parse::<usize>().is_ok()
        && header[1].trim().parse::<usize>().is_ok();
    let (features, feature_at, labels, label_at, mut label_names_fixed) = if bundled {
        let n_features: usize = header[1].trim().parse()?;
        let labels: Vec<String> = header
            .iter()
            .skip(2)
            .map(|s| s.trim().to_string())
            .collect();
        let names_path = feature_names.context(
            "this file is in scikit-learn's bundled format (no feature names): pass --feature-names FILE",
        )?;
        let names: Vec<String> = std::fs::read_to_string(names_path)
            .with_context(|| format!("cannot read {}", names_path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        if names.len() != n_features {
            bail!(
                "{} names {} features but the data has {n_features}",
                names_path.display(),
                names.len()
            );
        }
        (names, (0..n_features).collect(), labels, n_features, true)
    } else {
        let names: Vec<String> = header.iter().map(|s| s.trim().to_string()).collect();
        let label_at = names
            .iter()
            .position(|n| n == label_column)
            .with_context(|| format!("no column named {label_column:?} in the header"))?;
        // A label export names its input columns `input.<name>`: those are
        // the features and every other column is left out. Any other file:
        // every column but the label.
        let exported = names.iter().any(|n| n.starts_with(INPUT_PREFIX));
        let (features, feature_at): (Vec<String>, Vec<usize>) = names
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != label_at && (!exported || n.starts_with(INPUT_PREFIX)))
            .map(|(i, n)| (n.trim_start_matches(INPUT_PREFIX).to_string(), i))
            .unzip();
        (features, feature_at, Vec::new(), label_at, false)
    };
    let mut labels = labels;
    let mut x = Vec::new();
    let mut y = Vec::new();
    let width = if bundled {
        features.len() + 1
    } else {
        header.len()
    };
    for (line, record) in records.enumerate() {
        let record = record.with_context(|| format!("line {}", line + 2))?;
        if record.len() != width {
            bail!(
                "line {}: expected {width} fields, found {}",
                line + 2,
                record.len()
            );
        }
        let mut row = Vec::with_capacity(features.len());
        for &i in &feature_at {
            let field = &record[i];
            let v: f64 = field
                .trim()
                .parse()
                .with_context(|| format!("line {}: {:?} is not a number", line + 2, field))?;
            if !v.is_finite() {
                bail!("line {}: {field:?} is not finite", line + 2);
            }
            row.push(v);
        }
        if record[label_at].trim().is_empty() {
            bail!("line {}: the {label_column:?} column is empty", line + 2);
        }
        let raw_label = record[label_at].trim();
        let class = if label_names_fixed {
            let i: usize = raw_label.parse().with_context(|| {
                format!("line {}: class {raw_label:?} is not an index", line + 2)
            })?;
            if i >= labels.len() {
                bail!("line {}: class {i} has no name", line + 2);
            }
            i
        } else {
            match labels.iter().position(|l| l == raw_label) {
                Some(i) => i,
                None => {
                    labels.push(raw_label.to_string());
                    labels.len() - 1
                }
            }
        };
        x.push(row);
        y.push(class);
    }
    if !label_names_fixed {
        // Name order is first appearance; sort it so the same data gives
        // the same model whatever the row order.
        let mut sorted = labels.clone();
        sorted.sort();
        let remap: Vec<usize> = labels
            .iter()
            .map(|l| sorted.iter().position(|s| s == l).unwrap())
            .collect();
        y.iter_mut().for_each(|c| *c = remap[*c]);
        labels = sorted;
        label_names_fixed = true;
    }
    debug_assert!(label_names_fixed);
    if labels.len() < 2 {
        bail!("the data has fewer than two labels");
    }
    if x.len() < 20 {
        bail!("the data has only {} rows; at least 20 are needed", x.len());
    }
    Ok(Dataset {
        features,
        labels,
        x,
        y,
    })
}

/// The prefix of input columns in a label export's CSV.
const INPUT_PREFIX: &str = crate::export::encode::INPUT_PREFIX;

/// Whether the file's first non-blank character opens a JSON object (a
/// JSONL label export).
fn starts_with_object(path: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .read(&mut head)?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}

/// A JSONL label export: each line's `input` object holds the features
/// (every line the same fields), `label_column` the label.
fn read_jsonl(path: &Path, label_column: &str) -> anyhow::Result<Dataset> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut features: Option<Vec<String>> = None;
    let mut names: Vec<String> = Vec::new();
    let mut x = Vec::new();
    let mut raw_labels = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not a JSON object", i + 1))?;
        let input = row
            .get("input")
            .and_then(|v| v.as_object())
            .with_context(|| format!("line {}: no \"input\" object", i + 1))?;
        let fields = features.get_or_insert_with(|| input.keys().cloned().collect());
        if input.len() != fields.len() {
            bail!(
                "line {}: {} input fields, the first line has {}",
                i + 1,
                input.len(),
                fields.len()
            );
        }
        let mut values = Vec::with_capacity(fields.len());
        for name in fields.iter() {
            let v = input
                .get(name)
                .and_then(|v| v.as_f64())
                .filter(|v| v.is_finite())
                .with_context(|| {
                    format!(
                        "line {}: input {name:?} is missing or not a finite number",
                        i + 1
                    )
                })?;
            values.push(v);
        }
        let label = row
            .get(label_column)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .with_context(|| format!("line {}: no {label_column:?} label", i + 1))?;
        x.push(values);
        raw_labels.push(label.to_string());
    }
    let features = features.context("the data file has no rows")?;
    names.extend(raw_labels.iter().cloned());
    names.sort();
    names.dedup();
    let y = raw_labels
        .iter()
        .map(|l| names.binary_search(l).expect("every label is named"))
        .collect();
    if names.len() < 2 {
        bail!("the data has fewer than two labels");
    }
    if x.len() < 20 {
        bail!("the data has only {} rows; at least 20 are needed", x.len());
    }
    Ok(Dataset {
        features,
        labels: names,
        x,
        y,
    })
}

/// Stratified split into train / validation / test indices (64/16/20).
pub(super) fn split(
    y: &[usize],
    classes: usize,
    rng: &mut StdRng,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..classes {
        let mut members: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        members.shuffle(rng);
        let n = members.len();
        let n_test = (n as f64 * 0.2).round() as usize;
        let n_val = ((n - n_test) as f64 * 0.2).round() as usize;
        test.extend_from_slice(&members[..n_test]);
        val.extend_from_slice(&members[n_test..n_test + n_val]);
        train.extend_from_slice(&members[n_test + n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    test.sort_unstable();
    (train, val, test)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn split_is_stratified_and_disjoint() {
        let y: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let (a, b, c) = split(&y, 2, &mut StdRng::seed_from_u64(1));
        assert_eq!(a.len() + b.len() + c.len(), 100);
        let mut all: Vec<usize> = a.iter().chain(&b).chain(&c).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100);
        assert_eq!(c.iter().filter(|&&i| y[i] == 1).count(), 5);
    }
}
