//! Models with Candle: a version is `models/<task>/<version>/` holding
//! `model.safetensors` and `card.json`. Loaded once, shared with `Arc`.

pub mod card;
pub mod train;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

pub use card::ModelCard;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CARD_FILE: &str = "card.json";

/// A multi-layer perceptron: `hidden0 … hiddenN` with ReLU, then `output`.
/// Layer names are the tensor names in the safetensors file.
pub struct Mlp {
    hidden: Vec<Linear>,
    output: Linear,
}

impl Mlp {
    pub fn new(arch: &card::Architecture, vb: VarBuilder) -> candle_core::Result<Mlp> {
        let mut hidden = Vec::with_capacity(arch.hidden.len());
        let mut width = arch.inputs;
        for (i, &size) in arch.hidden.iter().enumerate() {
            hidden.push(candle_nn::linear(width, size, vb.pp(format!("hidden{i}")))?);
            width = size;
        }
        let output = candle_nn::linear(width, arch.outputs, vb.pp("output"))?;
        Ok(Mlp { hidden, output })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mut xs = xs.clone();
        for layer in &self.hidden {
            xs = layer.forward(&xs)?.relu()?;
        }
        self.output.forward(&xs)
    }
}

/// One model version ready to score.
pub struct LoadedModel {
    pub card: ModelCard,
    mlp: Mlp,
    /// Where `features` lives in the card, by name.
    pub feature_index: HashMap<String, usize>,
}

impl LoadedModel {
    pub fn load(dir: &Path) -> anyhow::Result<LoadedModel> {
        let card = ModelCard::read(&dir.join(CARD_FILE))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", weights_path.display()))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let mlp = Mlp::new(&card.architecture, vb).map_err(|e| {
            anyhow::anyhow!("{} does not match its card: {e}", weights_path.display())
        })?;
        let feature_index = card
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        Ok(LoadedModel {
            card,
            mlp,
            feature_index,
        })
    }

    pub fn version(&self) -> &str {
        &self.card.version
    }

    /// Normalises raw feature rows (in card order) as the card says.
    pub fn normalise(&self, raw: &[f64]) -> Vec<f32> {
        raw.iter()
            .zip(&self.card.features)
            .map(|(x, f)| ((x - f.mean) / f.std) as f32)
            .collect()
    }

    /// The features of a raw row (card order) outside the training range
    /// widened by `margin` × its width on each side, by index. The
    /// training range is the reference histogram's (the training split's
    /// minimum and maximum).
    pub fn outside_training_range(&self, raw: &[f64], margin: f64) -> Vec<usize> {
        raw.iter()
            .zip(&self.card.features)
            .enumerate()
            .filter(|(_, (x, f))| {
                let (lo, hi) = (f.reference.min(), f.reference.max());
                let slack = (hi - lo) * margin;
                **x < lo - slack || **x > hi + slack
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Class probabilities for each row of normalised features.
    pub fn predict(&self, rows: &[Vec<f32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let width = self.card.architecture.inputs;
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let xs = Tensor::from_vec(flat, (rows.len(), width), &Device::Cpu)?;
        let logits = self.mlp.forward(&xs)?;
        candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()
    }
}

/// The version directories of a task, oldest first (versions sort by name).
pub fn versions_on_disk(models_dir: &Path, task: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(models_dir.join(task))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(CARD_FILE).is_file() && p.join(WEIGHTS_FILE).is_file())
        .collect();
    dirs.sort();
    dirs
}
