//! `verdict train`: an MLP with candle-nn, seeded and reproducible, with
//! class weights for imbalance, early stopping on a validation split and an
//! evaluation on a held-out test split. Writes a new version directory.
//!
//! `data` reads and splits the rows, `fit` is the training loop, `evaluate`
//! the metrics, `labelled` the rows of reviewers' labels (groups, weights,
//! held-out set); this module holds the options, `train` (a data file) and
//! `train_from_labels`, which run them.

mod data;
mod evaluate;
mod fit;
pub mod labelled;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use super::card::{Architecture, Comparison, DataRef, FromLabels, ModelCard, TrainingInfo};
use super::{LoadedModel, CARD_FILE, WEIGHTS_FILE};

pub use data::{read_dataset, Dataset};
pub use evaluate::{evaluate, evaluation, expected_calibration_error, roc_auc};

/// What training reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A line for the reader (every tenth epoch, the early stop, results).
    Line(&'a str),
    /// An epoch ended.
    Epoch {
        epoch: usize,
        max_epochs: usize,
        validation_loss: f32,
    },
    /// The last epoch ended (the weights are the best epoch's).
    Fitted,
}

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
    #[arg(long, required_unless_present = "from_labels")]
    pub data: Option<PathBuf>,
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

/// Trains on `opts.data` and writes `models/<task>/<version>/`. Returns
/// the card.
pub fn train(
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<ModelCard> {
    let out_dir = new_version_dir(opts)?;
    let path = opts
        .data
        .as_deref()
        .context("--data names the training data")?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let data_sha256 = hex::encode(Sha256::digest(&bytes));
    let data = read_dataset(path, opts.feature_names.as_deref(), &opts.label_column)?;
    progress(Progress::Line(&format!(
        "read {} rows, {} features, labels {:?}",
        data.x.len(),
        data.features.len(),
        data.labels
    )));

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let (train_idx, val_idx, test_idx) = data::split(&data.y, data.labels.len(), &mut rng);
    let rows = Rows {
        data: &data,
        train_idx: &train_idx,
        val_idx: &val_idx,
        test_idx: &test_idx,
        sample_weights: &vec![1.0; data.x.len()],
    };
    let source = DataRef {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: data_sha256,
        snapshot: opts.snapshot.clone(),
        rows: data.x.len(),
    };
    let built = build(opts, &rows, source, &mut rng, progress)?;
    write_version(opts, &out_dir, &built.fitted, &built.card)?;
    progress(Progress::Line(&format!("wrote {}", out_dir.display())));
    Ok(built.card)
}

/// Reviewers' labels to train on (`verdict train --from-labels`), checked
/// and split: see [`labelled`].
pub struct LabelsJob<'a> {
    /// The rows: the snapshot's, then the original data's.
    pub set: labelled::Labelled,
    pub plan: labelled::Plan,
    pub weights: labelled::SampleWeights,
    /// The snapshot of the labelled rows (every row of it is in `set`).
    pub snapshot: DataRef,
    pub original: Option<DataRef>,
    pub since: Option<String>,
    /// The live version, measured beside the new one.
    pub live: Option<&'a LoadedModel>,
    /// The task's thresholds, for the automation rates.
    pub threshold: Option<f64>,
    pub label_thresholds: BTreeMap<String, f64>,
}

