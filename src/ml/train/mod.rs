//! `verdict train`: an MLP with candle-nn, seeded and reproducible, with
//! class weights for imbalance, early stopping on a validation split and an
//! evaluation on a held-out test split. Writes a new version directory.
//!
//! `data` reads and splits the rows, `fit` is the training loop, `evaluate`
//! the metrics; this module holds the options and `train`, which runs them.

mod data;
mod evaluate;
mod fit;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use super::card::{Architecture, ModelCard, TrainingInfo};
use super::{CARD_FILE, WEIGHTS_FILE};

pub use data::{read_dataset, Dataset};
pub use evaluate::{evaluate, roc_auc};

/// Bins of the reference histograms (features and confidence).
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
    let (train_idx, val_idx, test_idx) = data::split(&data.y, classes, &mut rng);
    let specs = fit::feature_specs(&data, &train_idx, opts.nonnegative);
    let weights = fit::class_weights(&data.y, &train_idx, classes)?;
    let arch = Architecture {
        kind: "mlp".into(),
        inputs: specs.len(),
        hidden: opts.hidden.clone(),
        outputs: classes,
        activation: "relu".into(),
    };
    let problem = fit::Problem {
        data: &data,
        specs: &specs,
        train_idx: &train_idx,
        val_idx: &val_idx,
        weights: &weights,
    };
    let fitted = fit::fit(opts, &arch, &problem, &mut rng, progress)?;

    let (probs, truth) = evaluate::held_out(&fitted.model, &data, &test_idx, &specs)?;
    let reference_sample = evaluate::reference_sample(
        &fitted.model,
        &data,
        &train_idx,
        &[val_idx.as_slice(), test_idx.as_slice()].concat(),
        &specs,
        opts.seed,
    )?;
    let metrics = evaluate(&probs, &truth, &data.labels);
    progress(&format!(
        "held-out test ({} rows): accuracy {:.4}, ROC AUC {:.4}, log loss {:.4}",
        truth.len(),
        metrics.accuracy,
        metrics.roc_auc,
        metrics.log_loss
    ));

    let training = TrainingInfo {
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
        epochs_run: fitted.epochs_run,
        best_epoch: fitted.best_epoch,
        class_weights: data
            .labels
            .iter()
            .cloned()
            .zip(weights.iter().map(|&w| w as f64))
            .collect(),
    };
    let card = ModelCard {
        task: opts.task.clone(),
        version: opts.version.clone(),
        created_at: crate::domain::rfc3339(&crate::domain::now()),
        architecture: arch,
        features: specs,
        labels: data.labels.clone(),
        training,
        metrics,
        output_reference: evaluate::output_reference(&probs, &data.labels),
        reference_sample: Some(reference_sample),
    };
    card.check().map_err(anyhow::Error::msg)?;
    write_version(opts, &out_dir, &fitted, &card)?;
    progress(&format!("wrote {}", out_dir.display()));
    Ok(card)
}

/// Writes the weights and the card to a temporary directory, then renames
/// it: a version directory is complete or absent.
fn write_version(
    opts: &TrainOptions,
    out_dir: &Path,
    fitted: &fit::Fitted,
    card: &ModelCard,
) -> anyhow::Result<()> {
    let parent = opts.models_dir.join(&opts.task);
    std::fs::create_dir_all(&parent)?;
    let tmp = parent.join(format!(".{}.partial", opts.version));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    fitted.varmap.save(tmp.join(WEIGHTS_FILE))?;
    std::fs::write(
        tmp.join(CARD_FILE),
        serde_json::to_string_pretty(card)? + "\n",
    )?;
    std::fs::rename(&tmp, out_dir)?;
    Ok(())
}
