//! `verdict train`: an MLP with candle-nn, seeded and reproducible, with
//! class weights for imbalance, early stopping on a validation split and an
//! evaluation on a held-out test split. Writes a new version directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Module, Optimizer, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use super::card::{
    Architecture, FeatureSpec, Histogram, LabelMetrics, Metrics, ModelCard, OutputReference,
    TrainingInfo,
};
use super::{Mlp, CARD_FILE, WEIGHTS_FILE};

const REFERENCE_BINS: usize = 20;

/// What to train and how (the options of `verdict train`).
#[derive(Debug, Clone, clap::Args)]
pub struct TrainOptions {
    #[arg(long)]
    pub task: String,
    /// CSV with a header of feature names and a label column;
    /// scikit-learn's bundled format (first line `rows,features,label0,…`)
    /// with --feature-names; a label export (CSV or JSONL); or the name of
    /// one of the task's dataset snapshots.
    #[arg(long)]
    pub data: PathBuf,
    /// One feature name per line, for data files without a header.
    #[arg(long)]
    pub feature_names: Option<PathBuf>,
    /// The label column of a CSV with a header.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Where version directories go (from the configuration).
    #[arg(skip)]
    pub models_dir: PathBuf,
    /// Version name.
    #[arg(long, default_value_t = default_version())]
    pub version: String,
    /// Hidden layer sizes.
    #[arg(long, value_delimiter = ',', default_value = "64,64")]
    pub hidden: Vec<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 500)]
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long, default_value_t = 30)]
    pub patience: usize,
    /// Every feature is non-negative: the API refuses values below 0.
    #[arg(long)]
    pub nonnegative: bool,
    /// The dataset snapshot `data` is (recorded in the model card).
    #[arg(skip)]
    pub snapshot: Option<String>,
}

/// `v<UTC date>-<time>`, e.g. `v20261128-140512`.
pub fn default_version() -> String {
    chrono::Utc::now().format("v%Y%m%d-%H%M%S").to_string()
}

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
fn split(y: &[usize], classes: usize, rng: &mut StdRng) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
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

fn tensors(
    data: &Dataset,
    idx: &[usize],
    specs: &[FeatureSpec],
) -> candle_core::Result<(Tensor, Tensor)> {
    let width = specs.len();
    let mut flat = Vec::with_capacity(idx.len() * width);
    for &i in idx {
        flat.extend(
            data.x[i]
                .iter()
                .zip(specs)
                .map(|(x, f)| ((x - f.mean) / f.std) as f32),
        );
    }
    let xs = Tensor::from_vec(flat, (idx.len(), width), &Device::Cpu)?;
    let ys = Tensor::from_vec(
        idx.iter().map(|&i| data.y[i] as u32).collect::<Vec<_>>(),
        idx.len(),
        &Device::Cpu,
    )?;
    Ok((xs, ys))
}

/// Class-weighted mean negative log-likelihood.
fn weighted_loss(
    logits: &Tensor,
    ys: &Tensor,
    class_weights: &Tensor,
) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_p.gather(&ys.unsqueeze(1)?, 1)?.squeeze(1)?;
    let w = class_weights.index_select(ys, 0)?;
    (picked * &w)?.sum_all()?.neg()? / w.sum_all()?.to_scalar::<f32>()? as f64
}

