//! `verdict deploy`: which model version serves a task. `verdict deploy
//! --task T --version V` makes a version live at once; the subcommands
//! run a candidate beside the live version (shadow or canary), promote it,
//! withdraw it, roll back, and show the comparison. The same as the
//! deployment API; every running instance applies a change within
//! `[server] deployment_poll_ms`.

use anyhow::Context;

use verdict::config::Settings;
use verdict::domain::CandidateMode;
use verdict::lifecycle::{self, Comparison, VersionStats};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeployArgs {
    #[command(subcommand)]
    command: Option<DeployCommand>,
    /// The task (with --version: make that version live at once).
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    version: Option<String>,
    /// Why, for the audit log.
    #[arg(long, default_value = "deployed from the command line")]
    why: String,
}

#[derive(clap::Subcommand)]
enum DeployCommand {
    /// Live, candidate and previous, and the candidate compared with live
    /// on the same items.
    Status {
        #[arg(long)]
        task: String,
    },
    /// Run a version beside the live one: `shadow` (it scores every item,
    /// nothing uses it) or `canary` (it decides --percent of items, chosen
    /// by a stable hash of their id).
    Candidate {
        #[arg(long)]
        task: String,
        #[arg(long)]
        version: String,
        #[arg(long, value_parser = ["shadow", "canary"])]
        mode: String,
        /// Canary: the share of items it decides, 1–100.
        #[arg(long)]
        percent: Option<u32>,
        #[arg(long)]
        why: String,
    },
    /// Make the candidate live (the live version becomes previous).
    /// Refused while it has too little evidence, unless --force.
    Promote {
        #[arg(long)]
        task: String,
        #[arg(long)]
        why: String,
        /// Promote past the guard rails (min_items, min_audits).
        #[arg(long)]
        force: bool,
    },
    /// Make the previous version live again.
    Rollback {
        #[arg(long)]
        task: String,
        #[arg(long)]
        why: String,
    },
    /// Stop running the candidate.
    Withdraw {
        #[arg(long)]
        task: String,
        #[arg(long)]
        why: String,
    },
}

pub fn run(settings: &Settings, args: &DeployArgs) -> anyhow::Result<()> {
    let within = settings.server.deployment_poll_ms.div_ceil(1000);
    let command = match &args.command {
        Some(command) => command,
        None => {
            let (Some(task), Some(version)) = (&args.task, &args.version) else {
                anyhow::bail!(
                    "say --task and --version to make a version live, or use a subcommand (verdict deploy --help)"
                );
            };
            return deploy_version(settings, task, version, &args.why);
        }
    };
    let task = match command {
        DeployCommand::Status { task }
        | DeployCommand::Candidate { task, .. }
        | DeployCommand::Promote { task, .. }
        | DeployCommand::Rollback { task, .. }
        | DeployCommand::Withdraw { task, .. } => task,
    };
    let config = settings
        .task(task)
        .ok_or_else(|| anyhow::anyhow!("no task named {task:?} in the configuration"))?;
    let mut conn = super::open_store(settings)?;
    match command {
        DeployCommand::Status { .. } => {}
        DeployCommand::Candidate {
            version,
            mode,
            percent,
            why,
            ..
        } => {
            super::deploy::ensure_imported(settings, &mut conn, task, version)?;
            let mode = CandidateMode::parse(mode).expect("clap checked the mode");
            if mode == CandidateMode::Shadow && percent.is_some() {
                anyhow::bail!("--percent is for a canary; a shadow scores every item");
            }
            lifecycle::set_candidate(&mut conn, config, version, mode, *percent, "cli", why)?;
            println!("{task}: {version} is the candidate ({}); running servers start it within {within} s", mode_text(mode, *percent));
        }
        DeployCommand::Promote { why, force, .. } => {
            let live = lifecycle::promote(&mut conn, config, "cli", why, *force)?;
            println!("{task}: {live} is live (running servers switch within {within} s); `verdict deploy rollback` brings the previous back");
        }
        DeployCommand::Rollback { why, .. } => {
            match verdict::tasks::rollback(&mut conn, task, "cli", why)? {
                Some(live) => println!(
                    "{task}: {live} is live again (running servers switch within {within} s)"
                ),
                None => anyhow::bail!("task {task} has no previous version to roll back to"),
            }
        }
        DeployCommand::Withdraw { why, .. } => {
            let version = lifecycle::withdraw(&mut conn, task, "cli", why)?;
            println!(
                "{task}: candidate {version} withdrawn (running servers stop it within {within} s)"
            );
        }
    }
    status(&mut conn, config)
}

