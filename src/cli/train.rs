//! `verdict train`: a new model version from a CSV file or a dataset
//! snapshot, or from the reviewers' labels in the database
//! (`--from-labels`), optionally made live at once.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use verdict::config::Settings;
use verdict::db::DbConnection;
use verdict::domain::{rfc3339, Timestamp};
use verdict::export::{self, Encoder, Filter, Format, Page, Record, Request};
use verdict::ml::card::{Comparison, DataRef, Evaluation, ModelCard};
use verdict::ml::train::labelled::{
    self, Group, SampleWeights, MIN_BLIND_HELD_OUT, MIN_LABELLED_ROWS,
};
use verdict::ml::train::{train, train_from_labels, LabelsJob, Progress, TrainOptions};
use verdict::ml::LoadedModel;
use verdict::store::labels;

use super::{check_task, open_store};

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    options: TrainOptions,
    #[command(flatten)]
    labels: FromLabelsArgs,
    /// Make the new version live at once.
    #[arg(long)]
    deploy: bool,
}

/// Training on the reviewers' labels (README: "Retraining from reviewers'
/// labels").
#[derive(clap::Args)]
struct FromLabelsArgs {
    /// Train on the task's human labels in the database instead of --data:
    /// verdicts reviewers reached (single, consensus, adjudication),
    /// admins' corrections and blind audit labels, never a model's verdict.
    /// The features and labels are the live version's; the rows go to a new
    /// dataset snapshot `<version>-labels` that the card cites; the live
    /// and the new version are compared on held-out rows.
    #[arg(long, conflicts_with = "data")]
    from_labels: bool,
    /// Only labels given at or after this time: RFC 3339
    /// (2026-11-28T09:30:00Z) or a UTC date (2026-11-28). A blind audit
    /// counts from the time its item was decided.
    #[arg(long, value_name = "TIME", requires = "from_labels", value_parser = parse_since)]
    since: Option<Timestamp>,
    /// Per-row sample weights of the groups, GROUP=WEIGHT joined by commas
    /// (groups: blind, uncertain, original; those not named weigh 1). Blind:
    /// audits and blind samples, an unbiased sample of traffic. Uncertain:
    /// every other human label (the model's hard cases, over-represented).
    /// Original: the rows of --original. Default: all 1 (README says why);
    /// for a traffic-shaped fit give uncertain the audit rate.
    #[arg(long, value_name = "GROUP=WEIGHT,…", requires = "from_labels")]
    weights: Option<SampleWeights>,
    /// Also train on this data: a file (as --data reads it, with
    /// --feature-names and --label-column) or a dataset snapshot's name;
    /// typically the live version's training data, which its card names.
    /// Without it only the reviewers' labels train.
    #[arg(long, value_name = "FILE|SNAPSHOT", requires = "from_labels")]
    original: Option<PathBuf>,
    /// Share of the blind rows held out for the comparison (at least 30;
    /// with fewer than 30 blind rows, 20 % of all labelled rows, a biased
    /// set). Default 0.5.
    #[arg(long, value_name = "SHARE", requires = "from_labels")]
    held_out: Option<f64>,
}

fn parse_since(s: &str) -> Result<Timestamp, String> {
    export::parse_time("since", s).map_err(|e| e.to_string())
}

pub fn run(settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    let TrainArgs {
        mut options,
        labels,
        deploy,
    } = args;
    options.models_dir = settings.models.dir.clone();
    let mut progress = EpochBar::default();
    if labels.from_labels {
        let card = from_labels(settings, &options, &labels, &mut progress)?;
        if let Some(comparison) = &card.comparison {
            print_comparison(comparison, &card.labels);
        }
    } else {
        super::labels::resolve_training_data(settings, &mut options)?;
        if let Some(name) = &options.snapshot {
            println!("training from dataset snapshot {name:?}");
        }
        train(&options, &mut |p| progress.show(p))?;
    }
    let (task, version) = (options.task.clone(), options.version.clone());
    if deploy {
        super::deploy::deploy_version(
            settings,
            &task,
            &version,
            "trained and deployed from the command line",
        )
    } else {
        if labels.from_labels {
            let mut conn = super::open_store(settings)?;
            super::deploy::ensure_imported(settings, &mut conn, &task, &version)?;
        }
        println!(
            "try it beside the live version: verdict deploy candidate --task {task} --version {version} --mode shadow --why \"…\"\n\
             or make it live at once: verdict deploy --task {task} --version {version}"
        );
        Ok(())
    }
}

