//! Accounts: the first admin, `verdict user`, hashed passwords.

use std::process::Command;

use diesel::prelude::*;

use crate::helpers::{repo, spawn_with, task, Backend, TestDb};
use verdict::accounts;
use verdict::db::schema::users;
use verdict::domain::AutomationLevel;
use verdict::domain::Role;

crate::on_both_backends!(the_first_start_creates_an_admin_whose_password_is_stored_hashed);

async fn the_first_start_creates_an_admin_whose_password_is_stored_hashed(backend: Backend) {
    let Some(app) = spawn_with(backend, task(AutomationLevel::Partial), None).await else {
        return;
    };
    let mut conn = app.db.connect();
    let stored: Vec<(String, String, String)> = users::table
        .select((users::name, users::role, users::password_hash))
        .load(&mut conn)
        .unwrap();
    assert_eq!(stored.len(), 1);
    let (name, role, hash) = &stored[0];
    assert_eq!((name.as_str(), role.as_str()), ("admin", "admin"));
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    // The helper does not keep the password: sign-in checks the hash, and a
    // wrong password or unknown user gets nothing.
    assert_eq!(
        accounts::authenticate(&mut conn, "admin", "wrong password").unwrap(),
        None
    );
    assert_eq!(
        accounts::authenticate(&mut conn, "nobody", "wrong password").unwrap(),
        None
    );
}

#[actix_web::test]
async fn the_admin_password_is_shown_once_and_works() {
    let db = TestDb::new(Backend::Sqlite).unwrap();
    let mut settings = verdict::config::Settings::default();
    settings.server.port = 0;
    settings.database.url = db.url.clone();
    settings.models.dir = repo().join("models");
    let first = verdict::startup::Application::build(settings.clone())
        .await
        .unwrap();
    let password = first
        .initial_admin_password
        .clone()
        .expect("a password on a new database");
    assert!(password.len() >= accounts::MIN_PASSWORD_LEN);
    let user = accounts::authenticate(&mut db.connect(), "admin", &password)
        .unwrap()
        .unwrap();
    assert_eq!(user.role, Role::Admin);
    assert!(user.may_work("tumor-triage"));
    drop(first);
    let again = verdict::startup::Application::build(settings)
        .await
        .unwrap();
    assert_eq!(again.initial_admin_password, None, "not created twice");
    let hashes: Vec<String> = users::table
        .select(users::password_hash)
        .load(&mut db.connect())
        .unwrap();
    assert!(hashes.iter().all(|h| !h.contains(&password)));
}

pub fn user_cli(url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    crate::helpers::run_with_input(
        Command::new(env!("CARGO_BIN_EXE_verdict"))
            .arg("user")
            .args(args)
            .current_dir(repo())
            .env_remove("VERDICT_CONFIG")
            .env("VERDICT_DATABASE_URL", url),
        stdin.as_bytes(),
    )
}

#[test]
fn user_add_reads_the_password_from_stdin_and_enforces_the_rules() {
    let db = TestDb::new(Backend::Sqlite).unwrap();
    let add = user_cli(
        &db.url,
        &[
            "add",
            "rita",
            "--role",
            "reviewer",
            "--task",
            "tumor-triage",
        ],
        "a long passphrase\n",
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let rita = accounts::authenticate(&mut db.connect(), "rita", "a long passphrase")
        .unwrap()
        .unwrap();
    assert_eq!(rita.role, Role::Reviewer);
    assert_eq!(rita.tasks, ["tumor-triage"]);
    assert!(!rita.may_work("other-task"));

    let twice = user_cli(&db.url, &["add", "rita"], "another long one\n");
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("exists already"));
    let short = user_cli(&db.url, &["add", "sam"], "short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("too short"));
    let unknown_task = user_cli(
        &db.url,
        &["add", "sam", "--task", "nope"],
        "a long passphrase\n",
    );
    assert!(!unknown_task.status.success());
    let bad_role = user_cli(
        &db.url,
        &["add", "sam", "--role", "root"],
        "a long passphrase\n",
    );
    assert!(!bad_role.status.success());

    assert!(user_cli(&db.url, &["disable", "rita"], "").status.success());
    assert_eq!(
        accounts::authenticate(&mut db.connect(), "rita", "a long passphrase").unwrap(),
        None
    );
    let list = user_cli(&db.url, &["list"], "");
    assert!(String::from_utf8_lossy(&list.stdout).contains("rita"));
    assert!(String::from_utf8_lossy(&list.stdout).contains("disabled"));
    assert!(user_cli(&db.url, &["enable", "rita"], "").status.success());
    assert!(
        accounts::authenticate(&mut db.connect(), "rita", "a long passphrase")
            .unwrap()
            .is_some()
    );
}
