//! The `verdict` command line: parses arguments, sets up tracing and calls
//! into the library through the subcommands of `cli/`.

mod cli;

use std::path::PathBuf;

use clap::Parser;

use verdict::config::Settings;

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
    command: Option<cli::Command>,
}

/// Runs the command; an error is printed as one line with its causes
/// (`error: cannot open …: permission denied`), never as a debug dump with a
/// backtrace, whatever `RUST_BACKTRACE` says, and the exit status is 1.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // candle's matrix products use rayon; at batch 1 a thread pool costs far
    // more than it saves (≈84 µs against ≈2.4 µs per forward pass).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let args = Cli::parse();
    let command = args.command.unwrap_or_default();
    if let (Some(level), None) = (command.log_level(), std::env::var_os("RUST_LOG")) {
        std::env::set_var("RUST_LOG", level);
    }
    let settings = Settings::load(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    verdict::telemetry::init(settings.server.log_format);
    cli::run(command, settings)
}
