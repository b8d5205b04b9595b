//! `verdict train --from-labels`: a version trained on the reviewers'
//! labels in the database, citing the snapshot of exactly those rows,
//! compared with the live version on held-out blind rows; and the
//! refusals, which write nothing.

use std::path::Path;
use std::process::{Command, Output};

use sha2::Digest;

use crate::export::{label_queued, submit};
use crate::helpers::{repo, spawn_with, task, Backend, TestApp, TASK};
use verdict::db::Db;
use verdict::domain::AutomationLevel;
use verdict::ml::ModelCard;
use verdict::review::{self, Label, Rules};

crate::on_both_backends!(
    train_from_labels_writes_a_version_citing_its_snapshot_and_compared_with_the_live_one,
    train_from_labels_refuses_what_it_cannot_train_on_and_writes_nothing,
);

/// A models directory holding a copy of the demo's `v1`.
fn models_with_v1() -> tempfile::TempDir {
    let models = tempfile::tempdir().unwrap();
    let to = models.path().join(TASK).join("v1");
    std::fs::create_dir_all(&to).unwrap();
    for file in ["card.json", "model.safetensors"] {
        std::fs::copy(
            repo().join("models").join(TASK).join("v1").join(file),
            to.join(file),
        )
        .unwrap();
    }
    models
}

/// `verdict <args>` against the app's database, datasets and `models`.
fn verdict(app: &TestApp, models: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .current_dir(repo())
        .env_remove("VERDICT_CONFIG")
        .env("VERDICT_DATABASE_URL", &app.db.url)
        .env("VERDICT_DATASETS_DIR", app.db.dir().join("datasets"))
        .env("VERDICT_MODELS_DIR", models)
        .args(args)
        .output()
        .expect("run verdict")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn train_from_labels_writes_a_version_citing_its_snapshot_and_compared_with_the_live_one(
    backend: Backend,
) {
    let models = models_with_v1();
    let mut config = task(AutomationLevel::Partial);
    // Enough blind audits for an unbiased held-out set; the uncertain
    // items are queued below the threshold.
    config.audit_rate = 0.3;
    let Some(app) = spawn_with(backend, config, Some(models.path())).await else {
        return;
    };
    submit(&app, 0..569).await;
    let labelled = label_queued(&app.store, "ana", 1000).await.len();
    assert!(labelled > 100, "{labelled} labelled");

    let out = verdict(
        &app,
        models.path(),
        &[
            "train",
            "--task",
            TASK,
            "--from-labels",
            "--version",
            "v2",
            "--max-epochs",
            "40",
            "--weights",
            "uncertain=0.5",
            "--original",
            "data/breast_cancer.csv",
            "--feature-names",
            "data/breast_cancer.features.txt",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));

    let dir = models.path().join(TASK).join("v2");
    let card = ModelCard::read(&dir.join("card.json")).unwrap();
    verdict::ml::LoadedModel::load(&dir).expect("the new version loads");
    assert_eq!(
        card.labels,
        ["malignant", "benign"],
        "the live version's order"
    );

    // The card cites the snapshot by name and content hash, and the
    // snapshot holds exactly the human-labelled rows, each with its label.
    assert_eq!(card.training.snapshot.as_deref(), Some("v2-labels"));
    let file = app
        .db
        .dir()
        .join("datasets")
        .join(TASK)
        .join("v2-labels.jsonl");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        card.training.data_sha256,
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    let from = card.training.from_labels.as_ref().expect("from_labels");
    let rows: Vec<serde_json::Value> = text(&bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), labelled);
    assert_eq!(rows.len(), from.rows.blind + from.rows.uncertain);
    assert!(rows.iter().all(|r| r["human_label"].is_string()));
    let audits = rows.iter().filter(|r| r["audit"] == true).count();
    assert_eq!(from.rows.blind, audits, "every blind row here is an audit");
    assert!(
        from.rows.uncertain > 0,
        "some items were below the threshold"
    );
    let (status, recorded) = app
        .get(&format!("/api/v1/tasks/{TASK}/datasets/v2-labels"))
        .await;
    assert_eq!(status, 200, "{recorded}");
    assert_eq!(recorded["sha256"], card.training.data_sha256.as_str());

    // The weights and the original data.
    assert_eq!(from.sample_weights.blind, 1.0);
    assert_eq!(from.sample_weights.uncertain, 0.5);
    assert_eq!(from.sample_weights.original, 1.0);
    assert_eq!(from.rows.original, 569);
    let original = from.original.as_ref().expect("the original data");
    let v1 = ModelCard::read(&models.path().join(TASK).join("v1/card.json")).unwrap();
    assert_eq!(original.sha256, v1.training.data_sha256);
    assert!(from.effective_train_rows < card.training.train_rows as f64);
    assert_eq!(card.training.rows, labelled + 569);

    // Both versions on the same held-out blind rows, never trained on.
    let comparison = card.comparison.as_ref().expect("a comparison");
    assert!(comparison.blind && from.held_out_blind);
    assert!(comparison.rows >= 30, "{}", comparison.rows);
    assert_eq!(comparison.rows, card.training.test_rows);
    assert_eq!(comparison.threshold, Some(0.95));
    let live = comparison.live.as_ref().expect("the live version");
    assert_eq!(live.version, "v1");
    assert_eq!(comparison.new.version, "v2");
    for e in [live, &comparison.new] {
        assert!(e.accuracy_low <= e.accuracy && e.accuracy <= e.accuracy_high);
        assert!(e.accuracy > 0.8, "{e:?}");
        assert!((0.0..=1.0).contains(&e.expected_calibration_error));
        assert!(e.automation_rate.is_some());
        assert_eq!(e.per_label.len(), 2);
    }
    for expected in [
        "live v1",
        "new v2",
        "accuracy (95 % Wilson)",
        "automation at 0.95",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }

    // A second run may not reuse the version (nor its snapshot's name).
    let again = verdict(
        &app,
        models.path(),
        &["train", "--task", TASK, "--from-labels", "--version", "v2"],
    );
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists"));

    // The same labels again: the card cites the snapshot already taken.
    let v3 = verdict(
        &app,
        models.path(),
        &[
            "train",
            "--task",
            TASK,
            "--from-labels",
            "--version",
            "v3",
            "--max-epochs",
            "3",
        ],
    );
    assert!(v3.status.success(), "{}", text(&v3.stderr));
    let card = ModelCard::read(&models.path().join(TASK).join("v3/card.json")).unwrap();
    assert_eq!(card.training.snapshot.as_deref(), Some("v2-labels"));
    assert!(card.training.from_labels.unwrap().original.is_none());
    assert!(text(&v3.stdout).contains("pass --original FILE"));
    assert_eq!(app.count("dataset_snapshots"), 1);
}