/// Seeded initialisation (uniform in ±1/√fan_in, as PyTorch's Linear):
/// candle's CPU generator cannot be seeded.
fn seeded_init(varmap: &VarMap, rng: &mut StdRng) -> candle_core::Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let fan_in = if name.ends_with(".weight") {
            dims[1]
        } else {
            dims[0]
        };
        let fan_in = if name.ends_with(".bias") {
            // Bias of a layer: its fan-in is the weight's second dimension.
            let weight = &data[&name.replace(".bias", ".weight")];
            weight.dims()[1]
        } else {
            fan_in
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

fn snapshot(varmap: &VarMap) -> candle_core::Result<Vec<(String, Tensor)>> {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect()
}

fn restore(varmap: &mut VarMap, saved: &[(String, Tensor)]) -> candle_core::Result<()> {
    for (name, t) in saved {
        varmap.set_one(name, t)?;
    }
    Ok(())
}

/// Trains and writes `models/<task>/<version>/`. Returns the card.
pub fn train(opts: &TrainOptions, progress: &mut dyn FnMut(&str)) -> anyhow::Result<ModelCard> {
    let out_dir = opts.models_dir.join(&opts.task).join(&opts.version);
    if out_dir.exists() {
        bail!(
            "{} already exists: choose another --version",
            out_dir.display()
        );
    }
    let bytes = std::fs::read(&opts.data)
        .with_context(|| format!("cannot read {}", opts.data.display()))?;
    let data_sha256 = hex::encode(Sha256::digest(&bytes));
    let data = read_dataset(
        &opts.data,
        opts.feature_names.as_deref(),
        &opts.label_column,
    )?;
    let classes = data.labels.len();
    progress(&format!(
        "read {} rows, {} features, labels {:?}",
        data.x.len(),
        data.features.len(),
        data.labels
    ));

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let (train_idx, val_idx, test_idx) = split(&data.y, classes, &mut rng);

    // Normalisation and reference distributions from the training split only.
    let specs: Vec<FeatureSpec> = data
        .features
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let column: Vec<f64> = train_idx.iter().map(|&i| data.x[i][j]).collect();
            let mean = column.iter().sum::<f64>() / column.len() as f64;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64;
            let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
            FeatureSpec {
                name: name.clone(),
                mean,
                std,
                valid_min: opts.nonnegative.then_some(0.0),
                valid_max: None,
                reference: Histogram::of(&column, REFERENCE_BINS),
            }
        })
        .collect();

    let mut counts = vec![0usize; classes];
    train_idx.iter().for_each(|&i| counts[data.y[i]] += 1);
    if counts.contains(&0) {
        bail!("a label has no training rows; more data is needed");
    }
    let weights: Vec<f32> = counts
        .iter()
        .map(|&c| train_idx.len() as f32 / (classes as f32 * c as f32))
        .collect();
    let class_weights = Tensor::new(weights.as_slice(), &Device::Cpu)?;

    let arch = Architecture {
        kind: "mlp".into(),
        inputs: specs.len(),
        hidden: opts.hidden.clone(),
        outputs: classes,
        activation: "relu".into(),
    };
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Mlp::new(&arch, vb)?;
    seeded_init(&varmap, &mut rng)?;
    let mut optimizer = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: opts.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;

    let (val_x, val_y) = tensors(&data, &val_idx, &specs)?;
    let mut best = (f32::INFINITY, 0usize, snapshot(&varmap)?);
    let mut order = train_idx.clone();
    let mut epochs_run = 0;
    for epoch in 1..=opts.max_epochs {
        epochs_run = epoch;
        order.shuffle(&mut rng);
        let mut train_loss = 0.0f32;
        for chunk in order.chunks(opts.batch_size.max(1)) {
            let (xs, ys) = tensors(&data, chunk, &specs)?;
            let loss = weighted_loss(&model.forward(&xs)?, &ys, &class_weights)?;
            optimizer.backward_step(&loss)?;
            train_loss += loss.to_scalar::<f32>()? * chunk.len() as f32;
        }
        train_loss /= order.len() as f32;
        let val_logits = model.forward(&val_x)?;
        let val_loss = weighted_loss(&val_logits, &val_y, &class_weights)?.to_scalar::<f32>()?;
        if val_loss < best.0 - 1e-5 {
            best = (val_loss, epoch, snapshot(&varmap)?);
        }
        if epoch % 10 == 0 || epoch == 1 {
            let acc = accuracy(&val_logits, &val_y)?;
            progress(&format!(
                "epoch {epoch:>4}  train loss {train_loss:.4}  validation loss {val_loss:.4}  validation accuracy {acc:.3}"
            ));
        }
        if epoch - best.1 >= opts.patience {
            progress(&format!(
                "early stop at epoch {epoch}: no improvement since epoch {}",
                best.1
            ));
            break;
        }
    }
    restore(&mut varmap, &best.2)?;

    // Held-out evaluation.
    let (test_x, _) = tensors(&data, &test_idx, &specs)?;
    let probs = candle_nn::ops::softmax_last_dim(&model.forward(&test_x)?)?.to_vec2::<f32>()?;
    let truth: Vec<usize> = test_idx.iter().map(|&i| data.y[i]).collect();
    let metrics = evaluate(&probs, &truth, &data.labels);
    progress(&format!(
        "held-out test ({} rows): accuracy {:.4}, ROC AUC {:.4}, log loss {:.4}",
        truth.len(),
        metrics.accuracy,
        metrics.roc_auc,
        metrics.log_loss
    ));

    let confidences: Vec<f64> = probs
        .iter()
        .map(|p| p.iter().cloned().fold(0.0f32, f32::max) as f64)
        .collect();
    let mut label_mix = BTreeMap::new();
    for p in &probs {
        *label_mix
            .entry(data.labels[argmax(p)].clone())
            .or_insert(0.0) += 1.0 / probs.len() as f64;
    }
    let card = ModelCard {
        task: opts.task.clone(),
        version: opts.version.clone(),
        created_at: crate::domain::rfc3339(&crate::domain::now()),
        architecture: arch,
        features: specs,
        labels: data.labels.clone(),
        training: TrainingInfo {
            data_file: opts
                .data
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            data_sha256,
            snapshot: opts.snapshot.clone(),
            rows: data.x.len(),
            train_rows: train_idx.len(),
            validation_rows: val_idx.len(),
            test_rows: test_idx.len(),
            seed: opts.seed,
            learning_rate: opts.learning_rate,
            batch_size: opts.batch_size,
            epochs_run,
            best_epoch: best.1,
            class_weights: data
                .labels
                .iter()
                .cloned()
                .zip(weights.iter().map(|&w| w as f64))
                .collect(),
        },
        metrics,
        output_reference: OutputReference {
            confidence: Histogram::over(&confidences, 0.0, 1.0, REFERENCE_BINS),
            label_mix,
        },
    };
    card.check().map_err(anyhow::Error::msg)?;

    // Write to a temporary directory, then rename: a version directory is
    // complete or absent.
    let parent = opts.models_dir.join(&opts.task);
    std::fs::create_dir_all(&parent)?;
    let tmp = parent.join(format!(".{}.partial", opts.version));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    varmap.save(tmp.join(WEIGHTS_FILE))?;
    std::fs::write(
        tmp.join(CARD_FILE),
        serde_json::to_string_pretty(&card)? + "\n",
    )?;
    std::fs::rename(&tmp, &out_dir)?;
    progress(&format!("wrote {}", out_dir.display()));
    Ok(card)
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