/// The task's live version, loaded from the registry (the bytes every
/// instance serves).
fn live_model(conn: &mut DbConnection, task: &str) -> anyhow::Result<Option<LoadedModel>> {
    let Some(version) = verdict::tasks::current_live(conn, task)? else {
        return Ok(None);
    };
    let model = verdict::tasks::load_version(conn, task, &version)
        .with_context(|| format!("cannot load the live version {version:?} of {task:?}"))?;
    Ok(Some(model))
}

/// `--from-labels`: reads and checks everything first (nothing is written
/// when a check fails), then writes the snapshot, trains and writes the
/// version.
fn from_labels(
    settings: &Settings,
    options: &TrainOptions,
    args: &FromLabelsArgs,
    progress: &mut EpochBar,
) -> anyhow::Result<ModelCard> {
    let task = options.task.as_str();
    check_task(settings, task)?;
    let config = settings.task(task).expect("checked");
    let weights = args.weights.unwrap_or_default();
    let held_out = args.held_out.unwrap_or(0.5);
    if !(held_out > 0.0 && held_out < 1.0) {
        bail!("--held-out is a share between 0 and 1, not {held_out}");
    }
    let out_dir = options.models_dir.join(task).join(&options.version);
    if out_dir.exists() {
        bail!(
            "{} already exists: choose another --version",
            out_dir.display()
        );
    }
    let mut conn = open_store(settings)?;
    let live = live_model(&mut conn, task)?.with_context(|| {
        format!(
            "task {task:?} has no live version: --from-labels takes its features and labels \
             from it (deploy one with verdict deploy, or start the service once)"
        )
    })?;
    let features: Vec<String> = live.card.features.iter().map(|f| f.name.clone()).collect();
    let labels = live.card.labels.clone();

    let filter = Filter {
        since: args.since,
        ..Filter::default()
    };
    let since_text = args
        .since
        .map(|t| format!(" since {}", rfc3339(&t)))
        .unwrap_or_default();
    let records = human_labelled(&mut conn, task, &filter)?;
    if records.is_empty() {
        bail!(
            "task {task:?} has no human labels{since_text}: reviewers decide queued items and \
             label blind audits; nothing was trained or written"
        );
    }
    if records.len() < MIN_LABELLED_ROWS {
        bail!(
            "task {task:?} has only {} human-labelled items{since_text}; at least \
             {MIN_LABELLED_ROWS} are needed: nothing was trained or written",
            records.len()
        );
    }

    // The snapshot's bytes, made in memory: the rows are read back from
    // them, so the model trains on exactly what the snapshot holds.
    let request = Request {
        format: Format::Jsonl,
        filter: filter.clone(),
        after: None,
    };
    let mut bytes = Vec::new();
    let mut page = Some(Page {
        records: records.clone(),
        cursor: None,
        done: true,
    });
    export::run(
        &request,
        &mut Encoder::new(Format::Jsonl, &filter, Some(features.clone())),
        |_, _| Ok(page.take().unwrap_or_default()),
        &mut bytes,
        |_| {},
    )?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let mut set = labelled::read_export(&bytes, &features, &labels)?;

    let original = match &args.original {
        Some(path) => {
            let original = add_original(&mut conn, options, path, &mut set)?;
            if original.sha256 != live.card.training.data_sha256 {
                println!(
                    "note: --original {} is not the data the live version {} was trained on ({})",
                    path.display(),
                    live.version(),
                    live.card.training.data_file
                );
            }
            Some(original)
        }
        None => {
            println!(
                "the live version {} was trained on {} (SHA-256 {}); pass --original FILE to \
                 mix it in. Training on reviewers' labels only.",
                live.version(),
                live.card.training.data_file,
                &live.card.training.data_sha256[..12.min(live.card.training.data_sha256.len())]
            );
            None
        }
    };

    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed ^ 0x0068_656c_646f_7574);
    let plan = labelled::plan(&set, held_out, &mut rng)?;
    let blind = set.count(Group::Blind);
    println!(
        "{} human-labelled items{since_text}: {blind} blind, {} uncertain; {} original rows",
        set.count(Group::Blind) + set.count(Group::Uncertain),
        set.count(Group::Uncertain),
        set.count(Group::Original),
    );
    let row_weights = labelled::row_weights(&set.groups, &weights);
    println!(
        "sample weights {weights}: {} training rows weigh as much as {:.0} equal ones",
        plan.train_idx.len(),
        labelled::effective_rows(&row_weights, &plan.train_idx)
    );
    if plan.held_out_blind {
        println!(
            "held out: {} blind rows (an unbiased sample), never trained on",
            plan.test_idx.len()
        );
    } else {
        println!(
            "held out: {} rows drawn from every labelled row — BIASED towards the model's hard \
             cases: only {blind} blind rows, {MIN_BLIND_HELD_OUT} are needed for an unbiased set",
            plan.test_idx.len()
        );
    }

    // The same rows as a snapshot taken before (an earlier run on
    // unchanged labels): cite it rather than keep two copies.
    let same = verdict::store::snapshots::by_sha256(&mut conn, &sha256)?.filter(|s| {
        s.task == task
            && export::snapshot::sha256_file(std::path::Path::new(&s.path))
                .ok()
                .as_ref()
                == Some(&sha256)
    });
    let snapshot = match same {
        Some(row) => {
            println!(
                "the same rows as dataset snapshot {:?} (SHA-256 {sha256}): citing it",
                row.name
            );
            row
        }
        None => {
            let row = write_snapshot(
                settings,
                task,
                &options.version,
                &request,
                &features,
                &records,
                &sha256,
            )?;
            println!(
                "dataset snapshot {:?}: {} rows, SHA-256 {sha256}",
                row.name, row.row_count
            );
            row
        }
    };
    let job = LabelsJob {
        set,
        plan,
        weights,
        snapshot: DataRef {
            file: PathBuf::from(&snapshot.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
            snapshot: Some(snapshot.name.clone()),
            rows: snapshot.row_count as usize,
        },
        original,
        since: args.since.map(|t| rfc3339(&t)),
        live: Some(&live),
        threshold: config.threshold,
        label_thresholds: config.label_thresholds.clone(),
    };
    train_from_labels(options, &job, &mut |p| progress.show(p))
}