fn mode_text(mode: CandidateMode, percent: Option<u32>) -> String {
    match (mode, percent) {
        (CandidateMode::Canary, Some(p)) => format!("canary, {p} % of items"),
        _ => mode.as_str().to_string(),
    }
}

/// Prints the deployment and the comparison.
fn status(
    conn: &mut verdict::db::DbConnection,
    config: &verdict::config::TaskConfig,
) -> anyhow::Result<()> {
    let task = config.name.as_str();
    let Some(d) = verdict::tasks::deployment(conn, task)? else {
        println!("{task}: no deployment yet");
        return Ok(());
    };
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    println!("live:      {}", or_none(&d.live_version));
    println!(
        "candidate: {}{}",
        or_none(&d.candidate_version),
        d.candidate_mode
            .map(|m| format!(" ({})", mode_text(m, d.canary_percent.map(|p| p as u32))))
            .unwrap_or_default()
    );
    println!("previous:  {}", or_none(&d.previous_version));
    if let Some(c) = lifecycle::compare(conn, config, &d)? {
        print_comparison(&c);
    }
    Ok(())
}

fn print_comparison(c: &Comparison) {
    println!("\nsince {}: {} items scored by both", c.since, c.items);
    let pct = |r: Option<f64>| {
        r.map(|r| format!("{:.1} %", r * 100.0))
            .unwrap_or_else(|| "—".into())
    };
    let agreement =
        |a: &lifecycle::Agreement| format!("{} ({} of {})", pct(a.rate()), a.agree, a.compared);
    let ms = |us: Option<i64>| {
        us.map(|u| format!("{:.3} ms", u as f64 / 1000.0))
            .unwrap_or_else(|| "—".into())
    };
    let row = |name: &str, f: &dyn Fn(&VersionStats) -> String| {
        println!("{name:<34} {:<26} {:<26}", f(&c.live), f(&c.candidate));
    };
    row("", &|s| s.version.clone());
    row("items scored", &|s| s.scored.to_string());
    row("items decided", &|s| s.acted.to_string());
    row("errors", &|s| s.errors.to_string());
    row("agreement with humans (all)", &|s| agreement(&s.human));
    row("agreement with blind audits", &|s| agreement(&s.blind));
    row("automation rate at the threshold", &|s| {
        pct(s.automation_rate)
    });
    row("forward pass p50", &|s| ms(s.forward_p50_us));
    row("forward pass p99", &|s| ms(s.forward_p99_us));
    println!("agreement between the versions: {}", agreement(&c.versions));
}

/// Checks that the version loads, then makes it live (the old live version
/// becomes `previous`) and writes the audit log.
pub fn deploy_version(
    settings: &Settings,
    task: &str,
    version: &str,
    why: &str,
) -> anyhow::Result<()> {
    super::check_task(settings, task)?;
    let mut conn = super::open_store(settings)?;
    ensure_imported(settings, &mut conn, task, version)?;
    verdict::tasks::load_version(&mut conn, task, version)
        .with_context(|| format!("cannot deploy {version}"))?;
    verdict::tasks::deploy(&mut conn, task, version, "cli", why)?;
    println!(
        "{task}: {version} is live (running servers switch within {} s)",
        settings.server.deployment_poll_ms.div_ceil(1000)
    );
    Ok(())
}

/// A version in the registry: one not yet imported whose directory is in
/// the models directory (as `verdict train` leaves it) is imported first.
pub fn ensure_imported(
    settings: &Settings,
    conn: &mut verdict::db::DbConnection,
    task: &str,
    version: &str,
) -> anyhow::Result<()> {
    if verdict::store::tasks::version_exists(conn, task, version)? {
        return Ok(());
    }
    let dir = settings.models.dir.join(task).join(version);
    if !dir.is_dir() {
        anyhow::bail!(
            "task {task} has no version {version:?} in the registry (import it with `verdict model import DIR`)"
        );
    }
    let files = verdict::ml::VersionFiles::read(&dir)?;
    super::model::import(settings, &files, Some(task))
        .with_context(|| format!("{} not imported", dir.display()))?;
    println!("imported {version} from {}", dir.display());
    Ok(())
}