/// Trains on `job`'s rows with their sample weights, measures the new and
/// the live version on the held-out rows, and writes the version with the
/// comparison in its card. Returns the card.
pub fn train_from_labels(
    opts: &TrainOptions,
    job: &LabelsJob<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<ModelCard> {
    let out_dir = new_version_dir(opts)?;
    let data = &job.set.data;
    let sample_weights = labelled::row_weights(&job.set.groups, &job.weights);
    let rows = Rows {
        data,
        train_idx: &job.plan.train_idx,
        val_idx: &job.plan.val_idx,
        test_idx: &job.plan.test_idx,
        sample_weights: &sample_weights,
    };
    // The plan drew from its own seeded stream; training starts afresh.
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut built = build(opts, &rows, job.snapshot.clone(), &mut rng, progress)?;

    let truth: Vec<usize> = job.plan.test_idx.iter().map(|&i| data.y[i]).collect();
    let live = match job.live {
        Some(model) => {
            if model.card.labels != data.labels {
                bail!(
                    "the live version's labels {:?} are not the data's {:?}",
                    model.card.labels,
                    data.labels
                );
            }
            let normalised: Vec<Vec<f32>> = job
                .plan
                .test_idx
                .iter()
                .map(|&i| model.normalise(&data.x[i]))
                .collect();
            let probs = model.predict(&normalised)?;
            // The inputs the API refuses stay refused (the features are
            // the live version's, in its order).
            for (new, old) in built.card.features.iter_mut().zip(&model.card.features) {
                new.valid_min = new.valid_min.or(old.valid_min);
                new.valid_max = new.valid_max.or(old.valid_max);
            }
            Some(evaluation(
                model.version(),
                &probs,
                &truth,
                &data.labels,
                job.threshold,
                &job.label_thresholds,
            ))
        }
        None => None,
    };
    built.card.comparison = Some(Comparison {
        rows: truth.len(),
        blind: job.plan.held_out_blind,
        threshold: job.threshold,
        label_thresholds: job.label_thresholds.clone(),
        live,
        new: evaluation(
            &opts.version,
            &built.probs,
            &truth,
            &data.labels,
            job.threshold,
            &job.label_thresholds,
        ),
    });
    let count = |g| job.set.count(g);
    built.card.training.from_labels = Some(FromLabels {
        since: job.since.clone(),
        sample_weights: job.weights,
        rows: super::card::GroupRows {
            blind: count(labelled::Group::Blind),
            uncertain: count(labelled::Group::Uncertain),
            original: count(labelled::Group::Original),
        },
        effective_train_rows: labelled::effective_rows(&sample_weights, &job.plan.train_idx),
        original: job.original.clone(),
        held_out_blind: job.plan.held_out_blind,
    });
    built.card.check().map_err(anyhow::Error::msg)?;
    write_version(opts, &out_dir, &built.fitted, &built.card)?;
    progress(Progress::Line(&format!("wrote {}", out_dir.display())));
    Ok(built.card)
}

/// Where the new version goes; refused when it exists.
fn new_version_dir(opts: &TrainOptions) -> anyhow::Result<PathBuf> {
    let out_dir = opts.models_dir.join(&opts.task).join(&opts.version);
    if out_dir.exists() {
        bail!(
            "{} already exists: choose another --version",
            out_dir.display()
        );
    }
    Ok(out_dir)
}

/// The rows of one training: the data, its split and each row's sample
/// weight.
struct Rows<'a> {
    data: &'a Dataset,
    train_idx: &'a [usize],
    val_idx: &'a [usize],
    test_idx: &'a [usize],
    sample_weights: &'a [f32],
}

/// A fitted model, its card and its probabilities on the test rows.
struct Built {
    fitted: fit::Fitted,
    card: ModelCard,
    probs: Vec<Vec<f32>>,
}

/// Fits on `rows` and measures on their test rows: the card, without
/// writing anything.
fn build(
    opts: &TrainOptions,
    rows: &Rows<'_>,
    source: DataRef,
    rng: &mut StdRng,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<Built> {
    let Rows {
        data,
        train_idx,
        val_idx,
        test_idx,
        sample_weights,
    } = *rows;
    let classes = data.labels.len();
    let specs = fit::feature_specs(data, train_idx, opts.nonnegative);
    let weights = fit::class_weights(&data.y, train_idx, classes, sample_weights)?;
    let arch = Architecture {
        kind: "mlp".into(),
        inputs: specs.len(),
        hidden: opts.hidden.clone(),
        outputs: classes,
        activation: "relu".into(),
    };
    let problem = fit::Problem {
        data,
        specs: &specs,
        train_idx,
        val_idx,
        weights: &weights,
        sample_weights,
    };
    let fitted = fit::fit(opts, &arch, &problem, rng, progress)?;

    let (probs, truth) = evaluate::held_out(&fitted.model, data, test_idx, &specs)?;
    let reference_sample = evaluate::reference_sample(
        &fitted.model,
        data,
        train_idx,
        &[val_idx, test_idx].concat(),
        &specs,
        opts.seed,
    )?;
    let metrics = evaluate(&probs, &truth, &data.labels);
    progress(Progress::Line(&format!(
        "held-out test ({} rows): accuracy {:.4}, ROC AUC {:.4}, log loss {:.4}",
        truth.len(),
        metrics.accuracy,
        metrics.roc_auc,
        metrics.log_loss
    )));

    let training = TrainingInfo {
        data_file: source.file,
        data_sha256: source.sha256,
        snapshot: source.snapshot,
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
        from_labels: None,
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
        comparison: None,
    };
    card.check().map_err(anyhow::Error::msg)?;
    Ok(Built {
        fitted,
        card,
        probs,
    })
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