/// Every labelled item of `task` that people labelled (their verdict, or
/// their blind audit labels' majority), with a bar over the items read.
fn human_labelled(
    conn: &mut DbConnection,
    task: &str,
    filter: &Filter,
) -> anyhow::Result<Vec<Record>> {
    let total = labels::count(conn, task, filter)? as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} decided items read")
            .expect("a valid template"),
    );
    let (mut kept, mut read, mut after) = (Vec::new(), 0u64, None::<String>);
    loop {
        let page = labels::page(conn, task, filter, after.as_deref(), export::PAGE_ROWS)?;
        read += page.records.len() as u64;
        bar.set_position(read);
        kept.extend(
            page.records
                .into_iter()
                .filter(|r| export::columns::human_label(r).is_some()),
        );
        match page.cursor {
            Some(cursor) if !page.done => after = Some(cursor),
            _ => break,
        }
    }
    bar.finish_and_clear();
    Ok(kept)
}

/// Reads `--original` (a file or a snapshot's name) into `set`.
fn add_original(
    conn: &mut DbConnection,
    options: &TrainOptions,
    path: &std::path::Path,
    set: &mut labelled::Labelled,
) -> anyhow::Result<DataRef> {
    let found = super::labels::find_snapshot(conn, &options.task, path)?;
    let file: PathBuf = found
        .as_ref()
        .map_or_else(|| path.to_path_buf(), |s| s.path.clone().into());
    let data = verdict::ml::train::read_dataset(
        &file,
        options.feature_names.as_deref(),
        &options.label_column,
    )
    .with_context(|| format!("--original {}", path.display()))?;
    labelled::add_original(set, &data)?;
    let sha256 = export::snapshot::sha256_file(&file)?;
    Ok(DataRef {
        file: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256,
        snapshot: found.map(|s| s.name),
        rows: data.x.len(),
    })
}

