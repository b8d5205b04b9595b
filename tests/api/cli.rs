//! The `verdict` command line as a user runs it: training, configuration
//! errors, migrations and tokens.

use std::process::Command;

use crate::helpers::repo;

fn verdict() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
    command.current_dir(repo()).env_remove("VERDICT_CONFIG");
    command
}

/// Runs `verdict ARGS` on the database at `url`.
fn on_database(url: &str) -> impl Fn(&[&str]) -> std::process::Output + '_ {
    move |args| {
        verdict()
            .args(args)
            .env("VERDICT_DATABASE_URL", url)
            .output()
            .unwrap()
    }
}

fn train(models: &std::path::Path, version: &str) -> std::process::Output {
    verdict()
        .args([
            "train",
            "--task",
            "tumor-triage",
            "--version",
            version,
            "--nonnegative",
            "--max-epochs",
            "60",
        ])
        .args([
            "--data",
            "data/breast_cancer.csv",
            "--feature-names",
            "data/breast_cancer.features.txt",
        ])
        .env("VERDICT_MODELS_DIR", models)
        .output()
        .expect("run verdict train")
}

#[test]
fn train_writes_a_reproducible_version_with_its_card() {
    let models = tempfile::tempdir().unwrap();
    let first = train(models.path(), "a");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains("epoch") && stdout.contains("held-out test"),
        "progress is printed: {stdout}"
    );

    let dir = models.path().join("tumor-triage/a");
    let card = verdict::ml::ModelCard::read(&dir.join("card.json")).unwrap();
    assert_eq!(card.features.len(), 30);
    assert_eq!(card.features[0].name, "mean_radius");
    assert_eq!(card.labels, ["malignant", "benign"]);
    assert_eq!(card.training.rows, 569);
    assert_eq!(
        card.training.train_rows + card.training.validation_rows + card.training.test_rows,
        569
    );
    assert!(
        card.metrics.accuracy > 0.9,
        "held-out accuracy {}",
        card.metrics.accuracy
    );
    assert!(card.metrics.roc_auc > 0.95);
    assert!(
        card.training.class_weights["malignant"] > card.training.class_weights["benign"],
        "the rarer class weighs more"
    );
    let reference_total: u64 = card.features[0].reference.counts.iter().sum();
    assert_eq!(reference_total as usize, card.training.train_rows);
    assert_eq!(
        card.output_reference.confidence.counts.iter().sum::<u64>() as usize,
        card.training.test_rows
    );
    let data = std::fs::read(repo().join("data/breast_cancer.csv")).unwrap();
    use sha2::Digest;
    assert_eq!(
        card.training.data_sha256,
        hex::encode(sha2::Sha256::digest(&data))
    );
    verdict::ml::LoadedModel::load(&dir).expect("the version loads");

    // Same data, same seed: the same weights.
    assert!(train(models.path(), "b").status.success());
    let weights = |v: &str| {
        std::fs::read(
            models
                .path()
                .join("tumor-triage")
                .join(v)
                .join("model.safetensors"),
        )
        .unwrap()
    };
    assert_eq!(weights("a"), weights("b"));

    // A version is never overwritten.
    let again = train(models.path(), "a");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn train_reads_a_csv_with_a_header_and_a_label_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("labels.csv");
    let mut text = String::from("x,y,label\n");
    for i in 0..60 {
        let (x, label) = if i % 2 == 0 {
            (i as f64, "low")
        } else {
            (100.0 + i as f64, "high")
        };
        text.push_str(&format!("{x},{},{label}\n", i % 7));
    }
    std::fs::write(&csv, text).unwrap();
    let out = verdict()
        .args([
            "train",
            "--task",
            "toy",
            "--version",
            "v1",
            "--hidden",
            "8",
            "--data",
        ])
        .arg(&csv)
        .env("VERDICT_MODELS_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let card = verdict::ml::ModelCard::read(&dir.path().join("toy/v1/card.json")).unwrap();
    assert_eq!(card.labels, ["high", "low"]);
    assert_eq!(card.architecture.hidden, [8]);
    assert!(card.metrics.accuracy > 0.9);
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("verdict.toml");
    std::fs::write(
        &config,
        "[[tasks]]\nname = \"tumor-triage\"\nautomation = \"partial\"\nthreshold = 1.5\n",
    )
    .unwrap();
    let out = verdict()
        .args(["serve", "--port", "0"])
        .env("VERDICT_CONFIG", &config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tasks[0].threshold"), "{stderr}");

    std::fs::write(&config, "[database]\nurl = \"sqlite://x.db\"\npool = 3\n").unwrap();
    let out = verdict()
        .args(["migrate"])
        .env("VERDICT_CONFIG", &config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pool"), "{stderr}");

    // What is wrong, without a backtrace even where RUST_BACKTRACE is set.
    let out = verdict()
        .args(["migrate"])
        .env("VERDICT_CONFIG", &config)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("unknown field `pool`"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

/// `verdict vacuum --page-size` gives an existing database the page size
/// a new one gets from `database.page_size`, keeping its rows.
#[test]
fn vacuum_gives_an_existing_database_another_page_size() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let run = on_database(&url);
    assert!(run(&["migrate"]).status.success());
    assert!(run(&["token", "create", "--name", "kept"]).status.success());

    let out = run(&["vacuum", "--page-size", "8192"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("page size 2048 -> 8192"), "{stdout}");

    let bad = run(&["vacuum", "--page-size", "3000"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("power of two"));

    // The rewritten file is the same database, now in 8 KiB pages.
    assert!(String::from_utf8_lossy(&run(&["migrate"]).stdout).contains("up to date"));
    let revoked = run(&["token", "revoke", "--name", "kept"]);
    assert!(
        revoked.status.success(),
        "the token made before the rewrite is there: {}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let again = run(&["vacuum"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("page size 8192 -> 8192"));
}

#[test]
fn migrate_and_token_create_work_on_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let out = verdict()
        .arg("migrate")
        .env("VERDICT_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied"));
    let again = verdict()
        .arg("migrate")
        .env("VERDICT_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let out = verdict()
        .args(["token", "create", "--name", "ci"])
        .env("VERDICT_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("vdt_") && token.len() > 70, "{token}");
    let twice = verdict()
        .args(["token", "create", "--name", "ci"])
        .env("VERDICT_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!twice.status.success(), "names are unique");
}

#[test]
fn a_token_gets_a_rate_at_creation_and_it_can_be_changed() {
    use diesel::prelude::*;
    use verdict::db::schema::api_tokens;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rate.db").display());
    let run = on_database(&url);
    let out = run(&["token", "create", "--name", "slow", "--rate", "6000/min"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rate = || {
        let mut conn = verdict::db::establish(&verdict::config::DatabaseSettings {
            url: url.clone(),
            ..Default::default()
        })
        .unwrap();
        api_tokens::table
            .select((api_tokens::rate_limit, api_tokens::rate_window_secs))
            .filter(api_tokens::name.eq("slow"))
            .get_result::<(Option<i64>, Option<i64>)>(&mut conn)
            .unwrap()
    };
    assert_eq!(rate(), (Some(6000), Some(60)));
    let out = run(&["token", "rate", "--name", "slow", "--rate", "5/10s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rate(), (Some(5), Some(10)));
    let out = run(&["token", "rate", "--name", "slow", "--rate", "none"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rate(), (None, None));
    let bad = run(&["token", "create", "--name", "x", "--rate", "fast"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a rate"));
    let unknown = run(&["token", "rate", "--name", "nobody", "--rate", "1/s"]);
    assert!(!unknown.status.success());
}

#[test]
fn a_reviewer_added_without_a_task_is_told_they_can_review_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec!["add", name, "--role", "reviewer"];
        args.extend_from_slice(extra);
        crate::accounts::user_cli(&url, &args, "a long passphrase\n")
    };
    let out = add("nobody", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("may review no task") && said.contains("tumor-triage"),
        "{said}"
    );
    let out = add("rita", &["--task", "tumor-triage"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());
}

/// `verdict model import` takes a fitting version once and refuses, with
/// what does not fit, a corrupt or mismatched directory; the registry and
/// the live version stay as they were.
#[test]
fn model_import_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("verdict.db").display());
    let run = |args: &[&str]| {
        let out = verdict()
            .args(args)
            .env("VERDICT_DATABASE_URL", &url)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run verdict");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run(&["deploy", "--task", "tumor-triage", "--version", "v1"]);
    assert!(ok, "{out}");
    assert!(out.contains("imported v1"), "{out}");

    let versions = dir.path().join("versions");
    let good = crate::lifecycle::variant(&versions, "v2", false);
    let (ok, out) = run(&["model", "import", good.to_str().unwrap()]);
    assert!(ok && out.contains("imported v2 (sha256 "), "{out}");
    let (ok, out) = run(&["model", "import", good.to_str().unwrap()]);
    assert!(ok && out.contains("v2 was already imported"), "{out}");

    let edit_card = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let target = crate::lifecycle::variant(&versions, name, false);
        let path = target.join("card.json");
        let mut card: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut card);
        std::fs::write(&path, card.to_string()).unwrap();
        target
    };
    let truncated = crate::lifecycle::variant(&versions, "v3", false);
    let weights = std::fs::read(truncated.join("model.safetensors")).unwrap();
    std::fs::write(
        truncated.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let cases = [
        (truncated, "not a safetensors file"),
        (
            edit_card("v4", &|c| {
                c["architecture"]["hidden"] = serde_json::json!([32, 64])
            }),
            "the weights do not fit the card",
        ),
        (
            edit_card("v5", &|c| {
                c["features"][0]["name"] = serde_json::json!("radius")
            }),
            "the feature list differs from the live version v1's",
        ),
        (
            edit_card("v6", &|c| c["task"] = serde_json::json!("other-task")),
            "no task named \"other-task\"",
        ),
        (
            crate::lifecycle::variant(&dir.path().join("flipped"), "v2", true),
            "already registered with other content",
        ),
        (dir.path().join("nowhere"), "cannot read"),
    ];
    for (path, expected) in cases {
        let (ok, out) = run(&["model", "import", path.to_str().unwrap()]);
        assert!(!ok, "{} was imported: {out}", path.display());
        assert!(out.contains(expected), "{}: {out}", path.display());
    }
    let (ok, out) = run(&["model", "list", "--task", "tumor-triage"]);
    assert!(ok, "{out}");
    let listed: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, ["v1", "v2"], "{out}");
    assert!(out.lines().nth(1).unwrap().contains("live"), "{out}");
}
