//! `verdict demo`: the service on a fresh database of its own, with an API
//! token, an admin and reviewers it makes itself, and `simulate` running
//! against it with a drift scenario. Prints where to look; Ctrl-C stops
//! both.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::Rng;

use verdict::config::Settings;
use verdict::domain::Role;
use verdict::startup::Application;

use super::simulate::data::{Flip, Shift};
use super::simulate::{self, SimulateArgs};

const TASK: &str = "tumor-triage";
const DATABASE_FILE: &str = "verdict-demo.db";
/// Waiting items that raise the demo's backlog alert.
const BACKLOG_ALERT: i64 = 100;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Items the simulation sends.
    #[arg(long, default_value_t = 3000)]
    items: u64,
    /// Items per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Simulated reviewers.
    #[arg(long, default_value_t = 3)]
    reviewers: usize,
    /// Probability that a reviewer gives a wrong label.
    #[arg(long, default_value_t = 0.02)]
    reviewer_error: f64,
    /// Mean seconds a reviewer spends on an item.
    #[arg(long, default_value_t = 0.5)]
    review_seconds: f64,
    /// Share of model-decided items also queued blind for a reviewer.
    #[arg(long, default_value_t = 0.05)]
    audit_rate: f64,
    /// Port to listen on (default: the configured one, 8080).
    #[arg(long)]
    port: Option<u16>,
    /// Keep the demo's database in this directory (it must not hold one
    /// yet); by default it lives in a temporary directory removed at exit.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seeds the simulation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The demo's settings: the configured ones (models directory, address,
/// mail…) on the demo's own database, with the built-in demo task, its
/// audits at `audit_rate`, and alerts checked every 5 seconds, a backlog
/// alert from 100 waiting items (the reviewers fall behind after the
/// drift, and catch up).
fn demo_settings(mut settings: Settings, args: &DemoArgs, database: &Path) -> Settings {
    settings.database.url = format!("sqlite://{}", database.display());
    let mut task = Settings::default()
        .tasks
        .into_iter()
        .find(|t| t.name.as_str() == TASK)
        .expect("the built-in configuration has the demo task");
    task.audit_rate = args.audit_rate;
    settings.tasks = vec![task];
    settings.alerts.interval_ms = 5_000;
    settings.alerts.backlog_items = Some(BACKLOG_ALERT);
    if let Some(port) = args.port {
        settings.server.port = port;
    }
    settings
}