/// Writes (through the snapshot mechanism: complete or absent, never
/// overwritten) and records the snapshot `<version>-labels` of `records`,
/// which must hash to `sha256`, the bytes the rows were read from.
fn write_snapshot(
    settings: &Settings,
    task: &str,
    version: &str,
    request: &Request,
    columns: &[String],
    records: &[Record],
    sha256: &str,
) -> anyhow::Result<export::snapshot::SnapshotRow> {
    let name = format!("{version}-labels");
    let mut conn = open_store(settings)?;
    export::snapshot::check_new(&mut conn, task, &name)?;
    let mut encoder = Encoder::new(request.format, &request.filter, Some(columns.to_vec()));
    let mut page = Some(Page {
        records: records.to_vec(),
        cursor: None,
        done: true,
    });
    let mut row = export::snapshot::write_file(
        &settings.datasets.dir,
        task,
        &name,
        request,
        &mut encoder,
        |_, _| Ok(page.take().unwrap_or_default()),
        "cli",
        |_| {},
    )?;
    if row.sha256 != sha256 {
        let _ = std::fs::remove_file(&row.path);
        bail!(
            "the snapshot written ({}) is not the rows read ({sha256})",
            row.sha256
        );
    }
    // The rows are those people labelled, which no export filter says.
    let mut filters: serde_json::Value = serde_json::from_str(&row.filters)?;
    filters["labels"] = "human".into();
    row.filters = filters.to_string();
    if let Err(e) = export::snapshot::record(&mut conn, &row) {
        let _ = std::fs::remove_file(&row.path);
        return Err(e.into());
    }
    Ok(row)
}

/// Training's lines on standard output; its epochs as a bar on standard
/// error while it trains (when standard error is a terminal).
#[derive(Default)]
struct EpochBar {
    bar: Option<ProgressBar>,
}

impl EpochBar {
    fn show(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Line(line) => match &self.bar {
                Some(bar) => bar.suspend(|| println!("{line}")),
                None => println!("{line}"),
            },
            Progress::Epoch {
                epoch,
                max_epochs,
                validation_loss,
            } => {
                let bar = self.bar.get_or_insert_with(|| {
                    let bar = if std::io::stderr().is_terminal() {
                        ProgressBar::new(max_epochs as u64)
                    } else {
                        ProgressBar::hidden()
                    };
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{bar:40} epoch {pos}/{len}  {msg}  {elapsed}",
                        )
                        .expect("a valid template"),
                    );
                    bar
                });
                bar.set_position(epoch as u64);
                bar.set_message(format!("validation loss {validation_loss:.4}"));
            }
            Progress::Fitted => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// The live and the new version side by side.
fn print_comparison(c: &Comparison, labels: &[String]) {
    let heading = if c.blind {
        format!("held-out comparison on {} blind rows (unbiased)", c.rows)
    } else {
        format!(
            "held-out comparison on {} rows of every kind (BIASED towards hard cases)",
            c.rows
        )
    };
    println!("\n{heading}");
    let name = |e: Option<&Evaluation>, who: &str| {
        e.map_or_else(
            || format!("{who}: none"),
            |e| format!("{who} {}", e.version),
        )
    };
    let live = c.live.as_ref();
    let row = |what: &str, f: &dyn Fn(&Evaluation) -> String| {
        println!(
            "  {what:<28} {:<24} {}",
            live.map_or_else(|| "—".to_string(), f),
            f(&c.new)
        );
    };
    println!(
        "  {:<28} {:<24} {}",
        "",
        name(live, "live"),
        name(Some(&c.new), "new")
    );
    row("accuracy (95 % Wilson)", &accuracy_text);
    for label in labels {
        row(&format!("precision {label}"), &|e| {
            e.per_label
                .get(label)
                .map_or("—".into(), |m| format!("{:.3}", m.precision))
        });
        row(&format!("recall {label}"), &|e| {
            e.per_label
                .get(label)
                .map_or("—".into(), |m| format!("{:.3}", m.recall))
        });
    }
    row("calibration error (ECE)", &|e| {
        format!("{:.4}", e.expected_calibration_error)
    });
    row("log loss", &|e| format!("{:.4}", e.log_loss));
    let at = match (c.threshold, c.label_thresholds.is_empty()) {
        (Some(t), true) => format!("automation at {t}"),
        (Some(t), false) => format!("automation at {t} (+per label)"),
        (None, false) => "automation (per-label)".to_string(),
        (None, true) => "automation (no threshold)".to_string(),
    };
    row(&at, &|e| {
        e.automation_rate
            .map_or("—".into(), |r| format!("{:.1} %", r * 100.0))
    });
}

/// Accuracy with its 95 % Wilson interval, bounds rounded outwards: 1.000
/// on 113 rows reads "≥ 0.967 (1.000)".
fn accuracy_text(e: &Evaluation) -> String {
    let lo = (e.accuracy_low * 1000.0).floor() / 1000.0;
    let hi = (e.accuracy_high * 1000.0).ceil() / 1000.0;
    if hi >= 1.0 {
        format!("≥ {lo:.3} ({:.3})", e.accuracy)
    } else {
        format!("{:.3} ({lo:.3}–{hi:.3})", e.accuracy)
    }
}
