//! The subcommands, one file per group. Each takes the loaded settings and
//! calls into the library; `anyhow` is fine here (STYLE.md, Errors).

mod bench;
mod dataset;
mod demo;
mod deploy;
mod export;
mod labels;
mod model;
mod score;
mod serve;
mod simulate;
mod token;
mod train;
mod user;

use clap::Subcommand;

use verdict::config::Settings;
use verdict::db::DbConnection;

#[derive(Subcommand)]
pub enum Command {
    /// Run the service (the default command).
    Serve(serve::ServeArgs),
    /// Run the database migrations and exit.
    Migrate,
    /// Rewrite the SQLite database file compactly (VACUUM), at another page
    /// size if given: stop the service first.
    Vacuum {
        /// The new page size in bytes (a power of two from 512 to 65536);
        /// 8192 suits a database that mostly takes batch files.
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// Train a model version from a CSV file, a dataset snapshot or the
    /// reviewers' labels in the database (--from-labels).
    Train(train::TrainArgs),
    /// Which model version serves a task: make one live at once, or run a
    /// candidate beside it (shadow, canary), promote it, roll back.
    Deploy(deploy::DeployArgs),
    /// The model registry: import a version, list a task's versions.
    Model {
        #[command(subcommand)]
        command: model::ModelCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Manage the people who use the web UI.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Score a CSV or JSONL file of items through the task's policy and
    /// store, as the API would (a re-run resumes); one result per line.
    Score(score::ScoreArgs),
    /// Write a task's labelled items as JSONL or CSV (see README: export).
    Export(export::ExportArgs),
    /// Dataset snapshots: named, immutable exports that model cards cite.
    Dataset {
        #[command(subcommand)]
        command: dataset::DatasetCommand,
    },
    /// Measure throughput and latency of the scoring API (see BENCHMARKS.md).
    Bench(bench::BenchOptions),
    /// Send the demo data to a running service while simulated reviewers
    /// answer its review queue through the web UI (see README: Simulate
    /// and demo).
    Simulate(simulate::SimulateArgs),
    /// Run the service on a fresh database of its own with a simulation
    /// against it (a drift scenario); prints where to look.
    Demo(demo::DemoArgs),
}

impl Default for Command {
    fn default() -> Self {
        Command::Serve(serve::ServeArgs::default())
    }
}

impl Command {
    /// The default log level (`RUST_LOG` overrides it) of commands that
    /// draw a progress bar, which log lines would break into: `demo` logs
    /// only errors (its alerts are on the Alerts page), `simulate` warnings.
    pub fn log_level(&self) -> Option<&'static str> {
        match self {
            Command::Demo(_) => Some("error"),
            Command::Simulate(_) | Command::Score(_) => Some("warn"),
            _ => None,
        }
    }
}

/// Runs one subcommand.
pub fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(settings, args),
        Command::Migrate => migrate(&settings),
        Command::Vacuum { page_size } => vacuum(&settings, page_size),
        Command::Train(args) => train::run(&settings, args),
        Command::Deploy(args) => deploy::run(&settings, &args),
        Command::Model { command } => model::run(&settings, command),
        Command::Token { command } => token::run(&settings, command),
        Command::User { command } => user::run(&settings, command),
        Command::Score(args) => score::run(&settings, args),
        Command::Export(args) => export::run(&settings, args),
        Command::Dataset { command } => dataset::run(&settings, command),
        Command::Bench(options) => bench::run(options),
        Command::Simulate(args) => simulate::run(args),
        Command::Demo(args) => demo::run(settings, args),
    }
}

/// A connection to the configured database with every migration applied:
/// what each command that reads or writes the store starts with.
pub fn open_store(settings: &Settings) -> anyhow::Result<DbConnection> {
    let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
    verdict::db::run_migrations(&mut conn).map_err(anyhow::Error::msg)?;
    Ok(conn)
}

/// Refuses a task the configuration does not name.
pub fn check_task(settings: &Settings, task: &str) -> anyhow::Result<()> {
    if settings.task(task).is_none() {
        anyhow::bail!("no task named {task:?} in the configuration");
    }
    Ok(())
}

fn vacuum(settings: &Settings, page_size: Option<u32>) -> anyhow::Result<()> {
    let done = verdict::db::rewrite(&settings.database, page_size).map_err(anyhow::Error::msg)?;
    println!(
        "rewrote the database: page size {} -> {} bytes, file {:.1} MB -> {:.1} MB",
        done.page_size_before,
        done.page_size,
        done.bytes_before as f64 / 1e6,
        done.bytes as f64 / 1e6
    );
    Ok(())
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
    let applied = verdict::db::run_migrations(&mut conn).map_err(anyhow::Error::msg)?;
    if applied.is_empty() {
        println!("the database is up to date");
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}