/// The drift the demo injects: data drift (mean_radius one standard
/// deviation higher) from half-way, concept drift (30 % of the cases take
/// the other label) from two thirds of the way.
fn scenario(items: u64) -> (Shift, Flip) {
    (
        Shift {
            feature: "mean_radius".into(),
            sigmas: 1.0,
            from: items / 2,
        },
        Flip {
            share: 0.3,
            from: items * 2 / 3,
        },
    )
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn run(settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let data = PathBuf::from("data/breast_cancer.csv");
    let feature_names = PathBuf::from("data/breast_cancer.features.txt");
    if !data.exists() || !feature_names.exists() {
        bail!(
            "the demo reads {} and {}: run it from the verdict repository",
            data.display(),
            feature_names.display()
        );
    }
    // The database: a temporary directory removed at exit, or --dir.
    let temporary;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temporary = tempfile::Builder::new().prefix("verdict-demo").tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    let database = dir.join(DATABASE_FILE);
    if database.exists() {
        bail!(
            "{} exists already: the demo starts on a fresh database (remove it, or pick another --dir)",
            database.display()
        );
    }
    let settings = demo_settings(settings, &args, &database);
    settings.validate().map_err(|e| anyhow::anyhow!("{e}"))?;

    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone()).await?;
        let base = format!("http://{}:{}", settings.server.bind, app.port());
        let token = app
            .initial_token
            .clone()
            .context("a fresh database gets an API token")?;
        let admin_password = app
            .initial_admin_password
            .clone()
            .context("a fresh database gets an admin")?;
        // The reviewers, straight into the database the demo owns.
        let reviewer_password = random_password();
        let names = simulate::reviewers::names(args.reviewers);
        for name in &names {
            verdict::accounts::add(
                &app.state().db,
                name.clone(),
                reviewer_password.clone(),
                Role::Reviewer,
                vec![TASK.to_string()],
                "demo".into(),
            )
            .await?;
        }

        let (shift, flip) = scenario(args.items);
        let where_db = match &args.dir {
            Some(_) => database.display().to_string(),
            None => format!("{} (removed at exit)", database.display()),
        };
        println!("verdict demo: the service on {base}, database {where_db}\n");
        println!("  Dashboard   {base}/dashboard/{TASK}");
        println!("  Alerts      {base}/admin/alerts");
        println!("  Items       {base}/admin/items");
        println!("  Sign in     {base}/sign-in as admin / {admin_password}");
        match names.as_slice() {
            [] => {}
            [one] => println!("              reviewer {one} / {reviewer_password}"),
            [first, .., last] => {
                println!("              reviewers {first} … {last} / {reviewer_password}")
            }
        }
        println!("  API token   {token}\n");
        println!(
            "Scenario, {}:",
            duration(args.items as f64 / args.rate)
        );
        println!(
            "  {} items at {} a second; {} % of the model's decisions audited blind",
            args.items,
            args.rate,
            percent(args.audit_rate)
        );
        println!(
            "  {} reviewers, about {} s an item, {} % of their labels wrong",
            args.reviewers,
            args.review_seconds,
            percent(args.reviewer_error)
        );
        println!(
            "  from item {}, data drift: {} one standard deviation higher",
            shift.from, shift.feature
        );
        println!(
            "  from item {}, concept drift: {} % of the cases take the other label",
            flip.from,
            percent(flip.share)
        );
        println!("Ctrl-C stops the demo.\n");

        let simulation = SimulateArgs {
            url: base.clone(),
            token,
            task: TASK.into(),
            items: args.items,
            rate: args.rate,
            batch: 1,
            concurrency: 32,
            seed: args.seed,
            jitter: 0.01,
            shifts: vec![shift],
            flip: Some(flip),
            reviewers: args.reviewers,
            reviewer_error: args.reviewer_error,
            reviewer_password: Some(reviewer_password),
            admin: None,
            review_seconds: args.review_seconds,
            drain: true,
            no_drain: false,
            drain_timeout: 600,
            run: Some("demo".into()),
            json: false,
            data,
            feature_names,
        };
        // The simulation is a client: its own thread and runtime, so its
        // load does not share the server's.
        let (done, mut finished) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(simulate::simulate(simulation)));
            let _ = done.send(result);
        });
        let server = app.run_until_stopped();
        tokio::pin!(server);
        let report = |result: Result<anyhow::Result<simulate::report::Summary>, _>| match result {
            Ok(Ok(summary)) => print!("\n{}", summary.text()),
            Ok(Err(e)) => eprintln!("the simulation failed: {e:#}"),
            Err(_) => eprintln!("the simulation stopped without a summary"),
        };
        tokio::select! {
            stopped = &mut server => {
                // Ctrl-C: the server has stopped; the simulation sums up.
                report(finished.await);
                stopped?;
            }
            result = &mut finished => {
                // Over, or stopped by the Ctrl-C that also stops the server.
                let stopped = matches!(&result, Ok(Ok(summary)) if summary.cancelled);
                report(result);
                if !stopped {
                    println!("\nThe simulation is over; the service keeps running on {base} (Ctrl-C stops it).");
                }
                server.await?;
            }
        }
        Ok(())
    })
}

/// A share as a percentage for people: `0.07` is `7`, `0.025` is `2.5`.
fn percent(share: f64) -> String {
    let rounded = format!("{:.2}", share * 100.0);
    rounded
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

fn duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("about {} s", seconds.round())
    } else {
        format!("about {} min", (seconds / 60.0).round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drift_starts_half_and_two_thirds_of_the_way() {
        let (shift, flip) = scenario(3000);
        assert_eq!(
            (shift.feature.as_str(), shift.sigmas, shift.from),
            ("mean_radius", 1.0, 1500)
        );
        assert_eq!((flip.share, flip.from), (0.3, 2000));
    }

    #[test]
    fn shares_read_as_plain_percentages() {
        assert_eq!(percent(0.07), "7");
        assert_eq!(percent(0.3), "30");
        assert_eq!(percent(0.025), "2.5");
        assert_eq!(percent(0.0), "0");
        assert_eq!(duration(60.0), "about 60 s");
        assert_eq!(duration(600.0), "about 10 min");
    }

    #[test]
    fn the_demo_runs_the_demo_task_on_its_own_database() {
        let args = DemoArgs {
            items: 10,
            rate: 5.0,
            reviewers: 1,
            reviewer_error: 0.0,
            review_seconds: 0.0,
            audit_rate: 0.05,
            port: Some(0),
            dir: None,
            seed: 1,
        };
        let mut configured = Settings::default();
        configured.tasks.clear();
        let settings = demo_settings(configured, &args, Path::new("/tmp/x/verdict-demo.db"));
        assert_eq!(settings.database.url, "sqlite:///tmp/x/verdict-demo.db");
        assert_eq!(settings.tasks.len(), 1);
        assert_eq!(settings.tasks[0].name.as_str(), TASK);
        assert_eq!(settings.tasks[0].audit_rate, 0.05);
        assert_eq!(settings.server.port, 0);
        assert_eq!(settings.alerts.backlog_items, Some(BACKLOG_ALERT));
        assert!(settings.validate().is_ok());
        assert!(random_password().len() >= verdict::accounts::MIN_PASSWORD_LEN);
    }
}
