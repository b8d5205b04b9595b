//! The training loop: normalisation, class and sample weights, seeded
//! initialisation, AdamW with early stopping on the validation loss.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Module, Optimizer, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::evaluate::accuracy;
use super::{Dataset, Progress, TrainOptions, REFERENCE_BINS};
use crate::ml::card::{Architecture, FeatureSpec, Histogram};
use crate::ml::Mlp;

pub(super) fn tensors(
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

/// The sample weights of rows `idx`, as a tensor.
fn row_weights(sample_weights: &[f32], idx: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(
        idx.iter().map(|&i| sample_weights[i]).collect::<Vec<_>>(),
        idx.len(),
        &Device::Cpu,
    )
}

/// Weighted mean negative log-likelihood: each row weighs its class weight
/// times its sample weight.
fn weighted_loss(
    logits: &Tensor,
    ys: &Tensor,
    class_weights: &Tensor,
    row_weights: &Tensor,
) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_p.gather(&ys.unsqueeze(1)?, 1)?.squeeze(1)?;
    let w = (class_weights.index_select(ys, 0)? * row_weights)?;
    let total = w.sum_all()?.to_scalar::<f32>()?.max(f32::MIN_POSITIVE);
    (picked * &w)?.sum_all()?.neg()? / total as f64
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

/// Normalisation and reference distributions from the training split only.
pub(super) fn feature_specs(
    data: &Dataset,
    train_idx: &[usize],
    nonnegative: bool,
) -> Vec<FeatureSpec> {
    data.features
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
                valid_min: nonnegative.then_some(0.0),
                valid_max: None,
                reference: Histogram::of(&column, REFERENCE_BINS),
            }
        })
        .collect()
}

/// Each class weighted by the inverse of its share of the training split,
/// the rows counted at their sample weight (all 1: the plain shares), so
/// that every class carries the same total weight in the loss.
pub(super) fn class_weights(
    y: &[usize],
    train_idx: &[usize],
    classes: usize,
    sample_weights: &[f32],
) -> anyhow::Result<Vec<f32>> {
    let mut counts = vec![0f32; classes];
    train_idx
        .iter()
        .for_each(|&i| counts[y[i]] += sample_weights[i]);
    if counts.iter().any(|&c| c <= 0.0) {
        anyhow::bail!("a label has no training rows (of weight above 0); more data is needed");
    }
    let total: f32 = counts.iter().sum();
    Ok(counts
        .iter()
        .map(|&c| total / (classes as f32 * c))
        .collect())
}

/// What the loop is fitted to: the data, its normalisation, the training
/// and validation rows, the class weights and each row's sample weight.
pub(super) struct Problem<'a> {
    pub data: &'a Dataset,
    pub specs: &'a [FeatureSpec],
    pub train_idx: &'a [usize],
    pub val_idx: &'a [usize],
    pub weights: &'a [f32],
    pub sample_weights: &'a [f32],
}

/// A fitted model, restored to its best epoch.
pub(super) struct Fitted {
    pub varmap: VarMap,
    pub model: Mlp,
    pub epochs_run: usize,
    pub best_epoch: usize,
}

/// Builds the model, initialises it from `rng`, and trains it until the
/// validation loss stops improving; keeps the weights of the best epoch.
pub(super) fn fit(
    opts: &TrainOptions,
    arch: &Architecture,
    problem: &Problem,
    rng: &mut StdRng,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<Fitted> {
    let Problem {
        data,
        specs,
        train_idx,
        val_idx,
        weights,
        sample_weights,
    } = *problem;
    let class_weights = Tensor::new(weights, &Device::Cpu)?;
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Mlp::new(arch, vb)?;
    seeded_init(&varmap, rng)?;
    let mut optimizer = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: opts.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;

    let (val_x, val_y) = tensors(data, val_idx, specs)?;
    let val_w = row_weights(sample_weights, val_idx)?;
    let mut best = (f32::INFINITY, 0usize, snapshot(&varmap)?);
    let mut order = train_idx.to_vec();
    let mut epochs_run = 0;
    for epoch in 1..=opts.max_epochs {
        epochs_run = epoch;
        order.shuffle(rng);
        let mut train_loss = 0.0f32;
        for chunk in order.chunks(opts.batch_size.max(1)) {
            let (xs, ys) = tensors(data, chunk, specs)?;
            let w = row_weights(sample_weights, chunk)?;
            let loss = weighted_loss(&model.forward(&xs)?, &ys, &class_weights, &w)?;
            optimizer.backward_step(&loss)?;
            train_loss += loss.to_scalar::<f32>()? * chunk.len() as f32;
        }
        train_loss /= order.len() as f32;
        let val_logits = model.forward(&val_x)?;
        let val_loss =
            weighted_loss(&val_logits, &val_y, &class_weights, &val_w)?.to_scalar::<f32>()?;
        if val_loss < best.0 - 1e-5 {
            best = (val_loss, epoch, snapshot(&varmap)?);
        }
        progress(Progress::Epoch {
            epoch,
            max_epochs: opts.max_epochs,
            validation_loss: val_loss,
        });
        if epoch % 10 == 0 || epoch == 1 {
            let acc = accuracy(&val_logits, &val_y)?;
            progress(Progress::Line(&format!(
                "epoch {epoch:>4}  train loss {train_loss:.4}  validation loss {val_loss:.4}  validation accuracy {acc:.3}"
            )));
        }
        if epoch - best.1 >= opts.patience {
            progress(Progress::Line(&format!(
                "early stop at epoch {epoch}: no improvement since epoch {}",
                best.1
            )));
            break;
        }
    }
    progress(Progress::Fitted);
    restore(&mut varmap, &best.2)?;
    Ok(Fitted {
        varmap,
        model,
        epochs_run,
        best_epoch: best.1,
    })
}