fn accuracy(logits: &Tensor, ys: &Tensor) -> candle_core::Result<f32> {
    let predicted = logits.argmax(D::Minus1)?;
    let correct = predicted
        .eq(ys)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(correct / ys.dims1()? as f32)
}

/// Accuracy, log loss, one-vs-rest ROC AUC, per-label precision/recall/F1
/// and the confusion matrix.
pub fn evaluate(probs: &[Vec<f32>], truth: &[usize], labels: &[String]) -> Metrics {
    let k = labels.len();
    let n = truth.len().max(1) as f64;
    let mut confusion = vec![vec![0u64; k]; k];
    let mut log_loss = 0.0;
    for (p, &t) in probs.iter().zip(truth) {
        confusion[t][argmax(p)] += 1;
        log_loss -= (p[t] as f64).clamp(1e-12, 1.0).ln();
    }
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let mut per_label = BTreeMap::new();
    let mut auc_sum = 0.0;
    for (c, label) in labels.iter().enumerate() {
        let tp = confusion[c][c] as f64;
        let predicted: u64 = (0..k).map(|t| confusion[t][c]).sum();
        let support: u64 = confusion[c].iter().sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_label.insert(
            label.clone(),
            LabelMetrics {
                precision,
                recall,
                f1,
                support,
            },
        );
        let scores: Vec<(f64, bool)> = probs
            .iter()
            .zip(truth)
            .map(|(p, &t)| (p[c] as f64, t == c))
            .collect();
        auc_sum += roc_auc(&scores);
    }
    Metrics {
        accuracy: correct as f64 / n,
        log_loss: log_loss / n,
        roc_auc: auc_sum / k as f64,
        per_label,
        confusion,
    }
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half.
pub fn roc_auc(scores: &[(f64, bool)]) -> f64 {
    let positives = scores.iter().filter(|s| s.1).count() as f64;
    let negatives = scores.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let mut sorted: Vec<(f64, bool)> = scores.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + j + 1) as f64 / 2.0; // ranks are 1-based
        rank_sum += mean_rank * sorted[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_zero() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(roc_auc(&perfect), 1.0);
        let reversed = [(0.9, false), (0.8, false), (0.2, true), (0.1, true)];
        assert_eq!(roc_auc(&reversed), 0.0);
        let ties = [(0.5, false), (0.5, true)];
        assert_eq!(roc_auc(&ties), 0.5);
    }

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