/// Labels up to `n` queued items `label` (which may be one the model does
/// not know: the rules here allow it).
async fn label_all_as(db: &Db, n: usize, label: &str) {
    for _ in 0..n {
        let claim = db
            .write(|conn| review::claim_next(conn, TASK, "bo", review::DEFAULT_LEASE))
            .await
            .unwrap();
        let Some(claim) = claim else { break };
        let (id, label) = (claim.item.id.clone(), label.to_string());
        db.write(move |conn| {
            let rules = Rules {
                labels: vec!["malignant".into(), "benign".into(), label.clone()],
                reviews_required: 1,
                callback_url: None,
            };
            let label = Label {
                label,
                comment: None,
                seconds_spent: Some(1.0),
            };
            review::submit(conn, TASK, &rules, &id, "bo", &label)
        })
        .await
        .unwrap();
    }
}

async fn train_from_labels_refuses_what_it_cannot_train_on_and_writes_nothing(backend: Backend) {
    let models = models_with_v1();
    let Some(app) = spawn_with(
        backend,
        task(AutomationLevel::HumanOnly),
        Some(models.path()),
    )
    .await
    else {
        return;
    };
    let refused = |args: &[&str], expected: &str| {
        let mut all = vec!["train", "--from-labels", "--version", "v2"];
        all.extend_from_slice(args);
        let out = verdict(&app, models.path(), &all);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{expected:?} in: {stderr}");
    };
    refused(&["--task", TASK], "has no human labels");
    refused(
        &["--task", "no-such-task"],
        "no task named \"no-such-task\"",
    );
    refused(
        &["--task", TASK, "--since", "last tuesday"],
        "since is an RFC 3339 time",
    );
    refused(
        &["--task", TASK, "--weights", "audit=2"],
        "the groups are blind, uncertain and original",
    );

    submit(&app, 0..10).await;
    assert_eq!(label_queued(&app.store, "ana", 10).await.len(), 10);
    refused(&["--task", TASK], "only 10 human-labelled items");
    // Labels from after now: none.
    refused(
        &["--task", TASK, "--since", "2999-01-01"],
        "has no human labels since",
    );

    submit(&app, 10..40).await;
    label_all_as(&app.store, 30, "unsure").await;
    refused(
        &["--task", TASK],
        "[\"unsure\"] are not among the live model's labels",
    );

    assert!(!models.path().join(TASK).join("v2").exists());
    assert_eq!(app.count("dataset_snapshots"), 0);
    let datasets = app.db.dir().join("datasets").join(TASK);
    let files = std::fs::read_dir(&datasets).map_or(0, |d| d.count());
    assert_eq!(files, 0, "nothing in {}", datasets.display());
}
