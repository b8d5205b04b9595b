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
    /// The card's features in the order a stored input lists them (by
    /// name), and each one's JSON key with its colon (`"name":`).
    pub canonical_order: Vec<usize>,
    pub canonical_keys: Vec<String>,
    /// About how long a stored input is, to allocate it once.
    pub canonical_len_hint: usize,
}

/// A version as files hold it: the card's text and the weights' bytes,
/// and the content hash that names both (SHA-256 over the card's bytes,
/// then the weights'), which the registry stores and checks.
#[derive(Debug, Clone)]
pub struct VersionFiles {
    pub card_json: String,
    pub weights: Vec<u8>,
}

impl VersionFiles {
    /// Reads `card.json` and `model.safetensors` from `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<VersionFiles> {
        let card_path = dir.join(CARD_FILE);
        let weights_path = dir.join(WEIGHTS_FILE);
        let card_json = std::fs::read_to_string(&card_path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", card_path.display()))?;
        let weights = std::fs::read(&weights_path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", weights_path.display()))?;
        Ok(VersionFiles { card_json, weights })
    }

    pub fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.card_json.as_bytes());
        hash.update(&self.weights);
        hex::encode(hash.finalize())
    }

    /// The card and weights checked against each other and made ready to
    /// score; every refusal says what does not fit.
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        let card: ModelCard = serde_json::from_str(&self.card_json)
            .map_err(|e| anyhow::anyhow!("card.json is not a valid model card: {e}"))?;
        card.check()
            .map_err(|e| anyhow::anyhow!("card.json: {e}"))?;
        LoadedModel::from_weights(card, &self.weights)
    }
}

impl LoadedModel {
    pub fn load(dir: &Path) -> anyhow::Result<LoadedModel> {
        VersionFiles::read(dir)?
            .load()
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
    }

    /// The model of `card` with the safetensors bytes `weights`: every
    /// tensor the card's architecture needs, in its shape, and no other;
    /// a probe row must give finite probabilities.
    pub fn from_weights(card: ModelCard, weights: &[u8]) -> anyhow::Result<LoadedModel> {
        let tensors = candle_core::safetensors::load_buffer(weights, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("model.safetensors is not a safetensors file: {e}"))?;
        let arch = &card.architecture;
        let mut expected: Vec<String> = (0..arch.hidden.len())
            .chain(std::iter::once(usize::MAX))
            .flat_map(|i| {
                let layer = if i == usize::MAX {
                    "output".to_string()
                } else {
                    format!("hidden{i}")
                };
                [format!("{layer}.weight"), format!("{layer}.bias")]
            })
            .collect();
        expected.sort();
        let mut found: Vec<String> = tensors.keys().cloned().collect();
        found.sort();
        if found != expected {
            anyhow::bail!(
                "the weights do not fit the card: the card's architecture needs tensors {expected:?}, model.safetensors has {found:?}"
            );
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let mlp = Mlp::new(arch, vb)
            .map_err(|e| anyhow::anyhow!("the weights do not fit the card: {e}"))?;
        let feature_index = card
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let mut canonical_order: Vec<usize> = (0..card.features.len()).collect();
        canonical_order.sort_by(|&a, &b| card.features[a].name.cmp(&card.features[b].name));
        let canonical_keys: Vec<String> = canonical_order
            .iter()
            .map(|&i| {
                let name = serde_json::to_string(&card.features[i].name).expect("a name");
                format!("{name}:")
            })
            .collect();
        let canonical_len_hint = canonical_keys.iter().map(|k| k.len() + 24).sum::<usize>() + 2;
        let model = LoadedModel {
            card,
            mlp,
            feature_index,
            canonical_order,
            canonical_keys,
            canonical_len_hint,
        };
        let probe = model
            .predict(&[vec![0.0; model.card.architecture.inputs]])
            .map_err(|e| anyhow::anyhow!("the model does not run: {e}"))?;
        if probe.iter().flatten().any(|p| !p.is_finite()) {
            anyhow::bail!("the model gives non-finite probabilities on the training mean");
        }
        Ok(model)
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
