//! The `verdict` command line: parses arguments, sets up tracing and calls
//! into the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use verdict::config::Settings;
use verdict::ml::train::{train, TrainOptions};
use verdict::startup::Application;

/// mimalloc instead of the system allocator: the scoring path allocates and
/// frees many small strings per item on several threads, where glibc's
/// malloc spent a tenth of the writer's time consolidating free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "verdict",
    version,
    about = "Run a machine-learning model in production with a human in the loop"
)]
struct Cli {
    /// Configuration file (default: ./verdict.toml when it exists, else the
    /// built-in demo configuration).
    #[arg(long, global = true, env = "VERDICT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default command).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "VERDICT_BIND")]
        bind: Option<String>,
        /// Port to listen on (0 picks a free one).
        #[arg(long, env = "VERDICT_PORT")]
        port: Option<u16>,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Train a model version from a CSV file.
    Train {
        #[command(flatten)]
        options: TrainOptions,
        /// Make the new version live at once.
        #[arg(long)]
        deploy: bool,
    },
    /// Make a model version live (the old one becomes `previous`).
    Deploy {
        #[arg(long)]
        task: String,
        #[arg(long)]
        version: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "deployed from the command line")]
        why: String,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage the people who use the web UI.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Write a task's labelled items as JSONL or CSV (see README: export).
    Export {
        #[command(flatten)]
        filter: ExportFilter,
        /// Resume after this item id.
        #[arg(long)]
        after: Option<String>,
        /// The file to write; `-` for standard output.
        #[arg(long)]
        out: PathBuf,
    },
    /// Dataset snapshots: named, immutable exports that model cards cite.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Measure throughput and latency of the scoring API (see BENCHMARKS.md).
    Bench(verdict::bench::BenchOptions),
}

/// Which labels to export and how.
#[derive(clap::Args)]
struct ExportFilter {
    #[arg(long)]
    task: String,
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// Verdicts given at or after this time (RFC 3339 or a date).
    #[arg(long)]
    since: Option<String>,
    /// Verdicts given before this time (RFC 3339 or a date).
    #[arg(long)]
    until: Option<String>,
    /// human, model or all.
    #[arg(long)]
    source: Option<String>,
    /// audit, uncertain or all.
    #[arg(long)]
    kind: Option<String>,
    /// Extra detail per row: predictions, reviews (comma-separated).
    #[arg(long)]
    include: Option<String>,
}

