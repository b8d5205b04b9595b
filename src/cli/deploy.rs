//! `verdict deploy`: make a model version live.

use anyhow::Context;

use verdict::config::Settings;

#[derive(clap::Args)]
pub struct DeployArgs {
    #[arg(long)]
    task: String,
    #[arg(long)]
    version: String,
    /// Why, for the audit log.
    #[arg(long, default_value = "deployed from the command line")]
    why: String,
}

pub fn run(settings: &Settings, args: &DeployArgs) -> anyhow::Result<()> {
    deploy_version(settings, &args.task, &args.version, &args.why)
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
    let dir = settings.models.dir.join(task).join(version);
    verdict::ml::LoadedModel::load(&dir)
        .with_context(|| format!("cannot deploy {}", dir.display()))?;
    let mut conn = super::open_store(settings)?;
    verdict::tasks::deploy(&mut conn, task, version, "cli", why)?;
    println!(
        "{task}: {version} is live (running servers switch within {} s)",
        settings.server.deployment_poll_ms.div_ceil(1000)
    );
    Ok(())
}