impl ExportFilter {
    fn request(&self, after: Option<String>) -> anyhow::Result<verdict::export::Request> {
        let params = verdict::export::Params {
            format: Some(self.format.clone()),
            since: self.since.clone(),
            until: self.until.clone(),
            source: self.source.clone(),
            kind: self.kind.clone(),
            include: self.include.clone(),
            after,
        };
        Ok(params.parse(verdict::export::Format::Jsonl)?)
    }
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Freeze an export under a name (never overwritten).
    Snapshot {
        #[command(flatten)]
        filter: ExportFilter,
        #[arg(long)]
        name: String,
    },
    /// List snapshots.
    List {
        #[arg(long)]
        task: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from standard input (prompted for
    /// without echo on a terminal).
    Add {
        name: String,
        /// reviewer or admin.
        #[arg(long, default_value = "reviewer")]
        role: String,
        /// A task the reviewer may work (repeat for several).
        #[arg(long = "task")]
        tasks: Vec<String>,
    },
    /// Stop a user from signing in.
    Disable { name: String },
    /// Let a disabled user sign in again.
    Enable { name: String },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (shown once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// Revoke a token by name.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

fn main() -> anyhow::Result<()> {
    // candle's matrix products use rayon; at batch 1 a thread pool costs far
    // more than it saves (≈84 µs against ≈2.4 µs per forward pass).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    verdict::telemetry::init(settings.server.log_format);
    match cli.command.unwrap_or(Command::Serve {
        bind: None,
        port: None,
    }) {
        Command::Serve { bind, port } => serve(settings, bind, port),
        Command::Migrate => {
            let mut conn =
                verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
            let applied = verdict::db::run_migrations(&mut conn).map_err(anyhow::Error::msg)?;
            if applied.is_empty() {
                println!("the database is up to date");
            }
            for version in applied {
                println!("applied {version}");
            }
            Ok(())
        }
        Command::Train {
            mut options,
            deploy,
        } => {
            options.models_dir = settings.models.dir.clone();
            verdict::export::cli::resolve_training_data(&settings, &mut options)?;
            if let Some(name) = &options.snapshot {
                println!("training from dataset snapshot {name:?}");
            }
            let (task, version) = (options.task.clone(), options.version.clone());
            train(&options, &mut |line| println!("{line}"))?;
            if deploy {
                deploy_version(
                    &settings,
                    &task,
                    &version,
                    "trained and deployed from the command line",
                )?;
            } else {
                println!("make it live with: verdict deploy --task {task} --version {version}");
            }
            Ok(())
        }
        Command::Deploy { task, version, why } => deploy_version(&settings, &task, &version, &why),
        Command::Token { command } => {
            let mut conn =
                verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
            verdict::db::run_migrations(&mut conn).map_err(anyhow::Error::msg)?;
            match command {
                TokenCommand::Create { name } => {
                    let token = verdict::tokens::create(&mut conn, &name, "cli")?;
                    println!("{token}");
                    eprintln!("API token {name:?} created; it is shown only this once.");
                }
                TokenCommand::Revoke { name } => {
                    verdict::tokens::revoke(&mut conn, &name, "cli")?;
                    println!(
                        "token {name:?} revoked (running servers stop accepting it within 30 s)"
                    );
                }
            }
            Ok(())
        }
        Command::User { command } => user_command(&settings, command),
        Command::Export { filter, after, out } => {
            let request = filter.request(after)?;
            verdict::export::cli::export(&settings, &filter.task, &request, &out)?;
            Ok(())
        }
        Command::Dataset { command } => match command {
            DatasetCommand::Snapshot { filter, name } => {
                let request = filter.request(None)?;
                let row = verdict::export::cli::snapshot(
                    &settings,
                    &filter.task,
                    &name,
                    &request,
                    "cli",
                )?;
                println!(
                    "snapshot {:?} of {}: {} rows, sha256 {}\n  {}",
                    row.name, row.task, row.row_count, row.sha256, row.path
                );
                println!(
                    "train from it with: verdict train --task {} --data {}",
                    row.task, row.name
                );
                Ok(())
            }
            DatasetCommand::List { task } => {
                for row in verdict::export::cli::list(&settings, task.as_deref())? {
                    println!(
                        "{:<16} {:<24} {:>9} rows  {}  {}  {}",
                        row.task,
                        row.name,
                        row.row_count,
                        row.format,
                        &row.sha256[..12],
                        verdict::domain::rfc3339(&row.created_at)
                    );
                }
                Ok(())
            }
        },
        Command::Bench(opts) => verdict::bench::run(opts),
    }
}

fn user_command(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    use verdict::accounts;
    let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
    verdict::db::run_migrations(&mut conn).map_err(anyhow::Error::msg)?;
    match command {
        UserCommand::Add { name, role, tasks } => {
            let role = accounts::parse_role(&role).map_err(anyhow::Error::msg)?;
            for task in &tasks {
                if settings.task(task).is_none() {
                    anyhow::bail!("no task named {task:?} in the configuration");
                }
            }
            let password = read_password()?;
            accounts::add_user(&mut conn, &name, &password, role, &tasks, "cli")?;
            println!("user {name:?} added ({})", role.as_str());
        }
        UserCommand::Disable { name } => {
            accounts::set_disabled(&mut conn, &name, true, "cli")?;
            println!("user {name:?} disabled");
        }
        UserCommand::Enable { name } => {
            accounts::set_disabled(&mut conn, &name, false, "cli")?;
            println!("user {name:?} enabled");
        }
        UserCommand::List => {
            for (name, role, disabled) in accounts::list(&mut conn)? {
                println!(
                    "{name:<24} {role:<9}{}",
                    if disabled { " disabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// From the terminal without echo, or the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            anyhow::bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn deploy_version(settings: &Settings, task: &str, version: &str, why: &str) -> anyhow::Result<()> {
    if settings.task(task).is_none() {
        anyhow::bail!("no task named {task:?} in the configuration");
    }
    let dir = settings.models.dir.join(task).join(version);
    verdict::ml::LoadedModel::load(&dir)
        .with_context(|| format!("cannot deploy {}", dir.display()))?;
    let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
    verdict::db::run_migrations(&mut conn).map_err(anyhow::Error::msg)?;
    verdict::tasks::deploy(&mut conn, task, version, "cli", why)?;
    println!("{task}: {version} is live (running servers switch within 5 s)");
    Ok(())
}

fn serve(mut settings: Settings, bind: Option<String>, port: Option<u16>) -> anyhow::Result<()> {
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }
    if let Some(port) = port {
        settings.server.port = port;
    }
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone()).await?;
        let base = format!("http://{}:{}", settings.server.bind, app.port());
        println!("verdict is listening on {base} (database: {})", settings.database.url);
        for task in app.state().tasks.all() {
            println!(
                "  task {:<16} automation {:<10} live model {}",
                task.name(),
                task.config.automation.as_str(),
                task.live().map(|m| m.version().to_string()).unwrap_or_else(|| "none".into())
            );
        }
        match &app.initial_token {
            Some(token) => {
                println!("\nAn API token was created for this new database. It is shown only this once:\n\n  {token}\n");
                println!("Try it:\n");
                println!("  curl -s -H 'Authorization: Bearer {token}' {base}/api/v1/tasks\n");
                println!("  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\");
                println!("       -d @examples/case-0001.json {base}/api/v1/tasks/tumor-triage/items\n");
            }
            None => println!("\nUse your API token (create another with: verdict token create --name NAME)."),
        }
        if let Some(password) = &app.initial_admin_password {
            println!("An admin account was created for the web UI: admin / {password}");
            println!("(shown only this once; add people with: verdict user add NAME --role reviewer --task TASK)\n");
        }
        app.run_until_stopped().await?;
        Ok(())
    })
}
